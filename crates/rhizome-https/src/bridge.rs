//! Byte channels between the async network side and the synchronous node: a [`ChannelReader`]
//! (a request or response body read by `Node::import` on a blocking thread) and a
//! [`ChannelWriter`] (a bundle written by `Node::export` on a blocking thread into a body).
//! Both are bounded: a few chunks in flight, so memory does not grow with the bundle.

use std::io::{Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame};
use tokio::sync::mpsc;

/// Chunks in flight in either direction.
pub const CHUNKS_IN_FLIGHT: usize = 8;

/// Size of the chunks a [`ChannelWriter`] sends.
pub const CHUNK: usize = 64 * 1024;

/// The reading end, for a blocking thread: chunks until the sender ends (EOF) or sends an
/// error (which `read` returns: a cut link, a body over its cap, a digest that does not match).
pub struct ChannelReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
    failed: Option<(std::io::ErrorKind, String)>,
}

impl ChannelReader {
    /// A reader and the sender that feeds it.
    pub fn new() -> (mpsc::Sender<std::io::Result<Bytes>>, ChannelReader) {
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        (
            tx,
            ChannelReader {
                rx,
                current: Bytes::new(),
                failed: None,
            },
        )
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if let Some((kind, msg)) = &self.failed {
                return Err(std::io::Error::new(*kind, msg.clone()));
            }
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => {
                    // Every later read fails the same way: the stream never looks complete.
                    self.failed = Some((e.kind(), e.to_string()));
                    return Err(e);
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// The writing end, for a blocking thread: buffers [`CHUNK`] bytes, then sends them, waiting
/// at most `idle` for room (a peer that stops reading is dropped) and failing after
/// `deadline`.
pub struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
    handle: tokio::runtime::Handle,
    idle: Duration,
    deadline: Instant,
    sent: u64,
}

impl ChannelWriter {
    /// A writer sending into `tx`, from a blocking thread of the runtime `handle`.
    pub fn new(
        tx: mpsc::Sender<std::io::Result<Bytes>>,
        handle: tokio::runtime::Handle,
        idle: Duration,
        deadline: Instant,
    ) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(CHUNK),
            handle,
            idle,
            deadline,
            sent: 0,
        }
    }

    /// Bytes handed to the channel so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if Instant::now() > self.deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the transfer took longer than allowed",
            ));
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        let n = chunk.len() as u64;
        let tx = self.tx.clone();
        let idle = self.idle;
        let sent = self
            .handle
            .block_on(async move { tokio::time::timeout(idle, tx.send(Ok(chunk))).await });
        match sent {
            Ok(Ok(())) => {
                self.sent += n;
                Ok(())
            }
            Ok(Err(_)) => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the peer went away",
            )),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the peer stopped reading",
            )),
        }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// An HTTP body fed by a channel of chunks (an error ends it abruptly, so the peer sees a cut
/// body, never a complete-looking one).
pub struct ChannelBody {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
}

impl ChannelBody {
    /// A body and the sender that feeds it.
    pub fn new() -> (mpsc::Sender<std::io::Result<Bytes>>, ChannelBody) {
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        (tx, ChannelBody { rx })
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}
