//! The fast path of the wire format (SPEC §1): a line that is certainly a valid event becomes one here.
//!
//! It accepts a strict subset of what `crossing_monitor.core.events.validate` accepts and computes the
//! same values; anything else (a rejection, an unusual but valid form: unknown fields, duplicate keys,
//! non-ASCII digits, a number out of range) answers `None`, and the caller asks the Python core, which
//! stays the one judge of every line it does not accept at once.

use serde::Deserialize;
use std::borrow::Cow;
use std::cell::Cell;

pub const SECOND: i64 = 1_000_000;
/// 2000-01-01T00:00Z and 2100-01-01T00:00Z in microseconds since the epoch (SPEC 1.1: ts in [min, end)).
pub const TS_MIN: i64 = 946_684_800 * SECOND;
pub const TS_END: i64 = 4_102_444_800 * SECOND;
pub const MAX_CARGO_TONNES: f64 = 1000.0;

pub const EVENT_TYPES: [&str; 7] = [
    "vehicle.arrived",
    "gate.entered",
    "scan.started",
    "scan.completed",
    "inspection.started",
    "inspection.completed",
    "gate.exited",
];
pub const ARRIVED: u8 = 0;
pub const ENTERED: u8 = 1;
pub const SCAN_COMPLETED: u8 = 3;
pub const EXITED: u8 = 6;

/// Codes ordered as their names are (Python compares the names in tuples): inbound < outbound.
pub const DIRECTION_NAMES: [&str; 2] = ["inbound", "outbound"];
/// bus < car < other < truck.
pub const CLASS_NAMES: [&str; 4] = ["bus", "car", "other", "truck"];
/// booked < walk_up.
pub const BOOKING_NAMES: [&str; 2] = ["booked", "walk_up"];

pub fn event_type(name: &str) -> Option<u8> {
    EVENT_TYPES.iter().position(|t| *t == name).map(|i| i as u8)
}

pub fn direction(name: &str) -> Option<u8> {
    match name {
        "inbound" => Some(0),
        "outbound" => Some(1),
        _ => None,
    }
}

pub fn vehicle_class(name: &str) -> Option<u8> {
    match name {
        "bus" => Some(0),
        "car" => Some(1),
        "other" => Some(2),
        "truck" => Some(3),
        _ => None,
    }
}

/// One valid event, as the fold needs it (strings borrowed from the line where no escape was decoded).
pub struct Event<'a> {
    pub event_id: Cow<'a, str>,
    pub etype: u8,
    pub ts: i64,
    pub port: Cow<'a, str>,
    pub lane: Cow<'a, str>,
    pub direction: u8,
    pub vehicle_id: Cow<'a, str>,
    pub vehicle_class: u8,
    pub sensor_id: Cow<'a, str>,
    pub booked: bool,
    pub flagged: bool,
    pub cargo_grams: i64,
}

#[derive(Deserialize, PartialEq, Debug)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    #[serde(borrow, rename = "type")]
    etype: Cow<'a, str>,
    #[serde(borrow)]
    ts: Cow<'a, str>,
    #[serde(borrow)]
    port: Cow<'a, str>,
    #[serde(borrow)]
    lane: Cow<'a, str>,
    #[serde(borrow)]
    direction: Cow<'a, str>,
    #[serde(borrow)]
    vehicle_id: Cow<'a, str>,
    #[serde(borrow)]
    vehicle_class: Cow<'a, str>,
    #[serde(borrow)]
    sensor_id: Cow<'a, str>,
    #[serde(default)]
    booked: Option<bool>,
    #[serde(default, borrow)]
    result: Option<Cow<'a, str>>,
    #[serde(default)]
    cargo_tonnes: Option<f64>,
}

/// Grams of cargo as the Python core rounds them: `round(cargo * 1_000_000) if cargo else 0`.
pub fn cargo_grams(cargo: Option<f64>) -> i64 {
    match cargo {
        Some(c) if c != 0.0 => (c * 1_000_000.0).round_ties_even() as i64,
        _ => 0,
    }
}

/// The line as an event when it certainly is a valid one of a port in `is_port`; None: ask Python.
pub fn fast_event<'a>(line: &'a [u8], is_port: impl Fn(&str) -> bool) -> Option<Event<'a>> {
    match plain(line) {
        Some(w) => valid(w, is_port),
        None => parsed(line, is_port),
    }
}

/// `fast_event` with serde's parser only (what `plain` must agree with; tests compare them).
pub fn parsed<'a>(line: &'a [u8], is_port: impl Fn(&str) -> bool) -> Option<Event<'a>> {
    // an object only: serde fills a struct from an array too, by position, which the core rejects
    if line.iter().find(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r')) != Some(&b'{') {
        return None;
    }
    valid(serde_json::from_slice(line).ok()?, is_port)
}

/// The fields of a line in the form the gateways and the simulator write (orjson's: no whitespace, no
/// escape, printable ASCII strings, plain decimal numbers, each known key once, any order), read without
/// a general parser; None for anything else, which serde then reads. Where this answers, serde would have
/// read the same fields (tests hold the two to each other on every line they have).
fn plain(line: &[u8]) -> Option<Wire<'_>> {
    let mut fields: [Option<&str>; 10] = [None; 10];
    let (mut booked, mut cargo) = (None, None);
    let mut seen = 0u16;
    let end = line.iter().rposition(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r')).map_or(0, |i| i + 1);
    // One look at every byte up to the trailing whitespace (without an early exit, so that the compiler
    // checks many at a time): printable ASCII, and no backslash, so no string has an escape.
    let body = &line[..end];
    if body.first() != Some(&b'{') || !body.iter().fold(true, |ok, &c| ok & (0x20..0x7f).contains(&c) & (c != b'\\')) {
        return None;
    }
    // SAFETY: every byte of `body` was just checked to be in 0x20..0x7f: ASCII, which is valid UTF-8.
    // (`from_utf8` would check again, about a third of the cost of reading a line.)
    let line = unsafe { std::str::from_utf8_unchecked(body) };
    let mut i = 1;
    let mut k = 0; // the field the usual order has next
    loop {
        k = match usual_key_at(&line.as_bytes()[i..], k) {
            Some(usual) => {
                i += KEY_TEXTS[usual].len();
                usual
            }
            None => {
                let key = string_at(line, i)?;
                i += key.len() + 2;
                if line.as_bytes().get(i) != Some(&b':') {
                    return None;
                }
                i += 1;
                key_number(key.as_bytes())?
            }
        };
        if seen & (1 << k) != 0 {
            return None; // a duplicate key: the Python core decides
        }
        seen |= 1 << k;
        match k {
            BOOKED => {
                let (value, len) = match line.as_bytes().get(i)? {
                    b't' if line[i..].starts_with("true") => (true, 4),
                    b'f' if line[i..].starts_with("false") => (false, 5),
                    _ => return None,
                };
                booked = Some(value);
                i += len;
            }
            CARGO => {
                let rest = &line.as_bytes()[i..];
                let len = rest.iter().position(|c| !matches!(c, b'0'..=b'9' | b'.')).unwrap_or(rest.len());
                let number = &line[i..i + len];
                if !is_plain_decimal(number.as_bytes()) {
                    return None;
                }
                cargo = Some(number.parse::<f64>().ok()?);
                i += len;
            }
            _ => {
                let value = string_at(line, i)?;
                fields[k] = Some(value);
                i += value.len() + 2;
            }
        }
        match line.as_bytes().get(i)? {
            b',' => i += 1,
            b'}' => break,
            _ => return None,
        }
        k += 1;
    }
    if i + 1 != line.len() {
        return None; // more after the object than whitespace
    }
    let required = |k: usize| fields[k].map(Cow::Borrowed);
    Some(Wire {
        event_id: required(0)?,
        etype: required(1)?,
        ts: required(2)?,
        port: required(3)?,
        lane: required(4)?,
        direction: required(5)?,
        vehicle_id: required(6)?,
        vehicle_class: required(7)?,
        sensor_id: required(8)?,
        result: fields[RESULT].map(Cow::Borrowed),
        booked,
        cargo_tonnes: cargo,
    })
}

/// For tests: (whether `plain` read the line, whether serde reads the same fields from it).
pub fn plain_agrees(line: &[u8]) -> (bool, bool) {
    match plain(line) {
        None => (false, true),
        Some(w) => (true, serde_json::from_slice::<Wire>(line).ok().as_ref() == Some(&w)),
    }
}

const RESULT: usize = 9;
const BOOKED: usize = 10;
const CARGO: usize = 11;

/// Each key as the usual order writes it, with its quotes and colon, by field number.
const KEY_TEXTS: [&[u8]; 12] = [
    b"\"event_id\":", b"\"type\":", b"\"ts\":", b"\"port\":", b"\"lane\":", b"\"direction\":",
    b"\"vehicle_id\":", b"\"vehicle_class\":", b"\"sensor_id\":", b"\"result\":", b"\"booked\":",
    b"\"cargo_tonnes\":",
];

/// The key at the start of `rest` when it is the one the usual order has next (`next`), or, after the
/// required ones, one of the optional ones: a comparison or three instead of a search and a match.
fn usual_key_at(rest: &[u8], next: usize) -> Option<usize> {
    if next < RESULT {
        return starts_with_key(rest, KEY_TEXTS[next]).then_some(next);
    }
    (RESULT..KEY_TEXTS.len()).find(|&k| starts_with_key(rest, KEY_TEXTS[k]))
}

/// `rest.starts_with(key)` for a key text of 4 to 16 bytes, in two overlapping loads of each side
/// instead of a call to memcmp (which a general comparison makes, a fifth of a line's reading).
fn starts_with_key(rest: &[u8], key: &[u8]) -> bool {
    let n = key.len();
    if rest.len() < n {
        return false;
    }
    let word = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let half = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
    match n {
        8..=16 => word(rest, 0) == word(key, 0) && word(rest, n - 8) == word(key, n - 8),
        4..=7 => half(rest, 0) == half(key, 0) && half(rest, n - 4) == half(key, n - 4),
        _ => rest.starts_with(key),
    }
}

/// The field number of a key `plain` reads (its first nine are required).
fn key_number(key: &[u8]) -> Option<usize> {
    Some(match key {
        b"event_id" => 0,
        b"type" => 1,
        b"ts" => 2,
        b"port" => 3,
        b"lane" => 4,
        b"direction" => 5,
        b"vehicle_id" => 6,
        b"vehicle_class" => 7,
        b"sensor_id" => 8,
        b"result" => RESULT,
        b"booked" => BOOKED,
        b"cargo_tonnes" => CARGO,
        _ => return None,
    })
}

/// The string whose opening quote is at `i` (in a line `plain` checked: printable ASCII, no escape).
fn string_at(line: &str, i: usize) -> Option<&str> {
    if line.as_bytes().get(i) != Some(&b'"') {
        return None;
    }
    let len = memchr::memchr(b'"', &line.as_bytes()[i + 1..])?;
    Some(&line[i + 1..i + 1 + len])
}

/// `(0|[1-9][0-9]{0,3})(\.[0-9]+)?`: a JSON number without sign or exponent, below 10,000 (so finite:
/// serde refuses a number too large for a float, where `parse` gives infinity), which Rust's correctly
/// rounded `parse` reads as serde_json's (float_roundtrip) does.
fn is_plain_decimal(n: &[u8]) -> bool {
    let (int, frac) = match n.iter().position(|&c| c == b'.') {
        Some(p) => (&n[..p], Some(&n[p + 1..])),
        None => (n, None),
    };
    let int_ok =
        (1..=4).contains(&int.len()) && int.iter().all(u8::is_ascii_digit) && (int.len() == 1 || int[0] != b'0');
    int_ok && frac.is_none_or(|f| !f.is_empty() && f.iter().all(u8::is_ascii_digit))
}

/// A line's fields as an event, when they make a valid one (the checks of the core's `validate`).
fn valid<'a>(w: Wire<'a>, is_port: impl Fn(&str) -> bool) -> Option<Event<'a>> {
    let etype = event_type(&w.etype)?;
    let direction = direction(&w.direction)?;
    let vehicle_class = vehicle_class(&w.vehicle_class)?;
    if !is_port(&w.port) || w.lane.is_empty() || w.vehicle_id.is_empty() || w.sensor_id.is_empty() {
        return None;
    }
    // at most 128 characters: at most 128 bytes surely are (counting them costs as much as reading the line)
    if w.event_id.is_empty() || (w.event_id.len() > 128 && w.event_id.chars().count() > 128) {
        return None;
    }
    let ts = parse_timestamp(w.ts.as_bytes())?;
    if !(TS_MIN..TS_END).contains(&ts) {
        return None;
    }
    let flagged = match w.result.as_deref() {
        None if etype != SCAN_COMPLETED => false,
        Some("clear") => false,
        Some("flagged") => true,
        _ => return None,
    };
    if let Some(c) = w.cargo_tonnes {
        if !(0.0..=MAX_CARGO_TONNES).contains(&c) {
            return None;
        }
    }
    Some(Event {
        event_id: w.event_id,
        etype,
        ts,
        port: w.port,
        lane: w.lane,
        direction,
        vehicle_id: w.vehicle_id,
        vehicle_class,
        sensor_id: w.sensor_id,
        booked: w.booked == Some(true),
        flagged,
        cargo_grams: cargo_grams(w.cargo_tonnes),
    })
}

fn digits(b: &[u8]) -> Option<i64> {
    let mut n = 0i64;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(c - b'0');
    }
    Some(n)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

thread_local! {
    /// The last date `date` read (its ten bytes) and its day number: a log's timestamps share a date for
    /// hours on end. (No date's bytes are all zero, so the first look finds nothing.)
    static LAST_DATE: Cell<(u64, u16, i64)> = const { Cell::new((0, 0, 0)) };
}

/// `YYYY-MM-DD` (the dashes checked by the caller) as days from 1970-01-01, when it is a date.
fn date(b: &[u8]) -> Option<i64> {
    let key = (u64::from_le_bytes(b[..8].try_into().expect("8 bytes")), u16::from_le_bytes([b[8], b[9]]));
    let (k0, k1, days) = LAST_DATE.get();
    if (k0, k1) == key {
        return Some(days);
    }
    let (y, mo, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    if y < 1 || !(1..=12).contains(&mo) {
        return None;
    }
    let month_days = [31, if is_leap(y) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if d < 1 || d > month_days[(mo - 1) as usize] {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    LAST_DATE.set((key.0, key.1, days));
    Some(days)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 with an offset → microseconds since the epoch, for the forms `parse_timestamp` of the
/// Python core accepts with ASCII digits: `YYYY-MM-DD[Tt ]HH:MM:SS[.f{1,9}](Z|z|±HH:MM)`, a leap
/// second :60 counted as :59, fraction digits past the sixth dropped. None: not certainly one.
pub fn parse_timestamp(b: &[u8]) -> Option<i64> {
    let n = b.len();
    if n < 20 || !b.is_ascii() {
        return None;
    }
    let (frac, off_us) = match b[n - 1] {
        b'Z' | b'z' => (&b[19..n - 1], 0i64),
        _ => {
            if n < 25 {
                return None;
            }
            let o = &b[n - 6..];
            let sign = match o[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if o[3] != b':' {
                return None;
            }
            let (hh, mm) = (digits(&o[1..3])?, digits(&o[4..6])?);
            if hh > 23 || mm > 59 {
                return None;
            }
            (&b[19..n - 6], sign * (hh * 3600 + mm * 60) * SECOND)
        }
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, s) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = date(&b[..10])?;
    let micros = if frac.is_empty() {
        0
    } else {
        if frac[0] != b'.' || frac.len() < 2 || frac.len() > 10 {
            return None;
        }
        let f = &frac[1..];
        digits(f)?;
        let mut us = 0i64;
        for i in 0..6 {
            us = us * 10 + f.get(i).map_or(0, |c| i64::from(c - b'0'));
        }
        us
    };
    let minute_start = (days * 86_400 + h * 3600 + mi * 60) * SECOND;
    Some(minute_start - off_us + s.min(59) * SECOND + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp(b"1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_timestamp(b"2000-01-01T00:00:00Z"), Some(TS_MIN));
        assert_eq!(parse_timestamp(b"2100-01-01t08:00:00+08:00"), Some(TS_END));
        assert_eq!(parse_timestamp(b"2023-01-01 09:00:44.2771239+08:00"), Some(1_672_534_844_277_123));
        assert_eq!(parse_timestamp(b"2016-12-31T23:59:60Z"), parse_timestamp(b"2016-12-31T23:59:59Z"));
        assert_eq!(parse_timestamp(b"2023-02-29T00:00:00Z"), None);
        assert!(parse_timestamp(b"2024-02-29T00:00:00Z").is_some());
        assert_eq!(parse_timestamp(b"2023-01-01T00:00:00+24:00"), None);
        assert_eq!(parse_timestamp(b"2023-01-01T00:00:00."), None);
        assert_eq!(parse_timestamp(b"2023-01-01T00:00:00"), None);
        // the last date read is remembered: the next read of it, and of other dates, still checks them
        for _ in 0..2 {
            assert_eq!(parse_timestamp(b"2024-02-29T01:00:00Z"), Some(1_709_168_400 * SECOND));
            // dates sharing the remembered one's first eight bytes (a key of fewer bytes would take them)
            assert_eq!(parse_timestamp(b"2024-02-28T01:00:00Z"), Some((1_709_168_400 - 86_400) * SECOND));
            assert_eq!(parse_timestamp(b"2024-02-30T01:00:00Z"), None);
            assert_eq!(parse_timestamp(b"2024-02-29T01:00:00Z"), Some(1_709_168_400 * SECOND));
            assert_eq!(parse_timestamp(b"2024-02-2xT01:00:00Z"), None);
            assert_eq!(parse_timestamp(b"2023-02-29T01:00:00Z"), None);
            assert_eq!(parse_timestamp(b"2024-02-29T24:00:00Z"), None);
            assert_eq!(parse_timestamp(b"2024-13-01T01:00:00Z"), None);
        }
    }

    #[test]
    fn key_prefixes() {
        for key in KEY_TEXTS {
            for len in 0..24 {
                let mut rest: Vec<u8> = key.iter().copied().chain(b"\"x\",\"y\":1}".iter().copied()).take(len).collect();
                assert_eq!(starts_with_key(&rest, key), rest.starts_with(key));
                for at in 0..rest.len() {
                    let was = rest[at];
                    rest[at] ^= 0x20;
                    assert_eq!(starts_with_key(&rest, key), rest.starts_with(key), "{rest:?}");
                    rest[at] = was;
                }
            }
        }
    }
}
