//! `GET /metrics`: Prometheus text format (ingest counters and storage stats).

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use pinhouse_storage::StorageStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::state::AppState;

/// Content type of the Prometheus text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `/metrics` route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut registry = Registry::with_prefix("pinhouse");
    state
        .ingest
        .metrics()
        .register(registry.sub_registry_with_prefix("ingest"));
    registry
        .sub_registry_with_prefix("storage")
        .register_collector(Box::new(StorageCollector(state.ingest.storage().stats())));
    registry.register_collector(Box::new(OnlineCollector(state.ingest.online_devices())));
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &registry) {
        Ok(()) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(err) => {
            tracing::error!(%err, "encoding metrics failed");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[derive(Debug)]
struct OnlineCollector(usize);

impl Collector for OnlineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauge = ConstGauge::new(i64::try_from(self.0).unwrap_or(i64::MAX));
        let metric = encoder.encode_descriptor(
            "devices_online",
            "Devices with at least one live session",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)
    }
}

#[derive(Debug)]
struct StorageCollector(StorageStats);

impl Collector for StorageCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let counters: [(&str, &str, u64); 14] = [
            (
                "wal_records",
                "WAL records (write batches) appended",
                s.wal_records,
            ),
            ("wal_groups", "WAL group commits", s.wal_groups),
            ("wal_fsyncs", "WAL fsyncs", s.wal_fsyncs),
            ("wal_bytes", "Bytes appended to the WAL", s.wal_bytes),
            ("write_errors", "Writes that failed", s.write_errors),
            ("flushes", "Memtables flushed to Parquet", s.flushes),
            ("flushed_rows", "Rows flushed to Parquet", s.flushed_rows),
            ("parquet_files", "Parquet files written", s.parquet_files),
            ("parquet_bytes", "Parquet bytes written", s.parquet_bytes),
            ("flush_errors", "Failed flush attempts", s.flush_errors),
            (
                "backpressure_waits",
                "Times the write path waited for the flusher (memtable budget reached)",
                s.backpressure_waits,
            ),
            (
                "duplicates_dropped",
                "Points not stored because an identical point was already stored",
                s.duplicates_dropped,
            ),
            (
                "rewrites",
                "Parquet file rewrites (compaction, retention, device deletion)",
                s.rewrites,
            ),
            (
                "rewritten_rows",
                "Rows read by Parquet file rewrites",
                s.rewritten_rows,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        let gauge = ConstGauge::new(s.wal_fsync_max_us as i64);
        let metric = encoder.encode_descriptor(
            "wal_fsync_max_microseconds",
            "The slowest WAL fsync since start, µs",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)?;
        Ok(())
    }
}
