//! The async producer: mq-core's sans-IO [`mq_core::client::Producer`] run by one
//! tokio task, behind a cheap handle.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mq_net::ClientError> {
//! use mq_net::{Acks, Producer, Record};
//! use std::time::Duration;
//! let producer = Producer::builder()
//!     .bootstrap("1=127.0.0.1:9092,2=127.0.0.1:9093,3=127.0.0.1:9094")
//!     .topic("orders")
//!     .acks(Acks::All)
//!     .linger(Duration::from_millis(5))
//!     .build()
//!     .await?;
//! let d = producer.send(Record::keyed("user-7", "created")).await?;
//! println!("stored at {}/{}", d.partition, d.offset);
//! producer.close(Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```
//!
//! Every decision (batching by `linger` and `batch_max_bytes`, partitioning,
//! leaders, retries with backoff, idempotent sequences, the outcome of each send) is
//! the core machine's; this module only carries its messages (DESIGN.md section
//! 10). The driver task is the broker's loop again: it waits on the handle's
//! commands, the brokers' replies and the machine's next deadline, feeds one input,
//! and drains every output: `Send` goes to the connection of that broker (opened on
//! first use, one per broker), `Done` resolves the send's [`PendingDelivery`].
//!
//! **Connections.** A connection that cannot be opened or breaks is reported to the
//! machine as `Disconnected`: it treats what was in flight on it as of unknown
//! outcome and retries elsewhere. A new connection to that broker is opened only
//! after the machine heard of the old one's end, so every request it lost is one the
//! machine knows about. A message that finds its connection's queue full is dropped;
//! the machine's request deadline covers it.
//!
//! **Backpressure.** The machine refuses a send when `max_inflight` sends or
//! `buffer_max_bytes` of records wait; [`Producer::enqueue`] then waits, in order,
//! until earlier sends end (Kafka's blocking `send`).
//!
//! **Outcomes.** `Ok` becomes a [`Delivery`]; a definite failure (every attempt
//! refused before appending) a [`ClientError::Broker`]; an unknown outcome (a lost
//! reply, a timeout, `LeadershipLost`, `acks=0`) [`ClientError::OutcomeUnknown`]: the
//! records may be stored.

use crate::client::{Client, ClientBuilder, ClientError};
use crate::clock::Clock;
use mq_core::client::{
    PartitionerKind, ProduceError, ProduceOutcome, Producer as Machine, ProducerConfig, ProducerOutput, SendId,
    SendRequest,
};
use mq_core::wire::{decode_frame, encode_frame, Acks, ErrorCode, Message, Record};
use mq_core::{Input, NodeId, Offset, PartitionId, Peer};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Commands waiting for the driver task.
const COMMAND_QUEUE: usize = 1024;
/// Messages waiting for one broker connection; beyond it they are dropped.
const CONNECTION_QUEUE: usize = 4096;
/// Replies and connection ends waiting for the driver task.
const EVENT_QUEUE: usize = 4096;
/// Bytes read from a socket at once.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Where an acknowledged send went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Delivery {
    /// The partition.
    pub partition: PartitionId,
    /// The offset of the send's first record; record `i` of a batch send is at
    /// `offset + i`.
    pub offset: Offset,
}

/// Builds a [`Producer`]: `Producer::builder().bootstrap(..).topic("orders")
/// .acks(Acks::All).linger(..).build().await?`.
#[derive(Clone, Debug)]
pub struct ProducerBuilder {
    /// An existing client (`Client::producer`), or how to connect one.
    client: Option<Client>,
    connect: ClientBuilder,
    topic: Option<String>,
    acks: Acks,
    config: ProducerConfig,
    seed: Option<u64>,
}

impl Default for ProducerBuilder {
    fn default() -> Self {
        ProducerBuilder {
            client: None,
            connect: Client::builder(),
            topic: None,
            acks: Acks::All,
            config: ProducerConfig::default(),
            seed: None,
        }
    }
}

impl ProducerBuilder {
    /// Brokers to contact, as for [`ClientBuilder::bootstrap`]: list every broker
    /// as `id=host:port` for a cluster.
    pub fn bootstrap(mut self, bootstrap: impl Into<String>) -> Self {
        self.connect = self.connect.bootstrap(bootstrap);
        self
    }
    /// How long connecting to a broker (and the startup check) may take (default 5 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect = self.connect.connect_timeout(d);
        self
    }
    /// The topic of [`Producer::send`], [`Producer::send_batch`] and the one-way
    /// sends; `build` fails if it does not exist.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }
    /// When an awaited send counts as done (default `Acks::All`); the one-way sends
    /// use `acks=0` whatever this says.
    pub fn acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        self
    }
    /// How long a batch waits for more sends before it leaves (default 0).
    pub fn linger(mut self, d: Duration) -> Self {
        self.config = self.config.linger(d.into());
        self
    }
    /// A batch stops taking sends at this size.
    pub fn batch_max_bytes(mut self, n: usize) -> Self {
        self.config = self.config.batch_max_bytes(n);
        self
    }
    /// Bytes of records waiting or in flight, at most; sends beyond wait.
    pub fn buffer_max_bytes(mut self, n: usize) -> Self {
        self.config = self.config.buffer_max_bytes(n);
        self
    }
    /// Sends without an outcome, at most; sends beyond wait.
    pub fn max_inflight(mut self, n: usize) -> Self {
        self.config = self.config.max_inflight(n);
        self
    }
    /// Batches out at once per partition (at most 5 with idempotence).
    pub fn max_inflight_per_partition(mut self, n: usize) -> Self {
        self.config = self.config.max_inflight_per_partition(n);
        self
    }
    /// How long one produce request may wait for its reply.
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.config = self.config.request_timeout(d.into());
        self
    }
    /// How long a send may take, retries included, before it ends (default 30 s).
    pub fn delivery_timeout(mut self, d: Duration) -> Self {
        self.config = self.config.delivery_timeout(d.into());
        self
    }
    /// Most produce requests one batch may use.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.config = self.config.max_attempts(n);
        self
    }
    /// First and longest wait between attempts.
    pub fn retry_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.config = self.config.retry_backoff(first.into(), max.into());
        self
    }
    /// Deduplicated retries of `acks=all` batches (on by default).
    pub fn idempotence(mut self, on: bool) -> Self {
        self.config = self.config.idempotence(on);
        self
    }
    /// How sends without an explicit partition pick one (default: Kafka's key
    /// hash, keyless records round robin).
    pub fn partitioner(mut self, kind: PartitionerKind) -> Self {
        self.config = self.config.partitioner(kind);
        self
    }
    /// The seed of the machine's jitter and random partitioner (default: from the
    /// clock).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
    /// Largest frame sent or accepted.
    pub fn max_frame_bytes(mut self, n: usize) -> Self {
        self.connect = self.connect.max_frame_bytes(n);
        self
    }
    /// Authenticates as `app_key` with `secret` (the startup check's connections
    /// and the machine's, which runs mq-core's exchange per broker). A refused
    /// login fails `build` (or every send) with `Unauthenticated`, naming the app key.
    pub fn credentials(mut self, app_key: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        self.connect = self.connect.credentials(app_key, secret);
        self
    }

    /// The startup check, then the producer: asks every bootstrap broker for
    /// metadata and fails fast (within the connect timeout) if none answers, if a
    /// live broker has no known address, if the topic does not exist, or if a
    /// setting is invalid.
    pub async fn build(self) -> Result<Producer, ClientError> {
        let (connect_timeout, max_frame_bytes) = (self.connect.connect_timeout, self.connect.max_frame_bytes);
        let credentials = self.connect.credentials.clone();
        let client = match self.client {
            Some(c) => c,
            // The startup check is bounded by the connect timeout.
            None => self.connect.request_timeout(connect_timeout).connect().await?,
        };
        let mut meta = client.cached_metadata();
        if self.topic.as_ref().is_some_and(|t| meta.topic(t).is_none()) {
            meta = client.refresh_metadata().await?;
        }
        let addrs = client.broker_addresses();
        if let Some(missing) = meta.brokers.iter().find(|b| !addrs.contains_key(b)) {
            return Err(ClientError::UnknownBrokerAddress(missing.0));
        }
        if addrs.is_empty() {
            return Err(ClientError::InvalidArgument(
                "no broker id is known: list the brokers as ID=HOST:PORT (their --peers list)".into(),
            ));
        }
        if let Some(topic) = self.topic.as_ref().filter(|t| meta.topic(t).is_none()) {
            return Err(ClientError::Broker {
                code: ErrorCode::UnknownTopic,
                message: format!("unknown topic {topic}; create it first (mq topic create {topic})"),
            });
        }
        let clock = Clock::start();
        let seed = self.seed.unwrap_or_else(|| clock.now().as_nanos());
        // An existing client's credentials serve its producers too.
        let credentials = credentials.or_else(|| client.settings().credentials);
        let config = ProducerConfig { brokers: addrs.keys().copied().collect(), credentials, ..self.config };
        let machine = Machine::new(config, seed).map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
        let (commands, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let driver = Driver {
            machine,
            clock,
            addrs,
            conns: HashMap::new(),
            conn_tasks: Vec::new(),
            events_tx,
            waiters: HashMap::new(),
            blocked: VecDeque::new(),
            flushes: Vec::new(),
            deferred: VecDeque::new(),
            connect_timeout,
            max_frame_bytes,
        };
        tokio::spawn(driver.run(commands_rx, events));
        Ok(Producer { commands, topic: self.topic, acks: self.acks })
    }
}

impl Client {
    /// A producer for `topic` that shares this client's bootstrap list, timeouts and
    /// startup metadata (it opens its own connections).
    pub fn producer(&self, topic: impl Into<String>) -> ProducerBuilder {
        let connect = self.settings();
        ProducerBuilder { client: Some(self.clone()), connect, ..ProducerBuilder::default() }.topic(topic)
    }
}

/// Sends records through mq-core's producer machine (see the module docs). Cheap to
/// clone: clones share the machine, its batches and its connections.
#[derive(Clone, Debug)]
pub struct Producer {
    commands: mpsc::Sender<Command>,
    topic: Option<String>,
    acks: Acks,
}

/// The outcome of one accepted send; resolves once the broker acknowledged it or
/// the machine gave up. Dropping it does not cancel the send.
#[derive(Debug)]
pub struct PendingDelivery {
    outcome: oneshot::Receiver<Resolved>,
}

/// An outcome and when the producer task learned it.
type Resolved = (ProduceOutcome, std::time::Instant);

impl PendingDelivery {
    /// The outcome together with the moment the producer task learned it (when the
    /// broker's reply was handled), not the moment it is awaited: latency
    /// measurements can await many sends in order and still time each one
    /// (`mq bench`).
    pub async fn timed(self) -> (Result<Delivery, ClientError>, std::time::Instant) {
        match self.outcome.await {
            Ok((outcome, at)) => (outcome_result(outcome), at),
            Err(_) => (Err(stopped()), std::time::Instant::now()),
        }
    }
}

impl Future for PendingDelivery {
    type Output = Result<Delivery, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.outcome).poll(cx).map(|r| match r {
            Ok((outcome, _)) => outcome_result(outcome),
            Err(_) => Err(stopped()),
        })
    }
}

fn outcome_result(outcome: ProduceOutcome) -> Result<Delivery, ClientError> {
    match outcome {
        ProduceOutcome::Ok { partition, base_offset } => Ok(Delivery { partition, offset: base_offset }),
        ProduceOutcome::Failed { error } => Err(error.into()),
        ProduceOutcome::Indefinite { reason } => Err(ClientError::OutcomeUnknown { reason }),
    }
}

/// The driver resolves every waiter before it ends, so a dropped one is a panic in it.
fn stopped() -> ClientError {
    ClientError::OutcomeUnknown { reason: "the producer task stopped".into() }
}

impl Producer {
    /// A builder with the defaults (bootstrap 127.0.0.1:9092, `acks=all`,
    /// idempotence on, no linger; the rest as [`ProducerConfig::default`]).
    pub fn builder() -> ProducerBuilder {
        ProducerBuilder::default()
    }

    /// Sends one record to the producer's topic and waits for its acknowledgement.
    pub async fn send(&self, record: Record) -> Result<Delivery, ClientError> {
        self.send_batch(vec![record]).await
    }

    /// Sends records to the producer's topic as one batch send: they stay together,
    /// in order, in one partition (picked by the first record's key); record `i`
    /// lands at `delivery.offset + i`.
    pub async fn send_batch(&self, records: Vec<Record>) -> Result<Delivery, ClientError> {
        let request = SendRequest::new(self.topic()?).acks(self.acks).records(records);
        self.enqueue(request).await?.await
    }

    /// Sends one record with `acks=0`: returns once it is on its way to the leader.
    /// Nothing confirms it was stored.
    pub async fn send_oneway(&self, record: Record) -> Result<(), ClientError> {
        self.send_batch_oneway(vec![record]).await
    }

    /// [`Producer::send_batch`] with `acks=0`.
    pub async fn send_batch_oneway(&self, records: Vec<Record>) -> Result<(), ClientError> {
        let request = SendRequest::new(self.topic()?).acks(Acks::None).records(records);
        match self.enqueue(request).await?.await {
            // An acks=0 send ends "unknown" once it is written: that is its success.
            Ok(_) | Err(ClientError::OutcomeUnknown { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Hands any send (topic, explicit partition, acks, deadline) to the machine and
    /// returns its outcome as a future, so that many sends can be in flight and
    /// batch together. Waits while the machine's buffer is full. An `acks=0` send's
    /// outcome is always [`ClientError::OutcomeUnknown`] (or a definite failure).
    pub async fn enqueue(&self, request: SendRequest) -> Result<PendingDelivery, ClientError> {
        let (accepted, accepted_rx) = oneshot::channel();
        let (outcome, outcome_rx) = oneshot::channel();
        self.command(Command::Submit { request, accepted, outcome }).await?;
        accepted_rx.await.map_err(|_| ClientError::ProducerClosed)??;
        Ok(PendingDelivery { outcome: outcome_rx })
    }

    /// Waits until every send made so far (and any made meanwhile) has its outcome.
    /// Batches still lingering leave when their linger ends.
    pub async fn flush(&self) -> Result<(), ClientError> {
        let (done, rx) = oneshot::channel();
        self.command(Command::Flush { done }).await?;
        rx.await.map_err(|_| ClientError::ProducerClosed)
    }

    /// Stops taking sends, lets pending ones finish for up to `deadline`, then closes
    /// the connections after writing what is queued on them. Sends still without an
    /// outcome at the deadline end as [`ClientError::OutcomeUnknown`]; then this
    /// returns `Err(ClientError::OutcomeUnknown)` too, naming how many.
    pub async fn close(self, deadline: Duration) -> Result<(), ClientError> {
        let (done, rx) = oneshot::channel();
        self.command(Command::Close { within: deadline, done }).await?;
        rx.await.map_err(|_| ClientError::ProducerClosed)?
    }

    fn topic(&self) -> Result<&str, ClientError> {
        self.topic.as_deref().ok_or_else(|| {
            ClientError::InvalidArgument("this producer has no topic: set one with .topic(..) or use enqueue".into())
        })
    }

    async fn command(&self, c: Command) -> Result<(), ClientError> {
        self.commands.send(c).await.map_err(|_| ClientError::ProducerClosed)
    }
}

enum Command {
    Submit {
        request: SendRequest,
        accepted: oneshot::Sender<Result<(), ClientError>>,
        outcome: oneshot::Sender<Resolved>,
    },
    Flush {
        done: oneshot::Sender<()>,
    },
    Close {
        within: Duration,
        done: CloseReply,
    },
}

/// Where `close` waits for its result.
type CloseReply = oneshot::Sender<Result<(), ClientError>>;

/// What a connection task reports.
pub(crate) enum ConnEvent {
    Message {
        from: NodeId,
        msg: Message,
    },
    /// The connection could not be opened or ended; the task is gone.
    Closed {
        from: NodeId,
        reason: String,
    },
}

/// A send the machine had no room for yet.
struct Blocked {
    request: SendRequest,
    accepted: oneshot::Sender<Result<(), ClientError>>,
    outcome: oneshot::Sender<Resolved>,
}

struct Driver {
    machine: Machine,
    clock: Clock,
    addrs: BTreeMap<NodeId, String>,
    /// One connection per broker; removed only when its task reported its end.
    conns: HashMap<NodeId, mpsc::Sender<Message>>,
    /// Connection tasks not known to have ended.
    conn_tasks: Vec<JoinHandle<()>>,
    events_tx: mpsc::Sender<ConnEvent>,
    waiters: HashMap<SendId, oneshot::Sender<Resolved>>,
    /// Sends waiting for room, in submission order.
    blocked: VecDeque<Blocked>,
    flushes: Vec<oneshot::Sender<()>>,
    /// Inputs found while draining (a broker without an address), fed after it.
    deferred: VecDeque<Input>,
    connect_timeout: Duration,
    max_frame_bytes: usize,
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, mut events: mpsc::Receiver<ConnEvent>) {
        // Set by `close` (or when every handle is gone): stop at this time or once idle.
        let mut closing: Option<(tokio::time::Instant, Option<CloseReply>)> = None;
        loop {
            if let Some((until, _)) = &closing {
                if self.idle() || tokio::time::Instant::now() >= *until {
                    break;
                }
            }
            let deadline = self.machine.poll_timeout().map(|t| self.clock.to_tokio(t));
            let close_at = closing.as_ref().map(|(t, _)| *t);
            tokio::select! {
                c = commands.recv(), if closing.is_none() => match c {
                    Some(Command::Submit { request, accepted, outcome }) => {
                        self.blocked.push_back(Blocked { request, accepted, outcome });
                        self.submit_blocked();
                        self.drain();
                    }
                    Some(Command::Flush { done }) => {
                        self.flushes.push(done);
                        self.drain();
                    }
                    Some(Command::Close { within, done }) => {
                        closing = Some((tokio::time::Instant::now() + within, Some(done)));
                    }
                    None => {
                        // Every handle is gone: finish what was sent, within its deadline.
                        let within = self.machine.config().delivery_timeout + self.machine.config().request_timeout;
                        let within = Duration::from_nanos(within.as_nanos());
                        closing = Some((tokio::time::Instant::now() + within, None));
                    }
                },
                ev = events.recv() => match ev {
                    Some(ConnEvent::Message { from, msg }) => self.feed(Input::Message { from: Peer::Node(from), msg }),
                    Some(ConnEvent::Closed { from, reason }) => {
                        tracing::debug!(broker = %from, %reason, "producer connection ended");
                        self.conns.remove(&from);
                        self.feed(Input::Disconnected { peer: Peer::Node(from) });
                    }
                    // The driver holds a sender itself.
                    None => unreachable!("the event channel outlives the driver"),
                },
                _ = sleep_until_opt(deadline) => self.feed(Input::Timeout),
                _ = sleep_until_opt(close_at) => {}
            }
        }
        let unfinished = self.waiters.len() + self.blocked.len();
        let reason = "the producer closed before the send had an outcome".to_string();
        let now = std::time::Instant::now();
        for (_, tx) in self.waiters.drain() {
            let _ = tx.send((ProduceOutcome::Indefinite { reason: reason.clone() }, now));
        }
        for b in self.blocked.drain(..) {
            let _ = b.accepted.send(Err(ClientError::ProducerClosed));
        }
        // Connection tasks write what is queued, then end; bounded by the deadline.
        self.conns.clear();
        drop(events);
        let until = closing.as_ref().map(|(t, _)| *t).unwrap_or_else(tokio::time::Instant::now);
        let now = tokio::time::Instant::now();
        let left = until.saturating_duration_since(now).max(Duration::from_millis(100));
        let tasks = std::mem::take(&mut self.conn_tasks);
        let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
        let _ = tokio::time::timeout(left, async {
            for t in tasks {
                let _ = t.await;
            }
        })
        .await;
        for a in aborts {
            a.abort();
        }
        if let Some((_, Some(done))) = closing {
            let result = match unfinished {
                0 => Ok(()),
                n => Err(ClientError::OutcomeUnknown { reason: format!("{n} send(s) had no outcome at close") }),
            };
            let _ = done.send(result);
        }
    }

    /// No send without an outcome.
    fn idle(&self) -> bool {
        self.blocked.is_empty() && self.machine.inflight() == 0
    }

    /// Feeds one input and drains every output (and inputs that draining found).
    fn feed(&mut self, input: Input) {
        let mut next = Some(input);
        while let Some(input) = next {
            self.machine.handle(self.clock.now(), input);
            self.drain();
            next = self.deferred.pop_front();
        }
    }

    /// Carries out every output of the machine; hands sends that waited for room to
    /// it when outcomes freed some.
    fn drain(&mut self) {
        // Read once per drain, and only when a send ends: what the waiters get.
        let mut now = None;
        loop {
            let mut freed = false;
            while let Some(out) = self.machine.poll_output() {
                match out {
                    ProducerOutput::Send { to: Peer::Node(broker), msg } => self.send(broker, msg),
                    // The machine addresses brokers only.
                    ProducerOutput::Send { to, .. } => tracing::warn!(%to, "producer message to a non-broker dropped"),
                    ProducerOutput::Done { id, outcome } => {
                        freed = true;
                        if let Some(tx) = self.waiters.remove(&id) {
                            let at = *now.get_or_insert_with(std::time::Instant::now);
                            let _ = tx.send((outcome, at));
                        }
                    }
                }
            }
            if !freed || !self.submit_blocked() {
                break;
            }
        }
        if self.idle() {
            for tx in self.flushes.drain(..) {
                let _ = tx.send(());
            }
        }
    }

    /// Submits waiting sends in order until the machine refuses one for room; true
    /// if any was submitted (its outputs need draining).
    fn submit_blocked(&mut self) -> bool {
        let mut submitted = false;
        while let Some(b) = self.blocked.pop_front() {
            match self.machine.submit(self.clock.now(), b.request.clone()) {
                Ok(id) => {
                    submitted = true;
                    self.waiters.insert(id, b.outcome);
                    let _ = b.accepted.send(Ok(()));
                }
                Err(ProduceError::Backpressure(_) | ProduceError::BufferFull { .. }) => {
                    self.blocked.push_front(b);
                    break;
                }
                Err(e) => {
                    let _ = b.accepted.send(Err(ClientError::InvalidArgument(e.to_string())));
                }
            }
        }
        submitted
    }

    /// Queues `msg` on the broker's connection, opening it if needed.
    fn send(&mut self, broker: NodeId, msg: Message) {
        if !self.conns.contains_key(&broker) {
            let Some(addr) = self.addrs.get(&broker).cloned() else {
                tracing::warn!(%broker, "no address for this broker; list every broker as ID=HOST:PORT");
                self.deferred.push_back(Input::Disconnected { peer: Peer::Node(broker) });
                return;
            };
            let (tx, rx) = mpsc::channel(CONNECTION_QUEUE);
            let events = self.events_tx.clone();
            let (connect_timeout, max_frame_bytes) = (self.connect_timeout, self.max_frame_bytes);
            self.conn_tasks.retain(|t| !t.is_finished());
            self.conn_tasks.push(tokio::spawn(async move {
                let reason = connection(addr, rx, &events, broker, connect_timeout, max_frame_bytes).await;
                let _ = events.send(ConnEvent::Closed { from: broker, reason }).await;
            }));
            self.conns.insert(broker, tx);
        }
        if let Some(conn) = self.conns.get(&broker) {
            // Full: dropped, the request deadline covers it. Closed: its end is on
            // the way and covers it.
            if conn.try_send(msg).is_err() {
                tracing::debug!(%broker, "producer connection queue full or closing; message dropped");
            }
        }
    }
}

pub(crate) async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// One connection to `broker`: writes the machine's requests in order and forwards
/// every reply. Returns why it ended. When the driver drops its sender, it writes
/// what is queued, shuts its side down and waits for the broker to close, so the
/// broker has read everything (what `acks=0` sends need before the process exits).
pub(crate) async fn connection(
    addr: String,
    mut rx: mpsc::Receiver<Message>,
    events: &mpsc::Sender<ConnEvent>,
    broker: NodeId,
    connect_timeout: Duration,
    max_frame_bytes: usize,
) -> String {
    let mut stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(&addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return format!("cannot connect to {addr}: {e}"),
        Err(_) => return format!("cannot connect to {addr}: no answer within {connect_timeout:?}"),
    };
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = crate::rt::split(&mut stream);
    let (mut out, mut buf) = (Vec::new(), Vec::new());
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    let mut writing = true;
    loop {
        tokio::select! {
            m = rx.recv(), if writing => match m {
                Some(m) => {
                    out.clear();
                    encode_into(&m, max_frame_bytes, &mut out);
                    // Whatever else is queued goes out with the same write.
                    while let Ok(m) = rx.try_recv() {
                        encode_into(&m, max_frame_bytes, &mut out);
                    }
                    if let Err(e) = crate::rt::write(&mut wr, &out).await {
                        return format!("write to {addr} failed: {e}");
                    }
                }
                None => {
                    writing = false;
                    let _ = wr.shutdown().await;
                }
            },
            r = rd.read(&mut chunk) => match r {
                Ok(0) => return format!("{addr} closed the connection"),
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    loop {
                        match decode_frame(&buf, max_frame_bytes) {
                            Ok(Some((msg, used))) => {
                                buf.drain(..used);
                                let _ = events.send(ConnEvent::Message { from: broker, msg }).await;
                            }
                            Ok(None) => break,
                            Err(e) => return format!("malformed frame from {addr}: {e}"),
                        }
                    }
                }
                Err(e) => return format!("read from {addr} failed: {e}"),
            }
        }
    }
}

/// Appends `msg`'s frame to `out`; a message too large for a frame is dropped with
/// a log line (the machine's request deadline ends its attempt).
fn encode_into(msg: &Message, max_frame_bytes: usize, out: &mut Vec<u8>) {
    if let Err(e) = encode_frame(msg, max_frame_bytes, out) {
        tracing::warn!(error = %e, "producer request not sent: it does not fit a frame");
    }
}
