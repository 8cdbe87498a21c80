//! The durable last values: the newest value of every series as of the catalog's flushed WAL
//! position, kept in `<data_dir>/last_values/` apart from `catalog.json`, so that a commit costs
//! what it changes and not what the fleet holds.
//!
//! A **log file** (`<generation>.lv`) opens with a full copy of the last values, written when
//! the generation starts, followed by one appended record per commit that changes them (the
//! newest value of each series a flush wrote, or the devices a deletion forgot). Replay keeps
//! the newest value of each series, so a flush of late, older data changes nothing. The state
//! is not held in memory between commits: a new generation reads it back from the old file.
//! The catalog names the generation and how many bytes of its file are committed; bytes past
//! that length are an append whose catalog commit never happened, and are ignored and cut off. When the appended
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
use crate::wal::record::{Reader, encode_entry};

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

/// Last values by series (foldhash: a new generation loads millions of them).
pub(crate) type LastValues = HashMap<SeriesKey, LastValue, foldhash::fast::RandomState>;

/// Last values in ascending key order, one per series.
pub(crate) type SortedValues = Vec<(SeriesKey, LastValue)>;

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
    /// The log of `data_dir` as committed at `log`, and its last values in key order (read by
    /// merging the log's sorted records, so a restart with millions of series builds no map).
    pub(crate) fn open(data_dir: &Path, log: LogRef) -> Result<(LastLog, SortedValues)> {
        let last_log = LastLog {
            dir: data_dir.join(LAST_DIR),
            committed: log,
            file: None,
            min_rewrite: MIN_REWRITE_BYTES,
            force_rewrite: log.generation == 0,
        };
        let mut values = SortedValues::new();
        if let Some(committed) = last_log.committed_bytes()? {
            let path = last_log.dir.join(file_name(log.generation));
            values.reserve(committed.len() / 32);
            let sorted = merge_sorted(&committed, &path, |k, v| {
                values.push((k, v));
                Ok(())
            })?;
            if !sorted {
                tracing::warn!(path = %path.display(), "last-value log records out of key order; read through a map");
                let mut map = LastValues::default();
                replay(&committed, log.length, &path, &mut map)?;
                values = map.into_iter().collect();
                values.sort_unstable_by_key(|(k, _)| *k);
            }
        }
        Ok((last_log, values))
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
            return self.rewrite(&record).map(Some);
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
        let mut entries: Vec<(&SeriesKey, &LastValue)> = state.iter().collect();
        entries.sort_unstable_by_key(|(k, _)| **k);
        let mut copy = FullCopy::new(state.len() * 32);
        for (k, v) in entries {
            copy.push(*k, v.clone())?;
        }
        self.start_generation(copy.finish()?)
    }

    /// Starts a generation holding the committed state with `record` (an encoded change)
    /// applied. The state is read back from the log, not kept in memory between commits: the
    /// log's sorted records are merged ([`merge_sorted`]).
    fn rewrite(&mut self, record: &[u8]) -> Result<Written> {
        // One buffer for the file and the new record; the copy sized like the old one.
        let mut log = match self.committed_bytes_and(record.len())? {
            Some(log) => log,
            // No generation yet: the state is the change alone.
            None => header(record.len()),
        };
        log.extend_from_slice(record);
        let path = self.dir.join(file_name(self.committed.generation));
        let mut copy = FullCopy::new(log.len().min(2 * self.committed.base as usize));
        if merge_sorted(&log, &path, |k, v| copy.push(k, v))? {
            return self.start_generation(copy.finish()?);
        }
        tracing::warn!(path = %path.display(), "last-value log records out of key order; new generation built through a map");
        let mut state = LastValues::default();
        replay(&log, log.len() as u64, &path, &mut state)?;
        self.write_full(&state)
    }

    /// Writes `bytes` (a whole log file) as a new generation, crash-safely; not yet committed.
    fn start_generation(&mut self, bytes: Vec<u8>) -> Result<Written> {
        let generation = self.committed.generation + 1;
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
        self.committed_bytes_and(0)
    }

    /// [`LastLog::committed_bytes`] in a buffer with room for `extra` more bytes.
    fn committed_bytes_and(&self, extra: usize) -> Result<Option<Vec<u8>>> {
        use std::io::Read;
        if self.committed.generation == 0 {
            return Ok(None);
        }
        let path = self.dir.join(file_name(self.committed.generation));
        let len = usize::try_from(self.committed.length).unwrap_or(usize::MAX);
        let mut bytes = Vec::with_capacity(len.saturating_add(extra));
        File::open(&path)
            .and_then(|f| f.take(self.committed.length).read_to_end(&mut bytes))
            .map_err(StorageError::io_path(&path))?;
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

/// The header of a log file, in a buffer with room for `more` bytes after it.
fn header(more: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN as usize + more);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes
}

/// A new generation's file being built from entries in ascending key order: the header, then
/// records of [`ENTRIES_PER_RECORD`] entries.
struct FullCopy {
    bytes: Vec<u8>,
    pending: Vec<(SeriesKey, LastValue)>,
    body: Vec<u8>,
}

impl FullCopy {
    /// An empty copy, its buffer sized for about `bytes` bytes.
    fn new(bytes: usize) -> Self {
        FullCopy {
            bytes: header(bytes),
            pending: Vec::new(),
            body: Vec::new(),
        }
    }

    fn push(&mut self, key: SeriesKey, lv: LastValue) -> Result<()> {
        self.pending.push((key, lv));
        if self.pending.len() == ENTRIES_PER_RECORD {
            self.seal()?;
        }
        Ok(())
    }

    fn seal(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.body.clear();
        encode_set(
            self.pending.iter().map(|(k, v)| (*k, v)),
            self.pending.len(),
            &mut self.body,
        )?;
        frame(&self.body, &mut self.bytes)?;
        self.pending.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<u8>> {
        self.seal()?;
        Ok(self.bytes)
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
        // Sorted by key (as a flush hands them over), one entry per series: new generations
        // merge records instead of hashing every series.
        Change::Set(entries) if entries.windows(2).all(|w| w[0].0 < w[1].0) => encode_set(
            entries.iter().map(|(k, v)| (*k, v)),
            entries.len(),
            &mut body,
        )?,
        Change::Set(entries) => {
            let mut newest: std::collections::BTreeMap<SeriesKey, &LastValue> =
                std::collections::BTreeMap::new();
            for (k, v) in entries {
                let slot = newest.entry(*k).or_insert(v);
                if slot.ts_us <= v.ts_us {
                    *slot = v;
                }
            }
            encode_set(
                newest.iter().map(|(k, v)| (*k, *v)),
                newest.len(),
                &mut body,
            )?
        }
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
    for (key, lv) in entries {
        encode_entry(body, key, lv.ts_us, &lv.value);
    }
    Ok(())
}

/// The record bodies of `bytes` (a log file) up to `length`, each with its byte offset. Any
/// damage inside the committed length is an error: it was fsynced before its commit.
fn records<'a>(bytes: &'a [u8], length: u64, path: &Path) -> Result<Vec<(usize, &'a [u8])>> {
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
    let mut out = Vec::new();
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
        out.push((at, body));
        at = start + len;
    }
    Ok(out)
}

/// Applies the records of `bytes` (a log file) up to `length` to `into`. Any damage inside the
/// committed length is an error: it was fsynced before its commit.
pub(crate) fn replay(bytes: &[u8], length: u64, path: &Path, into: &mut LastValues) -> Result<()> {
    let records = records(bytes, length, path)?;
    // About 27 bytes per entry in the leading copy.
    into.reserve(usize::try_from(length).unwrap_or(0) / 32);
    for (at, body) in records {
        apply_record(body, into)
            .map_err(|why| StorageError::corrupt(path, format!("at byte {at}: {why}")))?;
    }
    Ok(())
}

/// Feeds the last values of the log `bytes` (every byte committed) to `emit` in key order,
/// newest-wins, by a k-way merge of its records: each `Set` record is sorted by key (a full
/// copy's records in ascending order, an appended flush's values as the flush sorted them),
/// so a new generation costs sequential reads, not a hash map of every series. Returns
/// `false` when a record turns out not to be strictly sorted (`emit` has then seen part of the
/// state; the caller starts over another way).
fn merge_sorted(
    bytes: &[u8],
    path: &Path,
    mut emit: impl FnMut(SeriesKey, LastValue) -> Result<()>,
) -> Result<bool> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    struct Run<'a> {
        reader: Reader<'a>,
        left: u32,
        record: usize,
        head: Option<(SeriesKey, LastValue)>,
        /// Key of the entry read last.
        prev: Option<SeriesKey>,
        at: usize,
    }
    let corrupt =
        |at: usize, why: String| StorageError::corrupt(path, format!("at byte {at}: {why}"));
    let mut runs: Vec<Run<'_>> = Vec::new();
    // Forgotten devices by record number, each list sorted.
    let mut forgets: Vec<(usize, Vec<(u32, u32)>)> = Vec::new();
    for (record, (at, body)) in records(bytes, bytes.len() as u64, path)?
        .into_iter()
        .enumerate()
    {
        let mut reader = Reader::new(body);
        let (kind, n) = (
            reader.u8().map_err(|e| corrupt(at, e))?,
            reader.u32().map_err(|e| corrupt(at, e))?,
        );
        match kind {
            KIND_SET => runs.push(Run {
                reader,
                left: n,
                record,
                head: None,
                prev: None,
                at,
            }),
            KIND_FORGET => {
                let mut devices = Vec::new();
                for _ in 0..n {
                    let d = (|| Ok::<_, String>((reader.u32()?, reader.u32()?)))()
                        .map_err(|e| corrupt(at, e))?;
                    devices.push(d);
                }
                devices.sort_unstable();
                forgets.push((record, devices));
            }
            kind => return Err(corrupt(at, format!("unknown record kind {kind}"))),
        }
    }
    // Advances a run to its next entry; `false` when it is not strictly ascending.
    let advance = |run: &mut Run<'_>| -> Result<bool> {
        if run.left == 0 {
            if !run.reader.is_done() {
                return Err(corrupt(run.at, "trailing bytes in a record".into()));
            }
            run.head = None;
            return Ok(true);
        }
        run.left -= 1;
        let next = read_entry(&mut run.reader).map_err(|e| corrupt(run.at, e))?;
        let ascending = run.prev.is_none_or(|k| k < next.0);
        run.prev = Some(next.0);
        run.head = Some(next);
        Ok(ascending)
    };
    let mut heap = BinaryHeap::with_capacity(runs.len());
    for (i, run) in runs.iter_mut().enumerate() {
        if !advance(run)? {
            return Ok(false);
        }
        if let Some((key, _)) = &run.head {
            heap.push(Reverse((*key, i)));
        }
    }
    // Whether a forget of `device` lies between records `after` and `before` (exclusive).
    let forgotten = |device: (u32, u32), after: usize, before: usize| {
        forgets.iter().any(|(record, devices)| {
            *record > after && *record < before && devices.binary_search(&device).is_ok()
        })
    };
    while let Some(Reverse((key, first))) = heap.pop() {
        // Every run holding `key`, in record order (ties pop by run index, runs are in record
        // order).
        let mut holders = vec![first];
        while let Some(Reverse((k, i))) = heap.peek()
            && *k == key
        {
            holders.push(*i);
            heap.pop();
        }
        let device = (key.0, key.1);
        let mut current: Option<(usize, LastValue)> = None;
        for i in holders {
            let run = &mut runs[i];
            let (_, lv) = run.head.take().expect("a run in the heap has a head");
            let keep_current = match &current {
                Some((record, cur)) => {
                    !forgotten(device, *record, run.record) && cur.ts_us > lv.ts_us
                }
                None => false,
            };
            if !keep_current {
                current = Some((run.record, lv));
            } else if let Some((record, _)) = &mut current {
                *record = run.record;
            }
            if !advance(run)? {
                return Ok(false);
            }
            if let Some((k, _)) = &run.head {
                heap.push(Reverse((*k, i)));
            }
        }
        if let Some((record, lv)) = current
            && !forgotten(device, record, usize::MAX)
        {
            emit(key, lv)?;
        }
    }
    Ok(true)
}

/// Reads one `Set` entry.
fn read_entry(r: &mut Reader<'_>) -> std::result::Result<(SeriesKey, LastValue), String> {
    let p = r.entry()?;
    Ok((
        (p.org_id, p.device_id, p.pin),
        LastValue {
            ts_us: p.ts_us,
            value: p.value,
        },
    ))
}

/// Applies one record body.
fn apply_record(body: &[u8], into: &mut LastValues) -> std::result::Result<(), String> {
    let mut r = Reader::new(body);
    let kind = r.u8()?;
    let n = r.u32()? as usize;
    match kind {
        KIND_SET => {
            for _ in 0..n {
                let (key, lv) = read_entry(&mut r)?;
                merge(into, key, lv);
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
    if !r.is_done() {
        return Err("trailing bytes in a record".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::point::Value;
    use proptest::prelude::Strategy;

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

    /// The model: applies `change` to `state` as replaying its record does.
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

    /// An empty log in a new directory, and its (empty) state.
    fn fresh() -> (tempfile::TempDir, LastValues, LastLog) {
        let dir = tempfile::tempdir().unwrap();
        let (log, values) = LastLog::open(dir.path(), LogRef::default()).unwrap();
        (dir, values.into_iter().collect(), log)
    }

    fn reopen(dir: &Path, at: LogRef) -> LastValues {
        let (_, values) = LastLog::open(dir, at).unwrap();
        assert!(values.windows(2).all(|w| w[0].0 < w[1].0), "in key order");
        values.into_iter().collect()
    }

    #[test]
    fn values_texts_and_forgets_survive_a_reopen() {
        let (dir, mut state, mut log) = fresh();
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
        let (dir, mut state, mut log) = fresh();
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
        let (dir, mut state, mut log) = fresh();
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
        let (dir, mut state, mut log) = fresh();
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
        let err = LastLog::open(dir.path(), at).unwrap_err();
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(LastLog::open(dir.path(), at).is_err());
        std::fs::write(&path, b"something else entirely").unwrap();
        assert!(LastLog::open(dir.path(), at).is_err());
    }

    /// A device forgotten between two values of a series: the older, later value is the one
    /// that survives a new generation.
    #[test]
    fn a_forget_between_values_is_merged_in_order() {
        let (dir, mut state, mut log) = fresh();
        commit(
            &mut log,
            &mut state,
            Change::Set(vec![((0, 0, 0), num(1, 1.0))]),
        );
        commit(
            &mut log,
            &mut state,
            Change::Set(vec![((1, 1, 1), num(10, 10.0))]),
        );
        commit(&mut log, &mut state, Change::Forget(vec![(1, 1)]));
        commit(
            &mut log,
            &mut state,
            Change::Set(vec![((1, 1, 1), num(5, 5.0))]),
        );
        log.force_rewrite();
        let at = commit(&mut log, &mut state, Change::Set(vec![]));
        assert_eq!(at.generation, 2);
        assert_eq!(reopen(dir.path(), at)[&(1, 1, 1)], num(5, 5.0));
        assert_eq!(reopen(dir.path(), at), state);
    }

    proptest::proptest! {
        /// New generations built by merging the log's records hold exactly what replaying
        /// every change into a map gives: values in and out of key order, older values, texts,
        /// forgotten devices that write again.
        #[test]
        fn generations_merge_to_what_a_replay_gives(
            changes in proptest::collection::vec(
                proptest::prop_oneof![
                    3 => proptest::collection::vec(
                        ((0u32..2, 0u32..3, 0u16..2), 0i64..20, proptest::bool::ANY),
                        0..12,
                    ).prop_map(|v| Change::Set(v.into_iter().map(|(k, ts, t)| {
                        (k, if t { text(ts, &format!("s{ts}")) } else { num(ts, ts as f64 / 4.0) })
                    }).collect())),
                    1 => proptest::collection::vec((0u32..2, 0u32..3), 0..3).prop_map(Change::Forget),
                ],
                1..25,
            ),
            min_rewrite in 0u64..4000,
        ) {
            let (dir, mut state, mut log) = fresh();
            log.min_rewrite = min_rewrite;
            for change in changes {
                let at = commit(&mut log, &mut state, change);
                if at.generation != 0 {
                    proptest::prop_assert_eq!(&reopen(dir.path(), at), &state);
                    // The merge itself (not its map fallback) gives the state, in key order.
                    let bytes = log.committed_bytes().unwrap().unwrap();
                    let mut merged = Vec::new();
                    let sorted = merge_sorted(&bytes, dir.path(), |k, v| {
                        merged.push((k, v));
                        Ok(())
                    })
                    .unwrap();
                    proptest::prop_assert!(sorted);
                    proptest::prop_assert!(merged.windows(2).all(|w| w[0].0 < w[1].0));
                    proptest::prop_assert_eq!(&merged.into_iter().collect::<LastValues>(), &state);
                }
            }
        }
    }

    #[test]
    fn orphans_are_other_generations() {
        let (dir, mut state, mut log) = fresh();
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
