//! The few places where tokio and madsim differ. Under `RUSTFLAGS="--cfg madsim"`
//! the crate's `tokio` is madsim-tokio (Cargo.toml): the same API with virtual time,
//! a simulated network and one deterministic executor, so the broker, the client
//! and the producer run unchanged in madsim's nodes (DESIGN.md section 12, layer 7).
//! What madsim lacks or forbids is bridged here and nowhere else:
//!
//! - system threads: madsim refuses to spawn them (they would break determinism), so
//!   the storage worker that owns the files is a thread in production (its fsyncs
//!   block) and a task under madsim; file calls there are ordinary `std::fs` calls
//!   that return at once, which madsim does not simulate;
//! - blocking sections (`spawn_blocking`): run inline under madsim;
//! - `TcpStream::split`: madsim's stream has none; tokio's generic `io::split`
//!   does the same job;
//! - `tokio::time::Instant`: madsim's is `std::time::Instant` itself (whose clock
//!   it virtualizes);
//! - writes: madsim's stream sends what was written only on `flush` (tokio's sends
//!   at once and its flush does nothing), so every write goes through [`write`].

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Read and write halves of a connection, both borrowing it.
#[cfg(not(madsim))]
pub(crate) fn split(stream: &mut TcpStream) -> (impl AsyncRead + Unpin + '_, impl AsyncWrite + Unpin + '_) {
    stream.split()
}

/// Read and write halves of a connection, both borrowing it.
#[cfg(madsim)]
pub(crate) fn split(stream: &mut TcpStream) -> (impl AsyncRead + Unpin + '_, impl AsyncWrite + Unpin + '_) {
    tokio::io::split(stream)
}

/// Writes `bytes` and flushes them onto the connection.
pub(crate) async fn write(w: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(bytes).await?;
    w.flush().await
}

/// Runs `f`, which may block on the file system, off the async workers.
pub(crate) async fn blocking<F, R>(f: F) -> Result<R, String>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    #[cfg(not(madsim))]
    {
        tokio::task::spawn_blocking(f).await.map_err(|e| e.to_string())
    }
    #[cfg(madsim)]
    {
        Ok(f())
    }
}

/// A monotonic instant as a tokio deadline.
pub(crate) fn tokio_instant(t: std::time::Instant) -> tokio::time::Instant {
    #[cfg(not(madsim))]
    {
        tokio::time::Instant::from_std(t)
    }
    #[cfg(madsim)]
    {
        t
    }
}

/// The storage worker: see the module docs.
#[cfg(not(madsim))]
pub(crate) struct Worker(std::thread::JoinHandle<()>);

/// The storage worker: see the module docs.
#[cfg(madsim)]
pub(crate) struct Worker(tokio::task::JoinHandle<()>);

impl Worker {
    /// Runs `next` on `state` until it returns false, in a thread (a task under
    /// madsim). `next` takes every item of `items` waiting at the time, in order, at
    /// most `max_batch` at once (never none). Once `items` is closed and drained,
    /// `finish` gets the state (not after `next` returned false).
    pub(crate) fn start<S: Send + 'static, T: Send + 'static>(
        name: &str,
        mut items: tokio::sync::mpsc::UnboundedReceiver<T>,
        max_batch: usize,
        state: S,
        next: impl FnMut(&mut S, &mut Vec<T>) -> bool + Send + 'static,
        finish: impl FnOnce(S) + Send + 'static,
    ) -> std::io::Result<Worker> {
        let max_batch = max_batch.max(1);
        let mut batches = Batches { state, batch: Vec::with_capacity(max_batch), max_batch, next };
        #[cfg(not(madsim))]
        {
            let run = move || {
                while let Some(first) = items.blocking_recv() {
                    if !batches.take(first, &mut items) {
                        return;
                    }
                }
                finish(batches.state);
            };
            std::thread::Builder::new().name(name.into()).spawn(run).map(Worker)
        }
        #[cfg(madsim)]
        {
            let _ = name;
            Ok(Worker(tokio::spawn(async move {
                while let Some(first) = items.recv().await {
                    if !batches.take(first, &mut items) {
                        return;
                    }
                }
                finish(batches.state);
            })))
        }
    }

    /// Waits until the worker ended; false if it panicked.
    pub(crate) async fn join(self) -> bool {
        #[cfg(not(madsim))]
        {
            let thread = self.0;
            matches!(blocking(move || thread.join()).await, Ok(Ok(())))
        }
        #[cfg(madsim)]
        {
            self.0.await.is_ok()
        }
    }
}

/// The worker's state and its batch of items.
struct Batches<S, T, F> {
    state: S,
    batch: Vec<T>,
    max_batch: usize,
    next: F,
}

impl<S, T, F: FnMut(&mut S, &mut Vec<T>) -> bool> Batches<S, T, F> {
    /// Hands `first` and whatever else waits in `items` (up to `max_batch`) to
    /// `next`; false when the worker must stop.
    fn take(&mut self, first: T, items: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> bool {
        self.batch.push(first);
        while self.batch.len() < self.max_batch {
            match items.try_recv() {
                Ok(item) => self.batch.push(item),
                Err(_) => break,
            }
        }
        let go_on = (self.next)(&mut self.state, &mut self.batch);
        self.batch.clear();
        go_on
    }
}
