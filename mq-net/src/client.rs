//! The async client library: [`Client`] speaks mq's frame protocol to one broker over
//! TCP, with many requests in flight on one connection (matched by correlation id).
//!
//! ```no_run
//! # async fn demo() -> Result<(), mq_net::ClientError> {
//! use mq_net::{Acks, Client, NewTopic, Record};
//! let client = Client::builder().bootstrap("127.0.0.1:9092").connect().await?;
//! client.create_topic(NewTopic::new("orders", 3)).await?;
//! let d = client.produce("orders", 0, Acks::All, vec![Record::from_value("hello")]).await?;
//! println!("stored at {}/{}", d.partition, d.offset);
//! # Ok(()) }
//! ```
//!
//! The producer and consumer state machines of mq-core (batching, retries,
//! partitioners, groups, acks) are not there yet; this is the request layer they
//! will run on.

use mq_core::wire::{
    decode_frame, encode_frame, Acks, ErrorCode, Message, OffsetSpec, Record, RecordBatch, Request, RequestBody,
    ResponseBody, TopicConfig, TopicInfo, WireError, DEFAULT_MAX_FRAME_BYTES,
};
use mq_core::{CorrelationId, Offset, PartitionId};
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Requests waiting for the connection task.
const CALL_QUEUE: usize = 1024;

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
    #[error("connection lost: {0}")]
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
}

impl ClientError {
    /// The wire error code, for errors the broker returned.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<WireError> for ClientError {
    fn from(e: WireError) -> Self {
        ClientError::Broker { code: e.code, message: e.message }
    }
}

/// Where an acknowledged batch went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
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

/// Builds a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    bootstrap: String,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_frame_bytes: usize,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            bootstrap: "127.0.0.1:9092".into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        }
    }
}

impl ClientBuilder {
    /// Brokers to try, `host:port[,host:port..]`, in order.
    pub fn bootstrap(mut self, bootstrap: impl Into<String>) -> Self {
        self.bootstrap = bootstrap.into();
        self
    }
    /// How long connecting (and the first round trip) may take per broker.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
    /// How long to wait for each reply.
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }
    /// Largest frame sent or accepted.
    pub fn max_frame_bytes(mut self, n: usize) -> Self {
        self.max_frame_bytes = n;
        self
    }

    /// Connects to the first bootstrap broker that answers a round trip; fails fast
    /// with every address's error if none does.
    pub async fn connect(self) -> Result<Client, ClientError> {
        let mut reasons = Vec::new();
        for addr in self.bootstrap.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match self.try_connect(addr).await {
                Ok(c) => return Ok(c),
                Err(e) => reasons.push(format!("{addr}: {e}")),
            }
        }
        if reasons.is_empty() {
            reasons.push("no address given".into());
        }
        Err(ClientError::Unreachable { bootstrap: self.bootstrap.clone(), reason: reasons.join("; ") })
    }

    async fn try_connect(&self, addr: &str) -> Result<Client, String> {
        let stream = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("no answer within {:?}", self.connect_timeout)),
        };
        let _ = stream.set_nodelay(true);
        let (tx, rx) = mpsc::channel(CALL_QUEUE);
        tokio::spawn(connection_task(stream, rx, self.max_frame_bytes));
        let client = Client { calls: tx, request_timeout: self.connect_timeout, addr: addr.to_owned() };
        // A round trip proves an mq broker is there, not just an open port.
        client.list_topics().await.map_err(|e| e.to_string())?;
        Ok(Client { request_timeout: self.request_timeout, ..client })
    }
}

struct Call {
    body: RequestBody,
    /// `None` for one-way sends (acks=0): no reply will come.
    reply: Option<oneshot::Sender<Result<ResponseBody, ClientError>>>,
}

/// A connection to one broker (see the module docs). Cheap to clone; clones share the
/// connection.
#[derive(Clone, Debug)]
pub struct Client {
    calls: mpsc::Sender<Call>,
    request_timeout: Duration,
    addr: String,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call").field("body", &self.body).finish()
    }
}

impl Client {
    /// A builder with the defaults (bootstrap 127.0.0.1:9092, 5 s connect timeout,
    /// 30 s request timeout).
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Connects to `bootstrap` (`host:port[,..]`) within `timeout` per address.
    pub async fn connect(bootstrap: &str, timeout: Duration) -> Result<Client, ClientError> {
        Client::builder().bootstrap(bootstrap).connect_timeout(timeout).connect().await
    }

    /// The broker address this client talks to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends a request and waits for its reply.
    pub async fn request(&self, body: RequestBody) -> Result<ResponseBody, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.calls
            .send(Call { body, reply: Some(tx) })
            .await
            .map_err(|_| ClientError::Disconnected("connection closed".into()))?;
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ClientError::Disconnected("connection closed before the reply".into())),
            Err(_) => Err(ClientError::Timeout(self.request_timeout)),
        }
    }

    /// Creates a topic; returns once its creation is durable.
    pub async fn create_topic(&self, topic: NewTopic) -> Result<(), ClientError> {
        match self.request(RequestBody::CreateTopic(topic.into_config())).await? {
            ResponseBody::TopicCreated => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Deletes a topic and all its records.
    pub async fn delete_topic(&self, topic: &str) -> Result<(), ClientError> {
        match self.request(RequestBody::DeleteTopic { topic: topic.into() }).await? {
            ResponseBody::TopicDeleted => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Every topic with its partition state.
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>, ClientError> {
        match self.request(RequestBody::ListTopics).await? {
            ResponseBody::Topics(t) => Ok(t),
            other => Err(unexpected(&other)),
        }
    }

    /// One topic with its partition state.
    pub async fn describe_topic(&self, topic: &str) -> Result<TopicInfo, ClientError> {
        self.list_topics().await?.into_iter().find(|t| t.config.name == topic).ok_or_else(|| ClientError::Broker {
            code: ErrorCode::UnknownTopic,
            message: format!("unknown topic {topic}; create it first (mq topic create {topic})"),
        })
    }

    /// Appends `records` as one batch and waits for the acknowledgement `acks` asks
    /// for (`Acks::Leader` or `Acks::All`; use [`Client::send_one_way`] for acks=0).
    pub async fn produce(
        &self,
        topic: &str,
        partition: u32,
        acks: Acks,
        records: Vec<Record>,
    ) -> Result<Delivery, ClientError> {
        if acks == Acks::None {
            return Err(ClientError::InvalidArgument("acks=0 gets no reply; use send_one_way".into()));
        }
        let body = produce_body(topic, partition, acks, records);
        match self.request(body).await? {
            ResponseBody::Produced { partition, base_offset, append_time_ms } => {
                Ok(Delivery { partition, offset: base_offset, append_time_ms })
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Sends `records` with acks=0: no reply, no guarantee. Requests on a connection
    /// are handled in order, so any later round trip (for example
    /// [`Client::list_topics`]) returns after the broker took these records.
    pub async fn send_one_way(&self, topic: &str, partition: u32, records: Vec<Record>) -> Result<(), ClientError> {
        let body = produce_body(topic, partition, Acks::None, records);
        self.calls
            .send(Call { body, reply: None })
            .await
            .map_err(|_| ClientError::Disconnected("connection closed".into()))
    }

    /// Reads committed records of a partition from `offset`, up to about `max_bytes`
    /// (at least one batch when any is available).
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: Offset,
        max_bytes: u32,
    ) -> Result<Fetched, ClientError> {
        let body = RequestBody::Fetch { topic: topic.into(), partition: PartitionId(partition), offset, max_bytes };
        match self.request(body).await? {
            ResponseBody::Fetched { high_watermark, log_start, batches, .. } => {
                Ok(Fetched { high_watermark, log_start, batches })
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Looks up the earliest offset, the high watermark, or the first offset at a time.
    pub async fn list_offsets(&self, topic: &str, partition: u32, spec: OffsetSpec) -> Result<Offset, ClientError> {
        let body = RequestBody::ListOffsets { topic: topic.into(), partition: PartitionId(partition), spec };
        match self.request(body).await? {
            ResponseBody::Offset { offset } => Ok(offset),
            other => Err(unexpected(&other)),
        }
    }
}

/// The partition for `key` among `partitions`: xxh3 of the key bytes, so every client
/// (in any language) that hashes the same way agrees.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    (xxhash_rust::xxh3::xxh3_64(key) % u64::from(partitions.max(1))) as u32
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

/// Owns the socket: writes requests in call order and routes replies by correlation id.
async fn connection_task(mut stream: TcpStream, mut calls: mpsc::Receiver<Call>, max_frame_bytes: usize) {
    let (mut rd, mut wr) = stream.split();
    let mut pending: Pending = HashMap::new();
    let mut next = 1u64;
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
                if let Err(e) = wr.write_all(&out).await {
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

/// Builds a [`Producer`]: `client.producer("orders").acks(Acks::All).build().await?`.
#[derive(Clone, Debug)]
pub struct ProducerBuilder {
    client: Client,
    topic: String,
    acks: Acks,
}

impl ProducerBuilder {
    /// When a send counts as done (default `Acks::All`; `Acks::None` is refused, use
    /// [`Client::send_one_way`]).
    pub fn acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        self
    }

    /// Looks the topic up (its partition count drives partitioning) and returns the
    /// producer.
    pub async fn build(self) -> Result<Producer, ClientError> {
        if self.acks == Acks::None {
            return Err(ClientError::InvalidArgument("a Producer waits for acks; use Client::send_one_way".into()));
        }
        let partitions = self.client.describe_topic(&self.topic).await?.config.partitions;
        Ok(Producer { client: self.client, topic: self.topic, acks: self.acks, partitions, next: 0 })
    }
}

/// Sends records to one topic and returns where each landed. Partitioning: a keyed
/// record goes to [`partition_for_key`]; an unkeyed one round robin.
///
/// Each `send` is one request; batching (linger, batch size), retries and idempotence
/// come with mq-core's producer state machine.
#[derive(Clone, Debug)]
pub struct Producer {
    client: Client,
    topic: String,
    acks: Acks,
    partitions: u32,
    next: u32,
}

impl Client {
    /// A producer for `topic`.
    pub fn producer(&self, topic: impl Into<String>) -> ProducerBuilder {
        ProducerBuilder { client: self.clone(), topic: topic.into(), acks: Acks::All }
    }
}

impl Producer {
    /// The partition `record` goes to.
    pub fn partition_for(&mut self, record: &Record) -> u32 {
        match &record.key {
            Some(k) => partition_for_key(k, self.partitions),
            None => {
                let p = self.next;
                self.next = (self.next + 1) % self.partitions.max(1);
                p
            }
        }
    }

    /// Sends one record and waits for its acknowledgement.
    pub async fn send(&mut self, record: Record) -> Result<Delivery, ClientError> {
        let p = self.partition_for(&record);
        self.client.produce(&self.topic, p, self.acks, vec![record]).await
    }

    /// Sends records to one partition as one batch; record `i` lands at
    /// `delivery.offset + i`.
    pub async fn send_batch(&mut self, partition: u32, records: Vec<Record>) -> Result<Delivery, ClientError> {
        self.client.produce(&self.topic, partition, self.acks, records).await
    }
}
