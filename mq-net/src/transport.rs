//! TCP transport: an accept loop and one task per connection that turns bytes into
//! `mq_core::wire::Message`s with the core's frame codec and back.
//!
//! Limits (each closes the connection with a logged reason, never a panic):
//! - at most `max_connections` at once; more are closed on accept;
//! - a frame whose length prefix exceeds `max_frame_bytes` is refused before its
//!   payload is read, so a connection buffers at most one frame plus one read chunk;
//! - a bad version, checksum or payload closes the connection;
//! - a frame that started arriving must complete within `read_timeout`, a reply must
//!   be written within `write_timeout`, and a connection without any request for
//!   `idle_timeout` is closed;
//! - at most `outbound_queue` replies wait per connection: the node never blocks on a
//!   slow reader; it drops the connection instead.
//!
//! Connections carry `Peer::Client` today. Inter-broker links (issue 8, with
//! replication) reuse `run_connection` with `Peer::Node` after a handshake.

use mq_core::wire::{decode_frame, encode_frame, Message};
use mq_core::{ClientId, Peer};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep_until, timeout, Instant};

/// Bytes read from a socket at once.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// The close reason of a connection its client ended (logged at debug only).
const PEER_CLOSED: &str = "peer closed the connection";

/// What connection tasks tell the node task.
#[derive(Debug)]
pub(crate) enum NodeEvent {
    /// A connection opened; replies to `peer` go to `outbound`.
    Connected { peer: Peer, outbound: mpsc::Sender<Outbound> },
    /// A decoded message.
    Message { peer: Peer, msg: Message },
    /// The connection closed.
    Disconnected { peer: Peer },
}

/// What the node task tells a connection.
#[derive(Debug)]
pub(crate) enum Outbound {
    Message(Message),
    Close(String),
}

/// Per-connection limits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_connections: usize,
    pub max_frame_bytes: usize,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    pub outbound_queue: usize,
}

/// Accepts connections until `shutdown` flips; each gets a fresh `ClientId`.
/// `alive` is cloned into every connection task so the caller can wait for all of
/// them to finish.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    limits: Limits,
    events: mpsc::Sender<NodeEvent>,
    mut shutdown: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut next_client = 1u64;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            a = listener.accept() => a,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%addr, max = limits.max_connections, "connection refused: connection limit reached");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let peer = Peer::Client(ClientId(next_client));
        next_client += 1;
        tracing::debug!(%peer, %addr, "connection accepted");
        let conn = Connection { peer, limits, events: events.clone(), shutdown: shutdown.clone() };
        let alive = alive.clone();
        tokio::spawn(async move {
            conn.run(stream, permit).await;
            drop(alive);
        });
    }
    tracing::debug!("stopped accepting connections");
}

struct Connection {
    peer: Peer,
    limits: Limits,
    events: mpsc::Sender<NodeEvent>,
    shutdown: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream, _permit: OwnedSemaphorePermit) {
        let (tx, rx) = mpsc::channel(self.limits.outbound_queue);
        if self.events.send(NodeEvent::Connected { peer: self.peer, outbound: tx }).await.is_err() {
            return; // the node is stopping
        }
        let reason = self.serve(stream, rx).await;
        if reason == PEER_CLOSED {
            tracing::debug!(peer = %self.peer, %reason, "connection closed");
        } else {
            tracing::info!(peer = %self.peer, %reason, "connection closed");
        }
        let _ = self.events.send(NodeEvent::Disconnected { peer: self.peer }).await;
    }

    /// Reads requests and writes replies until something ends the connection;
    /// returns why.
    async fn serve(&mut self, mut stream: TcpStream, mut rx: mpsc::Receiver<Outbound>) -> String {
        let (mut rd, mut wr) = stream.split();
        let limits = self.limits;
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; READ_CHUNK_BYTES];
        let mut out = Vec::new();
        let mut reading = !*self.shutdown.borrow();
        let mut last_request = Instant::now();
        let mut frame_started: Option<Instant> = None;
        loop {
            let read_deadline = match frame_started {
                Some(t) => t + limits.read_timeout,
                None => last_request + limits.idle_timeout,
            };
            tokio::select! {
                biased;
                m = rx.recv() => match m {
                    Some(Outbound::Message(msg)) => {
                        out.clear();
                        if let Err(e) = encode_frame(&msg, limits.max_frame_bytes, &mut out) {
                            return format!("cannot encode a reply: {e}");
                        }
                        match timeout(limits.write_timeout, wr.write_all(&out)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => return format!("write failed: {e}"),
                            Err(_) => return format!("write timed out after {:?}", limits.write_timeout),
                        }
                    }
                    Some(Outbound::Close(reason)) => return reason,
                    None => return "closed by the broker".into(),
                },
                _ = self.shutdown.changed(), if reading => {
                    // Stop taking requests; replies still queued are written until
                    // the node lets go of this connection.
                    reading = false;
                }
                r = rd.read(&mut chunk), if reading => match r {
                    Ok(0) => return PEER_CLOSED.into(),
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        loop {
                            match decode_frame(&buf, limits.max_frame_bytes) {
                                Ok(Some((msg, used))) => {
                                    buf.drain(..used);
                                    last_request = Instant::now();
                                    let ev = NodeEvent::Message { peer: self.peer, msg };
                                    if self.events.send(ev).await.is_err() {
                                        return "broker stopping".into();
                                    }
                                }
                                Ok(None) => break,
                                Err(e) => return format!("malformed frame: {e}"),
                            }
                        }
                        // The read timeout runs from the first byte of the frame still
                        // incomplete, so a slow trickle cannot hold a connection open.
                        frame_started = match (buf.is_empty(), frame_started) {
                            (true, _) => None,
                            (false, Some(t)) if last_request < t => Some(t),
                            (false, _) => Some(Instant::now()),
                        };
                    }
                    Err(e) => return format!("read failed: {e}"),
                },
                _ = sleep_until(read_deadline), if reading => {
                    return match frame_started {
                        Some(_) => format!("read timed out: a frame did not complete within {:?}", limits.read_timeout),
                        None => format!("idle for {:?}", limits.idle_timeout),
                    };
                }
            }
        }
    }
}
