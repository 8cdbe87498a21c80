//! Crash safety: torn and corrupt WAL tails, and real SIGKILLs of a writer process.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pinhouse_storage::{FsyncPolicy, Point, Storage};

use crate::common::*;

fn wal_segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Writes ten one-record batches, closes, and returns the points and the last segment.
fn ten_records(dir: &Path) -> (Vec<Vec<Point>>, PathBuf) {
    let s = open(dir);
    let batches: Vec<Vec<Point>> = (0..10).map(|k| batch(1, 10, k * 100)).collect();
    for b in &batches {
        s.write(b.clone()).unwrap();
    }
    s.close().unwrap();
    let last = wal_segments(dir).pop().unwrap();
    (batches, last)
}

fn check_first_nine(dir: &Path, batches: &[Vec<Point>]) -> Storage {
    let s = open(dir);
    let nine: Vec<Point> = batches[..9].concat();
    assert_eq!(all_rows(&s), expected(&nine));
    assert_eq!(
        s.recovery().torn_tails.len(),
        1,
        "{:?}",
        s.recovery().torn_tails
    );
    assert_eq!(s.recovery().wal_records, 9);
    s
}

#[test]
fn truncated_last_record_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let (batches, seg) = ten_records(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 7).unwrap();
    drop(f);
    let s = check_first_nine(dir.path(), &batches);
    let torn = &s.recovery().torn_tails[0];
    assert_eq!(torn.path, seg);
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        torn.offset,
        "tail truncated"
    );
    // The store keeps working and the next reopen is clean.
    s.write(batches[9].clone()).unwrap();
    s.close().unwrap();
    let s = open(dir.path());
    assert!(s.recovery().torn_tails.is_empty());
    assert_eq!(all_rows(&s), expected(&batches.concat()));
}

#[test]
fn flipped_byte_in_last_record_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let (batches, seg) = ten_records(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();
    let s = check_first_nine(dir.path(), &batches);
    assert!(s.recovery().torn_tails[0].reason.contains("checksum"));
}

#[test]
fn garbage_after_last_record_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let (batches, seg) = ten_records(dir.path());
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[0u8; 100]).unwrap();
    f.write_all(&[0xAB; 33]).unwrap();
    drop(f);
    let s = open(dir.path());
    assert_eq!(all_rows(&s), expected(&batches.concat()));
    assert_eq!(s.recovery().torn_tails.len(), 1);
}

#[test]
fn torn_segment_header_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (batches, seg) = ten_records(dir.path());
    let next = seg.with_file_name("00000000000000000999.wal");
    std::fs::write(&next, b"PHWAL").unwrap();
    let s = open(dir.path());
    assert_eq!(all_rows(&s), expected(&batches.concat()));
    assert_eq!(s.recovery().torn_tails.len(), 1);
    assert!(!next.exists());
}

#[test]
fn foreign_file_in_wal_dir_is_an_error_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (_batches, seg) = ten_records(dir.path());
    let next = seg.with_file_name("00000000000000000999.wal");
    std::fs::write(&next, [b'Z'; 64]).unwrap();
    let err = Storage::open(config(dir.path())).unwrap_err();
    assert!(
        matches!(err, pinhouse_storage::StorageError::Corrupt { .. }),
        "{err}"
    );
    assert!(next.exists());
}

// ---- SIGKILL ----

const CHILD_ENV: &str = "PINHOUSE_STORAGE_CRASH_CHILD";
const TEST_NAME: &str = "crash::sigkill_never_loses_or_duplicates_acknowledged_writes";
const WRITERS: u32 = 2;
const BATCH: i64 = 25;
/// Cycles in the normal suite; `PINHOUSE_STORAGE_CRASH_CYCLES` raises it (release checks).
const DEFAULT_CYCLES: u32 = 20;

/// A small deterministic generator (the seed is printed, and can be set with
/// `PINHOUSE_STORAGE_CRASH_SEED`, to replay a failing run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Child mode: write forever from two threads, print `ACK <device> <first_ts> <last_ts>` for every
/// acknowledged batch, flush in the background, until killed.
fn child_main(dir: &str) {
    let cycle: u32 = std::env::var("PINHOUSE_CRASH_CYCLE")
        .unwrap()
        .parse()
        .unwrap();
    let mut c = config(Path::new(dir));
    c.fsync = if cycle.is_multiple_of(2) {
        FsyncPolicy::Always
    } else {
        FsyncPolicy::Interval(Duration::from_millis(3))
    };
    c.memtable_max_rows = 400;
    c.wal_segment_bytes = 8 * 1024;
    let s = Storage::open(c).unwrap();
    let stop = Instant::now() + Duration::from_secs(30); // never outlive a dead parent for long
    let flusher = {
        let s = s.clone();
        std::thread::spawn(move || {
            while Instant::now() < stop {
                let _ = s.flush();
                std::thread::sleep(Duration::from_millis(15));
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let s = s.clone();
            std::thread::spawn(move || {
                let device = cycle * 10 + w;
                let mut ts = 0i64;
                while Instant::now() < stop {
                    let pts: Vec<Point> = (0..BATCH)
                        .map(|i| Point::number(1, device, (i % 4) as u16, ts + i, (ts + i) as f64))
                        .collect();
                    s.write(pts).unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {device} {ts} {}", ts + BATCH - 1).unwrap();
                    out.flush().unwrap();
                    ts += BATCH;
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    flusher.join().unwrap();
}

#[test]
fn sigkill_never_loses_or_duplicates_acknowledged_writes() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child_main(&dir);
        return;
    }
    let cycles: u32 = std::env::var("PINHOUSE_STORAGE_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CYCLES);
    let seed: u64 = std::env::var("PINHOUSE_STORAGE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test: {cycles} cycles, PINHOUSE_STORAGE_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut acked: BTreeSet<(u32, i64)> = BTreeSet::new();
    for cycle in 0..cycles {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env("PINHOUSE_CRASH_CYCLE", cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let parts: Vec<&str> = line.split_whitespace().collect();
                if parts.len() == 4 && parts[0] == "ACK" {
                    let dev: u32 = parts[1].parse().unwrap();
                    let (a, b): (i64, i64) = (parts[2].parse().unwrap(), parts[3].parse().unwrap());
                    if tx.send((dev, a, b)).is_err() {
                        break;
                    }
                }
            }
        });
        // Let it get going, then kill it at a random moment.
        let want = 20 + rng.below(80) as usize;
        let mut got = 0;
        let deadline = Instant::now() + Duration::from_secs(20);
        while got < want && Instant::now() < deadline {
            if let Ok((dev, a, b)) = rx.recv_timeout(Duration::from_millis(100)) {
                acked.extend((a..=b).map(|ts| (dev, ts)));
                got += 1;
            }
        }
        assert!(got >= want, "child made no progress (cycle {cycle})");
        std::thread::sleep(Duration::from_micros(rng.below(25_000)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        while let Ok((dev, a, b)) = rx.try_recv() {
            acked.extend((a..=b).map(|ts| (dev, ts)));
        }

        let s = open(dir.path());
        let r = s.recovery();
        eprintln!(
            "cycle {cycle}: acked {} rows so far; replayed {} records, skipped {}, torn {}, orphans {}, files {}",
            acked.len(),
            r.wal_records,
            r.wal_records_skipped,
            r.torn_tails.len(),
            r.orphan_files_removed,
            r.parquet_files
        );
        let rows = all_rows(&s);
        let counts = counts(&rows);
        let dup: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).take(5).collect();
        assert!(dup.is_empty(), "cycle {cycle}: duplicated rows {dup:?}");
        let present: BTreeSet<(u32, i64)> = counts.keys().map(|k| (k.1, k.3)).collect();
        let missing: Vec<_> = acked.difference(&present).take(5).collect();
        assert!(
            missing.is_empty(),
            "cycle {cycle}: acknowledged rows lost {missing:?} (recovery {:?})",
            s.recovery()
        );
        // Nothing invented: every row is one a writer of an earlier or this cycle did send
        // (acknowledged, or the one batch each writer had in flight), with its exact value.
        let mut newest_acked: std::collections::BTreeMap<u32, i64> = Default::default();
        for &(dev, ts) in &acked {
            let e = newest_acked.entry(dev).or_insert(ts);
            *e = (*e).max(ts);
        }
        for r in &rows {
            assert_eq!(r.0, 1, "org");
            assert!(r.1 / 10 <= cycle && r.1 % 10 < WRITERS, "device {}", r.1);
            let limit = newest_acked.get(&r.1).copied().unwrap_or(-1) + BATCH;
            assert!(r.3 >= 0 && r.3 <= limit, "row {r:?} was never written");
            assert_eq!(r.2 as i64, (r.3 % BATCH) % 4, "pin of {r:?}");
            assert_eq!(r.4, Some((r.3 as f64).to_bits()), "value intact");
        }
        s.close().unwrap();
    }
    assert!(acked.len() > 25 * cycles as usize);
}
