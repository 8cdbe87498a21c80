//! OTA end to end: firmware upload, a staged shipment over simulated devices
//! speaking the real protocol (download, a resumed Range download, re-login
//! with the new build), a device that never returns, a canary cohort whose
//! failures halt the shipment, and the refusals of bad input.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use md5::{Digest, Md5};
use pinhouse_protocol::{Frame, command, status};
use serde_json::{Value, json};

use crate::device::RawDevice;
use crate::server::{S3Server, Server, eventually};

const OLD_VERSION: &str = "1.0.0";
const OLD_BUILD: &str = "Nov  1 2026 08:00:00";
const NEW_VERSION: &str = "2.0.0";
const NEW_BUILD: &str = "Nov 25 2026 12:00:00";

/// A firmware image with the Blynk info tag for `template_id`, padded with
/// pseudo-random bytes.
fn firmware_image(template_id: &str, len: usize) -> Vec<u8> {
    let mut bin = vec![0xE9, 0x03, 0x02, 0x20];
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    while bin.len() < len / 2 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bin.push(x as u8);
    }
    bin.extend_from_slice(
        format!(
            "blnkinf\0mcu\0{NEW_VERSION}\0fw-type\0{template_id}\0build\0{NEW_BUILD}\0blynk\01.3.2\0\0"
        )
        .as_bytes(),
    );
    while bin.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bin.push(x as u8);
    }
    bin
}

fn md5_hex(bytes: &[u8]) -> String {
    hex_lower(&Md5::digest(bytes))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Fleet<'a> {
    server: &'a Server,
    bearer: String,
}

impl Fleet<'_> {
    async fn template(&self, name: &str) -> Result<String> {
        let (status, t) = self
            .server
            .post_json(
                &self.bearer,
                "/api/v1/templates",
                &json!({"name": name, "datastreams": [{"pin": 1, "name": "Temperature", "type": "double"}]}),
            )
            .await?;
        if status != 201 {
            bail!("template: {status} {t}");
        }
        Ok(t["id"].as_str().context("template id")?.to_owned())
    }

    /// Devices of `template`, as (id, token), in id order.
    async fn devices(&self, template: &str, n: usize) -> Result<Vec<(u64, String)>> {
        let mut out = Vec::new();
        for i in 0..n {
            let (status, d) = self
                .server
                .post_json(
                    &self.bearer,
                    "/api/v1/devices",
                    &json!({"name": format!("ota-{template}-{i}"), "template_id": template}),
                )
                .await?;
            if status != 201 {
                bail!("device: {status} {d}");
            }
            out.push((
                d["id"].as_u64().context("id")?,
                d["token"].as_str().context("token")?.to_owned(),
            ));
        }
        Ok(out)
    }

    async fn upload(&self, template: &str, image: &[u8], md5: &str) -> Result<(u16, Value)> {
        let resp = self
            .server
            .client
            .post(self.server.url(&format!(
                "/api/v1/firmware?template_id={template}&file_name=app.bin"
            )))
            .bearer_auth(&self.bearer)
            .header("x-md5", md5)
            .body(image.to_vec())
            .send()
            .await?;
        Ok((
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        ))
    }

    async fn get(&self, path: &str) -> Result<Value> {
        let resp = self
            .server
            .client
            .get(self.server.url(path))
            .bearer_auth(&self.bearer)
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        if !status.is_success() {
            bail!("GET {path}: {status} {body}");
        }
        Ok(body)
    }

    async fn device_status(&self, shipment: u64, device: u64) -> Result<Value> {
        let devices = self
            .get(&format!("/api/v1/shipments/{shipment}/devices"))
            .await?;
        devices
            .as_array()
            .and_then(|a| a.iter().find(|d| d["device_id"].as_u64() == Some(device)))
            .cloned()
            .context("device not in shipment")
    }

    async fn wait_device(
        &self,
        shipment: u64,
        device: u64,
        want: &str,
        timeout: Duration,
    ) -> Value {
        let found = eventually(timeout, || async {
            let d = self.device_status(shipment, device).await.ok()?;
            (d["status"] == want).then_some(d)
        })
        .await;
        match found {
            Some(d) => d,
            None => panic!(
                "device {device} never reached {want}: {:?}\nserver log:\n{}",
                self.device_status(shipment, device).await,
                self.server.log_text()
            ),
        }
    }

    async fn wait_shipment(&self, shipment: u64, want: &str, timeout: Duration) -> Value {
        let found = eventually(timeout, || async {
            let s = self
                .get(&format!("/api/v1/shipments/{shipment}"))
                .await
                .ok()?;
            (s["status"] == want).then_some(s)
        })
        .await;
        match found {
            Some(s) => s,
            None => panic!(
                "shipment {shipment} never became {want}: {:?}",
                self.get(&format!("/api/v1/shipments/{shipment}")).await
            ),
        }
    }
}

/// A simulated device: logs in, announces its firmware, writes a value.
async fn device_online(
    server: &Server,
    token: &str,
    template: &str,
    version: &str,
    build: &str,
) -> Result<RawDevice> {
    let mut dev = RawDevice::connect(server.hardware).await?;
    let status = dev.login(token).await?;
    if status != status::OK {
        bail!("login status {status}");
    }
    let id = dev
        .send(
            command::INTERNAL,
            &[
                b"mcu",
                version.as_bytes(),
                b"fw-type",
                template.as_bytes(),
                b"build",
                build.as_bytes(),
                b"h-beat",
                b"30",
                b"buff-in",
                b"1024",
                b"dev",
                b"sim",
            ],
        )
        .await?;
    dev.expect_response(id, status::OK).await;
    dev.send(command::HARDWARE, &[b"vw", b"1", b"21.5"]).await?;
    Ok(dev)
}

/// Wait for the `INTERNAL ota\0<url>` signal; other frames are skipped.
async fn ota_url(dev: &mut RawDevice, within: Duration) -> Result<String> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match dev.recv().await? {
            Some(Frame::Message {
                command: command::INTERNAL,
                body,
                ..
            }) => {
                let mut fields = body.split(|b| *b == 0);
                if fields.next() == Some(b"ota") {
                    let url = fields.next().context("ota url")?;
                    return Ok(String::from_utf8(url.to_vec())?);
                }
            }
            Some(_) => {}
            None => bail!("server closed the session"),
        }
    }
    bail!("no ota signal within {within:?}")
}

/// Download a URL fully, as the Blynk library does; returns (body, x-MD5).
async fn download(client: &reqwest::Client, url: &str) -> Result<(Vec<u8>, String)> {
    let resp = client.get(url).send().await?;
    if resp.status() != 200 {
        bail!("download: {} {}", resp.status(), resp.text().await?);
    }
    let md5 = resp
        .headers()
        .get("x-md5")
        .context("x-MD5 header")?
        .to_str()?
        .to_owned();
    let len: usize = resp
        .headers()
        .get("content-length")
        .context("Content-Length")?
        .to_str()?
        .parse()?;
    let body = resp.bytes().await?.to_vec();
    assert_eq!(body.len(), len, "Content-Length matches the body");
    Ok((body, md5))
}

#[tokio::test]
async fn staged_shipment_updates_fleet_resumes_downloads_and_times_out_a_silent_device() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), &["--ota-link-ttl-secs", "3"])
        .await
        .unwrap();
    let fleet = Fleet {
        bearer: server.admin_token().await.unwrap(),
        server: &server,
    };
    let template = fleet.template("Thermostat").await.unwrap();
    let devices = fleet.devices(&template, 4).await.unwrap();
    let image = firmware_image(&template, 96 * 1024);
    let image_md5 = md5_hex(&image);

    let (status, firmware) = fleet.upload(&template, &image, &image_md5).await.unwrap();
    assert_eq!(status, 201, "{firmware}");
    assert_eq!(firmware["version"], NEW_VERSION);
    assert_eq!(firmware["build"], NEW_BUILD);
    assert_eq!(firmware["md5"], image_md5.as_str());
    assert_eq!(firmware["size"], image.len());

    let mut online = Vec::new();
    for (_, token) in &devices {
        online.push(
            device_online(&server, token, &template, OLD_VERSION, OLD_BUILD)
                .await
                .unwrap(),
        );
    }
    let (status, shipment) = server
        .post_json(
            &fleet.bearer,
            "/api/v1/shipments",
            &json!({
                "firmware_id": firmware["id"], "target": {"template_id": template},
                "cohorts": [25, 100], "failure_threshold": 0.34,
                "device_timeout_secs": 8, "health_grace_secs": 10, "attempts_limit": 2
            }),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{shipment}");
    let shipment_id = shipment["id"].as_u64().unwrap();
    assert_eq!(shipment["progress"]["total"], 4);
    assert_eq!(shipment["progress"]["pending"], 4);

    // Cohort 1 (25%): the first device only.
    let (a_id, a_token) = devices[0].clone();
    let url = ota_url(&mut online[0], Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        url.starts_with(&format!("http://{}/ota/download/", server.http)),
        "{url}"
    );
    let (body, md5) = download(&server.client, &url).await.unwrap();
    assert_eq!(md5, image_md5);
    assert_eq!(md5_hex(&body), md5, "the library's MD5 check passes");
    drop(online.remove(0));
    let _a = device_online(&server, &a_token, &template, NEW_VERSION, NEW_BUILD)
        .await
        .unwrap();
    let a = fleet
        .wait_device(shipment_id, a_id, "success", Duration::from_secs(15))
        .await;
    assert_eq!(a["downloads"], 1);
    assert!(
        a["bytes_sent"].as_u64().unwrap() >= image.len() as u64,
        "{a}"
    );

    // Cohort 2 opens: B resumes with a Range request, C plain, D never returns.
    let mut urls = Vec::new();
    for dev in online.iter_mut() {
        urls.push(ota_url(dev, Duration::from_secs(15)).await.unwrap());
    }
    // B: read part of the body, drop the connection, resume with Range.
    let resp = server.client.get(&urls[0]).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut partial = Vec::new();
    let mut resp = resp;
    while partial.len() < 20_000 {
        match resp.chunk().await.unwrap() {
            Some(chunk) => partial.extend_from_slice(&chunk),
            None => break,
        }
    }
    drop(resp);
    let resumed = server
        .client
        .get(&urls[0])
        .header("range", format!("bytes={}-", partial.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 206);
    assert_eq!(
        resumed.headers()["content-range"].to_str().unwrap(),
        format!(
            "bytes {}-{}/{}",
            partial.len(),
            image.len() - 1,
            image.len()
        )
    );
    partial.extend_from_slice(&resumed.bytes().await.unwrap());
    assert_eq!(md5_hex(&partial), image_md5, "resumed download is whole");
    // C: plain download.
    let (body_c, _) = download(&server.client, &urls[1]).await.unwrap();
    assert_eq!(body_c, image);
    // D: drops off and never comes back.
    drop(online.remove(2));
    drop(online.remove(1));
    drop(online.remove(0));
    let (b_id, b_token) = devices[1].clone();
    let (c_id, c_token) = devices[2].clone();
    let (d_id, _) = devices[3].clone();
    let _b = device_online(&server, &b_token, &template, NEW_VERSION, NEW_BUILD)
        .await
        .unwrap();
    let _c = device_online(&server, &c_token, &template, NEW_VERSION, NEW_BUILD)
        .await
        .unwrap();
    let b = fleet
        .wait_device(shipment_id, b_id, "success", Duration::from_secs(15))
        .await;
    assert_eq!(b["downloads"], 2, "{b}");
    assert!(
        b["bytes_sent"].as_u64().unwrap() >= image.len() as u64,
        "{b}"
    );
    fleet
        .wait_device(shipment_id, c_id, "success", Duration::from_secs(15))
        .await;

    // D's link expires (TTL 3 s) before D's timeout (8 s).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, body) = server
        .get_text(&urls[2]["http://".len() + server.http.to_string().len()..])
        .await
        .unwrap();
    assert_eq!(status, 410, "{body}");
    assert!(body.contains("link_expired"), "{body}");

    let d = fleet
        .wait_device(shipment_id, d_id, "timed_out", Duration::from_secs(20))
        .await;
    assert!(d["reason"].as_str().unwrap().contains("within 8 s"), "{d}");
    // 1 of 3 failed ≤ 34%: the shipment completes.
    let done = fleet
        .wait_shipment(shipment_id, "completed", Duration::from_secs(10))
        .await;
    assert_eq!(done["progress"]["success"], 3, "{done}");
    assert_eq!(done["progress"]["timed_out"], 1, "{done}");
}

#[tokio::test]
async fn failing_canary_halts_the_shipment_and_bad_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let fleet = Fleet {
        bearer: server.admin_token().await.unwrap(),
        server: &server,
    };
    let template = fleet.template("Valve").await.unwrap();
    let other_template = fleet.template("Pump").await.unwrap();
    let devices = fleet.devices(&template, 3).await.unwrap();
    let image = firmware_image(&template, 8 * 1024);
    let image_md5 = md5_hex(&image);

    // Bad uploads.
    let (status, body) = fleet
        .upload(&template, &image, &"0".repeat(32))
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("checksum_mismatch")),
        "{body}"
    );
    let (status, body) = fleet
        .upload(&other_template, &image, &image_md5)
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("firmware_type_mismatch")),
        "{body}"
    );
    let untagged = vec![0x5Au8; 4096];
    let (status, body) = fleet
        .upload(&template, &untagged, &md5_hex(&untagged))
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("firmware_tag")),
        "{body}"
    );
    // Truncated: Content-Length promises more than arrives.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut raw = tokio::net::TcpStream::connect(server.http).await.unwrap();
        let head = format!(
            "POST /api/v1/firmware?template_id={template} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            fleet.bearer,
            image.len()
        );
        raw.write_all(head.as_bytes()).await.unwrap();
        raw.write_all(&image[..image.len() / 2]).await.unwrap();
        raw.shutdown().await.unwrap();
        let mut reply = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), raw.read_to_string(&mut reply)).await;
        assert!(
            reply.starts_with("HTTP/1.1 400"),
            "truncated upload answered {reply:?}"
        );
    }
    let (status, firmware) = fleet.upload(&template, &image, &image_md5).await.unwrap();
    assert_eq!(status, 201, "{firmware}");
    let firmware_id = firmware["id"].as_u64().unwrap();
    assert_eq!(
        fleet
            .get("/api/v1/firmware")
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Shipment refusals.
    let (status, body) = server
        .post_json(
            &fleet.bearer,
            "/api/v1/shipments",
            &json!({"firmware_id": firmware_id, "target": {"template_id": other_template}}),
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    let (status, body) = server
        .post_json(&fleet.bearer, "/api/v1/shipments", &json!({"firmware_id": firmware_id, "target": {"organization": true}, "cohorts": [50, 40]}))
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");

    let mut online = Vec::new();
    for (_, token) in &devices {
        online.push(
            device_online(&server, token, &template, OLD_VERSION, OLD_BUILD)
                .await
                .unwrap(),
        );
    }
    // Canary cohort = 2 devices (34% of 3, rounded up); no failure allowed.
    let (status, shipment) = server
        .post_json(
            &fleet.bearer,
            "/api/v1/shipments",
            &json!({
                "firmware_id": firmware_id, "target": {"organization": true}, "cohorts": [34, 100],
                "failure_threshold": 0.0, "device_timeout_secs": 3, "health_grace_secs": 0
            }),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{shipment}");
    let shipment_id = shipment["id"].as_u64().unwrap();

    // A device asks for firmware not shipped to it / with a bad token.
    let (c_id, c_token) = devices[2].clone();
    let (status, body) = server
        .get_text(&format!("/ota/firmware/{firmware_id}?token={c_token}"))
        .await
        .unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not_shipped"), "{body}");
    let (status, _) = server
        .get_text(&format!(
            "/ota/firmware/{firmware_id}?token={}",
            "f".repeat(32)
        ))
        .await
        .unwrap();
    assert_eq!(status, 401);
    let (status, _) = server
        .get_text(&format!("/ota/download/{}", "ab".repeat(24)))
        .await
        .unwrap();
    assert_eq!(status, 404);

    // Canary: the first device updates, the second never returns.
    let first_url = ota_url(&mut online[0], Duration::from_secs(10))
        .await
        .unwrap();
    ota_url(&mut online[1], Duration::from_secs(10))
        .await
        .unwrap();
    // The first device may also fetch through its own token while the shipment offers it.
    let (status, _) = server
        .get_text(&format!(
            "/ota/firmware/{firmware_id}?token={}",
            devices[0].1
        ))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (body, _) = download(&server.client, &first_url).await.unwrap();
    assert_eq!(body, image);
    drop(online.remove(0));
    drop(online.remove(0));
    let _first = device_online(&server, &devices[0].1, &template, NEW_VERSION, NEW_BUILD)
        .await
        .unwrap();

    let halted = fleet
        .wait_shipment(shipment_id, "halted", Duration::from_secs(20))
        .await;
    let reason = halted["status_reason"].as_str().unwrap();
    assert!(
        reason.contains("cohort 1 of 2: 1 of 2 devices failed"),
        "{reason}"
    );
    let c = fleet.device_status(shipment_id, c_id).await.unwrap();
    assert_eq!(
        c["status"], "pending",
        "the second cohort is never signalled: {c}"
    );
    assert_eq!(c["attempts"], 0);
    // Nothing is offered to the third device, which is still online.
    let quiet = ota_url(&mut online[0], Duration::from_secs(2)).await;
    assert!(
        quiet.is_err(),
        "halted shipment signalled a device: {quiet:?}"
    );
    let (status, body) = server
        .post_json(
            &fleet.bearer,
            &format!("/api/v1/shipments/{shipment_id}/resume"),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(status, 409, "{body}");

    let log = server.log_text();
    assert!(
        log.contains("firmware upload refused"),
        "refusals are logged"
    );
    assert!(log.contains("OTA shipment halted"), "the halt is logged");
}

#[tokio::test]
async fn firmware_is_stored_in_an_s3_bucket_and_served_from_it() {
    let bucket = "pinhouse-firmware";
    let s3 = S3Server::start(bucket).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_with_env(
        &data,
        &["--object-store", &format!("s3://{bucket}/prod")],
        &s3.env(),
    )
    .await
    .unwrap();
    let fleet = Fleet {
        bearer: server.admin_token().await.unwrap(),
        server: &server,
    };
    let template = fleet.template("Bucketed").await.unwrap();
    let devices = fleet.devices(&template, 2).await.unwrap();
    let image = firmware_image(&template, 40 * 1024);
    let image_md5 = md5_hex(&image);
    let (status, firmware) = fleet.upload(&template, &image, &image_md5).await.unwrap();
    assert_eq!(status, 201, "{firmware}");

    // The binary is an object in the bucket under the prefix, not a file in the data directory.
    let sha256 = firmware["sha256"].as_str().unwrap();
    let bucket_client = s3.client(bucket);
    let key = object_store::path::Path::from(format!("prod/firmware/{sha256}.bin"));
    let stored = object_store::ObjectStoreExt::get(&bucket_client, &key)
        .await
        .expect("the firmware object in the bucket")
        .bytes()
        .await
        .unwrap();
    assert_eq!(stored.as_ref(), image.as_slice());
    assert!(!data.join("firmware").exists(), "nothing on local disk");

    // A shipment to a tag reaches the tagged device only, which downloads the binary from the
    // bucket, whole and by range.
    let (device_id, token) = devices[0].clone();
    let tagged = server
        .client
        .put(server.url(&format!("/api/v1/devices/{device_id}/tags")))
        .bearer_auth(&fleet.bearer)
        .json(&json!(["canary"]))
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.status(), 200);
    let mut dev = device_online(&server, &token, &template, OLD_VERSION, OLD_BUILD)
        .await
        .unwrap();
    let (status, shipment) = server
        .post_json(
            &fleet.bearer,
            "/api/v1/shipments",
            &json!({"firmware_id": firmware["id"], "target": {"tag": "canary"}}),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{shipment}");
    assert_eq!(shipment["progress"]["total"], 1, "{shipment}");
    let url = ota_url(&mut dev, Duration::from_secs(10)).await.unwrap();
    let ranged = server
        .client
        .get(&url)
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), &image[1000..2000]);
    let (body, md5) = download(&server.client, &url).await.unwrap();
    assert_eq!(md5, image_md5);
    assert_eq!(body, image);
}
