//! Encoding of one WAL record: the 16-byte record header and the body that carries a batch of
//! points. The byte format is specified in `docs/wal.md`.

use crate::point::{Point, Value};

/// Size of the record header: `len u32, crc u32, seq u64`.
pub(crate) const RECORD_HEADER_LEN: usize = 16;

/// Largest body a record may carry. Larger writes are rejected; a larger `len` on disk is
/// treated as corruption (it protects replay from allocating garbage sizes).
pub(crate) const MAX_BODY_LEN: usize = 256 * 1024 * 1024;

/// Body kind: a batch of points.
pub(crate) const KIND_POINTS: u8 = 1;

const TAG_NUMBER: u8 = 0;
const TAG_TEXT: u8 = 1;

/// Encodes a batch of points as a record body.
pub(crate) fn encode_body(points: &[Point]) -> Vec<u8> {
    let text_bytes: usize = points
        .iter()
        .map(|p| match &p.value {
            Value::Text(t) => t.len(),
            Value::Number(_) => 0,
        })
        .sum();
    let mut out = Vec::with_capacity(5 + points.len() * 27 + text_bytes);
    out.push(KIND_POINTS);
    out.extend_from_slice(&(points.len() as u32).to_le_bytes());
    for p in points {
        encode_entry(&mut out, (p.org_id, p.device_id, p.pin), p.ts_us, &p.value);
    }
    out
}

/// Appends one point as an entry: `org_id`, `device_id`, `pin`, `ts_us`, then a tag and the
/// value (docs/wal.md, "Records"). The last-value log stores its entries the same way.
#[inline]
pub(crate) fn encode_entry(out: &mut Vec<u8>, key: (u32, u32, u16), ts_us: i64, value: &Value) {
    out.extend_from_slice(&key.0.to_le_bytes());
    out.extend_from_slice(&key.1.to_le_bytes());
    out.extend_from_slice(&key.2.to_le_bytes());
    out.extend_from_slice(&ts_us.to_le_bytes());
    match value {
        Value::Number(n) => {
            out.push(TAG_NUMBER);
            out.extend_from_slice(&n.to_bits().to_le_bytes());
        }
        Value::Text(t) => {
            out.push(TAG_TEXT);
            // Texts come from WAL records, whose bodies are at most `MAX_BODY_LEN`.
            out.extend_from_slice(&(t.len() as u32).to_le_bytes());
            out.extend_from_slice(t.as_bytes());
        }
    }
}

/// The CRC32C stored in a record header: over `len ‖ seq ‖ body`.
pub(crate) fn record_crc(len: u32, seq: u64, body: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&len.to_le_bytes());
    let crc = crc32c::crc32c_append(crc, &seq.to_le_bytes());
    crc32c::crc32c_append(crc, body)
}

/// Appends a full record (header + body) to `out`.
pub(crate) fn append_record(out: &mut Vec<u8>, seq: u64, body: &[u8]) {
    let len = body.len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&record_crc(len, seq, body).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(body);
}

/// A parsed record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub len: u32,
    pub crc: u32,
    pub seq: u64,
}

impl RecordHeader {
    pub(crate) fn parse(b: &[u8; RECORD_HEADER_LEN]) -> RecordHeader {
        RecordHeader {
            len: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            crc: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            seq: u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
        }
    }
}

/// A little-endian cursor over a body; every read is bounds-checked.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Whether every byte was read.
    pub(crate) fn is_done(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// Reads one entry written by [`encode_entry`].
    pub(crate) fn entry(&mut self) -> Result<Point, String> {
        let (org_id, device_id, pin) = (self.u32()?, self.u32()?, self.u16()?);
        let ts_us = self.u64()? as i64;
        let value = match self.u8()? {
            TAG_NUMBER => Value::Number(f64::from_bits(self.u64()?)),
            TAG_TEXT => {
                let n = self.u32()? as usize;
                let bytes = self.take(n)?;
                let s =
                    std::str::from_utf8(bytes).map_err(|e| format!("text is not UTF-8: {e}"))?;
                Value::Text(s.to_owned())
            }
            t => return Err(format!("unknown value tag {t}")),
        };
        Ok(Point {
            org_id,
            device_id,
            pin,
            ts_us,
            value,
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| format!("body truncated at byte {} (need {n} more)", self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

/// Decodes a record body. An error means the body is malformed even though its checksum
/// matched (a format bug or an unknown record kind), so the caller treats it as corruption.
pub(crate) fn decode_body(body: &[u8]) -> Result<Vec<Point>, String> {
    let mut r = Reader::new(body);
    let kind = r.u8()?;
    if kind != KIND_POINTS {
        return Err(format!("unknown record kind {kind}"));
    }
    let count = r.u32()? as usize;
    // Each point takes at least 24 bytes: guard the allocation against a bogus count.
    if count > body.len() / 24 + 1 {
        return Err(format!(
            "point count {count} does not fit in {} bytes",
            body.len()
        ));
    }
    let mut points = Vec::with_capacity(count);
    for _ in 0..count {
        points.push(r.entry()?);
    }
    if r.pos != body.len() {
        return Err(format!(
            "{} trailing bytes after {count} points",
            body.len() - r.pos
        ));
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<Point> {
        vec![
            Point::number(1, 2, 3, 1_700_000_000_000_000, 21.5),
            Point::from_text(u32::MAX, 0, u16::MAX, -5, "héllo\u{0}world"),
            Point::number(0, 0, 0, i64::MIN, f64::NAN),
            Point::from_text(7, 8, 9, i64::MAX, ""),
        ]
    }

    #[test]
    fn roundtrip() {
        let pts = sample();
        let body = encode_body(&pts);
        let back = decode_body(&body).unwrap();
        assert_eq!(back.len(), pts.len());
        for (a, b) in pts.iter().zip(&back) {
            assert_eq!(
                (a.org_id, a.device_id, a.pin, a.ts_us),
                (b.org_id, b.device_id, b.pin, b.ts_us)
            );
            match (&a.value, &b.value) {
                (Value::Number(x), Value::Number(y)) => assert_eq!(x.to_bits(), y.to_bits()),
                (x, y) => assert_eq!(x, y),
            }
        }
    }

    #[test]
    fn header_layout() {
        let mut out = Vec::new();
        append_record(&mut out, 42, b"abc");
        assert_eq!(out.len(), RECORD_HEADER_LEN + 3);
        let h = RecordHeader::parse(out[..16].try_into().unwrap());
        assert_eq!(h.len, 3);
        assert_eq!(h.seq, 42);
        assert_eq!(h.crc, record_crc(3, 42, b"abc"));
        assert_ne!(record_crc(3, 43, b"abc"), h.crc);
    }

    #[test]
    fn rejects_truncated_and_garbage() {
        let body = encode_body(&sample());
        for cut in 0..body.len() {
            assert!(decode_body(&body[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = body.clone();
        extra.push(0);
        assert!(decode_body(&extra).is_err());
        assert!(decode_body(&[9, 0, 0, 0, 0]).is_err());
        assert!(decode_body(&[KIND_POINTS, 255, 255, 255, 255]).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_body(&bytes);
        }

        #[test]
        fn roundtrip_any(pts in proptest::collection::vec(
            (any::<u32>(), any::<u32>(), any::<u16>(), any::<i64>(),
             prop_oneof![any::<f64>().prop_map(Value::Number), ".{0,20}".prop_map(Value::Text)]),
            0..50)) {
            let pts: Vec<Point> = pts.into_iter().map(|(o, d, p, t, v)| Point { org_id: o, device_id: d, pin: p, ts_us: t, value: v }).collect();
            let back = decode_body(&encode_body(&pts)).unwrap();
            prop_assert_eq!(back.len(), pts.len());
            for (a, b) in pts.iter().zip(&back) {
                let same = match (&a.value, &b.value) {
                    (Value::Number(x), Value::Number(y)) => x.to_bits() == y.to_bits(),
                    (x, y) => x == y,
                };
                prop_assert!(same);
                prop_assert_eq!((a.org_id, a.device_id, a.pin, a.ts_us), (b.org_id, b.device_id, b.pin, b.ts_us));
            }
        }
    }
}
