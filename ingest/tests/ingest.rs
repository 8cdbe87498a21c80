//! Integration tests of the ingest tier: a real session over an in-memory
//! stream, with a real storage engine.
//!
//! The binary's global allocator counts allocations (every thread, storage's
//! committer included), to show that the steady path does not allocate per
//! frame: allocations grow with socket reads and storage batches, not with
//! frames.

use std::alloc::System;
use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;
use pinhouse_ingest::{
    DeviceDirectory, DeviceIdentity, DirectoryError, Ingest, IngestConfig, Transport,
};
use pinhouse_protocol::{Codec, Frame, command, encode_fields, encode_message, status};
use pinhouse_storage::{FsyncPolicy, Storage, StorageConfig, Value};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

struct Directory(HashMap<String, DeviceIdentity>);

#[async_trait]
impl DeviceDirectory for Directory {
    async fn lookup(&self, token: &str) -> Result<Option<DeviceIdentity>, DirectoryError> {
        Ok(self.0.get(token).cloned())
    }
}

async fn response(stream: &mut DuplexStream, buf: &mut BytesMut) -> (u16, u16) {
    loop {
        if let Some(frame) = Codec::default().decode(buf).unwrap() {
            match frame {
                Frame::Response { msg_id, status } => return (msg_id, status),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(stream.read_buf(buf).await.unwrap() > 0, "session closed");
    }
}

/// `count` `vw 1 <n>` frames and a ping (id 1), all in one buffer.
fn burst(count: u16, base: u16) -> BytesMut {
    let mut out = BytesMut::new();
    for i in 0..count {
        let value = format!("{}.5", base + i);
        encode_fields(
            command::HARDWARE,
            2 + i,
            &[b"vw", b"1", value.as_bytes()],
            &mut out,
        );
    }
    encode_message(command::PING, 1, b"", &mut out);
    out
}

#[tokio::test]
async fn steady_path_does_not_allocate_per_frame() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage_config = StorageConfig::new(dir.path());
    storage_config.fsync = FsyncPolicy::Never;
    let storage = Storage::open(storage_config).unwrap();
    let identity = DeviceIdentity {
        org_id: 1,
        device_id: 7,
        template_id: None,
    };
    let directory = Arc::new(Directory(HashMap::from([(TOKEN.to_owned(), identity)])));
    let config = IngestConfig {
        message_rate: 0,
        ..IngestConfig::default()
    };
    let ingest = Ingest::new(storage.clone(), directory, config);
    let (mut device, server_end) = tokio::io::duplex(1 << 20);
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let session = tokio::spawn(pinhouse_ingest::session::run(
        ingest.clone(),
        server_end,
        "127.0.0.1:1".parse().unwrap(),
        Transport::Tcp,
        stop_rx,
    ));

    let mut inbuf = BytesMut::new();
    let mut login = BytesMut::new();
    encode_message(command::HW_LOGIN, 1, TOKEN.as_bytes(), &mut login);
    device.write_all(&login).await.unwrap();
    assert_eq!(response(&mut device, &mut inbuf).await, (1, status::OK));

    const FRAMES: u16 = 20_000;
    let wait_stored = |last: u16| {
        let storage = storage.clone();
        async move {
            let want = Value::Number(f64::from(last) + 0.5);
            while storage.last_value(1, 7, 1).map(|v| v.value) != Some(want.clone()) {
                tokio::task::yield_now().await;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    };
    // Warm-up: buffers, the pin's slot, memtable builders reach their size.
    let warm = burst(FRAMES, 0);
    device.write_all(&warm).await.unwrap();
    assert_eq!(response(&mut device, &mut inbuf).await, (1, status::OK));
    wait_stored(FRAMES - 1).await;

    let steady = burst(FRAMES, 30_000);
    let region = Region::new(GLOBAL);
    device.write_all(&steady).await.unwrap();
    assert_eq!(response(&mut device, &mut inbuf).await, (1, status::OK));
    wait_stored(30_000 + FRAMES - 1).await;
    let allocations = region.change().allocations;

    assert_eq!(ingest.metrics().values_received(), 2 * u64::from(FRAMES));
    // Per socket read (a few KiB, ~300 frames): the point vector, the WAL
    // body, the completion box, channel and builder growth — a bounded number
    // per read, far below one per frame.
    assert!(
        allocations < usize::from(FRAMES) / 10,
        "{allocations} allocations for {FRAMES} frames"
    );
    drop(device);
    session.await.unwrap();
    storage.close().unwrap();
}
