//! The async group consumer: mq-core's sans-IO [`mq_core::client::GroupConsumer`]
//! run by one tokio task, behind a [`Stream`] of records with `ack()`, `nack(delay)`
//! and `reject()`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mq_net::ClientError> {
//! use mq_net::{Consumer, GroupMode};
//! use std::time::Duration;
//! let mut consumer = Consumer::builder()
//!     .bootstrap("1=127.0.0.1:9092,2=127.0.0.1:9093,3=127.0.0.1:9094")
//!     .group("billing")
//!     .topic("orders")
//!     .mode(GroupMode::Shared)
//!     .build()
//!     .await?;
//! while let Some(received) = consumer.next().await {
//!     let received = received?;
//!     println!("{}/{}: {:?}", received.partition(), received.offset(), received.value());
//!     received.ack().await?;
//! }
//! consumer.close(Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```
//!
//! Every decision (finding the coordinator, joining, heartbeats, rebalances,
//! fetching from leaders, redelivery, which acks go where and when they count) is
//! the core machine's (docs/consumers.md section 6.6); this module only carries its
//! messages, one connection per broker, like the [`crate::Producer`]'s driver.
//!
//! **Acks are explicit.** A record is delivered to the group again (to this member
//! or another) until it is acked, or after its ack timeout. `ack()` queues the ack
//! and returns once the machine took it; the machine confirms it when the
//! partition leader committed it. [`Consumer::close`] stops fetching, waits for
//! every ack taken so far to be confirmed (up to the deadline), then leaves the
//! group, so a consumer that acked and closed never sees those records again.
//!
//! **Errors.** A refusal the machine cannot fix by retrying alone (an ACL that
//! does not allow the group or topic, a group of another mode, an unknown topic)
//! comes out of the stream as `Err` while the machine keeps retrying; refused
//! credentials come out as `Err(Unauthenticated)` naming the app key, and then the
//! stream ends.
//!
//! **Backpressure.** The stream holds a few records; the machine buffers up to
//! `max_buffered_records` and stops fetching beyond.

use crate::client::{Client, ClientBuilder, ClientError};
use crate::clock::Clock;
use crate::producer::{connection, sleep_until_opt, ConnEvent};
use bytes::Bytes;
use futures_core::Stream;
use mq_core::client::{
    AckError, ConsumedRecord, GroupConsumer as Machine, GroupConsumerConfig, GroupConsumerOutput, GroupEvent,
};
use mq_core::group::GroupMode;
use mq_core::wire::{ErrorCode, Record};
use mq_core::{Input, NodeId, Offset, PartitionId, Peer, TopicPartition};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Records (and errors) waiting for the application in the stream.
const STREAM_QUEUE: usize = 256;
/// Commands (acks, close) waiting for the driver task.
const COMMAND_QUEUE: usize = 1024;
/// Messages waiting for one broker connection; beyond it they are dropped.
const CONNECTION_QUEUE: usize = 4096;
/// Replies and connection ends waiting for the driver task.
const EVENT_QUEUE: usize = 4096;
/// How long a consumer whose every handle was dropped gets to confirm its acks
/// and leave.
const DROP_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds a [`Consumer`]: `Consumer::builder().bootstrap(..).group("g")
/// .topic("orders").mode(GroupMode::Shared).build().await?`.
#[derive(Clone, Debug)]
pub struct ConsumerBuilder {
    client: Option<Client>,
    connect: ClientBuilder,
    group: Option<String>,
    topics: Vec<String>,
    mode: GroupMode,
    push: Option<u32>,
    max_records: u32,
    max_wait: Duration,
    session_timeout: Duration,
    request_timeout: Duration,
    max_buffered_records: usize,
    seed: Option<u64>,
}

impl Default for ConsumerBuilder {
    fn default() -> Self {
        ConsumerBuilder {
            client: None,
            connect: Client::builder(),
            group: None,
            topics: Vec::new(),
            mode: GroupMode::Exclusive(Default::default()),
            push: None,
            max_records: 100,
            max_wait: Duration::from_millis(500),
            session_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(5),
            max_buffered_records: 10_000,
            seed: None,
        }
    }
}

impl ConsumerBuilder {
    /// Brokers to contact, as for [`ClientBuilder::bootstrap`].
    pub fn bootstrap(mut self, bootstrap: impl Into<String>) -> Self {
        self.connect = self.connect.bootstrap(bootstrap);
        self
    }
    /// How long connecting to a broker (and the startup check) may take (default 5 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect = self.connect.connect_timeout(d);
        self
    }
    /// Authenticates as `app_key` with `secret`: the machine runs mq-core's
    /// exchange with each broker it talks to.
    pub fn credentials(mut self, app_key: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        self.connect = self.connect.credentials(app_key, secret);
        self
    }
    /// The group to join (required).
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }
    /// A topic to consume (at least one).
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topics.push(topic.into());
        self
    }
    /// The group's mode (default exclusive with the sticky assignor); every member
    /// must ask for the same.
    pub fn mode(mut self, mode: GroupMode) -> Self {
        self.mode = mode;
        self
    }
    /// Long polls (the default): at most `max_records` per answer, a leader holds a
    /// fetch up to `max_wait` when nothing is there.
    pub fn pull(mut self, max_records: u32, max_wait: Duration) -> Self {
        self.push = None;
        self.max_records = max_records;
        self.max_wait = max_wait;
        self
    }
    /// Push subscriptions: at most `max_records` per push and `prefetch` unacked
    /// records per partition.
    pub fn push(mut self, max_records: u32, prefetch: u32) -> Self {
        self.max_records = max_records;
        self.push = Some(prefetch);
        self
    }
    /// At most this many records per fetch answer or push (default 100).
    pub fn max_records(mut self, n: u32) -> Self {
        self.max_records = n;
        self
    }
    /// The coordinator evicts the member after this long without a heartbeat
    /// (default 10 s).
    pub fn session_timeout(mut self, d: Duration) -> Self {
        self.session_timeout = d;
        self
    }
    /// How long one request other than a join or fetch may wait (default 5 s).
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }
    /// Records the machine buffers for the application; fetching stops beyond.
    pub fn max_buffered_records(mut self, n: usize) -> Self {
        self.max_buffered_records = n;
        self
    }
    /// The seed of the machine's jitter and nonces' stream (default: from the OS).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The startup check (a broker answers, the credentials are accepted, every
    /// topic exists, every live broker has an address), then the consumer, which
    /// starts joining the group at once.
    pub async fn build(self) -> Result<Consumer, ClientError> {
        let Some(group) = self.group.clone() else {
            return Err(ClientError::InvalidArgument("a consumer needs a group: .group(\"name\")".into()));
        };
        let (connect_timeout, max_frame_bytes) = (self.connect.connect_timeout, self.connect.max_frame_bytes);
        let credentials = self.connect.credentials.clone();
        let client = match self.client {
            Some(c) => c,
            None => self.connect.request_timeout(connect_timeout).connect().await?,
        };
        let credentials = credentials.or_else(|| client.settings().credentials);
        let meta = client.refresh_metadata().await?;
        let addrs = client.broker_addresses();
        if let Some(missing) = meta.brokers.iter().find(|b| !addrs.contains_key(b)) {
            return Err(ClientError::UnknownBrokerAddress(missing.0));
        }
        if addrs.is_empty() {
            return Err(ClientError::InvalidArgument(
                "no broker id is known: list the brokers as ID=HOST:PORT (their --peers list)".into(),
            ));
        }
        if let Some(topic) = self.topics.iter().find(|t| meta.topic(t).is_none()) {
            return Err(ClientError::Broker {
                code: ErrorCode::UnknownTopic,
                message: format!("unknown topic {topic}; create it first (mq topic create {topic})"),
            });
        }
        let mut config = GroupConsumerConfig::new(addrs.keys().copied(), group, self.topics.clone())
            .mode(self.mode)
            .session_timeout(self.session_timeout.into())
            .request_timeout(self.request_timeout.into())
            .max_buffered_records(self.max_buffered_records);
        config = match self.push {
            None => config.pull(self.max_records, self.max_wait.into()),
            Some(prefetch) => config.push(self.max_records, prefetch),
        };
        if config.join_timeout < config.session_timeout {
            let session = config.session_timeout;
            config = config.join_timeout(session);
        }
        config.credentials = credentials;
        let seed = match self.seed {
            Some(s) => s,
            None => crate::client::os_random_u64()?,
        };
        let machine = Machine::new(config, seed).map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
        let (commands, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let (records_tx, records) = mpsc::channel(STREAM_QUEUE);
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let driver = Driver {
            machine,
            clock: Clock::start(),
            addrs,
            conns: HashMap::new(),
            conn_tasks: Vec::new(),
            events_tx,
            deferred: VecDeque::new(),
            errors: VecDeque::new(),
            dropped_acks: 0,
            connect_timeout,
            max_frame_bytes,
        };
        let task = tokio::spawn(driver.run(commands_rx, events, records_tx, commands.clone()));
        Ok(Consumer { commands, records, task: Some(task) })
    }
}

impl Client {
    /// A group consumer of `group` that shares this client's bootstrap list,
    /// timeouts and credentials (it opens its own connections).
    pub fn consumer(&self, group: impl Into<String>) -> ConsumerBuilder {
        ConsumerBuilder { client: Some(self.clone()), connect: self.settings(), ..ConsumerBuilder::default() }
            .group(group)
    }
}

/// A member of a consumer group (see the module docs): a [`Stream`] of
/// [`Received`] records.
#[derive(Debug)]
pub struct Consumer {
    commands: mpsc::Sender<Command>,
    records: mpsc::Receiver<Result<Received, ClientError>>,
    task: Option<JoinHandle<()>>,
}

impl Consumer {
    /// A builder with the defaults (bootstrap 127.0.0.1:9092, exclusive sticky
    /// mode, pulls of up to 100 records, a 10 s session).
    pub fn builder() -> ConsumerBuilder {
        ConsumerBuilder::default()
    }

    /// The next record, or an error the machine reported; `None` once the consumer
    /// stopped (closed, or refused credentials reported before).
    pub async fn next(&mut self) -> Option<Result<Received, ClientError>> {
        self.records.recv().await
    }

    /// Stops fetching, waits up to `deadline` for every ack taken so far to be
    /// confirmed, then leaves the group. `Err` if some acks were not confirmed
    /// by then (their records will be delivered again).
    pub async fn close(mut self, deadline: Duration) -> Result<(), ClientError> {
        let (done, rx) = oneshot::channel();
        let sent = self.commands.send(Command::Close { within: deadline, done }).await.is_ok();
        // The stream is not read any more: let the driver deliver nothing.
        self.records.close();
        let result = match sent {
            true => rx.await.unwrap_or(Ok(())),
            false => Ok(()),
        };
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        result
    }
}

impl Stream for Consumer {
    type Item = Result<Received, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.records.poll_recv(cx)
    }
}

/// One record handed to the application; settle it with [`Received::ack`],
/// [`Received::nack`] or [`Received::reject`].
#[derive(Debug, Clone)]
pub struct Received {
    inner: ConsumedRecord,
    commands: mpsc::Sender<Command>,
}

impl Received {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.inner.tp.topic
    }
    /// The partition.
    pub fn partition(&self) -> PartitionId {
        self.inner.tp.partition
    }
    /// The offset.
    pub fn offset(&self) -> Offset {
        self.inner.offset
    }
    /// The key, if the producer set one.
    pub fn key(&self) -> Option<&Bytes> {
        self.inner.record.key.as_ref()
    }
    /// The value.
    pub fn value(&self) -> &Bytes {
        &self.inner.record.value
    }
    /// The whole record (timestamp, headers, tags).
    pub fn record(&self) -> &Record {
        &self.inner.record
    }
    /// 1 for the first delivery since the partition's leader took over, 2 for the
    /// next, and so on.
    pub fn delivery(&self) -> u32 {
        self.inner.delivery
    }

    /// Done: never deliver it to the group again (once confirmed).
    pub async fn ack(&self) -> Result<(), ClientError> {
        self.settle(Settle::Ack).await
    }
    /// Deliver it again after `delay` (counts towards the group's max deliveries).
    pub async fn nack(&self, delay: Duration) -> Result<(), ClientError> {
        self.settle(Settle::Nack(delay)).await
    }
    /// Failed for good: send it to the dead-letter topic.
    pub async fn reject(&self) -> Result<(), ClientError> {
        self.settle(Settle::Reject).await
    }

    async fn settle(&self, how: Settle) -> Result<(), ClientError> {
        let (reply, rx) = oneshot::channel();
        let command = Command::Settle { tp: self.inner.tp.clone(), offset: self.inner.offset, how, reply };
        self.commands.send(command).await.map_err(|_| ClientError::ConsumerClosed)?;
        rx.await.map_err(|_| ClientError::ConsumerClosed)?
    }
}

#[derive(Debug, Clone, Copy)]
enum Settle {
    Ack,
    Nack(Duration),
    Reject,
}

#[derive(Debug)]
enum Command {
    Settle { tp: TopicPartition, offset: Offset, how: Settle, reply: oneshot::Sender<Result<(), ClientError>> },
    Close { within: Duration, done: oneshot::Sender<Result<(), ClientError>> },
}

struct Driver {
    machine: Machine,
    clock: Clock,
    addrs: BTreeMap<NodeId, String>,
    /// One connection per broker; removed only when its task reported its end.
    conns: HashMap<NodeId, mpsc::Sender<mq_core::wire::Message>>,
    conn_tasks: Vec<JoinHandle<()>>,
    events_tx: mpsc::Sender<ConnEvent>,
    /// Inputs found while draining (a broker without an address), fed after it.
    deferred: VecDeque<Input>,
    /// Errors for the stream, delivered before further records.
    errors: VecDeque<ClientError>,
    /// Acks the machine gave up on while closing.
    dropped_acks: usize,
    connect_timeout: Duration,
    max_frame_bytes: usize,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut events: mpsc::Receiver<ConnEvent>,
        records: mpsc::Sender<Result<Received, ClientError>>,
        settle_tx: mpsc::Sender<Command>,
    ) {
        let mut close_reply: Option<oneshot::Sender<Result<(), ClientError>>> = None;
        let mut closing = false;
        self.drain();
        while !self.machine.is_closed() {
            let deadline = self.machine.poll_timeout().map(|t| self.clock.to_tokio(t));
            let deliverable = !records.is_closed() && (self.machine.buffered_records() > 0 || !self.errors.is_empty());
            tokio::select! {
                // The driver holds a sender (for records it hands out), so this
                // never ends; a dropped stream is how the application leaves.
                Some(c) = commands.recv() => match c {
                    Command::Settle { tp, offset, how, reply } => {
                        let now = self.clock.now();
                        let r = match how {
                            Settle::Ack => self.machine.ack(now, &tp, offset),
                            Settle::Nack(d) => self.machine.nack(now, &tp, offset, d.into()),
                            Settle::Reject => self.machine.reject(now, &tp, offset),
                        };
                        let _ = reply.send(r.map_err(ack_error));
                        self.drain();
                    }
                    Command::Close { within, done } => {
                        close_reply = Some(done);
                        if !closing {
                            closing = true;
                            self.machine.close(self.clock.now(), within.into());
                            self.drain();
                        }
                    }
                },
                // An error means the stream was dropped: handled below.
                permit = records.reserve(), if deliverable => if let Ok(permit) = permit {
                    if let Some(e) = self.errors.pop_front() {
                        permit.send(Err(e));
                    } else if let Some(r) = self.machine.poll_record() {
                        permit.send(Ok(Received { inner: r, commands: settle_tx.clone() }));
                        self.drain();
                    }
                },
                ev = events.recv() => match ev {
                    Some(ConnEvent::Message { from, msg }) => self.feed(Input::Message { from: Peer::Node(from), msg }),
                    Some(ConnEvent::Closed { from, reason }) => {
                        tracing::debug!(broker = %from, %reason, "consumer connection ended");
                        self.conns.remove(&from);
                        self.feed(Input::Disconnected { peer: Peer::Node(from) });
                    }
                    None => unreachable!("the driver holds an event sender itself"),
                },
                _ = sleep_until_opt(deadline) => self.feed(Input::Timeout),
            }
            if !closing && records.is_closed() {
                // The application dropped the stream: close as if asked.
                closing = true;
                self.machine.close(self.clock.now(), DROP_CLOSE_TIMEOUT.into());
                self.drain();
            }
        }
        if let Some(done) = close_reply.take() {
            let result = match self.dropped_acks {
                0 => Ok(()),
                n => Err(ClientError::OutcomeUnknown {
                    reason: format!("{n} ack(s) were not confirmed before the close deadline; their records will be delivered again"),
                }),
            };
            let _ = done.send(result);
        }
        // Errors still owed (refused credentials) end the stream.
        for e in self.errors.drain(..) {
            if records.try_send(Err(e)).is_err() {
                break;
            }
        }
        self.conns.clear();
        let tasks = std::mem::take(&mut self.conn_tasks);
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            for t in tasks {
                let _ = t.await;
            }
        })
        .await;
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

    /// Carries out every output and event of the machine.
    fn drain(&mut self) {
        while let Some(GroupConsumerOutput::Send { to, msg }) = self.machine.poll_output() {
            match to {
                Peer::Node(broker) => self.send(broker, msg),
                other => tracing::warn!(to = %other, "consumer message to a non-broker dropped"),
            }
        }
        while let Some(event) = self.machine.poll_event() {
            match event {
                GroupEvent::Rebalanced { member, generation, assignment } => {
                    tracing::debug!(%member, %generation, partitions = assignment.len(), "consumer rebalanced")
                }
                GroupEvent::RebalanceStarted { reason } => tracing::debug!(%reason, "consumer rebalancing"),
                GroupEvent::AcksDropped { tp, acks, up_to, reason } => {
                    tracing::warn!(%tp, count = acks.len(), ?up_to, %reason, "acks dropped");
                    self.dropped_acks += acks.len() + usize::from(up_to.is_some());
                }
                GroupEvent::Error { error } => {
                    tracing::debug!(code = %error.code, message = %error.message, "consumer error");
                    self.errors.push_back(error.into());
                }
                GroupEvent::Closed => tracing::debug!("consumer closed"),
                other => tracing::trace!(?other, "consumer event"),
            }
        }
    }

    /// Queues `msg` on the broker's connection, opening it if needed.
    fn send(&mut self, broker: NodeId, msg: mq_core::wire::Message) {
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
            if conn.try_send(msg).is_err() {
                tracing::debug!(%broker, "consumer connection queue full or closing; message dropped");
            }
        }
    }
}

fn ack_error(e: AckError) -> ClientError {
    ClientError::AckRefused(e.to_string())
}
