//! The last-value cache: the newest value of every `(org, device, pin)`, in memory.

use std::collections::HashMap;

use parking_lot::RwLock;

use crate::point::{Point, Value};

/// The newest value of one pin.
#[derive(Debug, Clone, PartialEq)]
pub struct LastValue {
    /// Microseconds since the Unix epoch (UTC).
    pub ts_us: i64,
    /// The value.
    pub value: Value,
}

/// Per device, the pins sorted by pin number (devices have few pins, so a sorted vector beats
/// a map and keeps `last_values` ordered).
type DevicePins = Vec<(u16, LastValue)>;

/// Newest value per `(org, device, pin)`. A value replaces the cached one when its timestamp is
/// greater or equal (so among equal timestamps the later write wins); older points that arrive
/// late do not.
#[derive(Debug, Default)]
pub(crate) struct LastValueCache {
    map: RwLock<HashMap<(u32, u32), DevicePins>>,
}

/// Folds `value` into `pins`, keeping the newest.
pub(crate) fn merge_into(pins: &mut DevicePins, pin: u16, ts_us: i64, value: &Value) {
    match pins.binary_search_by_key(&pin, |(p, _)| *p) {
        Ok(i) => {
            let cur = &mut pins[i].1;
            if ts_us >= cur.ts_us {
                cur.ts_us = ts_us;
                if cur.value != *value {
                    cur.value = value.clone();
                }
            }
        }
        Err(i) => pins.insert(
            i,
            (
                pin,
                LastValue {
                    ts_us,
                    value: value.clone(),
                },
            ),
        ),
    }
}

impl LastValueCache {
    /// Applies a batch of points (one lock acquisition).
    pub(crate) fn apply(&self, points: &[Point]) {
        if points.is_empty() {
            return;
        }
        let mut map = self.map.write();
        for p in points {
            let pins = map.entry((p.org_id, p.device_id)).or_default();
            merge_into(pins, p.pin, p.ts_us, &p.value);
        }
    }

    /// Applies already-resolved entries (e.g. restored from the catalog).
    pub(crate) fn apply_entries<'a>(
        &self,
        entries: impl IntoIterator<Item = ((u32, u32, u16), &'a LastValue)>,
    ) {
        let mut map = self.map.write();
        for ((org, dev, pin), lv) in entries {
            merge_into(map.entry((org, dev)).or_default(), pin, lv.ts_us, &lv.value);
        }
    }

    pub(crate) fn get(&self, org_id: u32, device_id: u32, pin: u16) -> Option<LastValue> {
        let map = self.map.read();
        let pins = map.get(&(org_id, device_id))?;
        let i = pins.binary_search_by_key(&pin, |(p, _)| *p).ok()?;
        Some(pins[i].1.clone())
    }

    pub(crate) fn device(&self, org_id: u32, device_id: u32) -> Vec<(u16, LastValue)> {
        self.map
            .read()
            .get(&(org_id, device_id))
            .cloned()
            .unwrap_or_default()
    }

    /// Number of `(org, device, pin)` series cached.
    pub(crate) fn len(&self) -> usize {
        self.map.read().values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_wins_ties_go_to_later_write() {
        let c = LastValueCache::default();
        c.apply(&[
            Point::number(1, 1, 5, 100, 1.0),
            Point::number(1, 1, 2, 50, 9.0),
        ]);
        c.apply(&[Point::number(1, 1, 5, 90, 2.0)]);
        assert_eq!(
            c.get(1, 1, 5).unwrap(),
            LastValue {
                ts_us: 100,
                value: Value::Number(1.0)
            }
        );
        c.apply(&[Point::from_text(1, 1, 5, 100, "x")]);
        assert_eq!(c.get(1, 1, 5).unwrap().value, Value::Text("x".into()));
        let pins: Vec<u16> = c.device(1, 1).into_iter().map(|(p, _)| p).collect();
        assert_eq!(pins, [2, 5]);
        assert!(c.get(1, 2, 5).is_none());
        assert!(c.device(2, 1).is_empty());
        assert_eq!(c.len(), 2);
    }
}
