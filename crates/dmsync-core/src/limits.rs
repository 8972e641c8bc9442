//! Bounds on what one piece of client input may hold, shared by the server's readers and the
//! CLI, so that memory follows these bounds and never the input's longest line.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The longest `hardwareIdentifier` (a hardware hash as base64 text) accepted anywhere. Real
/// hashes are about 4 KB of base64; the bound leaves ample room for larger ones.
pub const MAX_HARDWARE_HASH_BASE64: usize = 64 * 1024;

/// The most bytes one record of an uploaded or fetched file (a CSV line, quoted fields and all,
/// or one element of a JSON list) may span: a hash at its bound plus the other columns.
pub const MAX_RECORD_BYTES: u64 = 256 * 1024;

/// Whether a hardware hash's base64 text is within [`MAX_HARDWARE_HASH_BASE64`].
pub fn hardware_hash_within_bound(base64_text: &str) -> bool {
    base64_text.trim().len() <= MAX_HARDWARE_HASH_BASE64
}

/// Counts the bytes read since the last record boundary the parser reported, and fails the read
/// once they reach the limit, so a record without an end is refused while it is being read, not
/// after it is in memory. The parser calls [`RecordLimit::record_ended`] after each record;
/// bytes a parser's buffer read ahead are counted towards the next record, which makes the
/// bound approximate by at most one buffer.
#[derive(Debug, Clone)]
pub struct RecordLimit {
    since_boundary: Arc<AtomicU64>,
    limit: u64,
}

impl RecordLimit {
    pub fn new(limit: u64) -> RecordLimit {
        RecordLimit { since_boundary: Arc::new(AtomicU64::new(0)), limit }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Wraps a reader whose records this limit bounds.
    pub fn wrap<R: Read>(&self, inner: R) -> LimitedRecords<R> {
        LimitedRecords { inner, limit: self.clone() }
    }

    /// Says that a record ended: the next one starts counting from zero.
    pub fn record_ended(&self) {
        self.since_boundary.store(0, Ordering::Relaxed);
    }

    /// Whether a read failed because the current record reached the limit.
    pub fn exceeded(&self) -> bool {
        self.since_boundary.load(Ordering::Relaxed) >= self.limit
    }
}

/// A reader bounded per record by a [`RecordLimit`].
#[derive(Debug)]
pub struct LimitedRecords<R> {
    inner: R,
    limit: RecordLimit,
}

impl<R: Read> Read for LimitedRecords<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let since = self.limit.since_boundary.load(Ordering::Relaxed);
        let left = self.limit.limit.saturating_sub(since);
        if left == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a record is longer than {} bytes", self.limit.limit),
            ));
        }
        let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buf[..take])?;
        self.limit.since_boundary.fetch_add(read as u64, Ordering::Relaxed);
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_without_an_end_fails_the_read_at_the_limit() {
        let limit = RecordLimit::new(10);
        let mut reader = limit.wrap(io::repeat(b'x'));
        let mut buf = [0u8; 64];
        assert_eq!(reader.read(&mut buf).unwrap(), 10);
        assert!(limit.exceeded());
        assert_eq!(reader.read(&mut buf).unwrap_err().kind(), io::ErrorKind::InvalidData);
        limit.record_ended();
        assert!(!limit.exceeded());
        assert_eq!(reader.read(&mut buf).unwrap(), 10);
    }
}
