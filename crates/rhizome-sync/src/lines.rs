//! Reading lines of bounded length from a stream, hashing every byte that goes by.

use sha2::{Digest, Sha256};
use std::io::BufRead;

/// One line as read.
pub enum Line {
    /// A complete line (newline removed) or the last line without a newline.
    Text {
        /// The bytes.
        bytes: Vec<u8>,
        /// False when the stream ended before a newline.
        terminated: bool,
    },
    /// A line longer than the limit: its bytes were consumed (and hashed) but not kept.
    TooLong {
        /// How many bytes it had.
        len: u64,
    },
    /// End of stream.
    End,
}

/// A line reader that never holds more than `max` bytes of a line and feeds every byte it
/// consumes to a running SHA-256.
pub struct LineReader<R> {
    inner: R,
    max: usize,
    hasher: Sha256,
    /// The hasher as it was before the last line.
    before: Sha256,
    /// Bytes consumed so far.
    pub bytes: u64,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            max,
            hasher: Sha256::new(),
            before: Sha256::new(),
            bytes: 0,
        }
    }

    /// Changes the longest line kept from the next line on.
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// SHA-256 of everything before the line last returned.
    pub fn digest_before_last_line(&self) -> [u8; 32] {
        self.before.clone().finalize().into()
    }

    pub fn next_line(&mut self) -> std::io::Result<Line> {
        self.before = self.hasher.clone();
        let mut buf = Vec::new();
        let mut len: u64 = 0;
        let mut too_long = false;
        loop {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                if len == 0 {
                    return Ok(Line::End);
                }
                return Ok(if too_long {
                    Line::TooLong { len }
                } else {
                    Line::Text {
                        bytes: buf,
                        terminated: false,
                    }
                });
            }
            let (take, done) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let part = &chunk[..take];
            self.hasher.update(part);
            let body = if done { &part[..take - 1] } else { part };
            len += body.len() as u64;
            if !too_long {
                if buf.len() + body.len() > self.max {
                    too_long = true;
                    buf = Vec::new();
                } else {
                    buf.extend_from_slice(body);
                }
            }
            self.inner.consume(take);
            self.bytes += take as u64;
            if done {
                return Ok(if too_long {
                    Line::TooLong { len }
                } else {
                    Line::Text {
                        bytes: buf,
                        terminated: true,
                    }
                });
            }
        }
    }
}
