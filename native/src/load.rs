//! A Port from a snapshot in `PortMetrics.to_state()`'s form (the worker's checkpoints): the inverse of
//! `lib::state`, with `PortMetrics.from_state`'s rules. A snapshot that does not hold what a fold could
//! have written is refused with an error (the worker then rebuilds the state from the topic).

use crate::ids::IdSet;
use crate::fold::{Bucket, Day, Histogram, Mean, Name, Port, SampleWait, Vehicle};
use crate::wire::{self, BOOKING_NAMES, EVENT_TYPES};
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::VecDeque;
use std::sync::Arc;

type Any<'py> = Bound<'py, PyAny>;

/// Interns day names for the fold's day numbers.
pub trait DayNames {
    fn number(&mut self, name: &str) -> u32;
}

fn item<'py>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Any<'py>> {
    d.get_item(key)?.ok_or_else(|| PyKeyError::new_err(key.to_string()))
}

fn dict<'py>(v: &Any<'py>) -> PyResult<Bound<'py, PyDict>> {
    Ok(v.cast::<PyDict>()?.clone())
}

fn seq<'py>(v: &Any<'py>) -> PyResult<Vec<Any<'py>>> {
    v.try_iter()?.collect()
}

fn bad(what: &str) -> PyErr {
    PyValueError::new_err(format!("snapshot: {what}"))
}

fn code(name: &str, found: Option<u8>) -> PyResult<u8> {
    found.ok_or_else(|| bad(&format!("unknown name {name:?}")))
}

fn opt_code(v: &Any, parse: fn(&str) -> Option<u8>) -> PyResult<Option<u8>> {
    let s: String = v.extract()?;
    if s.is_empty() { Ok(None) } else { code(&s, parse(&s)).map(Some) }
}

fn booking(name: &str) -> Option<u8> {
    BOOKING_NAMES.iter().position(|b| *b == name).map(|i| i as u8)
}

fn mean(v: &Any) -> PyResult<Mean> {
    let pair = seq(v)?;
    if pair.len() != 2 {
        return Err(bad("a mean is [total, count]"));
    }
    Ok(Mean { total: pair[0].extract()?, count: pair[1].extract()? })
}

fn means_by_class(v: &Any) -> PyResult<[Option<Mean>; 4]> {
    let mut out = [None; 4];
    for (k, m) in dict(v)?.iter() {
        let k: String = k.extract()?;
        out[code(&k, wire::vehicle_class(&k))? as usize] = Some(mean(&m)?);
    }
    Ok(out)
}

fn by_direction_class(v: &Any) -> PyResult<[[Option<Mean>; 4]; 2]> {
    let mut out = [[None; 4]; 2];
    for (d, by) in dict(v)?.iter() {
        let d: String = d.extract()?;
        out[code(&d, wire::direction(&d))? as usize] = means_by_class(&by)?;
    }
    Ok(out)
}

fn by_booking(v: &Any) -> PyResult<[Mean; 2]> {
    let mut out = [Mean::default(); 2];
    for (b, m) in dict(v)?.iter() {
        let b: String = b.extract()?;
        out[code(&b, booking(&b))? as usize] = mean(&m)?;
    }
    Ok(out)
}

fn histograms(v: &Any) -> PyResult<[Option<Histogram>; 4]> {
    let mut out: [Option<Histogram>; 4] = [None, None, None, None];
    for (k, h) in dict(v)?.iter() {
        let k: String = k.extract()?;
        let parts = seq(&h)?;
        if parts.len() != 2 {
            return Err(bad("a histogram is [counts, total]"));
        }
        let counts: Vec<i64> = parts[0].extract()?;
        let counts: [i64; 18] = counts.try_into().map_err(|_| bad("a histogram has 18 buckets"))?;
        out[code(&k, wire::vehicle_class(&k))? as usize] = Some(Histogram { counts, total: parts[1].extract()? });
    }
    Ok(out)
}

fn names(v: &Any) -> PyResult<Vec<Name>> {
    let mut out = Vec::new();
    for n in seq(v)? {
        let s: String = n.extract()?;
        out.push(Arc::from(s.as_str()));
    }
    Ok(out)
}

fn hours(v: &Any) -> PyResult<VecDeque<(i64, Vec<Name>)>> {
    let mut out = VecDeque::new();
    for row in seq(v)? {
        let row = seq(&row)?;
        if row.len() != 2 {
            return Err(bad("an hour is [hour, names]"));
        }
        out.push_back((row[0].extract()?, names(&row[1])?));
    }
    Ok(out)
}

fn vehicle(v: &Any) -> PyResult<Vehicle> {
    let f = seq(v)?;
    if f.len() != 9 {
        return Err(bad("a vehicle has 9 fields"));
    }
    let rec = Vehicle {
        touched_hour: f[0].extract()?,
        arrived: f[1].extract()?,
        arrived_direction: opt_code(&f[2], wire::direction)?,
        booked: f[3].extract()?,
        entered: f[4].extract()?,
        exited: f[5].extract()?,
        exit_class: opt_code(&f[6], wire::vehicle_class)?,
        exit_direction: opt_code(&f[7], wire::direction)?,
        progressed: f[8].extract()?,
    };
    if rec.arrived.is_some() != rec.arrived_direction.is_some()
        || rec.exited.is_some() != rec.exit_class.is_some()
        || rec.exited.is_some() != rec.exit_direction.is_some()
    {
        return Err(bad("a vehicle's arrival or exit lacks its direction or class"));
    }
    Ok(rec)
}

fn rows<'py>(v: &Any<'py>, width: usize) -> PyResult<Vec<Vec<Any<'py>>>> {
    let mut out = Vec::new();
    for row in seq(v)? {
        let row = seq(&row)?;
        if row.len() != width {
            return Err(bad(&format!("a row of {width} fields")));
        }
        out.push(row);
    }
    Ok(out)
}

fn direction_of(v: &Any) -> PyResult<u8> {
    let s: String = v.extract()?;
    code(&s, wire::direction(&s))
}

fn class_of(v: &Any) -> PyResult<u8> {
    let s: String = v.extract()?;
    code(&s, wire::vehicle_class(&s))
}

fn booking_of(v: &Any) -> PyResult<u8> {
    let s: String = v.extract()?;
    code(&s, booking(&s))
}

fn name_of(port: &mut Port, v: &Any) -> PyResult<Name> {
    let s: String = v.extract()?;
    Ok(port.shared(&s))
}

fn sorted<T: Ord>(items: &[T]) -> PyResult<()> {
    if items.windows(2).all(|w| w[0] <= w[1]) { Ok(()) } else { Err(bad("a recent list is not sorted")) }
}

pub fn port(state: &Bound<'_, PyDict>, days: &mut impl DayNames) -> PyResult<Port> {
    let version: Option<i64> = item(state, "version")?.extract()?;
    if version != Some(2) {
        return Err(bad(&format!("port snapshot version {version:?} (this fold reads version 2)")));
    }
    let mut p = Port::new();
    for (i, pair) in rows(&item(state, "sensors")?, 2)?.into_iter().enumerate() {
        let sensor = name_of(&mut p, &pair[0])?;
        let ts: i64 = pair[1].extract()?;
        match i {
            0 => (p.top_sensor, p.top_ts) = (Some(sensor), ts),
            1 => (p.second_sensor, p.second_ts) = (Some(sensor), ts),
            _ => return Err(bad("two sensors at most")),
        }
    }
    p.hour = item(state, "hour")?.extract()?;
    if p.hour.is_none() && p.top_sensor.is_some() {
        // (a fold's first event begins an hour; the Python core would record vehicles touched in no hour)
        return Err(bad("a sensor has reported but no hour was begun"));
    }
    let id_hours = hours(&item(state, "id_hours")?)?;
    p.ids = IdSet::from_hours(id_hours.iter().map(|(h, ids)| (*h, ids.iter().map(|id| &**id))));
    for (vid, v) in dict(&item(state, "vehicles")?)?.iter() {
        let vid: String = vid.extract()?;
        p.vehicles.insert(Arc::from(vid.as_str()), vehicle(&v)?);
    }
    p.vehicle_hours = hours(&item(state, "vehicle_hours")?)?;
    p.open_vehicle_hours = hours(&item(state, "open_vehicle_hours")?)?;
    for vid in seq(&item(state, "waiting")?)? {
        let vid: String = vid.extract()?;
        let Some((name, v)) = p.vehicles.get_key_value(vid.as_str()) else {
            return Err(bad("a waiting vehicle has no record"));
        };
        if v.arrived.is_none() {
            return Err(bad("a waiting vehicle has no arrival"));
        }
        let name = name.clone();
        p.waiting.insert(&name);
    }
    for (t, n) in dict(&item(state, "events_by_type")?)?.iter() {
        let t: String = t.extract()?;
        let k = EVENT_TYPES.iter().position(|x| *x == t).ok_or_else(|| bad("unknown event type"))?;
        p.events_by_type[k] = n.extract()?;
    }
    p.crossings = item(state, "crossings")?.extract()?;
    p.cargo_g = item(state, "cargo_g")?.extract()?;
    for (d, by) in dict(&item(state, "crossings_by")?)?.iter() {
        let dk = direction_of(&d)? as usize;
        for (c, n) in dict(&by)?.iter() {
            p.crossings_by[dk][class_of(&c)? as usize] = n.extract()?;
        }
    }
    p.scans = item(state, "scans")?.extract()?;
    p.flagged = item(state, "flagged")?.extract()?;
    for (name, d) in dict(&item(state, "days")?)?.iter() {
        let name: String = name.extract()?;
        let d = dict(&d)?;
        let day = Day {
            crossings: item(&d, "crossings")?.extract()?,
            cargo_g: item(&d, "cargo_g")?.extract()?,
            inspection: means_by_class(&item(&d, "inspection")?)?,
            wait: by_booking(&item(&d, "wait")?)?,
            clearance: by_direction_class(&item(&d, "clearance")?)?,
            scans: item(&d, "scans")?.extract()?,
            flagged: item(&d, "flagged")?.extract()?,
        };
        p.days.insert(days.number(&name), day);
    }
    p.inspection = means_by_class(&item(state, "inspection")?)?;
    p.inspection_observed = histograms(&item(state, "inspection_observed")?)?;
    p.inspection_retracted = histograms(&item(state, "inspection_retracted")?)?;
    for (d, by) in dict(&item(state, "wait")?)?.iter() {
        p.wait[direction_of(&d)? as usize] = by_booking(&by)?;
    }
    p.clearance = by_direction_class(&item(state, "clearance")?)?;
    p.recent_exits = item(state, "recent_exits")?.extract()?;
    for r in rows(&item(state, "recent_entries")?, 3)? {
        let lane = name_of(&mut p, &r[2])?;
        p.recent_entries.push((r[0].extract()?, direction_of(&r[1])?, lane));
    }
    for r in rows(&item(state, "recent_inspections")?, 4)? {
        let vid = name_of(&mut p, &r[1])?;
        p.recent_inspections.push((r[0].extract()?, vid, class_of(&r[2])?, r[3].extract()?));
    }
    for r in rows(&item(state, "recent_waits")?, 5)? {
        let vid = name_of(&mut p, &r[1])?;
        p.recent_waits.push((r[0].extract()?, vid, direction_of(&r[2])?, booking_of(&r[3])?, r[4].extract()?));
    }
    for r in rows(&item(state, "recent_clearances")?, 5)? {
        let vid = name_of(&mut p, &r[1])?;
        p.recent_clearances.push((r[0].extract()?, vid, direction_of(&r[2])?, class_of(&r[3])?, r[4].extract()?));
    }
    sorted(&p.recent_exits)?;
    sorted(&p.recent_entries)?;
    sorted(&p.recent_inspections)?;
    sorted(&p.recent_waits)?;
    sorted(&p.recent_clearances)?;
    // the forecast: another version (or none) starts learning afresh, as Forecaster.load does
    if let Some(f) = state.get_item("forecast")? {
        if let Ok(f) = f.cast::<PyDict>() {
            if f.get_item("version")?.map(|v| v.extract::<i64>().ok() == Some(1)).unwrap_or(false) {
                for r in rows(&item(f, "buckets")?, 7)? {
                    let mut lanes = std::collections::BTreeSet::new();
                    for lane in seq(&r[3])? {
                        lanes.insert(name_of(&mut p, &lane)?);
                    }
                    let key = (r[0].extract()?, direction_of(&r[1])?);
                    let b = Bucket {
                        entries: r[2].extract()?,
                        lanes,
                        long: r[4].extract()?,
                        booked: r[5].extract()?,
                        arrivals: r[6].extract()?,
                    };
                    p.buckets.push((key, b));
                }
            }
        }
    }
    // trends: none in a snapshot written before they existed
    if let Some(t) = state.get_item("trends")? {
        if t.is_truthy()? {
            let t = dict(&t)?;
            for r in rows(&item(&t, "crossings")?, 2)? {
                p.trend_crossings.insert(r[0].extract()?, r[1].extract()?);
            }
            for r in seq(&item(&t, "samples")?)? {
                let r: Vec<Any> = seq(&r)?;
                let wait = match r.len() {
                    4 => SampleWait::Mean(r[3].extract()?),
                    5 => SampleWait::Sum(r[3].extract()?, r[4].extract()?),
                    _ => return Err(bad("a trend sample is [quarter, out, in, wait]")),
                };
                p.trend_samples.insert(r[0].extract()?, (r[1].extract()?, r[2].extract()?, wait));
            }
            p.trend_quarter = item(&t, "quarter")?.extract()?;
        }
    }
    p.finish_load();
    Ok(p)
}
