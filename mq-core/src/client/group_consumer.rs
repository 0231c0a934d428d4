//! The consumer-group client (docs/consumers.md section 6.6; the protocol it follows
//! is in sections 3 and 6 there): finds the group's coordinator, joins, heartbeats,
//! fetches the records of its assigned partitions from their leaders (long polls or
//! push subscriptions), hands them to the application, and sends the application's
//! acks back, reporting each one confirmed only once the leader answers `Acked`.
//!
//! **Membership.** `FindCoordinator` goes to any broker (rotating after a failure);
//! `JoinGroup` to the coordinator, first without a member id, then with the id the
//! coordinator gave. After `Joined` the member heartbeats every `heartbeat_interval`
//! (the coordinator's choice), counted from when the previous heartbeat left.
//! `RebalanceInProgress` or `IllegalGeneration` make it rejoin with its id,
//! `UnknownMember` without one. `NotCoordinator`, `CoordinatorNotAvailable`,
//! `NotReady`, a missing answer or a closed connection make it look the
//! coordinator up again, then carry on (a heartbeat to a new coordinator is
//! answered `UnknownMember`, which starts a fresh join).
//!
//! **Rebalances.** While it rejoins the member fetches nothing: fetches out are
//! forgotten. In an exclusive group their answers are ignored; in shared and
//! key_shared groups what they still bring is leased to this member, so it is
//! taken until the next fetch of the partition replaces them. Acks still waiting are sent at once with
//! the old generation (the "flush": a leader that has not seen the new generation
//! yet takes them). On `Joined`, the partitions no longer assigned are revoked:
//! their waiting acks and seeks are dropped with an event, and their buffered
//! records that the application has not taken are dropped. Acks of partitions
//! still assigned stay and are sent with the new generation (an ack is taken from
//! any member of the current generation).
//!
//! **Fetching.** Each assigned partition's leader comes from `Metadata` (one
//! request at a time, to any broker, with the same leader table as the producer).
//! Pull: one `GroupFetch` out per partition, sent again when answered. Push: one
//! subscription per partition; its `Delivered` answers arrive on the same
//! correlation id until an error ends it; a subscription silent for a whole
//! `session_timeout` is opened again (its leader may have died without a word),
//! and what the leader still pushes on it until the new one replaces it is taken. A
//! stale-leader error, a missing answer or a closed connection forget the leader;
//! the fetch is sent again after metadata and a backoff. New fetches stop while
//! `max_buffered_records` records wait for the application.
//!
//! **Acks and seeks.** [`GroupConsumer::ack`] and its siblings only queue; the
//! queue of each partition leaves as one `GroupAck` (coalesced) when the driver
//! next drains [`GroupConsumer::poll_output`], and one ack or seek request is out
//! per partition at a time, so they reach the leader in the order made (queued
//! acks go before a queued seek). Acks are idempotent: one that was lost, timed
//! out or refused by a stale leader is queued again and sent to the leader metadata
//! names next; one refused `IllegalGeneration` is sent again with the current
//! generation if it moved, and otherwise waits for the next one (the member
//! rejoins). At most `max_pending_acks` acks wait or are out.
//!
//! **Closing.** [`GroupConsumer::close`] stops fetching, drops the buffered
//! records, flushes waiting acks and seeks until they are answered or the close
//! deadline passes (then drops the rest with an event), sends `LeaveGroup`, and
//! reports [`GroupEvent::Closed`] when it is answered or times out.
//!
//! **Authentication** (with `credentials`, [`crate::client::auth`]): requests to
//! a broker wait until it authenticated the member; `Unauthenticated` from a
//! restarted coordinator is handled like a moved coordinator, from a restarted
//! leader like a passing refusal (retried after a backoff), each after logging in
//! again. Refused credentials are fatal: [`GroupEvent::Error`] naming the app key,
//! then [`GroupEvent::Closed`].
//!
//! Three drains, all to be emptied after every mutation: [`GroupConsumer::poll_output`]
//! (requests to send; it also sends what the application queued),
//! [`GroupConsumer::poll_record`] (records for the application) and
//! [`GroupConsumer::poll_event`] (what happened).

use crate::client::auth::{AuthGate, Credentials, Routed, SendOutput};
use crate::client::retry::{backoff, jittered, BrokerRotation, Leaders};
use crate::contract::{Input, Peer};
use crate::group::coordinator::{validate_group_name, MAX_ACK_TIMEOUT, MAX_WEIGHT, MIN_ACK_TIMEOUT};
use crate::group::GroupMode;
use crate::ids::{CorrelationId, GroupGeneration, LeaderEpoch, MemberId, NodeId, Offset, TopicPartition};
use crate::rng::{Rng, Seed};
use crate::security::validate_app_key;
use crate::time::{Duration, Instant};
use crate::wire::{
    AckKind, DeliveredRecord, ErrorCode, FetchMode, GroupAck, GroupFetch, GroupSeek, GroupSettings, GroupView,
    JoinGroup, Joined, Message, Record, Request, RequestBody, ResponseBody, SeekTo, WireError,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The shortest session timeout coordinators accept (docs/consumers.md section 3).
const MIN_SESSION_TIMEOUT: Duration = Duration::from_millis(100);
/// The longest session timeout coordinators accept.
const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(300);
/// The most fetches of one partition a member keeps listening on after they
/// stopped being its current fetch (`GroupConsumer::adopt_orphan`): each
/// rebalance or silent subscription leaves one until its leader ends it.
const MAX_ORPHANS_PER_PARTITION: usize = 4;

/// How records reach the member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Long polls: one `GroupFetch` per partition out at a time.
    Pull {
        /// At most this many records per answer.
        max_records: u32,
        /// How long the leader may hold a fetch without records.
        max_wait: Duration,
    },
    /// A push subscription per partition.
    Push {
        /// At most this many records per push.
        max_records: u32,
        /// The most unacked deliveries the member holds per partition.
        prefetch: u32,
    },
}

/// Group consumer settings: [`GroupConsumerConfig::new`] and the chained setters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConsumerConfig {
    /// Every broker of the cluster (`FindCoordinator` and `Metadata` rotate over them).
    pub brokers: Vec<NodeId>,
    /// The group name.
    pub group: String,
    /// The topics this member consumes.
    pub topics: Vec<String>,
    /// The group's mode (every member must ask for the same).
    pub mode: GroupMode,
    /// The group's settings (every member must ask for the same).
    pub settings: GroupSettings,
    /// This member's weight in a shared group (1 to 1000).
    pub weight: u32,
    /// The coordinator evicts the member after this long without a heartbeat.
    pub session_timeout: Duration,
    /// Pull or push.
    pub delivery: Delivery,
    /// How long a request other than a join or a fetch may wait for its answer.
    pub request_timeout: Duration,
    /// How long a join may wait: the coordinator holds it until every member has
    /// rejoined or the longest session timeout of the group has passed.
    pub join_timeout: Duration,
    /// The first retry waits about this long; each further one twice as long.
    pub retry_backoff: Duration,
    /// The longest wait between two attempts.
    pub retry_backoff_max: Duration,
    /// Acks (and cumulative acks) waiting or out, at most; more are refused.
    pub max_pending_acks: usize,
    /// Records waiting for the application; new fetches stop at this many.
    pub max_buffered_records: usize,
    /// The app key and secret to authenticate with (`None`: the brokers run
    /// without authentication).
    pub credentials: Option<Credentials>,
}

impl GroupConsumerConfig {
    /// A member of `group` consuming `topics` from these brokers: sticky exclusive
    /// mode, default group settings, weight 1, a 10 s session, pulls of up to 100
    /// records waiting up to 500 ms.
    pub fn new(
        brokers: impl IntoIterator<Item = NodeId>,
        group: impl Into<String>,
        topics: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        GroupConsumerConfig {
            brokers: brokers.into_iter().collect(),
            group: group.into(),
            topics: topics.into_iter().map(Into::into).collect(),
            mode: GroupMode::Exclusive(Default::default()),
            settings: GroupSettings::default(),
            weight: 1,
            session_timeout: Duration::from_secs(10),
            delivery: Delivery::Pull { max_records: 100, max_wait: Duration::from_millis(500) },
            request_timeout: Duration::from_secs(5),
            join_timeout: Duration::from_secs(30),
            retry_backoff: Duration::from_millis(50),
            retry_backoff_max: Duration::from_secs(1),
            max_pending_acks: 10_000,
            max_buffered_records: 10_000,
            credentials: None,
        }
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: GroupMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the group settings.
    pub fn settings(mut self, settings: GroupSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Sets the weight.
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Sets `session_timeout`.
    pub fn session_timeout(mut self, d: Duration) -> Self {
        self.session_timeout = d;
        self
    }

    /// Pulls: up to `max_records` per answer, waiting up to `max_wait`.
    pub fn pull(mut self, max_records: u32, max_wait: Duration) -> Self {
        self.delivery = Delivery::Pull { max_records, max_wait };
        self
    }

    /// Push subscriptions: up to `max_records` per push, `prefetch` unacked per
    /// partition.
    pub fn push(mut self, max_records: u32, prefetch: u32) -> Self {
        self.delivery = Delivery::Push { max_records, prefetch };
        self
    }

    /// Sets `request_timeout`.
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// Sets `join_timeout`.
    pub fn join_timeout(mut self, d: Duration) -> Self {
        self.join_timeout = d;
        self
    }

    /// Sets the retry backoff: first wait and longest wait.
    pub fn retry_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.retry_backoff = first;
        self.retry_backoff_max = max;
        self
    }

    /// Sets `max_pending_acks`.
    pub fn max_pending_acks(mut self, n: usize) -> Self {
        self.max_pending_acks = n;
        self
    }

    /// Sets `max_buffered_records`.
    pub fn max_buffered_records(mut self, n: usize) -> Self {
        self.max_buffered_records = n;
        self
    }

    /// Authenticates with these credentials.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Checks the settings; every error names the setting and the rule. The
    /// ranges are the coordinator's, so a valid config is never refused for them.
    pub fn validate(&self) -> Result<(), GroupConsumerConfigError> {
        let bad = |setting: &'static str, rule: String| Err(GroupConsumerConfigError::Invalid { setting, rule });
        if self.brokers.is_empty() {
            return bad("brokers", "name at least one broker".into());
        }
        if let Err(e) = validate_group_name(&self.group) {
            return bad("group", e.message);
        }
        if self.topics.is_empty() {
            return bad("topics", "subscribe to at least one topic".into());
        }
        if let Some(t) = self.topics.iter().find(|t| t.is_empty() || t.starts_with("__")) {
            return bad("topics", format!("{t:?} is empty or reserved (names starting with __)"));
        }
        if self.weight == 0 || self.weight > MAX_WEIGHT {
            return bad("weight", format!("must be 1 to {MAX_WEIGHT}"));
        }
        if self.session_timeout < MIN_SESSION_TIMEOUT || self.session_timeout > MAX_SESSION_TIMEOUT {
            return bad("session_timeout", format!("must be {MIN_SESSION_TIMEOUT} to {MAX_SESSION_TIMEOUT}"));
        }
        let s = &self.settings;
        if s.ack_timeout < MIN_ACK_TIMEOUT || s.ack_timeout > MAX_ACK_TIMEOUT {
            return bad("settings.ack_timeout", format!("must be {MIN_ACK_TIMEOUT} to {MAX_ACK_TIMEOUT}"));
        }
        if s.max_deliveries == 0 {
            return bad("settings.max_deliveries", "must be at least 1".into());
        }
        match self.delivery {
            Delivery::Pull { max_records: 0, .. } | Delivery::Push { max_records: 0, .. } => {
                return bad("delivery.max_records", "must be at least 1".into());
            }
            Delivery::Push { prefetch: 0, .. } => return bad("delivery.prefetch", "must be at least 1".into()),
            _ => {}
        }
        if self.request_timeout == Duration::ZERO {
            return bad("request_timeout", "must be positive".into());
        }
        if self.join_timeout < self.session_timeout {
            return bad("join_timeout", "must be at least session_timeout (a held join waits that long)".into());
        }
        if self.retry_backoff > self.retry_backoff_max {
            return bad("retry_backoff", "must not exceed retry_backoff_max".into());
        }
        if self.max_pending_acks == 0 {
            return bad("max_pending_acks", "must be at least 1".into());
        }
        if self.max_buffered_records == 0 {
            return bad("max_buffered_records", "must be at least 1".into());
        }
        if let Some(Err(e)) = self.credentials.as_ref().map(|c| validate_app_key(&c.app_key)) {
            return bad("credentials", e.message);
        }
        Ok(())
    }

    /// How long a fetch may go unanswered: a long poll's wait plus the request
    /// timeout; a push subscription's silence up to a session timeout.
    fn fetch_deadline(&self) -> Duration {
        match self.delivery {
            Delivery::Pull { max_wait, .. } => max_wait + self.request_timeout,
            Delivery::Push { .. } => self.session_timeout,
        }
    }
}

/// Why a [`GroupConsumerConfig`] was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupConsumerConfigError {
    /// A setting breaks its rule.
    #[error("invalid group consumer setting {setting}: {rule}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// What it must be.
        rule: String,
    },
}

/// Why an ack, nack, reject or seek was refused. Nothing was queued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// The partition is not assigned to this member (now).
    #[error("{0} is not assigned to this member; its records may be with another member now")]
    NotAssigned(TopicPartition),
    /// `max_pending_acks` acks wait already; drain events and retry.
    #[error("{pending} acks are waiting for confirmation (limit {limit}); wait for AcksConfirmed events")]
    TooManyPending {
        /// Acks waiting or out.
        pending: usize,
        /// `max_pending_acks`.
        limit: usize,
    },
    /// The consumer is closing or closed.
    #[error("the consumer is closing")]
    Closing,
}

/// A record handed to the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Its partition.
    pub tp: TopicPartition,
    /// Its offset.
    pub offset: Offset,
    /// 1 for its first delivery since the partition's current leader took over, and
    /// so on.
    pub delivery: u32,
    /// The generation it was delivered in.
    pub generation: GroupGeneration,
    /// The record.
    pub record: Record,
}

/// What the consumer asks its driver to send.
#[derive(Clone, Debug, PartialEq)]
pub enum GroupConsumerOutput {
    /// Send `msg` to `to`.
    Send {
        /// The broker.
        to: Peer,
        /// The request.
        msg: Message,
    },
}

/// What happened, for the application (and the simulator's checker).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupEvent {
    /// A join completed: the member consumes `assignment` at `generation`.
    Rebalanced {
        /// The member's id.
        member: MemberId,
        /// The new generation.
        generation: GroupGeneration,
        /// The partitions it consumes now.
        assignment: Vec<TopicPartition>,
    },
    /// The member stopped fetching to rejoin.
    RebalanceStarted {
        /// What the coordinator or a leader said.
        reason: ErrorCode,
    },
    /// The leader committed these acks (`Acked`): confirmed acks are never
    /// delivered to the group again.
    AcksConfirmed {
        /// The partition.
        tp: TopicPartition,
        /// The entries applied.
        acks: Vec<(Offset, AckKind)>,
        /// The cumulative ack applied, if one was sent.
        up_to: Option<Offset>,
        /// The group's acked prefix on the partition after them.
        prefix: Offset,
        /// Entries the leader refused, with why (not confirmed).
        refused: Vec<(Offset, ErrorCode)>,
    },
    /// Acks that will not be sent again (their partition was revoked, the close
    /// deadline passed, or the leader refused them for good).
    AcksDropped {
        /// The partition.
        tp: TopicPartition,
        /// The entries.
        acks: Vec<(Offset, AckKind)>,
        /// The cumulative ack, if any.
        up_to: Option<Offset>,
        /// Why.
        reason: String,
    },
    /// A seek is committed: the next record delivered from `tp` is at or after
    /// `offset`. Buffered records of `tp` were dropped when the seek was sent.
    Sought {
        /// The partition.
        tp: TopicPartition,
        /// The new acked prefix.
        offset: Offset,
    },
    /// A seek that will not be sent again.
    SeekFailed {
        /// The partition.
        tp: TopicPartition,
        /// Where it went.
        to: SeekTo,
        /// Why.
        error: WireError,
    },
    /// Buffered records the application had not taken were dropped (their
    /// partition was revoked, a seek replaced them, or the consumer closed).
    RecordsDropped {
        /// The partition.
        tp: TopicPartition,
        /// How many.
        count: usize,
    },
    /// A refusal the consumer cannot fix by retrying alone (for example
    /// `InconsistentGroup` or `UnknownTopic` on a join); it retries after the
    /// longest backoff. A broker's refusal of the credentials (code
    /// `Unauthenticated`, naming the app key) is fatal instead: the consumer
    /// stops and [`GroupEvent::Closed`] follows.
    Error {
        /// The broker's error.
        error: WireError,
    },
    /// `close` finished: the member left (or its leave went unanswered).
    Closed,
}

/// A request out.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Req {
    Find,
    Join,
    Heartbeat,
    Leave,
    Metadata,
    Fetch { tp: TopicPartition, generation: GroupGeneration },
    Ack { tp: TopicPartition, generation: GroupGeneration, acks: Vec<(Offset, AckKind)>, up_to: Option<Offset> },
    Seek { tp: TopicPartition, generation: GroupGeneration, to: SeekTo },
}

#[derive(Clone, Debug)]
struct Outstanding {
    to: NodeId,
    deadline: Instant,
    req: Req,
}

/// Where membership stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Membership {
    /// A join leaves at `at` once the coordinator is known.
    Join { at: Instant },
    /// A `JoinGroup` is out.
    Joining,
    /// Joined; the next heartbeat leaves at `next_heartbeat`.
    Stable { next_heartbeat: Instant },
    /// `LeaveGroup` is out (closing).
    Leaving,
    /// Closed.
    Closed,
}

/// The last `Joined`.
#[derive(Clone, Debug)]
struct JoinedState {
    member: MemberId,
    generation: GroupGeneration,
    settings: GroupSettings,
    peers: BTreeMap<String, Vec<(MemberId, u32)>>,
    heartbeat_interval: Duration,
}

/// One partition: assigned, or revoked with an ack or seek still out.
#[derive(Clone, Debug, Default)]
struct Part {
    fetch: Option<CorrelationId>,
    next_fetch_at: Instant,
    fetch_failures: u32,
    /// Acks waiting to leave, and a cumulative ack.
    acks: Vec<(Offset, AckKind)>,
    up_to: Option<Offset>,
    seek: Option<SeekTo>,
    /// The ack or seek out.
    cursor: Option<CorrelationId>,
    next_cursor_at: Instant,
    cursor_failures: u32,
    /// Acks of this generation were refused `IllegalGeneration`: wait for a newer.
    refused_generation: Option<GroupGeneration>,
}

impl Part {
    fn has_cursor_work(&self) -> bool {
        !self.acks.is_empty() || self.up_to.is_some() || self.seek.is_some()
    }

    fn queued_acks(&self) -> usize {
        self.acks.len() + usize::from(self.up_to.is_some())
    }

    /// Adds acks, the newer word on an offset replacing an older one.
    fn merge(&mut self, acks: &[(Offset, AckKind)], up_to: Option<Offset>) {
        for &(o, k) in acks {
            match self.acks.iter_mut().find(|(q, _)| *q == o) {
                Some(e) => e.1 = k,
                None => self.acks.push((o, k)),
            }
        }
        self.up_to = self.up_to.max(up_to);
    }
}

/// The group consumer state machine (see the module docs).
#[derive(Debug)]
pub struct GroupConsumer {
    config: GroupConsumerConfig,
    rng: Rng,
    brokers: BrokerRotation,
    leaders: Leaders,
    now: Instant,
    next_correlation: u64,
    requests: BTreeMap<CorrelationId, Outstanding>,
    coordinator: Option<NodeId>,
    next_find_at: Instant,
    find_failures: u32,
    join_failures: u32,
    /// The id a join carries (`None` for a fresh join).
    join_id: Option<MemberId>,
    joined: Option<JoinedState>,
    membership: Membership,
    assignment: BTreeSet<TopicPartition>,
    parts: BTreeMap<TopicPartition, Part>,
    next_metadata_at: Instant,
    records: VecDeque<ConsumedRecord>,
    /// Fetches forgotten at a rebalance of a shared or key_shared group, at most
    /// one per partition: what they still bring is leased to this member (which
    /// stays in the view), so it is taken until the next fetch of the partition
    /// replaces them. (broker, partition, generation)
    orphans: BTreeMap<CorrelationId, (NodeId, TopicPartition, GroupGeneration)>,
    /// The close deadline, once closing.
    closing: Option<Instant>,
    /// Application calls queued work: `poll_output` drives before it drains.
    dirty: bool,
    /// The earliest time `drive` saw something to do later.
    wake: Instant,
    rebalances: u64,
    records_received: u64,
    auth: AuthGate,
    outputs: VecDeque<GroupConsumerOutput>,
    events: VecDeque<GroupEvent>,
}

impl SendOutput for GroupConsumerOutput {
    fn send(to: NodeId, msg: Message) -> Self {
        GroupConsumerOutput::Send { to: Peer::Node(to), msg }
    }
}

impl GroupConsumer {
    /// A consumer that has not joined yet (it starts at the first `handle`, or
    /// at the first drain); `seed` drives its jitter and its first broker.
    pub fn new(config: GroupConsumerConfig, seed: u64) -> Result<Self, GroupConsumerConfigError> {
        config.validate()?;
        let mut rng = Seed(seed).stream("group-consumer");
        let brokers = BrokerRotation::new(&config.brokers, &mut rng);
        let auth = AuthGate::new(
            config.credentials.clone(),
            Seed(seed).stream("group-consumer-auth"),
            config.request_timeout,
            config.retry_backoff,
            config.retry_backoff_max,
        );
        Ok(GroupConsumer {
            config,
            rng,
            brokers,
            leaders: Leaders::default(),
            now: Instant::ZERO,
            next_correlation: 1,
            requests: BTreeMap::new(),
            coordinator: None,
            next_find_at: Instant::ZERO,
            find_failures: 0,
            join_failures: 0,
            join_id: None,
            joined: None,
            membership: Membership::Join { at: Instant::ZERO },
            assignment: BTreeSet::new(),
            parts: BTreeMap::new(),
            next_metadata_at: Instant::ZERO,
            records: VecDeque::new(),
            orphans: BTreeMap::new(),
            closing: None,
            dirty: true,
            wake: Instant::ZERO,
            rebalances: 0,
            records_received: 0,
            auth,
            outputs: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    // ----- getters -----

    /// The settings.
    pub fn config(&self) -> &GroupConsumerConfig {
        &self.config
    }

    /// The member id of the last completed join.
    pub fn member(&self) -> Option<MemberId> {
        self.joined.as_ref().map(|j| j.member)
    }

    /// The generation of the last completed join.
    pub fn generation(&self) -> Option<GroupGeneration> {
        self.joined.as_ref().map(|j| j.generation)
    }

    /// The partitions assigned at the last completed join.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assignment.iter().cloned().collect()
    }

    /// The coordinator, if known.
    pub fn coordinator(&self) -> Option<NodeId> {
        self.coordinator
    }

    /// Every partition this consumer has metadata for, with the leader it follows
    /// (`None` once forgotten) and the newest leader epoch it was told; the epoch
    /// never goes back (docs/invariants.md, `client_metadata_monotonic`).
    pub fn leader_epochs(&self) -> impl Iterator<Item = (&TopicPartition, Option<NodeId>, LeaderEpoch)> + '_ {
        self.leaders.iter()
    }

    /// The leader this consumer believes leads `tp`.
    pub fn leader(&self, tp: &TopicPartition) -> Option<NodeId> {
        self.leaders.get(tp)
    }

    /// True while joined and not rejoining: records are being fetched.
    pub fn is_stable(&self) -> bool {
        matches!(self.membership, Membership::Stable { .. }) && self.closing.is_none()
    }

    /// True once `close` finished.
    pub fn is_closed(&self) -> bool {
        self.membership == Membership::Closed
    }

    /// Acks (and cumulative acks) waiting or out.
    pub fn pending_acks(&self) -> usize {
        let queued: usize = self.parts.values().map(Part::queued_acks).sum();
        let out: usize = self
            .requests
            .values()
            .map(|o| match &o.req {
                Req::Ack { acks, up_to, .. } => acks.len() + usize::from(up_to.is_some()),
                _ => 0,
            })
            .sum();
        queued + out
    }

    /// Records waiting for [`GroupConsumer::poll_record`].
    pub fn buffered_records(&self) -> usize {
        self.records.len()
    }

    /// Rebalances this member went through (joins that were not its first).
    pub fn rebalances(&self) -> u64 {
        self.rebalances
    }

    /// Records received from leaders over the consumer's life.
    pub fn records_received(&self) -> u64 {
        self.records_received
    }

    /// A broker's refusal of the credentials (naming the app key), once one
    /// refused them: the consumer stopped.
    pub fn auth_error(&self) -> Option<&WireError> {
        self.auth.refused()
    }

    // ----- application mutators -----

    /// Acks one record of `tp`: done.
    pub fn ack(&mut self, now: Instant, tp: &TopicPartition, offset: Offset) -> Result<(), AckError> {
        self.queue_acks(now, tp, &[(offset, AckKind::Ack)], None)
    }

    /// Acks several records of `tp` in one request.
    pub fn ack_batch(&mut self, now: Instant, tp: &TopicPartition, offsets: &[Offset]) -> Result<(), AckError> {
        let acks: Vec<(Offset, AckKind)> = offsets.iter().map(|o| (*o, AckKind::Ack)).collect();
        self.queue_acks(now, tp, &acks, None)
    }

    /// Acks every record of `tp` below `end` (cumulative).
    pub fn ack_up_to(&mut self, now: Instant, tp: &TopicPartition, end: Offset) -> Result<(), AckError> {
        self.queue_acks(now, tp, &[], Some(end))
    }

    /// Asks for the record to be delivered again after `delay`.
    pub fn nack(&mut self, now: Instant, tp: &TopicPartition, offset: Offset, delay: Duration) -> Result<(), AckError> {
        self.queue_acks(now, tp, &[(offset, AckKind::Nack { delay })], None)
    }

    /// Sends the record to the dead-letter topic.
    pub fn reject(&mut self, now: Instant, tp: &TopicPartition, offset: Offset) -> Result<(), AckError> {
        self.queue_acks(now, tp, &[(offset, AckKind::Reject)], None)
    }

    /// Moves the group's cursor on `tp` (a newer seek replaces one not sent yet).
    /// [`GroupEvent::Sought`] follows once committed.
    pub fn seek(&mut self, now: Instant, tp: &TopicPartition, to: SeekTo) -> Result<(), AckError> {
        self.advance(now);
        self.check_open(tp)?;
        self.parts.entry(tp.clone()).or_default().seek = Some(to);
        self.dirty = true;
        Ok(())
    }

    /// Starts closing: stops fetching, drops buffered records, flushes acks and
    /// seeks for up to `timeout`, then leaves the group. [`GroupEvent::Closed`]
    /// follows. A second call changes nothing.
    pub fn close(&mut self, now: Instant, timeout: Duration) {
        self.advance(now);
        if self.closing.is_some() || self.is_closed() {
            return;
        }
        self.closing = Some(self.now + timeout);
        self.stop_fetching();
        self.orphans.clear();
        let tps: Vec<TopicPartition> = self.parts.keys().cloned().collect();
        for tp in tps {
            self.drop_records(&tp);
        }
        self.dirty = true;
    }

    // ----- the contract -----

    /// Feeds one input.
    pub fn handle(&mut self, now: Instant, input: Input) {
        self.advance(now);
        if matches!(input, Input::Timeout) {
            self.auth.tick(self.now, &mut self.next_correlation, &mut self.outputs);
        }
        match input {
            Input::Message { from: Peer::Node(from), msg: Message::Response(resp) } => {
                let corr = resp.correlation;
                let (counter, outputs) = (&mut self.next_correlation, &mut self.outputs);
                match self.auth.on_response(self.now, from, corr, &resp.body, counter, outputs) {
                    Routed::NotMine => {}
                    Routed::Exchange => return self.after_input(),
                    Routed::Refused(error) => {
                        self.fail(error);
                        return self.after_input();
                    }
                }
                if let Some(out) = self.requests.get(&corr).filter(|o| o.to == from).cloned() {
                    self.requests.remove(&corr);
                    self.on_response(corr, out, resp.body);
                } else if self.orphans.get(&corr).is_some_and(|(to, _, _)| *to == from) {
                    self.on_orphan_answer(corr, resp.body);
                }
            }
            Input::Disconnected { peer: Peer::Node(peer) } => {
                self.auth.disconnected(peer);
                self.orphans.retain(|_, (to, _, _)| *to != peer);
                let lost: Vec<CorrelationId> =
                    self.requests.iter().filter(|(_, o)| o.to == peer).map(|(c, _)| *c).collect();
                for corr in lost {
                    if let Some(out) = self.requests.remove(&corr) {
                        self.on_lost(corr, out);
                    }
                }
            }
            Input::Timeout => {
                let now = self.now;
                let late: Vec<CorrelationId> =
                    self.requests.iter().filter(|(_, o)| o.deadline <= now).map(|(c, _)| *c).collect();
                for corr in late {
                    if let Some(out) = self.requests.remove(&corr) {
                        let silent_push = match (&out.req, self.config.delivery) {
                            (Req::Fetch { tp, generation }, Delivery::Push { .. }) => {
                                Some((out.to, tp.clone(), *generation))
                            }
                            _ => None,
                        };
                        self.on_lost(corr, out);
                        if let Some(subscription) = silent_push {
                            self.keep_listening(corr, subscription);
                        }
                    }
                }
            }
            Input::Message { .. } | Input::Connected { .. } | Input::Disconnected { .. } | Input::Persisted { .. } => {}
        }
        self.after_input();
    }

    fn after_input(&mut self) {
        self.drive();
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// The next request to send, until `None`. Sends what the application queued
    /// since the last `handle` first.
    pub fn poll_output(&mut self) -> Option<GroupConsumerOutput> {
        if self.dirty {
            self.drive();
        }
        self.outputs.pop_front()
    }

    /// The next record for the application, in the order leaders delivered them.
    pub fn poll_record(&mut self) -> Option<ConsumedRecord> {
        let r = self.records.pop_front();
        if r.is_some() && self.records.len() + 1 == self.config.max_buffered_records {
            self.dirty = true; // room again: fetching may resume
        }
        r
    }

    /// The next event, until `None`.
    pub fn poll_event(&mut self) -> Option<GroupEvent> {
        self.events.pop_front()
    }

    /// When the consumer next needs [`Input::Timeout`]: a request deadline, a
    /// heartbeat, the end of a backoff or of the close deadline; `now` while
    /// application calls wait to be sent.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        if self.dirty {
            return Some(self.now);
        }
        let t = self.requests.values().map(|o| o.deadline).fold(self.wake, Instant::min);
        let t = t.min(self.auth.poll_timeout().unwrap_or(Instant::MAX));
        (t != Instant::MAX).then_some(t)
    }

    /// Panics if an internal invariant is broken.
    pub fn check_invariants(&self) {
        self.auth.check_invariants();
        for (corr, o) in &self.requests {
            assert!(corr.0 < self.next_correlation, "correlation ids are reused");
            match &o.req {
                Req::Fetch { tp, generation } => {
                    assert!(self.is_stable(), "a fetch out while not stable");
                    assert_eq!(self.parts.get(tp).and_then(|p| p.fetch), Some(*corr), "fetch of {tp} untracked");
                    assert!(self.assignment.contains(tp), "a fetch of unassigned {tp}");
                    assert_eq!(Some(*generation), self.generation(), "a fetch of an old generation out");
                }
                Req::Ack { tp, .. } | Req::Seek { tp, .. } => {
                    assert_eq!(self.parts.get(tp).and_then(|p| p.cursor), Some(*corr), "cursor request untracked");
                }
                Req::Join => assert_eq!(self.membership, Membership::Joining, "a join out while not joining"),
                Req::Heartbeat => assert!(matches!(self.membership, Membership::Stable { .. }), "heartbeat unjoined"),
                Req::Leave => assert_eq!(self.membership, Membership::Leaving, "a leave out while not leaving"),
                Req::Find | Req::Metadata => {}
            }
        }
        for (tp, p) in &self.parts {
            for (kind, c) in [("fetch", p.fetch), ("cursor", p.cursor)] {
                if let Some(c) = c {
                    assert!(self.requests.contains_key(&c), "{kind} of {tp} names no request");
                }
            }
            assert!(self.assignment.contains(tp) || p.cursor.is_some(), "state kept for revoked {tp}");
            let mut offsets: Vec<Offset> = p.acks.iter().map(|(o, _)| *o).collect();
            offsets.sort();
            offsets.dedup();
            assert_eq!(offsets.len(), p.acks.len(), "an offset queued twice on {tp}");
        }
        assert!(self.pending_acks() <= self.config.max_pending_acks, "more acks pending than allowed");
        let out = |req: Req| self.requests.values().filter(|o| o.req == req).count();
        let joining = usize::from(self.membership == Membership::Joining);
        assert_eq!(out(Req::Join), joining, "a join is out exactly while joining");
        assert_eq!(out(Req::Leave), usize::from(self.membership == Membership::Leaving), "leave out iff leaving");
        assert!(out(Req::Heartbeat) <= 1 && out(Req::Find) <= 1 && out(Req::Metadata) <= 1, "duplicate requests");
        let joined = self.joined.is_some();
        assert!(joined || self.assignment.is_empty(), "an assignment without a join");
        if matches!(self.membership, Membership::Stable { .. }) {
            assert!(joined, "stable without a join");
        }
        if self.is_closed() {
            assert!(self.requests.is_empty(), "requests out after close");
            assert!(self.records.is_empty(), "records buffered after close");
        }
        if self.closing.is_some() {
            assert!(self.records.is_empty(), "records buffered while closing");
            assert!(self.orphans.is_empty(), "orphaned fetches while closing");
        }
        let mut orphaned: BTreeMap<&TopicPartition, usize> = BTreeMap::new();
        for (_, tp, _) in self.orphans.values() {
            *orphaned.entry(tp).or_default() += 1;
        }
        assert!(orphaned.values().all(|n| *n <= MAX_ORPHANS_PER_PARTITION), "too many orphaned fetches: {orphaned:?}");
        // Exclusive groups keep only silent subscriptions of the current
        // generation; a rebalance releases every lease.
        let exclusive = matches!(self.config.mode, GroupMode::Exclusive(_));
        for (corr, (_, tp, generation)) in &self.orphans {
            assert!(!self.requests.contains_key(corr), "an orphan is still out as a request");
            assert!(self.assignment.contains(tp), "an orphan of unassigned {tp}");
            let current = Some(*generation) == self.generation();
            assert!(!exclusive || current, "an orphan of an older generation in an exclusive group");
        }
    }

    // ----- internals -----

    fn advance(&mut self, now: Instant) {
        debug_assert!(now >= self.now, "time went backwards: {now} < {}", self.now);
        self.now = self.now.max(now);
    }

    fn check_open(&self, tp: &TopicPartition) -> Result<(), AckError> {
        if self.closing.is_some() || self.is_closed() {
            return Err(AckError::Closing);
        }
        if !self.assignment.contains(tp) {
            return Err(AckError::NotAssigned(tp.clone()));
        }
        Ok(())
    }

    fn queue_acks(
        &mut self,
        now: Instant,
        tp: &TopicPartition,
        acks: &[(Offset, AckKind)],
        up_to: Option<Offset>,
    ) -> Result<(), AckError> {
        self.advance(now);
        self.check_open(tp)?;
        let part = self.parts.entry(tp.clone()).or_default();
        let new = acks.iter().filter(|(o, _)| !part.acks.iter().any(|(q, _)| q == o)).count()
            + usize::from(up_to.is_some() && part.up_to.is_none());
        let (pending, limit) = (self.pending_acks(), self.config.max_pending_acks);
        if pending + new > limit {
            return Err(AckError::TooManyPending { pending, limit });
        }
        if let Some(part) = self.parts.get_mut(tp) {
            part.merge(acks, up_to);
        }
        self.dirty = true;
        Ok(())
    }

    fn correlation(&mut self) -> CorrelationId {
        let c = CorrelationId(self.next_correlation);
        self.next_correlation += 1;
        c
    }

    /// Sends a request (held by the gate until `to` authenticated this member).
    fn send(&mut self, to: NodeId, timeout: Duration, req: Req, body: RequestBody) -> CorrelationId {
        let correlation = self.correlation();
        let deadline = self.now.saturating_add(timeout);
        let request = Request { correlation, body };
        self.auth.send(self.now, to, request, deadline, &mut self.next_correlation, &mut self.outputs);
        self.requests.insert(correlation, Outstanding { to, deadline, req });
        correlation
    }

    fn has(&self, req: &Req) -> bool {
        self.requests.values().any(|o| &o.req == req)
    }

    fn wake_at(&mut self, t: Instant) {
        self.wake = self.wake.min(t);
    }

    fn backoff(&mut self, failures: u32) -> Duration {
        backoff(&mut self.rng, self.config.retry_backoff, self.config.retry_backoff_max, failures)
    }

    fn fetching(&self) -> bool {
        self.is_stable()
    }

    /// Sends whatever is due, and notes when the next thing is.
    fn drive(&mut self) {
        self.dirty = false;
        self.wake = Instant::MAX;
        if self.is_closed() {
            return;
        }
        let now = self.now;
        if let Some(deadline) = self.closing {
            let busy = self.parts.values().any(|p| p.has_cursor_work() || p.cursor.is_some());
            if self.membership == Membership::Leaving {
                return; // waiting for the leave's answer or deadline
            }
            if busy && now < deadline {
                self.wake_at(deadline);
            } else if !matches!(self.membership, Membership::Joining) || now >= deadline {
                self.finish_close();
                return;
            } else {
                self.wake_at(deadline);
            }
        }
        self.drive_membership();
        self.drive_partitions();
    }

    fn drive_membership(&mut self) {
        let now = self.now;
        let needs_coordinator = match self.membership {
            Membership::Join { .. } => self.closing.is_none(),
            Membership::Stable { .. } => true,
            _ => false,
        };
        if needs_coordinator && self.coordinator.is_none() && !self.has(&Req::Find) {
            if self.next_find_at <= now {
                let to = self.brokers.next();
                let body = RequestBody::FindCoordinator { group: self.config.group.clone() };
                self.send(to, self.config.request_timeout, Req::Find, body);
            } else {
                self.wake_at(self.next_find_at);
            }
        }
        let Some(coordinator) = self.coordinator else { return };
        match self.membership {
            Membership::Join { at } if self.closing.is_none() => {
                if at > now {
                    self.wake_at(at);
                    return;
                }
                let c = &self.config;
                let body = RequestBody::JoinGroup(JoinGroup {
                    group: c.group.clone(),
                    member: self.join_id,
                    topics: c.topics.clone(),
                    mode: c.mode,
                    session_timeout: c.session_timeout,
                    settings: c.settings.clone(),
                    weight: c.weight,
                });
                self.send(coordinator, self.config.join_timeout, Req::Join, body);
                self.membership = Membership::Joining;
            }
            Membership::Stable { next_heartbeat } if !self.has(&Req::Heartbeat) => {
                if next_heartbeat > now {
                    self.wake_at(next_heartbeat);
                    return;
                }
                let j = self.joined.as_ref().expect("stable means joined");
                let (member, generation, interval) = (j.member, j.generation, j.heartbeat_interval);
                let body = RequestBody::Heartbeat { group: self.config.group.clone(), member, generation };
                self.send(coordinator, self.config.request_timeout, Req::Heartbeat, body);
                self.membership = Membership::Stable { next_heartbeat: now + interval };
            }
            _ => {}
        }
    }

    fn drive_partitions(&mut self) {
        let now = self.now;
        let mut wants_metadata = false;
        let room = self.records.len() < self.config.max_buffered_records;
        let generation = self.generation();
        let tps: Vec<TopicPartition> = self.parts.keys().cloned().collect();
        for tp in tps {
            let leader = self.leaders.get(&tp);
            let p = &self.parts[&tp];
            let cursor_due =
                p.cursor.is_none() && p.has_cursor_work() && generation.is_some() && p.refused_generation != generation;
            let fetch_due = self.fetching() && self.assignment.contains(&tp) && p.fetch.is_none() && room;
            let (next_cursor_at, next_fetch_at) = (p.next_cursor_at, p.next_fetch_at);
            for (due, at, cursor) in [(cursor_due, next_cursor_at, true), (fetch_due, next_fetch_at, false)] {
                if !due {
                    continue;
                }
                match leader {
                    None => wants_metadata = true,
                    Some(_) if at > now => self.wake_at(at),
                    Some(l) if cursor => self.send_cursor(&tp, l),
                    Some(l) => self.send_fetch(&tp, l),
                }
            }
        }
        if wants_metadata && !self.has(&Req::Metadata) {
            if self.next_metadata_at <= now {
                let to = self.brokers.next();
                let body = RequestBody::Metadata { topics: self.config.topics.clone() };
                self.send(to, self.config.request_timeout, Req::Metadata, body);
                // Ask again soon but not in a tight loop if no broker knows yet.
                self.next_metadata_at = now + jittered(&mut self.rng, self.config.retry_backoff);
            } else {
                self.wake_at(self.next_metadata_at);
            }
        }
    }

    fn view(&self, tp: &TopicPartition) -> GroupView {
        let j = self.joined.as_ref().expect("a view needs a join");
        GroupView {
            group: self.config.group.clone(),
            member: j.member,
            generation: j.generation,
            mode: self.config.mode,
            settings: j.settings.clone(),
            members: j.peers.get(&tp.topic).cloned().unwrap_or_default(),
        }
    }

    fn send_fetch(&mut self, tp: &TopicPartition, leader: NodeId) {
        // The leader replaces the member's older fetch of the partition and
        // answers it; an orphan stays until that answer (`adopt_orphan`).
        let view = self.view(tp);
        let generation = view.generation;
        let (max_records, mode) = match self.config.delivery {
            Delivery::Pull { max_records, max_wait } => (max_records, FetchMode::Pull { max_wait }),
            Delivery::Push { max_records, prefetch } => (max_records, FetchMode::Push { prefetch }),
        };
        let body = RequestBody::GroupFetch(GroupFetch { view, tp: tp.clone(), max_records, mode });
        let corr = self.send(leader, self.config.fetch_deadline(), Req::Fetch { tp: tp.clone(), generation }, body);
        self.parts.get_mut(tp).expect("fetching an assigned partition").fetch = Some(corr);
    }

    fn send_cursor(&mut self, tp: &TopicPartition, leader: NodeId) {
        let j = self.joined.as_ref().expect("cursor requests need a join");
        let (group, member, generation) = (self.config.group.clone(), j.member, j.generation);
        let p = self.parts.get_mut(tp).expect("a partition with cursor work");
        let (req, body) = if !p.acks.is_empty() || p.up_to.is_some() {
            let (acks, up_to) = (std::mem::take(&mut p.acks), p.up_to.take());
            let body = RequestBody::GroupAck(GroupAck {
                group,
                member,
                generation,
                tp: tp.clone(),
                acks: acks.clone(),
                up_to,
            });
            (Req::Ack { tp: tp.clone(), generation, acks, up_to }, body)
        } else {
            let to = p.seek.take().expect("cursor work is acks or a seek");
            // Records buffered now came before the seek; the seek makes them
            // deliverable again. Records that come after it may be the replay
            // (leased to this member): they stay.
            self.drop_records(tp);
            let body = RequestBody::GroupSeek(GroupSeek { group, member, generation, tp: tp.clone(), to });
            (Req::Seek { tp: tp.clone(), generation, to }, body)
        };
        let corr = self.send(leader, self.config.request_timeout, req, body);
        self.parts.get_mut(tp).expect("still there").cursor = Some(corr);
    }

    fn on_response(&mut self, corr: CorrelationId, out: Outstanding, body: Result<ResponseBody, WireError>) {
        match out.req {
            Req::Find => match body {
                Ok(ResponseBody::Coordinator { coordinator, .. }) => {
                    self.coordinator = Some(coordinator);
                    self.find_failures = 0;
                }
                // A refusal retrying alone cannot fix (no grant on the group, a bad
                // name) is the application's to see, like the same refusal of a join;
                // the lookup still runs again after the backoff.
                Err(e) if !e.code.is_retriable() && e.code != ErrorCode::Unauthenticated => {
                    self.events.push_back(GroupEvent::Error { error: e });
                    self.find_failed();
                }
                _ => self.find_failed(),
            },
            Req::Join => {
                // The join is no longer out, whatever its answer says.
                self.membership = Membership::Join { at: self.now };
                self.on_join_answer(body, out.to)
            }
            Req::Heartbeat => match body {
                Ok(_) => {}
                Err(e) => self.on_group_error(e, out.to, false),
            },
            Req::Leave => self.closed(),
            Req::Metadata => {
                if let Ok(ResponseBody::Metadata { topics, .. }) = body {
                    self.leaders.apply(&topics);
                }
            }
            Req::Fetch { tp, generation } => self.on_fetch_answer(corr, out.to, tp, generation, body),
            Req::Ack { tp, generation, acks, up_to } => {
                self.parts.get_mut(&tp).expect("a cursor request's partition").cursor = None;
                match body {
                    Ok(ResponseBody::Acked { prefix, refused, .. }) => {
                        self.parts.get_mut(&tp).expect("checked").cursor_failures = 0;
                        let applied = acks.into_iter().filter(|(o, _)| !refused.iter().any(|(r, _)| r == o)).collect();
                        self.events.push_back(GroupEvent::AcksConfirmed {
                            tp: tp.clone(),
                            acks: applied,
                            up_to,
                            prefix,
                            refused,
                        });
                    }
                    Ok(other) => self.ack_failed(&tp, out.to, generation, acks, up_to, unexpected(&other)),
                    Err(e) => self.ack_failed(&tp, out.to, generation, acks, up_to, e),
                }
                self.forget_revoked(&tp);
            }
            Req::Seek { tp, generation, to } => {
                self.parts.get_mut(&tp).expect("a cursor request's partition").cursor = None;
                match body {
                    Ok(ResponseBody::Sought { offset, .. }) => {
                        self.parts.get_mut(&tp).expect("checked").cursor_failures = 0;
                        self.events.push_back(GroupEvent::Sought { tp: tp.clone(), offset });
                    }
                    Ok(other) => self.seek_failed(&tp, out.to, generation, to, unexpected(&other)),
                    Err(e) => self.seek_failed(&tp, out.to, generation, to, e),
                }
                self.forget_revoked(&tp);
            }
        }
    }

    /// A request went unanswered (deadline or closed connection).
    fn on_lost(&mut self, corr: CorrelationId, out: Outstanding) {
        let lost = WireError::new(ErrorCode::Timeout, format!("no answer from broker {}", out.to));
        match out.req {
            Req::Find => self.find_failed(),
            Req::Join => {
                self.membership = Membership::Join { at: self.now };
                self.on_group_error(lost, out.to, true)
            }
            Req::Heartbeat => self.on_group_error(lost, out.to, false),
            Req::Leave => self.closed(),
            Req::Metadata => {}
            Req::Fetch { tp, generation } => self.on_fetch_answer(corr, out.to, tp, generation, Err(lost)),
            Req::Ack { .. } | Req::Seek { .. } => self.on_response(corr, out, Err(lost)),
        }
    }

    fn find_failed(&mut self) {
        self.find_failures += 1;
        self.next_find_at = self.now + self.backoff(self.find_failures);
    }

    /// The coordinator is stale: look it up again (after a backoff).
    fn lose_coordinator(&mut self, bad: NodeId) {
        if self.coordinator == Some(bad) {
            self.coordinator = None;
        }
        self.find_failed();
    }

    fn on_join_answer(&mut self, body: Result<ResponseBody, WireError>, from: NodeId) {
        match body {
            Ok(ResponseBody::Joined(j)) => self.on_joined(j),
            Ok(other) => self.on_group_error(unexpected(&other), from, true),
            Err(e) => self.on_group_error(e, from, true),
        }
    }

    /// A coordinator's refusal of a join or heartbeat, or its silence.
    /// `join`: the error answers a join (membership is `Join` again by now).
    fn on_group_error(&mut self, e: WireError, from: NodeId, join: bool) {
        if self.closing.is_some() && join {
            return; // no point joining any more: `drive` finishes the close
        }
        match e.code {
            ErrorCode::UnknownMember => self.rejoin(false, e.code),
            ErrorCode::RebalanceInProgress | ErrorCode::IllegalGeneration => self.rejoin(true, e.code),
            // `Unauthenticated` with credentials: the coordinator restarted and
            // forgot this connection; look it up again (the gate authenticates first).
            c if c.means_stale_coordinator() || c == ErrorCode::Timeout || self.auth.reauthenticates(c) => {
                self.lose_coordinator(from);
                // Heartbeat the new coordinator at once: a moved coordinator
                // answers UnknownMember and the member rejoins.
                if let Membership::Stable { .. } = self.membership {
                    self.membership = Membership::Stable { next_heartbeat: self.now };
                }
            }
            _ => {
                self.events.push_back(GroupEvent::Error { error: e });
                if join {
                    self.join_failures += 1;
                    let at = self.now + self.backoff(self.join_failures.max(21));
                    self.membership = Membership::Join { at };
                }
            }
        }
    }

    /// Stops fetching and joins again (with the member id when `keep_id`).
    fn rejoin(&mut self, keep_id: bool, reason: ErrorCode) {
        if !keep_id {
            self.join_id = None;
        }
        match self.membership {
            Membership::Stable { .. } => {
                self.events.push_back(GroupEvent::RebalanceStarted { reason });
                self.membership = Membership::Join { at: self.now };
                self.stop_fetching();
                // A heartbeat out is moot now: the join speaks for the member.
                self.requests.retain(|_, o| o.req != Req::Heartbeat);
            }
            // A join out carries on: its answer decides.
            Membership::Joining => {}
            Membership::Join { .. } => self.membership = Membership::Join { at: self.now },
            Membership::Leaving | Membership::Closed => {}
        }
    }

    /// Forgets the fetches out. In an exclusive group their answers are ignored
    /// (the new generation releases every lease, so the records come again
    /// promptly); in shared and key_shared groups they become orphans.
    fn stop_fetching(&mut self) {
        let keep = !matches!(self.config.mode, GroupMode::Exclusive(_)) && self.closing.is_none();
        if !keep {
            // A silent subscription kept listening is of the generation ending.
            self.orphans.clear();
        }
        let mut orphaned = Vec::new();
        for (tp, p) in self.parts.iter_mut() {
            let Some(c) = p.fetch.take() else { continue };
            if let Some(Outstanding { to, req: Req::Fetch { generation, .. }, .. }) = self.requests.remove(&c) {
                if keep {
                    orphaned.push((c, (to, tp.clone(), generation)));
                }
            }
        }
        for (c, orphan) in orphaned {
            self.adopt_orphan(c, orphan);
        }
    }

    /// A push subscription was silent for its whole deadline: it is opened again
    /// (after metadata and a backoff), but the leader may still be serving it,
    /// and what it pushes meanwhile is leased to this member in this generation.
    /// Its answers are taken as an orphan's until the new subscription replaces
    /// it. Ignoring them wasted a delivery each: with an `ack_timeout` longer
    /// than the session timeout, every redelivery of a record reached a
    /// subscription given up a moment before, until the record ran out of
    /// deliveries (seed 1000989).
    fn keep_listening(&mut self, corr: CorrelationId, (to, tp, generation): (NodeId, TopicPartition, GroupGeneration)) {
        let current = Some(generation) == self.generation();
        if !current || !self.assignment.contains(&tp) || self.closing.is_some() {
            return;
        }
        // No new subscription is out yet: it is sent after metadata and a
        // backoff, and the leader ends this one then (`Superseded`).
        self.adopt_orphan(corr, (to, tp, generation));
    }

    /// Keeps listening on fetch `corr`, no longer this member's current fetch of
    /// its partition, until the leader ends it: a leader deals records on a fetch
    /// until a newer one of the member replaces it, and answers the old one then
    /// (a pull empty, a subscription `Superseded`). Forgetting it when the new
    /// fetch was sent lost what the leader dealt on it meanwhile: those records
    /// stayed leased to this member, unseen, for the whole ack timeout (a
    /// rebalance of a shared group under a steady trickle of records). A
    /// partition keeps at most [`MAX_ORPHANS_PER_PARTITION`] of them, the newest.
    fn adopt_orphan(&mut self, corr: CorrelationId, orphan: (NodeId, TopicPartition, GroupGeneration)) {
        let tp = orphan.1.clone();
        self.orphans.insert(corr, orphan);
        let of_tp: Vec<CorrelationId> =
            self.orphans.iter().filter(|(_, (_, t, _))| *t == tp).map(|(c, _)| *c).collect();
        for c in of_tp.iter().take(of_tp.len().saturating_sub(MAX_ORPHANS_PER_PARTITION)) {
            self.orphans.remove(c);
        }
    }

    /// An answer on an orphaned fetch: its records are this member's to process
    /// while the partition stays assigned; an error or a pull's only answer ends it.
    fn on_orphan_answer(&mut self, corr: CorrelationId, body: Result<ResponseBody, WireError>) {
        let Some((_, tp, generation)) = self.orphans.get(&corr).cloned() else { return };
        let push = matches!(self.config.delivery, Delivery::Push { .. });
        match body {
            Ok(ResponseBody::Delivered { tp: answered, records, .. }) if answered == tp => {
                if !push {
                    self.orphans.remove(&corr);
                }
                if self.assignment.contains(&tp) && self.closing.is_none() {
                    self.take_records(&tp, generation, records);
                }
            }
            _ => {
                self.orphans.remove(&corr);
            }
        }
    }

    fn take_records(&mut self, tp: &TopicPartition, generation: GroupGeneration, records: Vec<DeliveredRecord>) {
        self.records_received += records.len() as u64;
        for r in records {
            let (offset, delivery, record) = (r.offset, r.delivery, r.record);
            self.records.push_back(ConsumedRecord { tp: tp.clone(), offset, delivery, generation, record });
        }
    }

    fn on_joined(&mut self, j: Joined) {
        if self.joined.is_some() {
            self.rebalances += 1;
        }
        self.join_failures = 0;
        self.join_id = Some(j.member);
        let new: BTreeSet<TopicPartition> = j.assignment.iter().cloned().collect();
        let revoked: Vec<TopicPartition> = self.assignment.difference(&new).cloned().collect();
        self.assignment = new;
        for tp in &revoked {
            self.revoke(tp);
        }
        let now = self.now;
        for tp in &self.assignment {
            let p = self.parts.entry(tp.clone()).or_default();
            p.next_fetch_at = now;
            p.fetch_failures = 0;
            p.next_cursor_at = now;
        }
        self.joined = Some(JoinedState {
            member: j.member,
            generation: j.generation,
            settings: j.settings,
            peers: j.peers.into_iter().collect(),
            // A zero interval from a confused coordinator must not spin.
            heartbeat_interval: j.heartbeat_interval.max(Duration::from_millis(1)),
        });
        self.membership =
            Membership::Stable { next_heartbeat: now + j.heartbeat_interval.max(Duration::from_millis(1)) };
        self.events.push_back(GroupEvent::Rebalanced {
            member: j.member,
            generation: j.generation,
            assignment: j.assignment,
        });
    }

    /// The partition went to someone else: drop what waits for it.
    fn revoke(&mut self, tp: &TopicPartition) {
        self.orphans.retain(|_, (_, t, _)| t != tp);
        self.drop_records(tp);
        let Some(p) = self.parts.get_mut(tp) else { return };
        let (acks, up_to, seek) = (std::mem::take(&mut p.acks), p.up_to.take(), p.seek.take());
        if !acks.is_empty() || up_to.is_some() {
            let reason = format!("{tp} is no longer assigned to this member");
            self.events.push_back(GroupEvent::AcksDropped { tp: tp.clone(), acks, up_to, reason });
        }
        if let Some(to) = seek {
            let error = WireError::new(ErrorCode::IllegalGeneration, format!("{tp} is no longer assigned"));
            self.events.push_back(GroupEvent::SeekFailed { tp: tp.clone(), to, error });
        }
        self.forget_revoked(tp);
    }

    /// Removes a revoked partition's state once nothing of it is out.
    fn forget_revoked(&mut self, tp: &TopicPartition) {
        if !self.assignment.contains(tp) && self.parts.get(tp).is_some_and(|p| p.cursor.is_none()) {
            if let Some(p) = self.parts.remove(tp) {
                if p.has_cursor_work() {
                    let reason = format!("{tp} is no longer assigned to this member");
                    self.events.push_back(GroupEvent::AcksDropped {
                        tp: tp.clone(),
                        acks: p.acks,
                        up_to: p.up_to,
                        reason,
                    });
                }
            }
        }
    }

    fn drop_records(&mut self, tp: &TopicPartition) {
        let before = self.records.len();
        self.records.retain(|r| &r.tp != tp);
        let count = before - self.records.len();
        if count > 0 {
            self.events.push_back(GroupEvent::RecordsDropped { tp: tp.clone(), count });
        }
    }

    fn on_fetch_answer(
        &mut self,
        corr: CorrelationId,
        from: NodeId,
        tp: TopicPartition,
        generation: GroupGeneration,
        body: Result<ResponseBody, WireError>,
    ) {
        let Some(p) = self.parts.get_mut(&tp).filter(|p| p.fetch == Some(corr)) else { return };
        p.fetch = None;
        match body {
            Ok(ResponseBody::Delivered { tp: answered, records, .. }) if answered == tp => {
                p.fetch_failures = 0;
                if matches!(self.config.delivery, Delivery::Push { .. }) {
                    // The subscription stays open: more answers come on `corr`.
                    p.fetch = Some(corr);
                    let deadline = self.now.saturating_add(self.config.fetch_deadline());
                    self.requests.insert(
                        corr,
                        Outstanding { to: from, deadline, req: Req::Fetch { tp: tp.clone(), generation } },
                    );
                }
                self.take_records(&tp, generation, records);
            }
            Ok(other) => {
                let e = unexpected(&other);
                self.partition_failed(&tp, from, generation, e, false);
            }
            Err(e) => {
                self.partition_failed(&tp, from, generation, e, false);
            }
        }
    }

    /// A fetch, ack or seek of `tp` made at `generation` to `from` failed with `e`:
    /// decide what to retry when. Returns true when the request may be sent again.
    fn partition_failed(
        &mut self,
        tp: &TopicPartition,
        from: NodeId,
        generation: GroupGeneration,
        e: WireError,
        cursor: bool,
    ) -> bool {
        let code = e.code;
        if code.needs_rejoin() {
            if Some(generation) == self.generation() {
                if cursor {
                    if let Some(p) = self.parts.get_mut(tp) {
                        p.refused_generation = Some(generation);
                    }
                }
                self.rejoin(code != ErrorCode::UnknownMember, code);
            }
            // Sent with an older generation: the current one may go at once.
            return true;
        }
        let stale = code.means_stale_leader() || code.is_indefinite();
        if stale {
            self.leaders.forget(tp, Some(from));
        }
        // `Unauthenticated` with credentials: the leader restarted; the gate
        // authenticates again before the retry.
        let retriable = code.is_retriable() || self.auth.reauthenticates(code);
        if !(stale || retriable) {
            self.events.push_back(GroupEvent::Error { error: e });
        }
        let wait = {
            let Some(p) = self.parts.get_mut(tp) else { return false };
            let failures = if cursor {
                p.cursor_failures += 1;
                p.cursor_failures
            } else {
                p.fetch_failures += 1;
                p.fetch_failures
            };
            // Refusals nobody expects to go away soon wait the longest.
            if stale || retriable {
                failures
            } else {
                failures.max(21)
            }
        };
        let at = self.now + self.backoff(wait);
        if let Some(p) = self.parts.get_mut(tp) {
            if cursor {
                p.next_cursor_at = at;
            } else {
                p.next_fetch_at = at;
            }
        }
        stale || retriable
    }

    fn ack_failed(
        &mut self,
        tp: &TopicPartition,
        from: NodeId,
        generation: GroupGeneration,
        acks: Vec<(Offset, AckKind)>,
        up_to: Option<Offset>,
        e: WireError,
    ) {
        let retry = self.partition_failed(tp, from, generation, e.clone(), true);
        let assigned = self.assignment.contains(tp) && self.closing.is_none_or(|d| self.now < d);
        if retry && assigned {
            // Acks are idempotent: queue them again, before the newer ones.
            let p = self.parts.get_mut(tp).expect("assigned");
            let newer = (std::mem::take(&mut p.acks), p.up_to.take());
            p.merge(&acks, up_to);
            p.merge(&newer.0, newer.1);
        } else {
            let reason = if assigned { format!("refused: {e}") } else { format!("{tp} is no longer assigned: {e}") };
            self.events.push_back(GroupEvent::AcksDropped { tp: tp.clone(), acks, up_to, reason });
        }
    }

    fn seek_failed(
        &mut self,
        tp: &TopicPartition,
        from: NodeId,
        generation: GroupGeneration,
        to: SeekTo,
        e: WireError,
    ) {
        let retry = self.partition_failed(tp, from, generation, e.clone(), true);
        let assigned = self.assignment.contains(tp);
        match self.parts.get_mut(tp) {
            Some(p) if retry && assigned => {
                p.seek.get_or_insert(to); // a newer seek wins
            }
            _ => self.events.push_back(GroupEvent::SeekFailed { tp: tp.clone(), to, error: e }),
        }
    }

    /// Drops acks still waiting, then leaves the group (or closes at once when
    /// there is nothing to leave).
    fn finish_close(&mut self) {
        self.drop_cursor_work(
            "the close deadline passed before the leader answered",
            "the close deadline passed before they were sent",
            &WireError::new(ErrorCode::Timeout, "the consumer closed before the seek was sent"),
        );
        match (self.coordinator, self.joined.as_ref().map(|j| j.member)) {
            (Some(coordinator), Some(member)) => {
                let body = RequestBody::LeaveGroup { group: self.config.group.clone(), member };
                self.send(coordinator, self.config.request_timeout, Req::Leave, body);
                self.membership = Membership::Leaving;
            }
            // Nobody to tell: the coordinator evicts the member after its session.
            _ => self.closed(),
        }
    }

    /// Drops every ack and seek waiting or out, with an event each, and every
    /// request out but a leave (their answers would be ignored).
    fn drop_cursor_work(&mut self, out_reason: &str, queued_reason: &str, seek_error: &WireError) {
        let tps: Vec<TopicPartition> = self.parts.keys().cloned().collect();
        for tp in tps {
            let p = self.parts.get_mut(&tp).expect("listed");
            let (acks, up_to, seek) = (std::mem::take(&mut p.acks), p.up_to.take(), p.seek.take());
            if let Some(c) = p.cursor.take() {
                if let Some(Outstanding { req: Req::Ack { acks, up_to, .. }, .. }) = self.requests.remove(&c) {
                    let reason = out_reason.to_string();
                    self.events.push_back(GroupEvent::AcksDropped { tp: tp.clone(), acks, up_to, reason });
                }
            }
            if !acks.is_empty() || up_to.is_some() {
                let reason = queued_reason.to_string();
                self.events.push_back(GroupEvent::AcksDropped { tp: tp.clone(), acks, up_to, reason });
            }
            if let Some(to) = seek {
                let error = seek_error.clone();
                self.events.push_back(GroupEvent::SeekFailed { tp: tp.clone(), to, error });
            }
        }
        self.requests.retain(|_, o| matches!(o.req, Req::Leave));
        for p in self.parts.values_mut() {
            p.fetch = None;
            p.cursor = None;
        }
    }

    /// A broker refused the credentials: report it, drop what waits (with
    /// events) and stop without a leave (the coordinator evicts the member after
    /// its session timeout).
    fn fail(&mut self, error: WireError) {
        if self.is_closed() {
            return;
        }
        let reason = format!("the consumer stopped: {error}");
        self.events.push_back(GroupEvent::Error { error: error.clone() });
        self.drop_cursor_work(&reason, &reason, &error);
        let tps: Vec<TopicPartition> = self.parts.keys().cloned().collect();
        for tp in tps {
            self.drop_records(&tp);
        }
        self.closed();
    }

    fn closed(&mut self) {
        self.auth.stop(); // requests it holds would leave after the close
        self.requests.clear();
        self.orphans.clear();
        self.records.clear();
        self.parts.clear();
        self.assignment.clear();
        self.membership = Membership::Closed;
        self.events.push_back(GroupEvent::Closed);
    }
}

fn unexpected(body: &ResponseBody) -> WireError {
    WireError::new(ErrorCode::Internal, format!("unexpected answer {body:?}"))
}

#[cfg(test)]
#[path = "group_consumer_tests.rs"]
mod tests;
