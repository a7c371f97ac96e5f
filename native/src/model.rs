//! The port model of `producers/model.py`, compiled: the same events, byte for byte, and the same tally.
//!
//! The Python `PortModel` stays the reference (tests/test_native_model.py holds this one to it). What
//! needs a calendar or a time zone stays in Python and is asked for through callbacks, rarely: a day's
//! calendar (`PortModel._calendar`, once per planned day), the local date of an instant the cached days
//! cannot place (days whose clocks change), and the text of an hour's timestamps (48 hours at a time).
//! Everything per event — the random draws (CPython's Mersenne Twister, `producers/draws.py`'s
//! arithmetic), queues, lanes, scanners, bays and the serialisation — happens here, with the GIL released.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use rustc_hash::FxHashMap;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

const SLOT: f64 = 300.0;
const SLOTS: usize = 288;
const GAMMA_SHAPE: f64 = 4.0;
const MAX_CLOSED_DAYS: usize = 400;
const HOURS_PER_CALL: i64 = 48;

// ---- CPython's random ------------------------------------------------------------------------

/// MT19937 as `_randommodule.c` has it, started from `random.Random.getstate()`.
struct Mt {
    state: [u32; 624],
    index: usize,
}

impl Mt {
    fn genrand(&mut self) -> u32 {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MAG: [u32; 2] = [0, 0x9908_b0df];
        if self.index >= 624 {
            let mt = &mut self.state;
            let mut kk = 0;
            while kk < 624 - 397 {
                let y = (mt[kk] & UPPER) | (mt[kk + 1] & LOWER);
                mt[kk] = mt[kk + 397] ^ (y >> 1) ^ MAG[(y & 1) as usize];
                kk += 1;
            }
            while kk < 623 {
                let y = (mt[kk] & UPPER) | (mt[kk + 1] & LOWER);
                mt[kk] = mt[kk + 397 - 624] ^ (y >> 1) ^ MAG[(y & 1) as usize];
                kk += 1;
            }
            let y = (mt[623] & UPPER) | (mt[0] & LOWER);
            mt[623] = mt[396] ^ (y >> 1) ^ MAG[(y & 1) as usize];
            self.index = 0;
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `random.random()` (genrand_res53).
    fn random(&mut self) -> f64 {
        let a = (self.genrand() >> 5) as f64;
        let b = (self.genrand() >> 6) as f64;
        (a * 67108864.0 + b) * (1.0 / 9007199254740992.0)
    }

    /// `random.getrandbits(64)`: the first word is the low half.
    fn bits64(&mut self) -> u64 {
        let lo = self.genrand() as u64;
        let hi = self.genrand() as u64;
        lo | (hi << 32)
    }

    /// `gammavariate(alpha, beta)` for alpha > 1 (Cheng), as `draws.gamma` computes it.
    fn gamma(&mut self, g: &Gamma, beta: f64) -> f64 {
        loop {
            let u1 = self.random();
            if !(1e-7 < u1 && u1 < 0.9999999) {
                continue;
            }
            let u2 = 1.0 - self.random();
            let v = (u1 / (1.0 - u1)).ln() / g.ainv;
            let x = g.alpha * v.exp();
            let z = u1 * u1 * u2;
            let r = g.bbb + g.ccc * v - x;
            if r + g.sg_magic - 4.5 * z >= 0.0 || r >= z.ln() {
                return x * beta;
            }
        }
    }

    /// `expovariate(lambd)`.
    fn expo(&mut self, lambd: f64) -> f64 {
        -(1.0 - self.random()).ln() / lambd
    }
}

/// Cheng's constants for one shape; log(4) and 1 + log(4.5) are Python's own (`draws.LOG4`, `SG_MAGICCONST`).
struct Gamma {
    alpha: f64,
    ainv: f64,
    bbb: f64,
    ccc: f64,
    sg_magic: f64,
}

impl Gamma {
    fn new(alpha: f64, log4: f64, sg_magic: f64) -> Gamma {
        let ainv = (2.0 * alpha - 1.0).sqrt();
        Gamma { alpha, ainv, bbb: alpha - log4, ccc: alpha + ainv, sg_magic }
    }
}

/// Python's `a // b` and `a % b` for floats (`float_divmod`): not quite floor(a / b).
fn py_divmod(vx: f64, wx: f64) -> (f64, f64) {
    let mut m = vx % wx;
    let mut div = (vx - m) / wx;
    if m != 0.0 {
        if (wx < 0.0) != (m < 0.0) {
            m += wx;
            div -= 1.0;
        }
    } else {
        m = 0.0_f64.copysign(wx);
    }
    let floordiv = if div != 0.0 {
        let mut f = div.floor();
        if div - f > 0.5 {
            f += 1.0;
        }
        f
    } else {
        0.0_f64.copysign(vx / wx)
    };
    (floordiv, m)
}

/// `int(a // SLOT)`.
fn slot_of(a: f64) -> i64 {
    py_divmod(a, SLOT).0 as i64
}

// ---- the calendar --------------------------------------------------------------------------

struct Day {
    ordinal: i64,
    start: f64,
    end: f64,
    open: Vec<bool>,
    staff: [Vec<i64>; 2],
    rate: Vec<f64>,
    booked: Vec<f64>,
    first: f64,
    last: f64,
}

// ---- the vehicles and the heap -----------------------------------------------------------

struct Vehicle {
    cls: usize,
    booked: bool,
    dir: usize,
    lane: usize, // index into lanes[dir], once it has one
    head: String,
    rest: String,
    body: String,
    n: u32,
}

enum Item {
    Emit(i64, Vec<u8>),
    Arrive(bool),
    Scan(Box<Vehicle>),
    Bay(Box<Vehicle>, f64),
    Wake(usize),
}

struct Entry {
    t: f64,
    seq: u64,
    item: Item,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        // reversed: BinaryHeap pops the greatest, the model the earliest (then the first pushed)
        other.t.total_cmp(&self.t).then(other.seq.cmp(&self.seq))
    }
}

#[derive(Clone)]
struct Sensor {
    json: String,
    skew_ms: i64,
}

struct Lane {
    json: String,
    entry: Sensor,
    exit: Sensor,
}

struct Class {
    json: String,
    freight: bool,
    entry_factor: f64,
}

/// The arrival streams of `PortModel._walkups` and `_bookings`, as resumable state.
struct Walkups {
    t: f64,
    idle: usize,
    done: bool,
}

struct Bookings {
    t: f64,
    idle: usize,
    day: Option<usize>, // the day whose bookings are being handed out, and the next of them
    next: usize,
    done: bool,
}

// ---- the model -----------------------------------------------------------------------------

#[pyclass(module = "crossing_monitor_native")]
pub struct PortModel {
    start: f64,
    end: f64,
    rng: Mt,
    service: Gamma,
    cargo: Gamma,
    // configuration
    regime: u8, // 0 h986, 1 legacy, 2 random
    entry_minutes: f64,
    scan_minutes: f64,
    exit_minutes: f64,
    flagged_share: f64,
    sampled_share: f64,
    physical_minutes: f64,
    legacy_minutes: f64,
    random_check_share: f64,
    cargo_per_truck: f64,
    holding: [f64; 2],
    out_share: f64,
    has_dir: [bool; 2],
    most_staff: [i64; 2],
    scanners_out: Vec<(f64, f64, usize)>,
    classes: Vec<Class>,
    walk: Vec<usize>,
    walk_cum: Vec<f64>,
    walk_total: f64,
    port_json: String,
    approach: [Sensor; 2],
    approach_lane: [String; 2],
    lanes: [Vec<Lane>; 2],
    scanner_ids: Vec<Sensor>,
    bay_ids: Vec<Sensor>,
    // the calendar (callbacks into Python)
    calendar: Py<PyAny>,
    local_day: Py<PyAny>,
    hours: Py<PyAny>,
    minute: Py<PyAny>,
    tonnes: Py<PyAny>,
    arena: Vec<Day>,
    spare: Vec<usize>,
    days: FxHashMap<i64, usize>,
    order: VecDeque<i64>,
    today: Option<usize>,
    hour_text: FxHashMap<i64, Option<(String, String)>>,
    minute_text: FxHashMap<i64, (String, String)>,
    // the run
    heap: BinaryHeap<Entry>,
    seq: u64,
    pool: Vec<Vec<u8>>,         // spent event buffers
    out: Vec<u8>,               // the last chunk's buffers, reused
    ends: Vec<(i64, usize)>,
    free_at: [Vec<f64>; 2],
    booked_queue: [VecDeque<Box<Vehicle>>; 2],
    walkup_queue: [VecDeque<Box<Vehicle>>; 2],
    wake: [f64; 2],
    more: [Option<(f64, i64, f64)>; 2],
    scanners: Vec<(f64, usize)>,
    bays: Vec<(f64, usize)>,
    walkups: Walkups,
    bookings: Bookings,
    started: bool,
    error: Option<PyErr>,
    // the tally since it was last read: turned_back, then vehicles and crossings per class
    turned_back: u64,
    vehicles: Vec<u64>,
    crossings: Vec<u64>,
}

fn sensor(t: &Bound<'_, PyAny>) -> PyResult<Sensor> {
    let (json, skew_ms): (String, i64) = t.extract()?;
    Ok(Sensor { json, skew_ms })
}

fn sensors(v: &Bound<'_, PyAny>) -> PyResult<Vec<Sensor>> {
    v.try_iter()?.map(|x| sensor(&x?)).collect()
}

/// The event types by number, as the wire format names them (one list for the fold and the model).
const ETYPES: [&str; 7] = crate::wire::EVENT_TYPES;
const ARRIVED: usize = 0;
const ENTERED: usize = 1;
const SCAN_STARTED: usize = 2;
const SCAN_COMPLETED: usize = 3;
const INSPECTION_STARTED: usize = 4;
const INSPECTION_COMPLETED: usize = 5;
const EXITED: usize = 6;
const DIRECTIONS: [&str; 2] = ["outbound", "inbound"];

/// Which sensor an event comes from, resolved at emission.
#[derive(Clone, Copy)]
enum Src {
    Approach(usize),
    Entry(usize, usize),
    Exit(usize, usize),
    Scanner(usize),
    Bay(usize),
}

impl PortModel {
    fn fail<T>(&mut self, err: PyErr) -> Option<T> {
        if self.error.is_none() {
            self.error = Some(err);
        }
        None
    }

    // ---- calendar ------------------------------------------------------------------------

    fn in_range(&self, i: usize, t: f64) -> bool {
        let d = &self.arena[i];
        d.first <= t && t < d.last
    }

    /// `PortModel._day`: the plan of the local day of t (planned now if it is not cached).
    fn day(&mut self, t: f64) -> Option<usize> {
        if let Some(i) = self.today {
            if self.in_range(i, t) {
                return Some(i);
            }
        }
        // A cached day whose range surely holds t is the day datetime would name (see _Day.first).
        let mut found = None;
        for &i in self.days.values() {
            if self.in_range(i, t) {
                found = Some(i);
                break;
            }
        }
        let i = match found {
            Some(i) => i,
            None => {
                let ordinal = match Python::attach(|py| self.local_day.call1(py, (t,))?.extract::<i64>(py)) {
                    Ok(o) => o,
                    Err(e) => return self.fail(e),
                };
                match self.days.get(&ordinal) {
                    Some(&i) => i,
                    None => self.plan(ordinal)?,
                }
            }
        };
        self.today = Some(i);
        Some(i)
    }

    /// `PortModel._plan`: the day's calendar from Python, its booked trucks drawn here.
    fn plan(&mut self, ordinal: i64) -> Option<usize> {
        let got = Python::attach(|py| -> PyResult<_> {
            let cal = self.calendar.call1(py, (ordinal,))?;
            let cal = cal.bind(py);
            let start: f64 = cal.get_item(0)?.extract()?;
            let end: f64 = cal.get_item(1)?.extract()?;
            let open: Vec<bool> = cal.get_item(2)?.extract()?;
            let staff_out: Vec<i64> = cal.get_item(3)?.extract()?;
            let staff_in: Vec<i64> = cal.get_item(4)?.extract()?;
            let rate: Vec<f64> = cal.get_item(5)?.extract()?;
            let expected: f64 = cal.get_item(6)?.extract()?;
            let open_slots: Vec<i64> = cal.get_item(7)?.extract()?;
            let sure: bool = cal.get_item(8)?.extract()?;
            Ok((start, end, open, [staff_out, staff_in], rate, expected, open_slots, sure))
        });
        let (start, end, open, staff, rate, expected, open_slots, sure) = match got {
            Ok(x) => x,
            Err(e) => return self.fail(e),
        };
        if open.len() != SLOTS || rate.len() != SLOTS || staff.iter().any(|s| s.len() != SLOTS) {
            return self.fail(PyRuntimeError::new_err("a day's calendar must have 288 slots"));
        }
        let whole = expected.trunc();
        let n = whole as i64 + (self.rng.random() < expected - whole) as i64;
        let mut booked = Vec::new();
        if n > 0 && !open_slots.is_empty() {
            let gap = (open_slots.len() as f64 * SLOT) / n as f64;
            for i in 0..n {
                let offset = (i as f64 + self.rng.random()) * gap;
                let (slot, into) = py_divmod(offset, SLOT);
                booked.push(start + (open_slots[slot as usize] * 300) as f64 + into);
            }
        }
        if self.days.len() > 8 {
            let gone = self.order.pop_front().expect("the order of the cached days");
            let i = self.days.remove(&gone).expect("a cached day");
            self.arena[i].first = f64::INFINITY;
            self.arena[i].last = f64::NEG_INFINITY;
            self.spare.push(i);
        }
        let (first, last) = if sure { (start + 1e-5, end - 1e-5) } else { (f64::INFINITY, f64::NEG_INFINITY) };
        let day = Day { ordinal, start, end, open, staff, rate, booked, first, last };
        // a retired day may be reused once nothing looks at it any more
        let busy = |i: usize| Some(i) == self.today || Some(i) == self.bookings.day;
        let slot = self.spare.iter().position(|&i| !busy(i) && !self.days.values().any(|&j| j == i));
        let i = match slot {
            Some(k) => {
                let i = self.spare.swap_remove(k);
                self.arena[i] = day;
                i
            }
            None => {
                self.arena.push(day);
                self.arena.len() - 1
            }
        };
        self.days.insert(ordinal, i);
        self.order.push_back(ordinal);
        Some(i)
    }

    /// `PortModel.next_open`.
    fn next_open_at(&mut self, mut t: f64) -> Option<f64> {
        for _ in 0..MAX_CLOSED_DAYS {
            let i = self.day(t)?;
            let day = &self.arena[i];
            let mut k = slot_of(t - day.start);
            while k < SLOTS as i64 {
                if day.open[k as usize] {
                    let at = day.start + (k * 300) as f64;
                    return Some(if at > t { at } else { t });
                }
                k += 1;
            }
            let following = day.start + (SLOTS * 300) as f64;
            t = if following > t { following } else { t.max(day.end) };
        }
        Some(f64::INFINITY)
    }

    // ---- arrival streams -----------------------------------------------------------------

    fn next_walkup(&mut self) -> Option<Option<f64>> {
        if self.walkups.done {
            return Some(None);
        }
        let end = self.end;
        loop {
            let t = self.walkups.t;
            #[allow(clippy::neg_cmp_op_on_partial_ord)] // (a NaN time ends the loop, as Python's `while t < end`)
            if !(t < end) {
                break;
            }
            let i = self.day(t)?;
            let day = &self.arena[i];
            let k = slot_of(t - day.start).min(SLOTS as i64 - 1);
            let slot_end = (day.start + ((k + 1) * 300) as f64).max(t + 1.0);
            let rate = day.rate[k as usize];
            if rate <= 0.0 {
                self.walkups.idle += 1;
                if self.walkups.idle > MAX_CLOSED_DAYS * SLOTS {
                    break;
                }
                self.walkups.t = slot_end;
                continue;
            }
            self.walkups.idle = 0;
            let t = t + self.rng.expo(rate);
            if t >= slot_end {
                self.walkups.t = slot_end;
                continue;
            }
            self.walkups.t = t;
            if t < end {
                return Some(Some(t));
            }
        }
        self.walkups.done = true;
        Some(None)
    }

    fn next_booking(&mut self) -> Option<Option<f64>> {
        loop {
            if self.bookings.done {
                return Some(None);
            }
            if let Some(i) = self.bookings.day {
                let k = self.bookings.next;
                if k < self.arena[i].booked.len() {
                    let when = self.arena[i].booked[k];
                    if when >= self.end {
                        self.bookings.done = true;
                        return Some(None);
                    }
                    self.bookings.next = k + 1;
                    return Some(Some(when));
                }
                let ahead = self.arena[i].start + 86400.0 + 3600.0;
                self.bookings.day = None;
                let j = self.day(ahead)?;
                self.bookings.t = self.arena[j].start;
            }
            let t = self.bookings.t;
            if !(t < self.end && self.bookings.idle < MAX_CLOSED_DAYS) {
                self.bookings.done = true;
                return Some(None);
            }
            let i = self.day(t)?;
            let times = &self.arena[i].booked;
            self.bookings.idle = if times.is_empty() { self.bookings.idle + 1 } else { 0 };
            let from = times.partition_point(|&x| x < self.start); // bisect_left
            self.bookings.day = Some(i);
            self.bookings.next = from;
        }
    }

    // ---- the vehicles ----------------------------------------------------------------------

    /// An event's buffer back to the pool, for the next event to be written into.
    fn recycle(&mut self, mut data: Vec<u8>) {
        if self.pool.len() < 4096 {
            data.clear();
            self.pool.push(data);
        }
    }

    fn push(&mut self, t: f64, item: Item) {
        self.seq += 1;
        self.heap.push(Entry { t, seq: self.seq, item });
    }

    fn sensor_of(&self, src: Src) -> &Sensor {
        match src {
            Src::Approach(d) => &self.approach[d],
            Src::Entry(d, i) => &self.lanes[d][i].entry,
            Src::Exit(d, i) => &self.lanes[d][i].exit,
            Src::Scanner(i) => &self.scanner_ids[i],
            Src::Bay(i) => &self.bay_ids[i],
        }
    }

    /// Make sure the text of the epoch minute is cached: its hour's from Python (48 hours a call), or
    /// the minute's own where an hour has no whole-hour text (`TimestampFormatter.minute`).
    fn ensure_minute(&mut self, minute: i64) -> Option<()> {
        if self.minute_text.contains_key(&minute) {
            return Some(());
        }
        let hour = minute.div_euclid(60);
        let into = minute.rem_euclid(60);
        if !self.hour_text.contains_key(&hour) {
            let got = Python::attach(|py| -> PyResult<Vec<Option<(String, String)>>> {
                self.hours.call1(py, (hour, HOURS_PER_CALL))?.extract(py)
            });
            match got {
                Ok(list) => {
                    if self.hour_text.len() > 4096 {
                        self.hour_text.clear();
                    }
                    for (k, v) in list.into_iter().enumerate() {
                        self.hour_text.insert(hour + k as i64, v);
                    }
                }
                Err(e) => return self.fail(e),
            }
        }
        let whole = self.hour_text.get(&hour).cloned().flatten();
        let parts = match whole {
            Some((prefix, offset)) => (format!("{prefix}{into:02}:"), offset),
            None => match Python::attach(|py| self.minute.call1(py, (minute,))?.extract::<(String, String)>(py)) {
                Ok(p) => p,
                Err(e) => return self.fail(e),
            },
        };
        if self.minute_text.len() >= 4096 {
            self.minute_text.clear();
        }
        self.minute_text.insert(minute, parts);
        Some(())
    }

    /// `PortModel._emit`.
    fn emit(&mut self, t: f64, v: &mut Vehicle, etype: usize, src: Src, extra: &str) -> Option<()> {
        let ms = (t * 1000.0) as i64;
        let s = self.sensor_of(src);
        let at = ms + s.skew_ms;
        let minute = at.div_euclid(60_000);
        let sub = at.rem_euclid(60_000);
        self.ensure_minute(minute)?;
        let mut data = self.pool.pop().unwrap_or_default();
        let (day_hh_mm, offset) = &self.minute_text[&minute];
        v.n += 1;
        let s = self.sensor_of(src);
        let parts: [&[u8]; 6] = [v.head.as_bytes(), ETYPES[etype].as_bytes(), day_hh_mm.as_bytes(), offset.as_bytes(), v.body.as_bytes(), s.json.as_bytes()];
        data.reserve(parts.iter().map(|p| p.len()).sum::<usize>() + extra.len() + 64);
        data.extend_from_slice(b"{\"event_id\":");
        data.extend_from_slice(parts[0]);
        data.push(b'-');
        push_uint(&mut data, v.n as u64);
        data.extend_from_slice(b"\",\"type\":\"");
        data.extend_from_slice(parts[1]);
        data.extend_from_slice(b"\",\"ts\":\"");
        data.extend_from_slice(parts[2]);
        let (sec, milli) = (sub / 1000, sub % 1000);
        data.extend_from_slice(&[
            b'0' + (sec / 10) as u8,
            b'0' + (sec % 10) as u8,
            b'.',
            b'0' + (milli / 100) as u8,
            b'0' + (milli / 10 % 10) as u8,
            b'0' + (milli % 10) as u8,
        ]);
        data.extend_from_slice(parts[3]);
        data.push(b'"');
        data.extend_from_slice(parts[4]);
        data.extend_from_slice(b",\"sensor_id\":");
        data.extend_from_slice(parts[5]);
        data.extend_from_slice(extra.as_bytes());
        data.push(b'}');
        self.push(t, Item::Emit(ms, data));
        Some(())
    }

    fn serve(&mut self, minutes: f64) -> f64 {
        if minutes > 0.0 {
            self.rng.gamma(&self.service, minutes * 60.0 / GAMMA_SHAPE)
        } else {
            0.0
        }
    }

    fn arrive(&mut self, t: f64, booked: bool) -> Option<()> {
        let cls = if booked {
            0 // the class list starts with "truck" (see the adapter)
        } else {
            if self.walk.is_empty() {
                return self.fail(pyo3::exceptions::PyIndexError::new_err("no walk-up class to choose from"));
            }
            let x = self.rng.random() * self.walk_total;
            let hi = self.walk.len() - 1;
            let k = self.walk_cum[..hi].partition_point(|&c| c <= x); // bisect_right(cum, x, 0, hi)
            self.walk[k]
        };
        let dir = if self.rng.random() < self.out_share { 0 } else { 1 };
        if !self.has_dir[dir] {
            return self.fail(pyo3::exceptions::PyKeyError::new_err(DIRECTIONS[dir]));
        }
        let bits = self.rng.bits64();
        let head = format!("{}-{:016x}", &self.port_json[..self.port_json.len() - 1], bits);
        let queued = if booked { self.booked_queue[dir].len() } else { self.walkup_queue[dir].len() };
        if !booked && queued as f64 >= self.holding[dir] {
            self.turned_back += 1;
            return Some(());
        }
        self.vehicles[cls] += 1;
        let rest = format!(
            ",\"direction\":\"{}\",\"vehicle_id\":{}\",\"vehicle_class\":{}",
            DIRECTIONS[dir], head, self.classes[cls].json
        );
        let body = format!(",\"port\":{},\"lane\":{}{}", self.port_json, self.approach_lane[dir], rest);
        let mut v = Box::new(Vehicle { cls, booked, dir, lane: 0, head, rest, body, n: 0 });
        let extra = if booked { ",\"booked\":true" } else { ",\"booked\":false" };
        self.emit(t, &mut v, ARRIVED, Src::Approach(dir), extra)?;
        let waiting = !self.booked_queue[dir].is_empty() || !self.walkup_queue[dir].is_empty();
        if booked {
            self.booked_queue[dir].push_back(v);
        } else {
            self.walkup_queue[dir].push_back(v);
        }
        if !waiting {
            self.dispatch(t, dir)?;
        }
        Some(())
    }

    /// `PortModel._more_staff`.
    fn more_staff(&mut self, t: f64, dir: usize, than: i64) -> Option<f64> {
        if let Some((from, known_than, answer)) = self.more[dir] {
            if known_than == than && from <= t && t < answer {
                return Some(answer);
            }
        }
        let mut found = f64::INFINITY;
        let mut at = t;
        for _ in 0..MAX_CLOSED_DAYS {
            let i = self.day(at)?;
            let day = &self.arena[i];
            let staff = &day.staff[dir];
            let mut k = slot_of(at - day.start) + 1;
            while k < SLOTS as i64 {
                if staff[k as usize] > than {
                    found = day.start + (k * 300) as f64;
                    break;
                }
                k += 1;
            }
            if found < f64::INFINITY {
                break;
            }
            let following = day.start + (SLOTS * 300) as f64;
            at = if following > at { following } else { at.max(day.end) };
            let j = self.day(at)?;
            if self.arena[j].staff[dir][0] > than {
                found = at;
                break;
            }
        }
        self.more[dir] = Some((t, than, found));
        Some(found)
    }

    /// `PortModel._dispatch`.
    fn dispatch(&mut self, t: f64, dir: usize) -> Option<()> {
        if self.booked_queue[dir].is_empty() && self.walkup_queue[dir].is_empty() {
            return Some(());
        }
        let i = self.day(t)?;
        let day = &self.arena[i];
        let k = slot_of(t - day.start).min(SLOTS as i64 - 1);
        let staffed = day.staff[dir][k as usize];
        for lane in 0..staffed.max(0) as usize {
            if self.free_at[dir][lane] <= t {
                let v = match self.booked_queue[dir].pop_front() {
                    Some(v) => v,
                    None => self.walkup_queue[dir].pop_front().expect("a queued vehicle"),
                };
                self.enter(t, dir, lane, v)?;
                if self.booked_queue[dir].is_empty() && self.walkup_queue[dir].is_empty() {
                    return Some(());
                }
            }
        }
        let mut when = f64::INFINITY;
        if staffed > 0 {
            for &f in &self.free_at[dir][..staffed as usize] {
                if f < when {
                    when = f;
                }
            }
        }
        if staffed < self.most_staff[dir] {
            let more = self.more_staff(t, dir, staffed)?;
            if more < when {
                when = more;
            }
        }
        if when < self.wake[dir] {
            self.wake[dir] = when;
            self.push(when, Item::Wake(dir));
        }
        Some(())
    }

    /// `PortModel._enter`.
    fn enter(&mut self, t: f64, dir: usize, lane: usize, mut v: Box<Vehicle>) -> Option<()> {
        let class = &self.classes[v.cls];
        let (freight, factor) = (class.freight, class.entry_factor);
        v.lane = lane;
        v.body = format!(",\"port\":{},\"lane\":{}{}", self.port_json, self.lanes[dir][lane].json, v.rest);
        let minutes = self.entry_minutes * factor * if v.booked { 0.5 } else { 1.0 };
        let done = t + self.serve(minutes);
        self.free_at[dir][lane] = done;
        self.emit(t, &mut v, ENTERED, Src::Entry(dir, lane), "")?;
        if freight && self.regime == 1 {
            self.push(done, Item::Bay(v, self.legacy_minutes));
        } else if freight && self.regime == 2 {
            if self.rng.random() < self.random_check_share {
                self.push(done, Item::Bay(v, self.legacy_minutes));
            } else {
                self.exit(done, v)?;
            }
        } else if freight {
            self.push(done, Item::Scan(v));
        } else if self.rng.random() < self.sampled_share {
            self.push(done, Item::Bay(v, self.physical_minutes * 0.5));
        } else {
            self.exit(done, v)?;
        }
        Some(())
    }

    fn scanner_start(&self, mut t: f64, idx: usize) -> f64 {
        for &(t0, t1, n) in &self.scanners_out {
            if idx <= n && t0 <= t && t < t1 {
                t = t1;
            }
        }
        t
    }

    /// `PortModel._scan`: the scanner heap's head is the least (free, idx), so a scan of the list finds it.
    fn scan(&mut self, t: f64, mut v: Box<Vehicle>) -> Option<()> {
        let (pos, begin) = if self.scanners_out.is_empty() {
            let pos = least(&self.scanners);
            (pos, t.max(self.scanners[pos].0))
        } else {
            let mut best: Option<(f64, f64, usize, usize)> = None;
            for (pos, &(free, idx)) in self.scanners.iter().enumerate() {
                let begin = self.scanner_start(t.max(free), idx);
                let better = match best {
                    None => true,
                    Some((b, f, i, _)) => (begin, free, idx) < (b, f, i),
                };
                if better {
                    best = Some((begin, free, idx, pos));
                }
            }
            let (begin, _, _, pos) = best.expect("a scanner");
            (pos, begin)
        };
        let idx = self.scanners[pos].1;
        let done = begin + self.serve(self.scan_minutes);
        self.scanners[pos] = (done, idx);
        let flagged = self.rng.random() < self.flagged_share;
        let s = Src::Scanner(idx - 1);
        self.emit(begin, &mut v, SCAN_STARTED, s, "")?;
        let extra = if flagged { ",\"result\":\"flagged\"" } else { ",\"result\":\"clear\"" };
        self.emit(done, &mut v, SCAN_COMPLETED, s, extra)?;
        if flagged || self.rng.random() < self.sampled_share {
            self.push(done, Item::Bay(v, self.physical_minutes));
        } else {
            self.exit(done, v)?;
        }
        Some(())
    }

    fn inspect(&mut self, t: f64, mut v: Box<Vehicle>, minutes: f64) -> Option<()> {
        let pos = least(&self.bays);
        let (free, idx) = self.bays[pos];
        let begin = t.max(free);
        let done = begin + self.serve(minutes);
        self.bays[pos] = (done, idx);
        let s = Src::Bay(idx - 1);
        self.emit(begin, &mut v, INSPECTION_STARTED, s, "")?;
        self.emit(done, &mut v, INSPECTION_COMPLETED, s, "")?;
        self.exit(done, v)
    }

    fn exit(&mut self, t: f64, mut v: Box<Vehicle>) -> Option<()> {
        let when = t + self.serve(self.exit_minutes);
        let mut extra = String::new();
        if self.classes[v.cls].freight {
            let beta = self.cargo_per_truck / 2.0;
            let x = self.rng.gamma(&self.cargo, beta);
            extra.push_str(",\"cargo_tonnes\":");
            match tonnes_json(x) {
                Some(text) => extra.push_str(&text),
                None => match Python::attach(|py| self.tonnes.call1(py, (x,))?.extract::<String>(py)) {
                    Ok(text) => extra.push_str(&text),
                    Err(e) => return self.fail(e),
                },
            }
        }
        self.crossings[v.cls] += 1;
        let (dir, lane) = (v.dir, v.lane);
        self.emit(when, &mut v, EXITED, Src::Exit(dir, lane), &extra)
    }

    // ---- the run -------------------------------------------------------------------------

    fn begin(&mut self) -> Option<()> {
        self.started = true;
        if let Some(t) = self.next_booking()? {
            self.push(t, Item::Arrive(true));
        }
        if let Some(t) = self.next_walkup()? {
            self.push(t, Item::Arrive(false));
        }
        Some(())
    }

    /// Run until `limit` events are out or the next one is at or after `horizon_ms`: appends each
    /// event's bytes to `out` and (ms, end offset) to `ends`. None on a failure (in `self.error`).
    /// `joined`: a newline before each event but the first.
    fn run(&mut self, limit: usize, horizon_ms: i64, joined: bool, out: &mut Vec<u8>, ends: &mut Vec<(i64, usize)>) -> Option<()> {
        if !self.started {
            self.begin()?;
        }
        while ends.len() < limit {
            if let Some(Entry { item: Item::Emit(ms, _), .. }) = self.heap.peek() {
                if *ms >= horizon_ms {
                    return Some(());
                }
            }
            let Some(Entry { t, item, .. }) = self.heap.pop() else { return Some(()) };
            match item {
                Item::Emit(ms, data) => {
                    if joined && !ends.is_empty() {
                        out.push(b'\n');
                    }
                    out.extend_from_slice(&data);
                    ends.push((ms, out.len()));
                    self.recycle(data);
                }
                Item::Arrive(booked) => {
                    self.arrive(t, booked)?;
                    let following = if booked { self.next_booking()? } else { self.next_walkup()? };
                    if let Some(t) = following {
                        self.push(t, Item::Arrive(booked));
                    }
                }
                Item::Wake(dir) => {
                    if self.wake[dir] == t {
                        self.wake[dir] = f64::INFINITY;
                    }
                    self.dispatch(t, dir)?;
                }
                Item::Scan(v) => self.scan(t, v)?,
                Item::Bay(v, minutes) => self.inspect(t, v, minutes)?,
            }
        }
        Some(())
    }

    fn generate(
        &mut self,
        py: Python<'_>,
        limit: usize,
        horizon_ms: i64,
        joined: bool,
    ) -> PyResult<Chunk> {
        // (the caller hands the buffers back with `keep`, so a chunk reuses the last one's memory)
        let mut out = std::mem::take(&mut self.out);
        let mut ends = std::mem::take(&mut self.ends);
        out.clear();
        ends.clear();
        let ok = py.detach(|| self.run(limit, horizon_ms, joined, &mut out, &mut ends));
        if ok.is_none() {
            return Err(self.error.take().unwrap_or_else(|| PyRuntimeError::new_err("the compiled model failed")));
        }
        Ok((out, ends))
    }
}

/// Decimal digits of n, as `{n}` writes them.
fn push_uint(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// The Python callables that answer for the calendar (see producers/native.py): a day's plan, a local
/// date, hour texts, a minute's text, a cargo's tonnes.
type Callbacks = (Py<PyAny>, Py<PyAny>, Py<PyAny>, Py<PyAny>, Py<PyAny>);

/// Events made by one `generate`: their bytes one after another, and each one's time (ms) and end.
type Chunk = (Vec<u8>, Vec<(i64, usize)>);

impl PortModel {
    fn keep(&mut self, out: Vec<u8>, ends: Vec<(i64, usize)>) {
        self.out = out;
        self.ends = ends;
    }

    /// `take` (with each event's time: [(ms, bytes)]) and `take_bytes` ([bytes]).
    fn listed<'py>(&mut self, py: Python<'py>, limit: usize, horizon_ms: i64, times: bool) -> PyResult<Bound<'py, PyList>> {
        let (out, ends) = self.generate(py, limit, horizon_ms, false)?;
        let mut from = 0;
        let mut items = Vec::with_capacity(ends.len());
        for &(ms, to) in &ends {
            let event = PyBytes::new(py, &out[from..to]).into_any();
            from = to;
            items.push(if times { (ms, event).into_pyobject(py)?.into_any() } else { event });
        }
        let list = PyList::new(py, items);
        self.keep(out, ends);
        list
    }
}

fn least(xs: &[(f64, usize)]) -> usize {
    let mut best = 0;
    for (i, x) in xs.iter().enumerate().skip(1) {
        let b = xs[best];
        if x.0 < b.0 || (x.0 == b.0 && x.1 < b.1) {
            best = i;
        }
    }
    best
}

/// `orjson.dumps(round(x, 1))` for the tonnes of a load: Rust's `{:.1}` is the correctly rounded
/// decimal (ties to even, as Python's round), and below 1e9 that text is also the shortest repr of the
/// float it names. Anything else is left to Python (None).
pub fn tonnes_json(x: f64) -> Option<String> {
    if x.is_finite() && (0.0..1e9).contains(&x) {
        Some(format!("{x:.1}"))
    } else {
        None
    }
}

#[pymethods]
impl PortModel {
    /// Built by producers/native.py from a Python PortModel of the same config (its serialised pieces
    /// and the generator's state); see there for each argument.
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        start: f64,
        end: f64,
        state: Vec<u32>,
        numbers: &Bound<'_, PyDict>,
        classes: Vec<(String, bool, f64)>,
        walk: Vec<usize>,
        walk_cum: Vec<f64>,
        port_json: String,
        approach: &Bound<'_, PyAny>,
        approach_lane: (String, String),
        lanes: &Bound<'_, PyAny>,
        scanner_ids: &Bound<'_, PyAny>,
        bay_ids: &Bound<'_, PyAny>,
        scanners_out: Vec<(f64, f64, usize)>,
        callbacks: Callbacks,
    ) -> PyResult<Self> {
        let _ = py;
        if state.len() != 625 {
            return Err(PyRuntimeError::new_err("the state of random.Random: 624 words and an index"));
        }
        let mut words = [0u32; 624];
        words.copy_from_slice(&state[..624]);
        let num = |k: &str| -> PyResult<f64> {
            numbers.get_item(k)?.ok_or_else(|| PyRuntimeError::new_err(format!("missing {k}")))?.extract()
        };
        let (log4, sg_magic) = (num("log4")?, num("sg_magic")?);
        let approach = sensors(approach)?;
        let lanes_by_dir: Vec<Vec<Lane>> = lanes
            .try_iter()?
            .map(|d| -> PyResult<Vec<Lane>> {
                d?.try_iter()?
                    .map(|l| -> PyResult<Lane> {
                        let (json, entry, exit): (String, (String, i64), (String, i64)) = l?.extract()?;
                        let s = |(json, skew_ms): (String, i64)| Sensor { json, skew_ms };
                        Ok(Lane { json, entry: s(entry), exit: s(exit) })
                    })
                    .collect()
            })
            .collect::<PyResult<_>>()?;
        let [lanes_out, lanes_in]: [Vec<Lane>; 2] =
            lanes_by_dir.try_into().map_err(|_| PyRuntimeError::new_err("lanes: two directions"))?;
        let scanners = num("scanners")? as usize;
        let bays = num("bays")? as usize;
        let n_classes = classes.len();
        let free = |n: f64| vec![start; n as usize];
        let (calendar, local_day, hours, minute, tonnes) = callbacks;
        Ok(PortModel {
            start,
            end,
            rng: Mt { state: words, index: state[624] as usize },
            service: Gamma::new(GAMMA_SHAPE, log4, sg_magic),
            cargo: Gamma::new(2.0, log4, sg_magic),
            regime: num("regime")? as u8,
            entry_minutes: num("entry_minutes")?,
            scan_minutes: num("scan_minutes")?,
            exit_minutes: num("exit_minutes")?,
            flagged_share: num("flagged_share")?,
            sampled_share: num("sampled_share")?,
            physical_minutes: num("physical_minutes")?,
            legacy_minutes: num("legacy_minutes")?,
            random_check_share: num("random_check_share")?,
            cargo_per_truck: num("cargo_per_truck")?,
            holding: [num("holding_out")?, num("holding_in")?],
            out_share: num("out_share")?,
            has_dir: [num("lanes_out")? > 0.0, num("lanes_in")? > 0.0],
            most_staff: [num("most_out")? as i64, num("most_in")? as i64],
            scanners_out,
            classes: classes.into_iter().map(|(json, freight, entry_factor)| Class { json, freight, entry_factor }).collect(),
            walk_total: walk_cum.last().copied().unwrap_or(0.0),
            walk,
            walk_cum,
            port_json,
            approach: [approach[0].clone(), approach[1].clone()],
            approach_lane: [approach_lane.0, approach_lane.1],
            lanes: [lanes_out, lanes_in],
            scanner_ids: sensors(scanner_ids)?,
            bay_ids: sensors(bay_ids)?,
            calendar,
            local_day,
            hours,
            minute,
            tonnes,
            arena: Vec::new(),
            spare: Vec::new(),
            days: FxHashMap::default(),
            order: VecDeque::new(),
            today: None,
            hour_text: FxHashMap::default(),
            minute_text: FxHashMap::default(),
            heap: BinaryHeap::new(),
            seq: 0,
            pool: Vec::new(),
            out: Vec::new(),
            ends: Vec::new(),
            free_at: [free(num("lanes_out")?), free(num("lanes_in")?)],
            booked_queue: [VecDeque::new(), VecDeque::new()],
            walkup_queue: [VecDeque::new(), VecDeque::new()],
            wake: [f64::INFINITY; 2],
            more: [None, None],
            scanners: (1..=scanners).map(|i| (start, i)).collect(),
            bays: (1..=bays).map(|i| (start, i)).collect(),
            walkups: Walkups { t: start, idle: 0, done: false },
            bookings: Bookings { t: start, idle: 0, day: None, next: 0, done: false },
            started: false,
            error: None,
            turned_back: 0,
            vehicles: vec![0; n_classes],
            crossings: vec![0; n_classes],
        })
    }

    /// `PortModel.next_open(t)` (it may plan days, and so draw, exactly as the Python one).
    fn next_open(&mut self, py: Python<'_>, t: f64) -> PyResult<f64> {
        let got = py.detach(|| self.next_open_at(t));
        got.ok_or_else(|| self.error.take().unwrap_or_else(|| PyRuntimeError::new_err("the compiled model failed")))
    }

    /// Up to `limit` events before `horizon_ms` as [(ms, bytes)]; [] when the run is over (or at the horizon).
    #[pyo3(signature = (limit, horizon_ms = i64::MAX))]
    fn take<'py>(&mut self, py: Python<'py>, limit: usize, horizon_ms: i64) -> PyResult<Bound<'py, PyList>> {
        self.listed(py, limit, horizon_ms, true)
    }

    /// Up to `limit` events before `horizon_ms`, as [bytes] only (the publisher needs no times).
    #[pyo3(signature = (limit, horizon_ms = i64::MAX))]
    fn take_bytes<'py>(&mut self, py: Python<'py>, limit: usize, horizon_ms: i64) -> PyResult<Bound<'py, PyList>> {
        self.listed(py, limit, horizon_ms, false)
    }

    /// Up to `limit` events before `horizon_ms`, joined by newlines: (how many, bytes) — one object for a
    /// model process to send on.
    #[pyo3(signature = (limit, horizon_ms = i64::MAX))]
    fn take_joined<'py>(&mut self, py: Python<'py>, limit: usize, horizon_ms: i64) -> PyResult<(usize, Bound<'py, PyBytes>)> {
        let (out, ends) = self.generate(py, limit, horizon_ms, true)?;
        let got = (ends.len(), PyBytes::new(py, &out));
        self.keep(out, ends);
        Ok(got)
    }

    /// Whether events remain (the heap holds something to do).
    fn running(&self) -> bool {
        !self.started || !self.heap.is_empty()
    }

    /// The tally since the last call: {"turned_back": n, "vehicles.<class>": n, "crossings.<class>": n},
    /// without zeros; `names` are the classes in the order the constructor had them.
    fn tally<'py>(&mut self, py: Python<'py>, names: Vec<String>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        if self.turned_back > 0 {
            out.set_item("turned_back", self.turned_back)?;
        }
        for (i, name) in names.iter().enumerate().take(self.vehicles.len()) {
            if self.vehicles[i] > 0 {
                out.set_item(format!("vehicles.{name}"), self.vehicles[i])?;
            }
            if self.crossings[i] > 0 {
                out.set_item(format!("crossings.{name}"), self.crossings[i])?;
            }
        }
        self.turned_back = 0;
        self.vehicles.iter_mut().for_each(|x| *x = 0);
        self.crossings.iter_mut().for_each(|x| *x = 0);
        Ok(out)
    }

    /// The cached days' local ordinals, oldest first (the tests compare the 8-day cache with Python's).
    fn cached_days(&self) -> Vec<i64> {
        self.order.iter().map(|o| self.arena[self.days[o]].ordinal).collect()
    }
}

/// `orjson.dumps(round(x, 1))` as the model writes it (None: Python would be asked), for the tests.
#[pyfunction]
pub fn model_tonnes_json(x: f64) -> Option<String> {
    tonnes_json(x)
}

/// CPython's `random.random()` and `getrandbits(64)` from a `getstate()` state, for the tests:
/// `n` of each, alternating.
#[pyfunction]
pub fn model_draws(state: Vec<u32>, n: usize) -> PyResult<(Vec<f64>, Vec<u64>)> {
    if state.len() != 625 {
        return Err(PyRuntimeError::new_err("624 words and an index"));
    }
    let mut words = [0u32; 624];
    words.copy_from_slice(&state[..624]);
    let mut mt = Mt { state: words, index: state[624] as usize };
    let mut f = Vec::with_capacity(n);
    let mut b = Vec::with_capacity(n);
    for _ in 0..n {
        f.push(mt.random());
        b.push(mt.bits64());
    }
    Ok((f, b))
}
