//! Swarm options: everything a run varies, drawn from the seed's `options` stream
//! (TigerBeetle's swarm testing). Each fault is switched off in some seeds and
//! weighted differently in others, so campaigns explore combinations a fixed mix
//! would never reach. Heal times are always finite: a partition, clog or pause
//! always ends.

use crate::aimed::AimedOptions;
use mq_core::client::ProducerConfig;
use mq_core::group::{assign::Assignor, GroupMode};
use mq_core::{Duration, NodeConfig, NodeId, Seed};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The largest cluster size a seed draws.
pub const MAX_CLUSTER_SIZE: u32 = 5;
/// The most controller voters a seed draws.
pub const MAX_VOTERS: u32 = 3;

/// Acks levels, as weights out of their sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcksMix {
    /// Weight of `acks=0`.
    pub none: u32,
    /// Weight of `acks=1`.
    pub leader: u32,
    /// Weight of `acks=all`.
    pub all: u32,
}

/// One consumer group of a run (all members share its settings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupOptions {
    /// Its mode.
    pub mode: GroupMode,
    /// Members (1..=3), each a group consumer client.
    pub members: u32,
    /// Push subscriptions with this prefetch window (else long polls).
    pub push_prefetch: Option<u32>,
    /// Records per fetch answer.
    pub max_records: u32,
    /// Only `blue` records (a third of them) when true.
    pub filter_blue: bool,
    /// Lease length (milliseconds).
    pub ack_timeout_ms: u64,
    /// Deliveries before the dead-letter topic.
    pub max_deliveries: u32,
    /// Probability that a member nacks a record (redelivered after a delay).
    pub nack_prob: f64,
    /// Probability that a member rejects a record (to the dead-letter topic).
    pub reject_prob: f64,
    /// Probability that a member never answers for a record (its lease expires).
    pub forget_prob: f64,
    /// Mean time a member takes to process a delivered batch (microseconds).
    pub process_us: u64,
    /// Member weights (shared groups).
    pub weights: Vec<u32>,
    /// Members' session timeout (milliseconds).
    pub session_ms: u64,
    /// Probability that a member, after answering a batch, seeks one of its
    /// partitions back to the batch's first record there (a replay; no-auth
    /// seeds only: `auth_not_bypassed` holds that no honest member seeks).
    #[serde(default)]
    pub seek_prob: f64,
}

/// Every option of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// Cluster size (1..=5).
    pub cluster_size: u32,
    /// The controller voters: 1..=3 distinct brokers, in increasing order.
    pub voters: Vec<u32>,
    /// Topics created by the admin client.
    pub topics: u32,
    /// Partitions per topic.
    pub partitions: u32,
    /// Replication factor (clamped to the cluster size).
    pub replication_factor: u16,
    /// Minimum in-sync replicas (at most the replication factor).
    pub min_insync_replicas: u16,
    /// Whether the topics allow unclean leader election (the checker then reports
    /// a partition's loss after an unclean election instead of failing).
    pub unclean_leader_election: bool,
    /// Retention by bytes per partition, when set.
    pub retention_bytes: Option<u64>,
    /// Retention by time (milliseconds), when set.
    pub retention_ms: Option<u64>,
    /// Persists a node keeps in flight.
    pub max_inflight_persists: usize,
    /// Acks levels of produce requests.
    pub acks: AcksMix,
    /// Producer clients.
    pub producers: u32,
    /// Mean pause between two sends of one producer (microseconds).
    pub produce_interval_us: u64,
    /// Records per batch, 1..=this.
    pub batch_max_records: u32,
    /// Requests in flight per producer.
    pub producer_max_inflight: usize,
    /// Client request timeout (milliseconds).
    pub request_timeout_ms: u64,
    /// One consumer per partition when true (else one for partition 0 only).
    pub consumer_per_partition: bool,
    /// Length of the safety phase (milliseconds).
    pub safety_ms: u64,
    /// Bound for progress in the liveness phase (milliseconds).
    pub liveness_ms: u64,
    // ----- network -----
    /// Smallest one-way delay (microseconds).
    pub delay_min_us: u64,
    /// Mean of the exponential part of the delay (microseconds).
    pub delay_mean_us: u64,
    /// Probability that a message takes the long tail.
    pub delay_tail_prob: f64,
    /// Longest extra delay of the tail (milliseconds).
    pub delay_tail_max_ms: u64,
    /// Probability of losing a message.
    pub loss_prob: f64,
    /// Probability of duplicating a message (where duplication applies).
    pub dup_prob: f64,
    /// Whether links may reorder messages (else FIFO per link).
    pub reorder: bool,
    /// Messages in flight per link before new ones are dropped.
    pub link_capacity: u32,
    // ----- disk -----
    /// Smallest fsync latency (microseconds).
    pub fsync_min_us: u64,
    /// Mean of the exponential part of the fsync latency (microseconds).
    pub fsync_mean_us: u64,
    /// Probability that an fsync is slow.
    pub fsync_slow_prob: f64,
    /// Longest slow fsync (milliseconds).
    pub fsync_slow_max_ms: u64,
    /// Probability that a crash tears the write in progress.
    pub torn_prob: f64,
    // ----- clocks -----
    /// Largest clock drift (parts per million, either way).
    pub drift_max_ppm: u32,
    /// Largest clock step (milliseconds, either way).
    pub clock_step_max_ms: u64,
    // ----- faults: mean time between faults and the weight of each kind -----
    /// Mean time between two faults (milliseconds).
    pub fault_interval_ms: u64,
    /// Weight of crash faults.
    pub w_crash: u32,
    /// Weight of pause faults.
    pub w_pause: u32,
    /// Weight of network partitions (symmetric, asymmetric, isolation).
    pub w_partition: u32,
    /// Weight of link clogs.
    pub w_clog: u32,
    /// Weight of clock steps.
    pub w_clock_step: u32,
    /// Weight of crashing the current controller (Raft) leader, wherever it is.
    pub w_crash_controller: u32,
    /// Raft's minimum election timeout (milliseconds); heartbeats every tenth.
    pub election_timeout_ms: u64,
    /// Mean duration of a partition, clog or pause (milliseconds); always finite.
    pub heal_mean_ms: u64,
    /// Mean time a crashed node stays down (milliseconds).
    pub restart_mean_ms: u64,
    /// Probability that a node which just won a Raft election is crashed soon after
    /// (an aimed fault: the window where the new leader's first entry is not yet
    /// durable on it, Raft's figure 8).
    pub crash_new_controller_prob: f64,
    /// Longest delay between winning the election and that crash (microseconds).
    pub crash_new_controller_within_us: u64,
    // ----- producer client -----
    /// Idempotent producers (their acks=all sends are deduplicated and ordered).
    pub idempotence: bool,
    /// Producer linger (microseconds; 0: send at once).
    pub linger_us: u64,
    /// Producer batch size limit (bytes).
    pub batch_max_bytes: usize,
    /// Producer batches out per partition.
    pub max_inflight_per_partition: usize,
    // ----- consumer groups -----
    /// The run's consumer groups (each consumes every topic of the run).
    pub groups: Vec<GroupOptions>,
    /// Weight of member faults: a group member crashes (a new client takes its
    /// place and joins afresh) or leaves and joins again.
    pub w_member: u32,
    /// The scripted figure-8 profile (three voters only): the simulator steers
    /// three elections into Raft's figure 8 (docs/simulator.md, "Aimed faults").
    pub figure8: bool,
    // ----- security and lifecycle (issue 7) -----
    /// Brokers require authentication and ACLs: the admin logs in as the bootstrap
    /// admin and creates a principal and grants for every client, honest clients
    /// carry credentials, and the adversarial clients attack (docs/security.md).
    pub auth: bool,
    /// Weight of controlled shutdowns: a live broker is asked to stop
    /// (`Node::begin_shutdown`), driven until its shutdown completes, stopped and
    /// restarted later (multi-node seeds only).
    pub w_shutdown: u32,
    /// Mean time between two attacks of one adversarial client (milliseconds).
    pub attack_interval_ms: u64,
    /// Producers start ticking no earlier than this (milliseconds). Never drawn
    /// (0): the shrinker sets it when it removes authentication, to the moment the
    /// workload started behind the login, so the workload keeps its place among
    /// the faults.
    #[serde(default)]
    pub workload_start_ms: u64,
    /// Plain consumers (by their index among the run's consumers) that never
    /// start: their client slots and ids stay, so every other client keeps its id
    /// and its streams. Only schedules set it (the shrinker silences consumers,
    /// which draw from no stream another client draws from).
    #[serde(default)]
    pub silent_consumers: Vec<u32>,
    /// The adversaries of an auth seed never start (their slots stay). Only
    /// schedules set it.
    #[serde(default)]
    pub silent_adversaries: bool,
    // ----- aimed faults and BUGGIFY (issue 18) -----
    /// Aimed faults at protocol moments, per kind (docs/simulator.md "Aimed
    /// faults"); all off in schedules written before they existed.
    #[serde(default)]
    pub aimed: AimedOptions,
    /// BUGGIFY: the nodes take legal but rare paths at named points
    /// (docs/simulator.md "BUGGIFY"; `mq_core::buggify`).
    #[serde(default)]
    pub buggify: bool,
    /// The settings of mq-core's brokers and clients (issue 18: swarmed like the
    /// faults). Schedules written before they were drawn load with the values the
    /// simulator used to fix.
    #[serde(default)]
    pub knobs: Knobs,
}

/// mq-core settings a seed draws: every setting of the brokers and the clients
/// that changes what they do (docs/simulator.md, "The configuration knobs").
/// `Default` is what the simulator fixed before they were drawn (mq-core's
/// defaults, except where noted); a fifth of the seeds keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Knobs {
    // ----- brokers (NodeConfig) -----
    /// Raft's heartbeat interval (milliseconds); `None`: a tenth of the election
    /// timeout, at least 10 ms.
    pub raft_heartbeat_interval_ms: Option<u64>,
    /// Most metadata entries in one Raft `Append`.
    pub raft_max_entries_per_append: usize,
    /// Producer ids per allocation.
    pub producer_id_block: u64,
    /// Largest batch a broker takes (bytes).
    pub max_batch_bytes: usize,
    /// Bytes waiting for their Persist before produce gets `Backpressure`.
    pub max_pending_write_bytes: usize,
    /// Cap on a consumer fetch answer (bytes).
    pub max_fetch_bytes: usize,
    /// acks=all replies waiting per partition.
    pub max_waiters_per_partition: usize,
    /// How often retention runs (milliseconds; mq-core's default is 5 s).
    pub retention_check_interval_ms: u64,
    /// How often a broker heartbeats to the controller (milliseconds).
    pub broker_heartbeat_interval_ms: u64,
    /// A broker silent this long is fenced (milliseconds).
    pub broker_session_timeout_ms: u64,
    /// A follower not caught up within this long leaves the ISR (milliseconds).
    pub replica_lag_time_ms: u64,
    /// How long a leader holds an empty follower fetch (milliseconds).
    pub replica_fetch_max_wait_ms: u64,
    /// Bytes per follower fetch.
    pub replica_fetch_max_bytes: u32,
    /// How long a broker waits for the controller (milliseconds).
    pub controller_request_timeout_ms: u64,
    /// How long an acks=all produce waits for the HW (milliseconds).
    pub produce_timeout_ms: u64,
    /// How long a broker waits for an admin request it forwarded (milliseconds;
    /// drawn from 1 s: the brokers' clients wait for their admin requests for
    /// seconds, as Kafka's admin client does).
    pub admin_timeout_ms: u64,
    /// How often a non-voter fetches metadata (milliseconds).
    pub metadata_fetch_interval_ms: u64,
    /// Partitions of `__groups`.
    pub group_coordinator_partitions: u32,
    /// Replicas of each `__groups` partition.
    pub group_replication_factor: u16,
    // ----- producers (ProducerConfig) -----
    /// Produce requests one batch may use.
    pub producer_max_attempts: u32,
    /// First retry backoff (milliseconds).
    pub producer_retry_backoff_ms: u64,
    /// Longest retry backoff (milliseconds).
    pub producer_retry_backoff_max_ms: u64,
    /// A send without an outcome this long gives up (milliseconds; mq-core's
    /// default is 30 s).
    pub producer_delivery_timeout_ms: u64,
    /// Bytes buffered per producer.
    pub producer_buffer_max_bytes: usize,
    // ----- plain consumers (ConsumerConfig) -----
    /// Soft cap a consumer asks for per fetch (bytes).
    pub consumer_max_bytes: u32,
    /// Pause after a fetch without new records (milliseconds).
    pub consumer_poll_interval_ms: u64,
    // ----- group members (GroupConsumerConfig) -----
    /// How long a pull may wait at the leader (milliseconds).
    pub member_pull_max_wait_ms: u64,
    /// A join may wait the session timeout plus this (milliseconds); `None`: the
    /// session timeout plus 500 ms more than it.
    pub member_join_extra_ms: Option<u64>,
    /// First retry backoff of a member (milliseconds).
    pub member_retry_backoff_ms: u64,
    /// Longest retry backoff of a member (milliseconds).
    pub member_retry_backoff_max_ms: u64,
    /// Acks waiting or out per member.
    pub member_max_pending_acks: usize,
    /// Records waiting for the application per member.
    pub member_max_buffered_records: usize,
}

impl Default for Knobs {
    fn default() -> Self {
        let node = NodeConfig::default();
        let ms = |d: Duration| d.as_millis();
        Knobs {
            raft_heartbeat_interval_ms: None,
            raft_max_entries_per_append: node.raft_max_entries_per_append,
            producer_id_block: node.producer_id_block,
            max_batch_bytes: node.max_batch_bytes,
            max_pending_write_bytes: node.max_pending_write_bytes,
            max_fetch_bytes: node.max_fetch_bytes,
            max_waiters_per_partition: node.max_waiters_per_partition,
            retention_check_interval_ms: 200,
            broker_heartbeat_interval_ms: ms(node.broker_heartbeat_interval),
            broker_session_timeout_ms: ms(node.session_timeout),
            replica_lag_time_ms: ms(node.replica_lag_time),
            replica_fetch_max_wait_ms: ms(node.replica_fetch_max_wait),
            replica_fetch_max_bytes: node.replica_fetch_max_bytes,
            controller_request_timeout_ms: ms(node.controller_request_timeout),
            produce_timeout_ms: ms(node.produce_timeout),
            admin_timeout_ms: ms(node.admin_timeout),
            metadata_fetch_interval_ms: ms(node.metadata_fetch_interval),
            group_coordinator_partitions: node.group_coordinator_partitions,
            group_replication_factor: node.group_replication_factor,
            producer_max_attempts: 10,
            producer_retry_backoff_ms: 50,
            producer_retry_backoff_max_ms: 1_000,
            producer_delivery_timeout_ms: 5_000,
            producer_buffer_max_bytes: ProducerConfig::default().buffer_max_bytes,
            consumer_max_bytes: 64 * 1024,
            consumer_poll_interval_ms: 10,
            member_pull_max_wait_ms: 200,
            member_join_extra_ms: None,
            member_retry_backoff_ms: 20,
            member_retry_backoff_max_ms: 500,
            member_max_pending_acks: 10_000,
            member_max_buffered_records: 10_000,
        }
    }
}

/// `lo..=hi`, with each end drawn an eighth of the time.
fn span(r: &mut mq_core::Rng, lo: u64, hi: u64) -> u64 {
    match r.random_range(0..8) {
        0 => lo,
        1 => hi,
        _ => r.random_range(lo..=hi),
    }
}

/// `lo..=hi` log-uniformly (for ranges over orders of magnitude), with each end
/// drawn an eighth of the time.
fn log_span(r: &mut mq_core::Rng, lo: u64, hi: u64) -> u64 {
    match r.random_range(0..8) {
        0 => lo,
        1 => hi,
        _ => {
            let x = r.random_range((lo.max(1) as f64).ln()..=(hi as f64).ln()).exp() as u64;
            x.clamp(lo, hi)
        }
    }
}

impl Knobs {
    /// Draws the knobs of a seed whose other options are `o`: each from a range
    /// that includes both extremes mq-core's validation allows, where a range
    /// depends on another setting (delivery timeout and request timeout, pending
    /// bytes and batch size) within what the core accepts. Periodic timers (the
    /// heartbeats, the retention check, metadata fetches, polls and empty-fetch
    /// waits) start at 10 ms: shorter ones only multiply a run's events.
    fn draw(r: &mut mq_core::Rng, o: &Options) -> Knobs {
        // A member acks what one delivery handed it and may hold that many acks
        // out: below one delivery's records a group acks one record per commit
        // round trip, never catches up with its producers, and every such seed
        // fails `group_completion` for a configuration, not a bug (as in
        // `draw_group`). The refusal path itself (`TooManyPending`) is tested in
        // mq-core's group consumer tests, and members retry refused acks.
        let ack_floor = o
            .groups
            .iter()
            .map(|g| u64::from(g.max_records.max(g.push_prefetch.unwrap_or(0))))
            .max()
            .unwrap_or(1)
            .max(1);
        if r.random_bool(0.2) {
            return Knobs::default();
        }
        let election = o.election_timeout_ms;
        let broker_session_timeout_ms = span(r, 100, 9_000);
        let replica_lag_time_ms = span(r, 10, 10_000);
        let max_batch_bytes = log_span(r, (2 * o.batch_max_bytes).max(o.batch_max_bytes + 4_096) as u64, 1 << 20);
        let producer_retry_backoff_max_ms = span(r, 1, 2_000);
        let member_retry_backoff_max_ms = span(r, 1, 2_000);
        let mut k = Knobs {
            raft_heartbeat_interval_ms: Some(span(r, 10, election - 1)),
            raft_max_entries_per_append: span(r, 1, 256) as usize,
            producer_id_block: span(r, 1, 1_000),
            max_batch_bytes: max_batch_bytes as usize,
            max_pending_write_bytes: log_span(r, max_batch_bytes, 64 << 20) as usize,
            max_fetch_bytes: log_span(r, 1, 8 << 20) as usize,
            max_waiters_per_partition: log_span(r, 1, 10_000) as usize,
            retention_check_interval_ms: log_span(r, 10, 5_000),
            broker_heartbeat_interval_ms: span(r, 10, (broker_session_timeout_ms / 2).max(10)),
            broker_session_timeout_ms,
            replica_lag_time_ms,
            replica_fetch_max_wait_ms: span(r, 10.min(replica_lag_time_ms), replica_lag_time_ms.min(1_000)),
            replica_fetch_max_bytes: log_span(r, 1, 1 << 20) as u32,
            controller_request_timeout_ms: span(r, 10, 5_000),
            produce_timeout_ms: span(r, o.produce_timeout_floor_ms(), 10_000),
            metadata_fetch_interval_ms: span(r, 10, 1_000),
            group_coordinator_partitions: span(r, 1, 8) as u32,
            group_replication_factor: span(r, 1, 3) as u16,
            producer_max_attempts: span(r, 1, 20) as u32,
            producer_retry_backoff_ms: span(r, 0, producer_retry_backoff_max_ms),
            producer_retry_backoff_max_ms,
            producer_delivery_timeout_ms: span(r, o.request_timeout_ms + o.linger_us.div_ceil(1_000), 30_000),
            producer_buffer_max_bytes: log_span(r, o.batch_max_bytes as u64, 32 << 20) as usize,
            consumer_max_bytes: log_span(r, 1, 1 << 20) as u32,
            consumer_poll_interval_ms: span(r, 10, 500),
            member_pull_max_wait_ms: span(r, 10, 1_000),
            member_join_extra_ms: Some(span(r, 0, 5_000)),
            member_retry_backoff_ms: span(r, 1, member_retry_backoff_max_ms),
            member_retry_backoff_max_ms,
            member_max_pending_acks: log_span(r, ack_floor, 10_000) as usize,
            member_max_buffered_records: log_span(r, 1, 10_000) as usize,
            // Drawn last, so that adding it left every earlier draw alone.
            admin_timeout_ms: span(r, 1_000, 30_000),
        };
        // An idle follower's fetch is parked for the fetch wait and its next one
        // arrives a round trip later: a lag time below that takes every follower
        // out of the ISR even with nothing to copy, and with min_isr = rf no
        // acks=all produce ever commits (seed 1004175: a 10 ms lag time and a 10
        // ms fetch wait). Raised after the draw, so that no draw moved.
        k.replica_lag_time_ms = k.replica_lag_time_ms.max(k.replica_fetch_max_wait_ms + o.produce_timeout_floor_ms());
        // A seed aiming at unanswered ISR expansions needs room for the moment in
        // its safety phase: a hold of an ISR member's fetches past the lag time,
        // its catch-up, and the controller timeout of the ask to add it back
        // (docs/simulator.md, aimed faults). With the drawn spans (lag time and
        // controller timeout up to 10 s and 5 s, a safety phase of 2 to 8 s) it
        // fitted in about one seed in a hundred, and the mutant
        // `failed_isr_change_forgets_added_members` survived 400 seeds. Clamped
        // after the draw, so that no draw moved.
        if o.aimed.isr_commit > 0.0 {
            k.controller_request_timeout_ms = k.controller_request_timeout_ms.min((o.safety_ms / 4).max(10));
            let lag_cap = (o.safety_ms / 6).max(k.replica_fetch_max_wait_ms + o.produce_timeout_floor_ms());
            k.replica_lag_time_ms = k.replica_lag_time_ms.min(lag_cap);
        }
        k
    }

    /// The broker settings of node `id` of a run with options `o`.
    pub fn node_config(&self, o: &Options, id: u32) -> NodeConfig {
        let ms = Duration::from_millis;
        let heartbeat = self.raft_heartbeat_interval_ms.unwrap_or((o.election_timeout_ms / 10).max(10));
        NodeConfig {
            node_id: NodeId(id),
            cluster_size: o.cluster_size,
            voters: o.voters.iter().map(|v| NodeId(*v)).collect(),
            max_inflight_persists: o.max_inflight_persists,
            election_timeout: ms(o.election_timeout_ms),
            raft_heartbeat_interval: ms(heartbeat),
            raft_max_entries_per_append: self.raft_max_entries_per_append,
            producer_id_block: self.producer_id_block,
            max_batch_bytes: self.max_batch_bytes,
            max_pending_write_bytes: self.max_pending_write_bytes,
            max_fetch_bytes: self.max_fetch_bytes,
            max_waiters_per_partition: self.max_waiters_per_partition,
            retention_check_interval: ms(self.retention_check_interval_ms),
            broker_heartbeat_interval: ms(self.broker_heartbeat_interval_ms),
            session_timeout: ms(self.broker_session_timeout_ms),
            replica_lag_time: ms(self.replica_lag_time_ms),
            replica_fetch_max_wait: ms(self.replica_fetch_max_wait_ms),
            replica_fetch_max_bytes: self.replica_fetch_max_bytes,
            controller_request_timeout: ms(self.controller_request_timeout_ms),
            produce_timeout: ms(self.produce_timeout_ms),
            admin_timeout: ms(self.admin_timeout_ms),
            metadata_fetch_interval: ms(self.metadata_fetch_interval_ms),
            group_coordinator_partitions: self.group_coordinator_partitions,
            group_replication_factor: self.group_replication_factor,
            ..NodeConfig::default()
        }
    }

    /// The producer settings of a run with options `o` (brokers and credentials
    /// are the caller's).
    pub fn producer_config(&self, o: &Options) -> ProducerConfig {
        let ms = Duration::from_millis;
        ProducerConfig {
            brokers: (1..=o.cluster_size).map(NodeId).collect(),
            request_timeout: ms(o.request_timeout_ms),
            max_inflight: o.producer_max_inflight,
            max_attempts: self.producer_max_attempts,
            retry_backoff: ms(self.producer_retry_backoff_ms),
            retry_backoff_max: ms(self.producer_retry_backoff_max_ms),
            delivery_timeout: ms(self.producer_delivery_timeout_ms),
            idempotence: o.idempotence,
            linger: Duration::from_micros(o.linger_us),
            batch_max_bytes: o.batch_max_bytes,
            buffer_max_bytes: self.producer_buffer_max_bytes,
            max_inflight_per_partition: o.max_inflight_per_partition,
            ..ProducerConfig::default()
        }
    }

    /// How long a member's join may wait, for a session of `session_ms`.
    pub fn member_join_timeout(&self, session_ms: u64) -> Duration {
        Duration::from_millis(session_ms + self.member_join_extra_ms.unwrap_or(session_ms + 500))
    }
}

fn draw_group(r: &mut mq_core::Rng) -> GroupOptions {
    let mode = match r.random_range(0..5) {
        0 => GroupMode::Exclusive(Assignor::Range),
        1 => GroupMode::Exclusive(Assignor::RoundRobin),
        2 => GroupMode::Exclusive(Assignor::Sticky),
        3 => GroupMode::Shared,
        _ => GroupMode::KeyShared,
    };
    let members = r.random_range(1..=3);
    let lossy = r.random_bool(0.7);
    GroupOptions {
        mode,
        members,
        // Windows and batches large enough for a group to keep up with the
        // producers (thousands of records a second): a group that cannot would
        // never finish, which tests nothing.
        push_prefetch: r.random_bool(0.5).then(|| r.random_range(16..=256)),
        max_records: r.random_range(4..=200),
        filter_blue: r.random_bool(0.3),
        ack_timeout_ms: r.random_range(100..=2_000),
        max_deliveries: r.random_range(2..=6),
        nack_prob: if lossy { r.random_range(0.0..0.05) } else { 0.0 },
        reject_prob: if lossy { r.random_range(0.0..0.02) } else { 0.0 },
        forget_prob: if lossy { r.random_range(0.0..0.02) } else { 0.0 },
        process_us: r.random_range(0..=2_000),
        weights: (0..members).map(|_| r.random_range(1..=4)).collect(),
        session_ms: r.random_range(500..=3_000),
        seek_prob: 0.0,
    }
}

fn weight(rng: &mut mq_core::Rng, on_prob: f64) -> u32 {
    if rng.random_bool(on_prob) {
        rng.random_range(1..=10)
    } else {
        0
    }
}

impl Options {
    /// About one replication round trip of the seed's network and disks, in
    /// microseconds: a produce reaching the leader, the follower's fetch
    /// answered, its fsync and its next fetch (two one-way delays and a fsync, at
    /// their minimum plus mean).
    pub fn replication_round_trip_us(&self) -> u64 {
        2 * (self.delay_min_us + self.delay_mean_us) + self.fsync_min_us + self.fsync_mean_us
    }

    /// [`Options::replication_round_trip_us`] in milliseconds (at least 1). An
    /// acks=all produce cannot commit faster, so a broker produce timeout below
    /// twice this times out nearly every acks=all produce of a replicated
    /// partition: `liveness_progress` would fail for a configuration, not a bug
    /// (seed 83).
    pub fn replication_round_trip_ms(&self) -> u64 {
        self.replication_round_trip_us().div_ceil(1_000).max(1)
    }

    /// The shortest broker produce timeout a seed draws: twice a replication
    /// round trip, and on links that keep order (where one delayed message holds
    /// back every later one, as on a TCP connection) the longest tail delay more.
    /// Below that, on a busy link, nearly every acks=all commit waits behind some
    /// delayed message and times out (seed 1009726: 14 ms against 276 ms tails).
    pub fn produce_timeout_floor_ms(&self) -> u64 {
        let held_back = if !self.reorder && self.delay_tail_prob > 0.0 { self.delay_tail_max_ms } else { 0 };
        (2 * self.replication_round_trip_ms() + held_back).min(10_000)
    }

    /// Draws the options of `seed` from its `options` stream.
    pub fn draw(seed: u64) -> Options {
        let mut r = Seed(seed).stream("options");
        let cluster_size = r.random_range(1..=MAX_CLUSTER_SIZE);
        let replication_factor = r.random_range(1..=cluster_size.min(3)) as u16;
        let min_insync_replicas = r.random_range(1..=replication_factor);
        let voter_count = r.random_range(1..=cluster_size.min(MAX_VOTERS));
        let mut pool: Vec<u32> = (1..=cluster_size).collect();
        let mut voters: Vec<u32> = (0..voter_count).map(|_| pool.remove(r.random_range(0..pool.len()))).collect();
        voters.sort_unstable();
        let unclean_leader_election = cluster_size > 1 && r.random_bool(0.1);
        let mut acks =
            AcksMix { none: r.random_range(0..=2), leader: r.random_range(0..=5), all: r.random_range(1..=6) };
        if r.random_bool(0.2) {
            acks = AcksMix { none: 0, leader: 0, all: 1 };
        }
        let mut o = Options {
            cluster_size,
            voters,
            unclean_leader_election,
            topics: r.random_range(1..=3),
            partitions: r.random_range(1..=4),
            replication_factor,
            min_insync_replicas,
            retention_bytes: r.random_bool(0.15).then(|| r.random_range(4_096..=65_536)),
            retention_ms: r.random_bool(0.1).then(|| r.random_range(500..=5_000)),
            max_inflight_persists: r.random_range(1..=4),
            acks,
            producers: r.random_range(1..=4),
            produce_interval_us: r.random_range(200..=5_000),
            batch_max_records: r.random_range(1..=8),
            producer_max_inflight: r.random_range(1..=8),
            request_timeout_ms: r.random_range(50..=1_000),
            consumer_per_partition: r.random_bool(0.7),
            safety_ms: r.random_range(2_000..=8_000),
            // Generous: a healed cluster may need several elections (1 to 2 s each),
            // session timeouts (3 s) and re-registration before it serves again.
            liveness_ms: if cluster_size == 1 { 20_000 } else { 30_000 },
            delay_min_us: r.random_range(10..=500),
            delay_mean_us: r.random_range(10..=2_000),
            delay_tail_prob: if r.random_bool(0.5) { r.random_range(0.0..0.05) } else { 0.0 },
            delay_tail_max_ms: r.random_range(5..=500),
            loss_prob: if r.random_bool(0.5) { r.random_range(0.0..0.1) } else { 0.0 },
            dup_prob: if r.random_bool(0.5) { r.random_range(0.0..0.1) } else { 0.0 },
            reorder: r.random_bool(0.5),
            link_capacity: r.random_range(8..=512),
            fsync_min_us: r.random_range(20..=500),
            fsync_mean_us: r.random_range(20..=3_000),
            fsync_slow_prob: if r.random_bool(0.5) { r.random_range(0.0..0.05) } else { 0.0 },
            fsync_slow_max_ms: r.random_range(5..=500),
            torn_prob: r.random_range(0.3..=1.0),
            drift_max_ppm: r.random_range(0..=1_000),
            clock_step_max_ms: r.random_range(1..=2_000),
            fault_interval_ms: r.random_range(50..=1_000),
            w_crash: weight(&mut r, 0.85),
            w_pause: weight(&mut r, 0.5),
            w_partition: weight(&mut r, 0.6),
            w_clog: weight(&mut r, 0.5),
            w_clock_step: weight(&mut r, 0.5),
            w_crash_controller: if cluster_size > 1 { weight(&mut r, 0.5) } else { 0 },
            election_timeout_ms: r.random_range(150..=1_000),
            heal_mean_ms: r.random_range(10..=1_000),
            restart_mean_ms: r.random_range(1..=500),
            // Drawn last so that adding it left every earlier option of a seed as it was.
            crash_new_controller_prob: if voter_count == 3 && r.random_bool(0.5) {
                r.random_range(0.3..=0.9)
            } else {
                0.0
            },
            crash_new_controller_within_us: r.random_range(1..=3_000),
            idempotence: r.random_bool(0.8),
            linger_us: if r.random_bool(0.5) { 0 } else { r.random_range(1..=5_000) },
            batch_max_bytes: r.random_range(256..=16_384),
            max_inflight_per_partition: r.random_range(1..=5),
            groups: Vec::new(),
            w_member: 0,
            figure8: false,
            auth: false,
            w_shutdown: 0,
            attack_interval_ms: 0,
            workload_start_ms: 0,
            silent_consumers: Vec::new(),
            silent_adversaries: false,
            aimed: AimedOptions::off(),
            buggify: false,
            knobs: Knobs::default(),
        };
        // Drawn last so that adding them left every earlier option of a seed as it
        // was.
        if voter_count == 3 && r.random_bool(0.25) {
            // The script owns the network cut and the controller's fate.
            o.figure8 = true;
            o.crash_new_controller_prob = 0.0;
            o.w_partition = 0;
            o.w_crash_controller = 0;
        }
        let groups = r.random_range(0..=2);
        o.groups = (0..groups).map(|_| draw_group(&mut r)).collect();
        o.w_member = if groups > 0 { weight(&mut r, 0.6) } else { 0 };
        if o.crash_new_controller_prob > 0.0 {
            // Controller churn: quick elections and restarts give the aimed fault
            // many elections to act on within the safety phase.
            o.election_timeout_ms = r.random_range(150..=300);
            o.restart_mean_ms = o.restart_mean_ms.min(100);
        }
        // Drawn last so that adding them left every earlier option of a seed as it
        // was.
        o.auth = r.random_bool(0.5);
        o.w_shutdown = if cluster_size > 1 { weight(&mut r, 0.6) } else { 0 };
        o.attack_interval_ms = r.random_range(5..=100);
        // Drawn last so that adding them left every earlier option of a seed as it
        // was.
        o.aimed = AimedOptions::draw(&mut r, o.voters.len(), o.replication_factor, o.groups.len(), o.figure8);
        o.buggify = r.random_bool(0.5);
        o.knobs = Knobs::draw(&mut r, &o);
        let mut deposed = Seed(seed).stream("options-aimed-deposed");
        o.aimed.draw_deposed(&mut deposed, o.cluster_size, o.groups.len());
        let mut admin_commit = Seed(seed).stream("options-aimed-admin-commit");
        o.aimed.draw_admin_commit(&mut admin_commit, o.voters.len(), o.figure8);
        let mut first_commit = Seed(seed).stream("options-aimed-first-commit");
        o.aimed.draw_first_commit(&mut first_commit, o.replication_factor);
        // Members that seek (replays): from a stream of their own, so that no
        // earlier draw moved.
        let mut seeks = Seed(seed).stream("options-member-seeks");
        for g in &mut o.groups {
            if !o.auth && seeks.random_bool(0.5) {
                g.seek_prob = seeks.random_range(0.002..0.05);
            }
        }
        // A seed aiming at deposed leaders needs a broker session well inside its
        // safety phase (the moment is a fencing): with sessions drawn up to 9 s
        // and a phase of 2 to 8 s it fitted in few seeds. Clamped after the draw,
        // like the ISR knobs, so that no draw moved.
        // And a safety phase long enough to hold group traffic at all: members
        // join only after the topics exist and, in auth seeds, after the logins
        // (often 4 to 5 s in), so in a short phase no leader dealt any record
        // before the heal.
        // A seed aiming at first commits or follower fsyncs crashes an ISR past
        // the broker session and, for a stalled follower's disk, waits out a
        // fencing and an election first (five sessions): with sessions drawn
        // up to 9 s and a phase of 2 to 8 s that fitted in few seeds. A session
        // of at most an eighth of the phase, clamped after the draw.
        if o.aimed.first_commit > 0.0 || o.aimed.follower_fsync > 0.0 {
            let k = &mut o.knobs;
            k.broker_session_timeout_ms = k.broker_session_timeout_ms.min((o.safety_ms / 8).max(100));
            k.broker_heartbeat_interval_ms =
                k.broker_heartbeat_interval_ms.min((k.broker_session_timeout_ms / 2).max(10));
        }
        if o.aimed.deposed > 0.0 {
            o.safety_ms = o.safety_ms.max(8_000);
            let k = &mut o.knobs;
            k.broker_session_timeout_ms = k.broker_session_timeout_ms.min((o.safety_ms / 4).max(100));
            k.broker_heartbeat_interval_ms =
                k.broker_heartbeat_interval_ms.min((k.broker_session_timeout_ms / 2).max(10));
        }
        o
    }
}

impl Options {
    /// Checks options read from a file (drawn ones always pass): sizes in range,
    /// voters among the brokers, replication within the cluster.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |what: String| Err(format!("invalid options: {what}"));
        if !(1..=MAX_CLUSTER_SIZE).contains(&self.cluster_size) {
            return bad(format!("cluster_size {} not in 1..={MAX_CLUSTER_SIZE}", self.cluster_size));
        }
        if self.voters.is_empty()
            || self.voters.len() > MAX_VOTERS as usize
            || self.voters.windows(2).any(|w| w[0] >= w[1])
            || self.voters.iter().any(|v| !(1..=self.cluster_size).contains(v))
        {
            return bad(format!(
                "voters {:?} must be 1..={MAX_VOTERS} distinct brokers in increasing order",
                self.voters
            ));
        }
        if self.replication_factor == 0 || u32::from(self.replication_factor) > self.cluster_size {
            return bad(format!("replication_factor {} not in 1..=cluster_size", self.replication_factor));
        }
        if self.min_insync_replicas == 0 || self.min_insync_replicas > self.replication_factor {
            return bad(format!("min_insync_replicas {} not in 1..=replication_factor", self.min_insync_replicas));
        }
        if self.topics == 0 || self.partitions == 0 || self.producers == 0 {
            return bad("topics, partitions and producers must be at least 1".into());
        }
        if self.batch_max_records == 0 || self.producer_max_inflight == 0 || self.max_inflight_persists == 0 {
            return bad("batch_max_records, producer_max_inflight and max_inflight_persists must be at least 1".into());
        }
        let group_probs = self.groups.iter().flat_map(|g| [g.nack_prob, g.reject_prob, g.forget_prob, g.seek_prob]);
        if group_probs.into_iter().any(|p| !(0.0..=1.0).contains(&p)) {
            return bad("group probabilities must be within 0..=1".into());
        }
        if self.groups.iter().any(|g| g.members == 0 || g.weights.len() != g.members as usize) {
            return bad("every group needs at least one member and one weight per member".into());
        }
        let probs = [self.delay_tail_prob, self.loss_prob, self.dup_prob, self.fsync_slow_prob, self.torn_prob];
        if probs.iter().any(|p| !(0.0..=1.0).contains(p)) {
            return bad("probabilities must be within 0..=1".into());
        }
        // The knobs: whatever mq-core itself accepts.
        let k = &self.knobs;
        if let Err(e) = k.node_config(self, 1).validate() {
            return bad(format!("knobs: broker settings: {e}"));
        }
        if let Err(e) = k.producer_config(self).validate() {
            return bad(format!("knobs: producer settings: {e}"));
        }
        if k.consumer_max_bytes == 0 || k.consumer_poll_interval_ms == 0 || k.member_pull_max_wait_ms == 0 {
            return bad(
                "knobs: consumer_max_bytes, consumer_poll_interval_ms and member_pull_max_wait_ms must be positive"
                    .into(),
            );
        }
        if k.member_retry_backoff_ms > k.member_retry_backoff_max_ms
            || k.member_max_pending_acks == 0
            || k.member_max_buffered_records == 0
        {
            return bad("knobs: member retry backoff above its maximum, or a member limit of 0".into());
        }
        Ok(())
    }
}

impl fmt::Display for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |o: Option<u64>| o.map_or("none".to_owned(), |v| v.to_string());
        writeln!(
            f,
            "cluster: size={} voters={:?} rf={} min_isr={} unclean_election={} max_inflight_persists={}",
            self.cluster_size,
            self.voters,
            self.replication_factor,
            self.min_insync_replicas,
            self.unclean_leader_election,
            self.max_inflight_persists
        )?;
        writeln!(
            f,
            "topics: count={} partitions={} retention_bytes={} retention_ms={}",
            self.topics,
            self.partitions,
            opt(self.retention_bytes),
            opt(self.retention_ms)
        )?;
        writeln!(
            f,
            "workload: producers={} produce_interval_us={} batch_max_records={} producer_max_inflight={} acks(0/1/all)={}/{}/{} request_timeout_ms={} consumer_per_partition={}",
            self.producers,
            self.produce_interval_us,
            self.batch_max_records,
            self.producer_max_inflight,
            self.acks.none,
            self.acks.leader,
            self.acks.all,
            self.request_timeout_ms,
            self.consumer_per_partition
        )?;
        writeln!(
            f,
            "producer: idempotence={} linger_us={} batch_max_bytes={} max_inflight_per_partition={}",
            self.idempotence, self.linger_us, self.batch_max_bytes, self.max_inflight_per_partition
        )?;
        for (i, g) in self.groups.iter().enumerate() {
            writeln!(
                f,
                "group g{i}: mode={:?} members={} push_prefetch={} max_records={} filter_blue={} ack_timeout_ms={} max_deliveries={} nack/reject/forget/seek={:.3}/{:.3}/{:.3}/{:.3} process_us={} weights={:?} session_ms={}",
                g.mode,
                g.members,
                opt(g.push_prefetch.map(u64::from)),
                g.max_records,
                g.filter_blue,
                g.ack_timeout_ms,
                g.max_deliveries,
                g.nack_prob,
                g.reject_prob,
                g.forget_prob,
                g.seek_prob,
                g.process_us,
                g.weights,
                g.session_ms
            )?;
        }
        writeln!(f, "phases: safety_ms={} liveness_ms={}", self.safety_ms, self.liveness_ms)?;
        let k = &self.knobs;
        writeln!(
            f,
            "knobs broker: raft_heartbeat_ms={} raft_entries_per_append={} producer_id_block={} max_batch_bytes={} max_pending_write_bytes={} max_fetch_bytes={} max_waiters_per_partition={} retention_check_ms={}",
            k.raft_heartbeat_interval_ms.map_or("default".to_owned(), |v| v.to_string()),
            k.raft_max_entries_per_append,
            k.producer_id_block,
            k.max_batch_bytes,
            k.max_pending_write_bytes,
            k.max_fetch_bytes,
            k.max_waiters_per_partition,
            k.retention_check_interval_ms
        )?;
        writeln!(
            f,
            "knobs broker: heartbeat_ms={} session_ms={} replica_lag_ms={} replica_fetch_wait_ms={} replica_fetch_bytes={} controller_request_timeout_ms={} admin_timeout_ms={} produce_timeout_ms={} metadata_fetch_ms={} group_partitions={} group_rf={}",
            k.broker_heartbeat_interval_ms,
            k.broker_session_timeout_ms,
            k.replica_lag_time_ms,
            k.replica_fetch_max_wait_ms,
            k.replica_fetch_max_bytes,
            k.controller_request_timeout_ms,
            k.admin_timeout_ms,
            k.produce_timeout_ms,
            k.metadata_fetch_interval_ms,
            k.group_coordinator_partitions,
            k.group_replication_factor
        )?;
        writeln!(
            f,
            "knobs clients: producer max_attempts={} backoff_ms={}..{} delivery_timeout_ms={} buffer_max_bytes={}; consumer max_bytes={} poll_ms={}; member pull_wait_ms={} join_extra_ms={} backoff_ms={}..{} max_pending_acks={} max_buffered_records={}",
            k.producer_max_attempts,
            k.producer_retry_backoff_ms,
            k.producer_retry_backoff_max_ms,
            k.producer_delivery_timeout_ms,
            k.producer_buffer_max_bytes,
            k.consumer_max_bytes,
            k.consumer_poll_interval_ms,
            k.member_pull_max_wait_ms,
            k.member_join_extra_ms.map_or("default".to_owned(), |v| v.to_string()),
            k.member_retry_backoff_ms,
            k.member_retry_backoff_max_ms,
            k.member_max_pending_acks,
            k.member_max_buffered_records
        )?;
        writeln!(
            f,
            "security: auth={} attack_interval_ms={} controlled_shutdown_weight={}",
            self.auth, self.attack_interval_ms, self.w_shutdown
        )?;
        writeln!(f, "{} buggify={}", self.aimed, self.buggify)?;
        if self.workload_start_ms > 0 {
            writeln!(f, "workload_start_ms={} (set by the shrinker)", self.workload_start_ms)?;
        }
        if !self.silent_consumers.is_empty() || self.silent_adversaries {
            writeln!(
                f,
                "silent_consumers={:?} silent_adversaries={} (set by the shrinker)",
                self.silent_consumers, self.silent_adversaries
            )?;
        }
        writeln!(
            f,
            "network: delay_min_us={} delay_mean_us={} tail_prob={:.4} tail_max_ms={} loss={:.4} dup={:.4} reorder={} capacity={}",
            self.delay_min_us,
            self.delay_mean_us,
            self.delay_tail_prob,
            self.delay_tail_max_ms,
            self.loss_prob,
            self.dup_prob,
            self.reorder,
            self.link_capacity
        )?;
        writeln!(
            f,
            "disk: fsync_min_us={} fsync_mean_us={} slow_prob={:.4} slow_max_ms={} torn_prob={:.3}",
            self.fsync_min_us, self.fsync_mean_us, self.fsync_slow_prob, self.fsync_slow_max_ms, self.torn_prob
        )?;
        writeln!(f, "clocks: drift_max_ppm={} step_max_ms={}", self.drift_max_ppm, self.clock_step_max_ms)?;
        write!(
            f,
            "faults: interval_ms={} weights(crash/pause/partition/clog/clock_step/crash_controller/member)={}/{}/{}/{}/{}/{}/{} election_timeout_ms={} heal_mean_ms={} restart_mean_ms={} crash_new_controller={:.3}/{}us figure8={}",
            self.fault_interval_ms,
            self.w_crash,
            self.w_pause,
            self.w_partition,
            self.w_clog,
            self.w_clock_step,
            self.w_crash_controller,
            self.w_member,
            self.election_timeout_ms,
            self.heal_mean_ms,
            self.restart_mean_ms,
            self.crash_new_controller_prob,
            self.crash_new_controller_within_us,
            self.figure8
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_knobs_pass_the_core_validation_and_reach_the_extremes() {
        let drawn: Vec<Options> = (0..2_000).map(Options::draw).collect();
        for (seed, o) in drawn.iter().enumerate() {
            assert_eq!(o.validate(), Ok(()), "seed {seed}: {o}");
        }
        let count = |f: &dyn Fn(&Options) -> bool| drawn.iter().filter(|o| f(o)).count();
        let defaults = count(&|o| o.knobs == Knobs::default());
        assert!((200..=600).contains(&defaults), "{defaults} of 2000 seeds keep the default knobs");
        assert!(count(&|o| o.knobs.raft_max_entries_per_append == 1) > 50);
        assert!(count(&|o| o.knobs.producer_max_attempts == 1) > 50);
        assert!(count(&|o| o.knobs.max_fetch_bytes == 1 && o.knobs.replica_fetch_max_bytes > 1) > 5);
        assert!(count(&|o| o.knobs.max_pending_write_bytes == o.knobs.max_batch_bytes) > 50);
        let tight =
            |o: &Options| o.knobs.producer_delivery_timeout_ms == o.request_timeout_ms + o.linger_us.div_ceil(1_000);
        assert!(count(&tight) > 50);
        let slow_heartbeat = |o: &Options| o.knobs.raft_heartbeat_interval_ms == Some(o.election_timeout_ms - 1);
        assert!(count(&slow_heartbeat) > 50);
    }

    #[test]
    fn options_without_knobs_load_with_the_former_fixed_values() {
        let o = (0..).map(Options::draw).find(|o| o.knobs != Knobs::default()).expect("a seed draws knobs");
        let mut json = serde_json::to_value(&o).expect("options serialize");
        json.as_object_mut().expect("an object").remove("knobs");
        let back: Options = serde_json::from_value(json).expect("options without knobs load");
        assert_eq!(back.knobs, Knobs::default());
        let node = back.knobs.node_config(&back, 1);
        assert_eq!(node.raft_max_entries_per_append, 256);
        assert_eq!(node.retention_check_interval, Duration::from_millis(200));
        let producer = back.knobs.producer_config(&back);
        assert_eq!((producer.max_attempts, producer.delivery_timeout), (10, Duration::from_secs(5)));
    }
}
