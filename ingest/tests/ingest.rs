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

use arrow::array::AsArray;
use async_trait::async_trait;
use bytes::BytesMut;
use pinhouse_ingest::{
    DeviceActivity, DeviceDirectory, DeviceIdentity, DirectoryError, Ingest, IngestConfig,
    Transport,
};
use pinhouse_protocol::{Codec, Frame, command, encode_fields, encode_message, status};
use pinhouse_storage::{FsyncPolicy, Storage, StorageConfig, Value};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// The allocation count is global: tests of this binary run one at a time,
/// their runtimes' start-up and teardown included.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial(test: impl std::future::Future<Output = ()>) {
    let _guard = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(test);
}

/// Tokens over a map; keeps every reported activity, in order.
struct Directory(
    HashMap<String, DeviceIdentity>,
    parking_lot::Mutex<Vec<DeviceActivity>>,
);

impl Directory {
    fn new(devices: HashMap<String, DeviceIdentity>) -> Self {
        Self(devices, parking_lot::Mutex::default())
    }
}

#[async_trait]
impl DeviceDirectory for Directory {
    async fn lookup(&self, token: &str) -> Result<Option<DeviceIdentity>, DirectoryError> {
        Ok(self.0.get(token).cloned())
    }

    fn report(&self, activity: DeviceActivity) {
        self.1.lock().push(activity);
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

/// A storage engine (fsync off) in a temporary directory, and a directory
/// knowing one device of org 1 under [`TOKEN`].
fn fixture(device_id: u32) -> (tempfile::TempDir, Storage, Arc<Directory>) {
    let dir = tempfile::tempdir().unwrap();
    let mut storage_config = StorageConfig::new(dir.path());
    storage_config.fsync = FsyncPolicy::Never;
    let storage = Storage::open(storage_config).unwrap();
    let identity = DeviceIdentity {
        org_id: 1,
        device_id,
        template_id: None,
    };
    let directory = Arc::new(Directory::new(HashMap::from([(
        TOKEN.to_owned(),
        identity,
    )])));
    (dir, storage, directory)
}

/// [`fixture`] with a hub whose sessions have no message quota.
fn unlimited(device_id: u32) -> (tempfile::TempDir, Storage, Ingest) {
    let (dir, storage, directory) = fixture(device_id);
    let config = IngestConfig {
        message_rate: 0,
        ..IngestConfig::default()
    };
    let ingest = Ingest::new(storage.clone(), directory, config);
    (dir, storage, ingest)
}

/// A device session of `ingest` over an in-memory stream of `capacity` bytes each way: the
/// device's end and the session task.
fn start_session(
    ingest: &Ingest,
    capacity: usize,
) -> (
    DuplexStream,
    tokio::task::JoinHandle<pinhouse_ingest::session::CloseReason>,
) {
    let (device, server_end) = tokio::io::duplex(capacity);
    let session = ingest
        .serve_connection(server_end, "127.0.0.1:1".parse().unwrap(), Transport::Tcp)
        .expect("a connection slot");
    (device, tokio::spawn(session))
}

#[test]
fn steady_path_does_not_allocate_per_frame() {
    serial(async {
        let (_dir, storage, ingest) = unlimited(7);
        let (mut device, session) = start_session(&ingest, 1 << 20);
        login(&mut device, None).await;
        let mut inbuf = BytesMut::new();

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
        // Values without a timestamp get strictly increasing ones, even the many of one read
        // handled within a microsecond: no two values of the pin share a timestamp (storage
        // would otherwise scan its memtables to tell a new value from a re-sent one).
        let mut stamps = Vec::new();
        for batch in storage.snapshot().batches {
            let ts = batch
                .column(3)
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
            stamps.extend(ts.values().iter().copied());
        }
        let rows = stamps.len();
        stamps.sort_unstable();
        stamps.dedup();
        assert_eq!((rows, stamps.len()), (2 * usize::from(FRAMES), rows));
        // Per socket read (a few KiB, ~250 frames): the point vector, the WAL
        // body, the completion box, channel and builder growth — a bounded number
        // per read, far below one per frame. Measured over every thread: runs
        // land either near 500 or near 2,000 (0.1 per frame; the source of the
        // slower mode is not yet found), so the bound is one per 5 frames.
        assert!(
            allocations < usize::from(FRAMES) / 5,
            "{allocations} allocations for {FRAMES} frames"
        );
        drop(device);
        session.await.unwrap();
        storage.close().unwrap();
    });
}

/// Reads frames until a response with `msg_id` arrives; returns its status.
async fn status_of(stream: &mut DuplexStream, buf: &mut BytesMut, msg_id: u16) -> u16 {
    loop {
        let (id, status) = response(stream, buf).await;
        if id == msg_id {
            return status;
        }
    }
}

#[test]
fn device_activity_reaches_the_directory_in_order() {
    serial(async {
        let (_dir, storage, directory) = fixture(9);
        let ingest = Ingest::new(storage.clone(), directory.clone(), IngestConfig::default());
        let connect = || start_session(&ingest, 1 << 16);
        let (mut first, first_session) = connect();
        let (mut second, second_session) = connect();
        let (mut buf1, mut buf2) = (BytesMut::new(), BytesMut::new());
        let mut out = BytesMut::new();
        encode_message(command::HW_LOGIN, 1, TOKEN.as_bytes(), &mut out);
        first.write_all(&out).await.unwrap();
        assert_eq!(status_of(&mut first, &mut buf1, 1).await, status::OK);
        second.write_all(&out).await.unwrap();
        assert_eq!(status_of(&mut second, &mut buf2, 1).await, status::OK);

        out.clear();
        encode_fields(
            command::INTERNAL,
            2,
            &[b"ver", b"1.3.2", b"fw", b"2.0.1", b"h-beat", b"45"],
            &mut out,
        );
        encode_fields(
            command::PROPERTY,
            3,
            &[b"4", b"color", b"#D3435C"],
            &mut out,
        );
        encode_fields(
            command::PROPERTY,
            4,
            &[b"1", b"2", b"isDisabled", b"true"],
            &mut out,
        );
        encode_fields(command::EVENT_LOG, 5, &[b"overheat", b"92 C"], &mut out);
        encode_fields(command::EVENT_CLEAR, 6, &[b"overheat", b"all"], &mut out);
        encode_fields(command::PROPERTY, 7, &[b"4"], &mut out);
        encode_message(command::EVENT_LOG, 8, b"", &mut out);
        first.write_all(&out).await.unwrap();
        for (id, want) in [
            (2, status::OK),
            (3, status::OK),
            (4, status::OK),
            (5, status::OK),
            (6, status::OK),
            (7, status::ILLEGAL_COMMAND_BODY),
            (8, status::ILLEGAL_COMMAND_BODY),
        ] {
            assert_eq!(
                status_of(&mut first, &mut buf1, id).await,
                want,
                "message {id}"
            );
        }

        // The first connection closing leaves the device online: the second one
        // is still there. Offline comes when the last one closes.
        drop(first);
        first_session.await.unwrap();
        assert!(
            !directory
                .1
                .lock()
                .iter()
                .any(|a| matches!(a, DeviceActivity::Offline { .. }))
        );
        drop(second);
        second_session.await.unwrap();

        let seen = directory.1.lock().clone();
        let props = |pin: u8, name: &str, values: &[&str]| DeviceActivity::Property {
            device_id: 9,
            pin,
            name: name.to_owned(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        };
        let DeviceActivity::Info { device_id: 9, info } = &seen[2] else {
            panic!("expected the info after both logins, got {seen:?}");
        };
        assert_eq!(info.firmware.as_deref(), Some("2.0.1"));
        assert_eq!(info.heartbeat_secs, Some(45));
        assert_eq!(
            seen,
            vec![
                DeviceActivity::Online { device_id: 9 },
                DeviceActivity::Online { device_id: 9 },
                seen[2].clone(),
                props(4, "color", &["#D3435C"]),
                props(1, "isDisabled", &["true"]),
                props(2, "isDisabled", &["true"]),
                DeviceActivity::LogEvent {
                    device_id: 9,
                    code: "overheat".into(),
                    description: Some("92 C".into()),
                },
                DeviceActivity::ResolveEvent {
                    device_id: 9,
                    code: "overheat".into(),
                    all: true,
                },
                DeviceActivity::Offline { device_id: 9 },
            ]
        );
        drop(ingest);
        storage.close().unwrap();
    });
}

/// A device flooding past its message quota is not read until its quota refills: its writes
/// back up in the connection instead of being parsed only to be dropped, and once it stops
/// flooding it is served again on the same connection.
#[test]
fn a_flooding_device_is_not_read_until_its_quota_refills() {
    serial(async {
        let (_dir, storage, directory) = fixture(11);
        let config = IngestConfig {
            message_rate: 20,
            message_burst: 5,
            ..IngestConfig::default()
        };
        let ingest = Ingest::new(storage.clone(), directory, config);
        let (device, session) = start_session(&ingest, 1 << 16);
        let (mut rx, mut tx) = tokio::io::split(device);
        let mut login = BytesMut::new();
        encode_message(command::HW_LOGIN, 1, TOKEN.as_bytes(), &mut login);
        tx.write_all(&login).await.unwrap();
        // Answers (the login's, then a QUOTA now and then) are read all along.
        let (answers_tx, mut answers) = tokio::sync::mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            let mut buf = BytesMut::new();
            loop {
                while let Some(frame) = Codec::default().decode(&mut buf).unwrap() {
                    if let Frame::Response { msg_id, status } = frame {
                        let _ = answers_tx.send((msg_id, status));
                    }
                }
                if rx.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
            }
        });
        assert_eq!(answers.recv().await, Some((1, status::OK)));

        // One second of writes as fast as the connection takes them, 4 KiB of frames each (whole
        // writes: a write cut short would leave half a frame).
        let chunk = burst(300, 0);
        let mut written = 0usize;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_secs(1) {
            tx.write_all(&chunk).await.unwrap();
            written += chunk.len();
        }
        // Read without pause, the session would take megabytes a second; paused, it takes a
        // read of a few KiB per refilled token (20 a second) beside the 64 KiB in flight.
        assert!(
            written < 512 * 1024,
            "{written} bytes written in one second"
        );
        assert!(ingest.metrics().refusals(pinhouse_ingest::Refusal::quota) > 0);

        // Flood over: the backlog drains at the quota's pace, then a ping is answered OK.
        let mut ping = BytesMut::new();
        encode_message(command::PING, 60_000, b"", &mut ping);
        let answered = async {
            loop {
                tx.write_all(&ping).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                while let Ok((id, status)) = answers.try_recv() {
                    if id == 60_000 && status == status::OK {
                        return;
                    }
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), answered)
            .await
            .expect("the device is served again once its flood is over");
        tx.shutdown().await.unwrap();
        session.await.unwrap();
        reader.await.unwrap();
        drop(ingest);
        storage.close().unwrap();
    });
}

/// Most sessions of a large fleet are idle: logged in, sending a ping now and then. Their
/// memory bounds how many devices one server holds (the target is 2 KB of user-space RSS per
/// session, measured by `pinhouse-bench connections`). This counts the heap bytes that 500
/// logged-in sessions keep: the task and its future, the mailbox, the hub's entries — plus
/// this test's own in-memory streams and its directory's activity log.
#[test]
fn idle_sessions_keep_little_memory() {
    serial(async {
        const SESSIONS: u32 = 500;
        let dir = tempfile::tempdir().unwrap();
        let mut storage_config = StorageConfig::new(dir.path());
        storage_config.fsync = FsyncPolicy::Never;
        let storage = Storage::open(storage_config).unwrap();
        let token = |i: u32| format!("{i:032}");
        let tokens: HashMap<String, DeviceIdentity> = (0..SESSIONS)
            .map(|i| {
                let identity = DeviceIdentity {
                    org_id: 1,
                    device_id: i + 1,
                    template_id: None,
                };
                (token(i), identity)
            })
            .collect();
        let config = IngestConfig {
            login_rate_per_ip: 0,
            ..IngestConfig::default()
        };
        let ingest = Ingest::new(storage.clone(), Arc::new(Directory::new(tokens)), config);
        let pairs: Vec<_> = (0..SESSIONS).map(|_| tokio::io::duplex(256)).collect();
        let mut login = BytesMut::new();
        let mut inbuf = BytesMut::with_capacity(64);

        let region = Region::new(GLOBAL);
        let mut devices = Vec::new();
        let mut tasks = Vec::new();
        for (i, (mut device, server_end)) in pairs.into_iter().enumerate() {
            let session = ingest
                .serve_connection(server_end, "127.0.0.1:1".parse().unwrap(), Transport::Tcp)
                .expect("a connection slot");
            tasks.push(tokio::spawn(session));
            login.clear();
            encode_message(command::HW_LOGIN, 1, token(i as u32).as_bytes(), &mut login);
            device.write_all(&login).await.unwrap();
            assert_eq!(response(&mut device, &mut inbuf).await, (1, status::OK));
            let mut ping = BytesMut::new();
            encode_message(command::PING, 2, b"", &mut ping);
            device.write_all(&ping).await.unwrap();
            assert_eq!(response(&mut device, &mut inbuf).await, (2, status::OK));
            devices.push(device);
        }
        let stats = region.change();
        let kept = (stats.bytes_allocated - stats.bytes_deallocated) / SESSIONS as usize;
        eprintln!("heap kept per idle session: {kept} bytes");
        assert_eq!(ingest.online_devices(), SESSIONS as usize);
        // ~1,100 bytes in a debug build (the task with its ~650-byte future, the mailbox, the
        // hub's entries and this test's duplex pipes; an idle session holds no read buffer);
        // 1,750 while every session kept a timer, a shutdown receiver and a 256-byte read
        // buffer, 2,060 before the session future stopped holding its arguments twice.
        assert!(kept <= 1_300, "{kept} bytes of heap per idle session");

        drop(devices);
        for task in tasks {
            task.await.unwrap();
        }
        storage.close().unwrap();
    });
}

/// Logs in as [`TOKEN`], announcing `heartbeat` seconds when given.
async fn login(device: &mut DuplexStream, heartbeat: Option<&[u8]>) {
    let mut out = BytesMut::new();
    encode_message(command::HW_LOGIN, 1, TOKEN.as_bytes(), &mut out);
    if let Some(secs) = heartbeat {
        encode_fields(command::INTERNAL, 2, &[b"h-beat", secs], &mut out);
    }
    device.write_all(&out).await.unwrap();
    let mut inbuf = BytesMut::new();
    assert_eq!(status_of(device, &mut inbuf, 1).await, status::OK);
}

/// How `session` ended, waiting at most `secs` seconds for it.
async fn ends_within(
    session: tokio::task::JoinHandle<pinhouse_ingest::session::CloseReason>,
    secs: u64,
) -> pinhouse_ingest::session::CloseReason {
    tokio::time::timeout(std::time::Duration::from_secs(secs), session)
        .await
        .expect("the session ended in time")
        .unwrap()
}

/// Sessions wait on their mailbox alone: the hub's shared timer ends a connection that never
/// logs in and a logged-in one that falls silent, and `Ingest::stop` ends every session,
/// logged in or not. Each gets its own close reason, and its connection slot back.
#[test]
fn the_shared_timer_and_stop_end_sessions() {
    use pinhouse_ingest::session::CloseReason;
    serial(async {
        let (_dir, storage, directory) = fixture(12);
        let config = IngestConfig {
            login_timeout: std::time::Duration::from_millis(300),
            max_connections: 3,
            ..IngestConfig::default()
        };
        let ingest = Ingest::new(storage.clone(), directory, config);
        // Silent before its login: closed once the login timeout has passed, not before.
        let started = std::time::Instant::now();
        let (_silent, session) = start_session(&ingest, 1 << 12);
        assert_eq!(session.await.unwrap(), CloseReason::LoginTimeout);
        let waited = started.elapsed();
        assert!(
            (300..1_500).contains(&waited.as_millis()),
            "login timeout after {waited:?}"
        );

        // Logged in with a 1 s heartbeat, then silent: closed after its idle timeout
        // (heartbeat × 2.3, rounded up to 3 s), while a session that pings goes on.
        let (mut quiet, quiet_session) = start_session(&ingest, 1 << 12);
        login(&mut quiet, Some(b"1")).await;
        let (mut talking, talking_session) = start_session(&ingest, 1 << 12);
        login(&mut talking, None).await;
        let started = std::time::Instant::now();
        let mut ping = BytesMut::new();
        encode_message(command::PING, 7, b"", &mut ping);
        let mut inbuf = BytesMut::new();
        while !quiet_session.is_finished() {
            talking.write_all(&ping).await.unwrap();
            assert_eq!(status_of(&mut talking, &mut inbuf, 7).await, status::OK);
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            assert!(
                started.elapsed().as_secs() < 10,
                "the silent session is still open"
            );
        }
        assert_eq!(quiet_session.await.unwrap(), CloseReason::HeartbeatTimeout);
        let waited = started.elapsed();
        assert!(
            waited.as_millis() >= 2_900,
            "heartbeat timeout after {waited:?}"
        );

        // Stop: the logged-in session and one that has not logged in yet both end at once.
        let (_new, new_session) = start_session(&ingest, 1 << 12);
        let started = std::time::Instant::now();
        ingest.stop();
        assert_eq!(ends_within(talking_session, 2).await, CloseReason::Shutdown);
        assert_eq!(ends_within(new_session, 2).await, CloseReason::Shutdown);
        // At once, not after a timeout (the unauthenticated one would end by its 300 ms login
        // timeout too, but with another reason).
        assert!(
            started.elapsed().as_millis() < 1_000,
            "{:?}",
            started.elapsed()
        );
        // A connection served after the stop ends at once too; all three slots were given
        // back (`max_connections` is 3).
        let (_late, late_session) = start_session(&ingest, 1 << 12);
        assert_eq!(ends_within(late_session, 2).await, CloseReason::Shutdown);
        drop(ingest);
        storage.close().unwrap();
    });
}

/// An idle session reads into a small probe and holds no buffer. Frames larger than the
/// probe, frames split across writes and a sudden burst all arrive whole.
#[test]
fn an_idle_session_reads_frames_of_any_size() {
    serial(async {
        let (_dir, storage, ingest) = unlimited(13);
        let (mut device, session) = start_session(&ingest, 1 << 20);
        login(&mut device, None).await;
        let mut inbuf = BytesMut::new();
        let mut out = BytesMut::new();
        let stored = |pin: u16| storage.last_value(1, 13, pin).map(|v| v.value);
        let wait_for = |pin: u16, want: Value| {
            let storage = storage.clone();
            async move {
                for _ in 0..1_000 {
                    if storage.last_value(1, 13, pin).map(|v| v.value) == Some(want.clone()) {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                panic!("pin {pin} never got {want:?}");
            }
        };
        // Pings: small reads, the session turns idle.
        for id in 2..6u16 {
            out.clear();
            encode_message(command::PING, id, b"", &mut out);
            device.write_all(&out).await.unwrap();
            assert_eq!(response(&mut device, &mut inbuf).await, (id, status::OK));
        }
        // One value in a frame of ~60 bytes (more than the probe holds).
        out.clear();
        let long = "7".repeat(40);
        encode_fields(
            command::HARDWARE,
            6,
            &[b"vw", b"2", long.as_bytes()],
            &mut out,
        );
        assert!(out.len() > 32);
        device.write_all(&out).await.unwrap();
        wait_for(2, Value::Number(long.parse().unwrap())).await;
        // A frame split across two writes, the second after a pause.
        out.clear();
        encode_fields(command::HARDWARE, 7, &[b"vw", b"3", b"12.25"], &mut out);
        device.write_all(&out[..4]).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        device.write_all(&out[4..]).await.unwrap();
        wait_for(3, Value::Number(12.25)).await;
        // A burst of 5,000 values in one write, then a ping: every value is stored.
        let flood = burst(5_000, 100);
        device.write_all(&flood).await.unwrap();
        assert_eq!(status_of(&mut device, &mut inbuf, 1).await, status::OK);
        wait_for(1, Value::Number(f64::from(100 + 4_999) + 0.5)).await;
        assert_eq!(ingest.metrics().values_received(), 5_002);
        assert!(stored(2).is_some());
        drop(device);
        session.await.unwrap();
        storage.close().unwrap();
    });
}

/// The shared timer is a task of the runtime the first session runs on. A hub that outlives
/// that runtime starts it again in the next one: timeouts go on firing.
#[test]
fn the_shared_timer_follows_the_hub_into_a_new_runtime() {
    use pinhouse_ingest::session::CloseReason;
    let (_dir, storage, directory) = fixture(14);
    let config = IngestConfig {
        login_timeout: std::time::Duration::from_millis(200),
        ..IngestConfig::default()
    };
    let ingest = Ingest::new(storage.clone(), directory, config);
    for _ in 0..2 {
        serial(async {
            let (_silent, session) = start_session(&ingest, 1 << 12);
            assert_eq!(ends_within(session, 5).await, CloseReason::LoginTimeout);
        });
    }
    drop(ingest);
    storage.close().unwrap();
}

/// A device that stops reading cannot hold its session forever: while the session waits to
/// write to it, the heartbeat deadline still applies, and a stop still ends the session.
#[test]
fn a_device_that_does_not_read_times_out_and_stops() {
    use pinhouse_ingest::PinRef;
    use pinhouse_ingest::session::CloseReason;
    serial(async {
        let (_dir, storage, ingest) = unlimited(15);
        // Cloud writes to a device that never reads them: 64 bytes of pipe fill up at once.
        let flood = |ingest: &Ingest| {
            for i in 0..60 {
                let value = i.to_string();
                ingest.push_write(15, PinRef::virtual_pin(1), &[value.as_str(); 8]);
            }
        };
        let (mut device, session) = start_session(&ingest, 64);
        login(&mut device, Some(b"1")).await;
        let started = std::time::Instant::now();
        flood(&ingest);
        // Heartbeat 1 s: idle timeout 3 s after the last read.
        assert_eq!(
            ends_within(session, 10).await,
            CloseReason::HeartbeatTimeout
        );
        assert!(
            started.elapsed().as_millis() >= 2_500,
            "{:?}",
            started.elapsed()
        );

        let (mut device, session) = start_session(&ingest, 64);
        login(&mut device, None).await;
        flood(&ingest);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        ingest.stop();
        assert_eq!(ends_within(session, 2).await, CloseReason::Shutdown);
        drop(device);
        drop(ingest);
        storage.close().unwrap();
    });
}
