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
///
/// Keyed with foldhash: every written point looks its device up here on the WAL thread, where
/// SipHash took about a tenth of the thread's time. Device ids are assigned by the control
/// plane, not chosen by devices, and the hasher is seeded per process.
#[derive(Debug, Default)]
pub(crate) struct LastValueCache {
    map: RwLock<HashMap<(u32, u32), DevicePins, foldhash::fast::RandomState>>,
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

/// What the cache can tell about a point before it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Novelty {
    /// Newer than every stored value of its series: cannot be a duplicate (already applied to
    /// the cache).
    New,
    /// Same timestamp and value as the newest stored value of its series: a duplicate.
    Duplicate,
    /// Older than (or as old as, with another value) the newest value of its series: it may
    /// duplicate a stored row; the caller decides (and applies it with `apply` if it is kept).
    Unknown,
}

/// Values are identical when their bits are (so `NaN` re-sent equals itself).
pub(crate) fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.to_bits() == y.to_bits(),
        (Value::Text(x), Value::Text(y)) => x == y,
        _ => false,
    }
}

/// The runs of consecutive points of one device, with the index of each run's first point:
/// a device usually sends several pins at once, and each run costs one map lookup instead of
/// one per point (the lookups were a quarter of the WAL thread, BENCHMARKS.md, "Last values
/// by device run").
fn device_runs(points: &[Point]) -> impl Iterator<Item = (usize, &[Point])> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let first = points.get(start)?;
        let len = points[start..]
            .iter()
            .take_while(|p| p.device_id == first.device_id && p.org_id == first.org_id)
            .count();
        let run = (start, &points[start..start + len]);
        start += len;
        Some(run)
    })
}

impl LastValueCache {
    /// Classifies each point of a batch, in order, and applies the `New` ones. Returns `None`
    /// when every point is `New` (the common case: no allocation).
    pub(crate) fn apply_classify(&self, points: &[Point]) -> Option<Vec<Novelty>> {
        let mut out: Option<Vec<Novelty>> = None;
        let mut map = self.map.write();
        for (start, run) in device_runs(points) {
            let pins = map.entry((run[0].org_id, run[0].device_id)).or_default();
            for (j, p) in run.iter().enumerate() {
                let novelty = match pins.binary_search_by_key(&p.pin, |(pin, _)| *pin) {
                    Ok(k) => {
                        let cur = &mut pins[k].1;
                        if p.ts_us > cur.ts_us {
                            cur.ts_us = p.ts_us;
                            cur.value.clone_from(&p.value);
                            Novelty::New
                        } else if p.ts_us == cur.ts_us && same_value(&cur.value, &p.value) {
                            Novelty::Duplicate
                        } else {
                            Novelty::Unknown
                        }
                    }
                    Err(k) => {
                        pins.insert(
                            k,
                            (
                                p.pin,
                                LastValue {
                                    ts_us: p.ts_us,
                                    value: p.value.clone(),
                                },
                            ),
                        );
                        Novelty::New
                    }
                };
                if novelty != Novelty::New {
                    out.get_or_insert_with(|| vec![Novelty::New; points.len()])[start + j] =
                        novelty;
                }
            }
        }
        out
    }

    /// Applies a batch of points (one lock acquisition).
    pub(crate) fn apply(&self, points: &[Point]) {
        if points.is_empty() {
            return;
        }
        let mut map = self.map.write();
        for (_, run) in device_runs(points) {
            let pins = map.entry((run[0].org_id, run[0].device_id)).or_default();
            for p in run {
                merge_into(pins, p.pin, p.ts_us, &p.value);
            }
        }
    }

    /// Restores entries in ascending key order, one per series (the catalog's on open): each
    /// device's pins are built as one sorted list and inserted with one map operation.
    pub(crate) fn restore_sorted(&self, entries: Vec<((u32, u32, u16), LastValue)>) {
        let mut map = self.map.write();
        let devices = entries
            .windows(2)
            .filter(|w| (w[0].0.0, w[0].0.1) != (w[1].0.0, w[1].0.1))
            .count()
            + usize::from(!entries.is_empty());
        map.reserve(devices);
        let mut entries = entries.into_iter().peekable();
        while let Some(((org, dev, pin), lv)) = entries.next() {
            let mut pins: DevicePins = vec![(pin, lv)];
            while let Some(((o, d, p), _)) = entries.peek()
                && (*o, *d) == (org, dev)
            {
                let p = *p;
                let (_, lv) = entries.next().expect("peeked");
                pins.push((p, lv));
            }
            match map.entry((org, dev)) {
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(pins);
                }
                std::collections::hash_map::Entry::Occupied(mut slot) => {
                    for (pin, lv) in pins {
                        merge_into(slot.get_mut(), pin, lv.ts_us, &lv.value);
                    }
                }
            }
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

    /// Forgets every pin of a device.
    pub(crate) fn remove_device(&self, org_id: u32, device_id: u32) {
        self.map.write().remove(&(org_id, device_id));
    }

    /// Number of `(org, device, pin)` series cached.
    pub(crate) fn len(&self) -> usize {
        self.map.read().values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Restoring sorted entries builds each device's pin list in one go; a device already
    /// cached keeps the newer of its values.
    #[test]
    fn restores_sorted_entries_per_device() {
        let c = LastValueCache::default();
        let lv = |ts_us, x| LastValue {
            ts_us,
            value: Value::Number(x),
        };
        c.apply(&[Point::number(1, 9, 0, 50, 5.0)]);
        c.restore_sorted(vec![
            ((1, 2, 0), lv(1, 1.0)),
            ((1, 2, 3), lv(2, 2.0)),
            ((1, 9, 0), lv(40, 4.0)),
            ((1, 9, 1), lv(41, 4.1)),
            ((2, 2, 7), lv(3, 3.0)),
        ]);
        assert_eq!(c.device(1, 2), vec![(0, lv(1, 1.0)), (3, lv(2, 2.0))]);
        assert_eq!(c.device(1, 9), vec![(0, lv(50, 5.0)), (1, lv(41, 4.1))]);
        assert_eq!(c.get(2, 2, 7), Some(lv(3, 3.0)));
        assert_eq!(c.len(), 5);
        c.restore_sorted(Vec::new());
        assert_eq!(c.len(), 5);
    }

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

    #[test]
    fn classifies_new_duplicate_and_late() {
        let c = LastValueCache::default();
        let p = |ts, v: f64| Point::number(1, 1, 0, ts, v);
        assert_eq!(c.apply_classify(&[p(10, 1.0), p(20, 2.0)]), None);
        assert_eq!(
            c.apply_classify(&[
                p(20, 2.0),
                p(20, 3.0),
                p(15, 1.0),
                p(30, f64::NAN),
                p(30, f64::NAN)
            ]),
            Some(vec![
                Novelty::Duplicate,
                Novelty::Unknown,
                Novelty::Unknown,
                Novelty::New,
                Novelty::Duplicate
            ])
        );
        assert_eq!(c.get(1, 1, 0).unwrap().ts_us, 30);
    }

    proptest::proptest! {
        /// Classifying by device runs gives, point for point, what a per-point model gives,
        /// and leaves the same newest values.
        #[test]
        fn device_runs_classify_like_one_point_at_a_time(
            batches in proptest::collection::vec(
                proptest::collection::vec((1u32..3, 0u32..3, 0u16..3, 0i64..6, 0u8..3), 0..40),
                1..4,
            ),
        ) {
            let c = LastValueCache::default();
            let mut model: HashMap<(u32, u32, u16), (i64, f64)> = HashMap::new();
            for batch in batches {
                let points: Vec<Point> = batch
                    .iter()
                    .map(|&(o, d, p, t, v)| Point::number(o, d, p, t, f64::from(v)))
                    .collect();
                let expected: Vec<Novelty> = batch
                    .iter()
                    .map(|&(o, d, p, t, v)| {
                        let v = f64::from(v);
                        match model.get(&(o, d, p)).copied() {
                            Some((ts, _)) if t > ts => {
                                model.insert((o, d, p), (t, v));
                                Novelty::New
                            }
                            Some((ts, cur)) if t == ts && cur.to_bits() == v.to_bits() => {
                                Novelty::Duplicate
                            }
                            Some(_) => Novelty::Unknown,
                            None => {
                                model.insert((o, d, p), (t, v));
                                Novelty::New
                            }
                        }
                    })
                    .collect();
                let got = c
                    .apply_classify(&points)
                    .unwrap_or_else(|| vec![Novelty::New; points.len()]);
                proptest::prop_assert_eq!(got, expected);
            }
            for (&(o, d, p), &(ts, v)) in &model {
                let cached = c.get(o, d, p).unwrap();
                proptest::prop_assert_eq!(cached.ts_us, ts);
                proptest::prop_assert_eq!(cached.value, Value::Number(v));
            }
            proptest::prop_assert_eq!(c.len(), model.len());
        }
    }
}
