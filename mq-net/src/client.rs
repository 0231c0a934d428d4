//! The async client library: [`Client`] speaks mq's frame protocol to the brokers of
//! a cluster over TCP, one connection per broker with many requests in flight
//! (matched by correlation id).
//!
//! ```no_run
//! # async fn demo() -> Result<(), mq_net::ClientError> {
//! use mq_net::{Acks, Client, NewTopic, Record};
//! let client = Client::builder().bootstrap("1=127.0.0.1:9092,2=127.0.0.1:9093,3=127.0.0.1:9094").connect().await?;
//! client.create_topic(NewTopic::new("orders", 3).replication_factor(3)).await?;
//! let d = client.produce("orders", 0, Acks::All, vec![Record::from_value("hello")]).await?;
//! println!("stored at {}/{}", d.partition, d.offset);
//! # Ok(()) }
//! ```
//!
//! Routing (docs/operations.md section 6): the client fetches
//! `Metadata` from every broker it knows and keeps, per partition, the view with the
//! highest leader epoch. Produce, fetch and list-offsets go to the partition leader;
//! topic administration and metadata go to any broker. A request that fails with
//! `NotLeader`, `NotReady`, `LeadershipLost`, `Timeout` (or another retriable code)
//! or loses its connection is retried after a metadata refresh, with exponential
//! backoff, until the request timeout runs out.
//!
//! Addresses: the `Metadata` reply names brokers by id only, so the client learns
//! where broker N listens from the bootstrap list, written like `--peers`:
//! `1=host:port,2=host:port`. Plain `host:port` entries serve requests that any
//! broker answers; a single plain entry is mapped to the one broker of a
//! single-broker cluster. List every broker as `id=host:port` for a cluster.
//!
//! Authentication (docs/security.md): with [`ClientBuilder::credentials`], every
//! connection runs mq-core's client exchange ([`mq_core::client::auth::ClientAuth`])
//! before its first request, so the secret never leaves the process. Refused
//! credentials fail the call at once with `Unauthenticated`, naming the app key
//! and the broker; they are not retried.
//!
//! Delivery is at least once: a produce retried after an indefinite outcome
//! (`LeadershipLost`, a timeout, a lost connection) may be stored twice. The
//! [`crate::Producer`], which runs mq-core's producer machine, deduplicates its
//! retries (idempotent producer) and batches; prefer it for sending.

use mq_core::client::auth::{AuthEvent, ClientAuth, Readiness};
use mq_core::client::Credentials;
use mq_core::security::acl::{Grant, Operation, Resource};
use mq_core::security::StoredCredential;
use mq_core::wire::{
    decode_frame, encode_frame, Acks, ErrorCode, Message, OffsetSpec, Record, RecordBatch, Request, RequestBody,
    ResponseBody, TopicConfig, TopicInfo, WireError, DEFAULT_MAX_FRAME_BYTES,
};
use mq_core::{CorrelationId, NodeId, Offset, PartitionId};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Requests waiting for a connection task.
const CALL_QUEUE: usize = 1024;
/// First and longest pause between retries.
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(50);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What a client call can fail with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No bootstrap broker accepted a connection and answered.
    #[error("no mq broker reachable at {bootstrap}: {reason}")]
    Unreachable {
        /// The addresses tried.
        bootstrap: String,
        /// What each attempt ran into.
        reason: String,
    },
    /// The broker refused the request: a wire error code and its message.
    #[error("{code}: {message}")]
    Broker {
        /// The stable code.
        code: ErrorCode,
        /// What to do about it.
        message: String,
    },
    /// The connection broke; requests in flight have an unknown outcome.
    #[error("connection lost: {0}; the request may still take effect")]
    Disconnected(String),
    /// No reply within the request timeout; the request may still take effect.
    #[error("no reply within {0:?}; the request may still take effect")]
    Timeout(Duration),
    /// The broker sent something this client does not expect.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The call's arguments are invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A broker the request must go to has no known address.
    #[error(
        "broker {0} leads the partition, but its address is unknown: list every broker as ID=HOST:PORT \
         in the bootstrap list (the brokers' --peers list)"
    )]
    UnknownBrokerAddress(u32),
    /// A send's outcome is unknown: a reply was lost or late, the leader changed
    /// before the batch committed, or it was sent with `acks=0`. The records may
    /// be stored.
    #[error("outcome unknown (the records may be stored): {reason}")]
    OutcomeUnknown {
        /// Why.
        reason: String,
    },
    /// The producer was closed (or its task stopped) before it took the send.
    #[error("the producer is closed")]
    ProducerClosed,
    /// The consumer was closed (or its task stopped).
    #[error("the consumer is closed")]
    ConsumerClosed,
    /// The consumer refused an ack, nack or reject (nothing was queued).
    #[error("ack refused: {0}")]
    AckRefused(String),
    /// Retries ran out before the request succeeded. When `indefinite`, an
    /// attempt's outcome was unknown (`LeadershipLost`, a timeout, a lost
    /// connection): it may have taken effect.
    #[error(
        "gave up after {attempts} attempt(s) in {elapsed:?}: {last}{}",
        if *indefinite { " (an earlier attempt's outcome is unknown: it may have taken effect)" } else { "" }
    )]
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// The last attempt's error.
        last: Box<ClientError>,
        /// Whether any attempt may have taken effect.
        indefinite: bool,
    },
}

impl ClientError {
    /// The wire error code, for errors the broker returned (also the last one
    /// before retries ran out).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            ClientError::RetriesExhausted { last, .. } => last.code(),
            _ => None,
        }
    }

    /// True when the request may have taken effect although it failed: report
    /// such an outcome as unknown, never as a failure.
    pub fn is_indefinite(&self) -> bool {
        match self {
            ClientError::Broker { code, .. } => code.is_indefinite(),
            ClientError::Disconnected(_) | ClientError::Timeout(_) | ClientError::OutcomeUnknown { .. } => true,
            ClientError::RetriesExhausted { indefinite, last, .. } => *indefinite || last.is_indefinite(),
            _ => false,
        }
    }

    /// True when the same request may succeed later, at the same or another
    /// broker.
    fn is_transient(&self) -> bool {
        match self {
            ClientError::Broker { code, .. } => code.is_retriable(),
            ClientError::Unreachable { .. } | ClientError::Disconnected(_) | ClientError::Timeout(_) => true,
            _ => false,
        }
    }
}

impl From<WireError> for ClientError {
    fn from(e: WireError) -> Self {
        ClientError::Broker { code: e.code, message: e.message }
    }
}

/// Where a batch appended by [`Client::produce`] went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The partition.
    pub partition: PartitionId,
    /// The offset of the batch's first record; record `i` is at `offset + i`.
    pub offset: Offset,
    /// The broker's append time in Unix milliseconds.
    pub append_time_ms: u64,
}

/// Committed records read from a partition.
#[derive(Clone, Debug, PartialEq)]
pub struct Fetched {
    /// The partition's high watermark (the next committed offset).
    pub high_watermark: Offset,
    /// The partition's first offset.
    pub log_start: Offset,
    /// Batches from the requested offset on.
    pub batches: Vec<RecordBatch>,
}

impl Fetched {
    /// Records at or after `from`, with their offsets.
    pub fn records_from(&self, from: Offset) -> impl Iterator<Item = (Offset, &Record)> {
        self.batches.iter().flat_map(|b| b.iter_with_offsets()).filter(move |(o, _)| *o >= from)
    }
}

/// A topic to create, built like `NewTopic::new("orders", 3).replication_factor(1)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTopic(TopicConfig);

impl NewTopic {
    /// A topic with `partitions` partitions, one replica, no retention limit.
    pub fn new(name: impl Into<String>, partitions: u32) -> Self {
        NewTopic(TopicConfig::new(name, partitions))
    }
    /// Copies of each partition.
    pub fn replication_factor(mut self, r: u16) -> Self {
        self.0.replication_factor = r;
        self
    }
    /// In-sync replicas needed for `acks=all`.
    pub fn min_insync_replicas(mut self, m: u16) -> Self {
        self.0.min_insync_replicas = m;
        self
    }
    /// Delete records older than this.
    pub fn retention_time(mut self, d: Duration) -> Self {
        self.0.retention_time = Some(d.into());
        self
    }
    /// Delete the oldest records while a partition is larger than this.
    pub fn retention_bytes(mut self, n: u64) -> Self {
        self.0.retention_bytes = Some(n);
        self
    }
    /// The wire form.
    pub fn into_config(self) -> TopicConfig {
        self.0
    }
}

/// The cluster as the client sees it: every broker's `Metadata` reply merged,
/// per partition the view with the highest leader epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterMetadata {
    /// Live (registered, unfenced) brokers.
    pub brokers: Vec<NodeId>,
    /// The controller leader, if any broker knows it.
    pub controller: Option<NodeId>,
    /// Topics with per-partition leader, epoch, replicas, ISR; log start and high
    /// watermark as the leader reported them (zero if the leader did not answer).
    pub topics: Vec<TopicInfo>,
}

impl ClusterMetadata {
    /// One topic.
    pub fn topic(&self, name: &str) -> Option<&TopicInfo> {
        self.topics.iter().find(|t| t.config.name == name)
    }

    fn merge(&mut self, brokers: Vec<NodeId>, controller: Option<NodeId>, topics: Vec<TopicInfo>) {
        for b in brokers {
            if !self.brokers.contains(&b) {
                self.brokers.push(b);
            }
        }
        self.brokers.sort();
        self.controller = self.controller.or(controller);
        for t in topics {
            let Some(mine) = self.topics.iter_mut().find(|m| m.config.name == t.config.name) else {
                self.topics.push(t);
                continue;
            };
            for p in t.partitions {
                match mine.partitions.iter_mut().find(|m| m.partition == p.partition) {
                    None => mine.partitions.push(p),
                    Some(m) => {
                        // Only the leader reports the high watermark; followers say 0.
                        if (p.leader_epoch, p.high_watermark) > (m.leader_epoch, m.high_watermark) {
                            *m = p;
                        }
                    }
                }
            }
        }
        self.topics.sort_by(|a, b| a.config.name.cmp(&b.config.name));
    }
}

/// One broker's own answer to `Metadata` (see [`Client::broker_views`]).
#[derive(Clone, Debug)]
pub struct BrokerView {
    /// The address asked.
    pub addr: String,
    /// The broker id, if the bootstrap list names it.
    pub id: Option<NodeId>,
    /// Its metadata, or why it did not answer.
    pub metadata: Result<ClusterMetadata, ClientError>,
}

/// Builds a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    bootstrap: String,
    pub(crate) connect_timeout: Duration,
    request_timeout: Duration,
    pub(crate) max_frame_bytes: usize,
    pub(crate) credentials: Option<Credentials>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            bootstrap: "127.0.0.1:9092".into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            credentials: None,
        }
    }
}

impl ClientBuilder {
    /// Brokers to contact: `id=host:port[,..]` (as in the brokers' `--peers`), or
    /// `host:port[,..]` for a single broker.
    pub fn bootstrap(mut self, bootstrap: impl Into<String>) -> Self {
        self.bootstrap = bootstrap.into();
        self
    }
    /// How long connecting (and the first round trip) may take per broker.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
    /// How long one call may take, retries included.
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }
    /// Largest frame sent or accepted.
    pub fn max_frame_bytes(mut self, n: usize) -> Self {
        self.max_frame_bytes = n;
        self
    }
    /// Authenticates every connection as `app_key` with `secret` (brokers with
    /// `[auth]` refuse anonymous requests). The secret stays in this process.
    pub fn credentials(mut self, app_key: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        self.credentials = Some(Credentials::new(app_key, secret));
        self
    }

    /// Parses the bootstrap list and fetches metadata from every broker in it; fails
    /// fast with every address's error if none answers.
    pub async fn connect(self) -> Result<Client, ClientError> {
        let entries = parse_bootstrap(&self.bootstrap)?;
        let mut addrs = BTreeMap::new();
        for (id, addr) in &entries {
            if let Some(id) = id {
                addrs.insert(*id, addr.clone());
            }
        }
        let client = Client {
            inner: Arc::new(Inner {
                bootstrap: entries,
                bootstrap_text: self.bootstrap.clone(),
                connect_timeout: self.connect_timeout,
                request_timeout: self.request_timeout,
                max_frame_bytes: self.max_frame_bytes,
                credentials: self.credentials.clone(),
                state: Mutex::new(State { addrs, ..State::default() }),
            }),
        };
        client.refresh_metadata().await?;
        Ok(client)
    }
}

/// `1=host:port,2=host:port` or `host:port,host:port`.
fn parse_bootstrap(text: &str) -> Result<Vec<(Option<NodeId>, String)>, ClientError> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let entry = match item.split_once('=') {
            Some((id, addr)) => {
                let id: u32 = id.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ClientError::InvalidArgument(format!("bootstrap entry {item:?}: the id must be a broker id"))
                })?;
                (Some(NodeId(id)), addr.trim().to_owned())
            }
            None => (None, item.to_owned()),
        };
        out.push(entry);
    }
    if out.is_empty() {
        return Err(ClientError::Unreachable { bootstrap: text.into(), reason: "no address given".into() });
    }
    Ok(out)
}

struct Call {
    body: RequestBody,
    /// `None` for one-way sends (acks=0): no reply will come.
    reply: Option<oneshot::Sender<Result<ResponseBody, ClientError>>>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call").field("body", &self.body).finish()
    }
}

/// A client of one cluster (see the module docs). Cheap to clone; clones share
/// connections and metadata.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bootstrap: Vec<(Option<NodeId>, String)>,
    bootstrap_text: String,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_frame_bytes: usize,
    credentials: Option<Credentials>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// One connection per broker address.
    conns: HashMap<String, mpsc::Sender<Call>>,
    /// Where each broker listens.
    addrs: BTreeMap<NodeId, String>,
    meta: ClusterMetadata,
    /// The address that last answered, tried first for unrouted requests.
    preferred: Option<String>,
}

impl Client {
    /// A builder with the defaults (bootstrap 127.0.0.1:9092, 5 s connect timeout,
    /// 30 s request timeout).
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Connects to `bootstrap` within `timeout` per address.
    pub async fn connect(bootstrap: &str, timeout: Duration) -> Result<Client, ClientError> {
        Client::builder().bootstrap(bootstrap).connect_timeout(timeout).connect().await
    }

    /// The broker address that answered last.
    pub fn addr(&self) -> String {
        let st = self.state();
        st.preferred.clone().unwrap_or_else(|| self.inner.bootstrap[0].1.clone())
    }

    /// A builder with this client's bootstrap list and limits.
    pub(crate) fn settings(&self) -> ClientBuilder {
        ClientBuilder {
            bootstrap: self.inner.bootstrap_text.clone(),
            connect_timeout: self.inner.connect_timeout,
            request_timeout: self.inner.request_timeout,
            max_frame_bytes: self.inner.max_frame_bytes,
            credentials: self.inner.credentials.clone(),
        }
    }

    /// The app key this client authenticates as, if any.
    pub fn app_key(&self) -> Option<&str> {
        self.inner.credentials.as_ref().map(|c| c.app_key.as_str())
    }

    /// Known broker addresses by id.
    pub fn broker_addresses(&self) -> BTreeMap<NodeId, String> {
        self.state().addrs.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain data behind; keep going.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection to `addr`, opened if needed.
    async fn conn(&self, addr: &str) -> Result<mpsc::Sender<Call>, ClientError> {
        if let Some(tx) = self.state().conns.get(addr).filter(|tx| !tx.is_closed()) {
            return Ok(tx.clone());
        }
        let limit = self.inner.connect_timeout;
        let stream = match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(ClientError::Unreachable { bootstrap: addr.into(), reason: e.to_string() }),
            Err(_) => {
                return Err(ClientError::Unreachable {
                    bootstrap: addr.into(),
                    reason: format!("no answer within {limit:?}"),
                })
            }
        };
        let _ = stream.set_nodelay(true);
        let mut stream = stream;
        let mut first_correlation = 1;
        if let Some(creds) = &self.inner.credentials {
            let login = login(&mut stream, creds, addr, self.inner.max_frame_bytes);
            first_correlation = match tokio::time::timeout(limit, login).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(ClientError::Unreachable {
                        bootstrap: addr.into(),
                        reason: format!("authentication did not complete within {limit:?}"),
                    })
                }
            };
        }
        let (tx, rx) = mpsc::channel(CALL_QUEUE);
        tokio::spawn(connection_task(stream, rx, self.inner.max_frame_bytes, first_correlation));
        self.state().conns.insert(addr.to_owned(), tx.clone());
        Ok(tx)
    }

    /// One request to one address, waiting at most `limit` for the reply.
    async fn call(&self, addr: &str, body: RequestBody, limit: Duration) -> Result<ResponseBody, ClientError> {
        let tx = self.conn(addr).await?;
        let (reply, rx) = oneshot::channel();
        tx.send(Call { body, reply: Some(reply) })
            .await
            .map_err(|_| ClientError::Disconnected(format!("connection to {addr} closed")))?;
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ClientError::Disconnected(format!("connection to {addr} closed before the reply"))),
            Err(_) => Err(ClientError::Timeout(limit)),
        }
    }

    /// Every address worth asking: the bootstrap list and learned addresses.
    fn known_addrs(&self) -> Vec<(Option<NodeId>, String)> {
        let mut out = self.inner.bootstrap.clone();
        for (id, addr) in &self.state().addrs {
            if !out.iter().any(|(_, a)| a == addr) {
                out.push((Some(*id), addr.clone()));
            }
        }
        out
    }

    /// Asks every known broker for its metadata, concurrently.
    pub async fn broker_views(&self) -> Vec<BrokerView> {
        let mut asks = Vec::new();
        for (id, addr) in self.known_addrs() {
            let c = self.clone();
            asks.push(tokio::spawn(async move {
                let body = RequestBody::Metadata { topics: Vec::new() };
                let metadata = match c.call(&addr, body, c.inner.connect_timeout).await {
                    Ok(ResponseBody::Metadata { brokers, controller, topics }) => {
                        Ok(ClusterMetadata { brokers, controller, topics })
                    }
                    Ok(other) => Err(unexpected(&other)),
                    Err(e) => Err(e),
                };
                BrokerView { addr, id, metadata }
            }));
        }
        let mut views = Vec::new();
        for ask in asks {
            // The tasks only await I/O; a panic would be a bug in this module.
            views.push(ask.await.expect("metadata task panicked"));
        }
        views
    }

    /// Refreshes the merged metadata from every known broker; fails only if none
    /// answered.
    pub async fn refresh_metadata(&self) -> Result<ClusterMetadata, ClientError> {
        let views = self.broker_views().await;
        let mut merged = ClusterMetadata::default();
        let mut reasons = Vec::new();
        let mut answered = None;
        for v in &views {
            match &v.metadata {
                Ok(m) => {
                    merged.merge(m.brokers.clone(), m.controller, m.topics.clone());
                    answered.get_or_insert(v.addr.clone());
                }
                Err(e) => reasons.push(format!("{}: {e}", v.addr)),
            }
        }
        let Some(first) = answered else {
            // A refusal (credentials, say) is the error to show, not "unreachable".
            if let Some(e) = views.iter().find_map(|v| v.metadata.as_ref().err().filter(|e| e.code().is_some())) {
                return Err(e.clone());
            }
            return Err(ClientError::Unreachable {
                bootstrap: self.inner.bootstrap_text.clone(),
                reason: reasons.join("; "),
            });
        };
        let mut st = self.state();
        // A single plain address of a one-broker cluster is that broker.
        if let ([(None, addr)], [only]) = (self.inner.bootstrap.as_slice(), merged.brokers.as_slice()) {
            st.addrs.entry(*only).or_insert_with(|| addr.clone());
        }
        if st.preferred.as_ref().is_none_or(|p| views.iter().any(|v| &v.addr == p && v.metadata.is_err())) {
            st.preferred = Some(first);
        }
        st.meta = merged.clone();
        Ok(merged)
    }

    /// The metadata as last fetched.
    pub fn cached_metadata(&self) -> ClusterMetadata {
        self.state().meta.clone()
    }

    /// Retries `attempt` while it fails transiently, refreshing metadata and backing
    /// off, until the request timeout runs out.
    async fn with_retries<F, Fut>(&self, mut attempt: F) -> Result<ResponseBody, ClientError>
    where
        F: FnMut(Duration, u32) -> Fut,
        Fut: std::future::Future<Output = Result<ResponseBody, ClientError>>,
    {
        let start = Instant::now();
        let deadline = start + self.inner.request_timeout;
        let mut backoff = RETRY_BACKOFF_MIN;
        let mut indefinite = false;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let remaining = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            let err = match attempt(remaining, attempts).await {
                Ok(r) => return Ok(r),
                Err(e) => e,
            };
            if !err.is_transient() {
                return Err(match indefinite {
                    false => err,
                    true => ClientError::RetriesExhausted {
                        attempts,
                        elapsed: start.elapsed(),
                        last: Box::new(err),
                        indefinite,
                    },
                });
            }
            indefinite |= err.is_indefinite();
            if Instant::now() + backoff >= deadline {
                return Err(ClientError::RetriesExhausted {
                    attempts,
                    elapsed: start.elapsed(),
                    last: Box::new(err),
                    indefinite,
                });
            }
            tracing::debug!(error = %err, attempts, ?backoff, "retrying after a metadata refresh");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            // Failures are often a moved leader or a dead broker: look again.
            let _ = self.refresh_metadata().await;
        }
    }

    /// Sends a request any broker answers (topic administration, metadata),
    /// trying the brokers in turn, with retries.
    pub async fn request(&self, body: RequestBody) -> Result<ResponseBody, ClientError> {
        self.with_retries(|limit, attempt| {
            let body = body.clone();
            async move {
                let addrs = self.known_addrs();
                let preferred = self.addr();
                let first = addrs.iter().position(|(_, a)| *a == preferred).unwrap_or(0);
                let addr = addrs[(first + attempt as usize - 1) % addrs.len()].1.clone();
                self.call(&addr, body, limit).await
            }
        })
        .await
    }

    /// The leader's address for a partition, from the cached metadata.
    fn leader_addr(&self, topic: &str, partition: u32) -> Result<String, ClientError> {
        let st = self.state();
        let Some(t) = st.meta.topic(topic) else {
            return Err(ClientError::Broker {
                code: ErrorCode::UnknownTopic,
                message: format!("unknown topic {topic}; create it first (mq topic create {topic})"),
            });
        };
        let Some(p) = t.partitions.iter().find(|p| p.partition == PartitionId(partition)) else {
            return Err(ClientError::Broker {
                code: ErrorCode::UnknownPartition,
                message: format!(
                    "topic {topic} has partitions 0..{}; partition {partition} does not exist",
                    t.config.partitions
                ),
            });
        };
        let Some(leader) = p.leader else {
            return Err(ClientError::Broker {
                code: ErrorCode::NotLeader,
                message: format!("{topic}/{partition} has no leader right now (epoch {}); retry", p.leader_epoch),
            });
        };
        st.addrs.get(&leader).cloned().ok_or(ClientError::UnknownBrokerAddress(leader.0))
    }

    /// Sends a request to the leader of `topic`/`partition`, following leadership
    /// changes (see the module docs).
    pub async fn request_leader(
        &self,
        topic: &str,
        partition: u32,
        body: RequestBody,
    ) -> Result<ResponseBody, ClientError> {
        if self.state().meta.topic(topic).is_none() {
            self.refresh_metadata().await?;
        }
        self.with_retries(|limit, _| {
            let body = body.clone();
            async move {
                let addr = self.leader_addr(topic, partition)?;
                match self.call(&addr, body, limit).await {
                    // A leader that has not applied the topic's creation yet.
                    Err(e) if e.code() == Some(ErrorCode::UnknownTopic) => Err(ClientError::Broker {
                        code: ErrorCode::NotReady,
                        message: format!("the leader at {addr} does not know topic {topic} yet: {e}"),
                    }),
                    other => other,
                }
            }
        })
        .await
    }

    /// Creates a topic; returns once its creation committed and every partition
    /// has a leader (or the request timeout ran out waiting for one).
    pub async fn create_topic(&self, topic: NewTopic) -> Result<(), ClientError> {
        let name = topic.0.name.clone();
        match self.request(RequestBody::CreateTopic(topic.into_config())).await {
            Ok(ResponseBody::TopicCreated) => {}
            // An earlier attempt with an unknown outcome created it.
            Err(ClientError::RetriesExhausted { last, indefinite: true, .. })
                if last.code() == Some(ErrorCode::TopicExists) => {}
            Ok(other) => return Err(unexpected(&other)),
            Err(e) => return Err(e),
        }
        let deadline = Instant::now() + self.inner.request_timeout;
        let mut backoff = RETRY_BACKOFF_MIN;
        while Instant::now() < deadline {
            let meta = self.refresh_metadata().await?;
            if meta.topic(&name).is_some_and(|t| t.partitions.iter().all(|p| p.leader.is_some())) {
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        }
        Ok(())
    }

    /// Deletes a topic and all its records.
    pub async fn delete_topic(&self, topic: &str) -> Result<(), ClientError> {
        match self.request(RequestBody::DeleteTopic { topic: topic.into() }).await? {
            ResponseBody::TopicDeleted => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Every topic with its partition state (merged from every broker).
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>, ClientError> {
        Ok(self.refresh_metadata().await?.topics)
    }

    /// One topic with per-partition leader, epoch, replicas, ISR, and the log
    /// start and high watermark its leader reports.
    pub async fn describe_topic(&self, topic: &str) -> Result<TopicInfo, ClientError> {
        self.refresh_metadata().await?.topic(topic).cloned().ok_or_else(|| ClientError::Broker {
            code: ErrorCode::UnknownTopic,
            message: format!("unknown topic {topic}; create it first (mq topic create {topic})"),
        })
    }

    /// Appends `records` as one batch to the partition leader and waits for the
    /// acknowledgement `acks` asks for (`Acks::Leader` or `Acks::All`; use
    /// [`Client::send_one_way`] for acks=0). Retried across leader changes: a retry
    /// after an indefinite outcome may store the batch twice.
    pub async fn produce(
        &self,
        topic: &str,
        partition: u32,
        acks: Acks,
        records: Vec<Record>,
    ) -> Result<Appended, ClientError> {
        if acks == Acks::None {
            return Err(ClientError::InvalidArgument("acks=0 gets no reply; use send_one_way".into()));
        }
        let body = produce_body(topic, partition, acks, records);
        match self.request_leader(topic, partition, body).await? {
            ResponseBody::Produced { partition, base_offset, append_time_ms } => {
                Ok(Appended { partition, offset: base_offset, append_time_ms })
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Sends `records` to the partition leader with acks=0: no reply, no retry, no
    /// guarantee. Requests on a connection are handled in order, so a later round
    /// trip to the same leader (for example [`Client::list_offsets`] of this
    /// partition) returns after the broker took these records.
    pub async fn send_one_way(&self, topic: &str, partition: u32, records: Vec<Record>) -> Result<(), ClientError> {
        if self.state().meta.topic(topic).is_none() {
            self.refresh_metadata().await?;
        }
        let addr = self.leader_addr(topic, partition)?;
        let body = produce_body(topic, partition, Acks::None, records);
        self.conn(&addr)
            .await?
            .send(Call { body, reply: None })
            .await
            .map_err(|_| ClientError::Disconnected(format!("connection to {addr} closed")))
    }

    /// Reads committed records of a partition from `offset` at its leader, up to
    /// about `max_bytes` (at least one batch when any is available).
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: Offset,
        max_bytes: u32,
    ) -> Result<Fetched, ClientError> {
        let body = RequestBody::Fetch { topic: topic.into(), partition: PartitionId(partition), offset, max_bytes };
        match self.request_leader(topic, partition, body).await? {
            ResponseBody::Fetched { high_watermark, log_start, batches, .. } => {
                Ok(Fetched { high_watermark, log_start, batches })
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Looks up the earliest offset, the high watermark, or the first offset at a
    /// time, at the partition leader.
    pub async fn list_offsets(&self, topic: &str, partition: u32, spec: OffsetSpec) -> Result<Offset, ClientError> {
        let body = RequestBody::ListOffsets { topic: topic.into(), partition: PartitionId(partition), spec };
        match self.request_leader(topic, partition, body).await? {
            ResponseBody::Offset { offset } => Ok(offset),
            other => Err(unexpected(&other)),
        }
    }
}

/// Principal and ACL administration (docs/security.md): needs `Admin` on the
/// cluster.
impl Client {
    /// Creates a principal, or gives an existing one a new secret. Only the salted
    /// credential (a fresh random salt) is sent: the secret never leaves.
    pub async fn create_principal(&self, app_key: &str, secret: &[u8]) -> Result<(), ClientError> {
        mq_core::security::validate_app_key(app_key)?;
        if secret.is_empty() {
            return Err(ClientError::InvalidArgument("the secret is empty".into()));
        }
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| ClientError::Protocol(format!("no OS randomness: {e}")))?;
        let credential = StoredCredential::new(secret, salt);
        self.security_request(RequestBody::PutPrincipal { app_key: app_key.into(), credential }).await
    }

    /// Deletes a principal and every grant naming it.
    pub async fn delete_principal(&self, app_key: &str) -> Result<(), ClientError> {
        self.security_request(RequestBody::DeletePrincipal { app_key: app_key.into() }).await
    }

    /// Grants `operation` on `resource` to `principal`.
    pub async fn grant(&self, principal: &str, operation: Operation, resource: Resource) -> Result<(), ClientError> {
        let grant = Grant { principal: principal.into(), operation, resource };
        self.security_request(RequestBody::PutAcl(grant)).await
    }

    /// Removes a grant.
    pub async fn revoke(&self, principal: &str, operation: Operation, resource: Resource) -> Result<(), ClientError> {
        let grant = Grant { principal: principal.into(), operation, resource };
        self.security_request(RequestBody::DeleteAcl(grant)).await
    }

    /// The principals in the metadata log (not the bootstrap admin) and every grant.
    pub async fn describe_security(&self) -> Result<(Vec<String>, Vec<Grant>), ClientError> {
        match self.request(RequestBody::DescribeSecurity).await? {
            ResponseBody::Security { principals, grants } => Ok((principals, grants)),
            other => Err(unexpected(&other)),
        }
    }

    async fn security_request(&self, body: RequestBody) -> Result<(), ClientError> {
        match self.request(body).await? {
            ResponseBody::SecurityUpdated => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}

/// The partition for `key` among `partitions`: the protocol's key hash (Kafka's
/// murmur2, docs/protocol.md section 7), the one [`crate::Producer`] uses, so every
/// client agrees.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    let n = std::num::NonZeroU32::new(partitions).unwrap_or(std::num::NonZeroU32::MIN);
    mq_core::client::key_partition(key, n).0
}

fn produce_body(topic: &str, partition: u32, acks: Acks, records: Vec<Record>) -> RequestBody {
    RequestBody::Produce {
        topic: topic.into(),
        partition: PartitionId(partition),
        acks,
        batch: RecordBatch::new(records),
    }
}

fn unexpected(body: &ResponseBody) -> ClientError {
    let name = format!("{body:?}");
    ClientError::Protocol(format!("unexpected reply {}", name.split(['(', ' ', '{']).next().unwrap_or("?")))
}

type Pending = HashMap<u64, oneshot::Sender<Result<ResponseBody, ClientError>>>;

/// Runs mq-core's client authentication exchange on a new connection (the core
/// computes every message; this only carries them). Returns the next free
/// correlation id.
async fn login(
    stream: &mut TcpStream,
    creds: &Credentials,
    addr: &str,
    max_frame_bytes: usize,
) -> Result<u64, ClientError> {
    // The client half keys its state by broker id; one connection is one broker.
    let broker = NodeId(0);
    let mut auth = ClientAuth::new(Some(creds.clone()));
    let mut rng = mq_core::Seed(os_random_u64()?).stream("client auth");
    // Ids the exchange may use; each call below takes at most one (an unused
    // one is skipped, which is harmless).
    let mut next = 1u64;
    let Readiness::Send(mut correlation, mut body) = auth.ready(broker, || CorrelationId(next), &mut rng) else {
        return Err(ClientError::Protocol("the authentication exchange did not start".into()));
    };
    let (mut rd, mut wr) = crate::rt::split(stream);
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 4096];
    loop {
        let mut out = Vec::new();
        let msg = Message::Request(Request { correlation, body });
        encode_frame(&msg, max_frame_bytes, &mut out).map_err(|e| ClientError::Protocol(e.to_string()))?;
        crate::rt::write(&mut wr, &out)
            .await
            .map_err(|e| ClientError::Disconnected(format!("write to {addr} failed: {e}")))?;
        let reply = loop {
            match decode_frame(&buf, max_frame_bytes) {
                Ok(Some((Message::Response(r), used))) => {
                    buf.drain(..used);
                    break r;
                }
                Ok(Some(_)) => return Err(ClientError::Protocol(format!("{addr} sent a request to a client"))),
                Ok(None) => {}
                Err(e) => return Err(ClientError::Protocol(format!("malformed frame from {addr}: {e}"))),
            }
            match rd.read(&mut chunk).await {
                Ok(0) => {
                    return Err(ClientError::Disconnected(format!("{addr} closed the connection while authenticating")))
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(ClientError::Disconnected(format!("read from {addr} failed: {e}"))),
            }
        };
        next += 1;
        let event = auth.on_response(broker, reply.correlation, &reply.body, || CorrelationId(next));
        next += 1;
        match event {
            AuthEvent::Send(_, c, b) => (correlation, body) = (c, b),
            AuthEvent::Authenticated(_) => return Ok(next),
            AuthEvent::Refused(e) => {
                let message = e.message.replacen(&format!("broker {broker} "), &format!("the broker at {addr} "), 1);
                return Err(ClientError::Broker { code: e.code, message });
            }
            AuthEvent::Retry(_) => {
                let why = reply.body.err().map_or_else(String::new, |e| format!(": {}", e.message));
                return Err(ClientError::Broker {
                    code: ErrorCode::NotReady,
                    message: format!("the broker at {addr} could not authenticate this client yet{why}"),
                });
            }
            AuthEvent::NotMine => {
                return Err(ClientError::Protocol(format!("{addr} answered the authentication out of turn")))
            }
        }
    }
}

/// 8 bytes of OS randomness (nonces and salts must not be predictable).
pub(crate) fn os_random_u64() -> Result<u64, ClientError> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| ClientError::Protocol(format!("no OS randomness: {e}")))?;
    Ok(u64::from_le_bytes(b))
}

/// Owns the socket: writes requests in call order and routes replies by correlation id.
async fn connection_task(
    mut stream: TcpStream,
    mut calls: mpsc::Receiver<Call>,
    max_frame_bytes: usize,
    first_correlation: u64,
) {
    let (mut rd, mut wr) = crate::rt::split(&mut stream);
    let mut pending: Pending = HashMap::new();
    let mut next = first_correlation;
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let reason = loop {
        tokio::select! {
            call = calls.recv() => {
                let Some(call) = call else { return }; // every Client clone is gone
                let correlation = CorrelationId(next);
                next += 1;
                out.clear();
                let msg = Message::Request(Request { correlation, body: call.body });
                if let Err(e) = encode_frame(&msg, max_frame_bytes, &mut out) {
                    if let Some(tx) = call.reply {
                        let _ = tx.send(Err(ClientError::InvalidArgument(e.to_string())));
                    }
                    continue;
                }
                if let Some(tx) = call.reply {
                    pending.insert(correlation.0, tx);
                }
                if let Err(e) = crate::rt::write(&mut wr, &out).await {
                    break format!("write failed: {e}");
                }
            }
            r = rd.read(&mut chunk) => match r {
                Ok(0) => break "the broker closed the connection".to_string(),
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    match route_replies(&mut buf, &mut pending, max_frame_bytes) {
                        Ok(()) => {}
                        Err(reason) => break reason,
                    }
                }
                Err(e) => break format!("read failed: {e}"),
            }
        }
    };
    tracing::debug!(%reason, "client connection ended");
    for (_, tx) in pending.drain() {
        let _ = tx.send(Err(ClientError::Disconnected(reason.clone())));
    }
}

fn route_replies(buf: &mut Vec<u8>, pending: &mut Pending, max_frame_bytes: usize) -> Result<(), String> {
    loop {
        match decode_frame(buf, max_frame_bytes) {
            Ok(Some((msg, used))) => {
                buf.drain(..used);
                match msg {
                    Message::Response(r) => {
                        if let Some(tx) = pending.remove(&r.correlation.0) {
                            let _ = tx.send(r.body.map_err(ClientError::from));
                        }
                    }
                    Message::Request(_) | Message::Peer(_) => {
                        return Err("the broker sent a request or broker-to-broker traffic to a client".into())
                    }
                }
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("malformed frame from the broker: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mq_core::wire::PartitionInfo;
    use mq_core::LeaderEpoch;

    fn info(leader: u32, epoch: u32, hw: u64) -> TopicInfo {
        TopicInfo {
            config: TopicConfig::new("t", 1),
            partitions: vec![PartitionInfo {
                partition: PartitionId(0),
                leader: Some(NodeId(leader)),
                leader_epoch: LeaderEpoch(epoch),
                replicas: vec![NodeId(1), NodeId(2)],
                isr: vec![NodeId(1), NodeId(2)],
                log_start: Offset(0),
                high_watermark: Offset(hw),
            }],
        }
    }

    #[test]
    fn merged_metadata_keeps_the_newest_leader_and_the_leaders_high_watermark() {
        let mut m = ClusterMetadata::default();
        // A follower that missed the election, the new leader, a follower of it.
        m.merge(vec![NodeId(1)], Some(NodeId(1)), vec![info(1, 1, 0)]);
        m.merge(vec![NodeId(2)], Some(NodeId(2)), vec![info(2, 2, 40)]);
        m.merge(vec![NodeId(1), NodeId(2)], None, vec![info(2, 2, 0)]);
        let p = &m.topic("t").unwrap().partitions[0];
        assert_eq!((p.leader, p.leader_epoch, p.high_watermark), (Some(NodeId(2)), LeaderEpoch(2), Offset(40)));
        assert_eq!(m.brokers, vec![NodeId(1), NodeId(2)]);
    }

    #[test]
    fn bootstrap_takes_peers_lists_and_plain_addresses() {
        let b = parse_bootstrap("1=a:1, 2=b:2").unwrap();
        assert_eq!(b, vec![(Some(NodeId(1)), "a:1".to_string()), (Some(NodeId(2)), "b:2".to_string())]);
        assert_eq!(parse_bootstrap("a:1").unwrap(), vec![(None, "a:1".to_string())]);
        assert!(parse_bootstrap("x=a:1").is_err());
        assert!(parse_bootstrap(" , ").is_err());
    }

    #[test]
    fn exhausted_retries_after_an_unknown_outcome_say_so() {
        let e = ClientError::RetriesExhausted {
            attempts: 3,
            elapsed: Duration::from_secs(1),
            last: Box::new(ClientError::Broker { code: ErrorCode::NotLeader, message: "moved".into() }),
            indefinite: true,
        };
        assert!(e.is_indefinite());
        assert_eq!(e.code(), Some(ErrorCode::NotLeader));
        assert!(e.to_string().contains("may have taken effect"), "{e}");
    }
}
