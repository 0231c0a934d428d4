//! The simulation loop: one seed, one cluster, one workload, one trace.
//!
//! Everything that happens is an [`Ev`] in a priority queue ordered by simulated
//! time and then by insertion order, so two events at the same time always run in
//! the same order. Each popped event is one trace line and counts as one simulated
//! event. Nodes, clients, the disk and the network are driven exactly as a
//! production driver would: feed one input, drain every output.

use crate::adversary::{self, Adversary, AdversaryKind, Verdict, ADMIN_APP_KEY, ADVERSARY_OFFSET};
use crate::checker::{Checker, CheckerSettings};
use crate::clock::Clock;
use crate::disk::Disk;
use crate::groups::{GroupChecker, GroupSpec, Handed};
use crate::history::{History, Outcome};
use crate::members::{group_name, group_settings, Action, Member};
use crate::network::{exp_sample, Cut, Drop, Fate, Network};
use crate::options::Options;
use crate::schedule::{Fault, Timed};
use crate::trace::{Actor, Trace};
use crate::{Counters, Mutation, SimConfig};
use bytes::Bytes;
use figure8::Figure8;
use mq_core::client::auth::{AuthEvent, ClientAuth, Readiness};
use mq_core::client::{
    AckError, Consumer, ConsumerConfig, ConsumerOutput, GroupConsumerOutput, GroupEvent, ProduceOutcome, Producer,
    ProducerConfig, ProducerOutput, SendId,
};
use mq_core::controller::raft::Entry;
use mq_core::node::AuthConfig;
use mq_core::replication::producers::SequenceCheck;
use mq_core::storage::RepairReport;
use mq_core::wire::{
    Acks, ErrorCode, Message, PeerMessage, Record, Request, RequestBody, Response, ResponseBody, SeekTo, TopicConfig,
};
use mq_core::Coverage;
use mq_core::{
    ClientId, CorrelationId, Duration, Event, Input, Instant, Node, NodeConfig, NodeId, Offset, Output, PartitionId,
    Peer, PersistToken, Rng, Seed, TopicPartition,
};
use rand::Rng as _;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

mod aimed;
mod control;
mod figure8;
mod lifecycle;
mod readback;
mod zombie;

/// Something scheduled to happen.
enum Ev {
    // Boxed so queue entries stay small: the heap moves them on every push and pop.
    Deliver {
        from: Peer,
        to: Peer,
        msg: Box<Message>,
    },
    NodeInput {
        node: usize,
        incarnation: u64,
        input: Box<Input>,
    },
    PersistDone {
        node: usize,
        incarnation: u64,
        token: PersistToken,
        apply: bool,
        notify: bool,
    },
    NodeTimer {
        node: usize,
        generation: u64,
    },
    ClientTimer {
        client: usize,
        generation: u64,
    },
    ProduceTick {
        client: usize,
    },
    /// A group member finished processing its current batch.
    MemberTick {
        client: usize,
        incarnation: u64,
    },
    Fault,
    /// An aimed fault (`sim/aimed.rs`), a [`Fault::Aimed`].
    Aimed {
        fault: Box<Fault>,
    },
    /// The `index`-th fault of the run's schedule.
    Scheduled {
        index: usize,
    },
    Restart {
        node: usize,
        incarnation: u64,
    },
    Crash {
        node: usize,
        incarnation: u64,
    },
    HealCut {
        id: u64,
    },
    /// An adversarial client's next attack.
    AdversaryTick {
        client: usize,
    },
    /// A crashed group member's late ack or seek (`zombie.rs`).
    Zombie(Box<zombie::ZombieRequest>),
    /// The bound of a controlled shutdown passed: stop the node if it is still
    /// stopping.
    ShutdownDeadline {
        node: usize,
        incarnation: u64,
    },
    /// A watch of a controlled shutdown's partitions reached its election bound.
    LeaderWatch,
    /// The controlled shutdown of the (healed, quiet) liveness phase.
    QuietShutdown,
    Liveness,
    End,
}

impl Ev {
    fn name(&self) -> &'static str {
        match self {
            Ev::Deliver { .. } => "deliver",
            Ev::NodeInput { .. } => "node-input",
            Ev::PersistDone { .. } => "fsync-done",
            Ev::NodeTimer { .. } => "node-timer",
            Ev::ClientTimer { .. } => "client-timer",
            Ev::ProduceTick { .. } => "produce-tick",
            Ev::MemberTick { .. } => "member-tick",
            Ev::Fault => "fault",
            Ev::Aimed { .. } => "aimed-fault",
            Ev::Scheduled { .. } => "scheduled-fault",
            Ev::Restart { .. } => "restart",
            Ev::Crash { .. } => "crash",
            Ev::HealCut { .. } => "heal-cut",
            Ev::AdversaryTick { .. } => "adversary-tick",
            Ev::Zombie(_) => "zombie",
            Ev::ShutdownDeadline { .. } => "shutdown-deadline",
            Ev::LeaderWatch => "leader-watch",
            Ev::QuietShutdown => "quiet-shutdown",
            Ev::Liveness => "liveness",
            Ev::End => "end",
        }
    }
}

/// How a node stops.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// At the end of a completed controlled shutdown.
    Clean,
    /// A crash: clients see their connections reset at once when `disconnect`; the
    /// node restarts after `down_ns`.
    Crash { disconnect: bool, down_ns: u64 },
}

struct Scheduled {
    at: Instant,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

struct NodeSlot {
    id: NodeId,
    config: NodeConfig,
    seed: u64,
    node: Option<Node>,
    incarnation: u64,
    disk: Disk,
    clock: Clock,
    /// Clock steps applied lately: (simulation time, size in nanoseconds), for
    /// the step budget (`Fault::ClockStep`).
    steps: Vec<(Instant, u64)>,
    paused_until: Instant,
    timer: Option<Instant>,
    timer_generation: u64,
    /// The metadata commit index `metadata_commit_protected` last checked.
    commit_checked: u64,
    /// The last Raft term this node was seen leading in.
    raft_leader_term: Option<mq_core::Term>,
    /// Inputs fed to this node (all incarnations), and when the next full
    /// invariant check is due.
    inputs: u64,
    next_check: u64,
    /// When this incarnation began a controlled shutdown.
    stopping: Option<Instant>,
    /// The instant of the last timeout fed to this node and how many fired then
    /// (`timer_progress`).
    timeouts_at: (Instant, u32),
}

/// The admin client: creates the run's topics (and, in auth seeds, logs in as
/// the bootstrap admin and creates the principals and grants), retrying each
/// request until it is confirmed.
struct Admin {
    next_broker: u32,
    /// Requests not yet confirmed, by label (`topic t0`, `principal producer-0`).
    unconfirmed: BTreeMap<String, RequestBody>,
    inflight: BTreeMap<CorrelationId, String>,
    next_correlation: u64,
    next_attempt: Instant,
    /// The bootstrap admin's login per broker (no exchange without auth).
    auth: ClientAuth,
    auth_rng: Rng,
}

impl Admin {
    fn correlation(&mut self) -> CorrelationId {
        let c = CorrelationId(self.next_correlation);
        self.next_correlation += 1;
        c
    }

    /// Every unconfirmed request, to `broker`.
    fn send_all(&mut self, broker: NodeId, sends: &mut Vec<(Peer, Message)>) {
        self.inflight.clear();
        let labels: Vec<String> = self.unconfirmed.keys().cloned().collect();
        for label in labels {
            let correlation = self.correlation();
            let body = self.unconfirmed[&label].clone();
            self.inflight.insert(correlation, label);
            sends.push((Peer::Node(broker), Message::Request(Request { correlation, body })));
        }
    }
}

enum Role {
    Admin(Box<Admin>),
    Producer {
        p: Box<Producer>,
        ops: BTreeMap<SendId, u64>,
    },
    Consumer(Box<Consumer>),
    Member(Box<Member>),
    /// A crashed or replaced group member's slot: late answers to it are dropped.
    Gone,
    /// An adversarial client (auth seeds).
    Adversary(Box<Adversary>),
    /// A consumer of the final read-back (`readback.rs`).
    Reader(Box<Consumer>),
}

struct ClientSlot {
    id: ClientId,
    role: Role,
    timer: Option<Instant>,
    timer_generation: u64,
    /// Honest clients of an auth seed start once their principals and grants
    /// exist on every live broker (else their first login could meet a broker
    /// that does not know them yet and fail for good).
    started: bool,
}

/// A partition a controlled shutdown must hand to another broker within the
/// election bound (`shutdown_leader_bound`).
struct Watch {
    tp: TopicPartition,
    /// The stopping broker (slot index) and its incarnation.
    node: usize,
    incarnation: u64,
    since: Instant,
    deadline: Instant,
}

/// One run of one seed.
pub struct Sim {
    cfg: SimConfig,
    opts: Options,
    now: Instant,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    nodes: Vec<NodeSlot>,
    clients: Vec<ClientSlot>,
    net: Network,
    /// One stream per node's disk (fsync times, crash damage), so that a node
    /// fewer in a shrunk schedule leaves the others' disks as they were.
    rng_disk: Vec<Rng>,
    rng_workload: Rng,
    rng_faults: Rng,
    /// Aimed faults (drawn from their own stream so that they leave the random
    /// fault schedule of a seed as it was).
    rng_aimed: Rng,
    /// Group members' behaviour and member faults (own stream: seeds without
    /// groups run as before).
    rng_members: Rng,
    /// Members' seeks (`GroupOptions::seek_prob`): a stream of their own, so
    /// that a seed's members behave as they did before seeks existed until
    /// their first seek.
    rng_seeks: Rng,
    /// The consumer-group checker.
    pub groups: GroupChecker,
    figure8: Figure8,
    /// Aimed faults at protocol moments (`sim/aimed.rs`).
    aimed: aimed::Aimed,
    topics: Vec<TopicPartition>,
    cut_id: u64,
    liveness_start: Option<Instant>,
    produce_until: Instant,
    acked_since_heal: u64,
    acked_all_since_heal: u64,
    done: bool,
    scratch: Vec<Output>,
    /// Counters of what was injected and reached.
    pub counters: Counters,
    /// Every client operation.
    pub history: History,
    /// The checker.
    pub checker: Checker,
    /// The trace.
    pub trace: Trace,
    /// Events processed.
    pub events: u64,
    node_inputs: u64,
    /// Controlled shutdowns' node choice in the liveness phase.
    rng_shutdown: Rng,
    /// Auth seeds: the admin confirmed every principal and grant, and every live
    /// broker applied them (always true without auth).
    drain: Drain,
    security_ready: bool,
    /// When `security_ready` became true.
    pub security_ready_at: Option<Instant>,
    /// Proofs the intruder sent in its own logins (the anonymous client replays
    /// them).
    recorded_proofs: Vec<[u8; mq_core::security::KEY_BYTES]>,
    /// Member ids the coordinators gave honest group members.
    honest_members: BTreeSet<(String, mq_core::MemberId)>,
    /// Partitions a controlled shutdown is moving away.
    watches: Vec<Watch>,
    /// The last time a fault (other than a watched shutdown) was injected.
    disturbed_at: Instant,
    /// Every fault applied, as a schedule replays it.
    pub fault_log: Vec<Timed>,
    /// Coverage marks of node incarnations that ended (crash or stop), so that a
    /// restart does not lose them; [`Sim::coverage`] adds the live nodes'.
    ended_coverage: Coverage,
    /// The final read-back, once it began.
    readback: Option<readback::Readback>,
    /// Where each read partition's committed data ended when the read-back
    /// began: `group_completion` judges the records below.
    drained_ends: Option<BTreeMap<TopicPartition, Offset>>,
}

/// Most events one seed may take before it counts as stuck.
pub const EVENT_BUDGET: u64 = 50_000_000;

/// Most seconds a run goes on past its planned end while a group still acks or a
/// consumer still reads ([`Sim::drain_longer`]). Progress is bounded by the
/// records to read, so the drain ends; the bound only keeps a pathologically slow
/// configuration from running for ever (seed 2010: a consumer fetching 29 bytes
/// at a time needed 91 s for its last 40,000 records).
const MAX_DRAIN_EXTENSION_S: u32 = 600;

/// Most seconds in a row the drain goes on only because records are handed out
/// or replicas' logs grow, without acks confirmed or consumers reading.
const MAX_WEAK_DRAIN_S: u32 = 30;

/// How many failed retries in a row of a member's ack (each a retry backoff and
/// a request timeout) the drain waits through without strong progress.
const DRAIN_RETRIES: u64 = 3;

/// The drain past the planned end: extensions so far, and the group acks and
/// consumer positions counted at the last look.
#[derive(Default)]
struct Drain {
    extensions: u32,
    acks: u64,
    /// Records handed to members (a delivery whose ack is still to come, or
    /// whose lease will expire into a redelivery, is progress too).
    deliveries: u64,
    /// The sum of every live replica's log end (followers still catching up).
    replicated: u64,
    /// The sum over partitions of how far the furthest-behind live replica
    /// trails the furthest-ahead one.
    replica_lag: u64,
    /// Seconds in a row extended on deliveries or replication alone.
    weak_run: u32,
    /// Drain checks since the last strong progress (acks confirmed, a consumer
    /// reading, a follower closing its gap).
    since_strong: u32,
    /// The sum of the plain consumers' positions.
    positions: u64,
}

/// Most timeouts a node may take at one simulated instant (`timer_progress`): a
/// `poll_timeout` that stays at or before now after `handle(Timeout)` is a busy
/// loop, found here at once instead of after the whole event budget.
const MAX_TIMEOUTS_AT_ONE_INSTANT: u32 = 1_000;

impl Sim {
    /// Builds the cluster, the clients and the first events of `cfg.seed`.
    pub fn new(cfg: SimConfig) -> Sim {
        let seed = cfg.seed;
        let opts = cfg.options();
        let mut rng_clock = Seed(seed).stream("clock");
        let nodes = (1..=opts.cluster_size)
            .map(|id| {
                let config = opts.knobs.node_config(&opts, id);
                config.validate().expect("the simulator builds valid node settings");
                let config = NodeConfig {
                    auth: opts.auth.then(|| AuthConfig {
                        admin_app_key: ADMIN_APP_KEY.to_string(),
                        admin_credential: adversary::credential_of(seed, ADMIN_APP_KEY),
                    }),
                    buggify: opts.buggify.then(|| Seed(seed).child("buggify", u64::from(id)).0),
                    ..config
                };
                let max = i64::from(opts.drift_max_ppm);
                NodeSlot {
                    id: NodeId(id),
                    config,
                    seed: Seed(seed).child("node", u64::from(id)).0,
                    node: None,
                    incarnation: 0,
                    disk: Disk::new(&opts),
                    clock: Clock::new(rng_clock.random_range(-max..=max)),
                    steps: Vec::new(),
                    paused_until: Instant::ZERO,
                    timer: None,
                    timer_generation: 0,
                    commit_checked: 0,
                    timeouts_at: (Instant::ZERO, 0),
                    raft_leader_term: None,
                    inputs: 0,
                    next_check: 0,
                    stopping: None,
                }
            })
            .collect();
        let mut topics = Vec::new();
        let mut configs = BTreeMap::new();
        for t in 0..opts.topics {
            let name = format!("t{t}");
            let mut tc = TopicConfig::new(name.clone(), opts.partitions);
            tc.replication_factor = opts.replication_factor;
            tc.min_insync_replicas = opts.min_insync_replicas;
            tc.unclean_leader_election = opts.unclean_leader_election;
            tc.retention_bytes = opts.retention_bytes;
            tc.retention_time = opts.retention_ms.map(Duration::from_millis);
            for p in 0..opts.partitions {
                topics.push(TopicPartition::new(name.clone(), p));
            }
            configs.insert(format!("topic {name}"), RequestBody::CreateTopic(tc));
        }
        let timeout = Duration::from_millis(opts.request_timeout_ms);
        let brokers: Vec<NodeId> = (1..=opts.cluster_size).map(NodeId).collect();
        let topic_names: Vec<String> = (0..opts.topics).map(|t| format!("t{t}")).collect();
        let group_names: Vec<String> = (0..opts.groups.len()).map(group_name).collect();
        let consumed: Vec<TopicPartition> =
            topics.iter().filter(|tp| opts.consumer_per_partition || tp.partition == PartitionId(0)).cloned().collect();
        let rules = opts.auth.then(|| {
            let mut rules = adversary::honest_rules(opts.producers, &consumed, &group_names, &topic_names);
            crate::acl_mix::add_mixed(seed, &mut rules, &topic_names);
            rules
        });
        if let Some(rules) = &rules {
            configs.extend(adversary::setup_requests(seed, rules));
        }
        let creds = |key: String| opts.auth.then(|| adversary::credentials(seed, &key));
        let mut clients = vec![Role::Admin(Box::new(Admin {
            next_broker: 0,
            unconfirmed: configs,
            inflight: BTreeMap::new(),
            next_correlation: 1,
            next_attempt: Instant::ZERO,
            auth: ClientAuth::new(creds(ADMIN_APP_KEY.to_string())),
            auth_rng: Seed(seed).stream("admin-auth"),
        }))];
        for i in 0..opts.producers {
            let config = ProducerConfig {
                brokers: brokers.clone(),
                credentials: creds(adversary::producer_key(i)),
                ..opts.knobs.producer_config(&opts)
            };
            let seed = Seed(seed).child("producer", u64::from(i)).0;
            let p = Producer::new(config, seed).expect("the simulator draws valid producer settings");
            clients.push(Role::Producer { p: Box::new(p), ops: BTreeMap::new() });
        }
        let mut consumers = 0;
        for (i, tp) in topics.iter().enumerate() {
            if opts.consumer_per_partition || tp.partition == PartitionId(0) {
                let mut config = ConsumerConfig::new(tp.clone());
                config.brokers = brokers.clone();
                config.request_timeout = timeout;
                config.max_bytes = opts.knobs.consumer_max_bytes;
                config.poll_interval = Duration::from_millis(opts.knobs.consumer_poll_interval_ms);
                config.credentials = creds(adversary::consumer_key(tp));
                let seed = Seed(seed).child("consumer", i as u64).0;
                // A silenced consumer keeps its slot, so later clients keep their ids.
                let silent = opts.silent_consumers.contains(&(consumers as u32));
                consumers += 1;
                clients.push(if silent { Role::Gone } else { Role::Consumer(Box::new(Consumer::new(config, seed))) });
            }
        }
        let mut group_checker = GroupChecker::default();
        for (g, go) in opts.groups.iter().enumerate() {
            let spec = GroupSpec {
                mode: go.mode,
                settings: group_settings(go),
                topics: topic_names.iter().cloned().collect(),
            };
            group_checker.add_group(&group_name(g), spec);
            for m in 0..go.members as usize {
                let member = Member::new(seed, &opts, g, m, 0);
                clients.push(Role::Member(Box::new(member)));
            }
        }
        if opts.auth {
            // Last, so every honest client keeps its id.
            for kind in [AdversaryKind::Anonymous, AdversaryKind::Intruder] {
                let silent = opts.silent_adversaries;
                clients.push(if silent { Role::Gone } else { Role::Adversary(Box::new(Adversary::new(seed, kind))) });
            }
            let grants = rules.as_ref().map(crate::acl_mix::grants_of).unwrap_or_default();
            let silent = opts.silent_adversaries;
            clients.push(if silent { Role::Gone } else { Role::Adversary(Box::new(Adversary::mixed(seed, grants))) });
        }
        let clients = clients
            .into_iter()
            .enumerate()
            .map(|(i, role)| {
                // Without auth everyone starts at once; with it, the admin only.
                let started = !opts.auth || i == 0;
                ClientSlot { id: ClientId(i as u64 + 1), role, timer: None, timer_generation: 0, started }
            })
            .collect();
        let safety_end = Instant::ZERO + Duration::from_millis(opts.safety_ms);
        let end = safety_end + Duration::from_millis(opts.liveness_ms);
        let settings = CheckerSettings {
            cluster_size: opts.cluster_size,
            replication_factor: opts.replication_factor,
            min_insync_replicas: opts.min_insync_replicas,
            unclean_leader_election: opts.unclean_leader_election,
        };
        let security_ready = !opts.auth;
        let mut sim = Sim {
            net: Network::new(seed, &opts),
            rng_disk: (0..opts.cluster_size).map(|n| Seed(seed).indexed_stream("disk", u64::from(n))).collect(),
            rng_workload: Seed(seed).stream("workload"),
            rng_faults: Seed(seed).stream("faults"),
            rng_aimed: Seed(seed).stream("aimed"),
            rng_members: Seed(seed).stream("members"),
            rng_seeks: Seed(seed).stream("member-seeks"),
            groups: group_checker,
            figure8: if opts.figure8 { Figure8::First } else { Figure8::Off },
            aimed: aimed::Aimed::new(seed),
            // Producers stop well before the end so consumers can catch up, and late
            // enough that a healed cluster (elections, registration) has time to commit.
            produce_until: safety_end + Duration::from_millis(opts.liveness_ms * 6 / 10),
            trace: Trace::new(cfg.keep_trace),
            cfg,
            opts,
            now: Instant::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            clients,
            topics,
            cut_id: 0,
            liveness_start: None,
            acked_since_heal: 0,
            acked_all_since_heal: 0,
            done: false,
            scratch: Vec::new(),
            counters: Counters::default(),
            history: History::default(),
            checker: {
                let mut checker = Checker::new(&settings);
                checker.auth = rules;
                checker
            },
            events: 0,
            node_inputs: 0,
            rng_shutdown: Seed(seed).stream("shutdown"),
            security_ready,
            security_ready_at: None,
            drain: Drain::default(),
            recorded_proofs: Vec::new(),
            honest_members: BTreeSet::new(),
            watches: Vec::new(),
            disturbed_at: Instant::ZERO,
            fault_log: Vec::new(),
            ended_coverage: Coverage::default(),
            readback: None,
            drained_ends: None,
        };
        for n in 0..sim.nodes.len() {
            let slot = &mut sim.nodes[n];
            slot.node = Some(Node::new(slot.config.clone(), slot.seed));
            sim.schedule_node_timer(n);
        }
        for c in 0..sim.clients.len() {
            // Auth seeds: a producer starts ticking once its principal exists
            // (`security_ready`), not before, where every tick would be idle.
            if matches!(sim.clients[c].role, Role::Producer { .. }) && sim.clients[c].started {
                sim.schedule_produce_tick(c);
            }
            sim.schedule_client_timer(c);
        }
        match sim.cfg.schedule.clone() {
            Some(schedule) if !schedule.random_faults => {
                for (index, t) in schedule.faults.iter().enumerate() {
                    sim.push(Instant::ZERO + Duration::from_nanos(t.at_ns), Ev::Scheduled { index });
                }
            }
            _ if sim.fault_weight_total() > 0 => {
                let first = sim.fault_gap();
                sim.push(first, Ev::Fault);
            }
            _ => {}
        }
        if sim.opts.w_shutdown > 0 {
            // Once the cluster is healed and quiet, under load: the election bound
            // is checked strictly there.
            let at = safety_end + Duration::from_millis(sim.opts.liveness_ms / 4);
            sim.push(at, Ev::QuietShutdown);
        }
        sim.push(safety_end, Ev::Liveness);
        sim.push(end, Ev::End);
        sim
    }

    /// The drawn options.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Simulated time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Runs until the end of the liveness phase or the first violation.
    pub fn run(&mut self) {
        while !self.done {
            let Some(s) = self.queue.pop() else { break };
            self.now = self.now.max(s.at);
            self.events += 1;
            let (kind, lines) = (s.ev.name(), self.trace.count());
            self.step(s.ev);
            if self.trace.count() == lines {
                // Stale timers, completions of a crashed incarnation and the like
                // change nothing, but still get their line: one per event.
                self.trace.event(self.now, Actor::Sim, kind, 0, 0, || "no effect".into());
            }
            if self.checker.violation().is_some() {
                break;
            }
            if self.events >= self.cfg.event_budget {
                let budget = self.cfg.event_budget;
                self.checker.fail_liveness("event_budget", format!("{budget} events without reaching the end"));
                break;
            }
        }
        self.counters.records_acked = self.checker.records_acked;
        self.counters.records_acked_all = self.checker.records_acked_all;
        self.counters.unclean_elections = self.checker.unclean_elections;
        self.counters.records_exempt_unclean = self.checker.records_exempt_unclean;
        for c in &self.clients {
            match &c.role {
                Role::Producer { p, .. } => self.counters.retries += p.retries(),
                Role::Consumer(consumer) => self.counters.consumer_leader_changes += consumer.leader_changes(),
                Role::Admin(_) | Role::Member(_) | Role::Gone | Role::Adversary(_) | Role::Reader(_) => {}
            }
        }
        self.counters.records_read = self.checker.records_read;
        self.counters.records_committed = self.checker.committed();
        self.counters.duplicates_non_idempotent = self.checker.duplicates_non_idempotent();
        self.counters.group_deliveries = self.groups.deliveries;
        self.counters.group_redeliveries = self.groups.redeliveries;
        self.counters.group_acks_confirmed = self.groups.acks_confirmed;
        self.counters.group_dead_letters = self.groups.dead_letters;
    }

    fn push(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        self.queue.push(Scheduled { at, seq: self.seq, ev });
    }

    fn step(&mut self, ev: Ev) {
        let now = self.now;
        match ev {
            Ev::Deliver { from, to, msg } => {
                if !self.net.arrive(from, to) {
                    self.counters.dropped_partition += 1;
                    self.trace.event(now, actor(to), "drop-cut", peer_code(from), corr_of(&msg), || {
                        format!("from {from} {} (cut while in flight)", summary(&msg))
                    });
                    return;
                }
                let down = matches!(to, Peer::Node(id) if self.nodes[id.0 as usize - 1].node.is_none());
                let kind = if down { "drop-down" } else { "recv" };
                self.trace.event(now, actor(to), kind, peer_code(from), corr_of(&msg), || {
                    format!("from {from} {}", summary(&msg))
                });
                match to {
                    Peer::Node(id) => self.node_input(id.0 as usize - 1, Input::Message { from, msg: *msg }),
                    Peer::Client(c) => self.client_input(c.0 as usize - 1, Some(Input::Message { from, msg: *msg })),
                }
            }
            Ev::NodeInput { node, incarnation, input } => {
                if self.nodes[node].incarnation == incarnation {
                    self.trace.event(now, Actor::Node(node as u32 + 1), "resume-input", 0, 0, String::new);
                    self.node_input(node, *input);
                }
            }
            Ev::PersistDone { node, incarnation, token, apply, notify } => {
                let slot = &mut self.nodes[node];
                if slot.incarnation != incarnation {
                    return; // the node crashed meanwhile; the disk dropped these writes
                }
                if now < slot.disk.hold_until {
                    // A stalled disk (`Fault::DiskStall`): the completion waits,
                    // behind those that waited before it.
                    let at = slot.disk.hold_until;
                    self.push(at, Ev::PersistDone { node, incarnation, token, apply, notify });
                    return;
                }
                if apply {
                    slot.disk.complete(token);
                }
                self.trace.event(now, Actor::Node(slot.id.0), "fsync-done", token.0, u64::from(apply), || {
                    format!("token {} durable={apply} notify={notify}", token.0)
                });
                if notify {
                    self.node_input(node, Input::Persisted { token });
                }
            }
            Ev::NodeTimer { node, generation } => {
                let slot = &mut self.nodes[node];
                if slot.timer_generation != generation || slot.node.is_none() {
                    return;
                }
                let Some(deadline) = slot.timer else { return };
                slot.timer = None;
                if slot.clock.local(now) >= deadline {
                    slot.timeouts_at = match slot.timeouts_at {
                        (at, n) if at == now => (at, n + 1),
                        _ => (now, 1),
                    };
                    if slot.timeouts_at.1 > MAX_TIMEOUTS_AT_ONE_INSTANT {
                        let what = format!(
                            "n{} took {} timeouts at {:?} and asks for another: a deadline it does not act on",
                            slot.id.0, slot.timeouts_at.1, now
                        );
                        self.checker.fail_liveness("timer_progress", what);
                        return;
                    }
                    self.trace.event(now, Actor::Node(slot.id.0), "timeout", 0, 0, String::new);
                    self.node_input(node, Input::Timeout);
                } else {
                    self.trace.event(now, Actor::Node(slot.id.0), "timer-early", 0, 0, String::new);
                    self.schedule_node_timer(node);
                }
            }
            Ev::ClientTimer { client, generation } => {
                let slot = &mut self.clients[client];
                if slot.timer_generation != generation {
                    return;
                }
                slot.timer = None;
                self.trace.event(now, Actor::Client(slot.id.0), "timeout", 0, 0, String::new);
                self.client_input(client, Some(Input::Timeout));
            }
            Ev::ProduceTick { client } => self.produce_tick(client),
            Ev::MemberTick { client, incarnation } => self.member_tick(client, incarnation),
            Ev::Fault => self.fault(),
            Ev::Aimed { fault } => {
                if self.liveness_start.is_none() {
                    self.disturbed_at = now;
                    self.apply_fault(*fault);
                }
            }
            Ev::Scheduled { index } => {
                let schedule = self.cfg.schedule.clone().expect("scheduled faults come from a schedule");
                let fault = schedule.faults[index].fault.clone();
                let fits = fault.fits(self.nodes.len(), self.clients.len());
                if self.liveness_start.is_none() && fits {
                    self.disturbed_at = now;
                    self.apply_fault(fault);
                }
            }
            Ev::Restart { node, incarnation } => {
                if self.nodes[node].incarnation == incarnation && self.nodes[node].node.is_none() {
                    self.restart(node);
                }
            }
            Ev::Crash { node, incarnation } => {
                let live = self.nodes[node].incarnation == incarnation && self.nodes[node].node.is_some();
                if live && self.liveness_start.is_none() {
                    self.counters.new_controller_crashes += 1;
                    self.crash_drawn(node);
                }
            }
            Ev::HealCut { id } => {
                if id == self.cut_id && self.net.cut.is_some() {
                    self.net.cut = None;
                    self.trace.event(now, Actor::Sim, "heal-cut", id, 0, String::new);
                }
            }
            Ev::AdversaryTick { client } => self.adversary_tick(client),
            Ev::Zombie(z) => self.zombie_request(*z),
            Ev::ShutdownDeadline { node, incarnation } => {
                let slot = &self.nodes[node];
                if slot.incarnation == incarnation && slot.node.is_some() && slot.stopping.is_some() {
                    // Not done within its bound: stop it anyway, like a crash.
                    self.counters.shutdowns_forced += 1;
                    self.crash_drawn(node);
                }
            }
            Ev::LeaderWatch => self.check_watches(true),
            Ev::QuietShutdown => {
                let live: Vec<usize> = (0..self.nodes.len())
                    .filter(|n| {
                        self.nodes[*n].node.as_ref().is_some_and(Node::is_ready) && self.nodes[*n].stopping.is_none()
                    })
                    .collect();
                if !live.is_empty() {
                    let n = live[self.rng_shutdown.random_range(0..live.len())];
                    self.begin_shutdown(n);
                }
            }
            Ev::Liveness => self.start_liveness(),
            Ev::End => {
                if (self.readback.is_some() || !self.drain_longer()) && !self.readback_pending() {
                    self.finish();
                }
            }
        }
    }

    /// At the planned end: when a group has not acked everything yet, a plain
    /// consumer has not read to the end of its partition's committed data, or no
    /// acks=all produce succeeded since the heal (`liveness_progress`), but
    /// either made progress in the last second (more confirmed group acks, or a
    /// consumer's position moved on), the run goes on for another second (at most
    /// [`MAX_DRAIN_EXTENSION_S`] in all), so a slow but working consumer is not
    /// taken for a stuck one (`group_completion`, `liveness_consumers_caught_up`;
    /// docs/invariants.md).
    fn drain_longer(&mut self) -> bool {
        if self.drain.extensions >= MAX_DRAIN_EXTENSION_S {
            return false;
        }
        let acks = self.groups.acks_confirmed;
        let deliveries = self.groups.deliveries;
        let positions: u64 = self.consumer_positions().map(|(_, _, p)| p.0).sum();
        // Deliveries count as progress: records handed out in the last second
        // are acked, or redelivered when their leases expire, after it (seed
        // 1000567: seven records committed late were handed to a member whose
        // client had already replaced that subscription, 0.6 s before the end).
        // So do followers catching up: a group's acks of a min_isr = rf
        // partition commit only once they are back in the ISR (seed 1001421:
        // followers fetching one batch at a time trailed the producers by
        // thousands of records and were still closing the gap at the end).
        let mut replicated = 0;
        let mut ends: BTreeMap<&TopicPartition, (u64, u64)> = BTreeMap::new();
        for l in self.nodes.iter().filter_map(|s| s.node.as_ref()).flat_map(|n| n.logs()) {
            let end = l.log_end().0;
            replicated += end;
            let e = ends.entry(l.tp()).or_insert((u64::MAX, 0));
            *e = (e.0.min(end), e.1.max(end));
        }
        let replica_lag: u64 = ends.values().map(|(lo, hi)| hi - lo).sum();
        // Those two are weaker signs than acks and reads (a group stuck
        // redelivering, or dead letters written again and again, show them
        // too): at most [`MAX_WEAK_DRAIN_S`] seconds in a row on them alone.
        // A follower closing its gap to the leader is a strong sign, though:
        // the gap cannot shrink for ever (seed 1004328: after a rolling
        // restart in the liveness phase, a follower fetching one batch per
        // round trip needed 55 s to come back into a min_isr = rf ISR, and
        // the group's acks committed only then).
        let closing = replica_lag < self.drain.replica_lag;
        let strong = acks > self.drain.acks || positions > self.drain.positions || closing;
        let weak = deliveries > self.drain.deliveries || replicated > self.drain.replicated;
        self.drain.weak_run = if strong { 0 } else { self.drain.weak_run + u32::from(weak) };
        // A member that was answered `Timeout` on an ack waits its retry
        // backoff (up to 2 s drawn) before it acks again, so a working group may
        // confirm nothing for a second or two (seed 1200023: a 12 ms produce
        // timeout failed every third cursor append, and each failure cost the
        // member 1 to 2 s). Strong progress within three such retries (a
        // backoff and a request timeout each) still counts: one retry's worth
        // let two failures in a row end the drain of a group still acking
        // (seed 1200023 again at 569bfa0, whose client change moved the run).
        self.drain.since_strong = if strong { 0 } else { self.drain.since_strong + 1 };
        let patience_s = (DRAIN_RETRIES * (self.opts.knobs.member_retry_backoff_max_ms + self.opts.request_timeout_ms))
            .div_ceil(1_000);
        let recent = u64::from(self.drain.since_strong) <= patience_s;
        let progressed = strong || recent || (weak && self.drain.weak_run <= MAX_WEAK_DRAIN_S);
        self.drain.acks = acks;
        self.drain.deliveries = deliveries;
        self.drain.replicated = replicated;
        self.drain.replica_lag = replica_lag;
        self.drain.positions = positions;
        let group_incomplete = !self.opts.groups.is_empty()
            && self.topics.iter().any(|tp| !self.checker.is_lossy(tp) && self.completion(tp).is_some());
        let consumer_behind = self.consumer_positions().any(|(_, tp, p)| p < self.consumer_target(tp));
        // No acks=all produce has succeeded since the heal: the producers have
        // stopped and probe (`produce_tick`), and a follower still copying the
        // backlog of acks=1 writes one batch per round trip is what they wait
        // for (seed 1200958: min_isr = rf = 2, 56-byte replica fetches, a
        // backlog longer than the 12 s of probes).
        let acks_all_pending = self.acked_all_since_heal == 0;
        // A live replica out of its partition's ISR is still copying what it
        // missed (`liveness_replicas_in_sync`), one batch per round trip maybe.
        let under_replicated = !self.under_replicated().is_empty();
        if !((group_incomplete || consumer_behind || acks_all_pending || under_replicated) && progressed) {
            return false;
        }
        self.drain.extensions += 1;
        let now = self.now;
        self.trace.event(now, Actor::Sim, "drain", 0, 0, || {
            "a group is still acking or a consumer still reading: the run goes on 1 s".into()
        });
        self.push(now + Duration::from_secs(1), Ev::End);
        true
    }

    /// Partitions with a live replica out of the committed ISR that has not
    /// been in it since the middle of the liveness phase
    /// (`liveness_replicas_in_sync`): half the phase is time enough to come
    /// back after the heal, and a replica in the ISR since then only flaps.
    fn under_replicated(&self) -> Vec<(TopicPartition, Vec<NodeId>)> {
        let Some(start) = self.liveness_start else { return Vec::new() };
        self.checker.under_replicated(start + Duration::from_millis(self.opts.liveness_ms / 2))
    }

    /// Every plain consumer of the workload: (client id, partition, position).
    fn consumer_positions(&self) -> impl Iterator<Item = (ClientId, &TopicPartition, Offset)> + '_ {
        self.clients.iter().filter_map(|c| match &c.role {
            Role::Consumer(consumer) => Some((c.id, &consumer.config().tp, consumer.position())),
            _ => None,
        })
    }

    /// Where a plain consumer of `tp` has read everything: the end of the
    /// committed data in the checker's model, or, on a partition an unclean
    /// election may have shortened (the model no longer the log's), the end of
    /// the data below the high watermark of its newest live leader.
    fn consumer_target(&self, tp: &TopicPartition) -> Offset {
        if !self.checker.is_lossy(tp) {
            return self.checker.data_end(tp);
        }
        let leader = self
            .nodes
            .iter()
            .filter_map(|s| s.node.as_ref()?.replica(tp).filter(|r| r.is_leader()).map(|r| (r.leader_epoch, &r.log)))
            .max_by_key(|(e, _)| *e);
        let Some((_, log)) = leader else { return Offset(0) };
        let hw = log.high_watermark();
        // From the newest batch back: called on every drain poll.
        log.batches()
            .rev()
            .find(|b| b.kind == mq_core::wire::BatchKind::Data && b.base_offset < hw && !b.records.is_empty())
            .map_or(Offset(0), |b| b.end_offset().min(hw))
    }

    /// What a plain consumer of `tp` must have read by the end: its target,
    /// but of records committed after the drain ended (the read-back began)
    /// none, as for groups (`Sim::completion`): no consumer had the time to
    /// read them (seed 1100704: followers copying one batch per round trip
    /// committed a backlog of acks=1 records long after the producers stopped,
    /// 19 of them in the 0.1 s of the read-back, just after the consumer had
    /// read everything committed before).
    fn judged_consumer_target(&self, tp: &TopicPartition) -> Offset {
        let target = self.consumer_target(tp);
        let drained = self.drained_ends.as_ref().and_then(|ends| ends.get(tp).copied());
        match drained {
            Some(end) if !self.checker.is_lossy(tp) => target.min(end),
            _ => target,
        }
    }

    /// The highest log start of `tp` among the live nodes.
    fn max_log_start(&self, tp: &TopicPartition) -> Offset {
        max_log_start(&self.nodes, tp)
    }

    /// `group_completion` on `tp` now.
    fn completion(&self, tp: &TopicPartition) -> Option<crate::groups::GroupViolation> {
        // Records that committed only after the drain ended (the read-back
        // began) are not judged: no member had the time to ack them (seed
        // 1000567: seven records of a min_isr = rf partition committed 0.4 s
        // after the drain's last second and were handed out, and their leases
        // ran past the end).
        let end = self.drained_ends.as_ref().and_then(|ends| ends.get(tp).copied());
        let records = self.checker.committed_records(tp).filter(move |(o, _)| end.is_none_or(|e| *o < e));
        self.groups.check_completion(tp, self.max_log_start(tp), records, self.checker.committed_cursors(tp))
    }

    /// `input` reaches a node: if it is a group member's ack (an honest member's,
    /// or a zombie's late one; not an adversary's) or seek, the group checker
    /// notes what the member asked for.
    fn note_ack_asked(&mut self, input: &Input) {
        let Input::Message { from: Peer::Client(c), msg: Message::Request(Request { body, .. }) } = input else {
            return;
        };
        if matches!(self.clients.get(c.0 as usize - 1).map(|s| &s.role), Some(Role::Adversary(_))) {
            return;
        }
        match body {
            RequestBody::GroupAck(a) => self.groups.on_ack_asked(&a.group, &a.tp, &a.acks, a.up_to),
            RequestBody::GroupSeek(s) => {
                let to = match s.to {
                    SeekTo::Offset(o) => Some(o),
                    _ => None,
                };
                self.groups.on_seek_asked(&s.group, &s.tp, to);
            }
            _ => {}
        }
    }

    // ----- nodes -----

    fn node_input(&mut self, n: usize, input: Input) {
        let now = self.now;
        // A produce of an adversarial client: whatever the answer, its records
        // must never reach the log (auth_not_bypassed).
        let hostile_produce = match &input {
            Input::Message {
                from: Peer::Client(c),
                msg: Message::Request(Request { body: RequestBody::Produce { topic, partition, .. }, .. }),
            } if matches!(self.clients.get(c.0 as usize - 1).map(|s| &s.role), Some(Role::Adversary(_))) => {
                Some(TopicPartition { topic: topic.clone(), partition: *partition })
            }
            _ => None,
        };
        self.note_ack_asked(&input);
        let slot = &mut self.nodes[n];
        if slot.node.is_none() {
            self.counters.dropped_down += 1;
            return;
        }
        if slot.paused_until > now {
            let (at, incarnation) = (slot.paused_until, slot.incarnation);
            self.push(at, Ev::NodeInput { node: n, incarnation, input: Box::new(input) });
            return;
        }
        let local = slot.clock.local(now);
        let Some(node) = slot.node.as_mut() else { return };
        // An acks=all produce: note the log end, to see whether the node appended it
        // and with which ISR (min_isr_respected).
        let acks_all = match &input {
            Input::Message {
                msg:
                    Message::Request(Request {
                        body: RequestBody::Produce { topic, partition, acks: Acks::All, batch },
                        ..
                    }),
                ..
            } => {
                let tp = TopicPartition { topic: topic.clone(), partition: *partition };
                let first: Option<Bytes> = batch.iter_with_offsets().next().map(|(_, r)| r.value.clone());
                let end = node.log(&tp).map(|l| l.log_end());
                first.map(|f| (tp, f, end))
            }
            _ => None,
        };
        if let Input::Message {
            msg: Message::Request(Request { body: RequestBody::Produce { topic, partition, batch, .. }, .. }),
            ..
        } = &input
        {
            // Coverage: a retry the leader recognises as appended already.
            let tp = TopicPartition { topic: topic.clone(), partition: *partition };
            if let (Some(stamp), Some(r)) = (batch.producer, node.replica(&tp)) {
                let check = r.producers.check(&stamp, batch.len());
                if r.is_leader() && matches!(check, SequenceCheck::Duplicate { .. }) {
                    self.counters.deduplicated_batches += 1;
                }
            }
        }
        let hostile_end = hostile_produce.map(|tp| {
            let end = node.log(&tp).map(|l| l.log_end());
            (tp, end)
        });
        let replica_data = aimed::carries_replica_data(&input);
        let raft_ack = figure8::append_ack(&input);
        let persists = self.counters.persists;
        let cursor_probe = zombie::CursorProbe::before(node, &input);
        node.handle(local, input);
        self.node_inputs += 1;
        if let Some(what) = cursor_probe.and_then(|p| p.judge(node)) {
            self.checker.fail("ack_owner", what);
        }
        if let Some((tp, before)) = hostile_end {
            let appended = node.log(&tp).and_then(|log| {
                let from = before.unwrap_or(Offset(0));
                log.batches_from(from)
                    .flat_map(|b| b.iter_with_offsets().map(|(o, r)| (o, r.value.clone())).collect::<Vec<_>>())
                    .find(|(o, v)| *o >= from && crate::history::is_adversarial(v))
            });
            if let Some((_, value)) = appended {
                self.checker.on_adversarial_append(slot.id, &tp, &value);
            }
        }
        if let Some((tp, first, Some(end))) = acks_all {
            if let (Some(log), Some(r)) = (node.log(&tp), node.replica(&tp)) {
                if log.log_end() > end && r.is_leader() {
                    self.checker.on_acks_all_append(&first, r.isr.len());
                }
            }
        }
        self.checker.set_now(self.now);
        self.checker.on_metadata(slot.id, node.raft());
        self.check_commit_protected(n);
        let every = self.cfg.node_invariants_every;
        let slot = &mut self.nodes[n];
        let Some(node) = slot.node.as_mut() else { return };
        slot.inputs += 1;
        if every > 0 && slot.inputs >= slot.next_check {
            node.check_invariants();
            // As often as asked while the logs are short; then about eight batch
            // visits per input (the full check walks every batch).
            slot.next_check = slot.inputs + every.max(mq_core::node::full_check_spacing(node.batch_count()));
        }
        self.drain_outputs(n);
        if let Some((leader, tp)) = replica_data {
            self.aimed_after_replica_data(n, leader, &tp, self.counters.persists > persists);
        }
        self.on_raft_leadership(n);
        self.figure8_watch(n, raft_ack);
        self.schedule_node_timer(n);
        self.after_node_step(n);
        if !self.security_ready {
            self.check_security_ready();
        }
    }

    /// Runs the aimed faults when node `n` has just won a Raft election: its
    /// `LeaderChange` entry and the appends carrying it are in flight, not yet
    /// durable anywhere but maybe on it (the `ControllerLeader` event comes later,
    /// once that entry is committed).
    fn on_raft_leadership(&mut self, n: usize) {
        let Some(node) = self.nodes[n].node.as_ref() else { return };
        let raft = node.raft();
        if raft.role() != mq_core::controller::raft::RaftRole::Leader
            || self.nodes[n].raft_leader_term == Some(raft.term())
        {
            return;
        }
        self.nodes[n].raft_leader_term = Some(raft.term());
        self.maybe_crash_new_controller(n);
        self.figure8_step(n);
    }

    fn node_output(&mut self, n: usize, out: Output) {
        let now = self.now;
        let id = self.nodes[n].id;
        match out {
            Output::Send { to, msg } => {
                self.aimed_on_send(n, to, &msg);
                self.send(Peer::Node(id), to, msg)
            }
            Output::Persist { token, writes } => {
                self.counters.persists += 1;
                let slot = &mut self.nodes[n];
                let incarnation = slot.incarnation;
                let (done, slow) = slot.disk.submit(now, token, writes, &mut self.rng_disk[n]);
                self.counters.slow_fsyncs += u64::from(slow);
                match self.cfg.mutation {
                    Mutation::None | Mutation::Panic | Mutation::DuplicateRequests => {
                        self.push(done, Ev::PersistDone { node: n, incarnation, token, apply: true, notify: true })
                    }
                    Mutation::LyingDisk => {
                        // The bug under test: "durable" before the fsync finished.
                        self.push(now, Ev::PersistDone { node: n, incarnation, token, apply: false, notify: true });
                        self.push(done, Ev::PersistDone { node: n, incarnation, token, apply: true, notify: false });
                    }
                }
            }
            Output::Close { peer, reason } => {
                self.trace.event(now, Actor::Node(id.0), "close", peer_code(peer), 0, || format!("{peer}: {reason}"));
            }
            Output::Event(e) => {
                self.aimed_on_event(n, &e);
                match &e {
                    Event::BecameLeader { tp, leader_epoch, unclean, .. } => {
                        self.counters.leader_elections += 1;
                        self.checker.on_became_leader(id, tp, *leader_epoch, *unclean);
                    }
                    Event::ControllerLeader { term } => {
                        self.counters.controller_elections += 1;
                        self.checker.on_controller_leader(id, *term);
                    }
                    Event::IsrChanged { shrink: true, .. } => self.counters.isr_shrinks += 1,
                    Event::IsrChanged { shrink: false, .. } => self.counters.isr_expands += 1,
                    Event::Truncated { removed, .. } => {
                        self.counters.truncations += 1;
                        self.counters.records_truncated += removed;
                    }
                    Event::GroupDelivered { group, member, tp, offset, delivery, generation, leader_epoch } => {
                        let key = self.checker.committed_value(tp, *offset).map(|v| crate::groups::key_of(v));
                        let handed = Handed {
                            at: now,
                            node: id,
                            tenure: (self.nodes[n].incarnation, *leader_epoch),
                            group,
                            member: *member,
                            generation: *generation,
                            tp,
                            offset: *offset,
                            delivery: *delivery,
                            high_watermark: self.checker.high_watermark(tp),
                            log_start: self.nodes[n]
                                .node
                                .as_ref()
                                .and_then(|node| node.log(tp))
                                .map_or(Offset(0), |l| l.log_start()),
                            values: self.checker.committed_slots(tp),
                        };
                        // A partition that had an unclean election may have lost
                        // committed records, cursor records among them: its group
                        // checks stop like its loss checks (deliveries still count).
                        let lossy = self.checker.is_lossy(tp);
                        let violation = self.groups.on_handed(&handed, key.as_ref());
                        if self.opts.auth && !self.honest_members.contains(&(group.clone(), *member)) {
                            let what = format!(
                                "n{id} handed {tp}@{offset} of group {group} to member {member:?}, which no honest member was given"
                            );
                            self.checker.fail("auth_not_bypassed", what);
                        }
                        if let Some((inv, what, _)) = violation {
                            if !lossy {
                                self.checker.fail(inv, what);
                            }
                        }
                    }
                    Event::GroupAckCommitted { group, tp, prefix, acked_above, sought, cursor_offset } => {
                        let forged =
                            prefix.0 >= ADVERSARY_OFFSET || acked_above.iter().any(|o| o.0 >= ADVERSARY_OFFSET);
                        if self.opts.auth && (forged || *sought) {
                            // No honest member seeks, nor acks such offsets.
                            let what = format!(
                                "n{id} committed group {group}'s cursor on {tp} at {prefix} (acked above: {} offsets, seek: {sought}) from an adversary's ack or seek",
                                acked_above.len()
                            );
                            self.checker.fail("auth_not_bypassed", what);
                        }
                        if *sought {
                            self.groups.on_sought(group, tp, *prefix, *cursor_offset);
                        } else {
                            self.groups.on_ack_confirmed(now, group, tp, *prefix, acked_above, *cursor_offset);
                        }
                    }
                    Event::DeadLettered { group, tp, offset, .. } => self.groups.on_dead_lettered(group, tp, *offset),
                    Event::LogStartAdvanced { tp, log_start } => self.checker.on_log_start(tp, *log_start),
                    _ => {}
                }
                if let Event::HighWatermark { tp, high_watermark, leader_epoch } = &e {
                    self.counters.hw_events += 1;
                    let node = self.nodes[n].node.as_ref().expect("outputs come from a live node");
                    match node.log(tp) {
                        Some(log) => {
                            self.checker.on_high_watermark(id.0, tp, *leader_epoch, *high_watermark, log, &self.history)
                        }
                        None => self
                            .checker
                            .fail("committed_stable", format!("n{id} reported a HW for {tp} it does not hold")),
                    }
                    // A committed seek replays from its offset, whichever leader
                    // committed it (its answer may never have been sent).
                    for (tp, group, offset, cursor) in std::mem::take(&mut self.checker.committed_seeks) {
                        self.groups.on_sought(&group, &tp, offset, cursor);
                    }
                }
                let (a, b) = match &e {
                    Event::HighWatermark { high_watermark, .. } => (1, high_watermark.0),
                    Event::LogStartAdvanced { log_start, .. } => (2, log_start.0),
                    Event::RecoveredTail { log_end, .. } => (3, log_end.0),
                    _ => (4, 0),
                };
                self.trace.event(now, Actor::Node(id.0), "event", a, b, || match &e {
                    Event::HighWatermark { tp, high_watermark, .. } => format!("hw {tp} -> {high_watermark}"),
                    Event::LogStartAdvanced { tp, log_start } => format!("log-start {tp} -> {log_start}"),
                    other => format!("{other:?}"),
                });
            }
        }
    }

    /// Runs `metadata_commit_protected` when node `n`'s metadata commit index grew.
    fn check_commit_protected(&mut self, n: usize) {
        let Some(node) = self.nodes[n].node.as_ref() else { return };
        let commit = node.raft().commit_index();
        if commit <= self.nodes[n].commit_checked {
            return;
        }
        let entry = node.raft().committed_after(commit - 1).first().cloned();
        self.nodes[n].commit_checked = commit;
        let Some(entry) = entry else { return };
        let voters: Vec<(NodeId, &[Entry])> = self
            .nodes
            .iter()
            .filter(|s| self.opts.voters.contains(&s.id.0))
            .map(|s| (s.id, s.disk.durable.raft.entries.as_slice()))
            .collect();
        self.checker.on_commit_protected(self.nodes[n].id, &entry, &voters);
    }

    /// The aimed fault: right after a node wins a Raft election, either cut it off
    /// (its first entry, `LeaderChange`, then exists on it alone) or crash it within
    /// a short delay (often before that entry is durable on it while followers hold
    /// it already). Chains of such elections make Raft's figure 8 reachable: a
    /// previous-term entry counted as committed, then overwritten.
    fn maybe_crash_new_controller(&mut self, n: usize) {
        let p = self.opts.crash_new_controller_prob;
        if p <= 0.0 || self.liveness_start.is_some() || !self.rng_aimed.random_bool(p) {
            return;
        }
        let now = self.now;
        self.disturbed_at = now;
        if self.rng_aimed.random_bool(0.5) {
            let node = Peer::Node(self.nodes[n].id);
            // Long enough for the others to elect a leader without it, and often
            // over before that leader's term ends, so it can take part again.
            let timeout = self.opts.election_timeout_ms * 1_000_000;
            let heal = now + Duration::from_nanos(self.rng_aimed.random_range(timeout * 3 / 2..=timeout * 3));
            self.cut_id += 1;
            self.counters.new_controller_isolations += 1;
            self.trace.event(now, Actor::Sim, "isolate-new-controller", self.cut_id, 1, || format!("{node}"));
            self.net.cut = Some(Cut { side: [node].into_iter().collect(), one_way: true });
            self.push(heal, Ev::HealCut { id: self.cut_id });
        } else {
            let within = self.rng_aimed.random_range(0..=self.opts.crash_new_controller_within_us * 1_000);
            let incarnation = self.nodes[n].incarnation;
            self.push(now + Duration::from_nanos(within), Ev::Crash { node: n, incarnation });
        }
    }

    fn schedule_node_timer(&mut self, n: usize) {
        let now = self.now;
        let slot = &mut self.nodes[n];
        let Some(node) = slot.node.as_ref() else { return };
        let Some(deadline) = node.poll_timeout() else {
            slot.timer = None;
            return;
        };
        if slot.timer == Some(deadline) {
            return;
        }
        slot.timer = Some(deadline);
        slot.timer_generation += 1;
        let (at, generation) = (slot.clock.global_for(now, deadline), slot.timer_generation);
        self.push(at, Ev::NodeTimer { node: n, generation });
    }

    /// How a crash goes: whether clients see their connections reset at once (half
    /// the time; otherwise they find out through their request deadlines), and how
    /// long the node stays down.
    fn draw_crash(&mut self) -> (bool, u64) {
        let disconnect = self.rng_faults.random_bool(0.5);
        let mean = self.opts.restart_mean_ms as f64 * 1e6;
        let down = exp_sample(&mut self.rng_faults, mean).min(2_000_000_000) + 1_000_000;
        (disconnect, down)
    }

    /// A crash whose course is drawn now (aimed faults, forced shutdowns).
    fn crash_drawn(&mut self, n: usize) {
        let (disconnect, down_ns) = self.draw_crash();
        self.stop(n, Stop::Crash { disconnect, down_ns });
    }

    fn crash(&mut self, n: usize, disconnect: bool, down_ns: u64) {
        self.stop(n, Stop::Crash { disconnect, down_ns });
    }

    /// Stops node `n`: a crash, or (`Stop::Clean`) the end of a completed controlled
    /// shutdown (nothing is pending on its disk then; its connections close).
    fn stop(&mut self, n: usize, how: Stop) {
        let now = self.now;
        let slot = &mut self.nodes[n];
        if let Some(node) = slot.node.take() {
            self.ended_coverage.add(&node.coverage());
        }
        slot.incarnation += 1;
        slot.commit_checked = 0;
        slot.timer = None;
        slot.paused_until = Instant::ZERO;
        slot.stopping = None;
        let damage = slot.disk.crash(&mut self.rng_disk[n]);
        let Stop::Crash { disconnect, down_ns } = how else {
            let id = slot.id.0;
            assert!(damage.dropped_persists == 0, "n{id} stopped after its shutdown completed with persists pending");
            self.trace.event(now, Actor::Node(id), "stop", 0, 0, || "controlled shutdown complete; stopped".into());
            for c in 0..self.clients.len() {
                self.client_input(c, Some(Input::Disconnected { peer: Peer::Node(NodeId(id)) }));
            }
            let mean = self.opts.restart_mean_ms as f64 * 1e6;
            let down = exp_sample(&mut self.rng_shutdown, mean).min(2_000_000_000) + 1_000_000;
            let incarnation = self.nodes[n].incarnation;
            self.push(now + Duration::from_nanos(down), Ev::Restart { node: n, incarnation });
            return;
        };
        self.counters.crashes += 1;
        self.counters.torn_writes += u64::from(damage.torn_bytes > 0);
        self.counters.lost_persists += damage.dropped_persists as u64;
        let id = slot.id.0;
        self.trace.event(
            now,
            Actor::Node(id),
            "crash",
            damage.dropped_persists as u64,
            damage.torn_bytes as u64,
            || {
                format!(
                    "dropped {} unsynced persists; {} whole writes reached the disk; torn tail of {} bytes",
                    damage.dropped_persists, damage.partial_writes, damage.torn_bytes
                )
            },
        );
        let incarnation = slot.incarnation;
        if disconnect {
            for c in 0..self.clients.len() {
                self.client_input(c, Some(Input::Disconnected { peer: Peer::Node(NodeId(id)) }));
            }
        }
        self.push(now + Duration::from_nanos(down_ns), Ev::Restart { node: n, incarnation });
    }

    fn restart(&mut self, n: usize) {
        let now = self.now;
        let slot = &mut self.nodes[n];
        let reports: Vec<RepairReport> = slot.disk.durable.repair();
        let node = Node::recover(slot.config.clone(), slot.seed, &slot.disk.durable);
        slot.node = Some(node);
        self.counters.restarts += 1;
        self.counters.torn_detected += reports.len() as u64;
        let id = slot.id.0;
        self.trace.event(now, Actor::Node(id), "restart", reports.len() as u64, slot.incarnation, || {
            format!("recovered from durable state; repaired tails: {reports:?}")
        });
        let node = self.nodes[n].node.as_ref().expect("just restarted");
        if self.cfg.node_invariants_every > 0 {
            node.check_invariants();
        }
        self.checker.on_recovered(node, &self.history);
        self.checker.set_now(self.now);
        self.checker.on_restart_metadata(NodeId(id), node.raft());
        self.schedule_node_timer(n);
    }

    // ----- network -----

    fn send(&mut self, from: Peer, to: Peer, msg: Message) {
        let now = self.now;
        if let Peer::Client(c) = from {
            self.check_client_leaders(c.0 as usize - 1);
        }
        self.counters.messages += 1;
        match self.net.send(now, from, to) {
            Fate::Dropped(why) => {
                match why {
                    Drop::Loss => self.counters.dropped_loss += 1,
                    Drop::Partition => self.counters.dropped_partition += 1,
                    Drop::Capacity => self.counters.dropped_capacity += 1,
                }
                self.trace.event(now, actor(from), "drop", peer_code(to), corr_of(&msg), || {
                    format!("to {to} {} ({why:?})", summary(&msg))
                });
            }
            Fate::Deliver { mut at, mut dup } => {
                at += self.aimed_heartbeat_delay(from, &msg);
                at = self.aimed_held_answer(from, to, &msg, at);
                if dup.is_none() {
                    dup = self.aimed_isr_duplicate(from, &msg, at);
                }
                let produce = matches!(&msg, Message::Request(Request { body: RequestBody::Produce { .. }, .. }));
                if self.cfg.mutation == Mutation::DuplicateRequests && produce && matches!(from, Peer::Client(_)) {
                    dup = Some(at + Duration::from_millis(1)); // the bug under test
                }
                // For the timeline's arrows (trace.rs notes: not hashed, not in the text).
                for t in [Some(at), dup].into_iter().flatten() {
                    self.trace.note(now, actor(from), "send", peer_code(to), t.as_nanos(), String::new);
                }
                if let Some(dup_at) = dup {
                    self.counters.duplicated += 1;
                    self.push(dup_at, Ev::Deliver { from, to, msg: Box::new(msg.clone()) });
                }
                self.push(at, Ev::Deliver { from, to, msg: Box::new(msg) });
            }
        }
    }

    // ----- clients -----

    fn client_input(&mut self, c: usize, input: Option<Input>) {
        let now = self.now;
        let cid = self.clients[c].id;
        if !self.clients[c].started {
            return; // an honest client of an auth seed before its principal exists
        }
        let mut sends: Vec<(Peer, Message)> = Vec::new();
        match &mut self.clients[c].role {
            Role::Admin(a) => {
                match input {
                    Some(Input::Message {
                        from: Peer::Node(broker),
                        msg: Message::Response(Response { correlation, body }),
                    }) => {
                        let auth = match a.auth.on_response(broker, correlation, &body, || {
                            let c = CorrelationId(a.next_correlation);
                            a.next_correlation += 1;
                            c
                        }) {
                            AuthEvent::NotMine => None,
                            other => Some(other),
                        };
                        match auth {
                            Some(AuthEvent::Send(to, correlation, body)) => {
                                sends.push((Peer::Node(to), Message::Request(Request { correlation, body })));
                            }
                            Some(AuthEvent::Authenticated(to)) => a.send_all(to, &mut sends),
                            Some(_) => {} // refused or not ready: the next attempt logs in again
                            None => {
                                if let Some(name) = a.inflight.remove(&correlation) {
                                    let done = match &body {
                                        Ok(ResponseBody::TopicCreated | ResponseBody::SecurityUpdated) => true,
                                        Err(e) => e.code == ErrorCode::TopicExists,
                                        _ => false,
                                    };
                                    if let Some(request) = done.then(|| a.unconfirmed.remove(&name)).flatten() {
                                        self.checker.control.on_admin_confirmed(request);
                                    }
                                    if matches!(&body, Err(e) if e.code == ErrorCode::Unauthenticated) {
                                        a.auth.forget(broker); // it restarted
                                    }
                                }
                            }
                        }
                    }
                    Some(Input::Disconnected { peer: Peer::Node(broker) }) => a.auth.disconnected(broker),
                    _ => {}
                }
                if now >= a.next_attempt && !a.unconfirmed.is_empty() {
                    // Rotate over the brokers: any ready one forwards to the controller.
                    let broker = NodeId(a.next_broker % self.opts.cluster_size + 1);
                    a.next_broker += 1;
                    if a.auth.is_authenticated(broker) {
                        a.send_all(broker, &mut sends);
                    } else {
                        // Log in first (again, if an earlier exchange got stuck).
                        a.auth.forget(broker);
                        let Admin { auth, auth_rng, next_correlation, .. } = &mut **a;
                        let next = || {
                            let c = CorrelationId(*next_correlation);
                            *next_correlation += 1;
                            c
                        };
                        if let Readiness::Send(correlation, body) = auth.ready(broker, next, auth_rng) {
                            sends.push((Peer::Node(broker), Message::Request(Request { correlation, body })));
                        }
                    }
                    a.next_attempt = now + Duration::from_millis(200);
                }
            }
            Role::Adversary(adv) => match input {
                Some(Input::Message {
                    from: Peer::Node(broker),
                    msg: Message::Response(Response { correlation, body }),
                }) => {
                    let (more, verdict) = adv.on_response(broker, correlation, &body, &mut self.history);
                    self.recorded_proofs.append(&mut adv.new_proofs);
                    sends.extend(more.into_iter().map(|(to, m)| (Peer::Node(to), m)));
                    match verdict {
                        Some(Verdict::Refused(code)) => {
                            self.counters.adversary_refused += 1;
                            self.counters.adversary_unauthenticated += u64::from(code == ErrorCode::Unauthenticated);
                            self.counters.adversary_unauthorized += u64::from(code == ErrorCode::Unauthorized);
                        }
                        Some(Verdict::Accepted { attack, what, answer }) => {
                            self.checker.on_attack_accepted(cid.0, attack, &what, &answer);
                        }
                        Some(Verdict::AclModel(what)) => self.checker.fail("acl_model", format!("c{cid}: {what}")),
                        None => {}
                    }
                }
                Some(Input::Disconnected { peer: Peer::Node(broker) }) => adv.disconnected(broker),
                _ => {}
            },
            Role::Producer { p, ops } => {
                if let Some(input) = input {
                    p.handle(now, input);
                }
                while let Some(out) = p.poll_output() {
                    match out {
                        ProducerOutput::Send { to, msg } => {
                            if let Message::Request(Request { body: RequestBody::Produce { batch, .. }, .. }) = &msg {
                                self.history.on_produce_request(batch.records.iter().map(|r| &r.value));
                            }
                            sends.push((to, msg));
                        }
                        ProducerOutput::Done { id, outcome } => {
                            let op = ops.remove(&id).expect("every outcome answers a send");
                            record_outcome(
                                &mut self.history,
                                &mut self.checker,
                                &mut self.counters,
                                &mut self.trace,
                                now,
                                cid,
                                op,
                                outcome,
                                self.liveness_start,
                                &mut self.acked_since_heal,
                                &mut self.acked_all_since_heal,
                            );
                        }
                    }
                }
            }
            Role::Member(m) => {
                if let Some(input) = input {
                    m.gc.handle(now, input);
                }
            }
            Role::Gone => return,
            Role::Reader(consumer) => {
                let readback = self.readback.as_mut();
                readback::drive(consumer, readback, c, cid, now, input, &mut sends, &mut self.trace);
            }
            Role::Consumer(consumer) => {
                if let Some(input) = input {
                    consumer.handle(now, input);
                }
                while let Some(out) = consumer.poll_output() {
                    match out {
                        ConsumerOutput::Send { to, msg } => sends.push((to, msg)),
                        ConsumerOutput::Records { records, .. } => {
                            let tp = consumer.config().tp.clone();
                            for (offset, r) in records {
                                self.checker.on_read(cid.0, &tp, offset, &r.value, &self.history);
                                self.history.reads.push(crate::history::ReadOp {
                                    at: now,
                                    client: cid.0,
                                    tp: tp.clone(),
                                    offset,
                                    value: r.value,
                                });
                            }
                        }
                        ConsumerOutput::Skipped { from, to } => {
                            self.trace.event(now, Actor::Client(cid.0), "skip", from.0, to.0, String::new);
                            let tp = &consumer.config().tp;
                            let live = max_log_start(&self.nodes, tp);
                            self.checker.on_consumer_skip(cid.0, tp, from, to, live);
                        }
                        ConsumerOutput::Truncated { from, to } => {
                            self.trace.event(now, Actor::Client(cid.0), "truncated", from.0, to.0, String::new);
                            self.checker.on_consumer_truncated(cid.0, &consumer.config().tp, from, to);
                        }
                        ConsumerOutput::Error(e) => {
                            self.trace.event(now, Actor::Client(cid.0), "error", 0, 0, || e.to_string());
                        }
                    }
                }
            }
        }
        let mut tick = None;
        if let Role::Member(m) = &mut self.clients[c].role {
            // Outputs first: draining them runs the machine (queued acks, a close),
            // which may yield records and events.
            while let Some(GroupConsumerOutput::Send { to, msg }) = m.gc.poll_output() {
                sends.push((to, msg));
            }
            let go = &self.opts.groups[m.group];
            let draining = now >= self.produce_until;
            let mut took = false;
            // An application keeps a bounded queue of records in hand: with
            // eight times `max_pending_acks` of them waiting (answers refused
            // `TooManyPending` wait here), it takes no more until some are
            // settled; the records stay buffered in the consumer, which then
            // stops pulling. Without this backpressure the waiting answers grew
            // without bound (a pull member's leases are not limited), every tick
            // walked them all, and seed 1003367 crawled. At one times the limit
            // a member with a one-record buffer and push subscriptions took
            // records too slowly to finish in the liveness phase (seed 1005651).
            let room = self.opts.knobs.member_max_pending_acks.max(1);
            while m.todo.len() < room.saturating_mul(8) {
                let Some(r) = m.gc.poll_record() else { break };
                // After the producers stop, members behave so that the group can
                // finish: every record is acked.
                let action = if draining { Action::Ack } else { Member::decide(&mut self.rng_members, go) };
                m.todo.push((r.tp, r.offset, action));
                took = true;
            }
            if took && m.busy_until.is_none() {
                let mean = go.process_us as f64 * 1_000.0;
                let at = now + Duration::from_nanos(exp_sample(&mut self.rng_members, mean) + 1);
                m.busy_until = Some(at);
                tick = Some((at, m.incarnation));
            }
            let name = group_name(m.group);
            let mut replace = false;
            let mut rebalanced = None;
            let mut acks_settled = false;
            while let Some(ev) = m.gc.poll_event() {
                match &ev {
                    GroupEvent::Rebalanced { member, generation, assignment } => {
                        rebalanced = Some(m.gc.coordinator());
                        self.counters.group_rebalances += 1;
                        self.honest_members.insert((name.clone(), *member));
                        if let Some((inv, what, _)) = self.groups.on_joined(&name, *member, *generation, assignment) {
                            self.checker.fail(inv, what);
                        }
                    }
                    GroupEvent::Closed => replace = true,
                    GroupEvent::AcksConfirmed { .. } | GroupEvent::AcksDropped { .. } => acks_settled = true,
                    _ => {}
                }
                self.trace.event(now, Actor::Client(cid.0), "group-event", 0, 0, || format!("{ev:?}"));
            }
            // Answers refused for `max_pending_acks` wait in `todo`: with room
            // again, the member answers them at once.
            if acks_settled && !m.todo.is_empty() && m.busy_until.is_none() {
                m.busy_until = Some(now);
                tick = Some((now, m.incarnation));
            }
            if replace {
                self.counters.member_leaves += 1;
            }
            if let Some(coordinator) = rebalanced {
                self.aimed_on_rebalance(c, coordinator);
            }
            for (to, msg) in sends.drain(..) {
                self.send(Peer::Client(cid), to, msg);
            }
            if let Some((at, incarnation)) = tick {
                self.push(at, Ev::MemberTick { client: c, incarnation });
            }
            if replace {
                self.replace_member(c);
                return;
            }
        }
        for (to, msg) in sends {
            self.send(Peer::Client(cid), to, msg);
        }
        self.schedule_client_timer(c);
    }

    /// A member's processing delay passed: it answers every record it took.
    fn member_tick(&mut self, c: usize, incarnation: u64) {
        let now = self.now;
        let cid = self.clients[c].id;
        let Role::Member(m) = &mut self.clients[c].role else { return };
        if m.incarnation != incarnation {
            return;
        }
        m.busy_until = None;
        // An application honours `max_pending_acks`: it acks in chunks the
        // limit allows, and keeps what the consumer refuses as `TooManyPending`
        // for when earlier acks are confirmed (`client_input`).
        let limit = self.opts.knobs.member_max_pending_acks.max(1);
        let mut acks: BTreeMap<TopicPartition, Vec<Offset>> = BTreeMap::new();
        let mut errors = Vec::new();
        let mut deferred = Vec::new();
        // One answer per record: a record handed again while its answer waited
        // here (refused `TooManyPending`) is answered once. Without this the
        // waiting answers grew by every redelivery, each tick walked them all,
        // and seed 1003367 slowed to a crawl (tens of thousands, 241 at a time).
        let mut seen: BTreeSet<(TopicPartition, Offset)> = BTreeSet::new();
        // The batch's first record per partition (where a replay starts).
        let mut firsts: BTreeMap<TopicPartition, Offset> = BTreeMap::new();
        for (tp, offset, action) in std::mem::take(&mut m.todo) {
            if !seen.insert((tp.clone(), offset)) {
                continue;
            }
            let first = firsts.entry(tp.clone()).or_insert(offset);
            *first = (*first).min(offset);
            let result = match action {
                Action::Ack => {
                    acks.entry(tp).or_default().push(offset);
                    continue;
                }
                Action::Nack(delay) => m.gc.nack(now, &tp, offset, delay),
                Action::Reject => m.gc.reject(now, &tp, offset),
                Action::Forget => Ok(()),
            };
            match result {
                Err(AckError::TooManyPending { .. }) => deferred.push((tp, offset, action)),
                result => {
                    match action {
                        Action::Nack(_) => self.counters.group_nacks += 1,
                        Action::Reject => self.counters.group_rejects += 1,
                        Action::Forget => self.counters.group_forgotten += 1,
                        Action::Ack => {}
                    }
                    errors.extend(result.err());
                }
            }
        }
        for (tp, offsets) in acks {
            for chunk in offsets.chunks(limit) {
                match m.gc.ack_batch(now, &tp, chunk) {
                    Err(AckError::TooManyPending { .. }) => {
                        deferred.extend(chunk.iter().map(|o| (tp.clone(), *o, Action::Ack)));
                    }
                    result => errors.extend(result.err()),
                }
            }
        }
        m.todo = deferred;
        // Now and then an application replays: it seeks one partition of the
        // batch back to the batch's first record there, after its answers
        // (queued acks go first). Not while draining: the group must finish.
        let seek_prob = self.opts.groups[m.group].seek_prob;
        if seek_prob > 0.0 && now < self.produce_until && !firsts.is_empty() && self.rng_seeks.random_bool(seek_prob) {
            let i = self.rng_seeks.random_range(0..firsts.len());
            let (tp, first) = firsts.into_iter().nth(i).expect("drawn within the batch's partitions");
            match m.gc.seek(now, &tp, SeekTo::Offset(first)) {
                Ok(()) => self.counters.group_seeks += 1,
                Err(e) => errors.push(e),
            }
        }
        for e in errors {
            // A partition revoked meanwhile: its records go to the new owner.
            self.trace.event(now, Actor::Client(cid.0), "ack-refused", 0, 0, || e.to_string());
        }
        self.client_input(c, None);
    }

    /// Replaces group member `c` (crashed, or left) by a fresh client in a new slot
    /// that joins again; the old slot drops whatever still reaches it.
    fn replace_member(&mut self, c: usize) {
        let Role::Member(old) = std::mem::replace(&mut self.clients[c].role, Role::Gone) else { return };
        let member = Member::new(self.cfg.seed, &self.opts, old.group, old.index, old.incarnation + 1);
        let id = ClientId(self.clients.len() as u64 + 1);
        let started = self.security_ready;
        let role = Role::Member(Box::new(member));
        self.clients.push(ClientSlot { id, role, timer: None, timer_generation: 0, started });
        self.trace.event(self.now, Actor::Client(id.0), "member-replaces", self.clients[c].id.0, 0, String::new);
        self.schedule_client_timer(self.clients.len() - 1);
    }

    fn schedule_client_timer(&mut self, c: usize) {
        let slot = &mut self.clients[c];
        let deadline = match &slot.role {
            _ if !slot.started => None,
            Role::Admin(a) => (!a.unconfirmed.is_empty()).then_some(a.next_attempt),
            Role::Producer { p, .. } => p.poll_timeout(),
            Role::Consumer(consumer) | Role::Reader(consumer) => consumer.poll_timeout(),
            Role::Member(m) => m.gc.poll_timeout(),
            // Adversaries act on their own ticks.
            Role::Gone | Role::Adversary(_) => None,
        };
        if deadline == slot.timer {
            return;
        }
        slot.timer = deadline;
        slot.timer_generation += 1;
        if let Some(at) = deadline {
            let (generation, at) = (slot.timer_generation, at.max(self.now));
            self.push(at, Ev::ClientTimer { client: c, generation });
        }
    }

    /// The next produce tick of producer `c`, one random gap from now (and not
    /// before `workload_start_ms`).
    pub(super) fn schedule_produce_tick(&mut self, c: usize) {
        let mean = self.opts.produce_interval_us as f64 * 1_000.0;
        let next = self.now + Duration::from_nanos(exp_sample(&mut self.rng_workload, mean) + 1);
        let start = Instant::ZERO + Duration::from_millis(self.opts.workload_start_ms);
        self.push(next.max(start), Ev::ProduceTick { client: c });
    }

    fn produce_tick(&mut self, c: usize) {
        let now = self.now;
        // After the producers stop, a cluster that has committed no acks=all
        // produce since the heal gets probes: each producer sends one acks=all
        // produce at a time until one succeeds. `liveness_progress` asks that the
        // healed cluster commits, not that it keeps up with any load: a follower
        // fetching a few bytes at a time may trail a busy leader, out of the ISR,
        // until the load stops (seed 1004175, min_isr = rf).
        let probing = now >= self.produce_until;
        if probing && (self.acked_all_since_heal > 0 || self.liveness_start.is_none()) {
            return;
        }
        let max_ops = self.cfg.schedule.as_ref().and_then(|s| s.max_ops);
        if max_ops.is_some_and(|max| self.counters.ops_invoked >= max) {
            return; // a schedule's workload bound: this producer stops
        }
        self.schedule_produce_tick(c);
        let cid = self.clients[c].id;
        let Role::Producer { p, ops } = &mut self.clients[c].role else { return };
        if p.inflight() >= p.config().max_inflight || (probing && p.inflight() > 0) {
            return;
        }
        let r = &mut self.rng_workload;
        let tp = self.topics[r.random_range(0..self.topics.len())].clone();
        let mix = self.opts.acks;
        let pick = r.random_range(0..mix.none + mix.leader + mix.all);
        let acks = if probing {
            self.counters.liveness_probes += 1;
            Acks::All
        } else if pick < mix.none {
            Acks::None
        } else if pick < mix.none + mix.leader {
            Acks::Leader
        } else {
            Acks::All
        };
        let n = r.random_range(1..=self.opts.batch_max_records);
        let op = self.history.invoke(cid.0, tp.clone(), acks, n, now);
        self.history.ops[op as usize].idempotent = acks == Acks::All && self.opts.idempotence;
        // Keys and tags derive from the value, so the group checker can recompute
        // them (key_shared stickiness, filters).
        let records: Vec<Record> = self.history.ops[op as usize]
            .values
            .iter()
            .map(|v| Record {
                key: Some(crate::groups::key_of(v)),
                tags: crate::groups::tags_of(v),
                ..Record::from_value(v.clone())
            })
            .collect();
        let needed: usize = records.iter().map(Record::size_bytes).sum();
        if p.buffered_bytes() + needed > p.config().buffer_max_bytes {
            // The buffer is full (a drawn `buffer_max_bytes` can hold a single
            // batch): the application waits for room, as Kafka's `send` blocks,
            // and tries again on its next tick (seed 248).
            self.history.withdraw(op);
            return;
        }
        self.counters.ops_invoked += 1;
        let id = p.send(now, &tp.topic, tp.partition, acks, records).expect("in-flight room was checked");
        ops.insert(id, op);
        self.trace.event(now, Actor::Client(cid.0), "invoke", op, u64::from(n), || {
            format!("op {op} produce {n} records to {tp} acks={acks:?}")
        });
        // Drain the request (and, for acks=0, the outcome) through the usual path.
        self.client_input(c, None);
    }

    // ----- faults -----

    fn fault_weight_total(&self) -> u32 {
        let o = &self.opts;
        o.w_crash
            + o.w_pause
            + o.w_partition
            + o.w_clog
            + o.w_clock_step
            + o.w_crash_controller
            + o.w_member
            + o.w_shutdown
    }

    fn fault_gap(&mut self) -> Instant {
        let mean = self.opts.fault_interval_ms as f64 * 1e6;
        self.now + Duration::from_nanos(exp_sample(&mut self.rng_faults, mean) + 1)
    }

    fn heal_time(&mut self) -> Instant {
        let mean = self.opts.heal_mean_ms as f64 * 1e6;
        // Always finite and bounded, so the liveness phase can count on it.
        self.now + Duration::from_nanos(exp_sample(&mut self.rng_faults, mean).min(2_000_000_000) + 1_000)
    }

    fn endpoints(&self) -> Vec<Peer> {
        let nodes = self.nodes.iter().map(|s| Peer::Node(s.id));
        nodes.chain(self.clients.iter().map(|c| Peer::Client(c.id))).collect()
    }

    fn fault(&mut self) {
        if self.liveness_start.is_some() {
            return;
        }
        let next = self.fault_gap();
        self.push(next, Ev::Fault);
        if let Some(fault) = self.draw_fault() {
            self.apply_fault(fault);
        }
    }

    /// Draws the next random fault: its kind, then every decision it takes, from
    /// the `faults` stream (member faults from `members`). `None` when the drawn
    /// kind does not apply now (a crash of a node that is down, say).
    fn draw_fault(&mut self) -> Option<Fault> {
        let now = self.now;
        let o = &self.opts;
        let weights = [
            o.w_crash,
            o.w_pause,
            o.w_partition,
            o.w_clog,
            o.w_clock_step,
            o.w_crash_controller,
            o.w_member,
            o.w_shutdown,
        ];
        let mut pick = self.rng_faults.random_range(0..self.fault_weight_total());
        let kind = weights.iter().position(|w| {
            if pick < *w {
                true
            } else {
                pick -= w;
                false
            }
        });
        let n = self.rng_faults.random_range(0..self.nodes.len());
        if kind.is_some() {
            // Watches of a controlled shutdown hold only in a quiet cluster.
            self.disturbed_at = now;
        }
        match kind {
            Some(0) if self.nodes[n].node.is_some() => {
                let (disconnect, down_ns) = self.draw_crash();
                Some(Fault::Crash { node: n, disconnect, down_ns })
            }
            Some(5) => {
                self.controller_slot()?;
                let (disconnect, down_ns) = self.draw_crash();
                Some(Fault::CrashController { disconnect, down_ns })
            }
            Some(1) if self.nodes[n].node.is_some() && self.nodes[n].paused_until <= now => {
                let for_ns = self.heal_time().saturating_since(now).as_nanos();
                Some(Fault::Pause { node: n, for_ns })
            }
            Some(2) if self.net.cut.is_none() => {
                let cut = self.draw_cut(n);
                let for_ns = self.heal_time().saturating_since(now).as_nanos();
                Some(Fault::Partition { side: cut.side.into_iter().collect(), one_way: cut.one_way, for_ns })
            }
            Some(3) => {
                let ends = self.endpoints();
                let other = ends[self.rng_faults.random_range(0..ends.len())];
                if other == Peer::Node(self.nodes[n].id) {
                    return None;
                }
                let for_ns = self.heal_time().saturating_since(now).as_nanos();
                let both = self.rng_faults.random_bool(0.5);
                Some(Fault::Clog { node: n, other, both, for_ns })
            }
            Some(6) => self.draw_member_fault(),
            Some(7) if self.nodes[n].node.is_some() && self.nodes[n].stopping.is_none() => {
                Some(Fault::Shutdown { node: n })
            }
            Some(4) => {
                let max = self.opts.clock_step_max_ms as i64 * 1_000_000;
                let step_ns = self.rng_faults.random_range(-max..=max);
                Some(Fault::ClockStep { node: n, step_ns })
            }
            _ => None,
        }
    }

    /// `step_ns` cut down to the clock error mq's delivery lease tolerates
    /// (docs/consumers.md, "Failover"; docs/simulator.md, "Clocks"): the steps of
    /// one node within any two sessions add up to at most half the lease's
    /// clock margin, so that a controller's clock and a broker's together stay
    /// within it. A step is a clock fault the lease assumes away beyond that
    /// (monotonic clocks are not stepped); within it, it still moves timeouts.
    fn step_within_budget(&mut self, node: usize, step_ns: i64) -> i64 {
        let now = self.now;
        let slot = &mut self.nodes[node];
        let session = slot.config.session_timeout;
        let budget = session.as_nanos().saturating_sub(slot.config.delivery_lease().as_nanos()) / 2;
        let window = Duration::from_nanos(session.as_nanos().saturating_mul(2));
        slot.steps.retain(|(at, _)| now.saturating_since(*at) < window);
        let spent: u64 = slot.steps.iter().map(|(_, n)| *n).sum();
        let room = budget.saturating_sub(spent).min(i64::MAX as u64) as i64;
        let step = step_ns.clamp(-room, room);
        if step != 0 {
            slot.steps.push((now, step.unsigned_abs()));
        }
        step
    }

    /// The slot of the node whose Raft role is leader, if any.
    fn controller_slot(&self) -> Option<usize> {
        self.nodes.iter().position(|s| {
            s.node.as_ref().is_some_and(|node| node.raft().role() == mq_core::controller::RaftRole::Leader)
        })
    }

    /// Applies a fault (drawn or scheduled) and records it. A scheduled fault that
    /// does not apply now (its node is down, a partition is in place) does nothing.
    fn apply_fault(&mut self, fault: Fault) {
        let now = self.now;
        let applied = match &fault {
            Fault::Crash { node, disconnect, down_ns } => {
                let live = self.nodes[*node].node.is_some();
                if live {
                    self.crash(*node, *disconnect, *down_ns);
                }
                live
            }
            Fault::CrashController { disconnect, down_ns } => match self.controller_slot() {
                Some(l) => {
                    self.counters.controller_crashes += 1;
                    self.crash(l, *disconnect, *down_ns);
                    true
                }
                None => false,
            },
            Fault::Pause { node, for_ns } => {
                let n = *node;
                let ok = self.nodes[n].node.is_some() && self.nodes[n].paused_until <= now;
                if ok {
                    let until = now + Duration::from_nanos(*for_ns);
                    self.nodes[n].paused_until = until;
                    self.counters.pauses += 1;
                    let id = self.nodes[n].id.0;
                    self.trace.event(now, Actor::Node(id), "pause", until.as_nanos(), 0, || format!("until {until}"));
                }
                ok
            }
            Fault::Partition { side, one_way, for_ns } => {
                let ok = self.net.cut.is_none();
                if ok {
                    let cut = Cut { side: side.iter().copied().collect(), one_way: *one_way };
                    self.cut_id += 1;
                    self.counters.partitions += 1;
                    self.trace.event(now, Actor::Sim, "partition", self.cut_id, u64::from(cut.one_way), || {
                        format!("{cut:?}")
                    });
                    self.net.cut = Some(cut);
                    self.push(now + Duration::from_nanos(*for_ns), Ev::HealCut { id: self.cut_id });
                }
                ok
            }
            Fault::Clog { node, other, both, for_ns } => {
                let (other, until) = (*other, now + Duration::from_nanos(*for_ns));
                let id = self.nodes[*node].id.0;
                let me = Peer::Node(NodeId(id));
                self.net.clog(me, other, until);
                if *both {
                    self.net.clog(other, me, until);
                }
                self.counters.clogs += 1;
                self.trace.event(now, Actor::Node(id), "clog", peer_code(other), until.as_nanos(), || {
                    format!("link with {other} until {until}")
                });
                true
            }
            Fault::ClockStep { node, step_ns } => {
                let step = self.step_within_budget(*node, *step_ns);
                let id = self.nodes[*node].id.0;
                if step != 0 {
                    self.nodes[*node].clock.step(step);
                    self.counters.clock_steps += 1;
                    self.trace.event(now, Actor::Node(id), "clock-step", step as u64, 0, || format!("{step}ns"));
                }
                step != 0
            }
            Fault::Member { client, crash } => self.apply_member_fault(*client, *crash),
            Fault::Aimed { kind, fault: inner } => self.apply_aimed(*kind, (**inner).clone()),
            Fault::DiskStall { node, for_ns } => {
                let n = *node;
                let live = self.nodes[n].node.is_some();
                if live {
                    let until = now + Duration::from_nanos(*for_ns);
                    let disk = &mut self.nodes[n].disk;
                    disk.hold_until = disk.hold_until.max(until);
                    self.counters.disk_stalls += 1;
                    let id = self.nodes[n].id.0;
                    self.trace.event(now, Actor::Node(id), "disk-stall", until.as_nanos(), 0, || {
                        format!("no fsync completes until {until}")
                    });
                }
                live
            }
            Fault::Shutdown { node } => {
                let n = *node;
                let ok = self.nodes[n].node.is_some() && self.nodes[n].stopping.is_none();
                if ok {
                    self.begin_shutdown(n);
                }
                ok
            }
        };
        if applied {
            self.fault_log.push(Timed { at_ns: now.as_nanos(), fault });
        }
    }

    /// A group member crashes (a fresh client replaces it at once; the old member
    /// is evicted after its session timeout) or leaves gracefully (it flushes its
    /// acks and leaves; a fresh client joins once it is done).
    fn draw_member_fault(&mut self) -> Option<Fault> {
        let members: Vec<usize> =
            (0..self.clients.len()).filter(|c| matches!(self.clients[*c].role, Role::Member(_))).collect();
        if members.is_empty() {
            return None;
        }
        let client = members[self.rng_members.random_range(0..members.len())];
        let crash = self.rng_members.random_bool(0.5);
        Some(Fault::Member { client, crash })
    }

    fn apply_member_fault(&mut self, c: usize, crash: bool) -> bool {
        let now = self.now;
        let cid = self.clients[c].id.0;
        let Role::Member(m) = &mut self.clients[c].role else { return false };
        if crash {
            self.counters.member_crashes += 1;
            self.trace.event(now, Actor::Client(cid), "member-crash", 0, 0, String::new);
            self.schedule_zombie(c);
            self.replace_member(c);
            true
        } else if !m.gc.is_closed() {
            self.trace.event(now, Actor::Client(cid), "member-leave", 0, 0, String::new);
            m.gc.close(now, Duration::from_secs(2));
            self.client_input(c, None);
            true
        } else {
            false
        }
    }

    fn draw_cut(&mut self, n: usize) -> Cut {
        let r = &mut self.rng_faults;
        let isolate = r.random_bool(0.4);
        let one_way = r.random_bool(0.3);
        let node = Peer::Node(self.nodes[n].id);
        let mut side: BTreeSet<Peer> = BTreeSet::new();
        if isolate {
            side.insert(node);
        } else {
            let ends: Vec<Peer> = self
                .nodes
                .iter()
                .map(|s| Peer::Node(s.id))
                .chain(self.clients.iter().map(|c| Peer::Client(c.id)))
                .collect();
            for e in ends {
                if r.random_bool(0.5) {
                    side.insert(e);
                }
            }
            if side.is_empty() || side.len() == self.nodes.len() + self.clients.len() {
                side = [node].into_iter().collect();
            }
        }
        Cut { side, one_way }
    }

    // ----- phases -----

    fn start_liveness(&mut self) {
        let now = self.now;
        assert!(self.cfg.mutation != Mutation::Panic, "injected panic (mutation `panic`)");
        self.liveness_start = Some(now);
        self.trace.event(now, Actor::Sim, "liveness", 0, 0, || "faults stop; the core is healed".into());
        // The core is every node today: heal all of it.
        self.net.cut = None;
        self.net.unclog_all(now);
        self.net.stop_random_loss();
        for n in 0..self.nodes.len() {
            // A disk the figure-8 script stalled (step (b)) is unstalled in its
            // step (c), which never comes once the liveness phase began
            // (`figure8_step` returns at once then): end the stall here, or
            // every write of that node stays 20 to 200 ms slow for good.
            let disk = &mut self.nodes[n].disk;
            disk.stall_until = Instant::ZERO;
            disk.stall = Duration::ZERO;
            // A disk an aimed fault stalled (`Fault::DiskStall`) stays stalled
            // to the stall's end: the completions waiting for it are queued at
            // that instant, and ending it now would let later persists
            // complete before them (seed 1500818 at 6cd26db: "completions out
            // of token order"). Stalls are a few sessions long at most.
            if self.nodes[n].stopping.is_some() {
                // A controlled shutdown under way: finish it now (cleanly if it
                // completed, else like a crash), so the node restarts healed.
                let clean = self.nodes[n].node.as_ref().is_some_and(Node::is_shut_down);
                self.counters.shutdowns_completed += u64::from(clean);
                self.counters.shutdowns_forced += u64::from(!clean);
                if clean {
                    self.stop(n, Stop::Clean);
                } else {
                    self.crash_drawn(n);
                }
            }
            if self.nodes[n].node.is_none() {
                self.restart(n);
            }
        }
    }

    /// The coverage marks of node incarnations that ended (crashed or stopped).
    pub fn ended_coverage(&self) -> &Coverage {
        &self.ended_coverage
    }

    /// The run's coverage marks so far: every node incarnation's, ended or live
    /// (docs/simulator.md "Coverage marks").
    pub fn coverage(&self) -> Coverage {
        let mut total = self.ended_coverage.clone();
        for node in self.nodes.iter().filter_map(|s| s.node.as_ref()) {
            total.add(&node.coverage());
        }
        total
    }

    fn finish(&mut self) {
        self.done = true;
        let now = self.now;
        self.trace.event(now, Actor::Sim, "end", 0, 0, String::new);
        let nodes: Vec<&Node> = self.nodes.iter().filter_map(|s| s.node.as_ref()).collect();
        if self.cfg.node_invariants_every > 0 {
            nodes.iter().for_each(|n| n.check_invariants());
        }
        self.checker.finish(&nodes, &self.history);
        self.judge_readback();
        if self.checker.violation().is_some() {
            return;
        }
        if self.acked_all_since_heal == 0 {
            let what = format!(
                "no produce with acks=all succeeded in the {} ms after the core was healed ({} with acks=1)",
                self.opts.liveness_ms, self.acked_since_heal
            );
            self.checker.fail_liveness("liveness_progress", what);
            return;
        }
        // A partition whose ISR holds a live (unfenced) broker must have a leader in
        // the committed metadata by the end.
        if let Some(tp) = self.checker.leaderless().first() {
            let what =
                format!("{tp} has no leader in the committed metadata {} ms after the heal", self.opts.liveness_ms);
            self.checker.fail_liveness("liveness_leaders", what);
            return;
        }
        if !self.opts.groups.is_empty() {
            for tp in &self.topics {
                if self.checker.is_lossy(tp) {
                    continue;
                }
                if let Some((inv, what, _)) = self.completion(tp) {
                    self.checker.fail_liveness(inv, what);
                    return;
                }
            }
        }
        let behind = self.consumer_positions().find(|(_, tp, p)| *p < self.judged_consumer_target(tp));
        if let Some((id, tp, position)) = behind {
            let hw = self.judged_consumer_target(tp);
            let what = format!("c{id} read {tp} only up to {position} by the end; its committed data ends at {hw}");
            self.checker.fail_liveness("liveness_consumers_caught_up", what);
            return;
        }
        // Healed, every live replica follows its leader back into the ISR:
        // under-replicated partitions go back to none, as operators expect of
        // Kafka. A broker that keeps acting on a partition state it was told
        // is over (a deposed leader that goes on leading, a follower that
        // stops fetching) leaves it out for good.
        if let Some((tp, out)) = self.under_replicated().first() {
            let what = format!(
                "{tp}: live replica(s) {out:?} out of the committed ISR from the middle of the {} ms liveness phase to the end, drain included",
                self.opts.liveness_ms
            );
            self.checker.fail_liveness("liveness_replicas_in_sync", what);
        }
    }
}

#[allow(clippy::too_many_arguments)] // the disjoint fields of `Sim` a completion touches
fn record_outcome(
    history: &mut History,
    checker: &mut Checker,
    counters: &mut Counters,
    trace: &mut Trace,
    now: Instant,
    cid: ClientId,
    op: u64,
    outcome: ProduceOutcome,
    liveness_start: Option<Instant>,
    acked_since_heal: &mut u64,
    acked_all_since_heal: &mut u64,
) {
    let entry = &mut history.ops[op as usize];
    let (kind, a) = match &outcome {
        ProduceOutcome::Ok { base_offset, .. } => {
            entry.outcome = Outcome::Ok { at: now, base_offset: *base_offset };
            counters.ops_ok += 1;
            if liveness_start.is_some_and(|t| entry.invoked >= t) {
                *acked_since_heal += 1;
                *acked_all_since_heal += u64::from(entry.acks == Acks::All);
            }
            ("ok", base_offset.0)
        }
        ProduceOutcome::Failed { error } => {
            entry.outcome = Outcome::Failed { at: now, code: error.code };
            counters.ops_failed += 1;
            ("fail", 0)
        }
        ProduceOutcome::Indefinite { .. } => {
            entry.outcome = Outcome::Indefinite { at: now };
            counters.ops_indefinite += 1;
            ("indefinite", 0)
        }
    };
    trace.event(now, Actor::Client(cid.0), kind, op, a, || format!("op {op} {outcome:?}"));
    if kind == "ok" {
        checker.on_ack(op, history);
    }
}

/// The highest log start of `tp` among the live nodes of `nodes`.
fn max_log_start(nodes: &[NodeSlot], tp: &TopicPartition) -> Offset {
    nodes.iter().filter_map(|s| s.node.as_ref()?.log(tp).map(|l| l.log_start())).max().unwrap_or(Offset(0))
}

fn actor(p: Peer) -> Actor {
    match p {
        Peer::Node(n) => Actor::Node(n.0),
        Peer::Client(c) => Actor::Client(c.0),
    }
}

fn peer_code(p: Peer) -> u64 {
    match p {
        Peer::Node(n) => 1 << 32 | u64::from(n.0),
        Peer::Client(c) => 2 << 32 | c.0,
    }
}

fn corr_of(msg: &Message) -> u64 {
    match msg {
        Message::Request(r) => r.correlation.0,
        Message::Response(r) => r.correlation.0 | 1 << 63,
        Message::Peer(_) => 0,
    }
}

/// One line for a message in the trace.
fn summary(msg: &Message) -> String {
    match msg {
        Message::Request(r) => format!("req#{} {}", r.correlation, request_summary(&r.body)),
        Message::Response(r) => {
            let what = match &r.body {
                Ok(ResponseBody::Produced { base_offset, .. }) => format!("produced @{base_offset}"),
                Ok(ResponseBody::Fetched { high_watermark, batches, .. }) => {
                    format!("fetched {} records hw={high_watermark}", batches.iter().map(|b| b.len()).sum::<u64>())
                }
                Ok(other) => format!("{other:?}"),
                Err(e) => format!("error {e}"),
            };
            format!("resp#{} {what}", r.correlation)
        }
        Message::Peer(p) => peer_summary(p),
    }
}

/// One line for a client request (the trace, the adversary's history).
pub(crate) fn request_summary(body: &RequestBody) -> String {
    match body {
        RequestBody::CreateTopic(tc) => format!("create-topic {}", tc.name),
        RequestBody::DeleteTopic { topic } => format!("delete-topic {topic}"),
        RequestBody::ListTopics => "list-topics".into(),
        RequestBody::Produce { topic, partition, acks, batch } => {
            format!("produce {topic}/{partition} acks={acks:?} records={}", batch.len())
        }
        RequestBody::Fetch { topic, partition, offset, .. } => format!("fetch {topic}/{partition}@{offset}"),
        RequestBody::ListOffsets { topic, partition, spec } => {
            format!("list-offsets {topic}/{partition} {spec:?}")
        }
        RequestBody::Metadata { topics } => format!("metadata {topics:?}"),
        RequestBody::InitProducer => "init-producer".into(),
        RequestBody::AuthStart { app_key, .. } => format!("auth-start {app_key}"),
        RequestBody::AuthProof { .. } => "auth-proof".into(),
        RequestBody::PutPrincipal { app_key, .. } => format!("put-principal {app_key}"),
        RequestBody::GroupFetch(f) => format!(
            "group-fetch {} {} member={} gen={} max={} {:?}",
            f.view.group, f.tp, f.view.member, f.view.generation, f.max_records, f.mode
        ),
        RequestBody::GroupAck(a) => {
            let acks: Vec<String> = a.acks.iter().map(|(o, k)| format!("{o}:{k:?}")).collect();
            let acks = acks.join(",").chars().take(160).collect::<String>();
            format!(
                "group-ack {} {} member={} gen={} up_to={:?} [{acks}]",
                a.group, a.tp, a.member, a.generation, a.up_to
            )
        }
        other => format!("{other:?}").chars().take(200).collect(),
    }
}

/// One line for a broker-to-broker message.
fn peer_summary(p: &PeerMessage) -> String {
    match p {
        PeerMessage::Raft(m) => format!("raft {m:?}").chars().take(160).collect(),
        PeerMessage::MetadataFetch { after } => format!("metadata-fetch after={after}"),
        PeerMessage::MetadataEntries { entries, commit, leader } => {
            format!("metadata-entries n={} commit={commit} leader={leader:?}", entries.len())
        }
        PeerMessage::Controller { correlation, request } => {
            format!("controller#{correlation} {request:?}").chars().take(160).collect()
        }
        PeerMessage::ControllerReply { correlation, result } => {
            format!("controller-reply#{correlation} {result:?}").chars().take(160).collect()
        }
        PeerMessage::ReplicaFetch(f) => format!(
            "replica-fetch {} from={} @{} last_epoch={:?} epoch={}",
            f.tp, f.replica, f.fetch_offset, f.last_fetched_epoch, f.current_leader_epoch
        ),
        PeerMessage::ReplicaFetchReply { tp, leader_epoch, result, .. } => match result {
            Ok(d) => format!(
                "replica-data {tp} epoch={leader_epoch} hw={} diverging={:?} records={}",
                d.high_watermark,
                d.diverging,
                d.batches.iter().map(|b| b.len()).sum::<u64>()
            ),
            Err(e) => format!("replica-data {tp} epoch={leader_epoch} error {e}"),
        },
        PeerMessage::DeadLetter { correlation, tp, .. } => format!("dead-letter#{correlation} to {tp}"),
        PeerMessage::DeadLetterReply { correlation, result } => format!("dead-letter-reply#{correlation} {result:?}"),
    }
}
