//! Rewriting sorted data files into one with bounded memory (compaction, retention, device
//! deletion): a k-way merge that reads each input a batch at a time and writes the output a row
//! group at a time.
//!
//! Every data file of a store is sorted by its key order ([`KeyOrder`]), so merging needs no sort:
//! the input whose next row is smallest gives a run of rows up to the next row of any other
//! input, recorded as indices into its batch; each row group is gathered once from its runs.
//! Rows with equal keys come in input order (the inputs are given oldest first), as the
//! stable sort of the flush would order them. Memory holds one decoded
//! batch per input and about one row group of output, whatever the size of the inputs; a
//! merge of every file of a day partition used to hold all of its rows, several times over.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::compute::{filter_record_batch, interleave_record_batch};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::dedup;
use crate::error::{Result, StorageError};
use crate::maintenance::RowFilter;
use crate::parquet_writer::{self, BatchStats, GroupWriter};
use crate::schema::{self, COL_VALUE, KeyOrder, schema};
use crate::value_encoding;

/// Sort key of a row.
type Key = schema::SortKey;

/// Rows decoded from all inputs at once, at most (each input reads batches of this divided
/// by the number of inputs, within the bounds below).
const READ_ROWS_TOTAL: usize = 2 * 1024 * 1024;
const READ_ROWS_MIN: usize = 4 * 1024;
const READ_ROWS_MAX: usize = 64 * 1024;

/// What [`merge_files`] wrote.
#[derive(Debug)]
pub(crate) struct Merged {
    /// Summary of the rows written.
    pub stats: BatchStats,
    /// Repeated rows removed.
    pub duplicates: usize,
}

/// Merges the rows of the sorted data files `inputs` (oldest first) that `keep` keeps into a
/// new data file at `out`, written crash-safely, sorted and without repeated rows. Returns
/// what was written and the file size, or `None` (and no file) when no row is kept.
///
/// The output stores `value` as scaled integers at the largest scale of the inputs when they
/// all do and every value is exact at that scale; otherwise (one input of `Float64`, or a value
/// found not to be exact while writing, which starts the merge over) as `Float64`.
pub(crate) fn merge_files(
    out: &Path,
    inputs: &[PathBuf],
    keep: Option<&RowFilter>,
    stop: &AtomicBool,
    order: KeyOrder,
) -> Result<Option<(Merged, u64)>> {
    let shape = Shape {
        group_rows: parquet_writer::ROW_GROUP_ROWS,
        fan_in: MAX_FAN_IN,
        order,
    };
    merge_in_levels(out, inputs, keep, stop, shape, 0)
}

/// Most files one merge pass reads at once: each holds a file handle, reader state and a
/// decoded batch. More inputs are merged a group at a time into intermediate files first.
const MAX_FAN_IN: usize = 64;

/// Row group size and fan-in of a merge (small in tests), and the key order of its inputs
/// and output.
#[derive(Debug, Clone, Copy)]
struct Shape {
    group_rows: usize,
    fan_in: usize,
    order: KeyOrder,
}

/// [`merge_files`] with `shape`: consecutive groups of at most `shape.fan_in` inputs merged
/// into intermediate files (`<out>-merge<level>-<n>.parquet`, removed after use, or as orphans
/// on the next open after a crash), then those merged. Consecutive groups keep the inputs'
/// order, so rows with equal keys keep it too.
fn merge_in_levels(
    out: &Path,
    inputs: &[PathBuf],
    keep: Option<&RowFilter>,
    stop: &AtomicBool,
    shape: Shape,
    level: usize,
) -> Result<Option<(Merged, u64)>> {
    let fan_in = shape.fan_in.max(2);
    if inputs.len() <= fan_in {
        return merge_once(out, inputs, keep, stop, shape);
    }
    let stem = out.file_stem().unwrap_or_default().to_string_lossy();
    let mut parts = Vec::new();
    let mut duplicates = 0;
    let result = (|| {
        for (n, group) in inputs.chunks(fan_in).enumerate() {
            let part = out.with_file_name(format!("{stem}-merge{level}-{n}.parquet"));
            if let Some((merged, _)) = merge_once(&part, group, keep, stop, shape)? {
                duplicates += merged.duplicates;
                parts.push(part);
            }
        }
        tracing::debug!(
            inputs = inputs.len(),
            parts = parts.len(),
            level,
            "merged in groups"
        );
        merge_in_levels(out, &parts, None, stop, shape, level + 1)
    })();
    for part in &parts {
        let _ = std::fs::remove_file(part);
    }
    Ok(result?.map(|(mut merged, bytes)| {
        merged.duplicates += duplicates;
        (merged, bytes)
    }))
}

/// One merge pass over `inputs` into `out`, at the inputs' scale, or as `Float64` when a value
/// does not fit it.
fn merge_once(
    out: &Path,
    inputs: &[PathBuf],
    keep: Option<&RowFilter>,
    stop: &AtomicBool,
    shape: Shape,
) -> Result<Option<(Merged, u64)>> {
    if inputs.is_empty() {
        return Ok(None);
    }
    let mut scale = output_scale(inputs)?;
    loop {
        let mut misfit = false;
        let written = parquet_writer::write_file_atomically(out, |file| {
            match merge_pass(file, inputs, keep, stop, scale, shape)? {
                Pass::Done(merged) => Ok(Some(merged)),
                Pass::Empty => Ok(None),
                Pass::Misfit => {
                    misfit = true;
                    Ok(None)
                }
            }
        })?;
        match (misfit, scale) {
            (true, Some(s)) => {
                tracing::debug!(scale = s, out = %out.display(), "a merged value is not exact at the inputs' scale; writing Float64");
                scale = None;
            }
            _ => return Ok(written),
        }
    }
}

/// Whether `keep` removes any row of the data file at `path` (read a batch at a time).
pub(crate) fn filter_removes_rows(path: &Path, keep: &RowFilter) -> Result<bool> {
    let reader = open_reader(path, READ_ROWS_MAX)?;
    for batch in reader {
        let batch = value_encoding::decode_file_batch(batch?)?;
        if keep(&batch).true_count() < batch.num_rows() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The scale the output of merging `inputs` is first written at: the largest of their scales
/// when every input stores scaled integers.
fn output_scale(inputs: &[PathBuf]) -> Result<Option<i8>> {
    let mut scale: Option<i8> = None;
    for path in inputs {
        let file = File::open(path).map_err(StorageError::io_path(path))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
        match value_encoding::stored_scale(builder.schema().field(COL_VALUE).data_type()) {
            Some(s) => scale = Some(scale.map_or(s, |m| m.max(s))),
            None => return Ok(None),
        }
    }
    Ok(scale)
}

fn open_reader(path: &Path, batch_rows: usize) -> Result<ParquetRecordBatchReader> {
    let file = File::open(path).map_err(StorageError::io_path(path))?;
    Ok(ParquetRecordBatchReaderBuilder::try_new(file)?
        .with_batch_size(batch_rows)
        .build()?)
}

/// One input file, a decoded and filtered batch at a time.
struct Input<'a> {
    path: &'a Path,
    reader: ParquetRecordBatchReader,
    keep: Option<&'a RowFilter>,
    batch: RecordBatch,
    /// Next row of `batch` to merge.
    pos: usize,
    /// Key of the last row of the previous batch (to check the order across batches).
    last: Option<Key>,
    order: KeyOrder,
}

impl<'a> Input<'a> {
    /// The input positioned at its first kept row; `None` when it keeps none.
    fn open(
        path: &'a Path,
        keep: Option<&'a RowFilter>,
        batch_rows: usize,
        order: KeyOrder,
    ) -> Result<Option<Input<'a>>> {
        let mut input = Input {
            path,
            reader: open_reader(path, batch_rows)?,
            keep,
            batch: RecordBatch::new_empty(schema()),
            pos: 0,
            last: None,
            order,
        };
        Ok(input.next_batch()?.then_some(input))
    }

    /// Loads the next batch holding a kept row; false at the end of the file.
    fn next_batch(&mut self) -> Result<bool> {
        for batch in self.reader.by_ref() {
            let batch = value_encoding::decode_file_batch(batch?)?;
            let batch = match self.keep {
                Some(keep) => filter_record_batch(&batch, &keep(&batch))?,
                None => batch,
            };
            let n = batch.num_rows();
            if n == 0 {
                continue;
            }
            // A merge of unsorted input would write an unsorted file: refuse it.
            if !self.order.is_sorted(&batch, self.last) {
                return Err(StorageError::InvalidInput(format!(
                    "{} is not sorted by {}; not merged",
                    self.path.display(),
                    self.order.describe()
                )));
            }
            self.last = Some(self.order.key_at(&batch, n - 1));
            self.batch = batch;
            self.pos = 0;
            return Ok(true);
        }
        Ok(false)
    }

    fn head(&self) -> Key {
        self.order.key_at(&self.batch, self.pos)
    }

    /// End of the run of rows from `pos` that come before `bound` (the smallest next row of
    /// the other inputs and its input number; equal keys go to the lower number). `me` is this
    /// input's number; its head comes first by the merge's heap order.
    fn run_end(&self, me: usize, bound: Option<(Key, usize)>) -> usize {
        let n = self.batch.num_rows();
        let Some((bound, other)) = bound else {
            return n;
        };
        let (org, dev, pin, ts) = schema::key_columns(&self.batch);
        let mut end = self.pos + 1;
        while end < n {
            let key = self.order.key(org[end], dev[end], pin[end], ts[end]);
            if key < bound || (key == bound && me < other) {
                end += 1;
            } else {
                break;
            }
        }
        end
    }
}

enum Pass {
    Done(Merged),
    Empty,
    /// A value is not exact at the scale tried.
    Misfit,
}

fn merge_pass(
    file: File,
    inputs: &[PathBuf],
    keep: Option<&RowFilter>,
    stop: &AtomicBool,
    scale: Option<i8>,
    shape: Shape,
) -> Result<Pass> {
    let batch_rows = (READ_ROWS_TOTAL / inputs.len().max(1)).clamp(READ_ROWS_MIN, READ_ROWS_MAX);
    let mut cursors = Vec::with_capacity(inputs.len());
    for path in inputs {
        if let Some(input) = Input::open(path, keep, batch_rows, shape.order)? {
            cursors.push(input);
        }
    }
    let mut heap: BinaryHeap<Reverse<(Key, usize)>> = cursors
        .iter()
        .enumerate()
        .map(|(i, c)| Reverse((c.head(), i)))
        .collect();
    let mut out = Output::new(file, scale, shape);
    // Each input's current batch as a source of the output, once registered.
    let mut slots: Vec<Option<Slot>> = vec![None; cursors.len()];
    while let Some(Reverse((_, i))) = heap.pop() {
        let bound = heap.peek().map(|Reverse(b)| *b);
        let input = &mut cursors[i];
        let (start, end) = (input.pos, input.run_end(i, bound));
        if !out.push(&input.batch, &mut slots[i], start, end - start, stop)? {
            return Ok(Pass::Misfit);
        }
        input.pos = end;
        if input.pos == input.batch.num_rows() {
            slots[i] = None;
            if !input.next_batch()? {
                continue;
            }
        }
        heap.push(Reverse((input.head(), i)));
    }
    out.finish(stop)
}

/// The merged rows, gathered into row groups and written.
struct Output {
    file: Option<File>,
    /// The file's writer and the statistics of the rows written, from the first row group on.
    written: Option<(GroupWriter, BatchStats)>,
    scale: Option<i8>,
    group_rows: usize,
    /// Batches that runs not written yet come from, and those runs in order
    /// (source, first row, rows): gathered once per row group, not copied run by run.
    sources: Vec<RecordBatch>,
    runs: Vec<(usize, usize, usize)>,
    /// Counts the times `sources` was emptied, which invalidates [`Slot`]s.
    epoch: u64,
    rows: usize,
    duplicates: usize,
    /// The key whose rows alone exceed a group and may have more to come.
    open_key: Option<Key>,
    order: KeyOrder,
}

/// Where an input's current batch is among the output's sources: `(epoch, index)`.
type Slot = (u64, usize);

/// What [`Output::write_group`] did.
enum Group {
    Written,
    /// Nothing: the pending rows all have this key, and more of them may come.
    KeyOpen(Key),
    /// Nothing: a value is not exact at the scale tried.
    Misfit,
}

impl Output {
    fn new(file: File, scale: Option<i8>, shape: Shape) -> Output {
        Output {
            file: Some(file),
            written: None,
            scale,
            group_rows: shape.group_rows.max(1),
            sources: Vec::new(),
            runs: Vec::new(),
            epoch: 0,
            rows: 0,
            duplicates: 0,
            open_key: None,
            order: shape.order,
        }
    }

    /// Adds the run of `len` rows of `batch` from `start`; `slot` says where `batch` is among the
    /// sources, if it was registered since they were last emptied. False when a value is not
    /// exact at the scale tried.
    fn push(
        &mut self,
        batch: &RecordBatch,
        slot: &mut Option<Slot>,
        start: usize,
        len: usize,
        stop: &AtomicBool,
    ) -> Result<bool> {
        let source = match *slot {
            Some((epoch, source)) if epoch == self.epoch => source,
            _ => {
                self.sources.push(batch.clone());
                *slot = Some((self.epoch, self.sources.len() - 1));
                self.sources.len() - 1
            }
        };
        // More rows of a key that fills a whole group: wait for the next key before trying again.
        let order = self.order;
        let more_of_open_key = self.open_key.is_some_and(|open| {
            order.key_at(batch, start) == open && order.key_at(batch, start + len - 1) == open
        });
        self.rows += len;
        self.runs.push((source, start, len));
        if more_of_open_key {
            return Ok(true);
        }
        self.open_key = None;
        while self.rows > self.group_rows {
            match self.write_group(false, stop)? {
                Group::Written => {}
                Group::KeyOpen(key) => {
                    self.open_key = Some(key);
                    break;
                }
                Group::Misfit => return Ok(false),
            }
        }
        Ok(true)
    }

    /// The pending rows in order, as one batch; the sources are emptied.
    fn gather(&mut self) -> Result<RecordBatch> {
        let batch = match self.runs.as_slice() {
            [(source, start, len)] => self.sources[*source].slice(*start, *len),
            runs => {
                let sources: Vec<&RecordBatch> = self.sources.iter().collect();
                let indices: Vec<(usize, usize)> = runs
                    .iter()
                    .flat_map(|&(source, start, len)| {
                        (start..start + len).map(move |r| (source, r))
                    })
                    .collect();
                interleave_record_batch(&sources, &indices)?
            }
        };
        self.sources.clear();
        self.runs.clear();
        self.epoch += 1;
        Ok(batch)
    }

    /// Makes `rows` (gathered, not written) the only pending rows.
    fn keep_pending(&mut self, rows: RecordBatch) {
        self.runs.push((self.sources.len(), 0, rows.num_rows()));
        self.sources.push(rows);
    }

    fn finish(mut self, stop: &AtomicBool) -> Result<Pass> {
        while self.rows > 0 {
            match self.write_group(true, stop)? {
                Group::Written | Group::KeyOpen(_) => {}
                Group::Misfit => return Ok(Pass::Misfit),
            }
        }
        let Some((writer, stats)) = self.written.take() else {
            return Ok(Pass::Empty);
        };
        writer.close()?;
        Ok(Pass::Done(Merged {
            stats,
            duplicates: self.duplicates,
        }))
    }

    /// Writes one row group from the pending runs: at most `group_rows` rows, ending where a
    /// key ends (the rows of one key are deduplicated together), or all the rows of one key that
    /// has more. Unless `last` (every row is pending), rows of the last pending key may still
    /// come: when they alone exceed a group, nothing is written ([`Group::KeyOpen`]).
    fn write_group(&mut self, last: bool, stop: &AtomicBool) -> Result<Group> {
        if stop.load(Ordering::Relaxed) {
            return Err(StorageError::Closed);
        }
        let pending = self.gather()?;
        let n = pending.num_rows();
        let mut cut = n.min(self.group_rows);
        if cut < n {
            // Back to the first row of the key at the cut: the rows of one key stay together.
            let key_at = |row| self.order.key_at(&pending, row);
            let at = key_at(cut);
            while cut > 0 && key_at(cut - 1) == at {
                cut -= 1;
            }
            if cut == 0 {
                // One key fills the group: the group takes all of its rows.
                cut = (1..=n).find(|&i| i == n || key_at(i) != at).unwrap_or(n);
                if cut == n && !last {
                    self.keep_pending(pending);
                    return Ok(Group::KeyOpen(at));
                }
            }
        }
        if cut < n {
            self.keep_pending(pending.slice(cut, n - cut));
        }
        self.rows = n - cut;
        let (group, duplicates) = dedup::dedup_sorted(pending.slice(0, cut))?;
        self.duplicates += duplicates;
        if group.num_rows() == 0 {
            return Ok(Group::Written);
        }
        let stats = parquet_writer::batch_stats(&group);
        let encoded = match self.scale {
            Some(scale) => match value_encoding::encode_at(&group, scale)? {
                Some(encoded) => encoded,
                None => return Ok(Group::Misfit),
            },
            None => group,
        };
        match &mut self.written {
            Some((writer, all)) => {
                writer.write(&encoded)?;
                all.absorb(stats);
            }
            None => {
                let file = self.file.take().ok_or_else(|| {
                    StorageError::InvalidInput("merge output written after it was closed".into())
                })?;
                let props = parquet_writer::writer_properties(self.scale.is_some(), self.order)?;
                let mut writer = GroupWriter::new(file, encoded.schema(), props)?;
                writer.write(&encoded)?;
                self.written = Some((writer, stats));
            }
        }
        Ok(Group::Written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memtable::Memtable;
    use crate::parquet_writer::sort_rows;
    use crate::point::Point;
    use arrow::array::{Array, AsArray, BooleanArray};
    use arrow::compute::concat_batches;
    use arrow::datatypes::{DataType, Float64Type, UInt32Type};
    use std::time::Instant;

    /// A data file of `points` as the flusher writes it (sorted in `order`, without repeats).
    fn write_in(dir: &Path, name: &str, points: &[Point], order: KeyOrder) -> PathBuf {
        let mut m = Memtable::new();
        m.append(1, points, Instant::now());
        let sorted = sort_rows(&m.freeze().expect("rows").batches, order).unwrap();
        let (sorted, _) = dedup::dedup_sorted(sorted).unwrap();
        let path = dir.join(name);
        parquet_writer::write_parquet_file(&path, &sorted, order).unwrap();
        path
    }

    fn write(dir: &Path, name: &str, points: &[Point]) -> PathBuf {
        write_in(dir, name, points, KeyOrder::PinDevice)
    }

    fn read(path: &Path) -> (RecordBatch, DataType, Vec<usize>) {
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
        let stored = builder.schema().field(COL_VALUE).data_type().clone();
        let groups = builder
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows() as usize)
            .collect();
        let batches: Vec<RecordBatch> = builder
            .build()
            .unwrap()
            .map(|b| value_encoding::decode_file_batch(b.unwrap()).unwrap())
            .collect();
        (concat_batches(&schema(), &batches).unwrap(), stored, groups)
    }

    /// The rows as comparable tuples (values by their bits).
    /// A row's key columns, in schema order.
    type Columns = (u32, u32, u16, i64);

    fn rows(batch: &RecordBatch) -> Vec<(Columns, Option<u64>, Option<String>)> {
        let (org, dev, pin, ts) = schema::key_columns(batch);
        let value = batch.column(COL_VALUE).as_primitive::<Float64Type>();
        let text = batch.column(schema::COL_TEXT).as_string::<i32>();
        (0..batch.num_rows())
            .map(|i| {
                (
                    (org[i], dev[i], pin[i], ts[i]),
                    value.is_valid(i).then(|| value.value(i).to_bits()),
                    text.is_valid(i).then(|| text.value(i).to_owned()),
                )
            })
            .collect()
    }

    fn point(dev: u32, pin: u16, ts: i64, v: u8) -> Point {
        match v {
            0 => Point::number(1, dev, pin, ts, 0.5),
            1 => Point::number(1, dev, pin, ts, 1.25),
            2 => Point::number(1, dev, pin, ts, 2.0),
            3 => Point::number(1, dev, pin, ts, 1.0 / 3.0),
            4 => Point::number(1, dev, pin, ts, 1e17),
            _ => Point::from_text(1, dev, pin, ts, "on"),
        }
    }

    fn drop_device(dev: u32) -> RowFilter {
        Box::new(move |b: &RecordBatch| {
            let d = b.column(schema::COL_DEVICE).as_primitive::<UInt32Type>();
            d.values()
                .iter()
                .map(|&x| Some(x != dev))
                .collect::<BooleanArray>()
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// The merge writes what sorting and deduplicating all kept rows at once wrote
        /// (the flush's own functions, and the compaction's before the merge streamed).
        #[test]
        fn merge_equals_one_sort_of_all_rows(
            files in proptest::collection::vec(
                proptest::collection::vec((0u32..3, 0u16..2, 0i64..8, 0u8..6), 1..40),
                1..8,
            ),
            group_rows in 1usize..12,
            fan_in in 2usize..5,
            dropped in proptest::option::of(0u32..3),
            pin_first in proptest::bool::ANY,
        ) {
            let order = if pin_first { KeyOrder::PinDevice } else { KeyOrder::DevicePin };
            let dir = tempfile::tempdir().unwrap();
            let inputs: Vec<PathBuf> = files
                .iter()
                .enumerate()
                .map(|(i, pts)| {
                    let pts: Vec<Point> = pts.iter().map(|&(d, p, t, v)| point(d, p, t, v)).collect();
                    write_in(dir.path(), &format!("{i}.parquet"), &pts, order)
                })
                .collect();
            let keep = dropped.map(drop_device);
            let all: Vec<RecordBatch> = inputs.iter().map(|p| read(p).0).collect();
            let all = concat_batches(&schema(), &all).unwrap();
            let all = match &keep {
                Some(keep) => filter_record_batch(&all, &keep(&all)).unwrap(),
                None => all,
            };
            let out = dir.path().join("out.parquet");
            let stop = AtomicBool::new(false);
            let shape = Shape { group_rows, fan_in, order };
            let merged = merge_in_levels(&out, &inputs, keep.as_ref(), &stop, shape, 0).unwrap();
            if all.num_rows() == 0 {
                proptest::prop_assert!(merged.is_none());
                proptest::prop_assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), inputs.len());
                return Ok(());
            }
            let (expected, dups) = dedup::dedup_sorted(sort_rows(&[all], order).unwrap()).unwrap();
            let (merged, bytes) = merged.expect("rows kept");
            let (got, _, groups) = read(&out);
            proptest::prop_assert_eq!(rows(&got), rows(&expected));
            proptest::prop_assert_eq!(merged.duplicates, dups);
            proptest::prop_assert_eq!(merged.stats, parquet_writer::batch_stats(&expected));
            proptest::prop_assert_eq!(bytes, std::fs::metadata(&out).unwrap().len());
            // No intermediate file is left.
            proptest::prop_assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), inputs.len() + 1);
            // A row group holds at most `group_rows` rows, or the rows of one key.
            let mut start = 0;
            for rows in groups {
                let one_key = order.key_at(&got, start) == order.key_at(&got, start + rows - 1);
                proptest::prop_assert!(rows <= group_rows || one_key, "{} rows", rows);
                start += rows;
            }
        }
    }

    #[test]
    fn output_scale_is_the_largest_exact_one() {
        let dir = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(false);
        let halves = write(dir.path(), "a", &[point(1, 0, 1, 0)]); // scale 1
        let quarters = write(dir.path(), "b", &[point(1, 0, 2, 1)]); // scale 2
        let thirds = write(dir.path(), "c", &[point(1, 0, 3, 3)]); // Float64
        let huge = write(dir.path(), "d", &[point(1, 0, 4, 4)]); // scale 0, not exact at 2
        let stored = |inputs: &[&PathBuf]| {
            let inputs: Vec<PathBuf> = inputs.iter().map(|p| (*p).clone()).collect();
            let out = dir.path().join("out");
            merge_files(&out, &inputs, None, &stop, KeyOrder::PinDevice)
                .unwrap()
                .expect("rows");
            let (batch, stored, _) = read(&out);
            assert_eq!(batch.num_rows(), inputs.len());
            stored
        };
        assert_eq!(stored(&[&halves, &quarters]), DataType::Decimal64(18, 2));
        assert_eq!(stored(&[&halves, &thirds]), DataType::Float64);
        assert_eq!(
            stored(&[&huge, &halves]),
            DataType::Decimal64(18, 1),
            "1e17 is exact at 1"
        );
        // 1e17 × 100 exceeds 18 digits: the merge starts over as Float64.
        assert_eq!(stored(&[&huge, &quarters]), DataType::Float64);
    }

    #[test]
    fn unsorted_input_is_refused_and_stop_abandons() {
        let dir = tempfile::tempdir().unwrap();
        let good = write(dir.path(), "good", &[point(1, 0, 1, 0), point(2, 0, 1, 0)]);
        // A file whose rows are not in key order (written without the flush's sort).
        let mut m = Memtable::new();
        m.append(1, &[point(2, 0, 1, 0), point(1, 0, 1, 0)], Instant::now());
        let unsorted = concat_batches(&schema(), &m.freeze().unwrap().batches).unwrap();
        let bad = dir.path().join("bad");
        parquet_writer::write_parquet_file(&bad, &unsorted, KeyOrder::PinDevice).unwrap();
        // A file sorted device first, merged as pin first: device 1 pin 1 before device 2 pin 0.
        let other = write_in(
            dir.path(),
            "other",
            &[point(1, 1, 1, 0), point(2, 0, 1, 0)],
            KeyOrder::DevicePin,
        );
        let out = dir.path().join("out");
        let merge = |inputs: &[PathBuf]| {
            merge_files(
                &out,
                inputs,
                None,
                &AtomicBool::new(false),
                KeyOrder::PinDevice,
            )
            .unwrap_err()
            .to_string()
        };
        let err = merge(&[good.clone(), bad]);
        assert!(
            err.contains("not sorted by (org_id, pin, device_id, ts)"),
            "{err}"
        );
        let err = merge(&[good.clone(), other]);
        assert!(err.contains("not sorted"), "{err}");
        assert!(!out.exists());
        assert!(
            std::fs::read_dir(dir.path())
                .unwrap()
                .all(|e| { !e.unwrap().file_name().to_string_lossy().ends_with(".tmp") })
        );
        let stopped = merge_files(
            &out,
            &[good.clone(), good],
            None,
            &AtomicBool::new(true),
            KeyOrder::PinDevice,
        );
        assert!(matches!(stopped, Err(StorageError::Closed)));
        assert!(!out.exists());
    }
}
