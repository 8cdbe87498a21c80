//! [`Storage`]: opening (recovery), the write path, reads, and shutdown.

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex, RwLock};

use crate::catalog::{self, Catalog};
use crate::committer::{Committer, WriteRequest};
use crate::compactor::{CompactMsg, Compactor, Maintenance};
use crate::config::{FsyncPolicy, StorageConfig};
use crate::dedup;
use crate::error::{Result, StorageError};
use crate::flush::{FlushMsg, Flusher};
use crate::fsutil;
use crate::last_value::{LastValue, LastValueCache};
use crate::maintenance::{MaintenanceReport, RetentionRules};
use crate::memtable::{Frozen, Memtable};
use crate::metrics::{Metrics, StorageStats};
use crate::point::Point;
use crate::snapshot::{FileMeta, LiveFile, Snapshot};
use crate::wal::{self, ClosedSegments, WalWriter, record, replay::TornTail};

/// Folder of the WAL inside the data directory.
pub(crate) const WAL_DIR: &str = "wal";
const LOCK_FILE: &str = "LOCK";
/// How long `open` waits for the directory lock before giving up with `Locked`.
const LOCK_WAIT: Duration = Duration::from_secs(1);

/// What [`Storage::open`] found and repaired.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    /// WAL segments found.
    pub wal_segments: usize,
    /// WAL records replayed into the memtable.
    pub wal_records: u64,
    /// Points replayed into the memtable.
    pub wal_points: u64,
    /// WAL records skipped because Parquet already holds them.
    pub wal_records_skipped: u64,
    /// Torn or corrupt WAL tails that were cut off.
    pub torn_tails: Vec<TornTail>,
    /// Temporary or uncommitted Parquet files removed.
    pub orphan_files_removed: usize,
    /// The data directory had no catalog and took the bucket's.
    pub catalog_restored: bool,
    /// Cataloged files downloaded from the bucket (missing on disk).
    pub files_downloaded: usize,
    /// Cataloged files uploaded to the bucket (missing there).
    pub files_uploaded: usize,
    /// Objects in the bucket that the catalog does not list, deleted.
    pub bucket_orphans_deleted: usize,
    /// Parquet files in the catalog.
    pub parquet_files: usize,
    /// Series in the last-value cache after recovery.
    pub series: usize,
    /// Time spent opening.
    pub elapsed: Duration,
}

/// Memtables and the published file list, behind one lock so a snapshot is a consistent cut.
pub(crate) struct MemState {
    pub active: Memtable,
    /// Oldest first.
    pub frozen: VecDeque<Arc<Frozen>>,
    pub files: Vec<Arc<LiveFile>>,
    /// Set at shutdown (see `Shared::flusher_stopped`).
    pub flusher_stopped: bool,
}

fn frozen_rows(mem: &MemState) -> usize {
    mem.frozen.iter().map(|f| f.rows).sum()
}

/// State shared by the handle, the committer and the flusher.
pub(crate) struct Shared {
    mem: Mutex<MemState>,
    last: LastValueCache,
    max_rows: usize,
    /// Backpressure: applying waits while frozen memtables hold at least this many rows.
    frozen_budget_rows: usize,
    /// Signalled when a frozen memtable has been flushed.
    flushed: Condvar,
    flusher_tx: Sender<FlushMsg>,
    pub(crate) metrics: Metrics,
}

impl Shared {
    /// Applies acknowledged WAL records (in sequence order) to the memtable and last values,
    /// leaving out duplicates of stored rows (see `dedup`).
    pub(crate) fn apply(&self, records: &[(u64, WriteRequest)]) {
        let now = Instant::now();
        let mut frozen_any = false;
        let mut duplicates = 0;
        {
            let mut guard = self.mem.lock();
            // Backpressure: when flushing falls behind, stop here (acknowledgements, and so
            // writers, wait; nothing is dropped) until the flusher has caught up.
            let mut waited = false;
            while frozen_rows(&guard) >= self.frozen_budget_rows && !guard.flusher_stopped {
                if !waited {
                    waited = true;
                    Metrics::add(&self.metrics.backpressure_waits, 1);
                    let _ = self.flusher_tx.send(FlushMsg::Wake);
                }
                self.flushed
                    .wait_for(&mut guard, Duration::from_millis(100));
            }
            let mem = &mut *guard;
            for (seq, req) in records {
                duplicates += apply_points(
                    &mut mem.active,
                    &mem.frozen,
                    &self.last,
                    *seq,
                    &req.points,
                    now,
                );
                if mem.active.rows() >= self.max_rows {
                    frozen_any |= freeze_locked(mem);
                }
            }
            if frozen_any {
                self.metrics.frozen_rows_peak.fetch_max(
                    frozen_rows(mem) as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
        }
        if duplicates > 0 {
            Metrics::add(&self.metrics.duplicates_dropped, duplicates as u64);
        }
        if frozen_any {
            let _ = self.flusher_tx.send(FlushMsg::Wake);
        }
    }

    /// Freezes the active memtable (if it holds anything).
    pub(crate) fn freeze_active(&self) -> bool {
        freeze_locked(&mut self.mem.lock())
    }

    /// Freezes the active memtable when its first row is older than `max_age`.
    pub(crate) fn freeze_if_older_than(&self, max_age: Duration) -> bool {
        let mut mem = self.mem.lock();
        if mem.active.rows() > 0 && mem.active.age(Instant::now()) >= max_age {
            return freeze_locked(&mut mem);
        }
        false
    }

    pub(crate) fn oldest_frozen(&self) -> Option<Arc<Frozen>> {
        self.mem.lock().frozen.front().cloned()
    }

    /// The frozen memtable after `prev` in flush order: the oldest when `prev` is `None` or
    /// already flushed (memtables are flushed in order, so every earlier one is too).
    pub(crate) fn frozen_after(&self, prev: Option<&Arc<Frozen>>) -> Option<Arc<Frozen>> {
        let mem = self.mem.lock();
        match prev.and_then(|p| mem.frozen.iter().position(|f| Arc::ptr_eq(f, p))) {
            Some(i) => mem.frozen.get(i + 1).cloned(),
            None => mem.frozen.front().cloned(),
        }
    }

    /// Makes a flushed memtable's files visible and its rows invisible in one step.
    pub(crate) fn publish_flushed(&self, frozen: &Arc<Frozen>, new_files: Vec<FileMeta>) {
        let mut mem = self.mem.lock();
        let front = mem.frozen.pop_front();
        debug_assert!(
            front.is_some_and(|f| Arc::ptr_eq(&f, frozen)),
            "flushed out of order"
        );
        mem.files.extend(
            new_files
                .into_iter()
                .map(|meta| Arc::new(LiveFile { meta })),
        );
        self.flushed.notify_all();
    }

    /// The flusher thread has stopped: nothing will free memtable memory any more, so
    /// backpressure must not wait for it.
    pub(crate) fn flusher_stopped(&self) {
        self.mem.lock().flusher_stopped = true;
        self.flushed.notify_all();
    }

    /// Replaces files (compaction, retention, device deletion) in one step; returns the removed
    /// files so that the caller deletes them once no snapshot holds them.
    pub(crate) fn publish_replaced(
        &self,
        removed: &HashSet<PathBuf>,
        added: Vec<FileMeta>,
    ) -> Vec<Arc<LiveFile>> {
        let mut mem = self.mem.lock();
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut mem.files)
            .into_iter()
            .partition(|f| removed.contains(&f.meta.path));
        mem.files = kept;
        mem.files
            .extend(added.into_iter().map(|meta| Arc::new(LiveFile { meta })));
        gone
    }

    /// Forgets the last values of a deleted device.
    pub(crate) fn forget_device(&self, org_id: u32, device_id: u32) {
        self.last.remove_device(org_id, device_id);
    }
}

/// Appends the non-duplicate points of WAL record `seq` to `active` and the last values; returns
/// how many duplicates were left out.
fn apply_points(
    active: &mut Memtable,
    frozen: &VecDeque<Arc<Frozen>>,
    last: &LastValueCache,
    seq: u64,
    points: &[Point],
    now: Instant,
) -> usize {
    let (kept, dropped) = dedup::filter_new(points, last, |wanted| {
        let mut found = std::collections::HashSet::new();
        for f in frozen {
            f.find_stored(wanted, &mut found);
        }
        active.find_stored(wanted, &mut found);
        found
    });
    active.append(seq, &kept, now);
    dropped
}

fn freeze_locked(mem: &mut MemState) -> bool {
    match mem.active.freeze() {
        Some(f) => {
            mem.frozen.push_back(Arc::new(f));
            true
        }
        None => false,
    }
}

/// The telemetry store. A cheap handle: clone it freely; all clones share one store.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("data_dir", &self.inner.data_dir)
            .finish_non_exhaustive()
    }
}

struct Inner {
    data_dir: PathBuf,
    config: StorageConfig,
    shared: Arc<Shared>,
    /// `None` once closed: dropping the only sender lets the committer drain and stop.
    write_tx: RwLock<Option<Sender<WriteRequest>>>,
    committer: Mutex<Option<JoinHandle<Result<()>>>>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    compactor: Mutex<Option<JoinHandle<()>>>,
    compactor_tx: Sender<CompactMsg>,
    /// Set at close: a rewrite in progress gives up.
    stop_rewrites: Arc<AtomicBool>,
    lock_file: Mutex<Option<File>>,
    recovery: RecoveryReport,
}

impl Storage {
    /// Opens (or creates) the store in `config.data_dir`: takes the directory lock, loads the
    /// catalog, removes files left by an interrupted flush, replays the WAL (cutting off a torn
    /// tail), and starts the committer and flusher threads.
    pub fn open(config: StorageConfig) -> Result<Storage> {
        let started = Instant::now();
        if config.memtable_max_rows == 0 {
            return Err(StorageError::InvalidInput(
                "memtable_max_rows must be > 0".into(),
            ));
        }
        let data_dir = std::path::absolute(&config.data_dir)
            .map_err(StorageError::io_path(&config.data_dir))?;
        let wal_dir = data_dir.join(WAL_DIR);
        fsutil::create_dir_all_synced(&wal_dir)?;
        fsutil::create_dir_all_synced(&data_dir.join(catalog::PARQUET_DIR))?;
        let lock_file = lock_data_dir(&data_dir)?;

        let remote = config.parquet_remote.clone();
        let catalog_restored = match &remote {
            Some(remote) => crate::remote::restore_catalog(remote, &data_dir)?,
            None => false,
        };
        let mut catalog = Catalog::load(&data_dir, remote.clone())?;
        let orphan_files_removed = catalog.remove_orphans()?;
        let reconciled = match &remote {
            Some(remote) => {
                let files: Vec<(String, PathBuf)> = catalog
                    .entries()
                    .iter()
                    .map(|f| (f.path.clone(), catalog.abs_path(&f.path)))
                    .collect();
                crate::remote::reconcile(
                    remote,
                    &files,
                    catalog.last_values_log(),
                    || catalog.last_values_bytes(),
                    &catalog.to_json()?,
                )?
            }
            None => Default::default(),
        };
        let flushed_seq = catalog.flushed_wal_seq();
        let last = LastValueCache::default();
        last.restore_sorted(catalog.take_last_values());

        let mut active = Memtable::new();
        let mut frozen = VecDeque::new();
        let replay_now = Instant::now();
        let outcome = wal::replay(&wal_dir, flushed_seq, |seq, points| {
            apply_points(&mut active, &frozen, &last, seq, &points, replay_now);
            if active.rows() >= config.memtable_max_rows
                && let Some(f) = active.freeze()
            {
                frozen.push_back(Arc::new(f));
            }
            Ok(())
        })?;

        let segments = Arc::new(ClosedSegments::default());
        let wal_segments = outcome.segments.len();
        for seg in outcome.segments {
            segments.push(seg);
        }
        segments.delete_covered(flushed_seq);
        let wal = WalWriter::create(
            &wal_dir,
            outcome.max_segment_id + 1,
            outcome.last_seq.max(flushed_seq) + 1,
            config.wal_segment_bytes,
            config.fsync != FsyncPolicy::Never,
            segments.clone(),
        )?;

        let files: Vec<Arc<LiveFile>> = catalog
            .file_metas()
            .into_iter()
            .map(|meta| Arc::new(LiveFile { meta }))
            .collect();
        let recovery = RecoveryReport {
            wal_segments,
            wal_records: outcome.records,
            wal_points: outcome.points,
            wal_records_skipped: outcome.skipped_records,
            torn_tails: outcome.torn,
            orphan_files_removed,
            catalog_restored,
            files_downloaded: reconciled.downloaded,
            files_uploaded: reconciled.uploaded,
            bucket_orphans_deleted: reconciled.orphans_deleted,
            parquet_files: files.len(),
            series: last.len(),
            elapsed: started.elapsed(),
        };
        let (flusher_tx, flusher_rx) = crossbeam_channel::unbounded();
        let (write_tx, write_rx) = crossbeam_channel::unbounded();
        let has_frozen = !frozen.is_empty();
        let shared = Arc::new(Shared {
            mem: Mutex::new(MemState {
                active,
                frozen,
                files,
                flusher_stopped: false,
            }),
            last,
            max_rows: config.memtable_max_rows,
            frozen_budget_rows: config.memtable_budget_rows.max(config.memtable_max_rows),
            flushed: Condvar::new(),
            flusher_tx,
            metrics: Metrics::default(),
        });

        let committer = Committer::new(shared.clone(), wal, config.fsync, write_rx);
        let committer = spawn_thread("pinhouse-wal", 0, move || committer.run())?;
        let catalog = Arc::new(Mutex::new(catalog));
        let (compactor_tx, compactor_rx) = crossbeam_channel::unbounded();
        let stop_rewrites = Arc::new(AtomicBool::new(false));
        let flusher = Flusher::new(
            shared.clone(),
            catalog.clone(),
            segments,
            flusher_rx,
            compactor_tx.clone(),
            &config,
        );
        let flusher = spawn_thread("pinhouse-flush", config.background_nice, move || {
            flusher.run()
        })?;
        let compactor = Compactor::new(
            shared.clone(),
            catalog,
            compactor_rx,
            stop_rewrites.clone(),
            &config,
        );
        let compactor = spawn_thread(
            "pinhouse-compact",
            compactor_nice(config.background_nice),
            move || compactor.run(),
        )?;
        // Files left by an earlier run may already make a tier worth merging.
        let _ = compactor_tx.send(CompactMsg::Flushed);
        if has_frozen {
            let _ = shared.flusher_tx.send(FlushMsg::Wake);
        }
        tracing::info!(
            data_dir = %data_dir.display(),
            wal_records = recovery.wal_records,
            wal_points = recovery.wal_points,
            torn_tails = recovery.torn_tails.len(),
            parquet_files = recovery.parquet_files,
            series = recovery.series,
            elapsed_ms = recovery.elapsed.as_millis() as u64,
            "storage opened"
        );
        Ok(Storage {
            inner: Arc::new(Inner {
                data_dir,
                config,
                shared,
                write_tx: RwLock::new(Some(write_tx)),
                committer: Mutex::new(Some(committer)),
                flusher: Mutex::new(Some(flusher)),
                compactor: Mutex::new(Some(compactor)),
                compactor_tx,
                stop_rewrites,
                lock_file: Mutex::new(Some(lock_file)),
                recovery,
            }),
        })
    }

    /// Blocks until the batch is durable per the fsync policy (Always: fsynced; Interval: written and the
    /// caller waits for the next interval sync; Never: written to the OS), then it is in the memtable and last values.
    pub fn write(&self, points: Vec<Point>) -> Result<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.write_with(
            points,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv().unwrap_or(Err(StorageError::Closed))
    }

    /// Non-blocking form for async callers: `done` is called once from the committer thread with the same result.
    ///
    /// (An empty batch, an oversized batch, or a write after `close` completes at once, on the
    /// calling thread.)
    pub fn write_with(
        &self,
        points: Vec<Point>,
        done: Box<dyn FnOnce(Result<()>) + Send + 'static>,
    ) {
        // Encode on the caller's thread, before taking the lock.
        let body = if points.is_empty() {
            Vec::new()
        } else {
            record::encode_body(&points)
        };
        if body.len() > record::MAX_BODY_LEN {
            return done(Err(StorageError::InvalidInput(format!(
                "batch of {} points encodes to {} bytes, more than the WAL record limit of {}",
                points.len(),
                body.len(),
                record::MAX_BODY_LEN
            ))));
        }
        let guard = self.inner.write_tx.read();
        let Some(tx) = guard.as_ref() else {
            drop(guard);
            return done(Err(StorageError::Closed));
        };
        if points.is_empty() {
            drop(guard);
            return done(Ok(()));
        }
        if let Err(crossbeam_channel::SendError(req)) = tx.send(WriteRequest { body, points, done })
        {
            drop(guard);
            (req.done)(Err(StorageError::Closed));
        }
    }

    /// The newest value of one pin.
    pub fn last_value(&self, org_id: u32, device_id: u32, pin: u16) -> Option<LastValue> {
        self.inner.shared.last.get(org_id, device_id, pin)
    }

    /// The newest value of every pin of a device, sorted by pin.
    pub fn last_values(&self, org_id: u32, device_id: u32) -> Vec<(u16, LastValue)> {
        self.inner.shared.last.device(org_id, device_id)
    }

    /// A consistent cut: memtable batches (active and frozen) and catalog files, with every
    /// acknowledged row in exactly one of them.
    pub fn snapshot(&self) -> Snapshot {
        let mem = self.inner.shared.mem.lock();
        let mut batches = Vec::new();
        for f in &mem.frozen {
            batches.extend(f.batches.iter().cloned());
        }
        mem.active.snapshot_into(&mut batches);
        let pins = mem.files.clone();
        let files = pins.iter().map(|f| f.meta.clone()).collect();
        Snapshot {
            batches,
            files,
            _pins: pins,
        }
    }

    /// Freezes the memtable and writes it (and any earlier frozen memtable) to Parquet and the
    /// catalog now; returns when done. Writes still waiting for an interval fsync are not
    /// included.
    pub fn flush(&self) -> Result<()> {
        if self.inner.write_tx.read().is_none() {
            return Err(StorageError::Closed);
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.inner
            .shared
            .flusher_tx
            .send(FlushMsg::Flush(tx))
            .map_err(|_| StorageError::Closed)?;
        rx.recv().unwrap_or(Err(StorageError::Closed))
    }

    /// Merges, in every time partition holding several files, all files into one (sorted,
    /// duplicates removed). Flushes the memtable first. Compaction also runs on its own after
    /// flushes (see [`StorageConfig::compact_min_files`]).
    pub fn compact(&self) -> Result<MaintenanceReport> {
        self.maintain(Maintenance::Compact)
    }

    /// Drops the data of every organization older than its retention: whole partitions that
    /// ended more than the retention before `now_us` (files shared with organizations that keep
    /// their data are rewritten without the expired rows). Flushes the memtable first.
    pub fn apply_retention(
        &self,
        rules: &RetentionRules,
        now_us: i64,
    ) -> Result<MaintenanceReport> {
        self.maintain(Maintenance::Retention(rules.clone(), now_us))
    }

    /// Deletes every stored row and the last values of a device: flushes the memtable, then
    /// rewrites the files holding its rows. Writes for the device that arrive while this runs
    /// may survive it; stop accepting the device's writes first.
    pub fn delete_device(&self, org_id: u32, device_id: u32) -> Result<MaintenanceReport> {
        self.delete_devices(&[(org_id, device_id)])
    }

    /// [`Storage::delete_device`] for several `(org_id, device_id)` devices at once: each file
    /// holding rows of any of them is rewritten once.
    pub fn delete_devices(&self, devices: &[(u32, u32)]) -> Result<MaintenanceReport> {
        if devices.is_empty() {
            return Ok(MaintenanceReport::default());
        }
        self.maintain(Maintenance::DeleteDevices(devices.to_vec()))
    }

    fn maintain(&self, op: Maintenance) -> Result<MaintenanceReport> {
        self.flush()?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.inner
            .compactor_tx
            .send(CompactMsg::Maintain(op, tx))
            .map_err(|_| StorageError::Closed)?;
        rx.recv().unwrap_or(Err(StorageError::Closed))
    }

    /// Writes and fsyncs every queued write, stops the background threads and releases the
    /// directory lock. Later writes fail with [`StorageError::Closed`]. Unflushed memtable rows
    /// stay in the WAL and are replayed by the next `open`. Idempotent.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }

    /// The absolute data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StorageConfig {
        &self.inner.config
    }

    /// Counters since `open`.
    pub fn stats(&self) -> StorageStats {
        self.inner.shared.metrics.snapshot()
    }

    /// What `open` recovered and repaired.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.inner.recovery
    }
}

impl Inner {
    fn close(&self) -> Result<()> {
        // Dropping the only sender: the committer drains what is queued, syncs and returns.
        drop(self.write_tx.write().take());
        let mut result = Ok(());
        if let Some(h) = self.committer.lock().take() {
            result = join(h).unwrap_or(Ok(()));
        }
        if let Some(h) = self.flusher.lock().take() {
            let _ = self.shared.flusher_tx.send(FlushMsg::Shutdown);
            let _ = join(h);
        }
        if let Some(h) = self.compactor.lock().take() {
            // A merge in progress is abandoned (its files are removed; it runs again next time).
            self.stop_rewrites.store(true, Ordering::Relaxed);
            let _ = self.compactor_tx.send(CompactMsg::Shutdown);
            let _ = join(h);
        }
        drop(self.lock_file.lock().take());
        result
    }
}

/// Starts a named background thread of the store, `nice` steps below the others in priority.
fn spawn_thread<T: Send + 'static>(
    name: &'static str,
    nice: i32,
    run: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            lower_priority(name, nice);
            run()
        })
        .map_err(StorageError::Io)
}

/// The compactor's nice: `COMPACT_EXTRA_NICE` more than the flusher's when the background
/// threads are lowered at all. Flushing frees memtable memory that writers may be waiting
/// for; a merge only saves readers some files, and can wait.
fn compactor_nice(background_nice: i32) -> i32 {
    if background_nice > 0 {
        background_nice + COMPACT_EXTRA_NICE
    } else {
        background_nice
    }
}

/// See [`compactor_nice`].
const COMPACT_EXTRA_NICE: i32 = 9;

/// Adds `nice` (if positive) to the calling thread's nice value, up to 19. Linux only (where
/// nice is per thread); a failure is logged and the thread runs on at its priority.
fn lower_priority(name: &str, nice: i32) {
    #[cfg(target_os = "linux")]
    if nice > 0 {
        let tid = Some(rustix::thread::gettid());
        let result = rustix::process::getpriority_process(tid)
            .and_then(|now| rustix::process::setpriority_process(tid, (now + nice).min(19)));
        if let Err(e) = result {
            tracing::warn!(thread = name, nice, error = %e, "could not lower the thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (name, nice);
}

/// Joins a background thread, unless called from that very thread (a completion callback that
/// drops or closes the last handle), where it would deadlock. `None` when it panicked or was
/// not joined.
fn join<T>(h: JoinHandle<T>) -> Option<T> {
    if h.thread().id() == std::thread::current().id() {
        return None;
    }
    match h.join() {
        Ok(v) => Some(v),
        Err(_) => {
            tracing::error!("a storage background thread panicked");
            None
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "error while closing storage");
        }
    }
}

fn lock_data_dir(data_dir: &Path) -> Result<File> {
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(StorageError::io_path(&path))?;
    // A lock just released can linger for a moment: a process that forks (to spawn a child)
    // shares the lock until the child's exec closes the descriptor. Retry briefly.
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StorageError::Locked(data_dir.to_owned()));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StorageError::IoPath { path, source: e });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn handles_are_send_and_sync() {
        assert_send_sync::<Storage>();
        assert_send_sync::<Snapshot>();
        assert_send_sync::<StorageError>();
        assert_send_sync::<RecoveryReport>();
    }
}
