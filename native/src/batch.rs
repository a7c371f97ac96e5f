//! A Kafka record batch (magic 2, uncompressed, not transactional) written here instead of one Python
//! call per message: `simulate --speed max` hands a chunk of a port model's events, joined by newlines,
//! and they become records without a Python object each.
//!
//! The object has the methods aiokafka's producer calls on a `BatchBuilder` it was given with
//! `send_batch` (`record_count`, `closed`, `close`, `size`, `_set_producer_state`, `_build`), and the
//! `append` its `BatchBuilder` has, so the publisher treats both alike. The bytes are those aiokafka's
//! own builder writes for the same records and timestamps (tests/test_native_batch.py holds them
//! equal): a 61-byte header (base offset 0, length, leader epoch -1, magic 2, CRC-32C, attributes 0,
//! last offset delta, first and max timestamp, producer id, epoch, base sequence, count), then per
//! record its varint length, attributes 0, timestamp delta, offset delta, key, value and no headers.
//! Like aiokafka's compiled builder, the first record always goes in, any other only while the batch
//! stays below its size; an empty batch has timestamps -1.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::time::{SystemTime, UNIX_EPOCH};

const HEADER: usize = 61;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;

/// Zigzag then LEB128, as Kafka's varints and varlongs.
fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(value: i64) -> usize {
    let v = ((value << 1) ^ (value >> 63)) as u64;
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[pyclass(module = "crossing_monitor_native")]
pub struct RecordBatch {
    buf: Vec<u8>,
    limit: usize,
    count: i32,
    first_ts: Option<i64>,
    max_ts: i64,
    producer: (i64, i16, i32),
    closed: bool,
    built: Option<Py<PyBytes>>,
    body: Vec<u8>, // one record's body, reused
}

impl RecordBatch {
    /// Add one record unless the batch is full (the first always fits); whether it went in.
    fn push(&mut self, timestamp: i64, key: Option<&[u8]>, value: &[u8]) -> bool {
        let first = *self.first_ts.get_or_insert(timestamp);
        let body = &mut self.body;
        body.clear();
        body.push(0); // attributes
        put_varint(body, timestamp - first);
        put_varint(body, self.count as i64); // offset delta
        match key {
            Some(k) => {
                put_varint(body, k.len() as i64);
                body.extend_from_slice(k);
            }
            None => put_varint(body, -1),
        }
        put_varint(body, value.len() as i64);
        body.extend_from_slice(value);
        put_varint(body, 0); // headers
        let len = body.len() as i64;
        if self.count > 0 && self.buf.len() + body.len() + varint_len(len) >= self.limit {
            return false;
        }
        put_varint(&mut self.buf, len);
        self.buf.extend_from_slice(&self.body);
        self.max_ts = self.max_ts.max(timestamp);
        self.count += 1;
        true
    }

    fn open(&self) -> PyResult<()> {
        if self.built.is_some() {
            return Err(PyValueError::new_err("the batch is built already"));
        }
        Ok(())
    }
}

#[pymethods]
impl RecordBatch {
    #[new]
    fn new(batch_size: usize) -> Self {
        RecordBatch {
            buf: {
                let mut v = Vec::with_capacity(batch_size.min(1 << 24) + 1024);
                v.resize(HEADER, 0);
                v
            },
            limit: batch_size,
            count: 0,
            first_ts: None,
            max_ts: i64::MIN,
            producer: (-1, -1, 0),
            closed: false,
            built: None,
            body: Vec::with_capacity(1024),
        }
    }

    /// As aiokafka's `BatchBuilder.append`: None when the batch is full (then it is closed) or closed
    /// (built, too), else True. `timestamp` in ms since the epoch, None for now; headers are not supported.
    #[pyo3(signature = (*, timestamp, key, value, headers = None))]
    fn append(
        &mut self,
        timestamp: Option<i64>,
        key: Option<&[u8]>,
        value: &[u8],
        headers: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Option<bool>> {
        if let Some(h) = headers {
            if h.len()? > 0 {
                return Err(PyValueError::new_err("RecordBatch writes no headers"));
            }
        }
        if self.closed {
            return Ok(None); // (built batches are closed)
        }
        if self.push(timestamp.unwrap_or_else(now_ms), key, value) {
            Ok(Some(true))
        } else {
            self.closed = true;
            Ok(None)
        }
    }

    /// Records from `blob[pos..]`, whose values are separated by b"\n" (as `bytes.split(b"\n")` cuts
    /// them), all with `key` and this moment's timestamp, until `limit` values are in or the batch is
    /// full (then it is closed). Returns (values taken, where the next value starts).
    fn extend_joined(
        &mut self,
        py: Python<'_>,
        blob: &[u8],
        pos: usize,
        limit: usize,
        key: Option<&[u8]>,
    ) -> PyResult<(usize, usize)> {
        if self.closed || limit == 0 {
            return Ok((0, pos));
        }
        if pos > blob.len() {
            return Err(PyValueError::new_err("pos is past the end of the blob"));
        }
        let timestamp = now_ms();
        Ok(py.detach(|| {
            let mut at = pos;
            let mut taken = 0;
            while taken < limit && at <= blob.len() {
                let end = memchr::memchr(b'\n', &blob[at..]).map_or(blob.len(), |i| at + i);
                if !self.push(timestamp, key, &blob[at..end]) {
                    self.closed = true;
                    break;
                }
                taken += 1;
                at = end + 1;
            }
            (taken, at)
        }))
    }

    fn record_count(&self) -> i32 {
        self.count
    }

    fn closed(&self) -> bool {
        self.closed
    }

    fn close(&mut self) {
        self.closed = true;
    }

    /// Bytes of the batch as it stands (header included).
    fn size(&self, py: Python<'_>) -> usize {
        match &self.built {
            Some(built) => built.bind(py).as_bytes().len(),
            None => self.buf.len(),
        }
    }

    /// What an idempotent producer sets when it drains the batch (aiokafka's BatchBuilder method).
    fn _set_producer_state(&mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> PyResult<()> {
        self.open()?;
        self.producer = (producer_id, producer_epoch, base_sequence);
        Ok(())
    }

    /// The finished batch (closed; the same bytes object on every later call, as aiokafka's).
    fn _build<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.closed = true;
        if let Some(built) = &self.built {
            return built.bind(py).clone();
        }
        let first = self.first_ts.unwrap_or(-1); // an empty batch: -1, as aiokafka's compiled builder
        let max = if self.count > 0 { self.max_ts } else { -1 };
        let length = (self.buf.len() - 12) as i32;
        let (pid, epoch, seq) = self.producer;
        let b = &mut self.buf;
        b[0..8].copy_from_slice(&0i64.to_be_bytes());
        b[8..12].copy_from_slice(&length.to_be_bytes());
        b[12..16].copy_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        b[16] = 2; // magic
        b[21..23].copy_from_slice(&0i16.to_be_bytes()); // attributes
        b[23..27].copy_from_slice(&(self.count - 1).max(0).to_be_bytes()); // last offset delta
        b[27..35].copy_from_slice(&first.to_be_bytes());
        b[35..43].copy_from_slice(&max.to_be_bytes());
        b[43..51].copy_from_slice(&pid.to_be_bytes());
        b[51..53].copy_from_slice(&epoch.to_be_bytes());
        b[53..57].copy_from_slice(&seq.to_be_bytes());
        b[57..61].copy_from_slice(&self.count.to_be_bytes());
        let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        let bytes = PyBytes::new(py, b);
        self.built = Some(bytes.clone().unbind());
        self.buf = Vec::new();
        bytes
    }
}
