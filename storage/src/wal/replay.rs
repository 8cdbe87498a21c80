//! Reading the WAL back on open.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Result, StorageError};
use crate::point::Point;

use super::ClosedSegment;
use super::segment::{self, HeaderCheck, SegmentReader, Step};

/// A torn or corrupt tail found (and cut off) during replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub path: PathBuf,
    /// Offset of the first bad byte; the file was truncated to this length (0 when the whole
    /// file was removed because its header was torn).
    pub offset: u64,
    /// Bytes dropped.
    pub dropped_bytes: u64,
    /// What was wrong.
    pub reason: String,
}

/// What replay found.
#[derive(Debug, Default)]
pub(crate) struct ReplayOutcome {
    /// Every segment still on disk after replay, oldest first, with its highest sequence number.
    pub segments: Vec<ClosedSegment>,
    /// Highest sequence number seen (0 when none).
    pub last_seq: u64,
    /// Highest segment id seen (0 when none).
    pub max_segment_id: u64,
    /// Records applied (newer than the flushed position).
    pub records: u64,
    /// Points applied.
    pub points: u64,
    /// Records skipped because Parquet already holds them.
    pub skipped_records: u64,
    /// Torn or corrupt tails that were cut off.
    pub torn: Vec<TornTail>,
}

/// Replays every segment in `dir`, oldest first, calling `apply(seq, points)` for each record
/// with `seq > flushed_seq`, in sequence order. Each segment is read up to its first torn or
/// corrupt record; the segment is truncated there (logged as a warning and reported) and replay
/// continues with the next segment, since later segments may hold durable records.
pub(crate) fn replay(
    dir: &Path,
    flushed_seq: u64,
    mut apply: impl FnMut(u64, Vec<Point>) -> Result<()>,
) -> Result<ReplayOutcome> {
    let started = Instant::now();
    let mut out = ReplayOutcome::default();
    let segments = segment::list_segments(dir)?;
    for (id, path) in segments {
        out.max_segment_id = out.max_segment_id.max(id);
        let file_len = std::fs::metadata(&path)
            .map_err(StorageError::io_path(&path))?
            .len();
        let mut head = Vec::with_capacity(segment::SEGMENT_HEADER_LEN);
        {
            use std::io::Read;
            std::fs::File::open(&path)
                .and_then(|f| {
                    f.take(segment::SEGMENT_HEADER_LEN as u64)
                        .read_to_end(&mut head)
                })
                .map_err(StorageError::io_path(&path))?;
        }
        if let HeaderCheck::Torn(reason) = segment::check_header(&path, id, &head)? {
            tracing::warn!(path = %path.display(), %reason, bytes = file_len, "removing WAL segment with a torn header");
            std::fs::remove_file(&path).map_err(StorageError::io_path(&path))?;
            out.torn.push(TornTail {
                path,
                offset: 0,
                dropped_bytes: file_len,
                reason,
            });
            continue;
        }
        let mut reader = SegmentReader::open(&path)?;
        let mut seg_max = out.last_seq;
        loop {
            match reader.next_record()? {
                Step::Record(rec) => {
                    if rec.seq <= out.last_seq {
                        // Sequence numbers only grow; a step back means this is stale or
                        // foreign data, so it is treated like a corrupt tail.
                        cut_tail(
                            &path,
                            file_len,
                            rec.offset,
                            format!("sequence went back from {} to {}", out.last_seq, rec.seq),
                            &mut out,
                        )?;
                        break;
                    }
                    out.last_seq = rec.seq;
                    seg_max = rec.seq;
                    if rec.seq <= flushed_seq {
                        out.skipped_records += 1;
                    } else {
                        out.records += 1;
                        out.points += rec.points.len() as u64;
                        apply(rec.seq, rec.points)?;
                    }
                }
                Step::End => break,
                Step::Tail(problem) => {
                    cut_tail(&path, file_len, problem.offset, problem.reason, &mut out)?;
                    break;
                }
            }
        }
        out.segments.push(ClosedSegment {
            id,
            path,
            max_seq: seg_max,
        });
    }
    tracing::info!(
        segments = out.segments.len(),
        records = out.records,
        points = out.points,
        skipped_records = out.skipped_records,
        torn = out.torn.len(),
        last_seq = out.last_seq,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "WAL replayed"
    );
    Ok(out)
}

fn cut_tail(
    path: &Path,
    file_len: u64,
    offset: u64,
    reason: String,
    out: &mut ReplayOutcome,
) -> Result<()> {
    let dropped = file_len.saturating_sub(offset);
    tracing::warn!(path = %path.display(), offset, dropped_bytes = dropped, %reason, "WAL tail is torn or corrupt; truncating it");
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(StorageError::io_path(path))?;
    f.set_len(offset)
        .and_then(|()| f.sync_all())
        .map_err(StorageError::io_path(path))?;
    out.torn.push(TornTail {
        path: path.to_owned(),
        offset,
        dropped_bytes: dropped,
        reason,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::{ClosedSegments, WalWriter, record};
    use std::sync::Arc;

    fn write_segments(dir: &Path, records: u64) {
        let closed = Arc::new(ClosedSegments::default());
        let mut w = WalWriter::create(dir, 1, 1, 200, true, closed).unwrap();
        for i in 0..records {
            let body = record::encode_body(&[Point::number(1, 1, 1, i as i64, i as f64)]);
            w.append_group(&[&body]).unwrap();
        }
        w.sync().unwrap();
    }

    fn replay_seqs(dir: &Path, flushed: u64) -> (Vec<u64>, ReplayOutcome) {
        let mut seqs = Vec::new();
        let out = replay(dir, flushed, |seq, pts| {
            assert_eq!(pts.len(), 1);
            assert_eq!(pts[0].ts_us as u64, seq - 1);
            seqs.push(seq);
            Ok(())
        })
        .unwrap();
        (seqs, out)
    }

    #[test]
    fn replays_in_order_and_skips_flushed() {
        let dir = tempfile::tempdir().unwrap();
        write_segments(dir.path(), 20);
        let (seqs, out) = replay_seqs(dir.path(), 0);
        assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
        assert!(out.segments.len() > 2);
        assert_eq!(out.last_seq, 20);
        let (seqs, out) = replay_seqs(dir.path(), 12);
        assert_eq!(seqs, (13..=20).collect::<Vec<_>>());
        assert_eq!(out.skipped_records, 12);
        assert!(out.torn.is_empty());
        // Segment max seqs are increasing and end at the last record.
        let maxes: Vec<u64> = out.segments.iter().map(|s| s.max_seq).collect();
        assert!(maxes.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(*maxes.last().unwrap(), 20);
    }

    #[test]
    fn corrupt_record_in_a_middle_segment_keeps_later_segments() {
        let dir = tempfile::tempdir().unwrap();
        write_segments(dir.path(), 20);
        let segs = segment::list_segments(dir.path()).unwrap();
        let victim = &segs[1].1;
        let mut bytes = std::fs::read(victim).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xFF; // last record of the second segment
        std::fs::write(victim, &bytes).unwrap();
        let (seqs, out) = replay_seqs(dir.path(), 0);
        assert_eq!(out.torn.len(), 1);
        assert_eq!(&out.torn[0].path, victim);
        assert_eq!(seqs.len(), 19, "only the corrupt record is lost");
        assert_eq!(*seqs.last().unwrap(), 20);
        // The cut is durable: a second replay finds nothing wrong.
        let (seqs2, out2) = replay_seqs(dir.path(), 0);
        assert_eq!(seqs2, seqs);
        assert!(out2.torn.is_empty());
    }
}
