//! Mapping of Blynk pins (V, D, A) onto the `pin` column.
//!
//! The telemetry table has one `pin` column of type UInt16. Virtual pins keep
//! their number (V0–V255 → 0–255); digital pins are stored at 256 + n and
//! analog pins at 512 + n, so the three never collide and `pin < 256` selects
//! virtual pins in SQL.

/// Kind of a Blynk pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinKind {
    /// `V` pins, written with `vw`.
    Virtual,
    /// `D` pins, written with `dw`.
    Digital,
    /// `A` pins, written with `aw`.
    Analog,
}

/// A pin as devices and HTTP clients name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinRef {
    /// V, D or A.
    pub kind: PinKind,
    /// Number on the wire, 0–255.
    pub number: u8,
}

const DIGITAL_BASE: u16 = 256;
const ANALOG_BASE: u16 = 512;

impl PinRef {
    /// A virtual pin.
    pub fn virtual_pin(number: u8) -> Self {
        Self {
            kind: PinKind::Virtual,
            number,
        }
    }

    /// Value stored in the `pin` column.
    pub fn column(self) -> u16 {
        let n = u16::from(self.number);
        match self.kind {
            PinKind::Virtual => n,
            PinKind::Digital => DIGITAL_BASE + n,
            PinKind::Analog => ANALOG_BASE + n,
        }
    }

    /// Inverse of [`PinRef::column`].
    pub fn from_column(column: u16) -> Option<Self> {
        let (kind, base) = match column {
            0..=255 => (PinKind::Virtual, 0),
            256..=511 => (PinKind::Digital, DIGITAL_BASE),
            512..=767 => (PinKind::Analog, ANALOG_BASE),
            _ => return None,
        };
        let number = u8::try_from(column - base).ok()?;
        Some(Self { kind, number })
    }

    /// Parses `V1`, `v1`, `D13`, `a0` (HTTP API spelling).
    pub fn parse(text: &str) -> Option<Self> {
        let mut chars = text.chars();
        let kind = match chars.next()? {
            'V' | 'v' => PinKind::Virtual,
            'D' | 'd' => PinKind::Digital,
            'A' | 'a' => PinKind::Analog,
            _ => return None,
        };
        let digits = chars.as_str();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 3 {
            return None;
        }
        let number = digits.parse::<u8>().ok()?;
        Some(Self { kind, number })
    }

    /// The `hardware` write operation for this kind (`vw`, `dw`, `aw`).
    pub fn write_op(self) -> &'static str {
        match self.kind {
            PinKind::Virtual => "vw",
            PinKind::Digital => "dw",
            PinKind::Analog => "aw",
        }
    }
}

impl std::fmt::Display for PinRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let letter = match self.kind {
            PinKind::Virtual => 'V',
            PinKind::Digital => 'D',
            PinKind::Analog => 'A',
        };
        write!(f, "{letter}{}", self.number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip() {
        for column in 0..768u16 {
            let pin = PinRef::from_column(column).unwrap();
            assert_eq!(pin.column(), column);
        }
        assert_eq!(PinRef::from_column(768), None);
    }

    #[test]
    fn parses_http_spelling() {
        assert_eq!(PinRef::parse("V1"), Some(PinRef::virtual_pin(1)));
        assert_eq!(PinRef::parse("v255").unwrap().column(), 255);
        assert_eq!(PinRef::parse("D13").unwrap().column(), 256 + 13);
        assert_eq!(PinRef::parse("a0").unwrap().column(), 512);
        for bad in ["", "V", "V256", "X1", "V-1", "V1.5", "V0001", "1"] {
            assert_eq!(PinRef::parse(bad), None, "{bad}");
        }
    }
}
