//! # mq-sim
//!
//! mq's deterministic simulator (DESIGN.md section 9, docs/simulator.md): one `u64`
//! seed expands into swarm options, a cluster of mq-core nodes with per-node disks and
//! clocks, a faulty network, a workload of producer and consumer state machines and a
//! fault schedule. The run has a safety phase with faults and a liveness phase that
//! heals the cluster and requires progress. A checker outside the core reads the
//! history of client operations and what nodes expose, and reports the first broken
//! invariant of `docs/invariants.md`.
//!
//! The same seed and code give the same run byte for byte: nothing reads a clock or a
//! global RNG, every map iterates in key order, and [`run_seed`] returns a hash of
//! the whole trace.
//!
//! ```
//! let report = mq_sim::run_seed(&mq_sim::SimConfig::new(7));
//! assert!(report.violation.is_none(), "{:?}", report.violation);
//! assert_eq!(report.trace_hash, mq_sim::run_seed(&mq_sim::SimConfig::new(7)).trace_hash);
//! ```

pub mod acl_mix;
pub mod adversary;
pub mod aimed;
pub mod campaign;
pub mod checker;
pub mod clock;
pub mod control;
pub mod coverage;
pub mod disk;
pub mod explore;
pub mod groups;
pub mod history;
pub mod members;
pub mod network;
pub mod options;
pub mod schedule;
pub mod shrink;
pub mod sim;
pub mod timeline;
pub mod trace;

pub use checker::Violation;
pub use options::Options;
pub use schedule::Schedule;

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The code version printed at the start of every run: the crate version and, when
/// built from a git checkout, `git describe`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("MQ_SIM_GIT_DESCRIBE"), ")");

/// A deliberate bug the simulator can inject to prove the checker catches it. Only
/// tests and a hidden CLI flag select one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mutation {
    /// The real system.
    #[default]
    None,
    /// The disk answers `Persisted` before the writes are durable, so the broker
    /// acknowledges records a crash can still lose.
    LyingDisk,
    /// The simulator panics when the liveness phase starts: proves a panic is
    /// reported as the seed's `core_panic` failure, not a crash of the campaign.
    Panic,
    /// The network delivers every produce request of a client twice (a transport
    /// that replays requests behind the client's back), so records are appended
    /// more often than the producer sent them (`duplicates_bounded`).
    DuplicateRequests,
}

impl FromStr for Mutation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Mutation::None),
            "lying-disk" => Ok(Mutation::LyingDisk),
            "panic" => Ok(Mutation::Panic),
            "duplicate-requests" => Ok(Mutation::DuplicateRequests),
            other => Err(format!("unknown mutation {other:?}; known: none, lying-disk, panic, duplicate-requests")),
        }
    }
}

impl fmt::Display for Mutation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mutation::None => "none",
            Mutation::LyingDisk => "lying-disk",
            Mutation::Panic => "panic",
            Mutation::DuplicateRequests => "duplicate-requests",
        })
    }
}

/// How often [`SimConfig::new`] checks node invariants (every this many inputs).
pub const DEFAULT_NODE_INVARIANTS_EVERY: u64 = 64;

/// How to run one seed.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// The seed.
    pub seed: u64,
    /// Keep the text of the trace (for `replay --trace`).
    pub keep_trace: bool,
    /// A deliberate bug, for tests of the checker.
    pub mutation: Mutation,
    /// Call a node's `check_invariants` after every `n`-th input it handles (or
    /// less often once its logs hold more than `8 n` batches: about eight batch
    /// visits per input, `mq_core::node::full_check_spacing`), and always after a
    /// restart and at the end (DESIGN.md section 2). `1` checks as often as that
    /// allows; `0` never. The check walks every batch of every log, so checking
    /// after each input would make a run quadratic in its length; debug builds of
    /// mq-core also space their own full checks inside `Node::handle` the same way.
    pub node_invariants_every: u64,
    /// Options and faults fixed by a recorded schedule instead of drawn from the
    /// seed (`mq-sim replay --schedule`, `mq-sim shrink`).
    pub schedule: Option<Arc<Schedule>>,
    /// Events after which the run stops as stuck (`event_budget`, a liveness
    /// failure); the shrinker lowers it to cut short candidates that cannot win.
    pub event_budget: u64,
}

impl SimConfig {
    /// Seed `seed` with the defaults: no trace text, no mutation, node invariants
    /// every [`DEFAULT_NODE_INVARIANTS_EVERY`] inputs.
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            keep_trace: false,
            mutation: Mutation::None,
            node_invariants_every: DEFAULT_NODE_INVARIANTS_EVERY,
            schedule: None,
            event_budget: sim::EVENT_BUDGET,
        }
    }

    /// The run a schedule describes.
    pub fn from_schedule(schedule: Schedule) -> Self {
        SimConfig { mutation: schedule.mutation(), ..SimConfig::new(schedule.seed) }.with_schedule(Arc::new(schedule))
    }

    /// This configuration with `schedule`.
    pub fn with_schedule(self, schedule: Arc<Schedule>) -> Self {
        SimConfig { schedule: Some(schedule), ..self }
    }

    /// The options of the run: the schedule's, or drawn from the seed.
    pub fn options(&self) -> Options {
        self.schedule.as_ref().map_or_else(|| Options::draw(self.seed), |s| s.options.clone())
    }
}

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// What a run injected and reached; every report prints them so a green run
        /// shows it tested something.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct Counters {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Counters {
            /// Adds `other` to these counters.
            pub fn add(&mut self, other: &Counters) {
                $(self.$name += other.$name;)*
            }

            /// Sets the counter named `name` to `value`; false when no counter has
            /// that name.
            pub fn set(&mut self, name: &str, value: u64) -> bool {
                match name {
                    $(stringify!($name) => self.$name = value,)*
                    _ => return false,
                }
                true
            }

            /// Every counter with its name, in a fixed order.
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }
        }
    };
}

counters!(
    /// Node crashes.
    crashes,
    /// Crashes aimed at the controller (Raft) leader.
    controller_crashes,
    /// Idempotent retries a leader recognised as appended already (answered with
    /// the original offset instead of appending again).
    deduplicated_batches,
    /// Extra committed copies of records of non-idempotent sends (allowed up to
    /// the send's retries: `duplicates_bounded`).
    duplicates_non_idempotent,
    /// Crashes of a node that had just won a Raft election (aimed fault).
    new_controller_crashes,
    /// Nodes cut off (one way) right after winning a Raft election (aimed fault).
    new_controller_isolations,
    /// Scripted figure-8 sequences that reached their third election.
    figure8_scripts,
    /// Scripted figure-8 sequences that ended as panel (d): the entry on a majority
    /// but never committed was overwritten by the leader of a later term.
    figure8_overwrites,
    /// Scripted figure-8 sequences that ended as panel (e): the old leader
    /// committed an entry of its own term, then crashed.
    figure8_commits,
    /// Node restarts from durable state.
    restarts,
    /// Crashes that left a torn write on disk.
    torn_writes,
    /// Damaged log tails recovery found and repaired.
    torn_detected,
    /// Persists a crash dropped.
    lost_persists,
    /// Node pauses.
    pauses,
    /// Clock steps.
    clock_steps,
    /// Network partitions.
    partitions,
    /// Link clogs.
    clogs,
    /// Messages sent.
    messages,
    /// Messages lost at random.
    dropped_loss,
    /// Messages dropped by a partition (at send or in flight).
    dropped_partition,
    /// Messages dropped by a full link.
    dropped_capacity,
    /// Messages that reached a crashed node.
    dropped_down,
    /// Messages duplicated.
    duplicated,
    /// Persists issued.
    persists,
    /// Slow fsyncs.
    slow_fsyncs,
    /// High-watermark events observed.
    hw_events,
    /// Produce operations invoked.
    ops_invoked,
    /// Produce operations acknowledged.
    ops_ok,
    /// Produce operations that failed definitely.
    ops_failed,
    /// Produce operations with an unknown outcome.
    ops_indefinite,
    /// Records acknowledged with acks=1 or acks=all.
    records_acked,
    /// Records read by consumers.
    records_read,
    /// Records the final read-back read (`final_readback`).
    readback_records,
    /// Records committed (below the final high watermarks).
    records_committed,
    /// Records acknowledged with acks=all.
    records_acked_all,
    /// Produce requests a producer sent again after an attempt failed.
    retries,
    /// Partition leaders elected (`BecameLeader` events).
    leader_elections,
    /// Controller (Raft) leaders elected.
    controller_elections,
    /// ISR shrinks seen by leaders.
    isr_shrinks,
    /// ISR expansions seen by leaders.
    isr_expands,
    /// Follower truncations of a diverging tail.
    truncations,
    /// Records removed by those truncations.
    records_truncated,
    /// Unclean elections (only in seeds whose topics allow them).
    unclean_elections,
    /// acks=all records exempt from the loss checks after an unclean election.
    records_exempt_unclean,
    /// Times a consumer switched to another partition leader.
    consumer_leader_changes,
    /// Records partition leaders handed to group members (`GroupDelivered`).
    group_deliveries,
    /// Of which deliveries after the first of a record at that leader.
    group_redeliveries,
    /// Records whose ack a leader confirmed (newly covered offsets).
    group_acks_confirmed,
    /// Records members nacked (consume later).
    group_nacks,
    /// Records members rejected.
    group_rejects,
    /// Records members never answered (their lease expires).
    group_forgotten,
    /// Seeks members asked for (a replay of a batch they answered).
    group_seeks,
    /// Records dead-lettered (acknowledged appends to `<topic>.dlq`).
    group_dead_letters,
    /// Rebalances members went through (`Rebalanced` events).
    group_rebalances,
    /// Group members crashed (replaced by a fresh client that joins again).
    member_crashes,
    /// Group members that left gracefully and joined again.
    member_leaves,
    /// Controlled shutdowns begun (`Node::begin_shutdown` on a live broker).
    shutdowns_started,
    /// Controlled shutdowns that completed (`Node::is_shut_down`) and stopped the
    /// broker cleanly.
    shutdowns_completed,
    /// Controlled shutdowns that did not complete within their bound (the broker
    /// was then stopped like a crash).
    shutdowns_forced,
    /// Partitions whose leadership a controlled shutdown had to move, watched for
    /// the election bound.
    shutdown_leader_moves,
    /// Seeds' setups of principals and grants that completed (auth seeds).
    security_setups,
    /// Hostile requests the adversarial clients sent.
    adversary_attempts,
    /// Of which refused with an error (the rest were lost or unanswered).
    adversary_refused,
    /// Of which refused `Unauthenticated`.
    adversary_unauthenticated,
    /// Of which refused `Unauthorized`.
    adversary_unauthorized,
    /// Aimed faults (docs/simulator.md "Aimed faults"): a voter crashed right
    /// after granting its vote, restarting inside the term.
    aimed_vote,
    /// Of which with a rival candidate of that term held back until the restart.
    aimed_vote_rivals,
    /// A partition leader crashed within a fetch round trip of applying a
    /// committed ISR expansion, or after the answer to one it asked for was
    /// held past its request timeout.
    aimed_isr_commit,
    /// A follower crashed between appending fetched records and their fsync.
    aimed_follower_fsync,
    /// A new partition leader crashed, paused or had a follower link clogged in
    /// its first fetch round.
    aimed_first_fetch,
    /// A member or its coordinator crashed right after a rebalance.
    aimed_rebalance,
    /// Links of a partition leader that had just dealt group records clogged
    /// with another broker, past the broker session (one per other broker).
    aimed_deposed,
    /// A member's heartbeat held back (up to twice the request timeout) so that
    /// it may arrive after a rebalance its member's later join completed.
    aimed_heartbeat_delays,
    /// An ISR change request delivered twice (its copy refused as stale).
    aimed_isr_duplicates,
    /// ISR expansions whose answer was held past the leader's request timeout
    /// (the moments aimed at; a replay of a recorded schedule counts none).
    aimed_isr_unanswered,
    /// ISR members whose fetches of a partition were held past the replica lag
    /// time, so that the leader shrinks its ISR and asks to expand it again
    /// when they catch up (the `isr_commit` moments' lead-in).
    aimed_isr_induced,
    /// Disks stalled (`Fault::DiskStall`): no fsync completes for a while.
    disk_stalls,
    /// Followers whose disk an aimed fault stalled between appending fetched
    /// records and their fsync, while their leader crashed past its session.
    aimed_fsync_stall,
    /// Faults applied at new partition leaders' first HW move of a tenure: the
    /// crashes of the leader and its ISR (the weakest member last and back
    /// first) and that member's disk stall until its crash.
    aimed_first_commit,
    /// Topic creations whose Raft append the active controller's held Raft
    /// links kept from the other voters past an admin retry (`admin_commit`).
    aimed_admin_commit,
    /// acks=all probes sent after the producers stopped, in seeds where no
    /// acks=all produce had succeeded since the heal (`liveness_progress`).
    liveness_probes,
);

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.fields().iter().map(|(k, v)| format!("{k}={v}")).collect();
        f.write_str(&parts.join(" "))
    }
}

/// The outcome of one seed.
#[derive(Clone, Debug)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// The mutation it ran with.
    pub mutation: Mutation,
    /// Its options.
    pub options: Options,
    /// The first broken invariant, if any.
    pub violation: Option<Violation>,
    /// What it injected and reached.
    pub counters: Counters,
    /// The coverage marks its nodes hit, summed over every node and incarnation
    /// (docs/simulator.md "Coverage marks").
    pub coverage: mq_core::Coverage,
    /// Events simulated.
    pub events: u64,
    /// Simulated time at the end, in nanoseconds.
    pub sim_nanos: u64,
    /// The hash of the whole trace.
    pub trace_hash: u64,
    /// The trace text, when asked for.
    pub trace: Option<Vec<String>>,
    /// Every fault the run injected, as a schedule can replay it.
    pub faults: Vec<schedule::Timed>,
    /// The trace as structured events with the timeline's notes, when asked for.
    pub trace_events: Option<Vec<trace::TraceEvent>>,
    /// When an auth seed's principals and grants were in place everywhere (the
    /// honest clients start then), in simulated nanoseconds.
    pub security_ready_ns: Option<u64>,
}

impl Report {
    /// True when the seed passed.
    pub fn passed(&self) -> bool {
        self.violation.is_none()
    }

    /// The line a failing seed prints.
    pub fn fail_line(&self) -> Option<String> {
        self.violation.as_ref().map(|v| format!("FAIL seed={} invariant={}: {}", self.seed, v.invariant, v.what))
    }

    /// The command that replays this seed.
    pub fn replay_command(&self) -> String {
        let m = if self.mutation == Mutation::None { String::new() } else { format!(" --mutation {}", self.mutation) };
        format!("cargo run --release -p mq-sim -- replay --seed {}{m}", self.seed)
    }
}

thread_local! {
    static PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces the panic hook with one that only remembers where the panic happened,
/// so a campaign reports a core panic as that seed's failure without printing a
/// backtrace per seed. The binary installs it; tests keep the default hook.
pub fn install_quiet_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map(|l| l.to_string());
        PANIC_AT.with(|p| *p.borrow_mut() = at);
    }));
}

/// Runs one seed. A panic inside the core (or the simulator) is caught and reported
/// as the seed's `core_panic` failure.
pub fn run_seed(cfg: &SimConfig) -> Report {
    let options = cfg.options();
    let mut sim = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let s = sim.insert(sim::Sim::new(cfg.clone()));
        s.run();
    }));
    let mut report = Report {
        seed: cfg.seed,
        mutation: cfg.mutation,
        options,
        violation: None,
        counters: Counters::default(),
        coverage: mq_core::Coverage::default(),
        events: 0,
        sim_nanos: 0,
        trace_hash: 0,
        trace: None,
        faults: Vec::new(),
        trace_events: None,
        security_ready_ns: None,
    };
    if let Some(s) = sim.as_mut() {
        report.counters = s.counters.clone();
        report.coverage = s.coverage();
        report.events = s.events;
        report.sim_nanos = s.now().as_nanos();
        report.trace_hash = s.trace.hash();
        report.trace = s.trace.take_lines();
        report.faults = std::mem::take(&mut s.fault_log);
        report.trace_events = s.trace.take_events();
        report.security_ready_ns = s.security_ready_at.map(mq_core::Instant::as_nanos);
        report.violation = s.checker.violation().cloned();
    }
    if let Err(payload) = result {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        let at = PANIC_AT.with(|p| p.borrow_mut().take()).map_or(String::new(), |l| format!(" at {l}"));
        report.violation = Some(Violation { invariant: "core_panic", what: format!("{msg}{at}"), liveness: false });
    }
    report
}
