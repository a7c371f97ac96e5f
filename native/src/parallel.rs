//! `analyze`'s fold on two threads, exactly as on one: ports are independent (each one's state sees only
//! its own events, in the log's order), so a chunk's lines are parsed in two halves at once, then its
//! ports are split between two threads that each fold their own ports, port by port, each port's events
//! in the log's order (the parse lists each port's positions, so a thread never looks at another's).
//!
//! A line the fast path leaves to the Python core (a rejection, an unusual form) is judged on the calling
//! thread, in its place: the events before it are folded first, the ones after it once it is judged.
//! The threads name new calendar days with the Python DayClock under the GIL, one name table for all.

use crate::fold::Port;
use crate::wire::{self, Event};
use crate::{day_block, fold_event, intern, is_blank, lines, Fold};
use pyo3::prelude::*;
use rustc_hash::FxHashMap;
use std::sync::Mutex;

/// Below this many bytes of complete lines a chunk is folded on one thread (a second one would not pay).
pub const PARALLEL_BYTES: usize = 1 << 16;
/// Fewer events than this between two lines for Python are folded on the calling thread.
pub const PARALLEL_RUN: usize = 512;

/// A line and what the fast path made of it: its event and the event's port, or None (Python decides).
struct Parsed<'a> {
    line: &'a [u8],
    event: Option<(Event<'a>, usize)>,
}

/// One port's state as a folding thread holds it.
struct Slot<'s> {
    events: &'s [u32],
    port: &'s mut Option<Port>,
    generation: &'s mut u64,
    cache: &'s mut FxHashMap<i64, u32>,
    clock: &'s Py<PyAny>,
}

type Names<'s> = Mutex<(&'s mut Vec<String>, &'s mut FxHashMap<String, u32>)>;

/// A half chunk parsed: its lines in order, and per port the positions of its events among them (in order).
struct Half<'a> {
    parsed: Vec<Parsed<'a>>,
    by_port: Vec<Vec<u32>>,
}

fn parse<'a>(part: &'a [u8], slugs: &FxHashMap<String, usize>) -> Half<'a> {
    // (the port's number kept from the one look-up that checks it: an event's port is looked at once;
    // looked up again should the check ever not have run for the line)
    let found = std::cell::Cell::new(usize::MAX);
    let is_port = |p: &str| slugs.get(p).map(|&i| found.set(i)).is_some();
    let port_of = |ev: &Event| match found.get() {
        usize::MAX => slugs[&*ev.port],
        i => i,
    };
    let mut parsed = Vec::with_capacity(part.len() / 256);
    let mut by_port: Vec<Vec<u32>> = vec![Vec::new(); slugs.len()];
    for (k, line) in lines(part).enumerate() {
        found.set(usize::MAX);
        let event = wire::fast_event(line, is_port).map(|ev| {
            let port = port_of(&ev);
            // (a half chunk of 2^32 lines would need far more memory for `parsed` than any machine has)
            by_port[port].push(u32::try_from(k).expect("fewer than 2^32 lines in a half chunk"));
            (ev, port)
        });
        parsed.push(Parsed { line, event });
    }
    Half { parsed, by_port }
}

/// The events of each port of `slots` (their positions in `parsed`, in order), port by port: ports are
/// independent, and one port's state stays in the cache while its events are folded. The duplicates found.
fn fold_slots(parsed: &[Parsed], slots: Vec<Option<Slot>>, names: &Names) -> PyResult<u64> {
    let mut duplicates = 0;
    for slot in slots.into_iter().flatten() {
        let clock = slot.clock;
        let name = |quarter: i64| -> PyResult<Vec<u32>> {
            // the GIL first, then the table: a thread never waits for one while holding the other
            let days = Python::attach(|py| day_block(clock.bind(py), quarter))?;
            let mut table = names.lock().unwrap_or_else(|e| e.into_inner());
            let (list, index) = &mut *table;
            Ok(days.into_iter().map(|day| intern(list, index, day)).collect())
        };
        for &k in slot.events {
            let Some((ev, _)) = &parsed[k as usize].event else { continue };
            if !fold_event(&mut *slot.port, &mut *slot.generation, &mut *slot.cache, name, ev)? {
                duplicates += 1;
            }
        }
    }
    Ok(duplicates)
}

/// Which of two threads folds each port: the busiest port first, each to the thread with fewer events
/// so far (`counts`: events per port in the run). None when one thread would do all the work.
fn split(counts: &[usize]) -> Option<Vec<usize>> {
    let mut order: Vec<usize> = (0..counts.len()).filter(|&i| counts[i] > 0).collect();
    if order.len() < 2 {
        return None;
    }
    order.sort_by_key(|&i| std::cmp::Reverse(counts[i]));
    let mut load = [0usize; 2];
    let mut owner = vec![0; counts.len()];
    for i in order {
        let t = usize::from(load[1] < load[0]);
        owner[i] = t;
        load[t] += counts[i];
    }
    Some(owner)
}

impl Fold {
    /// Complete lines (`body`, at least PARALLEL_BYTES) folded on two threads, as `line` folds them one by one.
    pub(crate) fn fold_parallel(&mut self, py: Python<'_>, body: &[u8]) -> PyResult<()> {
        let middle = memchr::memchr(b'\n', &body[body.len() / 2..]).map_or(body.len(), |i| body.len() / 2 + i + 1);
        let (first, second) = body.split_at(middle);
        let slugs = &self.slugs;
        let (mine, theirs) = py.detach(|| {
            std::thread::scope(|scope| {
                let other = scope.spawn(|| parse(second, slugs));
                let mine = parse(first, slugs);
                (mine, other.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            })
        });
        self.fold_parsed(py, &mine)?;
        self.fold_parsed(py, &theirs)
    }

    /// Parsed lines in order: each run of events between two lines for the Python core folded by
    /// `fold_run`, each of those lines judged in its place.
    fn fold_parsed(&mut self, py: Python<'_>, half: &Half) -> PyResult<()> {
        let parsed = &half.parsed;
        let mut taken = vec![0; half.by_port.len()]; // per port: its events folded so far
        let mut start = 0;
        while start < parsed.len() {
            // a run ends at a line for the Python core (blank lines are no messages: they stay in it)
            let for_python = |p: &Parsed| p.event.is_none() && !is_blank(p.line);
            let end = parsed[start..].iter().position(for_python).map_or(parsed.len(), |k| start + k);
            let by_port: Vec<&[u32]> = half
                .by_port
                .iter()
                .zip(taken.iter_mut())
                .map(|(list, from)| {
                    let upto = *from + list[*from..].partition_point(|&k| (k as usize) < end);
                    let events = &list[*from..upto];
                    *from = upto;
                    events
                })
                .collect();
            self.fold_run(py, &parsed[start..end], parsed, &by_port)?;
            if end < parsed.len() {
                self.parsed_line(py, parsed[end].line, None)?;
            }
            start = end + 1;
        }
        Ok(())
    }

    /// A run of events, in order: on two threads by port when it is long and has two ports to share
    /// (`by_port`: each port's events of the run, as positions in `parsed`).
    fn fold_run(&mut self, py: Python<'_>, run: &[Parsed], parsed: &[Parsed], by_port: &[&[u32]]) -> PyResult<()> {
        let counts: Vec<usize> = by_port.iter().map(|events| events.len()).collect();
        let events: usize = counts.iter().sum();
        let owner = if events >= self.parallel_run.max(2) { split(&counts) } else { None };
        let Some(owner) = owner else {
            for p in run {
                if let Some((ev, _)) = &p.event {
                    self.event(py, ev)?;
                }
            }
            return Ok(());
        };
        let mut groups: [Vec<Option<Slot>>; 2] = [Vec::new(), Vec::new()];
        let slots = self.ports.iter_mut().zip(self.generations.iter_mut()).zip(self.day_cache.iter_mut());
        for (i, ((port, generation), cache)) in slots.enumerate() {
            let slot = Slot { events: by_port[i], port, generation, cache, clock: &self.clocks[i] };
            let t = owner[i];
            groups[t].push(Some(slot));
            groups[1 - t].push(None);
        }
        let names: Names = Mutex::new((&mut self.day_names, &mut self.day_index));
        let [mine, theirs] = groups;
        let (a, b) = py.detach(|| {
            std::thread::scope(|scope| {
                // (a thread state held for the whole run: naming a day then only takes the GIL, instead of making one)
                let other = scope.spawn(|| Python::attach(|py| py.detach(|| fold_slots(parsed, theirs, &names))));
                let folded = fold_slots(parsed, mine, &names);
                (folded, other.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            })
        });
        self.parallel_runs += 1;
        // Either thread's error fails the whole fold (`feed` makes it unusable): the other one may have
        // folded past the failing event, as one thread would not have, and each thread meets its first
        // failure in its ports' order, not the log's.
        self.duplicates += a? + b?;
        Ok(())
    }
}
