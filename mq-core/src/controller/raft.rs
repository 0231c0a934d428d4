//! Raft for the metadata quorum, sans-IO (Ongaro and Ousterhout, "In Search of an
//! Understandable Consensus Algorithm", 2014; Ongaro's thesis, 2014, for PreVote
//! §9.6 and check-quorum §6.2). docs/replication.md states the rules as built.
//!
//! The rules this module keeps, each checked by a test in this file:
//! - Terms and votes are persisted before any message that depends on them leaves:
//!   vote grants, requests for votes and append acknowledgements are queued as
//!   [`RaftOutput::Send`] with `after_persist: true`; the node sends them only once
//!   every write emitted before them is durable.
//! - A vote goes only to a candidate whose log is at least as up to date as the
//!   voter's (§5.4.1), and at most one per term.
//! - A leader counts a replica towards commitment only up to what that replica
//!   persisted, itself included, and commits by counting replicas only entries of
//!   its own term (§5.4.2); every new leader appends a `LeaderChange` entry for that.
//! - PreVote: an election timeout first asks for pre-votes at `term + 1` without
//!   changing any term; voters refuse while they hear from a live leader.
//! - Check-quorum: a leader that has not heard from a majority within an election
//!   timeout steps down.
//! - Committed entries are never truncated (a panic: it would be a bug).

use super::metadata::MetadataRecord;
use crate::buggify::{Buggify, Point};
use crate::coverage::{Coverage, Mark};
use crate::ids::{NodeId, Term};
use crate::rng::Rng;
use crate::time::{Duration, Instant};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A position in the metadata log; the first entry has index 1, and index 0 with
/// term 0 stands for the empty prefix.
pub type LogIndex = u64;

/// One entry of the metadata log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The term in which a leader appended it.
    pub term: Term,
    /// Its position.
    pub index: LogIndex,
    /// The change it carries.
    pub record: MetadataRecord,
}

/// Messages among the voters. Every reply carries the sender's current term.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftMessage {
    /// "Would you vote for me at `term`?" Changes no state at the receiver.
    PreVote {
        /// The term the sender would campaign in.
        term: Term,
        /// Term of the sender's last entry.
        last_term: Term,
        /// Index of the sender's last entry.
        last_index: LogIndex,
    },
    /// Answer to `PreVote`.
    PreVoteReply {
        /// The term asked about (or the voter's, if higher).
        term: Term,
        /// Whether the voter would vote.
        granted: bool,
    },
    /// A request for a vote at `term`.
    Vote {
        /// The candidate's term.
        term: Term,
        /// Term of the candidate's last entry.
        last_term: Term,
        /// Index of the candidate's last entry.
        last_index: LogIndex,
    },
    /// Answer to `Vote`, sent only once the voter's term and vote are durable.
    VoteReply {
        /// The voter's term.
        term: Term,
        /// Whether the vote was granted.
        granted: bool,
    },
    /// Entries (possibly none: a heartbeat) from the leader.
    Append {
        /// The leader's term.
        term: Term,
        /// Index of the entry before `entries`.
        prev_index: LogIndex,
        /// Term of that entry.
        prev_term: Term,
        /// New entries.
        entries: Vec<Entry>,
        /// The leader's commit index.
        commit: LogIndex,
        /// The leader's confirmation round when it sent this (echoed in the reply).
        round: u64,
    },
    /// Answer to `Append`. On success sent only once the entries are durable, with
    /// `last_index` the highest index known to match; on failure `last_index` is a
    /// hint where to retry from.
    AppendReply {
        /// The follower's term.
        term: Term,
        /// Whether the entries matched and were appended.
        success: bool,
        /// See above.
        last_index: LogIndex,
        /// The `round` of the `Append` this answers.
        round: u64,
    },
}

/// Why a peer's message cannot be acted on, if it cannot: a term with no
/// successor (adopting it would leave no term to campaign in), or an `Append`
/// whose entries do not continue its `prev_index` one index at a time, with terms
/// from `prev_term` up to the message's term. Correct leaders never send either.
fn malformed(msg: &RaftMessage) -> Option<String> {
    let term = match msg {
        RaftMessage::PreVote { term, .. }
        | RaftMessage::PreVoteReply { term, .. }
        | RaftMessage::Vote { term, .. }
        | RaftMessage::VoteReply { term, .. }
        | RaftMessage::Append { term, .. }
        | RaftMessage::AppendReply { term, .. } => *term,
    };
    if term == Term(u64::MAX) {
        return Some(format!("term {term} has no successor"));
    }
    let RaftMessage::Append { term, prev_index, prev_term, entries, .. } = msg else { return None };
    let mut last = (*prev_index, *prev_term);
    for e in entries {
        if Some(e.index) != last.0.checked_add(1) || e.term < last.1 || e.term > *term {
            return Some(format!(
                "entry {} of term {} does not follow index {} of term {} in an append of term {term}",
                e.index, e.term, last.0, last.1
            ));
        }
        last = (e.index, e.term);
    }
    None
}

/// Durable writes of the Raft state, in the order they must be applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftWrite {
    /// The current term and the vote cast in it.
    HardState {
        /// Current term.
        term: Term,
        /// Vote in that term.
        vote: Option<NodeId>,
    },
    /// Append entries after the current last index.
    Append(Vec<Entry>),
    /// Remove every entry at or above this index.
    Truncate(LogIndex),
}

/// What the driver (the node) must do for Raft.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaftOutput {
    /// Send `msg` to `to`; if `after_persist`, only once every write emitted before
    /// it is durable.
    Send {
        /// The voter.
        to: NodeId,
        /// The message.
        msg: RaftMessage,
        /// Whether it must wait for earlier writes.
        after_persist: bool,
    },
    /// Make this durable, in order with other writes.
    Write(RaftWrite),
}

/// Raft state as read back from durable storage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftDurable {
    /// Last persisted term.
    pub term: Term,
    /// Last persisted vote.
    pub vote: Option<NodeId>,
    /// Persisted entries, indexes 1.. in order.
    pub entries: Vec<Entry>,
}

impl RaftDurable {
    /// Applies one write.
    pub fn apply(&mut self, w: &RaftWrite) {
        match w {
            RaftWrite::HardState { term, vote } => {
                self.term = *term;
                self.vote = *vote;
            }
            RaftWrite::Append(es) => self.entries.extend(es.iter().cloned()),
            RaftWrite::Truncate(from) => self.entries.retain(|e| e.index < *from),
        }
    }
}

/// Timing and membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftConfig {
    /// This node.
    pub id: NodeId,
    /// The voters (this node may or may not be one).
    pub voters: Vec<NodeId>,
    /// The minimum election timeout; each timeout is drawn from `[t, 2t)`.
    pub election_timeout: Duration,
    /// How often a leader sends appends when idle.
    pub heartbeat_interval: Duration,
    /// Most entries in one `Append`.
    pub max_entries_per_append: usize,
    /// BUGGIFY's seed (`crate::buggify`); `None`: off.
    pub buggify: Option<u64>,
}

impl RaftConfig {
    /// Defaults for `id` among `voters`: 1 s election timeout, 100 ms heartbeats.
    pub fn new(id: NodeId, voters: Vec<NodeId>) -> Self {
        RaftConfig {
            id,
            voters,
            election_timeout: Duration::from_millis(1000),
            heartbeat_interval: Duration::from_millis(100),
            max_entries_per_append: 256,
            buggify: None,
        }
    }
}

/// Where a leader believes a follower is.
#[derive(Clone, Debug)]
struct Progress {
    next: LogIndex,
    matched: LogIndex,
    last_heard: Instant,
    /// The newest confirmation round this voter answered in the leader's term.
    acked_round: u64,
}

/// The role of this replica.
#[derive(Clone, Debug)]
enum Role {
    Follower { leader: Option<NodeId> },
    PreCandidate { granted: BTreeSet<NodeId> },
    Candidate { granted: BTreeSet<NodeId> },
    Leader { progress: BTreeMap<NodeId, Progress> },
}

/// The role, for observers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RaftRole {
    /// Follows a leader (or none known).
    Follower,
    /// Asking for pre-votes.
    PreCandidate,
    /// Asking for votes.
    Candidate,
    /// Leading its term.
    Leader,
}

/// Identifies the writes emitted so far; see [`Raft::durability_marker`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurabilityMarker {
    generation: u64,
    last_index: LogIndex,
    writes: u64,
}

/// One Raft replica. `Clone` serves state-space search over copies of replicas
/// (`mq-core/tests/raft_exhaustive.rs`).
#[derive(Clone, Debug)]
pub struct Raft {
    config: RaftConfig,
    rng: Rng,
    term: Term,
    vote: Option<NodeId>,
    role: Role,
    /// Entries 1..; `log[i]` has index `i + 1`.
    log: Vec<Entry>,
    commit: LogIndex,
    /// Highest index known durable on this replica.
    durable: LogIndex,
    /// Bumped by every truncation: completions of writes emitted before it may not
    /// raise `durable` above the truncation point.
    generation: u64,
    /// Writes emitted so far, and how many of them are known durable.
    writes_emitted: u64,
    writes_durable: u64,
    /// The write that made this replica's current vote durable.
    vote_write: u64,
    election_deadline: Instant,
    heartbeat_deadline: Instant,
    check_quorum_deadline: Instant,
    /// When we last heard from a leader of the current term (for leader stickiness).
    last_leader_contact: Option<Instant>,
    /// Confirmation rounds (leader): bumped by every broadcast, echoed by
    /// followers. A round a majority answered in this term proves this replica
    /// was still leader after the round began ([`Raft::confirmed_round`]).
    round: u64,
    /// A confirmation was asked for while a round was unanswered: broadcast
    /// again as soon as it is answered.
    confirm_wanted: bool,
    out: Vec<RaftOutput>,
    /// Rare branches taken (never read by the protocol).
    coverage: Coverage,
    /// Legal but rare paths under the simulator (off in production).
    buggify: Buggify,
}

impl Raft {
    /// A replica built from its durable state.
    pub fn new(config: RaftConfig, rng: Rng, durable: RaftDurable, now: Instant) -> Self {
        for (i, e) in durable.entries.iter().enumerate() {
            assert_eq!(e.index, i as u64 + 1, "stored metadata log is not contiguous");
        }
        let durable_index = durable.entries.len() as u64;
        let buggify = Buggify::new(config.buggify, "buggify-raft", u64::from(config.id.0));
        let mut raft = Raft {
            config,
            rng,
            term: durable.term,
            vote: durable.vote,
            role: Role::Follower { leader: None },
            log: durable.entries,
            commit: 0,
            durable: durable_index,
            generation: 0,
            writes_emitted: 0,
            writes_durable: 0,
            vote_write: 0,
            election_deadline: Instant::MAX,
            heartbeat_deadline: Instant::MAX,
            check_quorum_deadline: Instant::MAX,
            last_leader_contact: None,
            round: 0,
            confirm_wanted: false,
            out: Vec::new(),
            coverage: Coverage::default(),
            buggify,
        };
        raft.reset_election_deadline(now);
        raft
    }

    // ----- getters -----

    /// Current term.
    pub fn term(&self) -> Term {
        self.term
    }
    /// The role.
    pub fn role(&self) -> RaftRole {
        match self.role {
            Role::Follower { .. } => RaftRole::Follower,
            Role::PreCandidate { .. } => RaftRole::PreCandidate,
            Role::Candidate { .. } => RaftRole::Candidate,
            Role::Leader { .. } => RaftRole::Leader,
        }
    }
    /// The leader of the current term, if known.
    pub fn leader(&self) -> Option<NodeId> {
        match &self.role {
            Role::Follower { leader } => *leader,
            Role::Leader { .. } => Some(self.config.id),
            _ => None,
        }
    }
    /// Highest committed index.
    pub fn commit_index(&self) -> LogIndex {
        self.commit
    }
    /// Index of the last entry (durable or not).
    pub fn last_index(&self) -> LogIndex {
        self.log.len() as u64
    }
    /// The entries after `index` up to the commit index.
    pub fn committed_after(&self, index: LogIndex) -> &[Entry] {
        let from = (index as usize).min(self.log.len());
        let to = (self.commit as usize).min(self.log.len());
        if from >= to {
            &[]
        } else {
            &self.log[from..to]
        }
    }
    /// Every entry of the log, committed or not (index 1 first).
    pub fn log_entries(&self) -> &[Entry] {
        &self.log
    }
    /// Whether an entry of the current term has committed: a new leader's image is
    /// complete only from then on.
    pub fn current_term_committed(&self) -> bool {
        self.commit > 0 && self.log.get(self.commit as usize - 1).is_some_and(|e| e.term == self.term)
    }
    /// The rare branches this replica took ([`crate::coverage`]).
    pub fn coverage(&self) -> &Coverage {
        &self.coverage
    }
    /// Whether this replica is a voter.
    pub fn is_voter(&self) -> bool {
        self.config.voters.contains(&self.config.id)
    }
    /// The next deadline.
    pub fn poll_timeout(&self) -> Instant {
        self.election_deadline.min(self.heartbeat_deadline).min(self.check_quorum_deadline)
    }
    /// Takes the pending outputs.
    pub fn drain_outputs(&mut self) -> std::vec::Drain<'_, RaftOutput> {
        self.out.drain(..)
    }
    /// A marker for every write emitted so far; hand it back to
    /// [`Raft::on_persisted`] once those writes are durable.
    pub fn durability_marker(&self) -> DurabilityMarker {
        DurabilityMarker { generation: self.generation, last_index: self.last_index(), writes: self.writes_emitted }
    }

    // ----- inputs -----

    /// Writes up to `marker` are durable.
    pub fn on_persisted(&mut self, now: Instant, marker: DurabilityMarker) {
        if marker.generation == self.generation {
            self.durable = self.durable.max(marker.last_index.min(self.last_index()));
        }
        self.writes_durable = self.writes_durable.max(marker.writes);
        match self.role {
            Role::Leader { .. } => self.advance_commit(),
            Role::Candidate { .. } => self.maybe_win(now),
            _ => {}
        }
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.check_quorum_deadline {
            self.check_quorum(now);
        }
        if now >= self.heartbeat_deadline {
            self.heartbeat_deadline = now + self.config.heartbeat_interval;
            self.broadcast_append(now);
        }
        if now >= self.election_deadline {
            self.start_pre_vote(now);
        }
    }

    /// Proposes `record` if this replica leads; returns its index or the leader hint.
    pub fn propose(&mut self, now: Instant, record: MetadataRecord) -> Result<LogIndex, Option<NodeId>> {
        if !matches!(self.role, Role::Leader { .. }) {
            return Err(self.leader());
        }
        let index = self.append_local(record);
        self.broadcast_append(now);
        self.advance_commit();
        Ok(index)
    }

    /// A message from voter `from`. A malformed one (see [`malformed`]) is
    /// dropped with a trace line: bad input from a peer is never a panic.
    pub fn handle_message(&mut self, now: Instant, from: NodeId, msg: RaftMessage) {
        if let Some(why) = malformed(&msg) {
            tracing::warn!(node = %self.config.id, %from, "dropped a malformed Raft message: {why}");
            return;
        }
        match msg {
            RaftMessage::PreVote { term, last_term, last_index } => {
                let granted = term > self.term && self.log_ok(last_term, last_index) && !self.leader_is_alive(now);
                if !granted {
                    self.coverage.hit(Mark::PreVoteRefused);
                }
                // A grant echoes the asked term; a refusal tells the voter's own term.
                let reply_term = if granted { term } else { self.term };
                self.send(from, RaftMessage::PreVoteReply { term: reply_term, granted }, false);
            }
            RaftMessage::PreVoteReply { term, granted } => {
                if !granted && term > self.term {
                    self.become_follower(now, term, None);
                    return;
                }
                if let Role::PreCandidate { granted: set } = &mut self.role {
                    if granted && term == self.term.next() {
                        set.insert(from);
                        if set.len() >= self.quorum() {
                            self.start_election(now);
                        }
                    }
                }
            }
            RaftMessage::Vote { term, last_term, last_index } => {
                if term > self.term && self.leader_is_alive(now) {
                    // Leader stickiness (thesis §4.2.3): ignore a disruptive candidate.
                    self.coverage.hit(Mark::VoteRefusedLeaderAlive);
                    self.send(from, RaftMessage::VoteReply { term: self.term, granted: false }, false);
                    return;
                }
                if term > self.term {
                    self.become_follower(now, term, None);
                }
                let can_vote = self.vote.is_none() || self.vote == Some(from);
                let log_ok = self.log_ok(last_term, last_index);
                if term == self.term && can_vote && !log_ok {
                    self.coverage.hit(Mark::VoteRefusedStaleLog);
                }
                let granted = term == self.term && can_vote && log_ok;
                if granted {
                    self.vote = Some(from);
                    self.persist_hard_state();
                    self.reset_election_deadline(now);
                }
                self.send(from, RaftMessage::VoteReply { term: self.term, granted }, true);
            }
            RaftMessage::VoteReply { term, granted } => {
                if term > self.term {
                    self.become_follower(now, term, None);
                    return;
                }
                if let Role::Candidate { granted: set } = &mut self.role {
                    if granted && term == self.term {
                        set.insert(from);
                        self.maybe_win(now);
                    }
                }
            }
            RaftMessage::Append { term, prev_index, prev_term, entries, commit, round } => {
                self.handle_append(now, from, term, prev_index, prev_term, entries, commit, round)
            }
            RaftMessage::AppendReply { term, success, last_index, round } => {
                self.handle_append_reply(now, from, term, success, last_index, round)
            }
        }
    }

    // ----- elections -----

    fn quorum(&self) -> usize {
        self.config.voters.len() / 2 + 1
    }

    fn leader_is_alive(&self, now: Instant) -> bool {
        matches!(self.role, Role::Leader { .. })
            || self.last_leader_contact.is_some_and(|t| now.saturating_since(t) < self.config.election_timeout)
    }

    fn last_term(&self) -> Term {
        self.log.last().map_or(Term(0), |e| e.term)
    }

    /// §5.4.1: the candidate's log is at least as up to date as ours.
    fn log_ok(&self, last_term: Term, last_index: LogIndex) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    fn reset_election_deadline(&mut self, now: Instant) {
        if !self.is_voter() {
            self.election_deadline = Instant::MAX;
            return;
        }
        let t = self.config.election_timeout.as_nanos().max(1);
        let mut jitter = self.rng.random_range(0..t);
        if self.buggify.fire(Point::RaftEarlyElection, &mut self.coverage) {
            jitter = self.buggify.pick(0..(t / 100).max(1));
        }
        self.election_deadline = now + Duration::from_nanos(t + jitter);
    }

    fn start_pre_vote(&mut self, now: Instant) {
        self.reset_election_deadline(now);
        if !self.is_voter() || matches!(self.role, Role::Leader { .. }) {
            return;
        }
        let mut granted = BTreeSet::new();
        granted.insert(self.config.id);
        self.role = Role::PreCandidate { granted };
        if self.quorum() == 1 {
            self.start_election(now);
            return;
        }
        let msg =
            RaftMessage::PreVote { term: self.term.next(), last_term: self.last_term(), last_index: self.last_index() };
        for v in self.other_voters() {
            self.send(v, msg.clone(), false);
        }
    }

    fn start_election(&mut self, now: Instant) {
        self.term = self.term.next();
        self.vote = Some(self.config.id);
        self.persist_hard_state();
        self.last_leader_contact = None;
        let mut granted = BTreeSet::new();
        granted.insert(self.config.id);
        self.role = Role::Candidate { granted };
        self.reset_election_deadline(now);
        let msg = RaftMessage::Vote { term: self.term, last_term: self.last_term(), last_index: self.last_index() };
        for v in self.other_voters() {
            // The candidate's own term and vote must be durable before anyone acts on them.
            self.send(v, msg.clone(), true);
        }
        self.maybe_win(now);
    }

    fn maybe_win(&mut self, now: Instant) {
        let Role::Candidate { granted } = &self.role else { return };
        if granted.len() < self.quorum() {
            return;
        }
        if self.writes_durable < self.vote_write {
            self.coverage.hit(Mark::CandidateAwaitsDurableVote);
            return; // lead only once the own vote is durable; `on_persisted` calls back
        }
        self.become_leader(now);
    }

    fn become_leader(&mut self, now: Instant) {
        let next = self.last_index() + 1;
        let progress = self
            .other_voters()
            .into_iter()
            .map(|v| (v, Progress { next, matched: 0, last_heard: now, acked_round: 0 }))
            .collect();
        self.confirm_wanted = false;
        self.role = Role::Leader { progress };
        self.election_deadline = Instant::MAX;
        self.heartbeat_deadline = now + self.config.heartbeat_interval;
        self.check_quorum_deadline = now + self.config.election_timeout;
        self.append_local(MetadataRecord::LeaderChange { leader: self.config.id });
        self.broadcast_append(now);
        self.advance_commit();
    }

    fn become_follower(&mut self, now: Instant, term: Term, leader: Option<NodeId>) {
        if term > self.term && matches!(self.role, Role::Leader { .. }) {
            self.coverage.hit(Mark::LeaderStepDownHigherTerm);
        }
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.persist_hard_state();
        }
        self.role = Role::Follower { leader };
        self.heartbeat_deadline = Instant::MAX;
        self.check_quorum_deadline = Instant::MAX;
        self.reset_election_deadline(now);
    }

    fn check_quorum(&mut self, now: Instant) {
        let Role::Leader { progress } = &self.role else {
            self.check_quorum_deadline = Instant::MAX;
            return;
        };
        let window = self.config.election_timeout;
        let heard = 1 + progress.values().filter(|p| now.saturating_since(p.last_heard) < window).count();
        if heard < self.quorum() {
            tracing::debug!(node = %self.config.id, term = %self.term, "check-quorum: stepping down");
            self.coverage.hit(Mark::CheckQuorumStepDown);
            self.become_follower(now, self.term, None);
        } else {
            self.check_quorum_deadline = now + window;
        }
    }

    // ----- replication -----

    fn append_local(&mut self, record: MetadataRecord) -> LogIndex {
        let entry = Entry { term: self.term, index: self.last_index() + 1, record };
        self.log.push(entry.clone());
        self.write(RaftWrite::Append(vec![entry]));
        self.last_index()
    }

    fn broadcast_append(&mut self, now: Instant) {
        if !matches!(self.role, Role::Leader { .. }) {
            return;
        }
        self.heartbeat_deadline = now + self.config.heartbeat_interval;
        self.round += 1;
        for v in self.other_voters() {
            self.send_append(v);
        }
    }

    /// The current confirmation round: a broadcast from now on has a higher one.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// The newest round a majority of voters (this leader counting itself if it
    /// votes) answered in this leader's term; 0 when not leader. Every message of
    /// round `r` left after the broadcast that began `r`, and a voter that
    /// answered one in this term had not voted for a later term when it did (it
    /// would have refused the append), so no later term can have had a majority
    /// of votes before round `r` began: the leadership still held then (the
    /// ReadIndex check of Raft's thesis, section 6.4).
    pub fn confirmed_round(&self) -> u64 {
        let Role::Leader { progress } = &self.role else { return 0 };
        let mut rounds: Vec<u64> = self
            .config
            .voters
            .iter()
            .filter(|v| **v != self.config.id)
            .map(|v| progress.get(v).map_or(0, |p| p.acked_round))
            .collect();
        if self.is_voter() {
            rounds.push(self.round);
        }
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        rounds.get(self.quorum() - 1).copied().unwrap_or(0)
    }

    /// Asks for a confirmation round that begins after now; returns the round a
    /// caller must see [`Raft::confirmed_round`] reach. One round is unanswered
    /// at a time: a request meanwhile rides on the next one.
    pub fn request_confirmation(&mut self, now: Instant) -> u64 {
        if !matches!(self.role, Role::Leader { .. }) {
            return u64::MAX;
        }
        if self.confirmed_round() >= self.round {
            self.broadcast_append(now);
            // A single voter confirms itself.
            return self.round;
        }
        self.confirm_wanted = true;
        self.round + 1
    }

    fn send_append(&mut self, to: NodeId) {
        let Role::Leader { progress } = &mut self.role else { return };
        let Some(p) = progress.get_mut(&to) else { return };
        let prev_index = p.next - 1;
        let prev_term = if prev_index == 0 { Term(0) } else { self.log[prev_index as usize - 1].term };
        let mut end = (self.log.len()).min(prev_index as usize + self.config.max_entries_per_append);
        if end > prev_index as usize && self.buggify.fire(Point::RaftShortAppend, &mut self.coverage) {
            // Fewer entries, maybe none (a heartbeat): the follower's reply moves
            // `next` on from what it got.
            end = prev_index as usize + self.buggify.pick(0..(end - prev_index as usize) as u64) as usize;
        }
        let entries = self.log[prev_index as usize..end].to_vec();
        // Optimistic pipelining: assume they arrive; a rejection moves `next` back.
        p.next = end as u64 + 1;
        let msg = RaftMessage::Append {
            term: self.term,
            prev_index,
            prev_term,
            entries,
            commit: self.commit,
            round: self.round,
        };
        self.send(to, msg, false);
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_append(
        &mut self,
        now: Instant,
        from: NodeId,
        term: Term,
        prev_index: LogIndex,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: LogIndex,
        round: u64,
    ) {
        if term < self.term {
            self.send(from, RaftMessage::AppendReply { term: self.term, success: false, last_index: 0, round }, false);
            return;
        }
        if term > self.term || !matches!(self.role, Role::Follower { leader: Some(_) }) {
            assert!(
                !(term == self.term && matches!(self.role, Role::Leader { .. })),
                "two leaders in term {term}: {} and {from}",
                self.config.id
            );
            self.become_follower(now, term, Some(from));
        }
        self.last_leader_contact = Some(now);
        self.reset_election_deadline(now);

        let prev_ok = prev_index == 0 || self.log.get(prev_index as usize - 1).is_some_and(|e| e.term == prev_term);
        if !prev_ok {
            self.coverage.hit(Mark::AppendPrevMismatch);
            let hint = self.last_index().min(prev_index.saturating_sub(1));
            self.send(
                from,
                RaftMessage::AppendReply { term: self.term, success: false, last_index: hint, round },
                false,
            );
            return;
        }
        // Only the entries the leader sent are known to match; anything after them may
        // be a stale tail that was never compared.
        let matched = prev_index + entries.len() as u64;
        let mut new_entries = Vec::new();
        for e in entries {
            match self.log.get(e.index as usize - 1) {
                Some(existing) if existing.term == e.term => continue,
                Some(_) => {
                    assert!(e.index > self.commit, "truncating committed entry {} (commit {})", e.index, self.commit);
                    self.coverage.hit(Mark::LogTruncatedByConflict);
                    self.log.truncate(e.index as usize - 1);
                    self.generation += 1;
                    self.durable = self.durable.min(e.index - 1);
                    self.write(RaftWrite::Truncate(e.index));
                    new_entries.push(e.clone());
                    self.log.push(e);
                }
                None => {
                    new_entries.push(e.clone());
                    self.log.push(e);
                }
            }
        }
        if !new_entries.is_empty() {
            self.write(RaftWrite::Append(new_entries));
        }
        let new_commit = commit.min(matched);
        if new_commit > self.commit {
            self.commit = new_commit;
        }
        self.send(from, RaftMessage::AppendReply { term: self.term, success: true, last_index: matched, round }, true);
    }

    fn handle_append_reply(
        &mut self,
        now: Instant,
        from: NodeId,
        term: Term,
        success: bool,
        last_index: LogIndex,
        round: u64,
    ) {
        if term > self.term {
            self.become_follower(now, term, None);
            return;
        }
        if term < self.term {
            return;
        }
        let last = self.last_index();
        let Role::Leader { progress } = &mut self.role else { return };
        let Some(p) = progress.get_mut(&from) else { return };
        p.last_heard = now;
        // A forged round from the future confirms nothing.
        if round <= self.round {
            p.acked_round = p.acked_round.max(round);
        }
        if self.confirm_wanted && self.confirmed_round() >= self.round {
            self.confirm_wanted = false;
            self.broadcast_append(now);
        }
        let Role::Leader { progress } = &mut self.role else { return };
        let Some(p) = progress.get_mut(&from) else { return };
        if success {
            p.matched = p.matched.max(last_index.min(last));
            p.next = p.next.max(p.matched + 1);
            self.advance_commit();
            if self.role_progress_behind(from) {
                self.send_append(from);
            }
        } else {
            // Saturating: a forged reply's index near u64::MAX must not overflow
            // (found by the `controller` fuzz target); honest ones never get there.
            p.next = last_index.saturating_add(1).min(p.next.saturating_sub(1)).max(1);
            self.send_append(from);
        }
    }

    fn role_progress_behind(&self, v: NodeId) -> bool {
        match &self.role {
            Role::Leader { progress } => progress.get(&v).is_some_and(|p| p.next <= self.last_index()),
            _ => false,
        }
    }

    /// §5.3/§5.4.2: the highest index durable on a majority, if it is of this term.
    fn advance_commit(&mut self) {
        let Role::Leader { progress } = &self.role else { return };
        let mut matched: Vec<LogIndex> = progress.values().map(|p| p.matched).collect();
        if self.is_voter() {
            matched.push(self.durable);
        }
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&candidate) = matched.get(self.quorum() - 1) else { return };
        if candidate > self.commit && self.log[candidate as usize - 1].term == self.term {
            self.commit = candidate;
        }
    }

    // ----- helpers -----

    fn other_voters(&self) -> Vec<NodeId> {
        self.config.voters.iter().copied().filter(|v| *v != self.config.id).collect()
    }

    fn persist_hard_state(&mut self) {
        self.write(RaftWrite::HardState { term: self.term, vote: self.vote });
        self.vote_write = self.writes_emitted;
    }

    fn write(&mut self, w: RaftWrite) {
        self.writes_emitted += 1;
        self.out.push(RaftOutput::Write(w));
    }

    fn send(&mut self, to: NodeId, msg: RaftMessage, after_persist: bool) {
        self.out.push(RaftOutput::Send { to, msg, after_persist });
    }

    /// Panics if an internal invariant is broken.
    pub fn check_invariants(&self) {
        for (i, e) in self.log.iter().enumerate() {
            assert_eq!(e.index, i as u64 + 1, "log indexes not contiguous");
            assert!(e.term <= self.term, "entry from a future term");
        }
        for w in self.log.windows(2) {
            assert!(w[0].term <= w[1].term, "terms decrease along the log");
        }
        assert!(self.commit <= self.last_index(), "commit beyond the log");
        assert!(self.durable <= self.last_index(), "durable beyond the log");
        if let Role::Leader { .. } = self.role {
            assert_eq!(self.vote, Some(self.config.id), "a leader voted for itself");
        }
    }
}
