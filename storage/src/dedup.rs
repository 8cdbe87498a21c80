//! Duplicate points: the same `(org_id, device_id, pin, ts, value)` written twice is stored once.
//!
//! Two places remove them:
//! - on the write path ([`filter_new`]), against the last-value cache and the memtables: a point
//!   newer than its series' newest value is new (no extra work); one that is not is looked up
//!   among the rows of its series in the memtables, through a [`SeriesIndex`] each memtable
//!   builds on its first late point (so a device re-sending an offline buffer costs a lookup
//!   per point, not a scan of the memtables per batch);
//! - when rows are written to Parquet ([`dedup_sorted`]): at flush, and when compaction merges
//!   the files of a partition (which also removes a late re-send of a row already flushed).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::Float64Type;
use arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::last_value::{LastValueCache, Novelty};
use crate::memtable::CHUNK_ROWS;
use crate::point::{Point, Value};
use crate::schema::{self, COL_TEXT, COL_VALUE};

/// Identity of a stored value: number bits or text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ValueKey {
    Number(u64),
    Text(String),
}

/// A stored row: series, timestamp and value.
pub(crate) type RowKey = (u32, u32, u16, i64, ValueKey);

/// A series: `(org_id, device_id, pin)`.
type Series = (u32, u32, u16);

pub(crate) fn key_of(p: &Point) -> RowKey {
    let v = match &p.value {
        Value::Number(n) => ValueKey::Number(n.to_bits()),
        Value::Text(t) => ValueKey::Text(t.clone()),
    };
    (p.org_id, p.device_id, p.pin, p.ts_us, v)
}

/// The points of `points` that are not duplicates, in order; applies the kept ones to the
/// last-value cache. `find_stored` is called (at most once) with the keys of the late points
/// and returns those of them the memtables hold. Returns the points to store and the number of
/// duplicates dropped.
pub(crate) fn filter_new<'a>(
    points: &'a [Point],
    last: &LastValueCache,
    find_stored: impl FnOnce(&HashSet<RowKey>) -> HashSet<RowKey>,
) -> (Cow<'a, [Point]>, usize) {
    let Some(novelty) = last.apply_classify(points) else {
        return (Cow::Borrowed(points), 0);
    };
    let suspects: HashSet<RowKey> = points
        .iter()
        .zip(&novelty)
        .filter(|(_, n)| **n == Novelty::Unknown)
        .map(|(p, _)| key_of(p))
        .collect();
    let stored = if suspects.is_empty() {
        HashSet::new()
    } else {
        find_stored(&suspects)
    };
    let mut seen: HashSet<RowKey> = HashSet::new();
    let mut kept = Vec::with_capacity(points.len());
    let mut dropped = 0;
    for (p, n) in points.iter().zip(&novelty) {
        match n {
            Novelty::New => kept.push(p.clone()),
            Novelty::Duplicate => dropped += 1,
            Novelty::Unknown => {
                let key = key_of(p);
                if stored.contains(&key) || !seen.insert(key) {
                    dropped += 1;
                } else {
                    last.apply(std::slice::from_ref(p));
                    kept.push(p.clone());
                }
            }
        }
    }
    (Cow::Owned(kept), dropped)
}

/// The value of row `i` of a batch with the telemetry schema.
fn value_key_at(batch: &RecordBatch, i: usize) -> ValueKey {
    let value = batch.column(COL_VALUE).as_primitive::<Float64Type>();
    if value.is_valid(i) {
        return ValueKey::Number(value.value(i).to_bits());
    }
    let text = batch.column(COL_TEXT).as_string::<i32>();
    ValueKey::Text(if text.is_valid(i) {
        text.value(i).to_owned()
    } else {
        String::new()
    })
}

/// Adds to `found` the keys of `wanted` that are rows of `batches`, by scanning them.
pub(crate) fn scan_for(
    batches: &[RecordBatch],
    wanted: &HashSet<RowKey>,
    found: &mut HashSet<RowKey>,
) {
    let min_ts = wanted.iter().map(|k| k.3).min().unwrap_or(i64::MAX);
    let max_ts = wanted.iter().map(|k| k.3).max().unwrap_or(i64::MIN);
    let series: HashSet<(u32, u32, u16, i64)> =
        wanted.iter().map(|k| (k.0, k.1, k.2, k.3)).collect();
    for b in batches {
        let (org, dev, pin, ts) = schema::key_columns(b);
        for i in 0..b.num_rows() {
            let t = ts[i];
            if t < min_ts || t > max_ts || !series.contains(&(org[i], dev[i], pin[i], t)) {
                continue;
            }
            let key = (org[i], dev[i], pin[i], t, value_key_at(b, i));
            if wanted.contains(&key) {
                found.insert(key);
            }
        }
    }
}

/// Where the rows of a memtable's sealed chunks are, by series: built on the memtable's first
/// late point and extended over the chunks sealed since. Costs 12 bytes per indexed row (up to
/// twice that with the vectors' spare capacity), only in memtables that received late points.
#[derive(Debug, Default)]
pub(crate) struct SeriesIndex {
    series: HashMap<Series, SeriesRows>,
    /// Chunks indexed so far (a prefix of the memtable's chunks).
    chunks: usize,
}

#[derive(Debug, Default)]
struct SeriesRows {
    ts: Vec<i64>,
    /// `chunk * CHUNK_ROWS + row`: every chunk but the last holds exactly `CHUNK_ROWS` rows.
    pos: Vec<u32>,
}

impl SeriesIndex {
    /// Indexes the chunks of `chunks` (all of the memtable's sealed chunks, in order) not
    /// indexed yet.
    fn extend(&mut self, chunks: &[RecordBatch]) {
        for (c, b) in chunks.iter().enumerate().skip(self.chunks) {
            let (org, dev, pin, ts) = schema::key_columns(b);
            let base = (c * CHUNK_ROWS) as u32;
            for i in 0..b.num_rows() {
                let rows = self.series.entry((org[i], dev[i], pin[i])).or_default();
                rows.ts.push(ts[i]);
                rows.pos.push(base + i as u32);
            }
        }
        self.chunks = self.chunks.max(chunks.len());
    }

    /// Adds to `found` the keys of `wanted` that are rows of `chunks` (all of the memtable's
    /// sealed chunks, in order), indexing the chunks sealed since the last call first.
    pub(crate) fn find(
        &mut self,
        chunks: &[RecordBatch],
        wanted: &HashSet<RowKey>,
        found: &mut HashSet<RowKey>,
    ) {
        self.extend(chunks);
        for key in wanted {
            let Some(rows) = self.series.get(&(key.0, key.1, key.2)) else {
                continue;
            };
            for (t, pos) in rows.ts.iter().zip(&rows.pos) {
                if *t != key.3 {
                    continue;
                }
                let (c, i) = (*pos as usize / CHUNK_ROWS, *pos as usize % CHUNK_ROWS);
                if value_key_at(&chunks[c], i) == key.4 {
                    found.insert(key.clone());
                    break;
                }
            }
        }
    }
}

/// Removes repeated rows from a batch sorted in a key order (rows of one key adjacent): of rows equal in
/// those columns and in value, the first is kept. Returns the batch and the rows removed.
pub(crate) fn dedup_sorted(batch: RecordBatch) -> Result<(RecordBatch, usize)> {
    let n = batch.num_rows();
    let (org, dev, pin, ts) = schema::key_columns(&batch);
    let same_key = |a: usize, b: usize| {
        ts[a] == ts[b] && pin[a] == pin[b] && dev[a] == dev[b] && org[a] == org[b]
    };
    if (1..n).all(|i| !same_key(i - 1, i)) {
        return Ok((batch, 0));
    }
    let value = batch.column(COL_VALUE).as_primitive::<Float64Type>();
    let text = batch.column(COL_TEXT).as_string::<i32>();
    let same_value = |a: usize, b: usize| match (value.is_valid(a), value.is_valid(b)) {
        (true, true) => value.value(a).to_bits() == value.value(b).to_bits(),
        (false, false) => {
            text.is_valid(a) == text.is_valid(b)
                && (!text.is_valid(a) || text.value(a) == text.value(b))
        }
        _ => false,
    };
    let mut keep = vec![true; n];
    let mut run_start = 0;
    for i in 1..=n {
        if i < n && same_key(run_start, i) {
            continue;
        }
        // Rows run_start..i share a key: keep the first of each distinct value.
        for j in run_start + 1..i {
            if (run_start..j).any(|k| keep[k] && same_value(k, j)) {
                keep[j] = false;
            }
        }
        run_start = i;
    }
    let removed = keep.iter().filter(|k| !**k).count();
    let filtered = filter_record_batch(&batch, &BooleanArray::from(keep))?;
    Ok((filtered, removed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memtable::Memtable;
    use crate::parquet_writer::sort_rows;
    use std::time::Instant;

    fn batches(points: &[Point]) -> Vec<RecordBatch> {
        let mut m = Memtable::new();
        m.append(1, points, Instant::now());
        m.freeze().map(|f| f.batches).unwrap_or_default()
    }

    #[test]
    fn write_path_drops_repeats_of_memtable_rows() {
        let last = LastValueCache::default();
        let first: Vec<Point> = (0..10)
            .map(|t| Point::number(1, 1, 0, t, t as f64))
            .collect();
        let (kept, dropped) = filter_new(&first, &last, |_| panic!("no late points"));
        assert_eq!((kept.len(), dropped), (10, 0));
        let mem = batches(&first);
        let again = vec![
            Point::number(1, 1, 0, 3, 3.0),       // repeat of a memtable row
            Point::number(1, 1, 0, 3, 4.0),       // same time, other value: kept
            Point::number(1, 1, 0, -1, 1.0),      // late, new
            Point::number(1, 1, 0, -1, 1.0),      // repeat within the batch
            Point::number(1, 1, 0, 9, 9.0),       // repeat of the newest value
            Point::from_text(1, 1, 0, 5, "five"), // text vs number: different
            Point::number(1, 1, 0, 11, 1.0),      // new
        ];
        let (kept, dropped) = filter_new(&again, &last, |wanted| {
            let mut found = HashSet::new();
            scan_for(&mem, wanted, &mut found);
            found
        });
        assert_eq!(dropped, 3);
        assert_eq!(
            kept.iter().map(|p| p.ts_us).collect::<Vec<_>>(),
            [3, -1, 5, 11]
        );
        assert_eq!(last.get(1, 1, 0).unwrap().ts_us, 11);
    }

    #[test]
    fn flush_dedup_keeps_first_of_each_value() {
        let pts = vec![
            Point::number(1, 1, 0, 5, 1.0),
            Point::number(1, 1, 0, 5, 2.0),
            Point::number(1, 1, 0, 5, 1.0),
            Point::from_text(1, 1, 0, 5, "a"),
            Point::from_text(1, 1, 0, 5, "a"),
            Point::number(1, 1, 1, 5, 1.0),
            Point::number(1, 1, 0, 6, 1.0),
            Point::number(1, 1, 0, 6, 1.0),
        ];
        let sorted = sort_rows(&batches(&pts), crate::schema::KeyOrder::PinDevice).unwrap();
        let (b, removed) = dedup_sorted(sorted).unwrap();
        assert_eq!(removed, 3);
        assert_eq!(b.num_rows(), 5);
        let (b2, removed2) = dedup_sorted(b.clone()).unwrap();
        assert_eq!((removed2, b2.num_rows()), (0, 5));
    }
}
