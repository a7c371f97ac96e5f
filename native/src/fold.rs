//! One port's state, folded one event at a time: `crossing_monitor.core.metrics.PortMetrics.apply`
//! (with its Forecaster's and Trends' folding side) step for step, on integers only.
//!
//! Nothing here reads a figure: the state goes back to Python as `PortMetrics.to_state()` would write
//! it, and the Python core computes every figure from it. Where the Python core keeps an order that a
//! snapshot shows (lists, the queue's dict, the forecast's buckets), this keeps the same order.

use crate::ids::IdSet;
use crate::wire::{Event, ARRIVED, ENTERED, EXITED, SCAN_COMPLETED, SECOND};
use hashbrown::hash_map::EntryRef;
use rustc_hash::{FxBuildHasher, FxHashMap, FxHashSet};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

pub const HOUR: i64 = 3600 * SECOND;
const LAST_HOUR: i64 = HOUR;
const QUEUE_DROP: i64 = 72 * HOUR;
const MAX_INSPECTION: i64 = 48 * HOUR;
const MAX_WAIT: i64 = 7 * 24 * HOUR;
const MAX_CLEARANCE: i64 = 7 * 24 * HOUR;
const ID_RETENTION_HOURS: i64 = 48;
const VEHICLE_RETENTION_HOURS: i64 = 7 * 24 + 1;
const EXITED_RETENTION_HOURS: i64 = 72;
pub const NO_CUT: i64 = -(1 << 62);
pub const INSPECTION_BUCKETS: [i64; 17] = [
    60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800, 14400, 21600, 43200, 86400, 172800,
];
// forecast.py
const LONG_WAIT: i64 = 10 * 60 * SECOND;
const FORECAST_RETENTION_HOURS: i64 = 8 * 24;
// trends.py
pub const QUARTER: i64 = 900 * SECOND;
const KEEP: i64 = 96;

pub type Name = Arc<str>;

/// A trend sample's wait: the sum this fold took (the Python core rounds its mean), or the mean a
/// restored snapshot carried.
#[derive(Clone, Copy)]
pub enum SampleWait {
    Sum(i128, i64),
    Mean(Option<f64>),
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Mean {
    pub total: i128,
    pub count: i64,
}

impl Mean {
    fn add(&mut self, duration: i64, sign: i64) {
        self.total += i128::from(sign * duration);
        self.count += sign;
    }
}

#[derive(Clone)]
pub struct Histogram {
    pub counts: [i64; 18],
    pub total: i128,
}

/// A vehicle record (records.Vehicle); directions and classes as codes, None where Python has "".
#[derive(Clone, Copy)]
pub struct Vehicle {
    pub touched_hour: i64,
    pub arrived: Option<i64>,
    pub arrived_direction: Option<u8>,
    pub booked: bool,
    pub entered: Option<i64>,
    pub exited: Option<i64>,
    pub exit_class: Option<u8>,
    pub exit_direction: Option<u8>,
    pub progressed: bool,
}

impl Vehicle {
    /// A new record, touched in `hour`.
    fn touched(hour: i64) -> Self {
        Vehicle {
            touched_hour: hour,
            arrived: None,
            arrived_direction: None,
            booked: false,
            entered: None,
            exited: None,
            exit_class: None,
            exit_direction: None,
            progressed: false,
        }
    }
}

#[derive(Default)]
pub struct Day {
    pub crossings: i64,
    pub cargo_g: i128,
    pub inspection: [Option<Mean>; 4],
    pub wait: [Mean; 2],
    pub clearance: [[Option<Mean>; 4]; 2],
    pub scans: i64,
    pub flagged: i64,
}

/// Forecaster bucket: entries, lanes used, entries that waited long, booked arrivals, arrivals.
#[derive(Default)]
pub struct Bucket {
    pub entries: i64,
    pub lanes: BTreeSet<Name>,
    pub long: i64,
    pub booked: i64,
    pub arrivals: i64,
}

/// A dict's insertion order with O(log n) removal: key → sequence number → key.
#[derive(Default)]
pub struct OrderedSet {
    seq: u64,
    pos: FxHashMap<Name, u64>,
    order: BTreeMap<u64, Name>,
}

impl OrderedSet {
    pub fn insert(&mut self, key: &Name) {
        if !self.pos.contains_key(key) {
            self.seq += 1;
            self.pos.insert(key.clone(), self.seq);
            self.order.insert(self.seq, key.clone());
        }
    }
    fn remove(&mut self, key: &str) {
        if let Some(s) = self.pos.remove(key) {
            self.order.remove(&s);
        }
    }
    pub fn iter(&self) -> std::collections::btree_map::Values<'_, u64, Name> {
        self.order.values()
    }
}

/// (day, ts, class or direction, ...) contributions, as metrics.py's tuples.
type Inspection = (u32, i64, u8, i64); // day, exited, class, µs
type Wait = (u32, i64, u8, u8, i64); // day, entered, direction, booking, µs
type Clearance = (u32, i64, u8, u8, i64); // day, exited, direction, class, µs

pub struct Port {
    pub top_sensor: Option<Name>,
    pub top_ts: i64,
    pub second_sensor: Option<Name>,
    pub second_ts: i64,
    pub watermark: Option<i64>,
    pub(crate) next_hour: i64,
    pub(crate) cut: i64,
    pub hour: Option<i64>,
    /// the event ids of the last 48 hours, hour by hour
    pub ids: IdSet,
    /// (hashbrown's map for `entry_ref`: one look-up finds or makes a record from the event's text)
    pub vehicles: hashbrown::HashMap<Name, Vehicle, FxBuildHasher>,
    pub vehicle_hours: VecDeque<(i64, Vec<Name>)>,
    pub open_vehicle_hours: VecDeque<(i64, Vec<Name>)>,
    pub waiting: OrderedSet,
    /// at most the earliest arrival of a waiting vehicle: an hour before which none can have waited
    /// too long skips looking at them all
    pub(crate) waiting_floor: i64,
    pub events_by_type: [i64; 7],
    pub crossings: i64,
    pub cargo_g: i128,
    pub crossings_by: [[i64; 4]; 2],
    pub scans: i64,
    pub flagged: i64,
    pub days: FxHashMap<u32, Day>,
    pub inspection: [Option<Mean>; 4],
    pub inspection_observed: [Option<Histogram>; 4],
    pub inspection_retracted: [Option<Histogram>; 4],
    pub wait: [[Mean; 2]; 2],
    pub clearance: [[Option<Mean>; 4]; 2],
    pub recent_exits: Vec<i64>,
    pub recent_entries: Vec<(i64, u8, Name)>,
    pub recent_inspections: Vec<(i64, Name, u8, i64)>,
    pub recent_waits: Vec<(i64, Name, u8, u8, i64)>,
    pub recent_clearances: Vec<(i64, Name, u8, u8, i64)>,
    /// forecast buckets in insertion order, and where each key is
    pub buckets: Vec<((i64, u8), Bucket)>,
    /// each bucket's position counted from the first ever kept (`bucket_base` is that of buckets[0]):
    /// forgetting the oldest hours then only shifts the base instead of renumbering every bucket
    pub(crate) bucket_at: FxHashMap<(i64, u8), usize>,
    pub(crate) bucket_base: usize,
    pub trend_crossings: FxHashMap<i64, i64>,
    /// quarter → (queue outbound, queue inbound, last-hour wait): Python makes the mean of a sum
    pub trend_samples: FxHashMap<i64, (i64, i64, SampleWait)>,
    pub trend_quarter: Option<i64>,
    pub(crate) names: FxHashSet<Name>,
}

fn insort<T: Ord>(items: &mut Vec<T>, item: T) {
    let i = items.partition_point(|x| x <= &item);
    items.insert(i, item);
}

fn remove_sorted<T: Ord>(items: &mut Vec<T>, item: &T) {
    let i = items.partition_point(|x| x < item);
    if i < items.len() && &items[i] == item {
        items.remove(i);
    }
}

fn mean_in(slot: &mut Option<Mean>) -> &mut Mean {
    slot.get_or_insert_with(Mean::default)
}

/// Calendar days of event time: the caller's clock (the Python core's DayClock) names them.
pub trait Days {
    fn day(&mut self, ts: i64) -> u32;
}

impl Port {
    pub fn new() -> Self {
        Port {
            top_sensor: None,
            top_ts: NO_CUT,
            second_sensor: None,
            second_ts: NO_CUT,
            watermark: None,
            next_hour: NO_CUT,
            cut: NO_CUT,
            hour: None,
            ids: IdSet::default(),
            vehicles: hashbrown::HashMap::default(),
            vehicle_hours: VecDeque::new(),
            open_vehicle_hours: VecDeque::new(),
            waiting: OrderedSet::default(),
            waiting_floor: i64::MIN,
            events_by_type: [0; 7],
            crossings: 0,
            cargo_g: 0,
            crossings_by: [[0; 4]; 2],
            scans: 0,
            flagged: 0,
            days: FxHashMap::default(),
            inspection: [None; 4],
            inspection_observed: [None, None, None, None],
            inspection_retracted: [None, None, None, None],
            wait: [[Mean::default(); 2]; 2],
            clearance: [[None; 4]; 2],
            recent_exits: Vec::new(),
            recent_entries: Vec::new(),
            recent_inspections: Vec::new(),
            recent_waits: Vec::new(),
            recent_clearances: Vec::new(),
            buckets: Vec::new(),
            bucket_at: FxHashMap::default(),
            bucket_base: 0,
            trend_crossings: FxHashMap::default(),
            trend_samples: FxHashMap::default(),
            trend_quarter: None,
            names: FxHashSet::default(),
        }
    }

    /// Derived fields after the others were loaded from a snapshot (`PortMetrics.from_state`'s rules).
    pub fn finish_load(&mut self) {
        if self.top_sensor.is_some() {
            let wm = if self.second_sensor.is_none() { self.top_ts } else { self.second_ts };
            self.watermark = Some(wm);
            if self.second_sensor.is_some() {
                self.cut = wm - LAST_HOUR;
            }
        }
        if let Some(h) = self.hour {
            self.next_hour = (h + 1) * HOUR;
        }
        self.bucket_at = self.buckets.iter().enumerate().map(|(i, (k, _))| (*k, i)).collect();
        self.bucket_base = 0;
        self.waiting_floor = i64::MIN; // (the next hour looks at every waiting vehicle)
    }

    pub fn shared(&mut self, s: &str) -> Name {
        self.name(s)
    }

    /// One shared copy of a short name (sensor, lane): events repeat a few of them.
    fn name(&mut self, s: &str) -> Name {
        if let Some(n) = self.names.get(s) {
            return n.clone();
        }
        let n: Name = Arc::from(s);
        if self.names.len() < 100_000 {
            self.names.insert(n.clone());
        }
        n
    }

    pub fn is_duplicate(&self, event_id: &str) -> bool {
        self.ids.contains(event_id)
    }

    /// `PortMetrics.apply` for an event that is not a duplicate (the caller checked `is_duplicate`).
    pub fn apply(&mut self, ev: &Event, days: &mut impl Days) {
        match ev.etype {
            EXITED => self.exited(ev, days),
            ARRIVED => self.arrived(ev, days),
            ENTERED => self.entered(ev, days),
            SCAN_COMPLETED => {
                let day = days.day(ev.ts);
                self.accept(ev);
                self.scans += 1;
                let d = self.days.entry(day).or_default();
                d.scans += 1;
                if ev.flagged {
                    self.flagged += 1;
                    d.flagged += 1;
                }
                self.progressed(&ev.vehicle_id);
            }
            _ => {
                self.accept(ev);
                self.progressed(&ev.vehicle_id);
            }
        }
        self.observe_trends(ev.etype, ev.ts);
    }

    fn accept(&mut self, ev: &Event) {
        let ts = ev.ts;
        let sensor: &str = &ev.sensor_id;
        let top_ts = self.top_ts;
        if self.top_sensor.as_deref() == Some(sensor) {
            if ts > top_ts {
                self.top_ts = ts;
                if self.second_sensor.is_none() {
                    self.watermark = Some(ts);
                    if ts >= self.next_hour {
                        self.advance(ts);
                    }
                }
            }
        } else if ts > top_ts {
            // (sensors take turns at the top: the one that was second is often the new top)
            let top = match &self.second_sensor {
                Some(second) if &**second == sensor => second.clone(),
                _ => self.name(sensor),
            };
            if self.top_sensor.is_some() {
                self.second_sensor = self.top_sensor.take();
                self.second_ts = top_ts;
                self.watermark = Some(top_ts);
                self.cut = top_ts - LAST_HOUR;
                if top_ts >= self.next_hour {
                    self.advance(top_ts);
                }
            } else {
                self.watermark = Some(ts);
                self.advance(ts);
            }
            self.top_sensor = Some(top);
            self.top_ts = ts;
        } else if ts > self.second_ts {
            self.second_sensor = Some(self.name(sensor));
            self.second_ts = ts;
            self.watermark = Some(ts);
            self.cut = ts - LAST_HOUR;
            if ts >= self.next_hour {
                self.advance(ts);
            }
        }
        self.ids.remember(&ev.event_id);
        self.events_by_type[ev.etype as usize] += 1;
    }

    /// `_vehicle`: the record, created or marked as touched in the current hour, with its name and
    /// whether it was there (one look-up: an event's handler reads and writes the record through it).
    /// Listed in the last hour begun; in none while none was (a loaded state without `vehicle_hours`:
    /// the Python core's `_vehicles_this_hour` is then a list that no hour holds).
    fn touch(&mut self, vehicle_id: &str) -> (Name, &mut Vehicle, bool) {
        let hour = self.hour.unwrap_or(0); // set by the event's accept
        let mut touched = self.vehicle_hours.back_mut().map(|(_, names)| names);
        match self.vehicles.entry_ref(vehicle_id) {
            EntryRef::Occupied(entry) => {
                let (name, v) = (entry.key().clone(), entry.into_mut());
                if v.touched_hour != hour {
                    v.touched_hour = hour;
                    if let Some(touched) = touched.as_mut() {
                        touched.push(name.clone());
                    }
                }
                (name, v, true)
            }
            EntryRef::Vacant(entry) => {
                let name: Name = Arc::from(vehicle_id);
                if let Some(touched) = touched.as_mut() {
                    touched.push(name.clone());
                }
                let v = entry.insert_with_key(name.clone(), Vehicle::touched(hour));
                (name, v, false)
            }
        }
    }

    /// An event of the vehicle's progress: out of the queue (a scan, a bay, an entry, an exit).
    fn progressed(&mut self, vehicle_id: &str) {
        let (_, v, _) = self.touch(vehicle_id);
        let was = std::mem::replace(&mut v.progressed, true);
        self.leave_queue(was, vehicle_id);
    }

    /// A record that had not progressed leaves the waiting vehicles.
    fn leave_queue(&mut self, progressed: bool, vehicle_id: &str) {
        if !progressed {
            self.waiting.remove(vehicle_id);
        }
    }

    fn exited(&mut self, ev: &Event, days: &mut impl Days) {
        let ts = ev.ts;
        let day = days.day(ts);
        let (cls, direction) = (ev.vehicle_class, ev.direction);
        let grams = ev.cargo_grams;
        let vid: &str = &ev.vehicle_id;
        let v = self.vehicles.get(vid).copied();
        let changed = match v {
            None => true,
            Some(v) => match v.exited {
                None => true,
                Some(ex) => (ts, Some(cls), Some(direction)) < (ex, v.exit_class, v.exit_direction),
            },
        };
        let mut contributions = None;
        if let (true, Some(v)) = (changed, v) {
            let first = v.exited.is_none();
            let old_i = if first { None } else { inspection_of(v.entered, v.exited, v.exit_class, None, days) };
            let new_i = inspection_of(v.entered, Some(ts), Some(cls), Some(day), days);
            let old_c =
                if first { None } else { clearance_of(v.arrived, v.exited, v.exit_direction, v.exit_class, None, days) };
            let new_c = clearance_of(v.arrived, Some(ts), Some(direction), Some(cls), Some(day), days);
            contributions = Some((old_i, new_i, old_c, new_c));
        }
        self.accept(ev);
        let d = self.days.entry(day).or_default();
        d.crossings += 1;
        d.cargo_g += i128::from(grams);
        self.crossings += 1;
        self.cargo_g += i128::from(grams);
        self.crossings_by[direction as usize][cls as usize] += 1;
        if ts > self.cut {
            insort(&mut self.recent_exits, ts);
        }
        let (name, rec, there) = self.touch(vid);
        // the record from before this event, unless this event's own watermark step forgot it
        let v = v.filter(|_| there);
        if v.is_none() || changed {
            rec.exited = Some(ts);
            rec.exit_class = Some(cls);
            rec.exit_direction = Some(direction);
        }
        let was = std::mem::replace(&mut rec.progressed, true);
        if v.is_some() && changed {
            let (old_i, new_i, old_c, new_c) = contributions.expect("computed when changed");
            // (an old contribution of None retracts nothing: the new one is only added)
            if old_i != new_i {
                self.count_inspection(&name, old_i, new_i);
            }
            if old_c != new_c {
                self.count_clearance(&name, old_c, new_c);
            }
        }
        self.leave_queue(was, vid);
    }

    fn entered(&mut self, ev: &Event, days: &mut impl Days) {
        let ts = ev.ts;
        let day = days.day(ts);
        let vid: &str = &ev.vehicle_id;
        let v = self.vehicles.get(vid).copied();
        let changed = matches!(v, Some(v) if v.entered.is_none_or(|e| ts < e));
        let mut contributions = None;
        if let (true, Some(v)) = (changed, v) {
            let first = v.entered.is_none();
            let old_i = if first { None } else { inspection_of(v.entered, v.exited, v.exit_class, None, days) };
            let new_i = inspection_of(Some(ts), v.exited, v.exit_class, None, days);
            let old_w = if first { None } else { wait_of(v.arrived, v.entered, v.arrived_direction, v.booked, None, days) };
            let new_w = wait_of(v.arrived, Some(ts), v.arrived_direction, v.booked, Some(day), days);
            contributions = Some((old_i, new_i, old_w, new_w));
        }
        self.accept(ev);
        self.forecast_bucket(ts, ev.direction).entries += 1;
        let lane = self.name(&ev.lane);
        self.forecast_bucket(ts, ev.direction).lanes.insert(lane.clone());
        if ts > self.cut {
            insort(&mut self.recent_entries, (ts, ev.direction, lane));
        }
        let (name, rec, there) = self.touch(vid);
        let v = v.filter(|_| there); // (None: this event's own watermark step forgot it)
        if v.is_none() || changed {
            rec.entered = Some(ts);
        }
        let was = std::mem::replace(&mut rec.progressed, true);
        if v.is_some() && changed {
            let (old_i, new_i, old_w, new_w) = contributions.expect("computed when changed");
            if old_i != new_i {
                self.count_inspection(&name, old_i, new_i);
            }
            if old_w != new_w {
                self.count_wait(&name, old_w, new_w);
            }
        }
        self.leave_queue(was, vid);
    }

    fn arrived(&mut self, ev: &Event, days: &mut impl Days) {
        let ts = ev.ts;
        let (direction, booked) = (ev.direction, ev.booked);
        let vid: &str = &ev.vehicle_id;
        let v = self.vehicles.get(vid).copied();
        let mut changed = match v {
            None => true,
            Some(v) => match v.arrived {
                None => true,
                Some(a) => (ts, Some(direction), booked) < (a, v.arrived_direction, v.booked),
            },
        };
        let mut contributions = None;
        if let (true, Some(v)) = (changed, v) {
            let old_w = wait_of(v.arrived, v.entered, v.arrived_direction, v.booked, None, days);
            let new_w = wait_of(Some(ts), v.entered, Some(direction), booked, None, days);
            let old_c = clearance_of(v.arrived, v.exited, v.exit_direction, v.exit_class, None, days);
            let new_c = clearance_of(Some(ts), v.exited, v.exit_direction, v.exit_class, None, days);
            contributions = Some((old_w, new_w, old_c, new_c));
        }
        self.accept(ev);
        let b = self.forecast_bucket(ts, direction);
        b.arrivals += 1;
        if booked {
            b.booked += 1;
        }
        let (name, rec, there) = self.touch(vid);
        if v.is_none() || !there {
            changed = true; // a new record (or one this event's watermark step forgot)
        }
        if changed {
            rec.arrived = Some(ts);
            rec.arrived_direction = Some(direction);
            rec.booked = booked;
            let progressed = rec.progressed;
            self.waiting_floor = self.waiting_floor.min(ts);
            if progressed {
                let (old_w, new_w, old_c, new_c) = contributions.expect("a progressed record existed before");
                if old_w != new_w {
                    self.count_wait(&name, old_w, new_w);
                }
                if old_c != new_c {
                    self.count_clearance(&name, old_c, new_c);
                }
            } else {
                self.waiting.insert(&name);
            }
        }
    }

    // ---- contributions, retractable ------------------------------------------------------------

    fn count_inspection(&mut self, vid: &Name, old: Option<Inspection>, new: Option<Inspection>) {
        if let Some(o) = old {
            self.add_inspection(vid, o, -1);
        }
        if let Some(n) = new {
            self.add_inspection(vid, n, 1);
        }
    }

    fn add_inspection(&mut self, vid: &Name, c: Inspection, sign: i64) {
        let (day, exited, cls, duration) = c;
        let k = cls as usize;
        mean_in(&mut self.days.entry(day).or_default().inspection[k]).add(duration, sign);
        mean_in(&mut self.inspection[k]).add(duration, sign);
        let hists = if sign < 0 { &mut self.inspection_retracted } else { &mut self.inspection_observed };
        let h = hists[k].get_or_insert(Histogram { counts: [0; 18], total: 0 });
        h.counts[INSPECTION_BUCKETS.partition_point(|b| b * SECOND < duration)] += 1;
        h.total += i128::from(duration);
        let item = (exited, vid.clone(), cls, duration);
        if sign < 0 {
            remove_sorted(&mut self.recent_inspections, &item);
        } else if exited > self.cut {
            insort(&mut self.recent_inspections, item);
        }
    }

    fn count_wait(&mut self, vid: &Name, old: Option<Wait>, new: Option<Wait>) {
        if let Some(o) = old {
            self.add_wait(vid, o, -1);
        }
        if let Some(n) = new {
            self.add_wait(vid, n, 1);
        }
    }

    fn add_wait(&mut self, vid: &Name, c: Wait, sign: i64) {
        let (day, entered, direction, booking, duration) = c;
        self.days.entry(day).or_default().wait[booking as usize].add(duration, sign);
        self.wait[direction as usize][booking as usize].add(duration, sign);
        if duration >= LONG_WAIT {
            self.forecast_bucket(entered, direction).long += sign;
        }
        let item = (entered, vid.clone(), direction, booking, duration);
        if sign < 0 {
            remove_sorted(&mut self.recent_waits, &item);
        } else if entered > self.cut {
            insort(&mut self.recent_waits, item);
        }
    }

    fn count_clearance(&mut self, vid: &Name, old: Option<Clearance>, new: Option<Clearance>) {
        if let Some(o) = old {
            self.add_clearance(vid, o, -1);
        }
        if let Some(n) = new {
            self.add_clearance(vid, n, 1);
        }
    }

    fn add_clearance(&mut self, vid: &Name, c: Clearance, sign: i64) {
        let (day, exited, direction, cls, duration) = c;
        let (dk, ck) = (direction as usize, cls as usize);
        mean_in(&mut self.days.entry(day).or_default().clearance[dk][ck]).add(duration, sign);
        mean_in(&mut self.clearance[dk][ck]).add(duration, sign);
        let item = (exited, vid.clone(), direction, cls, duration);
        if sign < 0 {
            remove_sorted(&mut self.recent_clearances, &item);
        } else if exited > self.cut {
            insort(&mut self.recent_clearances, item);
        }
    }

    // ---- the forecast's and the trends' folding side ---------------------------------------------

    fn forecast_bucket(&mut self, ts: i64, direction: u8) -> &mut Bucket {
        let key = (ts.div_euclid(HOUR), direction);
        let i = match self.bucket_at.get(&key) {
            Some(&at) => at - self.bucket_base,
            None => {
                self.buckets.push((key, Bucket::default()));
                self.bucket_at.insert(key, self.bucket_base + self.buckets.len() - 1);
                self.buckets.len() - 1
            }
        };
        &mut self.buckets[i].1
    }

    fn prune_forecast(&mut self, horizon_hour: i64) {
        let oldest = horizon_hour - FORECAST_RETENTION_HOURS;
        let prefix = self.buckets.iter().take_while(|(k, _)| k.0 < oldest).count();
        if self.buckets[prefix..].iter().any(|(k, _)| k.0 < oldest) {
            // an old hour after a newer one (a late event): renumber them all
            self.buckets.retain(|(k, _)| k.0 >= oldest);
            self.bucket_at = self.buckets.iter().enumerate().map(|(i, (k, _))| (*k, i)).collect();
            self.bucket_base = 0;
        } else if prefix > 0 {
            for (k, _) in self.buckets.drain(..prefix) {
                self.bucket_at.remove(&k);
            }
            self.bucket_base += prefix;
        }
    }

    fn queue(&self) -> [i64; 2] {
        let mut counts = [0i64; 2];
        if let Some(wm) = self.watermark {
            let oldest = wm - QUEUE_DROP;
            for vid in self.waiting.iter() {
                let v = &self.vehicles[vid];
                if v.arrived.is_some_and(|a| a > oldest) {
                    counts[v.arrived_direction.expect("arrived") as usize] += 1;
                }
            }
        }
        counts
    }

    fn last_hour_wait(&self) -> (i128, i64) {
        let Some(wm) = self.watermark else { return (0, 0) };
        let items = &self.recent_waits;
        let lo = items.partition_point(|x| x.0 <= wm - LAST_HOUR);
        let hi = items.partition_point(|x| x.0 <= wm);
        let mut total = 0i128;
        for x in &items[lo..hi.max(lo)] {
            total += i128::from(x.4);
        }
        (total, (hi.max(lo) - lo) as i64)
    }

    fn observe_trends(&mut self, etype: u8, ts: i64) {
        let wm = self.watermark;
        let settled = self.second_sensor.is_some();
        if etype == EXITED {
            let q = ts.div_euclid(QUARTER);
            if !(settled && wm.is_some_and(|w| q <= w.div_euclid(QUARTER) - KEEP)) {
                *self.trend_crossings.entry(q).or_insert(0) += 1;
            }
        }
        let Some(wm) = wm else { return };
        let wq = wm.div_euclid(QUARTER);
        if let Some(q) = self.trend_quarter {
            if wq > q {
                let queue = self.queue();
                let (total, count) = self.last_hour_wait();
                self.trend_samples.insert(q, (queue[1], queue[0], SampleWait::Sum(total, count)));
            }
        }
        if self.trend_quarter != Some(wq) {
            self.trend_quarter = Some(wq);
            if settled {
                let oldest = wq - KEEP;
                self.trend_crossings.retain(|q, _| *q > oldest);
                self.trend_samples.retain(|q, _| *q > oldest);
            }
        }
    }

    // ---- bounded state -------------------------------------------------------------------------

    fn advance(&mut self, watermark: i64) {
        let hour = watermark.div_euclid(HOUR);
        self.hour = Some(hour);
        self.next_hour = (hour + 1) * HOUR;
        self.ids.begin(hour);
        self.vehicle_hours.push_back((hour, Vec::new()));
        if self.second_sensor.is_none() {
            return;
        }
        let horizon = self.second_ts;
        let horizon_hour = horizon.div_euclid(HOUR);
        self.prune_forecast(horizon_hour);
        while self.ids.oldest_hour().is_some_and(|h| h <= horizon_hour - ID_RETENTION_HOURS) {
            self.ids.forget_oldest();
        }
        while self.vehicle_hours.front().is_some_and(|(h, _)| *h <= horizon_hour - EXITED_RETENTION_HOURS) {
            let (bucket_hour, bucket) = self.vehicle_hours.pop_front().expect("front");
            let mut still_open = Vec::new();
            for vid in bucket {
                // (one look-up each: the name is hashed once, its record read and removed in place)
                match self.vehicles.entry_ref(&*vid) {
                    EntryRef::Occupied(record) if record.get().touched_hour <= bucket_hour => {
                        if record.get().exited.is_some() {
                            record.remove();
                            self.waiting.remove(&vid);
                        } else {
                            still_open.push(vid);
                        }
                    }
                    _ => {}
                }
            }
            if !still_open.is_empty() {
                self.open_vehicle_hours.push_back((bucket_hour, still_open));
            }
        }
        while self.open_vehicle_hours.front().is_some_and(|(h, _)| *h <= horizon_hour - VEHICLE_RETENTION_HOURS) {
            let (bucket_hour, bucket) = self.open_vehicle_hours.pop_front().expect("front");
            for vid in bucket {
                match self.vehicles.entry_ref(&*vid) {
                    EntryRef::Occupied(record) if record.get().touched_hour <= bucket_hour => {
                        record.remove();
                        self.waiting.remove(&vid);
                    }
                    _ => {}
                }
            }
        }
        let oldest = horizon - QUEUE_DROP;
        if self.waiting_floor <= oldest {
            let mut gone: Vec<Name> = Vec::new();
            let mut floor = i64::MAX;
            for vid in self.waiting.iter() {
                match self.vehicles.get(vid).and_then(|v| v.arrived) {
                    Some(a) if a <= oldest => gone.push(vid.clone()),
                    Some(a) => floor = floor.min(a),
                    None => {}
                }
            }
            for vid in gone {
                self.waiting.remove(&vid);
            }
            self.waiting_floor = floor;
        }
        let cut = self.cut;
        let n = self.recent_exits.partition_point(|t| *t <= cut);
        self.recent_exits.drain(..n);
        let n = self.recent_entries.partition_point(|x| x.0 <= cut);
        self.recent_entries.drain(..n);
        let n = self.recent_inspections.partition_point(|x| x.0 <= cut);
        self.recent_inspections.drain(..n);
        let n = self.recent_waits.partition_point(|x| x.0 <= cut);
        self.recent_waits.drain(..n);
        let n = self.recent_clearances.partition_point(|x| x.0 <= cut);
        self.recent_clearances.drain(..n);
    }
}

impl Default for Port {
    fn default() -> Self {
        Self::new()
    }
}

fn inspection_of(
    entered: Option<i64>,
    exited: Option<i64>,
    cls: Option<u8>,
    day: Option<u32>,
    days: &mut impl Days,
) -> Option<Inspection> {
    let (entered, exited) = (entered?, exited?);
    let duration = exited - entered;
    if !(0..=MAX_INSPECTION).contains(&duration) {
        return None;
    }
    Some((day.unwrap_or_else(|| days.day(exited)), exited, cls.expect("an exit has a class"), duration))
}

fn wait_of(
    arrived: Option<i64>,
    entered: Option<i64>,
    direction: Option<u8>,
    booked: bool,
    day: Option<u32>,
    days: &mut impl Days,
) -> Option<Wait> {
    let (arrived, entered) = (arrived?, entered?);
    let duration = entered - arrived;
    if !(0..=MAX_WAIT).contains(&duration) {
        return None;
    }
    let booking = if booked { 0 } else { 1 };
    Some((day.unwrap_or_else(|| days.day(entered)), entered, direction.expect("an arrival has a direction"), booking, duration))
}

fn clearance_of(
    arrived: Option<i64>,
    exited: Option<i64>,
    direction: Option<u8>,
    cls: Option<u8>,
    day: Option<u32>,
    days: &mut impl Days,
) -> Option<Clearance> {
    let (arrived, exited) = (arrived?, exited?);
    let duration = exited - arrived;
    if !(0..=MAX_CLEARANCE).contains(&duration) {
        return None;
    }
    Some((
        day.unwrap_or_else(|| days.day(exited)),
        exited,
        direction.expect("an exit has a direction"),
        cls.expect("an exit has a class"),
        duration,
    ))
}
