//! The event ids a port remembers, hour by hour (`PortMetrics.ids` and `id_hours`): each hour's ids
//! in one byte buffer, found through one hash table of (hour, position) pairs.
//!
//! Why not a set of strings: a port remembers two days of ids and forgets the oldest hour each hour;
//! with a string of its own per id, remembering one cost an allocation and forgetting it a second
//! read of cold memory (the string, to hash it) besides the table's slot, and a free. Here an id is a
//! few bytes appended to its hour's buffer, and forgetting an hour reads that buffer in order.
//!
//! The table holds at most one entry per id text, and forgetting an hour removes each of its ids by
//! text, as `ids.pop(event_id, None)` does: a hand-made state that lists an id in two hours behaves
//! as the Python core's (the first hour to go forgets it).
//!
//! A hand-made state may list no hour at all (`id_hours` empty): the Python core then puts the ids of
//! the events folded before the next hour begins in a list that no hour holds, so they are never listed
//! in a snapshot nor forgotten. `unlisted` holds those.

use hashbrown::HashTable;
use rustc_hash::{FxBuildHasher, FxHashSet};
use std::collections::VecDeque;
use std::hash::BuildHasher;

/// One hour's ids: their bytes one after another, and where each ends.
#[derive(Default)]
struct Hour {
    hour: i64,
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl Hour {
    /// List `id` after the others; its position.
    fn push(&mut self, id: &str) -> usize {
        self.bytes.extend_from_slice(id.as_bytes());
        self.ends.push(u32::try_from(self.bytes.len()).expect("an hour's ids fit in 4 GB"));
        self.ends.len() - 1
    }

    fn id(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }
}

#[derive(Default)]
pub struct IdSet {
    hours: VecDeque<Hour>,
    /// the sequence number of `hours[0]` (one more for each hour ever begun)
    first: u32,
    /// (sequence number << 32) | position in its hour
    table: HashTable<u64>,
    /// a forgotten hour's buffers, kept for the next one (an hour's worth of ids is alike in size)
    spare: Option<Hour>,
    /// ids remembered while no hour was begun (only after loading a state without `id_hours`)
    unlisted: FxHashSet<Box<str>>,
}

fn hash(id: &[u8]) -> u64 {
    FxBuildHasher.hash_one(id)
}

fn text(hours: &VecDeque<Hour>, first: u32, entry: u64) -> &[u8] {
    hours[((entry >> 32) as u32).wrapping_sub(first) as usize].id((entry & 0xffff_ffff) as usize)
}

impl IdSet {
    pub fn contains(&self, id: &str) -> bool {
        let bytes = id.as_bytes();
        let (hours, first) = (&self.hours, self.first);
        self.table.find(hash(bytes), |&e| text(hours, first, e) == bytes).is_some()
            || (!self.unlisted.is_empty() && self.unlisted.contains(id))
    }

    /// Begin an hour: the ids remembered from now on are listed in it.
    pub fn begin(&mut self, hour: i64) {
        let mut h = self.spare.take().unwrap_or_default();
        h.hour = hour;
        self.hours.push_back(h);
    }

    /// Remember an id that is not remembered yet (the caller checked), in the last hour begun, or
    /// unlisted while none was (a loaded state without hours, as the Python core's `_ids_this_hour`).
    pub fn remember(&mut self, id: &str) {
        if self.hours.is_empty() {
            self.unlisted.insert(id.into());
            return;
        }
        let seq = self.first.wrapping_add(self.hours.len() as u32 - 1);
        let at = self.hours.back_mut().expect("begun").push(id);
        let entry = (u64::from(seq) << 32) | at as u64;
        let (hours, first) = (&self.hours, self.first);
        self.table.insert_unique(hash(id.as_bytes()), entry, |&e| hash(text(hours, first, e)));
    }

    /// A listed id that is remembered already is listed again but not found twice (a loaded state).
    fn list(&mut self, id: &str) {
        if self.contains(id) {
            self.hours.back_mut().expect("begun").push(id);
        } else {
            self.remember(id);
        }
    }

    pub fn oldest_hour(&self) -> Option<i64> {
        self.hours.front().map(|h| h.hour)
    }

    /// Forget the oldest hour and every id it lists.
    pub fn forget_oldest(&mut self) {
        let Some(gone) = self.hours.front() else { return };
        let seq = self.first;
        for i in 0..gone.ends.len() {
            let id = gone.id(i);
            let own = (u64::from(seq) << 32) | i as u64;
            let hours = &self.hours;
            let found = self.table.find_entry(hash(id), |&e| e == own || text(hours, seq, e) == id);
            match found {
                Ok(entry) => {
                    entry.remove();
                }
                Err(_) if !self.unlisted.is_empty() => {
                    // (`ids.pop` by text: cannot be listed and unlisted in a fold, but the rule is one)
                    self.unlisted.remove(std::str::from_utf8(id).expect("ids are text"));
                }
                Err(_) => {}
            }
        }
        let mut gone = self.hours.pop_front().expect("an oldest hour");
        self.first = self.first.wrapping_add(1);
        gone.bytes.clear();
        gone.ends.clear();
        self.spare = Some(gone);
    }

    /// Each hour and its ids, oldest first (`PortMetrics.to_state()`'s `id_hours`).
    pub fn hours(&self) -> impl Iterator<Item = (i64, impl ExactSizeIterator<Item = &str>)> {
        self.hours.iter().map(|h| {
            let ids = (0..h.ends.len()).map(|i| std::str::from_utf8(h.id(i)).expect("ids are text"));
            (h.hour, ids)
        })
    }

    /// A loaded state's hours, as `PortMetrics.from_state` makes its `ids`.
    pub fn from_hours<'a, I: IntoIterator<Item = &'a str>>(hours: impl IntoIterator<Item = (i64, I)>) -> Self {
        let mut set = IdSet::default();
        for (hour, ids) in hours {
            set.begin(hour);
            for id in ids {
                set.list(id);
            }
        }
        set
    }
}
