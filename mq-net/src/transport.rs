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
//! Inter-broker links: one TCP connection per *ordered* pair of brokers. Broker A
//! dials every other broker B ([`peer_link`]) and uses that connection only to send
//! A's messages to B; B reads it and feeds them as `Input::Message { from:
//! Peer::Node(A) }`, and sends its own messages to A on the connection B dialed.
//! Each side therefore owns exactly the connection it writes, so there is no race
//! over which of two simultaneous dials survives, and a link is re-dialed by the
//! one broker that needs it. The dialer opens with a hello frame naming its node id
//! and cluster size ([`PeerHello`]); the accepting side classifies a connection by
//! its first frame: a hello makes it an inbound peer link, anything else a client.
//! While a link is down, messages to that broker are dropped (the protocol
//! tolerates loss) and the dialer retries with exponential backoff; the node task
//! never waits for a link.
//!
//! **Cluster secret** (docs/security.md section 5). With `cluster_secret`
//! configured, the hello says so and the accepting broker answers it with a
//! challenge (32 random bytes); the dialer answers with
//! `mq_core::security::peer::peer_link_proof` and the acceptor checks it with
//! `verify_peer_link_proof`, then says `Accepted` or why it refused. Only then is
//! the connection a peer link: a broker that fails the check, or whose hello does
//! not match this broker's setting (one side with a secret, the other without), is
//! closed with a logged reason on both sides, and nothing it sent reaches the node.
//! Without a secret on either side the hello alone opens the link, as before.

use mq_core::security::peer::{peer_link_proof, verify_peer_link_proof};
use mq_core::security::KEY_BYTES;
use mq_core::wire::{decode_frame, encode_frame, Message};
use mq_core::{ClientId, NodeId, Peer};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep_until, timeout, Instant};

/// Bytes read from a socket at once.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// The close reason of a connection its client ended (logged at debug only).
const PEER_CLOSED: &str = "peer closed the connection";

/// The version byte of a hello frame. mq-core's codec speaks version 1 only, so a
/// hello can never be mistaken for a message, and a hello sent to something that
/// expects messages fails with a clear "unsupported frame version".
pub(crate) const HELLO_VERSION: u8 = 0x80;
/// Marks a hello payload (after the version byte), against stray connections.
const HELLO_MAGIC: [u8; 8] = *b"mq-peer2";
/// Largest hello frame accepted (length field value).
const MAX_HELLO_BYTES: usize = 64;
/// Largest frame of the cluster-secret exchange after the hello (a refusal carries
/// its reason).
const MAX_HANDSHAKE_BYTES: usize = 1024;
/// How long the cluster-secret exchange may take, on either side.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long dialing one peer may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// First and longest wait between dial attempts.
const DIAL_BACKOFF_MIN: Duration = Duration::from_millis(50);
const DIAL_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Messages written to a link with one write.
const LINK_WRITE_BATCH: usize = 64;

/// The first frame on an inter-broker link: who dials, and the cluster it believes
/// in (a broker configured with a different cluster size is refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PeerHello {
    magic: [u8; 8],
    /// The dialing broker.
    pub node: u32,
    /// Brokers in its `--peers`.
    pub cluster_size: u32,
    /// Whether the dialer has a cluster secret and will prove it.
    pub secret: bool,
}

/// The frames of the cluster-secret exchange after the hello (same framing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Handshake {
    /// Acceptor to dialer: prove the secret for this nonce.
    Challenge { nonce: [u8; KEY_BYTES] },
    /// Dialer to acceptor: `peer_link_proof` for the challenge.
    Proof { proof: [u8; KEY_BYTES] },
    /// Acceptor to dialer: the link is open, or why not (then it closes).
    Verdict(Result<(), String>),
}

/// `length | HELLO_VERSION | crc32c | postcard payload`, the shape of mq-core's
/// frames with a version the codec refuses.
fn encode_control<T: Serialize>(value: &T) -> Vec<u8> {
    // Small structs into a Vec cannot fail to serialize.
    let payload = postcard::to_allocvec(value).expect("postcard into a Vec is infallible");
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&((5 + payload.len()) as u32).to_be_bytes());
    out.push(HELLO_VERSION);
    out.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Decodes a control frame at the start of `buf`: `Ok(None)` when incomplete.
fn decode_control<T: DeserializeOwned>(buf: &[u8], max_bytes: usize) -> Result<Option<(T, usize)>, String> {
    if buf.len() < 9 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if !(5..=max_bytes).contains(&len) || buf[4] != HELLO_VERSION {
        return Err(format!("bad handshake frame (length {len}, version {})", buf[4]));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let crc = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]);
    let payload = &buf[9..4 + len];
    if crc32c::crc32c(payload) != crc {
        return Err("handshake frame checksum mismatch".into());
    }
    let value = postcard::from_bytes(payload).map_err(|e| format!("malformed handshake frame: {e}"))?;
    Ok(Some((value, 4 + len)))
}

/// Reads one control frame within `limit`, keeping extra bytes in `buf`.
async fn read_control<T: DeserializeOwned>(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    limit: Duration,
) -> Result<T, String> {
    let deadline = Instant::now() + limit;
    let mut chunk = [0u8; 512];
    loop {
        if let Some((value, used)) = decode_control(buf, MAX_HANDSHAKE_BYTES)? {
            buf.drain(..used);
            return Ok(value);
        }
        let n = tokio::select! {
            r = stream.read(&mut chunk) => r.map_err(|e| format!("read failed: {e}"))?,
            _ = sleep_until(deadline) => return Err(format!("the cluster-secret exchange did not complete within {limit:?}")),
        };
        if n == 0 {
            return Err("the other broker closed the connection during the cluster-secret exchange".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

impl PeerHello {
    pub(crate) fn new(node: NodeId, cluster_size: u32, secret: bool) -> Self {
        PeerHello { magic: HELLO_MAGIC, node: node.0, cluster_size, secret }
    }

    /// The frame: the shape of mq-core's frames (`length | version | crc32c |
    /// payload`) with [`HELLO_VERSION`].
    pub(crate) fn encode(&self) -> Vec<u8> {
        encode_control(self)
    }

    /// Decodes a hello at the start of `buf`: `Ok(None)` when incomplete, else the
    /// hello and the bytes it used.
    pub(crate) fn decode(buf: &[u8]) -> Result<Option<(PeerHello, usize)>, String> {
        if buf.len() < 9 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if !(5..=MAX_HELLO_BYTES).contains(&len) || buf[4] != HELLO_VERSION {
            return Err(format!("bad hello frame (length {len}, version {})", buf[4]));
        }
        if buf.len() < 4 + len {
            return Ok(None);
        }
        let crc = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]);
        let payload = &buf[9..4 + len];
        if crc32c::crc32c(payload) != crc {
            return Err("hello checksum mismatch".into());
        }
        let hello: PeerHello = postcard::from_bytes(payload).map_err(|e| format!("malformed hello: {e}"))?;
        if hello.magic != HELLO_MAGIC {
            return Err("hello with a wrong magic".into());
        }
        Ok(Some((hello, 4 + len)))
    }
}

/// Who this broker is, for checking hellos.
#[derive(Clone)]
pub(crate) struct LocalNode {
    pub id: NodeId,
    pub cluster_size: u32,
    /// The cluster secret, if configured.
    pub cluster_secret: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for LocalNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalNode")
            .field("id", &self.id)
            .field("cluster_size", &self.cluster_size)
            .field("cluster_secret", &self.cluster_secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

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
    local: LocalNode,
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
        let conn =
            Connection { peer, local: local.clone(), limits, events: events.clone(), shutdown: shutdown.clone() };
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
    local: LocalNode,
    limits: Limits,
    events: mpsc::Sender<NodeEvent>,
    shutdown: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, mut stream: TcpStream, _permit: OwnedSemaphorePermit) {
        // The first frame tells a dialing broker from a client.
        let mut buf = Vec::new();
        match self.classify(&mut stream, &mut buf).await {
            Ok(Some((node, secret))) => {
                if let Err(reason) = self.authenticate_peer(&mut stream, &mut buf, node, secret).await {
                    tracing::warn!(peer = %Peer::Node(node), %reason, "refused a link from broker {node}");
                    return;
                }
                let reason = self.serve_peer(stream, buf, node).await;
                tracing::info!(peer = %Peer::Node(node), %reason, "inbound link closed");
                return;
            }
            Ok(None) => {}
            Err(reason) => {
                tracing::info!(peer = %self.peer, %reason, "connection closed");
                return;
            }
        }
        let (tx, rx) = mpsc::channel(self.limits.outbound_queue);
        if self.events.send(NodeEvent::Connected { peer: self.peer, outbound: tx }).await.is_err() {
            return; // the node is stopping
        }
        let reason = self.serve(stream, rx, buf).await;
        if reason == PEER_CLOSED {
            tracing::debug!(peer = %self.peer, %reason, "connection closed");
        } else {
            tracing::info!(peer = %self.peer, %reason, "connection closed");
        }
        let _ = self.events.send(NodeEvent::Disconnected { peer: self.peer }).await;
    }

    /// Reads until the version byte of the first frame arrived: `Some((node,
    /// secret))` for a valid hello (consumed from `buf`; `secret`: the dialer will
    /// prove the cluster secret), `None` for a client (bytes stay in `buf`).
    async fn classify(&mut self, stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<(NodeId, bool)>, String> {
        let limits = self.limits;
        let mut deadline = Instant::now() + limits.idle_timeout;
        let mut chunk = [0u8; 512];
        // A client's frame shows itself by its length or version byte; a hello is
        // read whole.
        let is_client = |buf: &[u8]| {
            (buf.len() >= 4 && u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize > MAX_HELLO_BYTES)
                || (buf.len() >= 5 && buf[4] != HELLO_VERSION)
        };
        while !is_client(buf) && (buf.len() < 5 || PeerHello::decode(buf)?.is_none()) {
            let n = tokio::select! {
                r = stream.read(&mut chunk) => r.map_err(|e| format!("read failed: {e}"))?,
                _ = sleep_until(deadline) => {
                    return Err(match buf.is_empty() {
                        true => format!("idle for {:?}", limits.idle_timeout),
                        false => format!("read timed out: a frame did not complete within {:?}", limits.read_timeout),
                    });
                }
                _ = self.shutdown.changed() => return Err("broker stopping".into()),
            };
            if n == 0 {
                return Err(PEER_CLOSED.into());
            }
            if buf.is_empty() {
                deadline = Instant::now() + limits.read_timeout;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        if is_client(buf) {
            return Ok(None);
        }
        let Some((hello, used)) = PeerHello::decode(buf)? else { unreachable!("the loop reads a whole hello") };
        buf.drain(..used);
        let local = &self.local;
        if hello.node == 0 || hello.node > local.cluster_size || hello.node == local.id.0 {
            return Err(format!(
                "refused a link from broker {}: this broker is {} of a {}-broker cluster; check --peers",
                hello.node, local.id, local.cluster_size
            ));
        }
        if hello.cluster_size != local.cluster_size {
            return Err(format!(
                "refused a link from broker {}: it has {} brokers in --peers, this broker {}; every broker needs the same list",
                hello.node, hello.cluster_size, local.cluster_size
            ));
        }
        tracing::debug!(peer = %Peer::Node(NodeId(hello.node)), "inbound link up");
        Ok(Some((NodeId(hello.node), hello.secret)))
    }

    /// The cluster-secret check of an inbound link (see the module docs). `Err`
    /// names why the link is refused; the dialer was told the same.
    async fn authenticate_peer(
        &mut self,
        stream: &mut TcpStream,
        buf: &mut Vec<u8>,
        node: NodeId,
        dialer_has_secret: bool,
    ) -> Result<(), String> {
        let me = self.local.id;
        let secret = match (&self.local.cluster_secret, dialer_has_secret) {
            (None, false) => return Ok(()),
            (Some(secret), true) => secret.clone(),
            (None, true) => {
                let reason = format!(
                    "broker {node} has a cluster_secret and broker {me} has none; configure the same cluster_secret \
                     on every broker, or none"
                );
                return Err(refuse(stream, reason).await);
            }
            (Some(_), false) => {
                let reason = format!(
                    "broker {me} requires a cluster_secret and broker {node} has none; configure the same \
                     cluster_secret on every broker, or none"
                );
                return Err(refuse(stream, reason).await);
            }
        };
        let mut nonce = [0u8; KEY_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| format!("no OS randomness for the challenge: {e}"))?;
        write_control(stream, &Handshake::Challenge { nonce }).await?;
        let proof = match read_control::<Handshake>(stream, buf, HANDSHAKE_TIMEOUT).await? {
            Handshake::Proof { proof } => proof,
            other => return Err(refuse(stream, format!("expected a proof, got {other:?}")).await),
        };
        if !verify_peer_link_proof(&secret, node, me, &nonce, &proof) {
            let reason =
                format!("broker {node} failed the cluster-secret check: its cluster_secret differs from broker {me}'s");
            return Err(refuse(stream, reason).await);
        }
        write_control(stream, &Handshake::Verdict(Ok(()))).await?;
        tracing::debug!(peer = %Peer::Node(node), "cluster secret proved");
        Ok(())
    }

    /// An inbound peer link: only reads, feeding what `node` sends. Peers exchange
    /// heartbeats constantly, so no idle timeout applies.
    async fn serve_peer(&mut self, mut stream: TcpStream, mut buf: Vec<u8>, node: NodeId) -> String {
        let limits = self.limits;
        let peer = Peer::Node(node);
        let mut chunk = vec![0u8; READ_CHUNK_BYTES];
        let mut frame_started: Option<Instant> = None;
        loop {
            loop {
                match decode_frame(&buf, limits.max_frame_bytes) {
                    Ok(Some((msg, used))) => {
                        buf.drain(..used);
                        if self.events.send(NodeEvent::Message { peer, msg }).await.is_err() {
                            return "broker stopping".into();
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return format!("malformed frame: {e}"),
                }
            }
            frame_started = if buf.is_empty() { None } else { frame_started.or(Some(Instant::now())) };
            let read_deadline = frame_started.map(|t| t + limits.read_timeout);
            tokio::select! {
                // Peer links keep reading through a controlled shutdown (the controller's
                // answer and metadata arrive on them) and end when the node stops.
                _ = self.events.closed() => return "broker stopped".into(),
                r = stream.read(&mut chunk) => match r {
                    Ok(0) => return PEER_CLOSED.into(),
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) => return format!("read failed: {e}"),
                },
                _ = sleep_until(read_deadline.unwrap_or_else(Instant::now)), if read_deadline.is_some() => {
                    return format!("read timed out: a frame did not complete within {:?}", limits.read_timeout);
                }
            }
        }
    }

    /// Reads requests and writes replies until something ends the connection;
    /// returns why. `buf` holds bytes already read.
    async fn serve(&mut self, mut stream: TcpStream, mut rx: mpsc::Receiver<Outbound>, mut buf: Vec<u8>) -> String {
        let (mut rd, mut wr) = crate::rt::split(&mut stream);
        let limits = self.limits;
        let mut chunk = vec![0u8; READ_CHUNK_BYTES];
        let mut out = Vec::new();
        let mut reading = !*self.shutdown.borrow();
        let mut last_request = Instant::now();
        let mut frame_started: Option<Instant> = None;
        // Frames that arrived with the first bytes.
        loop {
            match decode_frame(&buf, limits.max_frame_bytes) {
                Ok(Some((msg, used))) => {
                    buf.drain(..used);
                    if self.events.send(NodeEvent::Message { peer: self.peer, msg }).await.is_err() {
                        return "broker stopping".into();
                    }
                }
                Ok(None) => break,
                Err(e) => return format!("malformed frame: {e}"),
            }
        }
        if !buf.is_empty() {
            frame_started = Some(Instant::now());
        }
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
                        match timeout(limits.write_timeout, crate::rt::write(&mut wr, &out)).await {
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

/// Writes one control frame within the handshake timeout.
async fn write_control<T: Serialize>(stream: &mut TcpStream, value: &T) -> Result<(), String> {
    match timeout(HANDSHAKE_TIMEOUT, crate::rt::write(stream, &encode_control(value))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write failed: {e}")),
        Err(_) => Err(format!("write timed out after {HANDSHAKE_TIMEOUT:?}")),
    }
}

/// Tells the dialer why its link is refused (best effort) and returns the reason.
async fn refuse(stream: &mut TcpStream, reason: String) -> String {
    let _ = write_control(stream, &Handshake::Verdict(Err(reason.clone()))).await;
    reason
}

/// The dialer's half of the cluster-secret exchange, after its hello.
async fn prove_secret(stream: &mut TcpStream, local: &LocalNode, to: NodeId, secret: &[u8]) -> Result<(), String> {
    let mut buf = Vec::new();
    let nonce = match read_control::<Handshake>(stream, &mut buf, HANDSHAKE_TIMEOUT).await? {
        Handshake::Challenge { nonce } => nonce,
        Handshake::Verdict(Err(reason)) => return Err(format!("broker {to} refused the link: {reason}")),
        other => return Err(format!("broker {to} answered the hello with {other:?}")),
    };
    let proof = peer_link_proof(secret, local.id, to, &nonce);
    write_control(stream, &Handshake::Proof { proof }).await?;
    match read_control::<Handshake>(stream, &mut buf, HANDSHAKE_TIMEOUT).await? {
        Handshake::Verdict(Ok(())) => Ok(()),
        Handshake::Verdict(Err(reason)) => Err(format!("broker {to} refused the link: {reason}")),
        other => Err(format!("broker {to} answered the proof with {other:?}")),
    }
}

/// The outbound link to broker `to` at `addr`: dials (with backoff), says hello
/// (and proves the cluster secret if there is one), then writes every message the
/// node task queues in `rx`. Messages queued while the link is down are dropped.
/// Ends when the node task drops the sender.
pub(crate) async fn peer_link(
    local: LocalNode,
    to: NodeId,
    addr: String,
    mut rx: mpsc::Receiver<Message>,
    limits: Limits,
) {
    let peer = Peer::Node(to);
    let hello = PeerHello::new(local.id, local.cluster_size, local.cluster_secret.is_some()).encode();
    let mut backoff = DIAL_BACKOFF_MIN;
    let mut down_logged = false;
    let mut ever_up = false;
    loop {
        let dial = async {
            let stream = timeout(DIAL_TIMEOUT, TcpStream::connect(&addr))
                .await
                .map_err(|_| format!("no answer within {DIAL_TIMEOUT:?}"))?
                .map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            let mut stream = stream;
            timeout(limits.write_timeout, crate::rt::write(&mut stream, &hello))
                .await
                .map_err(|_| "hello timed out".to_string())?
                .map_err(|e| e.to_string())?;
            if let Some(secret) = &local.cluster_secret {
                prove_secret(&mut stream, &local, to, secret).await?;
            }
            Ok::<_, String>(stream)
        };
        let Some(dialed) = drop_while(&mut rx, dial).await else { return };
        let reason = match dialed {
            Ok(stream) => {
                tracing::info!(%peer, %addr, "link up");
                backoff = DIAL_BACKOFF_MIN;
                down_logged = false;
                ever_up = true;
                match write_link(stream, &mut rx, limits).await {
                    Some(reason) => reason,
                    None => return, // the node task stopped
                }
            }
            Err(e) => e,
        };
        if down_logged {
            tracing::debug!(%peer, %addr, %reason, "link still down; messages to it are dropped");
        } else if reason.contains("refused the link") {
            // A configuration mismatch does not heal by itself: say so loudly once.
            tracing::warn!(%peer, %addr, %reason, "link refused; retrying, but check the cluster_secret settings");
            down_logged = true;
        } else if !ever_up {
            // At start the other brokers are often not listening yet.
            tracing::info!(%peer, %addr, %reason, "peer not reachable yet; retrying");
            down_logged = true;
        } else {
            tracing::warn!(%peer, %addr, %reason, "link down; messages to it are dropped until it reconnects");
            down_logged = true;
        }
        if drop_while(&mut rx, tokio::time::sleep(backoff)).await.is_none() {
            return;
        }
        backoff = (backoff * 2).min(DIAL_BACKOFF_MAX);
    }
}

/// Runs `fut` while dropping what arrives in `rx` (there is no link to send it on);
/// `None` if the node task stopped meanwhile.
async fn drop_while<F: std::future::Future>(rx: &mut mpsc::Receiver<Message>, fut: F) -> Option<F::Output> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return Some(out),
            m = rx.recv() => m?,
        };
    }
}

/// Writes queued messages to an established link; returns why it broke, or `None`
/// when the node task stopped.
async fn write_link(mut stream: TcpStream, rx: &mut mpsc::Receiver<Message>, limits: Limits) -> Option<String> {
    let (mut rd, mut wr) = crate::rt::split(&mut stream);
    let mut out = Vec::new();
    let mut sink = [0u8; 256];
    // The peer writes on this link only to refuse it (a broker that requires a
    // cluster secret this one lacks): keep those bytes to log its reason.
    let mut said = Vec::new();
    loop {
        tokio::select! {
            m = rx.recv() => {
                let msg = m?;
                out.clear();
                let mut next = Some(msg);
                let mut count = 0;
                while let Some(msg) = next.take() {
                    if let Err(e) = encode_frame(&msg, limits.max_frame_bytes, &mut out) {
                        // One message too large for a frame: a bug or a setting to fix;
                        // dropping it is what loss would do.
                        tracing::error!(error = %e, "cannot encode a message to a peer; dropped");
                    }
                    count += 1;
                    if count < LINK_WRITE_BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                match timeout(limits.write_timeout, crate::rt::write(&mut wr, &out)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Some(format!("write failed: {e}")),
                    Err(_) => return Some(format!("write timed out after {:?}", limits.write_timeout)),
                }
            }
            r = rd.read(&mut sink) => match r {
                Ok(0) => return Some(PEER_CLOSED.into()),
                Ok(n) if said.len() < MAX_HANDSHAKE_BYTES + 4 => {
                    said.extend_from_slice(&sink[..n]);
                    if let Ok(Some((Handshake::Verdict(Err(reason)), _))) =
                        decode_control::<Handshake>(&said, MAX_HANDSHAKE_BYTES)
                    {
                        return Some(format!("the other broker refused the link: {reason}"));
                    }
                }
                Ok(_) => {}
                Err(e) => return Some(format!("read failed: {e}")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips_and_is_never_a_message() {
        let frame = PeerHello::new(NodeId(2), 3, true).encode();
        let (hello, used) = PeerHello::decode(&frame).unwrap().unwrap();
        assert_eq!((hello.node, hello.cluster_size, hello.secret, used), (2, 3, true, frame.len()));
        assert!(PeerHello::decode(&frame[..frame.len() - 1]).unwrap().is_none());
        assert!(decode_frame(&frame, 1 << 20).is_err(), "the codec refuses the hello's version");
        let mut bad = frame.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(PeerHello::decode(&bad).is_err());
    }

    fn limits() -> Limits {
        Limits {
            max_connections: 16,
            max_frame_bytes: 1 << 20,
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            outbound_queue: 16,
        }
    }

    fn node(id: u32, secret: Option<&[u8]>) -> LocalNode {
        LocalNode { id: NodeId(id), cluster_size: 2, cluster_secret: secret.map(Arc::from) }
    }

    fn a_message() -> Message {
        use mq_core::wire::{Request, RequestBody};
        Message::Request(Request {
            correlation: mq_core::CorrelationId(7),
            body: RequestBody::Metadata { topics: vec![] },
        })
    }

    const SECRET: &[u8] = b"the cluster secret, 32 bytes....";

    /// Broker 2 accepts, broker 1 dials; returns what reached broker 2's node
    /// first (generous bound: nothing here measures speed).
    async fn first_event_at_acceptor(dialer: LocalNode, acceptor: LocalNode) -> Option<NodeEvent> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (events_tx, mut events) = mpsc::channel(16);
        let (_shutdown_tx, shutdown_rx) = watch::channel(false);
        let (alive, _alive_rx) = mpsc::channel(1);
        tokio::spawn(accept_loop(listener, acceptor, limits(), events_tx, shutdown_rx, alive));
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(peer_link(dialer, NodeId(2), addr, rx, limits()));
        // Queued messages are dropped while the link is down: keep offering one.
        let offer = tokio::spawn(async move {
            loop {
                if tx.send(a_message()).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let got = timeout(Duration::from_secs(3), events.recv()).await.ok().flatten();
        offer.abort();
        got
    }

    #[tokio::test]
    async fn brokers_with_the_same_cluster_secret_link_up() {
        let got = first_event_at_acceptor(node(1, Some(SECRET)), node(2, Some(SECRET))).await;
        assert!(matches!(got, Some(NodeEvent::Message { peer: Peer::Node(NodeId(1)), .. })), "{got:?}");
    }

    /// Runs the exchange of one connection: the acceptor's check and the dialer's
    /// proof, each with its result.
    async fn exchange(dialer: LocalNode, acceptor: LocalNode) -> (Result<(), String>, Result<(), String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dial = tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let hello = PeerHello::new(dialer.id, 2, dialer.cluster_secret.is_some()).encode();
            crate::rt::write(&mut stream, &hello).await.unwrap();
            match &dialer.cluster_secret {
                Some(secret) => prove_secret(&mut stream, &dialer, NodeId(2), secret).await,
                // Without a secret the dialer does not wait; the refusal comes as a verdict.
                None => {
                    let mut buf = Vec::new();
                    match read_control::<Handshake>(&mut stream, &mut buf, HANDSHAKE_TIMEOUT).await {
                        Ok(Handshake::Verdict(Err(reason))) => Err(reason),
                        other => Err(format!("unexpected {other:?}")),
                    }
                }
            }
        });
        let (mut stream, _) = listener.accept().await.unwrap();
        let (events, _rx) = mpsc::channel(1);
        let (_tx, shutdown) = watch::channel(false);
        let mut conn =
            Connection { peer: Peer::Client(ClientId(1)), local: acceptor, limits: limits(), events, shutdown };
        let mut buf = Vec::new();
        let (node, secret) = conn.classify(&mut stream, &mut buf).await.unwrap().expect("a hello");
        let accepted = conn.authenticate_peer(&mut stream, &mut buf, node, secret).await;
        drop(stream);
        (accepted, dial.await.unwrap())
    }

    #[tokio::test]
    async fn a_different_cluster_secret_is_refused_on_both_sides() {
        let (accepted, dialed) =
            exchange(node(1, Some(b"another secret of 32 bytes......")), node(2, Some(SECRET))).await;
        let reason = accepted.unwrap_err();
        assert!(reason.contains("failed the cluster-secret check"), "{reason}");
        assert!(dialed.unwrap_err().contains("refused the link"));
    }

    #[tokio::test]
    async fn a_secret_on_one_side_only_is_refused_clearly() {
        let (accepted, dialed) = exchange(node(1, Some(SECRET)), node(2, None)).await;
        assert!(accepted.unwrap_err().contains("broker 2 has none"));
        assert!(dialed.unwrap_err().contains("configure the same cluster_secret"));
        let (accepted, dialed) = exchange(node(1, None), node(2, Some(SECRET))).await;
        assert!(accepted.unwrap_err().contains("broker 1 has none"));
        assert!(dialed.unwrap_err().contains("requires a cluster_secret"));
    }

    #[tokio::test]
    async fn the_same_secret_passes_the_exchange() {
        let (accepted, dialed) = exchange(node(1, Some(SECRET)), node(2, Some(SECRET))).await;
        assert_eq!((accepted, dialed), (Ok(()), Ok(())));
    }

    #[tokio::test]
    async fn nothing_from_a_refused_broker_reaches_the_node() {
        // Broker 1 has no secret, so it starts sending right after its hello.
        let got = first_event_at_acceptor(node(1, None), node(2, Some(SECRET))).await;
        assert!(got.is_none(), "{got:?}");
    }
}
