//! What devices fetch: `GET /ota/download/{link}` (the per-device, expiring
//! link sent in the `INTERNAL ota` signal) and `GET /ota/firmware/{id}?token=`
//! (the same binary, authorised by the device's auth token while a shipment
//! offers it that firmware).
//!
//! Answers carry `Content-Length` and the `x-MD5` header the Blynk library
//! checks (plus `x-fw-type`, `x-fw-ver`, `x-fw-build`), support single
//! `Range` requests so an interrupted download resumes, and count the bytes
//! actually sent.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures::Stream;
use object_store::{GetOptions, GetRange};
use pinhouse_storage::objects::key_path;

use super::engine::link_hash;
use super::firmware::blob_key;
use super::{Ota, now_ms};
use crate::control::{ControlError, Result};

/// What a download needs to know about its firmware and device.
#[derive(sqlx::FromRow)]
pub(super) struct Grant {
    #[sqlx(try_from = "i64")]
    shipment_id: u32,
    #[sqlx(try_from = "i64")]
    device_id: u32,
    device_status: String,
    shipment_status: String,
    link_expires_at: Option<i64>,
    fw_type: String,
    version: String,
    build: String,
    size: i64,
    md5: String,
    sha256: String,
}

const GRANT_SELECT: &str =
    "SELECT d.shipment_id, d.device_id, d.status AS device_status, s.status AS shipment_status,
        d.link_expires_at, f.fw_type, f.version, f.build, f.size, f.md5, f.sha256
     FROM ota_shipment_devices d
     JOIN ota_shipments s ON s.id = d.shipment_id
     JOIN firmware f ON f.id = s.firmware_id";

fn refused(status: StatusCode, code: &'static str, message: String) -> ControlError {
    ControlError::http(status, code, message)
}

/// A byte range `[start, end]` (inclusive) of a file of `size` bytes, from a
/// `Range` header; `Ok(None)` for the whole file.
pub(super) fn parse_range(
    value: Option<&str>,
    size: u64,
) -> std::result::Result<Option<(u64, u64)>, ()> {
    let Some(value) = value else { return Ok(None) };
    let spec = value.trim().strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') || size == 0 {
        return Err(());
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() {
            size - 1
        } else {
            b.parse::<u64>().map_err(|_| ())?.min(size - 1)
        };
        if start > end || start >= size {
            return Err(());
        }
        (start, end)
    };
    Ok(Some(range))
}

/// Body stream that counts what it yields and reports when dropped.
struct Counted {
    inner: futures::stream::BoxStream<'static, object_store::Result<Bytes>>,
    sent: u64,
    finished: bool,
    report: Option<Box<dyn FnOnce(u64, bool) + Send>>,
}

impl Stream for Counted {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => self.sent += chunk.len() as u64,
            Poll::Ready(None) => self.finished = true,
            Poll::Ready(Some(Err(err))) => {
                tracing::warn!(%err, sent = self.sent, "reading firmware from the object store failed mid-download");
            }
            Poll::Pending => {}
        }
        polled.map(|item| item.map(|r| r.map_err(std::io::Error::other)))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(report) = self.report.take() {
            report(self.sent, self.finished);
        }
    }
}

impl Ota {
    /// Serve a per-device download link.
    pub(super) async fn download_by_link(
        &self,
        link: &str,
        headers: &HeaderMap,
    ) -> Result<Response> {
        if link.is_empty() || link.len() > 128 {
            return Err(refused(
                StatusCode::NOT_FOUND,
                "unknown_link",
                "unknown download link".into(),
            ));
        }
        let grant: Option<Grant> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{GRANT_SELECT} WHERE d.link_hash = $1"
        )))
        .bind(link_hash(link))
        .fetch_optional(self.pool())
        .await?;
        let Some(grant) = grant else {
            tracing::warn!("OTA download with an unknown or superseded link refused");
            return Err(refused(
                StatusCode::NOT_FOUND,
                "unknown_link",
                "unknown or superseded download link".into(),
            ));
        };
        if grant.link_expires_at.is_some_and(|t| t < now_ms()) {
            tracing::warn!(
                device_id = grant.device_id,
                shipment_id = grant.shipment_id,
                "expired OTA link refused"
            );
            return Err(refused(
                StatusCode::GONE,
                "link_expired",
                "this download link has expired; the device gets a new one on its next attempt"
                    .into(),
            ));
        }
        self.serve(grant, headers).await
    }

    /// Serve firmware `firmware_id` to the device owning `token`, if a shipment
    /// currently offers it that firmware.
    pub(super) async fn download_by_token(
        &self,
        firmware_id: u32,
        token: &str,
        headers: &HeaderMap,
    ) -> Result<Response> {
        let device = self
            .inner
            .control
            .device_by_token(token)
            .await?
            .ok_or_else(|| ControlError::unauthorized("Invalid token."))?;
        let grant: Option<Grant> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{GRANT_SELECT} WHERE d.device_id = $1 AND s.firmware_id = $2 AND s.org_id = $3
               AND d.status IN ('sent', 'downloading') ORDER BY d.shipment_id DESC LIMIT 1"
        )))
        .bind(i64::from(device.id))
        .bind(i64::from(firmware_id))
        .bind(i64::from(device.org_id))
        .fetch_optional(self.pool())
        .await?;
        let Some(grant) = grant else {
            tracing::warn!(
                device_id = device.id,
                firmware_id,
                "device asked for firmware not shipped to it"
            );
            return Err(refused(
                StatusCode::FORBIDDEN,
                "not_shipped",
                format!("firmware {firmware_id} is not being shipped to this device"),
            ));
        };
        self.serve(grant, headers).await
    }

    async fn serve(&self, grant: Grant, headers: &HeaderMap) -> Result<Response> {
        if !matches!(grant.shipment_status.as_str(), "running" | "paused") {
            return Err(refused(
                StatusCode::GONE,
                "shipment_closed",
                format!(
                    "shipment {} is {}",
                    grant.shipment_id, grant.shipment_status
                ),
            ));
        }
        if !matches!(grant.device_status.as_str(), "sent" | "downloading") {
            return Err(refused(
                StatusCode::GONE,
                "link_used",
                format!("this device's update is already {}", grant.device_status),
            ));
        }
        let size = grant.size as u64;
        let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
        let Ok(range) = parse_range(range_header, size) else {
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .body(Body::empty())
                .map_err(|e| ControlError::internal(e.to_string()));
        };
        let (start, end) = range.unwrap_or((0, size - 1));
        let len = end - start + 1;
        let key = blob_key(&grant.sha256);
        let options = GetOptions {
            range: Some(GetRange::Bounded(start..end + 1)),
            ..GetOptions::default()
        };
        let object = self
            .inner
            .objects
            .store()
            .get_opts(
                &key_path(&key).map_err(|e| ControlError::internal(e.to_string()))?,
                options,
            )
            .await
            .map_err(|e| {
                tracing::error!(%e, %key, "firmware binary unreadable in the object store");
                ControlError::internal(format!("firmware binary {key}: {e}"))
            })?;
        let now = now_ms();
        sqlx::query(
            "UPDATE ota_shipment_devices SET status = 'downloading', downloads = downloads + 1, updated_at = $1
             WHERE shipment_id = $2 AND device_id = $3",
        )
        .bind(now)
        .bind(i64::from(grant.shipment_id))
        .bind(i64::from(grant.device_id))
        .execute(self.pool())
        .await?;
        tracing::info!(
            shipment_id = grant.shipment_id,
            device_id = grant.device_id,
            start,
            end,
            "OTA download started"
        );
        let reaches_end = end == size - 1;
        let (pool, ota, shipment_id, device_id) = (
            self.pool().clone(),
            self.clone(),
            grant.shipment_id,
            grant.device_id,
        );
        let report = Box::new(move |sent: u64, finished: bool| {
            let complete = finished && reaches_end && sent == len;
            tokio::spawn(async move {
                let res = sqlx::query(
                    "UPDATE ota_shipment_devices SET bytes_sent = bytes_sent + $1,
                         downloaded_at = CASE WHEN $2 THEN $3 ELSE downloaded_at END, updated_at = $4
                     WHERE shipment_id = $5 AND device_id = $6",
                )
                .bind(sent as i64)
                .bind(complete)
                .bind(now_ms())
                .bind(now_ms())
                .bind(i64::from(shipment_id))
                .bind(i64::from(device_id))
                .execute(&pool)
                .await;
                if let Err(err) = res {
                    tracing::warn!(%err, device_id, "cannot record OTA download progress");
                }
                let text = if complete {
                    format!("firmware downloaded ({sent} bytes in the last request)")
                } else {
                    format!("download interrupted after {sent} bytes")
                };
                tracing::info!(shipment_id, device_id, sent, complete, "OTA download ended");
                ota.timeline(device_id, "ota_download", "info", &text).await;
            });
        });
        let body = Counted {
            inner: object.into_stream(),
            sent: 0,
            finished: false,
            report: Some(report),
        };
        let mut response = Response::builder()
            .status(if range.is_some() {
                StatusCode::PARTIAL_CONTENT
            } else {
                StatusCode::OK
            })
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, len)
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::ETAG, format!("\"{}\"", grant.sha256))
            .header("x-MD5", &grant.md5);
        for (name, value) in [
            ("x-fw-type", &grant.fw_type),
            ("x-fw-ver", &grant.version),
            ("x-fw-build", &grant.build),
        ] {
            if let Ok(v) = HeaderValue::from_str(value) {
                response = response.header(name, v);
            }
        }
        if range.is_some() {
            response =
                response.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
        }
        response
            .body(Body::from_stream(body))
            .map_err(|e| ControlError::internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(parse_range(Some("bytes=40-"), 100), Ok(Some((40, 99))));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=90-500"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=-500"), 100), Ok(Some((0, 99))));
        for bad in [
            "bytes=100-",
            "bytes=5-4",
            "items=0-1",
            "bytes=0-1,3-4",
            "bytes=-0",
            "bytes=x-",
        ] {
            assert_eq!(parse_range(Some(bad), 100), Err(()), "{bad}");
        }
    }
}
