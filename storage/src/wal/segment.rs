//! One WAL segment file: its name, its 24-byte header, and a reader that walks its records and
//! stops at the first torn or corrupt one. The byte format is specified in `docs/wal.md`.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{Result, StorageError};
use crate::point::Point;

use super::record::{self, MAX_BODY_LEN, RECORD_HEADER_LEN, RecordHeader};

/// `PHWAL\r\n\x1a`: the CR LF and ^Z catch text-mode mangling, like PNG's signature.
pub(crate) const MAGIC: [u8; 8] = *b"PHWAL\r\n\x1a";
/// Current segment format version.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Size of the segment header: magic, version, segment id, CRC32C of the first 20 bytes.
pub(crate) const SEGMENT_HEADER_LEN: usize = 24;

/// File name of segment `id`: 20 zero-padded decimal digits, so names sort like ids.
pub(crate) fn segment_file_name(id: u64) -> String {
    format!("{id:020}.wal")
}

/// Parses a segment file name back to its id.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".wal")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// All segment files in `dir`, sorted by id.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(StorageError::io_path(dir))? {
        let entry = entry.map_err(StorageError::io_path(dir))?;
        if let Some(id) = entry.file_name().to_str().and_then(parse_segment_file_name) {
            out.push((id, entry.path()));
        }
    }
    out.sort_unstable_by_key(|(id, _)| *id);
    Ok(out)
}

/// Encodes the header of segment `id`.
pub(crate) fn encode_header(id: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&id.to_le_bytes());
    let crc = crc32c::crc32c(&h[..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

/// What the header of a segment file says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    /// A valid header of this segment id.
    Valid,
    /// The header was never completely written (crash while creating the segment): the file
    /// holds no records and can be removed.
    Torn(String),
}

/// Validates a segment header. A header that is clearly not ours (bad magic, other version,
/// other id) is an error: such a file is never silently removed.
pub(crate) fn check_header(path: &Path, expected_id: u64, bytes: &[u8]) -> Result<HeaderCheck> {
    if bytes.len() < SEGMENT_HEADER_LEN {
        return Ok(HeaderCheck::Torn(format!(
            "header is {} of {SEGMENT_HEADER_LEN} bytes",
            bytes.len()
        )));
    }
    let h = &bytes[..SEGMENT_HEADER_LEN];
    if h.iter().all(|&b| b == 0) {
        return Ok(HeaderCheck::Torn("header is all zeroes".into()));
    }
    if h[..8] != MAGIC {
        return Err(StorageError::corrupt(
            path,
            "not a pinhouse WAL segment (bad magic)",
        ));
    }
    let stored_crc = u32::from_le_bytes([h[20], h[21], h[22], h[23]]);
    if crc32c::crc32c(&h[..20]) != stored_crc {
        return Ok(HeaderCheck::Torn("header checksum mismatch".into()));
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != FORMAT_VERSION {
        return Err(StorageError::UnsupportedVersion {
            path: path.to_owned(),
            version,
        });
    }
    let id = u64::from_le_bytes([h[12], h[13], h[14], h[15], h[16], h[17], h[18], h[19]]);
    if id != expected_id {
        return Err(StorageError::corrupt(
            path,
            format!("header says segment {id}, file name says {expected_id}"),
        ));
    }
    Ok(HeaderCheck::Valid)
}

/// One record read back from a segment.
#[derive(Debug)]
pub(crate) struct ReadRecord {
    /// Byte offset of the record in the segment.
    pub offset: u64,
    pub seq: u64,
    pub points: Vec<Point>,
}

/// Why reading a segment stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TailProblem {
    /// Byte offset of the first bad record; everything before it is intact.
    pub offset: u64,
    /// Human-readable reason.
    pub reason: String,
}

/// Iterates the records of one segment file (after its header has been validated).
pub(crate) struct SegmentReader {
    path: PathBuf,
    reader: BufReader<File>,
    file_len: u64,
    pos: u64,
    body: Vec<u8>,
}

/// One step of [`SegmentReader::next_record`].
#[derive(Debug)]
pub(crate) enum Step {
    Record(ReadRecord),
    /// Clean end of the segment.
    End,
    /// A torn or corrupt record at `offset`: stop here.
    Tail(TailProblem),
}

impl SegmentReader {
    /// Opens `path` positioned after its header. The caller has validated the header.
    pub(crate) fn open(path: &Path) -> Result<SegmentReader> {
        let file = File::open(path).map_err(StorageError::io_path(path))?;
        let file_len = file.metadata().map_err(StorageError::io_path(path))?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        reader
            .read_exact(&mut header)
            .map_err(StorageError::io_path(path))?;
        Ok(SegmentReader {
            path: path.to_owned(),
            reader,
            file_len,
            pos: SEGMENT_HEADER_LEN as u64,
            body: Vec::new(),
        })
    }

    /// Reads the next record.
    pub(crate) fn next_record(&mut self) -> Result<Step> {
        let offset = self.pos;
        let remaining = self.file_len - self.pos;
        if remaining == 0 {
            return Ok(Step::End);
        }
        let tail = |reason: String| Ok(Step::Tail(TailProblem { offset, reason }));
        if remaining < RECORD_HEADER_LEN as u64 {
            return tail(format!("torn record header ({remaining} bytes)"));
        }
        let mut hb = [0u8; RECORD_HEADER_LEN];
        self.read_exact(&mut hb)?;
        let header = RecordHeader::parse(&hb);
        if header.len == 0 && header.crc == 0 && header.seq == 0 {
            return tail("zero-filled record header".into());
        }
        let len = header.len as usize;
        if len > MAX_BODY_LEN {
            return tail(format!("record length {len} exceeds the maximum"));
        }
        if (len as u64) > remaining - RECORD_HEADER_LEN as u64 {
            return tail(format!(
                "torn record body ({} of {len} bytes)",
                remaining - RECORD_HEADER_LEN as u64
            ));
        }
        self.body.resize(len, 0);
        let mut body = std::mem::take(&mut self.body);
        let read = self.read_exact(&mut body);
        self.body = body;
        read?;
        if record::record_crc(header.len, header.seq, &self.body) != header.crc {
            return tail(format!("checksum mismatch in record seq {}", header.seq));
        }
        let points = record::decode_body(&self.body).map_err(|reason| {
            StorageError::corrupt(
                &self.path,
                format!(
                    "record seq {} at offset {offset} has a valid checksum but {reason}",
                    header.seq
                ),
            )
        })?;
        self.pos += (RECORD_HEADER_LEN + len) as u64;
        Ok(Step::Record(ReadRecord {
            offset,
            seq: header.seq,
            points,
        }))
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        match self.reader.read_exact(buf) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(StorageError::corrupt(
                &self.path,
                "segment shrank while it was being read",
            )),
            Err(e) => Err(StorageError::IoPath {
                path: self.path.clone(),
                source: e,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(segment_file_name(7), "00000000000000000007.wal");
        assert_eq!(parse_segment_file_name("00000000000000000007.wal"), Some(7));
        assert_eq!(parse_segment_file_name("7.wal"), None);
        assert_eq!(
            parse_segment_file_name("00000000000000000007.wal.tmp"),
            None
        );
        assert_eq!(parse_segment_file_name("0000000000000000000x.wal"), None);
    }

    #[test]
    fn header_checks() {
        let p = Path::new("x.wal");
        let h = encode_header(5);
        assert_eq!(check_header(p, 5, &h).unwrap(), HeaderCheck::Valid);
        assert!(matches!(
            check_header(p, 5, &h[..10]).unwrap(),
            HeaderCheck::Torn(_)
        ));
        assert!(matches!(
            check_header(p, 5, &[0u8; 24]).unwrap(),
            HeaderCheck::Torn(_)
        ));
        assert!(check_header(p, 6, &h).is_err());
        let mut bad = h;
        bad[0] = b'X';
        assert!(matches!(
            check_header(p, 5, &bad),
            Err(StorageError::Corrupt { .. })
        ));
        let mut flipped = h;
        flipped[15] ^= 1;
        assert!(matches!(
            check_header(p, 5, &flipped).unwrap(),
            HeaderCheck::Torn(_)
        ));
    }
}
