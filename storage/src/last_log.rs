//! The durable last values: the newest value of every series as of the catalog's flushed WAL
//! position, kept in `<data_dir>/last_values/` apart from `catalog.json`, so that a commit costs
//! what it changes and not what the fleet holds.
//!
//! A **log file** (`<generation>.lv`) opens with a full copy of the last values, written when
//! the generation starts, followed by one appended record per commit that changes them (the
//! newest value of each series a flush wrote, or the devices a deletion forgot). Replay keeps
//! the newest value of each series, so a flush of late, older data changes nothing. The state
//! is not held in memory between commits: a new generation reads it back from the old file. The catalog names
//! the generation and how many bytes of its file are committed; bytes past that length are an
//! append whose catalog commit never happened, and are ignored and cut off. When the appended
//! records outgrow the full copy, the next commit starts a new generation, so the file stays
//! within about twice the size of the state and each change is written at most about twice.
//!
//! Before this, `catalog.json` carried every last value as JSON and was rewritten whole at every
//! commit: with a million devices of four pins a flush cost seconds of the flush thread, and
//! ingest fell to 0.29 M values/s (BENCHMARKS.md, "Last values out of the catalog").
//!
//! The byte format is in `docs/storage.md` ("Last values").

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};
use crate::fsutil;
use crate::last_value::LastValue;
use crate::parquet_writer::SeriesKey;
use crate::point::Value;

/// Folder of the last-value log files inside the data directory.
pub(crate) const LAST_DIR: &str = "last_values";
/// First bytes of every log file.
const MAGIC: &[u8; 8] = b"PHLAST\r\n";
/// File format version (bytes 8..12).
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 12;
/// Largest record body accepted when reading (a full copy is split into records of
/// [`ENTRIES_PER_RECORD`] entries, so only absurdly long texts come near it).
const MAX_RECORD: usize = 1 << 30;
/// Entries per record of a full copy.
const ENTRIES_PER_RECORD: usize = 1 << 16;
/// A log is not rewritten before it reaches this size, whatever the state's size.
const MIN_REWRITE_BYTES: u64 = 4 << 20;

const KIND_SET: u8 = 1;
const KIND_FORGET: u8 = 2;
const TAG_NUMBER: u8 = 0;
const TAG_TEXT: u8 = 1;

/// Last values by series (foldhash: a new generation loads millions of them).
pub(crate) type LastValues = HashMap<SeriesKey, LastValue, foldhash::fast::RandomState>;

/// The committed part of the last-value log, as named by the catalog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LogRef {
    /// Generation of the log file; 0: no file (no last values).
    pub generation: u64,
    /// Committed bytes of the file, header included.
    pub length: u64,
    /// Bytes of the file's leading full copy, header included.
    pub base: u64,
}

/// A change to the last values, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// These series now have these values.
    Set(Vec<(SeriesKey, LastValue)>),
    /// Every series of these `(org, device)` is gone.
    Forget(Vec<(u32, u32)>),
}

/// The file name of generation `generation`.
pub(crate) fn file_name(generation: u64) -> String {
    format!("{generation:020}.lv")
}

/// The generation of a log file name, if it is one.
pub(crate) fn generation_of(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".lv")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// What a write left to finish once the catalog naming it is committed (or not).
#[derive(Debug)]
pub(crate) struct Written {
    /// The catalog's new reference.
    pub log: LogRef,
    /// Bytes written at `offset` of the generation's file: the whole file when a generation
    /// started, else the appended record (for the bucket).
    pub offset: u64,
    pub bytes: Vec<u8>,
    /// The generation this one replaces, when one started.
    replaced: Option<u64>,
}

impl Written {
    /// The generation this write replaced, when it started one.
    pub(crate) fn replaced(&self) -> Option<u64> {
        self.replaced
    }
}

/// The writer of the last-value log (owned by the catalog).
#[derive(Debug)]
pub(crate) struct LastLog {
    dir: PathBuf,
    committed: LogRef,
    /// The current generation's file, open for appends.
    file: Option<File>,
    /// A log is not rewritten before it reaches this size ([`MIN_REWRITE_BYTES`]).
    min_rewrite: u64,
    /// The next write starts a generation (no file yet, an old catalog migrated, or the bucket
    /// missed an append).
    force_rewrite: bool,
}

impl LastLog {
    /// The log of `data_dir` as committed at `log`; loads its last values into `into`.
    pub(crate) fn open(data_dir: &Path, log: LogRef, into: &mut LastValues) -> Result<LastLog> {
        let dir = data_dir.join(LAST_DIR);
        if log.generation != 0 {
            let path = dir.join(file_name(log.generation));
            let bytes = std::fs::read(&path).map_err(StorageError::io_path(&path))?;
            replay(&bytes, log.length, &path, into)?;
        }
        Ok(LastLog {
            dir,
            committed: log,
            file: None,
            min_rewrite: MIN_REWRITE_BYTES,
            force_rewrite: log.generation == 0,
        })
    }

    /// The committed reference.
    pub(crate) fn committed(&self) -> LogRef {
        self.committed
    }

    /// Makes the next write start a new generation.
    pub(crate) fn force_rewrite(&mut self) {
        self.force_rewrite = true;
    }

    /// Durably records `change` (not yet committed). Returns `None` when there is nothing to
    /// record. The catalog must then commit [`Written::log`] and call [`LastLog::finish`] with
    /// the outcome.
    pub(crate) fn write(&mut self, change: &Change) -> Result<Option<Written>> {
        let empty = match change {
            Change::Set(v) => v.is_empty(),
            Change::Forget(v) => v.is_empty(),
        };
        if empty && !self.force_rewrite {
            return Ok(None);
        }
        let mut record = Vec::new();
        if !empty {
            encode_change(change, &mut record)?;
        }
        let grown = self.committed.length + record.len() as u64;
        if self.force_rewrite || grown > (2 * self.committed.base).max(self.min_rewrite) {
            // The state is read back from the log, not kept in memory between commits.
            let mut state = self.read_committed()?;
            apply_change(&mut state, change);
            return self.start_generation(&state).map(Some);
        }
        let path = self.dir.join(file_name(self.committed.generation));
        if self.file.is_none() {
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(StorageError::io_path(&path))?;
            self.file = Some(f);
        }
        let offset = self.committed.length;
        let result = (|| -> std::io::Result<()> {
            let f = self.file.as_mut().expect("opened above");
            // An append whose commit failed may have left bytes past the committed length.
            f.set_len(offset)?;
            f.seek(SeekFrom::Start(offset))?;
            f.write_all(&record)?;
            f.sync_data()
        })();
        if let Err(e) = result {
            self.file = None;
            return Err(StorageError::IoPath { path, source: e });
        }
        Ok(Some(Written {
            log: LogRef {
                length: grown,
                ..self.committed
            },
            offset,
            bytes: record,
            replaced: None,
        }))
    }

    /// Starts a generation holding `state` (migrating a catalog that held the last values
    /// inline); commit and finish as for [`LastLog::write`].
    pub(crate) fn write_full(&mut self, state: &LastValues) -> Result<Written> {
        self.start_generation(state)
    }

    /// The last values as committed, read from the file.
    fn read_committed(&self) -> Result<LastValues> {
        let mut state = LastValues::default();
        if let Some(bytes) = self.committed_bytes()? {
            let path = self.dir.join(file_name(self.committed.generation));
            replay(&bytes, self.committed.length, &path, &mut state)?;
        }
        Ok(state)
    }

    /// Writes `state` as the full copy of a new generation (crash-safely; not yet committed).
    fn start_generation(&mut self, state: &LastValues) -> Result<Written> {
        let generation = self.committed.generation + 1;
        let mut bytes = Vec::with_capacity(HEADER_LEN as usize + state.len() * 32);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        let mut entries: Vec<(SeriesKey, &LastValue)> =
            state.iter().map(|(k, v)| (*k, v)).collect();
        entries.sort_unstable_by_key(|(k, _)| *k);
        let mut body = Vec::new();
        for chunk in entries.chunks(ENTRIES_PER_RECORD) {
            body.clear();
            encode_set(chunk.iter().map(|(k, v)| (*k, *v)), chunk.len(), &mut body)?;
            frame(&body, &mut bytes)?;
        }
        fsutil::create_dir_all_synced(&self.dir)?;
        fsutil::write_atomic(&self.dir.join(file_name(generation)), &bytes)?;
        Ok(Written {
            log: LogRef {
                generation,
                length: bytes.len() as u64,
                base: bytes.len() as u64,
            },
            offset: 0,
            bytes,
            replaced: (self.committed.generation != 0).then_some(self.committed.generation),
        })
    }

    /// Called after the catalog commit that names `written.log` succeeded (`committed`) or
    /// failed. On success a replaced generation's file is deleted; on failure a new
    /// generation's file is, and an append is cut off by the next write.
    pub(crate) fn finish(&mut self, written: &Written, committed: bool) {
        let started = written.offset == 0;
        if committed {
            self.committed = written.log;
            if started {
                self.file = None;
                self.force_rewrite = false;
                if let Some(old) = written.replaced {
                    let path = self.dir.join(file_name(old));
                    if let Err(e) = std::fs::remove_file(&path) {
                        tracing::warn!(path = %path.display(), error = %e, "could not delete a replaced last-value log; removed on the next open");
                    }
                }
            }
        } else if started {
            let _ = std::fs::remove_file(self.dir.join(file_name(written.log.generation)));
        }
    }

    /// Removes log files other than the committed generation's (left by a crash between a
    /// write and its commit, or before a replaced file was deleted). Returns how many.
    pub(crate) fn remove_orphans(&self) -> Result<usize> {
        if !self.dir.is_dir() {
            return Ok(0);
        }
        let keep = file_name(self.committed.generation);
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir).map_err(StorageError::io_path(&self.dir))? {
            let path = entry.map_err(StorageError::io_path(&self.dir))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name != keep && (generation_of(name).is_some() || name.ends_with(".lv.tmp")) {
                std::fs::remove_file(&path).map_err(StorageError::io_path(&path))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The committed bytes of the current generation's file (for the bucket).
    pub(crate) fn committed_bytes(&self) -> Result<Option<Vec<u8>>> {
        if self.committed.generation == 0 {
            return Ok(None);
        }
        let path = self.dir.join(file_name(self.committed.generation));
        let mut bytes = std::fs::read(&path).map_err(StorageError::io_path(&path))?;
        let len = usize::try_from(self.committed.length).unwrap_or(usize::MAX);
        if bytes.len() < len {
            return Err(StorageError::corrupt(
                &path,
                "shorter than its catalog says",
            ));
        }
        bytes.truncate(len);
        Ok(Some(bytes))
    }
}

/// Folds one value into `state`: it replaces the stored one unless that is newer (so among
/// equal timestamps the later commit wins, as in the cache).
fn merge(state: &mut LastValues, key: SeriesKey, lv: LastValue) {
    match state.get_mut(&key) {
        Some(cur) if cur.ts_us > lv.ts_us => {}
        Some(cur) => *cur = lv,
        None => {
            state.insert(key, lv);
        }
    }
}

/// Applies `change` to `state` as replaying its record does.
fn apply_change(state: &mut LastValues, change: &Change) {
    match change {
        Change::Set(entries) => {
            for (key, lv) in entries {
                merge(state, *key, lv.clone());
            }
        }
        Change::Forget(devices) => forget(state, devices.clone()),
    }
}

fn forget(state: &mut LastValues, mut devices: Vec<(u32, u32)>) {
    if devices.is_empty() {
        return;
    }
    devices.sort_unstable();
    state.retain(|k, _| devices.binary_search(&(k.0, k.1)).is_err());
}

/// Appends `body` framed as a record: length, CRC-32C of the body, body.
fn frame(body: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&l| l as usize <= MAX_RECORD)
        .ok_or_else(|| {
            StorageError::InvalidInput(format!("a last-value record of {} bytes", body.len()))
        })?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    out.extend_from_slice(body);
    Ok(())
}

fn encode_change(change: &Change, out: &mut Vec<u8>) -> Result<()> {
    let mut body = Vec::new();
    match change {
        Change::Set(entries) => encode_set(
            entries.iter().map(|(k, v)| (*k, v)),
            entries.len(),
            &mut body,
        )?,
        Change::Forget(devices) => {
            body.push(KIND_FORGET);
            body.extend_from_slice(&count(devices.len())?.to_le_bytes());
            for (org, dev) in devices {
                body.extend_from_slice(&org.to_le_bytes());
                body.extend_from_slice(&dev.to_le_bytes());
            }
        }
    }
    frame(&body, out)
}

fn count(n: usize) -> Result<u32> {
    u32::try_from(n)
        .map_err(|_| StorageError::InvalidInput(format!("{n} last values in one record")))
}

fn encode_set<'a>(
    entries: impl Iterator<Item = (SeriesKey, &'a LastValue)>,
    n: usize,
    body: &mut Vec<u8>,
) -> Result<()> {
    body.push(KIND_SET);
    body.extend_from_slice(&count(n)?.to_le_bytes());
    for ((org, dev, pin), lv) in entries {
        body.extend_from_slice(&org.to_le_bytes());
        body.extend_from_slice(&dev.to_le_bytes());
        body.extend_from_slice(&pin.to_le_bytes());
        body.extend_from_slice(&lv.ts_us.to_le_bytes());
        match &lv.value {
            Value::Number(x) => {
                body.push(TAG_NUMBER);
                body.extend_from_slice(&x.to_bits().to_le_bytes());
            }
            Value::Text(t) => {
                body.push(TAG_TEXT);
                body.extend_from_slice(&count(t.len())?.to_le_bytes());
                body.extend_from_slice(t.as_bytes());
            }
        }
    }
    Ok(())
}

/// Applies the records of `bytes` (a log file) up to `length` to `into`. Any damage inside the
/// committed length is an error: it was fsynced before its commit.
pub(crate) fn replay(bytes: &[u8], length: u64, path: &Path, into: &mut LastValues) -> Result<()> {
    let corrupt =
        |at: usize, why: &str| StorageError::corrupt(path, format!("at byte {at}: {why}"));
    let length = usize::try_from(length).unwrap_or(usize::MAX);
    if bytes.len() < length {
        return Err(StorageError::corrupt(
            path,
            format!("{} bytes, the catalog commits {length}", bytes.len()),
        ));
    }
    if length < HEADER_LEN as usize || &bytes[..8] != MAGIC {
        return Err(corrupt(0, "not a pinhouse last-value log"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(StorageError::UnsupportedVersion {
            path: path.to_owned(),
            version,
        });
    }
    // About 27 bytes per entry in the leading copy.
    into.reserve(length / 32);
    let mut at = HEADER_LEN as usize;
    while at < length {
        if length - at < 8 {
            return Err(corrupt(at, "truncated record header"));
        }
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let start = at + 8;
        if len > MAX_RECORD || length - start < len {
            return Err(corrupt(at, "record runs past the committed length"));
        }
        let body = &bytes[start..start + len];
        if crc32c::crc32c(body) != crc {
            return Err(corrupt(at, "record checksum mismatch"));
        }
        apply_record(body, into).map_err(|why| corrupt(at, &why))?;
        at = start + len;
    }
    Ok(())
}

/// Applies one record body.
fn apply_record(body: &[u8], into: &mut LastValues) -> std::result::Result<(), String> {
    let mut r = Reader { bytes: body, at: 0 };
    let kind = r.u8()?;
    let n = r.u32()? as usize;
    match kind {
        KIND_SET => {
            for _ in 0..n {
                let key = (r.u32()?, r.u32()?, r.u16()?);
                let ts_us = r.u64()? as i64;
                let value = match r.u8()? {
                    TAG_NUMBER => Value::Number(f64::from_bits(r.u64()?)),
                    TAG_TEXT => {
                        let len = r.u32()? as usize;
                        let text = std::str::from_utf8(r.take(len)?)
                            .map_err(|_| "text is not UTF-8".to_owned())?;
                        Value::Text(text.to_owned())
                    }
                    tag => return Err(format!("unknown value tag {tag}")),
                };
                merge(into, key, LastValue { ts_us, value });
            }
        }
        KIND_FORGET => {
            let mut devices = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                devices.push((r.u32()?, r.u32()?));
            }
            forget(into, devices);
        }
        kind => return Err(format!("unknown record kind {kind}")),
    }
    if r.at != body.len() {
        return Err("trailing bytes in a record".into());
    }
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| "record ends early".to_owned())?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> std::result::Result<u16, String> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(ts_us: i64, x: f64) -> LastValue {
        LastValue {
            ts_us,
            value: Value::Number(x),
        }
    }

    fn text(ts_us: i64, t: &str) -> LastValue {
        LastValue {
            ts_us,
            value: Value::Text(t.into()),
        }
    }

    /// Writes and commits `change`, applying it to the model `state` as well.
    fn commit(log: &mut LastLog, state: &mut LastValues, change: Change) -> LogRef {
        apply_change(state, &change);
        if let Some(w) = log.write(&change).unwrap() {
            log.finish(&w, true);
        }
        log.committed()
    }

    fn reopen(dir: &Path, at: LogRef) -> LastValues {
        let mut m = LastValues::default();
        LastLog::open(dir, at, &mut m).unwrap();
        m
    }

    #[test]
    fn values_texts_and_forgets_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = LastValues::default();
        let mut log = LastLog::open(dir.path(), LogRef::default(), &mut state).unwrap();
        let first = commit(
            &mut log,
            &mut state,
            Change::Set(vec![((1, 2, 3), num(10, 0.1)), ((1, 2, 4), text(11, "on"))]),
        );
        assert_eq!(first.generation, 1, "the first write starts a generation");
        let second = commit(
            &mut log,
            &mut state,
            Change::Set(vec![
                ((1, 2, 3), num(12, f64::NAN)),
                ((1, 7, 0), text(5, "")),
                ((2, 9, 1), num(1, -0.0)),
            ]),
        );
        assert_eq!(second.generation, 1, "then records are appended");
        assert!(second.length > first.length);
        let third = commit(&mut log, &mut state, Change::Forget(vec![(1, 7), (3, 3)]));
        let back = reopen(dir.path(), third);
        assert_eq!(back.len(), 3);
        assert_eq!(back[&(1, 2, 4)], text(11, "on"));
        assert!(matches!(back[&(1, 2, 3)].value, Value::Number(x) if x.is_nan()));
        assert_eq!(back[&(2, 9, 1)].value, Value::Number(-0.0));
        assert!(!back.contains_key(&(1, 7, 0)));
        // An older reference reads the state as of its commit.
        assert_eq!(reopen(dir.path(), first).len(), 2);
        // An older value changes nothing.
        let fourth = commit(
            &mut log,
            &mut state,
            Change::Set(vec![((1, 2, 4), text(3, "late"))]),
        );
        assert_eq!(reopen(dir.path(), fourth)[&(1, 2, 4)], text(11, "on"));
        // A write that changes nothing writes nothing.
        assert!(log.write(&Change::Set(vec![])).unwrap().is_none());
    }

    /// An append whose catalog commit failed is not part of the state and is cut off by the
    /// next append; a started generation whose commit failed is deleted.
    #[test]
    fn uncommitted_writes_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = LastValues::default();
        let mut log = LastLog::open(dir.path(), LogRef::default(), &mut state).unwrap();
        let at = commit(
            &mut log,
            &mut state,
            Change::Set(vec![((1, 1, 1), num(1, 1.0))]),
        );
        let failed = log
            .write(&Change::Set(vec![((1, 1, 2), num(2, 2.0))]))
            .unwrap()
            .unwrap();
        log.finish(&failed, false);
        assert_eq!(log.committed(), at);
        assert_eq!(reopen(dir.path(), at).len(), 1);
        let next = commit(
            &mut log,
            &mut state,
            Change::Set(vec![((1, 1, 3), num(3, 3.0))]),
        );
        let path = dir.path().join(LAST_DIR).join(file_name(1));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), next.length);
        let back = reopen(dir.path(), next);
        assert!(back.contains_key(&(1, 1, 3)) && !back.contains_key(&(1, 1, 2)));

        log.force_rewrite();
        let started = log.write(&Change::Set(vec![])).unwrap().unwrap();
        assert_eq!(started.log.generation, 2);
        log.finish(&started, false);
        assert!(!dir.path().join(LAST_DIR).join(file_name(2)).exists());
        assert_eq!(log.committed(), next);
    }

    /// Appends grow the file to about twice its full copy; then a new generation holds the
    /// state alone and the old file goes.
    #[test]
    fn a_log_that_outgrows_its_copy_starts_a_generation() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = LastValues::default();
        let mut log = LastLog::open(dir.path(), LogRef::default(), &mut state).unwrap();
        log.min_rewrite = 0;
        let all: Vec<_> = (0..100u32).map(|d| ((1, d, 0), num(0, 0.0))).collect();
        let first = commit(&mut log, &mut state, Change::Set(all));
        let mut at = first;
        let mut ts = 0;
        while at.generation == 1 {
            ts += 1;
            let some: Vec<_> = (0..30u32)
                .map(|d| ((1, d, 0), num(ts, ts as f64)))
                .collect();
            at = commit(&mut log, &mut state, Change::Set(some));
            assert!(at.length <= 2 * first.base + 1024, "{at:?}");
        }
        assert_eq!(at.generation, 2);
        assert_eq!(at.length, at.base);
        assert!(!dir.path().join(LAST_DIR).join(file_name(1)).exists());
        assert_eq!(reopen(dir.path(), at), state);
    }

    #[test]
    fn damage_inside_the_committed_length_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = LastValues::default();
        let mut log = LastLog::open(dir.path(), LogRef::default(), &mut state).unwrap();
        let at = commit(
            &mut log,
            &mut state,
            Change::Set(vec![((1, 1, 1), num(1, 1.0))]),
        );
        let path = dir.path().join(LAST_DIR).join(file_name(1));
        let good = std::fs::read(&path).unwrap();
        // Bytes past the committed length (a torn append) are ignored.
        let mut longer = good.clone();
        longer.extend_from_slice(&[0xff; 7]);
        std::fs::write(&path, &longer).unwrap();
        assert_eq!(reopen(dir.path(), at).len(), 1);
        // A flipped bit, a short file, a foreign file: errors, never a silently smaller state.
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        let err = LastLog::open(dir.path(), at, &mut LastValues::default()).unwrap_err();
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(LastLog::open(dir.path(), at, &mut LastValues::default()).is_err());
        std::fs::write(&path, b"something else entirely").unwrap();
        assert!(LastLog::open(dir.path(), at, &mut LastValues::default()).is_err());
    }

    #[test]
    fn orphans_are_other_generations() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = LastValues::default();
        let mut log = LastLog::open(dir.path(), LogRef::default(), &mut state).unwrap();
        commit(
            &mut log,
            &mut state,
            Change::Set(vec![((1, 1, 1), num(1, 1.0))]),
        );
        let last_dir = dir.path().join(LAST_DIR);
        std::fs::write(last_dir.join(file_name(7)), b"x").unwrap();
        std::fs::write(last_dir.join("00000000000000000008.lv.tmp"), b"x").unwrap();
        std::fs::write(last_dir.join("notes.txt"), b"x").unwrap();
        assert_eq!(log.remove_orphans().unwrap(), 2);
        assert!(last_dir.join(file_name(1)).exists() && last_dir.join("notes.txt").exists());
        assert_eq!(generation_of("00000000000000000001.lv"), Some(1));
        assert_eq!(generation_of("1.lv"), None);
    }
}
