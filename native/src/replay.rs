//! `replay --speed max`: a block of a log's lines, grouped by message key, without a Python call per line.
//!
//! Exactly the lines and keys of `producers/replay.py` (tests/test_native_replay.py holds them equal):
//! a line ends at b"\n" and loses its trailing b"\r"s; a line of ASCII whitespace only is no message;
//! a line with `"port"` once (counted without overlaps, as `bytes.count`) is keyed by the leftmost match
//! of `"port"\s*:\s*"([^"\\]{1,200})"`, or has no key; any other line is keyed by the given Python
//! function (`key_of`, which parses the JSON).

use pyo3::prelude::*;
use pyo3::types::PyBytes;

const PORT: &[u8] = b"\"port\"";

/// Python's `\s` in a bytes pattern, and `bytes.strip()`'s blanks.
fn blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The key the regular expression finds after a `"port"` starting at `at`, if it matches there.
fn port_at(line: &[u8], at: usize) -> Option<&[u8]> {
    let mut i = at + PORT.len();
    while i < line.len() && blank(line[i]) {
        i += 1;
    }
    if line.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    while i < line.len() && blank(line[i]) {
        i += 1;
    }
    if line.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let mut end = start;
    while end < line.len() && line[end] != b'"' && line[end] != b'\\' {
        end += 1;
    }
    let n = end - start;
    (line.get(end) == Some(&b'"') && (1..=200).contains(&n)).then(|| &line[start..end])
}

/// How the line is keyed: Some(key) or None by the regular expression, Err(()) when Python must say.
fn key_here<'a>(finder: &memchr::memmem::Finder<'_>, line: &'a [u8]) -> Result<Option<&'a [u8]>, ()> {
    if finder.find_iter(line).take(2).count() != 1 {
        return Err(());
    }
    // leftmost match among every start of "port", overlapping ones included (`"port"port": "x"`)
    let mut from = 0;
    while let Some(i) = finder.find(&line[from..]) {
        if let Some(key) = port_at(line, from + i) {
            return Ok(Some(key));
        }
        from += i + 1;
    }
    Ok(None)
}

type Groups = Vec<(Py<PyBytes>, usize, Py<PyBytes>)>;

/// The messages of `block` (whole lines; a last line without b"\n" counts as one): per key, in the order
/// keys first appear, (key, how many, the messages joined by b"\n" in the block's order); and the
/// messages without a key, in order.
#[pyfunction]
pub fn group_by_key(py: Python<'_>, block: &[u8], key_of: Bound<'_, PyAny>) -> PyResult<(Groups, Vec<Py<PyBytes>>)> {
    let finder = memchr::memmem::Finder::new(PORT);
    let mut groups: Vec<(Vec<u8>, usize, Vec<u8>)> = Vec::new(); // in the order keys first appear
    let mut index: rustc_hash::FxHashMap<Vec<u8>, usize> = Default::default();
    let mut keyless: Vec<Py<PyBytes>> = Vec::new();
    let mut asked: Vec<u8> = Vec::new();
    let mut add = |key: &[u8], line: &[u8]| {
        let found = match index.get(key) {
            Some(&i) => i,
            None => {
                index.insert(key.to_vec(), groups.len());
                groups.push((key.to_vec(), 0, Vec::new()));
                groups.len() - 1
            }
        };
        let g = &mut groups[found];
        if g.1 > 0 {
            g.2.push(b'\n');
        }
        g.2.extend_from_slice(line);
        g.1 += 1;
    };
    for piece in block.split(|&b| b == b'\n') {
        let mut end = piece.len();
        while end > 0 && piece[end - 1] == b'\r' {
            end -= 1;
        }
        let line = &piece[..end];
        if line.iter().all(|&b| blank(b)) {
            continue;
        }
        match key_here(&finder, line) {
            Ok(Some(key)) => add(key, line),
            Ok(None) => keyless.push(PyBytes::new(py, line).unbind()),
            Err(()) => {
                let key = key_of.call1((PyBytes::new(py, line),))?;
                if key.is_none() {
                    keyless.push(PyBytes::new(py, line).unbind());
                } else {
                    asked.clear();
                    asked.extend_from_slice(key.cast::<PyBytes>()?.as_bytes());
                    add(&asked, line);
                }
            }
        }
    }
    let out = groups
        .into_iter()
        .map(|(key, n, joined)| (PyBytes::new(py, &key).unbind(), n, PyBytes::new(py, &joined).unbind()))
        .collect();
    Ok((out, keyless))
}
