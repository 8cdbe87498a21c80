//! proptest strategies shared by the round-trip and arbitrary-input tests. Bodies borrow their
//! bytes, so strategies produce owned data and the tests build the borrowed views from it.

use bytes::Bytes;
use pinhouse_protocol::Frame;
use pinhouse_protocol::body::Hardware;
use proptest::collection::vec;
use proptest::prelude::*;

/// Any bytes, up to `max` long.
pub fn bytes_upto(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=max)
}

/// Bytes without NUL, `min..=max` long.
pub fn no_nul(min: usize, max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(1u8..=255, min..=max)
}

/// A non-empty, NUL-free name that is not all digits (property names, event codes…).
pub fn name() -> impl Strategy<Value = Vec<u8>> {
    no_nul(1, 24).prop_filter("not all digits", |n| !n.iter().all(u8::is_ascii_digit))
}

/// NUL-free text as a `String` (what `DeviceInfo` carries).
pub fn text() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,24}"
}

/// Any frame a decoder accepts (id ≠ 0; messages never use command 0).
pub fn frame(max_body: usize) -> impl Strategy<Value = Frame> {
    prop_oneof![
        (1..=u16::MAX, any::<u16>())
            .prop_map(|(msg_id, status)| Frame::Response { msg_id, status }),
        (1..=u8::MAX, 1..=u16::MAX, bytes_upto(max_body)).prop_map(|(command, msg_id, body)| {
            Frame::Message {
                command,
                msg_id,
                body: Bytes::from(body),
            }
        }),
    ]
}

/// Owned form of a [`Hardware`] body.
#[derive(Debug, Clone)]
pub enum HardwareData {
    VirtualWrite(u8, Vec<u8>),
    VirtualRead(u8),
    DigitalWrite(u8, Vec<u8>),
    DigitalRead(u8),
    AnalogWrite(u8, Vec<u8>),
    AnalogRead(u8),
    /// Already-encoded `pin\0mode…` pairs.
    PinMode(Vec<u8>),
}

impl HardwareData {
    pub fn view(&self) -> Hardware<'_> {
        match self {
            HardwareData::VirtualWrite(pin, v) => Hardware::VirtualWrite {
                pin: *pin,
                values: v,
            },
            HardwareData::VirtualRead(pin) => Hardware::VirtualRead { pin: *pin },
            HardwareData::DigitalWrite(pin, v) => Hardware::DigitalWrite {
                pin: *pin,
                value: v,
            },
            HardwareData::DigitalRead(pin) => Hardware::DigitalRead { pin: *pin },
            HardwareData::AnalogWrite(pin, v) => Hardware::AnalogWrite {
                pin: *pin,
                value: v,
            },
            HardwareData::AnalogRead(pin) => Hardware::AnalogRead { pin: *pin },
            HardwareData::PinMode(pairs) => Hardware::PinMode { pairs },
        }
    }
}

pub fn hardware() -> impl Strategy<Value = HardwareData> {
    let pairs = vec((any::<u8>(), no_nul(1, 4)), 0..5).prop_map(|pairs| {
        let mut out = Vec::new();
        for (i, (pin, mode)) in pairs.iter().enumerate() {
            if i > 0 {
                out.push(0);
            }
            out.extend_from_slice(pin.to_string().as_bytes());
            out.push(0);
            out.extend_from_slice(mode);
        }
        out
    });
    prop_oneof![
        (any::<u8>(), bytes_upto(64)).prop_map(|(p, v)| HardwareData::VirtualWrite(p, v)),
        any::<u8>().prop_map(HardwareData::VirtualRead),
        (any::<u8>(), bytes_upto(8)).prop_map(|(p, v)| HardwareData::DigitalWrite(p, v)),
        any::<u8>().prop_map(HardwareData::DigitalRead),
        (any::<u8>(), bytes_upto(8)).prop_map(|(p, v)| HardwareData::AnalogWrite(p, v)),
        any::<u8>().prop_map(HardwareData::AnalogRead),
        pairs.prop_map(HardwareData::PinMode),
    ]
}

/// Splits `data` into chunks at the given (sorted, deduplicated) cut points.
pub fn chunks(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for p in points {
        out.push(data[start..p].to_vec());
        start = p;
    }
    out.push(data[start..].to_vec());
    out
}
