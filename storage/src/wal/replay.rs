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
                .and_then(|f| f.take(segment::SEGMENT_HEADER_LEN as u64).read_to_end(&mut head))
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

fn cut_tail(path: &Path, file_len: u64, offset: u64, reason: String, out: &mut ReplayOutcome) -> Result<()> {
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
