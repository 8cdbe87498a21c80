//! A single telemetry value as handed to the store.

/// The value of one point: a number, or raw text when it is not a single number.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Stored in the `value` column.
    Number(f64),
    /// Stored in the `text` column.
    Text(String),
}

/// One value written to one pin of one device at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Tenant.
    pub org_id: u32,
    /// Control-plane device id.
    pub device_id: u32,
    /// Virtual pin.
    pub pin: u16,
    /// Microseconds since the Unix epoch (UTC). Set by the caller; the store never reads the clock.
    pub ts_us: i64,
    /// The value.
    pub value: Value,
}

impl Value {
    /// `Number` when `text` parses as a finite `f64` after trimming whitespace, else `Text(text)`
    /// (the raw, untrimmed text).
    pub fn from_text(text: &str) -> Value {
        match text.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Value::Number(n),
            _ => Value::Text(text.to_owned()),
        }
    }
}

impl Point {
    /// Number when the text parses as a finite f64 (after trimming), else Text.
    pub fn from_text(org_id: u32, device_id: u32, pin: u16, ts_us: i64, text: &str) -> Point {
        Point {
            org_id,
            device_id,
            pin,
            ts_us,
            value: Value::from_text(text),
        }
    }

    /// A numeric point.
    pub fn number(org_id: u32, device_id: u32, pin: u16, ts_us: i64, value: f64) -> Point {
        Point {
            org_id,
            device_id,
            pin,
            ts_us,
            value: Value::Number(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers() {
        assert_eq!(Value::from_text("42"), Value::Number(42.0));
        assert_eq!(Value::from_text(" -1.5 \n"), Value::Number(-1.5));
        assert_eq!(Value::from_text("1e3"), Value::Number(1000.0));
    }

    #[test]
    fn keeps_text() {
        for t in [
            "",
            "  ",
            "on",
            "inf",
            "NaN",
            "-infinity",
            "1\u{0}2",
            "0x10",
            "1,5",
            "1e999",
        ] {
            assert_eq!(Value::from_text(t), Value::Text(t.to_owned()), "{t:?}");
        }
    }

    #[test]
    fn point_from_text() {
        let p = Point::from_text(1, 2, 3, 4, "hello");
        assert_eq!(p.value, Value::Text("hello".into()));
        assert_eq!((p.org_id, p.device_id, p.pin, p.ts_us), (1, 2, 3, 4));
    }
}
