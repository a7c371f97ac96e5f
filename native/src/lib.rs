//! crossing_monitor_native: the compiled fold of crossing-monitor's metric core (the fast path of
//! `analyze` and of the worker).
//!
//! `Fold` reads a log's bytes, decides each line that is certainly a valid event itself (`wire`), asks
//! the Python core (`judge`) about every other line, and folds the events into per-port state (`fold`)
//! exactly as `PortMetrics.apply` does. `states()` gives that state back in `PortMetrics.to_state()`'s
//! form; the Python core rebuilds its PortMetrics from it and computes every figure itself.

mod batch;
mod fold;
mod ids;
mod model;
mod parallel;
mod replay;
mod wire;

use fold::{Days, Histogram, Mean, Name, Port, SampleWait};
mod load;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use wire::{Event, BOOKING_NAMES, CLASS_NAMES, DIRECTION_NAMES, EVENT_TYPES};

/// The number of a day's name in the fold's table of names (each name once).
fn intern(names: &mut Vec<String>, index: &mut FxHashMap<String, u32>, name: String) -> u32 {
    if let Some(&d) = index.get(&name) {
        return d;
    }
    names.push(name.clone());
    let d = (names.len() - 1) as u32;
    index.insert(name, d);
    d
}

/// Quarter hours a port's clock names at a time (a day's worth).
const DAY_BLOCK: i64 = 96;

/// Names the calendar day of an instant: a port's cache per quarter hour, and on a miss `name(quarter)`,
/// the days of DAY_BLOCK quarters from that one on (which asks the Python DayClock); the first error is
/// kept for the caller.
struct DayOf<'a, N: FnMut(i64) -> PyResult<Vec<u32>>> {
    cache: &'a mut FxHashMap<i64, u32>,
    name: N,
    error: &'a mut Option<PyErr>,
}

impl<N: FnMut(i64) -> PyResult<Vec<u32>>> Days for DayOf<'_, N> {
    fn day(&mut self, ts: i64) -> u32 {
        let quarter = ts.div_euclid(fold::QUARTER);
        if let Some(&d) = self.cache.get(&quarter) {
            return d;
        }
        match (self.name)(quarter) {
            Ok(days) if days.len() == DAY_BLOCK as usize => {
                for (q, d) in (quarter..).zip(days) {
                    self.cache.entry(q).or_insert(d);
                }
                self.cache[&quarter]
            }
            Ok(days) => {
                let e = PyValueError::new_err(format!("a clock named {} quarter hours, not {DAY_BLOCK}", days.len()));
                self.error.get_or_insert(e);
                0
            }
            Err(e) => {
                self.error.get_or_insert(e);
                0
            }
        }
    }
}

/// The names a port's clock (`DayClock.names`) gives the DAY_BLOCK quarters from `quarter` on.
fn day_block(clock: &Bound<'_, PyAny>, quarter: i64) -> PyResult<Vec<String>> {
    clock.call1((quarter, DAY_BLOCK))?.extract()
}

/// Fold a valid event into a port's state (`port`: None until its first event); false for a
/// duplicate. `cache` and `name` name its days (see DayOf).
fn fold_event(
    port: &mut Option<Port>,
    generation: &mut u64,
    cache: &mut FxHashMap<i64, u32>,
    mut name: impl FnMut(i64) -> PyResult<Vec<u32>>,
    ev: &Event,
) -> PyResult<bool> {
    if port.as_ref().is_some_and(|p| p.is_duplicate(&ev.event_id)) {
        return Ok(false);
    }
    let mut error = None;
    // The event's own day first, before anything changes (a port is made only once an event folds): the
    // one call to the Python clock that can be new here (earlier instants' days were named already).
    DayOf { cache: &mut *cache, name: &mut name, error: &mut error }.day(ev.ts);
    if let Some(e) = error.take() {
        return Err(e);
    }
    *generation += 1;
    let port = port.get_or_insert_with(Port::new);
    port.apply(ev, &mut DayOf { cache, name, error: &mut error });
    match error {
        Some(e) => Err(e),
        None => Ok(true),
    }
}

/// A whole log folded: feed it chunks (split anywhere), then `finish`, then read `states`.
#[pyclass(unsendable)]
struct Fold {
    slugs: FxHashMap<String, usize>,
    slug_names: Vec<String>,
    timezones: Vec<String>,
    clocks: Vec<Py<PyAny>>,
    judge: Py<PyAny>,
    ports: Vec<Option<Port>>,
    day_cache: Vec<FxHashMap<i64, u32>>,
    day_names: Vec<String>,
    day_index: FxHashMap<String, u32>,
    pending: Vec<u8>,
    generations: Vec<u64>,
    /// fold on two threads (`fold_parallel`) a chunk of at least `parallel_bytes` bytes of complete lines,
    /// each run of at least `parallel_run` events between two lines for Python (tests lower them)
    #[pyo3(get, set)]
    parallel: bool,
    #[pyo3(get, set)]
    parallel_bytes: usize,
    #[pyo3(get, set)]
    parallel_run: usize,
    #[pyo3(get)]
    duplicates: u64,
    /// runs of events folded on two threads (tests: that the split happened)
    #[pyo3(get)]
    parallel_runs: u64,
    /// why `feed`/`finish` failed: the state is then no fold's, and is never read
    failed: Option<String>,
}

/// The lines of `body`, each with its newline (the last one without, when `body` does not end with one):
/// `split_inclusive` looked at every byte on its own, memchr looks at many at a time.
fn lines(body: &[u8]) -> Lines<'_> {
    Lines { body, newlines: memchr::memchr_iter(b'\n', body), start: 0 }
}

struct Lines<'a> {
    body: &'a [u8],
    newlines: memchr::Memchr<'a>,
    start: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let end = match self.newlines.next() {
            Some(i) => i + 1,
            None if self.start < self.body.len() => self.body.len(),
            None => return None,
        };
        let line = &self.body[self.start..end];
        self.start = end;
        Some(line)
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
}

/// An Event tuple of the Python core (crossing_monitor.core.events.Event) as the fold's Event.
fn event_from_python<'a>(t: &Bound<'_, PyAny>) -> PyResult<Event<'a>> {
    let s = |i: usize| -> PyResult<Cow<'a, str>> { Ok(Cow::Owned(t.get_item(i)?.extract::<String>()?)) };
    let code = |name: Cow<'_, str>, found: Option<u8>| -> PyResult<u8> {
        found.ok_or_else(|| PyValueError::new_err(format!("not a valid event field: {name}")))
    };
    let etype = s(1)?;
    let direction = s(5)?;
    let class = s(7)?;
    let booked: Option<bool> = t.get_item(9)?.extract()?;
    let result: Option<String> = t.get_item(10)?.extract()?;
    let cargo: Option<f64> = t.get_item(11)?.extract()?;
    Ok(Event {
        event_id: s(0)?,
        etype: code(etype.clone(), wire::event_type(&etype))?,
        ts: t.get_item(2)?.extract()?,
        port: s(3)?,
        lane: s(4)?,
        direction: code(direction.clone(), wire::direction(&direction))?,
        vehicle_id: s(6)?,
        vehicle_class: code(class.clone(), wire::vehicle_class(&class))?,
        sensor_id: s(8)?,
        booked: booked == Some(true),
        flagged: result.as_deref() == Some("flagged"),
        cargo_grams: wire::cargo_grams(cargo),
    })
}

impl Fold {
    fn line(&mut self, py: Python<'_>, line: &[u8]) -> PyResult<()> {
        let slugs = &self.slugs;
        let ev = wire::fast_event(line, |p| slugs.contains_key(p));
        self.parsed_line(py, line, ev)
    }

    /// `line` once the fast path had its look (`ev`: its event, or None: a blank line or one for Python).
    fn parsed_line(&mut self, py: Python<'_>, line: &[u8], ev: Option<Event>) -> PyResult<()> {
        if let Some(ev) = ev {
            return self.event(py, &ev).map(|_| ());
        }
        if is_blank(line) {
            return Ok(()); // a log's blank line is no message
        }
        let verdict = self.judge.bind(py).call1((PyBytes::new(py, line),))?;
        if verdict.is_none() {
            return Ok(()); // rejected: the judge counted it
        }
        let ev = event_from_python(&verdict)?;
        self.event(py, &ev).map(|_| ())
    }

    /// Fold a valid event in; false for a duplicate (counted).
    fn event(&mut self, py: Python<'_>, ev: &Event) -> PyResult<bool> {
        let Some(&i) = self.slugs.get(&*ev.port) else {
            return Err(PyValueError::new_err(format!("the judge accepted an event of port {:?}", ev.port)));
        };
        let clock = self.clocks[i].bind(py);
        let (names, index) = (&mut self.day_names, &mut self.day_index);
        let name = |quarter: i64| -> PyResult<Vec<u32>> {
            Ok(day_block(clock, quarter)?.into_iter().map(|day| intern(names, index, day)).collect())
        };
        let folded = fold_event(&mut self.ports[i], &mut self.generations[i], &mut self.day_cache[i], name, ev)?;
        if !folded {
            self.duplicates += 1;
        }
        Ok(folded)
    }

    /// `feed`'s work (see there).
    fn feed_chunk(&mut self, py: Python<'_>, chunk: &[u8]) -> PyResult<()> {
        let mut start = 0;
        if !self.pending.is_empty() {
            match memchr::memchr(b'\n', chunk) {
                None => {
                    self.pending.extend_from_slice(chunk);
                    return Ok(());
                }
                Some(i) => {
                    let mut line = std::mem::take(&mut self.pending);
                    line.extend_from_slice(&chunk[..=i]);
                    self.line(py, &line)?;
                    start = i + 1;
                }
            }
        }
        let end = match memchr::memrchr(b'\n', &chunk[start..]) {
            Some(i) => start + i + 1,
            None => start,
        };
        let body = &chunk[start..end];
        if self.parallel && body.len() >= self.parallel_bytes.max(1) {
            self.fold_parallel(py, body)?;
        } else {
            for line in lines(body) {
                self.line(py, line)?;
            }
        }
        self.pending.extend_from_slice(&chunk[end..]);
        Ok(())
    }

    fn usable(&self) -> PyResult<()> {
        match &self.failed {
            Some(why) => Err(PyValueError::new_err(format!("this fold failed before ({why}): fold the log again"))),
            None => Ok(()),
        }
    }

    fn failed_on(&mut self, folded: PyResult<()>) -> PyResult<()> {
        if let Err(e) = &folded {
            self.failed = Some(e.to_string());
        }
        folded
    }

    fn slug(&self, slug: &str) -> PyResult<usize> {
        self.slugs.get(slug).copied().ok_or_else(|| PyValueError::new_err(format!("no port {slug:?} in the catalogue")))
    }
}

impl load::DayNames for (&mut Vec<String>, &mut FxHashMap<String, u32>) {
    fn number(&mut self, name: &str) -> u32 {
        match self.1.get(name) {
            Some(&d) => d,
            None => intern(self.0, self.1, name.to_string()),
        }
    }
}

fn mean<'py>(py: Python<'py>, m: &Mean) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, [m.total.into_pyobject(py)?.into_any(), m.count.into_pyobject(py)?.into_any()])
}

fn means_by_class<'py>(py: Python<'py>, means: &[Option<Mean>; 4]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, m) in means.iter().enumerate() {
        if let Some(m) = m {
            d.set_item(CLASS_NAMES[k], mean(py, m)?)?;
        }
    }
    Ok(d)
}

fn clearance<'py>(py: Python<'py>, by: &[[Option<Mean>; 4]; 2]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, means) in by.iter().enumerate() {
        d.set_item(DIRECTION_NAMES[k], means_by_class(py, means)?)?;
    }
    Ok(d)
}

fn histograms<'py>(py: Python<'py>, hs: &[Option<Histogram>; 4]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, h) in hs.iter().enumerate() {
        if let Some(h) = h {
            let counts = PyList::new(py, h.counts)?;
            d.set_item(CLASS_NAMES[k], PyList::new(py, [counts.into_any(), h.total.into_pyobject(py)?.into_any()])?)?;
        }
    }
    Ok(d)
}

fn hours<'py>(py: Python<'py>, hs: &std::collections::VecDeque<(i64, Vec<Name>)>) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for (h, names) in hs {
        let names = PyList::new(py, names.iter().map(|n| &**n))?;
        out.append(PyList::new(py, [h.into_pyobject(py)?.into_any(), names.into_any()])?)?;
    }
    Ok(out)
}

fn opt_str(code: Option<u8>, names: &[&'static str]) -> &'static str {
    code.map_or("", |c| names[c as usize])
}

/// `PortMetrics.to_state()` of the folded port; trend samples carry (total µs, count) for their wait.
/// `reading`: only what the figures are read from (no event ids, no vehicle but those in the queue):
/// a PortMetrics rebuilt from it reports the same, and is never folded into.
fn state<'py>(
    py: Python<'py>,
    port: &Port,
    slug: &str,
    timezone: &str,
    day_names: &[String],
    reading: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let no_hours = std::collections::VecDeque::new();
    let s = PyDict::new(py);
    s.set_item("version", 2)?;
    s.set_item("port", slug)?;
    s.set_item("timezone", timezone)?;
    let sensors = PyList::empty(py);
    for (sensor, ts) in [(&port.top_sensor, port.top_ts), (&port.second_sensor, port.second_ts)] {
        if let Some(sensor) = sensor {
            sensors.append(PyList::new(py, [(**sensor).into_pyobject(py)?.into_any(), ts.into_pyobject(py)?.into_any()])?)?;
        }
    }
    s.set_item("sensors", sensors)?;
    s.set_item("hour", port.hour)?;
    let id_hours = PyList::empty(py);
    if !reading {
        for (h, ids) in port.ids.hours() {
            id_hours.append(PyList::new(py, [h.into_pyobject(py)?.into_any(), PyList::new(py, ids)?.into_any()])?)?;
        }
    }
    s.set_item("id_hours", id_hours)?;
    let vehicles = PyDict::new(py);
    let queued: Vec<(&Name, &fold::Vehicle)>;
    let listed: Box<dyn Iterator<Item = (&Name, &fold::Vehicle)>> = if reading {
        queued = port.waiting.iter().filter_map(|vid| port.vehicles.get_key_value(vid)).collect();
        Box::new(queued.into_iter())
    } else {
        Box::new(port.vehicles.iter())
    };
    for (vid, v) in listed {
        let row = PyList::empty(py);
        row.append(v.touched_hour)?;
        row.append(v.arrived)?;
        row.append(opt_str(v.arrived_direction, &DIRECTION_NAMES))?;
        row.append(v.booked)?;
        row.append(v.entered)?;
        row.append(v.exited)?;
        row.append(opt_str(v.exit_class, &CLASS_NAMES))?;
        row.append(opt_str(v.exit_direction, &DIRECTION_NAMES))?;
        row.append(v.progressed)?;
        vehicles.set_item(&**vid, row)?;
    }
    s.set_item("vehicles", vehicles)?;
    s.set_item("vehicle_hours", hours(py, if reading { &no_hours } else { &port.vehicle_hours })?)?;
    s.set_item("open_vehicle_hours", hours(py, if reading { &no_hours } else { &port.open_vehicle_hours })?)?;
    s.set_item("waiting", PyList::new(py, port.waiting.iter().map(|n| &**n))?)?;
    let by_type = PyDict::new(py);
    for (k, n) in port.events_by_type.iter().enumerate() {
        by_type.set_item(EVENT_TYPES[k], n)?;
    }
    s.set_item("events_by_type", by_type)?;
    s.set_item("crossings", port.crossings)?;
    s.set_item("cargo_g", port.cargo_g)?;
    let crossings_by = PyDict::new(py);
    for dk in [1usize, 0] {
        let by = PyDict::new(py);
        for ck in [3usize, 0, 1, 2] {
            by.set_item(CLASS_NAMES[ck], port.crossings_by[dk][ck])?;
        }
        crossings_by.set_item(DIRECTION_NAMES[dk], by)?;
    }
    s.set_item("crossings_by", crossings_by)?;
    s.set_item("scans", port.scans)?;
    s.set_item("flagged", port.flagged)?;
    let days = PyDict::new(py);
    let mut by_name: Vec<(&str, &fold::Day)> =
        port.days.iter().map(|(d, day)| (day_names.get(*d as usize).map_or("", String::as_str), day)).collect();
    by_name.sort_unstable_by_key(|(name, _)| *name); // (the numbers follow the order days were first named in)
    for (name, day) in by_name {
        let o = PyDict::new(py);
        o.set_item("crossings", day.crossings)?;
        o.set_item("cargo_g", day.cargo_g)?;
        o.set_item("inspection", means_by_class(py, &day.inspection)?)?;
        let wait = PyDict::new(py);
        for (k, m) in day.wait.iter().enumerate() {
            wait.set_item(BOOKING_NAMES[k], mean(py, m)?)?;
        }
        o.set_item("wait", wait)?;
        o.set_item("clearance", clearance(py, &day.clearance)?)?;
        o.set_item("scans", day.scans)?;
        o.set_item("flagged", day.flagged)?;
        days.set_item(name, o)?;
    }
    s.set_item("days", days)?;
    s.set_item("inspection", means_by_class(py, &port.inspection)?)?;
    s.set_item("inspection_observed", histograms(py, &port.inspection_observed)?)?;
    s.set_item("inspection_retracted", histograms(py, &port.inspection_retracted)?)?;
    let wait = PyDict::new(py);
    for (dk, by) in port.wait.iter().enumerate() {
        let b = PyDict::new(py);
        for (k, m) in by.iter().enumerate() {
            b.set_item(BOOKING_NAMES[k], mean(py, m)?)?;
        }
        wait.set_item(DIRECTION_NAMES[dk], b)?;
    }
    s.set_item("wait", wait)?;
    s.set_item("clearance", clearance(py, &port.clearance)?)?;
    s.set_item("recent_exits", PyList::new(py, &port.recent_exits)?)?;
    let t = |py: Python<'py>, items: Vec<Bound<'py, PyAny>>| PyTuple::new(py, items);
    let entries = PyList::empty(py);
    for (ts, d, lane) in &port.recent_entries {
        entries.append(t(py, vec![ts.into_pyobject(py)?.into_any(), DIRECTION_NAMES[*d as usize].into_pyobject(py)?.into_any(),
                                 (**lane).into_pyobject(py)?.into_any()])?)?;
    }
    s.set_item("recent_entries", entries)?;
    let inspections = PyList::empty(py);
    for (ts, vid, c, dur) in &port.recent_inspections {
        inspections.append(t(py, vec![ts.into_pyobject(py)?.into_any(), (**vid).into_pyobject(py)?.into_any(),
                                      CLASS_NAMES[*c as usize].into_pyobject(py)?.into_any(), dur.into_pyobject(py)?.into_any()])?)?;
    }
    s.set_item("recent_inspections", inspections)?;
    let waits = PyList::empty(py);
    for (ts, vid, d, b, dur) in &port.recent_waits {
        waits.append(t(py, vec![ts.into_pyobject(py)?.into_any(), (**vid).into_pyobject(py)?.into_any(),
                                DIRECTION_NAMES[*d as usize].into_pyobject(py)?.into_any(),
                                BOOKING_NAMES[*b as usize].into_pyobject(py)?.into_any(), dur.into_pyobject(py)?.into_any()])?)?;
    }
    s.set_item("recent_waits", waits)?;
    let clearances = PyList::empty(py);
    for (ts, vid, d, c, dur) in &port.recent_clearances {
        clearances.append(t(py, vec![ts.into_pyobject(py)?.into_any(), (**vid).into_pyobject(py)?.into_any(),
                                     DIRECTION_NAMES[*d as usize].into_pyobject(py)?.into_any(),
                                     CLASS_NAMES[*c as usize].into_pyobject(py)?.into_any(), dur.into_pyobject(py)?.into_any()])?)?;
    }
    s.set_item("recent_clearances", clearances)?;
    let buckets = PyList::empty(py);
    for ((h, d), b) in &port.buckets {
        let lanes = PyList::new(py, b.lanes.iter().map(|n| &**n))?;
        buckets.append(PyList::new(py, [h.into_pyobject(py)?.into_any(), DIRECTION_NAMES[*d as usize].into_pyobject(py)?.into_any(),
                                        b.entries.into_pyobject(py)?.into_any(), lanes.into_any(), b.long.into_pyobject(py)?.into_any(),
                                        b.booked.into_pyobject(py)?.into_any(), b.arrivals.into_pyobject(py)?.into_any()])?)?;
    }
    let forecast = PyDict::new(py);
    forecast.set_item("version", 1)?;
    forecast.set_item("buckets", buckets)?;
    s.set_item("forecast", forecast)?;
    let mut quarters: Vec<_> = port.trend_crossings.iter().map(|(q, n)| (*q, *n)).collect();
    quarters.sort_unstable();
    let crossings = PyList::empty(py);
    for (q, n) in quarters {
        crossings.append(PyList::new(py, [q, n])?)?;
    }
    let mut rows: Vec<_> = port.trend_samples.iter().map(|(q, r)| (*q, *r)).collect();
    rows.sort_unstable_by_key(|r| r.0);
    let samples = PyList::empty(py);
    for (q, (out, inb, wait)) in rows {
        let mut row = vec![q.into_pyobject(py)?.into_any(), out.into_pyobject(py)?.into_any(), inb.into_pyobject(py)?.into_any()];
        match wait {
            SampleWait::Sum(total, count) => {
                row.push(total.into_pyobject(py)?.into_any());
                row.push(count.into_pyobject(py)?.into_any());
            }
            SampleWait::Mean(mean) => row.push(mean.into_pyobject(py)?.into_any()),
        }
        samples.append(PyList::new(py, row)?)?;
    }
    let trends = PyDict::new(py);
    trends.set_item("crossings", crossings)?;
    trends.set_item("samples", samples)?;
    trends.set_item("quarter", port.trend_quarter)?;
    s.set_item("trends", trends)?;
    Ok(s)
}

#[pymethods]
impl Fold {
    /// slugs: the catalogue's ports; timezones and clocks (`DayClock.names`) in the same order;
    /// judge(line: bytes): the Python core's verdict on a line the fast path left to it: an Event, or
    /// None (`feed`: the judge counted the rejection) or a Rejection (`message`).
    #[new]
    fn new(slugs: Vec<String>, timezones: Vec<String>, clocks: Vec<Py<PyAny>>, judge: Py<PyAny>) -> PyResult<Self> {
        if slugs.len() != clocks.len() || slugs.len() != timezones.len() {
            return Err(PyValueError::new_err("one time zone and one clock per port"));
        }
        let n = slugs.len();
        Ok(Fold {
            slugs: slugs.iter().enumerate().map(|(i, s)| (s.clone(), i)).collect(),
            slug_names: slugs,
            timezones,
            clocks,
            judge,
            ports: (0..n).map(|_| None).collect(),
            day_cache: (0..n).map(|_| FxHashMap::default()).collect(),
            day_names: Vec::new(),
            day_index: FxHashMap::default(),
            pending: Vec::new(),
            generations: vec![0; n],
            parallel: false,
            parallel_bytes: parallel::PARALLEL_BYTES,
            parallel_run: parallel::PARALLEL_RUN,
            duplicates: 0,
            parallel_runs: 0,
            failed: None,
        })
    }

    /// Fold the complete lines of `chunk` (the part after its last newline waits for the next chunk).
    /// After an error (a clock or the judge failed) the fold is unusable: two threads may have folded
    /// past the failing event, so its state is no fold's.
    fn feed(&mut self, py: Python<'_>, chunk: &[u8]) -> PyResult<()> {
        self.usable()?;
        self.failed = Some("a panic in the compiled fold".into()); // (stays if one unwinds through here)
        let folded = self.feed_chunk(py, chunk);
        self.failed = None;
        self.failed_on(folded)
    }

    /// The last line, when the log does not end with a newline.
    fn finish(&mut self, py: Python<'_>) -> PyResult<()> {
        self.usable()?;
        self.failed = Some("a panic in the compiled fold".into());
        let folded = match std::mem::take(&mut self.pending) {
            line if line.is_empty() => Ok(()),
            line => self.line(py, &line),
        };
        self.failed = None;
        self.failed_on(folded)
    }

    /// One message of the live worker (a blank one is malformed): None when it was folded in, the
    /// event id (str) of a duplicate, or the judge's Rejection.
    fn message<'py>(&mut self, py: Python<'py>, raw: &[u8]) -> PyResult<Option<Bound<'py, PyAny>>> {
        let slugs = &self.slugs;
        let ev = match wire::fast_event(raw, |p| slugs.contains_key(p)) {
            Some(ev) => ev,
            None => {
                let verdict = self.judge.bind(py).call1((PyBytes::new(py, raw),))?;
                if verdict.len()? != 12 {
                    return Ok(Some(verdict)); // a Rejection
                }
                event_from_python(&verdict)?
            }
        };
        if self.event(py, &ev)? {
            Ok(None)
        } else {
            Ok(Some(ev.event_id.into_pyobject(py)?.into_any()))
        }
    }

    /// How many times the port's state changed (an event folded, a snapshot loaded): caches key on it.
    fn generation(&self, slug: &str) -> PyResult<u64> {
        Ok(self.generations[self.slug(slug)?])
    }

    /// The ports that hold state, in catalogue order.
    fn present(&self) -> Vec<String> {
        self.ports.iter().enumerate().filter(|(_, p)| p.is_some()).map(|(i, _)| self.slug_names[i].clone()).collect()
    }

    /// One port's state in `PortMetrics.to_state()`'s form (samples as `states` gives them), or None;
    /// `reading`: only what its figures are read from.
    #[pyo3(signature = (slug, reading = false))]
    fn state<'py>(&self, py: Python<'py>, slug: &str, reading: bool) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.usable()?;
        let i = self.slug(slug)?;
        match &self.ports[i] {
            None => Ok(None),
            Some(port) => Ok(Some(state(py, port, &self.slug_names[i], &self.timezones[i], &self.day_names, reading)?)),
        }
    }

    /// Take a port's state from a snapshot (`PortMetrics.to_state()`'s form); ValueError/KeyError/TypeError
    /// for one a fold could not have written.
    fn load(&mut self, slug: &str, snapshot: &Bound<'_, PyDict>) -> PyResult<()> {
        let i = self.slug(slug)?;
        let port = load::port(snapshot, &mut (&mut self.day_names, &mut self.day_index))?;
        self.ports[i] = Some(port);
        self.generations[i] += 1;
        Ok(())
    }

    /// [(slug, state)] of every port that folded an event, in catalogue order.
    fn states<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.usable()?;
        let out = PyList::empty(py);
        for (i, port) in self.ports.iter().enumerate() {
            if let Some(port) = port {
                let st = state(py, port, &self.slug_names[i], &self.timezones[i], &self.day_names, false)?;
                out.append((self.slug_names[i].as_str(), st))?;
            }
        }
        Ok(out)
    }

    // ---- the live worker's batch (Processor.fold): one call per fetched batch --------------------

    /// A fetched batch of one partition's records (objects with `offset` and `value`) folded in one
    /// call, with the bookkeeping of `Processor.fold`'s loop: a record below `next_offset` is skipped,
    /// a jump in offsets kept as a gap, a record whose catalogue port belongs on another partition
    /// (`routes`: slug -> partition) and that has no `header` among its `headers` (read only then) is
    /// left for forwarding, every other one judged and folded. `port_of(raw)`: the `port` of a message
    /// the fast path left to Python (a JSON object's str, else None), asked only when `routes` has one.
    /// Returns (next_offset, skipped, gaps [(from, to)], forwards [(index, partition)],
    /// rejected [(index, Rejection, or the exception of a fold that raised, or a panic's message)],
    /// duplicates): only what Python acts on.
    fn batch<'py>(
        &mut self,
        py: Python<'py>,
        records: &Bound<'py, PyList>,
        next_offset: i64,
        routes: &Bound<'py, PyDict>,
        header: &str,
        port_of: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let mut away: Vec<i64> = vec![-1; self.slug_names.len()];
        for (slug, target) in routes.iter() {
            if let Some(&i) = self.slugs.get(slug.extract::<&str>()?) {
                away[i] = target.extract()?;
            }
        }
        let routing = away.iter().any(|t| *t >= 0);
        let (gaps, forwards, rejected) = (PyList::empty(py), PyList::empty(py), PyList::empty(py));
        let (mut skipped, mut duplicates, mut next) = (0u64, 0u64, next_offset);
        let (offset_attr, value_attr) = (pyo3::intern!(py, "offset"), pyo3::intern!(py, "value"));
        for (index, record) in records.iter().enumerate() {
            let offset: i64 = record.getattr(offset_attr)?.extract()?;
            if offset != next {
                if offset < next {
                    skipped += 1;
                    continue;
                }
                gaps.append((next, offset))?;
            }
            next = offset + 1;
            let value = record.getattr(value_attr)?;
            let owned: Vec<u8>;
            let raw: &[u8] = if value.is_none() {
                b""
            } else if let Ok(bytes) = value.cast::<PyBytes>() {
                bytes.as_bytes()
            } else {
                owned = message_bytes(&value)?;
                &owned
            };
            let slugs = &self.slugs;
            let fast = wire::fast_event(raw, |p| slugs.contains_key(p));
            if routing {
                let target = match &fast {
                    Some(ev) => self.slugs.get(&*ev.port).map_or(-1, |&i| away[i]),
                    None => {
                        let port = port_of.call1((PyBytes::new(py, raw),))?;
                        match port.extract::<&str>() {
                            Ok(port) => self.slugs.get(port).map_or(-1, |&i| away[i]),
                            Err(_) => -1,
                        }
                    }
                };
                if target >= 0 && !carries(&record, header)? {
                    forwards.append((index, target))?;
                    continue;
                }
            }
            let folded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.judged(py, raw, fast)));
            match folded {
                Ok(Ok(Judged::Folded)) => {}
                Ok(Ok(Judged::Duplicate)) => duplicates += 1,
                Ok(Ok(Judged::Rejected(rejection))) => rejected.append((index, rejection))?,
                // as `except Exception` in Processor.fold: KeyboardInterrupt and the like go through
                Ok(Err(e)) if !e.is_instance_of::<pyo3::exceptions::PyException>(py) => return Err(e),
                Ok(Err(e)) => rejected.append((index, e.into_value(py)))?,
                Err(panic) => rejected.append((index, panic_message(&*panic)))?,
            }
        }
        PyTuple::new(
            py,
            [
                next.into_pyobject(py)?.into_any(),
                skipped.into_pyobject(py)?.into_any(),
                gaps.into_any(),
                forwards.into_any(),
                rejected.into_any(),
                duplicates.into_pyobject(py)?.into_any(),
            ],
        )
    }
}

/// What became of a message the worker's batch did not forward.
enum Judged<'py> {
    Folded,
    Duplicate,
    Rejected(Bound<'py, PyAny>),
}

impl Fold {
    /// `message`'s verdict, for `batch`: the fast path's event (`fast`) or the judge's, folded in.
    fn judged<'py>(&mut self, py: Python<'py>, raw: &[u8], fast: Option<Event>) -> PyResult<Judged<'py>> {
        let ev = match fast {
            Some(ev) => ev,
            None => {
                let verdict = self.judge.bind(py).call1((PyBytes::new(py, raw),))?;
                if verdict.len()? != 12 {
                    return Ok(Judged::Rejected(verdict));
                }
                event_from_python(&verdict)?
            }
        };
        Ok(if self.event(py, &ev)? { Judged::Folded } else { Judged::Duplicate })
    }
}

/// A record's value that is not bytes as the bytes the fold reads (a str's lone surrogates kept, as
/// invalid UTF-8: malformed, as NativeMonitor's `_as_bytes` makes them).
fn message_bytes(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if value.is_instance_of::<pyo3::types::PyString>() {
        return value.call_method1("encode", ("utf-8", "surrogatepass"))?.extract();
    }
    value.py().get_type::<PyBytes>().call1((value,))?.extract()
}

/// Whether a record's `headers` (absent: none) name `header`, as `Processor._route` asks.
fn carries(record: &Bound<'_, PyAny>, header: &str) -> PyResult<bool> {
    let headers = match record.getattr(pyo3::intern!(record.py(), "headers")) {
        Ok(h) => h,
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(record.py()) => return Ok(false),
        Err(e) => return Err(e),
    };
    if headers.is_none() || !headers.is_truthy()? {
        return Ok(false);
    }
    for item in headers.try_iter()? {
        if item?.get_item(0)?.eq(header)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The message a panic carried (the Python side raises it as a NativeFault).
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}
// ---- end of the worker's batch ---------------------------------------------------------------------

/// For tests: (whether the plain reader of the wire format read `line`, whether serde reads the same).
#[pyfunction]
fn plain_agrees(line: &[u8]) -> (bool, bool) {
    wire::plain_agrees(line)
}

#[pymodule]
fn crossing_monitor_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("FOLD_VERSION", 1)?;
    // the names and bounds it shares with the Python core (a test holds them equal)
    m.add("EVENT_TYPES", EVENT_TYPES.to_vec())?;
    m.add("INSPECTION_BUCKETS", fold::INSPECTION_BUCKETS.to_vec())?;
    m.add("TS_RANGE", (wire::TS_MIN, wire::TS_END))?;
    m.add("STATE_VERSION", 2)?;
    m.add_class::<Fold>()?;
    m.add_function(wrap_pyfunction!(plain_agrees, m)?)?;
    m.add_class::<model::PortModel>()?;
    m.add_class::<batch::RecordBatch>()?;
    m.add_function(wrap_pyfunction!(replay::group_by_key, m)?)?;
    m.add_function(wrap_pyfunction!(model::model_tonnes_json, m)?)?;
    m.add_function(wrap_pyfunction!(model::model_draws, m)?)?;
    Ok(())
}
