//! The broker: one node task that owns the sans-IO [`mq_core::Node`], an accept loop
//! with one task per connection, and a storage thread that owns the files.
//!
//! The node task is the loop of DESIGN.md section 10: it waits on fsync completions,
//! connection events and the node's next deadline, feeds exactly one `Input`, and
//! drains every `Output` before waiting again. It never touches a socket or a file
//! itself: replies go to per-connection queues and Persists to the storage thread,
//! which applies every Persist waiting for it, fsyncs once for all of them (group
//! commit), and reports their tokens back. Tokens complete in order because one
//! thread handles them in order. With `fsync = "interval"` (docs/operations.md
//! section 3) it reports them once written and fsynced only the Raft log; the node
//! task then sends it a sync job every `fsync_interval_ms`, and it syncs once more
//! when it stops.
//!
//! Messages to other brokers go to one outbound link task per peer
//! (`transport::peer_link`) through a bounded queue; the node task only
//! `try_send`s, so a dead or slow peer costs dropped messages, never a stall.
//!
//! Shutdown: stop accepting and reading, feed the requests already read, wait until
//! every Persist completed (so every reply the node owes is sent), let connections
//! write what is queued, stop the storage thread, return.

use crate::clock::Clock;
use crate::config::{BrokerConfig, ConfigError, FsyncPolicy};
use crate::rt::Worker;
use crate::storage::{DiskStore, RecoveryNote, StorageError, StorageOptions};
use crate::transport::{accept_loop, peer_link, Limits, LocalNode, NodeEvent, Outbound};
use mq_core::storage::Write;
use mq_core::{Event, Input, Node, NodeId, Output, Peer, PersistToken};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Connection events queued for the node task; a full queue slows socket reads.
const EVENT_QUEUE: usize = 4096;
/// How long a controlled shutdown may take to move leadership away before the
/// broker stops anyway (the session timeout then fences it).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connections get to write their last replies at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `Broker::start` waits for the node to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Messages queued per outbound peer link; more are dropped.
const LINK_QUEUE: usize = 4096;
/// Most jobs the storage thread takes at once (one fsync covers them all).
const STORAGE_BATCH: usize = 1024;

/// Why the broker could not start or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The settings cannot run.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory could not be read or written.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The storage thread stopped unexpectedly.
    #[error("the storage thread stopped unexpectedly")]
    StorageThread,
    /// A broker task panicked (a bug: an internal invariant broke).
    #[error("broker task failed: {0}")]
    Task(String),
    /// The node did not become ready (elected a controller, registered, caught up)
    /// in time.
    #[error("broker {id} was not ready after {secs} s: no controller quorum answered; check --peers and that a majority of the voters runs")]
    NotReady {
        /// The broker.
        id: u32,
        /// How long it waited.
        secs: u64,
    },
}

type Completion = Result<PersistToken, StorageError>;

/// Work for the storage thread, in order.
enum StorageJob {
    /// Apply these writes; report the token once they are as durable as the
    /// `fsync` setting asks.
    Persist(PersistToken, Vec<Write>),
    /// `fsync = "interval"`: make everything written so far durable.
    Sync,
}

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    id: u32,
    local_addr: SocketAddr,
    shutdown: Arc<watch::Sender<bool>>,
    task: Option<JoinHandle<Result<(), BrokerError>>>,
}

impl Broker {
    /// Recovers the data directory, binds the listen address and starts serving.
    /// Returns once the node is ready: a controller is elected, this broker has
    /// registered and caught up on metadata (DESIGN.md section 8). Requests that
    /// arrive earlier get a retriable `NotReady` error.
    ///
    /// In a cluster, readiness needs a majority of the voters: start the brokers
    /// concurrently.
    pub async fn start(config: BrokerConfig) -> Result<Broker, BrokerError> {
        config.validate()?;
        let listener = TcpListener::bind(&config.listen)
            .await
            .map_err(|source| BrokerError::Bind { addr: config.listen.clone(), source })?;
        Broker::start_with_listener(config, listener).await
    }

    /// [`Broker::start`] on a listener bound already (`config.listen` is ignored):
    /// lets tests and embedders pick ports before every broker's `peers` is known.
    pub async fn start_with_listener(config: BrokerConfig, listener: TcpListener) -> Result<Broker, BrokerError> {
        let node_config = config.validate()?;
        let peers = config.peer_map()?;
        let local = LocalNode {
            id: NodeId(config.id),
            cluster_size: config.cluster_size(),
            cluster_secret: config.cluster_secret.as_ref().map(|s| Arc::from(s.expose())),
        };
        let clock = Clock::start();
        let seed = config.seed.unwrap_or_else(|| clock.now().as_nanos() ^ u64::from(config.id));
        let local_addr =
            listener.local_addr().map_err(|source| BrokerError::Bind { addr: config.listen.clone(), source })?;
        let owner = format!("mq broker {} listening on {local_addr}", config.id);
        let options = StorageOptions { segment_bytes: config.segment_bytes, owner };
        let data_dir = config.data_dir.clone();
        let (store, recovered) =
            crate::rt::blocking(move || DiskStore::open(data_dir, options)).await.map_err(BrokerError::Task)??;
        for note in &recovered.notes {
            log_recovery(note);
        }
        let node = Node::recover(node_config, seed, &recovered.state);
        tracing::info!(
            id = config.id,
            seed,
            auth = config.auth.is_some(),
            data_dir = %config.data_dir.display(),
            raft_entries = recovered.state.raft.entries.len(),
            partitions = recovered.state.logs.len(),
            "recovered"
        );

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shutdown_tx = Arc::new(shutdown_tx);
        let stop_accepting = shutdown_tx.clone();
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let (alive_tx, alive_rx) = mpsc::channel::<()>(1);
        let limits = Limits {
            max_connections: config.max_connections,
            max_frame_bytes: config.max_frame_bytes,
            read_timeout: Duration::from_millis(config.read_timeout_ms),
            write_timeout: Duration::from_millis(config.write_timeout_ms),
            idle_timeout: Duration::from_millis(config.idle_timeout_ms),
            outbound_queue: config.outbound_queue,
        };
        let (persist_tx, persist_rx) = mpsc::unbounded_channel::<StorageJob>();
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Completion>();
        let fsync = config.fsync;
        let storage_thread = Worker::start(
            "mq-storage",
            persist_rx,
            STORAGE_BATCH,
            store,
            move |store, jobs| persist_jobs(store, jobs, fsync, &done_tx),
            |mut store| {
                // Interval mode leaves writes unsynced until here: a clean stop
                // makes them durable.
                if let Err(e) = store.sync() {
                    tracing::error!(error = %e, "final fsync at shutdown failed");
                }
            },
        )
        .map_err(|source| {
            BrokerError::Storage(StorageError::Io { op: "spawn storage thread", path: config.data_dir.clone(), source })
        })?;
        tokio::spawn(accept_loop(listener, local.clone(), limits, events_tx, shutdown_rx.clone(), alive_tx));
        let mut links = HashMap::new();
        for (id, addr) in peers.into_iter().filter(|(id, _)| *id != local.id) {
            let (tx, rx) = mpsc::channel(LINK_QUEUE);
            links.insert(id, tx);
            tokio::spawn(peer_link(local.clone(), id, addr, rx, limits));
        }
        if !links.is_empty() {
            tracing::info!(
                id = config.id,
                brokers = local.cluster_size,
                voters = ?config.effective_voters(),
                cluster_secret = local.cluster_secret.is_some(),
                "joining the cluster; ready once a controller is elected and this broker registered"
            );
        }
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let sync_every =
            (config.fsync == FsyncPolicy::Interval).then(|| Duration::from_millis(config.fsync_interval_ms));
        let driver = Driver {
            node,
            clock,
            conns: HashMap::new(),
            links,
            persist: persist_tx,
            ready: Some(ready_tx),
            sync_every,
        };
        let task = tokio::spawn(async move {
            let result = driver.run(events_rx, done_rx, shutdown_rx, alive_rx).await;
            // After a fatal error the accept loop must stop too.
            let _ = stop_accepting.send(true);
            // The storage thread ends once the driver dropped its sender; every
            // Persist it took was fsynced before it reported back.
            let joined = storage_thread.join().await;
            match (result, joined) {
                (Err(e), _) => Err(e),
                (Ok(()), true) => Ok(()),
                (Ok(()), false) => Err(BrokerError::StorageThread),
            }
        });
        let mut broker = Broker { id: config.id, local_addr, shutdown: shutdown_tx, task: Some(task) };
        match tokio::time::timeout(READY_TIMEOUT, ready_rx).await {
            Ok(Ok(())) => Ok(broker),
            // The driver stopped before it was ready: report why.
            Ok(Err(_)) => match broker.wait().await {
                Err(e) => Err(e),
                Ok(()) => Err(BrokerError::NotReady { id: config.id, secs: 0 }),
            },
            Err(_) => {
                let _ = broker.stop().await;
                Err(BrokerError::NotReady { id: config.id, secs: READY_TIMEOUT.as_secs() })
            }
        }
    }

    /// This broker's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The address it listens on (with the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts the controlled shutdown; [`Broker::wait`] returns when it is done.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Waits until the broker stopped (after [`Broker::shutdown`] or a fatal error).
    /// Cancel-safe; returns `Ok(())` if called again after it returned.
    pub async fn wait(&mut self) -> Result<(), BrokerError> {
        let Some(task) = self.task.as_mut() else { return Ok(()) };
        let result = task.await;
        self.task = None;
        result.map_err(|e| BrokerError::Task(e.to_string()))?
    }

    /// Shuts down and waits.
    pub async fn stop(mut self) -> Result<(), BrokerError> {
        self.shutdown();
        self.wait().await
    }
}

impl Drop for Broker {
    /// Dropping a broker starts its controlled shutdown (it finishes in the
    /// background); use [`Broker::stop`] to wait for it.
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

fn log_recovery(note: &RecoveryNote) {
    match note {
        RecoveryNote::TruncatedTornTail { tp, path, dropped_bytes, log_end } => tracing::warn!(
            %tp, path = %path.display(), dropped_bytes, %log_end,
            "truncated a torn write at the end of the log (it was never acknowledged)"
        ),
        RecoveryNote::RebuiltIndex { path } => tracing::info!(path = %path.display(), "rebuilt offset index"),
        RecoveryNote::TruncatedRaftLog { dropped_bytes } => {
            tracing::warn!(dropped_bytes, "truncated a torn write at the end of the Raft log")
        }
        RecoveryNote::RemovedOrphan { path } => {
            tracing::info!(path = %path.display(), "removed leftover of an interrupted operation")
        }
    }
}

/// The jobs waiting for the storage thread: applies every Persist, makes them
/// durable with one round of fsyncs (`always`; under `interval` only the Raft log,
/// unless a sync job is among them), then reports their tokens in order. False when
/// the thread must stop.
fn persist_jobs(
    store: &mut DiskStore,
    jobs: &mut Vec<StorageJob>,
    fsync: FsyncPolicy,
    done: &mpsc::UnboundedSender<Completion>,
) -> bool {
    let mut tokens = Vec::with_capacity(jobs.len());
    let mut sync_all = fsync == FsyncPolicy::Always;
    let mut result = Ok(());
    for job in jobs.drain(..) {
        match job {
            StorageJob::Persist(token, writes) => {
                if result.is_ok() {
                    result = store.write(&writes);
                    tokens.push(token);
                }
            }
            StorageJob::Sync => sync_all = true,
        }
    }
    let result = result.and_then(|()| if sync_all { store.sync() } else { store.sync_metadata() });
    match result {
        Ok(()) => tokens.into_iter().all(|t| done.send(Ok(t)).is_ok()),
        // After a failed write the files are in an unknown state: stop, and let
        // the next start recover them. Nothing of this round is reported done.
        Err(e) => {
            let _ = done.send(Err(e));
            false
        }
    }
}

struct Driver {
    node: Node,
    clock: Clock,
    conns: HashMap<Peer, mpsc::Sender<Outbound>>,
    /// Outbound links to the other brokers.
    links: HashMap<NodeId, mpsc::Sender<mq_core::wire::Message>>,
    persist: mpsc::UnboundedSender<StorageJob>,
    /// Told once, when the node first reports ready.
    ready: Option<tokio::sync::oneshot::Sender<()>>,
    /// `fsync = "interval"`: how often the storage thread gets a sync job.
    sync_every: Option<Duration>,
}

impl Driver {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<NodeEvent>,
        mut done: mpsc::UnboundedReceiver<Completion>,
        mut shutdown: watch::Receiver<bool>,
        mut alive: mpsc::Receiver<()>,
    ) -> Result<(), BrokerError> {
        let mut stopping = false;
        let mut events_done = false;
        let mut give_up = tokio::time::Instant::now();
        let mut next_sync = self.sync_every.map(|d| tokio::time::Instant::now() + d);
        loop {
            if stopping
                && (self.node.is_shut_down()
                    || (tokio::time::Instant::now() >= give_up && self.node.inflight_persists() == 0))
            {
                break;
            }
            let deadline = self.node.poll_timeout().map(|d| self.clock.to_tokio(d));
            tokio::select! {
                biased;
                c = done.recv() => match c {
                    Some(Ok(token)) => self.feed(Input::Persisted { token })?,
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(BrokerError::StorageThread),
                },
                _ = shutdown.changed(), if !stopping => {
                    tracing::info!(
                        "controlled shutdown: no new connections or requests; moving leadership away, \
                         finishing in-flight writes"
                    );
                    stopping = true;
                    give_up = tokio::time::Instant::now() + SHUTDOWN_TIMEOUT;
                    let now = self.clock.now();
                    self.node.begin_shutdown(now);
                    self.drain()?;
                }
                // Before connection events, which a busy broker always has.
                _ = sleep_until_opt(next_sync), if next_sync.is_some() => {
                    self.persist.send(StorageJob::Sync).map_err(|_| BrokerError::StorageThread)?;
                    next_sync = self.sync_every.map(|d| tokio::time::Instant::now() + d);
                }
                ev = events.recv(), if !events_done => match ev {
                    Some(ev) => self.handle_event(ev)?,
                    None => events_done = true,
                },
                _ = sleep_until_opt(deadline), if deadline.is_some() => self.feed(Input::Timeout)?,
                _ = tokio::time::sleep_until(give_up), if stopping => {}
            }
        }
        // Let connections write their queued replies, then close.
        self.conns.clear();
        self.links.clear();
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, alive.recv()).await;
        tracing::info!("stopped; every acknowledged write is on disk");
        Ok(())
    }

    fn handle_event(&mut self, ev: NodeEvent) -> Result<(), BrokerError> {
        match ev {
            NodeEvent::Connected { peer, outbound } => {
                self.conns.insert(peer, outbound);
                self.feed(Input::Connected { peer })
            }
            NodeEvent::Message { peer, msg } => self.feed(Input::Message { from: peer, msg }),
            NodeEvent::Disconnected { peer } => {
                self.conns.remove(&peer);
                self.feed(Input::Disconnected { peer })
            }
        }
    }

    /// Feeds one input and drains every output.
    fn feed(&mut self, input: Input) -> Result<(), BrokerError> {
        let now = self.clock.now();
        self.node.handle(now, input);
        self.drain()
    }

    /// Carries out every output the node has.
    fn drain(&mut self) -> Result<(), BrokerError> {
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Send { to, msg } => self.send(to, msg),
                Output::Persist { token, writes } => {
                    self.persist.send(StorageJob::Persist(token, writes)).map_err(|_| BrokerError::StorageThread)?;
                }
                Output::Close { peer, reason } => {
                    tracing::info!(%peer, %reason, "closing connection at the node's request");
                    if let Some(tx) = self.conns.remove(&peer) {
                        let _ = tx.try_send(Outbound::Close(reason));
                    }
                }
                Output::Event(event) => log_event(&event),
            }
        }
        if self.ready.is_some() && self.node.is_ready() {
            if let Some(tx) = self.ready.take() {
                let _ = tx.send(());
            }
        }
        Ok(())
    }

    fn send(&mut self, to: Peer, msg: mq_core::wire::Message) {
        if let Peer::Node(id) = to {
            let Some(link) = self.links.get(&id) else {
                tracing::debug!(%to, "no link; message dropped");
                return;
            };
            match link.try_send(msg) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => tracing::debug!(%to, "link queue full; message dropped"),
                Err(TrySendError::Closed(_)) => tracing::debug!(%to, "no link; message dropped"),
            }
            return;
        }
        let Some(tx) = self.conns.get(&to) else {
            tracing::debug!(%to, "reply to a closed connection dropped");
            return;
        };
        match tx.try_send(Outbound::Message(msg)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                // Dropping the sender closes the connection once its queue drains.
                tracing::warn!(%to, "closing connection: client does not read its replies");
                self.conns.remove(&to);
            }
            Err(TrySendError::Closed(_)) => {
                self.conns.remove(&to);
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn log_event(event: &Event) {
    match event {
        Event::BecameLeader { tp, leader_epoch, isr, unclean } => {
            tracing::info!(%tp, %leader_epoch, ?isr, unclean, "became partition leader")
        }
        Event::IsrChanged { tp, isr, shrink } => tracing::info!(%tp, ?isr, shrink, "ISR changed"),
        Event::Truncated { tp, end, removed } => {
            tracing::info!(%tp, %end, removed, "truncated a diverging log tail")
        }
        Event::ControllerLeader { term } => tracing::info!(%term, "became the controller leader"),
        Event::Registered { broker_epoch } => tracing::info!(%broker_epoch, "registered with the controller"),
        Event::TopicCreated { topic } => tracing::info!(%topic, "topic created"),
        Event::TopicDeleted { topic } => tracing::info!(%topic, "topic deleted"),
        Event::LogStartAdvanced { tp, log_start } => tracing::info!(%tp, %log_start, "retention advanced log start"),
        Event::GroupRebalanced { group, generation, members, partitions } => {
            tracing::info!(%group, %generation, members, partitions, "group rebalanced")
        }
        other => tracing::trace!(?other, "event"),
    }
}
