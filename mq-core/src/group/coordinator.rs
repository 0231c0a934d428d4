//! The group coordinator (docs/consumers.md sections 2 to 4): membership, the
//! join barrier, generations, session-timeout eviction and the assignment of an
//! exclusive group's partitions. Sans-IO like every machine in mq-core: time is an
//! argument, requests come in as [`CoordinatorInput`]s, replies and rebalances
//! leave as [`CoordinatorOutput`]s, [`Coordinator::poll_timeout`] names the next
//! deadline.
//!
//! One `Coordinator` serves every group that hashes to one `__groups` partition and
//! lives exactly as long as its broker leads that partition in one leader epoch.
//! Membership is soft state: a new leader starts empty and members rebuild it by
//! joining again. The epoch is the first half of every [`GroupGeneration`] this
//! coordinator hands out, so generations keep increasing across failovers.
//!
//! The protocol rule (a one-round variant of Kafka's eager JoinGroup, with the
//! coordinator as the assignor, so there is no SyncGroup round):
//!
//! - Any change (a new member, a changed subscription, a leave, an eviction, a
//!   partition count change) starts a **rebalance**: heartbeats answer
//!   `RebalanceInProgress`, members stop consuming and send `JoinGroup` again.
//! - Joins are held until **every** member has rejoined (the barrier), or until
//!   the rebalance deadline (the longest session timeout of the members), when
//!   those that did not rejoin are evicted. Then the generation moves on, the
//!   assignment is computed and every held join is answered with its share.
//! - So no partition of an exclusive group is handed to a new owner before its old
//!   owner has given it up (by rejoining) or was evicted.

use super::assign::{self, Assignment};
use super::GroupMode;
use crate::contract::Peer;
use crate::coverage::{Coverage, Mark};
use crate::ids::{CorrelationId, Generation, GroupGeneration, LeaderEpoch, MemberId, PartitionId, TopicPartition};
use crate::time::{Duration, Instant};
use crate::wire::{ErrorCode, GroupSettings, JoinGroup, Joined, ResponseBody, WireError};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The internal topic whose partition leaders coordinate groups.
pub const GROUPS_TOPIC: &str = "__groups";

/// Longest group name.
pub const MAX_GROUP_NAME_LEN: usize = 249;
/// The largest member weight of a shared group.
pub const MAX_WEIGHT: u32 = 1_000;
/// The shortest ack timeout a group may ask for.
pub const MIN_ACK_TIMEOUT: Duration = Duration::from_millis(10);
/// The longest ack timeout a group may ask for.
pub const MAX_ACK_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// The most tags in a group's filter.
pub const MAX_FILTER_TAGS: usize = 64;
/// The longest tag in a filter, in bytes.
pub const MAX_TAG_LEN: usize = 256;

/// Limits and ranges a coordinator enforces (STYLE.md item 7: every map bounded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    /// Shortest session timeout a member may ask for.
    pub min_session_timeout: Duration,
    /// Longest session timeout a member may ask for.
    pub max_session_timeout: Duration,
    /// Most groups one coordinator (one `__groups` partition) holds.
    pub max_groups: usize,
    /// Most members in one group.
    pub max_members_per_group: usize,
    /// Most topics one member subscribes to.
    pub max_topics_per_member: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout: Duration::from_millis(100),
            max_session_timeout: Duration::from_secs(300),
            max_groups: 10_000,
            max_members_per_group: 1_000,
            max_topics_per_member: 1_000,
        }
    }
}

/// What a coordinator is fed.
#[derive(Clone, Debug, PartialEq)]
pub enum CoordinatorInput {
    /// A `JoinGroup` request.
    Join {
        /// Who asked (the reply goes there).
        from: Peer,
        /// The request's correlation id.
        correlation: CorrelationId,
        /// The request.
        join: JoinGroup,
    },
    /// A `Heartbeat` request.
    Heartbeat {
        /// Who asked.
        from: Peer,
        /// The request's correlation id.
        correlation: CorrelationId,
        /// The group.
        group: String,
        /// The member.
        member: MemberId,
        /// The member's generation.
        generation: GroupGeneration,
    },
    /// A `LeaveGroup` request.
    Leave {
        /// Who asked.
        from: Peer,
        /// The request's correlation id.
        correlation: CorrelationId,
        /// The group.
        group: String,
        /// The member.
        member: MemberId,
    },
    /// The partition count of every topic, as the broker's committed metadata says.
    Topics(BTreeMap<String, u32>),
    /// `poll_timeout` passed.
    Timeout,
}

/// What a coordinator wants done.
#[derive(Clone, Debug, PartialEq)]
pub enum CoordinatorOutput {
    /// Answer a request.
    Reply {
        /// The requester.
        to: Peer,
        /// The request's correlation id.
        correlation: CorrelationId,
        /// The answer.
        body: Result<ResponseBody, WireError>,
    },
    /// A rebalance completed (for events and tests).
    Rebalanced {
        /// The group.
        group: String,
        /// Its new generation.
        generation: GroupGeneration,
        /// Members in it.
        members: usize,
        /// Partitions it consumes.
        partitions: usize,
    },
}

/// Where a group stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Every member holds the current generation's assignment.
    Stable,
    /// Waiting for every member to rejoin, at most until `deadline`.
    Rebalancing { deadline: Instant },
}

#[derive(Clone, Debug)]
struct Member {
    topics: BTreeSet<String>,
    session_timeout: Duration,
    /// Its weight in a shared group.
    weight: u32,
    /// Evicted once `now` reaches this without a heartbeat or join (not while its
    /// join is held: it is waiting for us).
    deadline: Instant,
    /// The held `JoinGroup` while rebalancing: this member has rejoined.
    join: Option<(Peer, CorrelationId)>,
    /// Its share at the current generation.
    assignment: Vec<TopicPartition>,
}

#[derive(Clone, Debug)]
struct Group {
    mode: GroupMode,
    /// Fixed by the first join.
    settings: GroupSettings,
    generation: Generation,
    phase: Phase,
    members: BTreeMap<MemberId, Member>,
    /// The partitions the current generation covers.
    partitions: BTreeSet<TopicPartition>,
    /// Owner of each partition at the current generation (exclusive groups).
    owners: Assignment,
}

/// A snapshot of one group, for tests and operators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupView {
    /// The group's mode.
    pub mode: GroupMode,
    /// Its current generation.
    pub generation: GroupGeneration,
    /// Whether a rebalance is running.
    pub rebalancing: bool,
    /// Each member's share at the current generation.
    pub members: BTreeMap<MemberId, Vec<TopicPartition>>,
}

/// The coordinator of the groups of one `__groups` partition (module docs).
#[derive(Debug)]
pub struct Coordinator {
    partition: PartitionId,
    epoch: LeaderEpoch,
    config: GroupConfig,
    now: Instant,
    topics: BTreeMap<String, u32>,
    groups: BTreeMap<String, Group>,
    next_member: u32,
    /// The last generation handed to any group: generations increase across all
    /// groups of this coordinator, so a group deleted (its last member left) and
    /// created again never repeats a generation partition leaders have seen.
    last_generation: Generation,
    outputs: VecDeque<CoordinatorOutput>,
    /// Rare branches taken (never read by the protocol).
    coverage: Coverage,
}

impl Coordinator {
    /// A coordinator for `__groups/partition` led in `epoch`, knowing `topics`
    /// (name to partition count).
    pub fn new(
        partition: PartitionId,
        epoch: LeaderEpoch,
        config: GroupConfig,
        topics: BTreeMap<String, u32>,
        now: Instant,
    ) -> Self {
        Coordinator {
            partition,
            epoch,
            config,
            now,
            topics,
            groups: BTreeMap::new(),
            next_member: 0,
            last_generation: Generation(0),
            outputs: VecDeque::new(),
            coverage: Coverage::default(),
        }
    }

    // ----- getters -----

    /// The `__groups` partition this coordinator serves.
    pub fn partition(&self) -> PartitionId {
        self.partition
    }

    /// The leader epoch it serves in.
    pub fn epoch(&self) -> LeaderEpoch {
        self.epoch
    }

    /// The rare branches this coordinator took ([`crate::coverage`]).
    pub fn coverage(&self) -> &Coverage {
        &self.coverage
    }

    /// Names of the groups it holds.
    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// One group's state, if it exists.
    pub fn group(&self, name: &str) -> Option<GroupView> {
        let g = self.groups.get(name)?;
        Some(GroupView {
            mode: g.mode,
            generation: self.generation_of(g),
            rebalancing: matches!(g.phase, Phase::Rebalancing { .. }),
            members: g.members.iter().map(|(id, m)| (*id, m.assignment.clone())).collect(),
        })
    }

    // ----- the contract -----

    /// Feeds one input.
    pub fn handle(&mut self, now: Instant, input: CoordinatorInput) {
        debug_assert!(now >= self.now, "time went backwards: {now} < {}", self.now);
        self.now = self.now.max(now);
        match input {
            CoordinatorInput::Join { from, correlation, join } => {
                if let Err(e) = self.join(from, correlation, join) {
                    self.reply(from, correlation, Err(e));
                }
            }
            CoordinatorInput::Heartbeat { from, correlation, group, member, generation } => {
                let r = self.heartbeat(&group, member, generation);
                self.reply(from, correlation, r);
            }
            CoordinatorInput::Leave { from, correlation, group, member } => {
                let r = self.leave(&group, member);
                self.reply(from, correlation, r);
            }
            CoordinatorInput::Topics(topics) => self.set_topics(topics),
            CoordinatorInput::Timeout => self.tick(),
        }
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// The next output, until `None`.
    pub fn poll_output(&mut self) -> Option<CoordinatorOutput> {
        self.outputs.pop_front()
    }

    /// When the coordinator next needs [`CoordinatorInput::Timeout`]: the earliest
    /// session deadline of a member not waiting on a held join, or rebalance
    /// deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.groups
            .values()
            .flat_map(|g| {
                let sessions = g.members.values().filter(|m| m.join.is_none()).map(|m| m.deadline);
                let rebalance = match g.phase {
                    Phase::Rebalancing { deadline } => Some(deadline),
                    Phase::Stable => None,
                };
                sessions.chain(rebalance)
            })
            .min()
    }

    /// The broker no longer leads this coordinator's partition: every held join is
    /// answered `NotCoordinator` and the state is dropped (members rejoin the new
    /// coordinator). Drain the outputs afterwards.
    pub fn resign(&mut self, reason: &str) {
        for g in std::mem::take(&mut self.groups).into_values() {
            for m in g.members.into_values() {
                if let Some((to, correlation)) = m.join {
                    let e = WireError::new(ErrorCode::NotCoordinator, reason.to_string());
                    self.reply(to, correlation, Err(e));
                }
            }
        }
    }

    /// Panics if an internal invariant is broken.
    pub fn check_invariants(&self) {
        assert!(self.groups.len() <= self.config.max_groups, "more groups than allowed");
        for (name, g) in &self.groups {
            assert!(!g.members.is_empty(), "group {name} without members was kept");
            assert!(g.members.len() <= self.config.max_members_per_group, "group {name} is over its bound");
            match g.phase {
                Phase::Stable => {
                    assert!(g.generation > Generation(0), "group {name} stable before its first rebalance");
                    assert!(g.members.values().all(|m| m.join.is_none()), "group {name}: a join held while stable");
                    self.check_assignment(name, g);
                }
                Phase::Rebalancing { .. } => {}
            }
        }
    }

    /// A stable group's shares: exclusive groups own every partition of the
    /// generation exactly once, by a member subscribed to its topic; shared and
    /// key_shared groups give each member every partition of its topics.
    fn check_assignment(&self, name: &str, g: &Group) {
        match g.mode {
            GroupMode::Exclusive(_) => {
                let mut seen = BTreeSet::new();
                for (id, m) in &g.members {
                    for tp in &m.assignment {
                        assert!(seen.insert(tp.clone()), "group {name}: {tp} owned twice");
                        assert!(m.topics.contains(&tp.topic), "group {name}: {id} owns {tp} it did not subscribe to");
                        assert_eq!(g.owners.get(tp), Some(id), "group {name}: owner table disagrees on {tp}");
                    }
                }
                assert_eq!(seen, g.partitions, "group {name}: not every partition has one owner");
            }
            GroupMode::Shared | GroupMode::KeyShared => {
                for m in g.members.values() {
                    let want: Vec<TopicPartition> =
                        g.partitions.iter().filter(|tp| m.topics.contains(&tp.topic)).cloned().collect();
                    assert_eq!(m.assignment, want, "group {name}: a shared member lacks a partition");
                }
            }
        }
    }

    // ----- requests -----

    fn join(&mut self, from: Peer, correlation: CorrelationId, join: JoinGroup) -> Result<(), WireError> {
        validate_group_name(&join.group)?;
        let topics = self.validate_subscription(&join)?;
        let JoinGroup { group: name, member, mode, session_timeout, settings, weight, .. } = join;
        let now = self.now;
        if !self.groups.contains_key(&name) {
            if let Some(id) = member {
                return Err(unknown_member(&name, id));
            }
            if self.groups.len() >= self.config.max_groups {
                return Err(WireError::new(
                    ErrorCode::Backpressure,
                    format!(
                        "this coordinator holds its maximum of {} groups; retry later or use another group",
                        self.config.max_groups
                    ),
                ));
            }
            let group = Group {
                mode,
                settings: settings.clone(),
                generation: Generation(0),
                phase: Phase::Rebalancing { deadline: now },
                members: BTreeMap::new(),
                partitions: BTreeSet::new(),
                owners: Assignment::new(),
            };
            self.groups.insert(name.clone(), group);
        }
        let max_members = self.config.max_members_per_group.max(1);
        let g = self.groups.get_mut(&name).expect("inserted above");
        if g.mode != mode {
            return Err(WireError::new(
                ErrorCode::InconsistentGroup,
                format!("group {name} runs in mode {:?}; this member asked for {mode:?}", g.mode),
            ));
        }
        if g.settings != settings {
            return Err(WireError::new(
                ErrorCode::InconsistentGroup,
                format!("group {name} runs with settings {:?}; this member asked for {settings:?}", g.settings),
            ));
        }
        let id = match member {
            None => {
                if g.members.len() >= max_members {
                    return Err(WireError::new(
                        ErrorCode::Backpressure,
                        format!("group {name} has its maximum of {max_members} members"),
                    ));
                }
                // Ids carry the coordinator's epoch, so no two coordinators of this
                // partition ever hand out the same one.
                let Some(next) = self.next_member.checked_add(1) else {
                    return Err(WireError::new(
                        ErrorCode::Backpressure,
                        "this coordinator handed out every member id of its epoch; retry after it moves",
                    ));
                };
                let id = MemberId(u64::from(self.epoch.0) << 32 | u64::from(self.next_member));
                self.next_member = next;
                g.members.insert(
                    id,
                    Member {
                        topics: BTreeSet::new(),
                        session_timeout,
                        weight,
                        deadline: now,
                        join: None,
                        assignment: Vec::new(),
                    },
                );
                id
            }
            Some(id) => {
                if !g.members.contains_key(&id) {
                    return Err(unknown_member(&name, id));
                }
                id
            }
        };
        let m = g.members.get_mut(&id).expect("present");
        let changed = m.topics != topics || m.session_timeout != session_timeout || m.weight != weight;
        m.topics = topics;
        m.session_timeout = session_timeout;
        m.weight = weight;
        m.deadline = now + session_timeout;
        if g.phase == Phase::Stable && !changed {
            // A rejoin that changes nothing (say its earlier answer was lost): the
            // current share again, no rebalance.
            let body = self.joined(&name, id);
            self.reply(from, correlation, Ok(body));
            return Ok(());
        }
        if let Some((to, c)) = m.join.replace((from, correlation)) {
            let e = WireError::new(ErrorCode::RebalanceInProgress, "superseded by a newer JoinGroup of this member");
            self.reply(to, c, Err(e));
        }
        self.start_rebalance(&name);
        self.maybe_complete(&name);
        Ok(())
    }

    fn validate_subscription(&self, join: &JoinGroup) -> Result<BTreeSet<String>, WireError> {
        let invalid = |m: String| Err(WireError::new(ErrorCode::InvalidRequest, m));
        if join.topics.is_empty() {
            return invalid(format!("a member of group {} must subscribe to at least one topic", join.group));
        }
        if join.topics.len() > self.config.max_topics_per_member {
            return invalid(format!("at most {} topics per member", self.config.max_topics_per_member));
        }
        let (lo, hi) = (self.config.min_session_timeout, self.config.max_session_timeout);
        if join.session_timeout < lo || join.session_timeout > hi {
            return invalid(format!("session timeout {} is outside the allowed {lo} to {hi}", join.session_timeout));
        }
        if join.weight == 0 || join.weight > MAX_WEIGHT {
            return invalid(format!("weight {} is outside the allowed 1 to {MAX_WEIGHT}", join.weight));
        }
        let s = &join.settings;
        if s.max_deliveries == 0 {
            return invalid("max_deliveries must be at least 1".to_string());
        }
        if s.ack_timeout < MIN_ACK_TIMEOUT || s.ack_timeout > MAX_ACK_TIMEOUT {
            return invalid(format!(
                "ack timeout {} is outside the allowed {MIN_ACK_TIMEOUT} to {MAX_ACK_TIMEOUT}",
                s.ack_timeout
            ));
        }
        if s.filter.len() > MAX_FILTER_TAGS || s.filter.iter().any(|t| t.is_empty() || t.len() > MAX_TAG_LEN) {
            return invalid(format!("a filter holds at most {MAX_FILTER_TAGS} tags of 1 to {MAX_TAG_LEN} bytes each"));
        }
        for t in &join.topics {
            if t.starts_with("__") {
                return invalid(format!("topic {t} is internal; groups cannot consume it"));
            }
            if !self.topics.contains_key(t) {
                return Err(WireError::new(
                    ErrorCode::UnknownTopic,
                    format!("unknown topic {t}; create it before joining group {}", join.group),
                ));
            }
        }
        Ok(join.topics.iter().cloned().collect())
    }

    fn heartbeat(&mut self, name: &str, id: MemberId, generation: GroupGeneration) -> Result<ResponseBody, WireError> {
        let now = self.now;
        let current = match self.groups.get(name) {
            Some(g) => self.generation_of(g),
            None => return Err(unknown_member(name, id)),
        };
        let g = self.groups.get_mut(name).expect("checked");
        let Some(m) = g.members.get_mut(&id) else { return Err(unknown_member(name, id)) };
        if m.join.is_some() {
            return Err(rebalancing(name));
        }
        // The member is alive whatever its generation says.
        m.deadline = now + m.session_timeout;
        if generation != current {
            self.coverage.hit(Mark::IllegalGeneration);
            return Err(WireError::new(
                ErrorCode::IllegalGeneration,
                format!("member {id} of group {name} is at generation {generation}; the group is at {current}; rejoin"),
            ));
        }
        if g.phase != Phase::Stable {
            return Err(rebalancing(name));
        }
        Ok(ResponseBody::HeartbeatOk)
    }

    fn leave(&mut self, name: &str, id: MemberId) -> Result<ResponseBody, WireError> {
        if !self.groups.get(name).is_some_and(|g| g.members.contains_key(&id)) {
            return Err(unknown_member(name, id));
        }
        self.remove_member(name, id, "the member left the group");
        Ok(ResponseBody::Left)
    }

    // ----- membership changes -----

    fn set_topics(&mut self, topics: BTreeMap<String, u32>) {
        if topics == self.topics {
            return;
        }
        self.topics = topics;
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for name in names {
            let g = &self.groups[&name];
            if g.phase == Phase::Stable && self.partitions_of(g) != g.partitions {
                self.start_rebalance(&name);
            }
        }
    }

    fn tick(&mut self) {
        let now = self.now;
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for name in names {
            let Some(g) = self.groups.get(&name) else { continue };
            let past_deadline = matches!(g.phase, Phase::Rebalancing { deadline } if deadline <= now);
            let expired: Vec<MemberId> = g
                .members
                .iter()
                .filter(|(_, m)| m.join.is_none() && (m.deadline <= now || past_deadline))
                .map(|(id, _)| *id)
                .collect();
            for id in expired {
                // Past the rebalance deadline every member that has not rejoined
                // goes, whatever its session says.
                let member = self.groups.get(&name).and_then(|g| g.members.get(&id));
                match member.map(|m| m.deadline <= now) {
                    Some(true) => self.coverage.hit(Mark::MemberEvictedSession),
                    Some(false) => self.coverage.hit(Mark::MemberEvictedRebalance),
                    None => {}
                }
                self.remove_member(&name, id, "session timeout: no heartbeat in time");
            }
            if past_deadline {
                self.maybe_complete(&name);
            }
        }
    }

    /// Removes a member (leave or eviction) and rebalances the rest.
    fn remove_member(&mut self, name: &str, id: MemberId, why: &str) {
        let Some(g) = self.groups.get_mut(name) else { return };
        let Some(m) = g.members.remove(&id) else { return };
        tracing::debug!(group = name, member = %id, why, "member removed");
        if let Some((to, c)) = m.join {
            self.reply(to, c, Err(WireError::new(ErrorCode::UnknownMember, format!("member {id} removed: {why}"))));
        }
        if self.groups[name].members.is_empty() {
            self.groups.remove(name);
            return;
        }
        self.start_rebalance(name);
        self.maybe_complete(name);
    }

    /// Enters the barrier (once; a change during a rebalance joins the running one).
    fn start_rebalance(&mut self, name: &str) {
        let now = self.now;
        let Some(g) = self.groups.get_mut(name) else { return };
        if g.phase == Phase::Stable || g.generation == Generation(0) {
            let longest = g.members.values().map(|m| m.session_timeout).max().unwrap_or(Duration::ZERO);
            let deadline = match g.phase {
                Phase::Rebalancing { deadline } if g.generation == Generation(0) => deadline.max(now + longest),
                _ => now + longest,
            };
            g.phase = Phase::Rebalancing { deadline };
        }
    }

    /// Completes the rebalance once every member has rejoined: a new generation,
    /// a new assignment, and every held join answered.
    fn maybe_complete(&mut self, name: &str) {
        let Some(g) = self.groups.get(name) else { return };
        if g.phase == Phase::Stable || g.members.values().any(|m| m.join.is_none()) {
            return;
        }
        let partitions = self.partitions_of(g);
        let now = self.now;
        let g = self.groups.get_mut(name).expect("checked");
        self.coverage.hit(Mark::Rebalance);
        self.last_generation = self.last_generation.max(g.generation).next();
        g.generation = self.last_generation;
        g.phase = Phase::Stable;
        let shares: BTreeMap<MemberId, Vec<TopicPartition>> = match g.mode {
            GroupMode::Exclusive(assignor) => {
                g.owners = exclusive_assignment(assignor, &g.members, &partitions, &g.owners);
                let mut shares: BTreeMap<MemberId, Vec<TopicPartition>> =
                    g.members.keys().map(|id| (*id, Vec::new())).collect();
                for (tp, owner) in &g.owners {
                    shares.get_mut(owner).expect("owners are members").push(tp.clone());
                }
                shares
            }
            GroupMode::Shared | GroupMode::KeyShared => g
                .members
                .iter()
                .map(|(id, m)| (*id, partitions.iter().filter(|tp| m.topics.contains(&tp.topic)).cloned().collect()))
                .collect(),
        };
        g.partitions = partitions;
        let mut held = Vec::new();
        for (id, m) in &mut g.members {
            m.assignment = shares.get(id).cloned().unwrap_or_default();
            m.deadline = now + m.session_timeout;
            held.extend(m.join.take().map(|j| (*id, j)));
        }
        let (members, parts) = (g.members.len(), g.partitions.len());
        let generation = self.generation_of(&self.groups[name]);
        self.outputs.push_back(CoordinatorOutput::Rebalanced {
            group: name.to_string(),
            generation,
            members,
            partitions: parts,
        });
        for (id, (to, c)) in held {
            let body = self.joined(name, id);
            self.reply(to, c, Ok(body));
        }
    }

    // ----- helpers -----

    /// The partitions a group's subscriptions cover now.
    fn partitions_of(&self, g: &Group) -> BTreeSet<TopicPartition> {
        let topics: BTreeSet<&String> = g.members.values().flat_map(|m| m.topics.iter()).collect();
        topics
            .into_iter()
            .flat_map(|t| (0..self.topics.get(t).copied().unwrap_or(0)).map(move |p| TopicPartition::new(t.clone(), p)))
            .collect()
    }

    fn generation_of(&self, g: &Group) -> GroupGeneration {
        GroupGeneration { coordinator_epoch: self.epoch, generation: g.generation }
    }

    fn joined(&self, name: &str, id: MemberId) -> ResponseBody {
        let g = &self.groups[name];
        let m = &g.members[&id];
        let peers = m
            .topics
            .iter()
            .map(|t| {
                let subscribed =
                    g.members.iter().filter(|(_, o)| o.topics.contains(t)).map(|(oid, o)| (*oid, o.weight));
                (t.clone(), subscribed.collect())
            })
            .collect();
        ResponseBody::Joined(Joined {
            member: id,
            generation: self.generation_of(g),
            assignment: m.assignment.clone(),
            heartbeat_interval: Duration::from_nanos(m.session_timeout.as_nanos() / 3),
            settings: g.settings.clone(),
            peers,
        })
    }

    fn reply(&mut self, to: Peer, correlation: CorrelationId, body: Result<ResponseBody, WireError>) {
        self.outputs.push_back(CoordinatorOutput::Reply { to, correlation, body });
    }
}

/// Exclusive assignment when members may subscribe to different topics: the
/// topics with the same set of subscribers are assigned together among those
/// subscribers, so nobody owns a partition of a topic it did not ask for. With one
/// subscription for the whole group (the usual case) this is one assignor call.
fn exclusive_assignment(
    assignor: assign::Assignor,
    members: &BTreeMap<MemberId, Member>,
    partitions: &BTreeSet<TopicPartition>,
    previous: &Assignment,
) -> Assignment {
    let mut by_subscribers: BTreeMap<BTreeSet<MemberId>, BTreeSet<TopicPartition>> = BTreeMap::new();
    for tp in partitions {
        let subs: BTreeSet<MemberId> =
            members.iter().filter(|(_, m)| m.topics.contains(&tp.topic)).map(|(id, _)| *id).collect();
        by_subscribers.entry(subs).or_default().insert(tp.clone());
    }
    let mut out = Assignment::new();
    for (subs, tps) in by_subscribers {
        out.extend(assign::assign(assignor, &subs, &tps, previous));
    }
    out
}

/// Checks a group name: 1 to 249 characters of `[A-Za-z0-9._-]`.
pub fn validate_group_name(name: &str) -> Result<(), WireError> {
    let ok_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() || name.len() > MAX_GROUP_NAME_LEN || !ok_chars {
        return Err(WireError::new(
            ErrorCode::InvalidRequest,
            format!("invalid group name {name:?}: use 1 to {MAX_GROUP_NAME_LEN} characters of A-Z a-z 0-9 . _ -"),
        ));
    }
    Ok(())
}

/// The `__groups` partition that coordinates `group`: Kafka's murmur2 of the name,
/// made non-negative, modulo the partition count (docs/consumers.md section 2).
pub fn coordinator_partition(group: &str, partitions: u32) -> PartitionId {
    PartitionId((crate::client::murmur2(group.as_bytes()) & 0x7fff_ffff) % partitions.max(1))
}

fn unknown_member(group: &str, id: MemberId) -> WireError {
    WireError::new(
        ErrorCode::UnknownMember,
        format!("group {group} has no member {id} (it left, was evicted, or the coordinator moved); join without a member id"),
    )
}

fn rebalancing(group: &str) -> WireError {
    WireError::new(
        ErrorCode::RebalanceInProgress,
        format!("group {group} is rebalancing; stop consuming and send JoinGroup with your member id"),
    )
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
