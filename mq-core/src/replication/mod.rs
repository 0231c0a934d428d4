//! Partition replication (DESIGN.md section 5; docs/replication.md): the state of one
//! partition replica on one broker, as leader or follower, and the rules of
//! Kafka's KRaft-era protocol that decide its high watermark, its ISR requests and
//! its divergence truncation. This module decides; the node sends and persists.
//!
//! - The leader's LEO is its persisted end; a follower's LEO is the `fetch_offset`
//!   of its latest fetch, which it only sends once everything before it is
//!   persisted.
//! - HW (leader) = min LEO over the *maximal* ISR (the ISR plus members being added
//!   or not yet removed), never decreasing, and frozen while |ISR| < min ISR.
//! - A follower is caught up if its LEO reached the leader's LEO within
//!   `replica_lag_time` (Kafka's `lastCaughtUpTime` rule); it joins the ISR once its
//!   LEO is at least the HW and the start of the leader's epoch.
//! - Divergence (KIP-279/KIP-320): a fetch whose last fetched epoch ends earlier on
//!   the leader (or does not exist there) gets the leader's `(epoch, end offset)`;
//!   the follower truncates to the lesser of that and its own end of that epoch.
//!   A leader that keeps no epoch at or before the follower's answers its log
//!   start as the end: the follower can check nothing it holds, not even below
//!   that start, and empties its log there. Nothing ever truncates to the HW
//!   (the KIP-101 bug).

pub mod producers;

use crate::controller::PartitionImage;
use crate::ids::{LeaderEpoch, NodeId, Offset};
use crate::log::PartitionLog;
use crate::time::{Duration, Instant};
use crate::wire::{ErrorCode, ReplicaData, ReplicaFetch, WireError};
use std::collections::BTreeMap;

/// What the leader knows of one follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The follower's LEO as its last fetch reported it.
    pub leo: Offset,
    /// When its LEO last reached the leader's LEO (Kafka's `lastCaughtUpTime`).
    pub last_caught_up: Instant,
    /// When it last fetched in this leader's tenure; none before its first
    /// fetch, when its LEO is unknown (Kafka's follower LEO starts unknown on a
    /// new leader too). A follower that has not fetched is never added to the
    /// ISR: mq-sim seed 1406825, where a new leader with an empty log took a
    /// follower that never fetched from it for one at its end, asked to add
    /// it, and a controller elected that follower, empty, once the leader had
    /// committed records alone.
    pub last_fetch: Option<Instant>,
    /// The leader's LEO at that fetch.
    pub leader_leo_at_last_fetch: Offset,
}

/// Leader-only state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderState {
    /// The leader's LEO when it became leader: the start of its epoch.
    pub epoch_start: Offset,
    /// Every other replica.
    pub followers: BTreeMap<NodeId, FollowerProgress>,
    /// An ISR change asked of the controller and not yet answered or applied.
    pub pending_isr: Option<Vec<NodeId>>,
    /// Members that a failed ISR change may still have added: the controller
    /// may have committed a request whose answer was lost, or that a duplicate's
    /// refusal beat (seed 1000940), or a delayed duplicate of a refused request
    /// may commit later (seed 1406825). They count for the HW, as Kafka's
    /// maximal ISR does, until a newer partition state is applied.
    pub unsettled: Vec<NodeId>,
    /// The partition epoch at which the controller refused a change as stale:
    /// no new change is asked until a newer state is applied.
    pub refused_at: Option<u32>,
}

impl LeaderState {
    /// A leader's state at the start of its epoch.
    pub fn new(epoch_start: Offset, followers: BTreeMap<NodeId, FollowerProgress>) -> Self {
        LeaderState { epoch_start, followers, pending_isr: None, unsettled: Vec::new(), refused_at: None }
    }
}

/// The replica's role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Leads the partition.
    Leader(LeaderState),
    /// Follows `leader`.
    Follower {
        /// The leader.
        leader: NodeId,
    },
    /// No leader, or this broker is not a replica.
    Offline,
}

/// What a change of partition state did to this replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Nothing that matters locally.
    Unchanged,
    /// This broker now leads.
    BecameLeader,
    /// This broker now follows a (new) leader.
    BecameFollower,
    /// This broker led and no longer does.
    LostLeadership,
    /// No leader (or no longer a replica).
    WentOffline,
}

/// What a follower did with a leader's divergence answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// It cut its log; this is the new end.
    Truncated(Offset),
    /// It held nothing past the point (a repeated or late answer).
    NothingToCut,
    /// The leader keeps no epoch at or before the follower's last one: the
    /// follower emptied its log, which restarts at this offset.
    Emptied(Offset),
}

/// How an ISR change the leader asked for failed (`Replica::isr_change_failed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsrChangeFailure {
    /// Refused by the controller's own checks at the state it was asked at
    /// (a fenced joiner, say). This request did not commit, but a delayed
    /// duplicate of it, asked at the same partition epoch, may still commit
    /// once the check passes (the joiner unfenced with the same broker
    /// epoch; seed 1406825): it settles nothing, like `Unanswered`.
    Refused,
    /// Refused because the controller holds a newer state.
    Stale,
    /// No answer: it may have committed.
    Unanswered,
}

/// The leader's answer to a fetch.
#[derive(Clone, Debug, PartialEq)]
pub enum FetchAnswer {
    /// Send this now.
    Reply(ReplicaData),
    /// Nothing new: hold the fetch until data, an HW change, or its deadline.
    Park,
}

/// One partition replica on this broker.
#[derive(Clone, Debug)]
pub struct Replica {
    /// The log.
    pub log: PartitionLog,
    /// All replicas, preferred leader first.
    pub replicas: Vec<NodeId>,
    /// The ISR as committed in metadata.
    pub isr: Vec<NodeId>,
    /// The leader epoch as committed in metadata.
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch as committed in metadata.
    pub partition_epoch: u32,
    /// Leader, follower or offline.
    pub role: Role,
    /// `min_insync_replicas` of the topic.
    pub min_insync: usize,
    /// Idempotent producers' recent batches (kept current while leading).
    pub producers: producers::ProducerTable,
}

impl Replica {
    /// An offline replica around `log`.
    pub fn new(log: PartitionLog, min_insync: usize) -> Self {
        Replica {
            log,
            replicas: Vec::new(),
            isr: Vec::new(),
            leader_epoch: LeaderEpoch(0),
            partition_epoch: 0,
            role: Role::Offline,
            min_insync,
            producers: producers::ProducerTable::default(),
        }
    }

    /// Whether this replica leads.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// The leader this replica follows, if it follows.
    pub fn leader_to_follow(&self) -> Option<NodeId> {
        match self.role {
            Role::Follower { leader } => Some(leader),
            _ => None,
        }
    }

    /// Applies committed partition state. A leader epoch older than the one held is
    /// ignored (metadata never goes back; this guards replays).
    pub fn apply_state(&mut self, me: NodeId, now: Instant, state: &PartitionImage) -> Transition {
        if state.leader_epoch < self.leader_epoch
            || (state.leader_epoch == self.leader_epoch && state.partition_epoch < self.partition_epoch)
        {
            return Transition::Unchanged;
        }
        let epoch_changed = state.leader_epoch != self.leader_epoch;
        let newer = epoch_changed || state.partition_epoch > self.partition_epoch;
        let was_leader = self.is_leader();
        self.replicas = state.replicas.clone();
        let old_isr = std::mem::replace(&mut self.isr, state.isr.clone());
        self.partition_epoch = state.partition_epoch;
        self.leader_epoch = state.leader_epoch;
        if let Role::Leader(l) = &mut self.role {
            if !epoch_changed {
                // A newer state committed: whatever was pending is settled (the
                // same state applied again settles nothing).
                if newer {
                    l.pending_isr = None;
                    l.unsettled.clear();
                    l.refused_at = None;
                    // A member that just joined has a whole lag time before it
                    // can be shrunk out again. Kafka looks for out-of-sync
                    // members every half lag time, so a joiner is not dropped
                    // at once there either; this leader looks on every fetch.
                    for r in self.isr.iter().filter(|r| !old_isr.contains(r)) {
                        if let Some(p) = l.followers.get_mut(r) {
                            p.last_caught_up = p.last_caught_up.max(now);
                        }
                    }
                }
                return Transition::Unchanged;
            }
        }
        if !epoch_changed && !matches!(self.role, Role::Offline) {
            return Transition::Unchanged;
        }
        match state.leader {
            Some(l) if l == me && self.replicas.contains(&me) => {
                let leo = self.log.persisted_end();
                let followers = self
                    .replicas
                    .iter()
                    .filter(|r| **r != me)
                    .map(|r| {
                        let p = FollowerProgress {
                            leo: Offset(0),
                            last_caught_up: now,
                            last_fetch: None,
                            leader_leo_at_last_fetch: leo,
                        };
                        (*r, p)
                    })
                    .collect();
                // The new epoch's records start after everything already appended.
                let epoch_start = self.log.log_end();
                // Producer state comes from the log, so it survives failover.
                self.producers = producers::ProducerTable::rebuild(&self.log);
                self.role = Role::Leader(LeaderState::new(epoch_start, followers));
                Transition::BecameLeader
            }
            Some(l) if self.replicas.contains(&me) => {
                self.role = Role::Follower { leader: l };
                if was_leader {
                    Transition::LostLeadership
                } else {
                    Transition::BecameFollower
                }
            }
            _ => {
                self.role = Role::Offline;
                if was_leader {
                    Transition::LostLeadership
                } else {
                    Transition::WentOffline
                }
            }
        }
    }

    /// The ISR for HW purposes: the committed ISR plus members a pending change
    /// adds, or a failed one may have added (removals count only once committed).
    pub fn maximal_isr(&self) -> Vec<NodeId> {
        let mut isr = self.isr.clone();
        if let Role::Leader(l) = &self.role {
            for r in l.pending_isr.iter().flatten().chain(&l.unsettled) {
                if !isr.contains(r) {
                    isr.push(*r);
                }
            }
        }
        isr
    }

    /// Leader: the controller did not confirm the ISR change asked at
    /// `asked_at` (a partition epoch). `Stale`: it refused it because it holds
    /// a newer state, which a duplicate of this very request may have made
    /// (seed 1000940). `Unanswered`: the request may have committed.
    /// `Refused`: this request did not commit, but a delayed duplicate of it
    /// may still, as long as the partition epoch it was asked at is current
    /// (seed 1406825). Only a newer partition state proves what committed
    /// (every commit moves the partition epoch, and the controller refuses
    /// asks at an older one). So in all three the members the change adds keep
    /// counting for the HW until a newer state is applied; after `Stale` the
    /// leader waits for that state, otherwise it asks again (`wanted_isr`),
    /// and that ask's commit settles them. An answer to a change asked at an
    /// older state is settled already.
    pub fn isr_change_failed(&mut self, asked_at: u32, outcome: IsrChangeFailure) {
        let partition_epoch = self.partition_epoch;
        let Role::Leader(l) = &mut self.role else { return };
        if asked_at != partition_epoch {
            return;
        }
        if let Some(p) = l.pending_isr.take() {
            for r in p {
                if !self.isr.contains(&r) && !l.unsettled.contains(&r) {
                    l.unsettled.push(r);
                }
            }
        }
        if outcome == IsrChangeFailure::Stale {
            l.refused_at = Some(partition_epoch);
        }
    }

    /// Leader: moves the HW to the least LEO over the maximal ISR when the ISR is
    /// at least `min_insync`. Returns true if it moved.
    pub fn update_high_watermark(&mut self, me: NodeId) -> bool {
        let Role::Leader(l) = &self.role else { return false };
        if self.isr.len() < self.min_insync {
            return false;
        }
        let mut hw = self.log.persisted_end();
        for r in self.maximal_isr() {
            if r == me {
                continue;
            }
            match l.followers.get(&r) {
                Some(p) => hw = hw.min(p.leo),
                None => return false,
            }
        }
        self.log.advance_high_watermark(hw)
    }

    /// Leader: answers a follower's fetch, updating what it knows of it.
    pub fn handle_fetch(
        &mut self,
        me: NodeId,
        now: Instant,
        req: &ReplicaFetch,
        max_bytes: usize,
    ) -> Result<FetchAnswer, WireError> {
        let tp = self.log.tp().clone();
        let Role::Leader(l) = &mut self.role else {
            return Err(WireError::new(ErrorCode::NotLeader, format!("this broker does not lead {tp}")));
        };
        if req.current_leader_epoch < self.leader_epoch {
            return Err(WireError::new(
                ErrorCode::FencedEpoch,
                format!("leader epoch {} of {tp} is stale; current is {}", req.current_leader_epoch, self.leader_epoch),
            ));
        }
        if req.current_leader_epoch > self.leader_epoch {
            return Err(WireError::new(
                ErrorCode::UnknownEpoch,
                format!(
                    "leader epoch {} of {tp} is newer than this leader's {}",
                    req.current_leader_epoch, self.leader_epoch
                ),
            ));
        }
        let Some(progress) = l.followers.get_mut(&req.replica) else {
            return Err(WireError::new(
                ErrorCode::InvalidRequest,
                format!("broker {} is not a replica of {tp}", req.replica),
            ));
        };
        let log = &self.log;
        // Divergence first: the follower's last epoch must end at or after its
        // fetch offset here, in the same epoch.
        if let Some(epoch) = req.last_fetched_epoch {
            let ours = log.end_offset_for_epoch(epoch);
            let diverging = match ours {
                Some((e, end)) => (e != epoch || end < req.fetch_offset).then_some((e, end)),
                // We keep no record of that epoch or any before it (retention
                // removed them, or we never had them). Nothing the follower holds
                // can be checked against ours, not even below our log start: the
                // records retention removed there may have been of a later epoch
                // than the follower's, replacing an uncommitted tail it still
                // holds. An end at our log start tells it so.
                None => Some((epoch, log.log_start())),
            };
            if let Some(d) = diverging {
                // An end at our log start empties the follower's log.
                let producers = (d.1 <= log.log_start()).then(|| log.retired_producers().clone());
                return Ok(FetchAnswer::Reply(ReplicaData {
                    high_watermark: log.high_watermark(),
                    log_start: log.log_start(),
                    diverging: Some(d),
                    batches: Vec::new(),
                    producers,
                }));
            }
        }
        if req.fetch_offset < log.log_start() {
            // Retention removed what the follower needs: it restarts at our
            // start, with what our removed batches say about producers.
            return Ok(FetchAnswer::Reply(ReplicaData {
                high_watermark: log.high_watermark(),
                log_start: log.log_start(),
                diverging: None,
                batches: Vec::new(),
                producers: Some(log.retired_producers().clone()),
            }));
        }
        if req.fetch_offset > log.persisted_end() {
            return Err(WireError::new(
                ErrorCode::OffsetOutOfRange,
                format!(
                    "fetch offset {} is outside {tp}, which holds {}..{}",
                    req.fetch_offset,
                    log.log_start(),
                    log.persisted_end()
                ),
            ));
        }
        // Kafka's lastCaughtUpTime rule.
        let leader_leo = log.persisted_end();
        if req.fetch_offset >= leader_leo {
            progress.last_caught_up = now;
        } else if req.fetch_offset >= progress.leader_leo_at_last_fetch {
            if let Some(t) = progress.last_fetch {
                progress.last_caught_up = progress.last_caught_up.max(t);
            }
        }
        progress.last_fetch = Some(now);
        progress.leader_leo_at_last_fetch = leader_leo;
        progress.leo = req.fetch_offset;
        self.update_high_watermark(me);
        let log = &self.log;
        let batches = log.read_range(req.fetch_offset, log.persisted_end(), max_bytes);
        if batches.is_empty() && req.fetch_offset >= log.persisted_end() {
            return Ok(FetchAnswer::Park);
        }
        Ok(FetchAnswer::Reply(ReplicaData {
            high_watermark: log.high_watermark(),
            log_start: log.log_start(),
            diverging: None,
            batches,
            producers: None,
        }))
    }

    /// Leader: the ISR to ask the controller for, if it should change and no change
    /// is pending: shrink out followers not caught up within `lag`, expand with
    /// followers whose LEO reached the HW and the epoch start and that fetch
    /// (Kafka's `isFollowerInSync`, which Kafka asks on each follower fetch; here
    /// "fetched within the lag time" stands for that). How recently they caught
    /// up with the leader's end does not matter for joining: a follower that
    /// never catches the end of a log written faster than it fetches still
    /// joins, lets the HW move up to it, and leaves again a lag time later
    /// (mq-sim seed 1100704).
    ///
    /// A follower joins only if `eligible` (the leader's metadata shows its
    /// broker registered and unfenced; Kafka's KIP-841): the controller
    /// refuses a fenced joiner, a refusal leaves the joiner unsettled, and a
    /// leader that kept asking for it would hold its HW at it until the fence
    /// lifts. Once the leader sees the fence it asks without the joiner, and
    /// that commit settles it. Members already in the ISR stay or leave by
    /// the lag rule alone.
    pub fn wanted_isr(&self, now: Instant, lag: Duration, eligible: impl Fn(NodeId) -> bool) -> Option<Vec<NodeId>> {
        let Role::Leader(l) = &self.role else { return None };
        if l.pending_isr.is_some() || l.refused_at == Some(self.partition_epoch) {
            return None;
        }
        let hw = self.log.high_watermark();
        let mut isr: Vec<NodeId> = Vec::new();
        for r in &self.replicas {
            let keep = match l.followers.get(r) {
                None => true, // the leader itself
                Some(p) if self.isr.contains(r) => now.saturating_since(p.last_caught_up) < lag,
                Some(_) if !eligible(*r) => false,
                Some(p) => {
                    p.leo >= hw && p.leo >= l.epoch_start && p.last_fetch.is_some_and(|t| now.saturating_since(t) < lag)
                }
            };
            if keep {
                isr.push(*r);
            }
        }
        let mut current = self.isr.clone();
        current.sort_by_key(|r| self.replicas.iter().position(|x| x == r));
        // With unsettled members an ISR is asked again even if it is the
        // current one (without a joiner no longer eligible, say): the newer
        // state its commit makes settles them, since even an unchanged ISR
        // moves the partition epoch, and the controller refuses any copy of
        // the old ask at the old epoch.
        (isr != current || !l.unsettled.is_empty()).then_some(isr)
    }

    /// Follower: acts on a divergence answer `(epoch, leader_end)` from a leader
    /// whose log starts at `leader_log_start`.
    pub fn truncate_diverging(
        &mut self,
        epoch: LeaderEpoch,
        leader_end: Offset,
        leader_log_start: Offset,
    ) -> Resolution {
        // The leader's own epochs end past its log start; an end at its log start
        // means it keeps no epoch at or before ours, so we keep nothing.
        if leader_end <= leader_log_start {
            let start = leader_log_start.max(self.log.log_start());
            if self.log.log_start() == start && self.log.log_end() == start {
                return Resolution::NothingToCut;
            }
            self.log.reset_to(start);
            return Resolution::Emptied(start);
        }
        let own_end = match self.log.end_offset_for_epoch(epoch) {
            Some((e, end)) if e == epoch => end,
            // We have no records of that epoch: our largest earlier epoch ends where
            // our records of later epochs begin.
            Some((_, end)) => end,
            None => self.log.log_start(),
        };
        let to = leader_end.min(own_end);
        if self.log.truncate_to(to) {
            Resolution::Truncated(self.log.log_end())
        } else {
            Resolution::NothingToCut
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{BrokerEpoch, TopicPartition};
    use crate::wire::{Record, RecordBatch};

    /// Every broker registered and unfenced in the leader's metadata.
    fn live(_: NodeId) -> bool {
        true
    }

    /// Broker 1 leads `t/0` with ISR {1} and 5 durable records; follower 2 has
    /// none, and an expansion to {1, 2} is pending.
    fn leader_expanding() -> Replica {
        let mut log = PartitionLog::new(TopicPartition::new("t", 0));
        let batch = RecordBatch::new((0..5).map(|i| Record::from_value(format!("v{i}"))).collect());
        log.append(batch, LeaderEpoch(1), 0);
        log.mark_persisted(Offset(5));
        let mut r = Replica::new(log, 1);
        r.replicas = vec![NodeId(1), NodeId(2)];
        r.isr = vec![NodeId(1)];
        r.leader_epoch = LeaderEpoch(1);
        r.partition_epoch = 2;
        let p = FollowerProgress {
            leo: Offset(0),
            last_caught_up: Instant::ZERO,
            last_fetch: Some(Instant::ZERO),
            leader_leo_at_last_fetch: Offset(0),
        };
        let mut l = LeaderState::new(Offset(0), [(NodeId(2), p)].into());
        l.pending_isr = Some(vec![NodeId(1), NodeId(2)]);
        r.role = Role::Leader(l);
        r
    }

    /// A committed state of `leader_expanding`'s partition (leader 1 in epoch
    /// 1) at `partition_epoch`, with ISR `isr`.
    fn state_at(partition_epoch: u32, isr: &[u32]) -> PartitionImage {
        PartitionImage {
            leader: Some(NodeId(1)),
            leader_epoch: LeaderEpoch(1),
            partition_epoch,
            replicas: vec![NodeId(1), NodeId(2)],
            isr: isr.iter().map(|i| NodeId(*i)).collect(),
        }
    }

    /// Seed 1100704: producers with acks=1 wrote faster than a follower fetching
    /// one batch per round trip could copy, so it never caught up with the
    /// leader's end and, under a rule that asked for that within the lag time,
    /// never joined the ISR again: below min_isr the HW stood still and no
    /// acks=all write succeeded for the whole liveness phase. Kafka's rule: past
    /// the HW and the epoch start is enough to join; the lag time only decides
    /// when it leaves, counted from when it joined at the earliest.
    #[test]
    fn a_follower_past_the_high_watermark_joins_the_isr_however_long_since_it_caught_up() {
        let lag = Duration::from_secs(1);
        let mut r = leader_expanding();
        let Role::Leader(l) = &mut r.role else { unreachable!() };
        l.pending_isr = None;
        let p = l.followers.get_mut(&NodeId(2)).unwrap();
        p.leo = Offset(3); // past the HW (0), not at the leader's end (5)
        let late = Instant::ZERO + Duration::from_secs(10);
        assert_eq!(r.wanted_isr(late, lag, live), None, "a follower that stopped fetching does not join");
        let Role::Leader(l) = &mut r.role else { unreachable!() };
        l.followers.get_mut(&NodeId(2)).unwrap().last_fetch = Some(late);
        assert_eq!(r.wanted_isr(late, lag, live), Some(vec![NodeId(1), NodeId(2)]), "one that fetches joins");
        let image = |isr: Vec<NodeId>, partition_epoch| PartitionImage {
            leader: Some(NodeId(1)),
            leader_epoch: LeaderEpoch(1),
            partition_epoch,
            replicas: vec![NodeId(1), NodeId(2)],
            isr,
        };
        r.apply_state(NodeId(1), late, &image(vec![NodeId(1), NodeId(2)], 3));
        assert_eq!(r.wanted_isr(late, lag, live), None, "not shrunk out again at once");
        let later = late + lag;
        assert_eq!(r.wanted_isr(later, lag, live), Some(vec![NodeId(1)]), "a lag time later it leaves");
        // A follower behind the HW does not join.
        let mut r = leader_expanding();
        r.log.advance_high_watermark(Offset(4));
        let Role::Leader(l) = &mut r.role else { unreachable!() };
        l.pending_isr = None;
        let p = l.followers.get_mut(&NodeId(2)).unwrap();
        p.leo = Offset(3);
        p.last_fetch = Some(late);
        assert_eq!(r.wanted_isr(late, lag, live), None);
    }

    /// Seed 1406825: a new leader with an empty log (HW and epoch start 0)
    /// took a follower that had not fetched from it, its LEO taken as 0, for
    /// one at its end and asked to add it; a delayed copy of that request
    /// committed, and the follower, which never fetched, was later elected
    /// with nothing of what the leader had committed alone. A follower's LEO
    /// is unknown until its first fetch of the tenure: it joins only after it.
    #[test]
    fn a_follower_that_has_not_fetched_from_a_new_leader_does_not_join_its_isr() {
        let lag = Duration::from_secs(1);
        let mut r = Replica::new(PartitionLog::new(TopicPartition::new("t", 0)), 1);
        let image = PartitionImage {
            leader: Some(NodeId(1)),
            leader_epoch: LeaderEpoch(2),
            partition_epoch: 4,
            replicas: vec![NodeId(1), NodeId(2)],
            isr: vec![NodeId(1)],
        };
        let now = Instant::ZERO + Duration::from_secs(1);
        assert_eq!(r.apply_state(NodeId(1), now, &image), Transition::BecameLeader);
        assert_eq!(r.wanted_isr(now, lag, live), None, "no fetch yet: its LEO is unknown");
        let fetch = ReplicaFetch {
            tp: TopicPartition::new("t", 0),
            replica: NodeId(2),
            broker_epoch: BrokerEpoch(1),
            fetch_offset: Offset(0),
            last_fetched_epoch: None,
            current_leader_epoch: LeaderEpoch(2),
            max_bytes: 1 << 20,
            fetch_id: 1,
        };
        let later = now + Duration::from_millis(10);
        assert!(r.handle_fetch(NodeId(1), later, &fetch, 1 << 20).is_ok());
        assert_eq!(r.wanted_isr(later, lag, live), Some(vec![NodeId(1), NodeId(2)]), "fetched at the end: it joins");
    }

    /// Seed 1000940: the controller committed the expansion, but a duplicate of
    /// the request was refused as stale and that refusal reached the leader
    /// first; the leader dropped the pending change and moved the HW past the
    /// follower on its own, with the follower in the committed ISR. Seed
    /// 1406825: a refusal at the very state asked at (a fenced joiner) does
    /// not settle it either, since a delayed copy of the ask may commit later.
    #[test]
    fn a_refused_isr_expansion_still_holds_the_high_watermark_until_a_newer_state_settles_it() {
        for outcome in [IsrChangeFailure::Stale, IsrChangeFailure::Unanswered, IsrChangeFailure::Refused] {
            let mut r = leader_expanding();
            assert!(!r.update_high_watermark(NodeId(1)), "the pending member holds the HW");
            r.isr_change_failed(2, outcome);
            assert!(!r.update_high_watermark(NodeId(1)), "the change may have committed ({outcome:?})");
            assert_eq!(r.log.high_watermark(), Offset(0));
            let stale = outcome == IsrChangeFailure::Stale;
            assert_eq!(r.wanted_isr(Instant::ZERO, Duration::from_secs(1), live).is_none(), stale, "a new ask");
            // The controller's state arrives: the expansion did not commit.
            let image = state_at(3, &[1]);
            assert_eq!(r.apply_state(NodeId(1), Instant::ZERO, &image), Transition::Unchanged);
            assert!(r.update_high_watermark(NodeId(1)), "settled: the ISR is {{1}}");
            assert_eq!(r.log.high_watermark(), Offset(5));
        }
        // An answer to an older ask settles nothing, a refusal at the current
        // state neither; the newer state does.
        let mut r = leader_expanding();
        r.isr_change_failed(2, IsrChangeFailure::Unanswered);
        r.isr_change_failed(1, IsrChangeFailure::Refused);
        assert!(!r.update_high_watermark(NodeId(1)), "an answer to an older ask settles nothing");
        r.isr_change_failed(2, IsrChangeFailure::Refused);
        assert!(!r.update_high_watermark(NodeId(1)), "a refusal settles nothing");
        let image = state_at(3, &[1]);
        r.apply_state(NodeId(1), Instant::ZERO, &image);
        assert!(r.update_high_watermark(NodeId(1)), "a newer state settles it");
    }

    /// Seed 1406825's shape: the controller refused to add a fenced follower,
    /// the follower was unfenced with the same broker epoch, and a delayed copy
    /// of the same ask, at the same partition epoch, committed. Whatever the
    /// leader committed in between must be held by that member.
    #[test]
    fn a_refused_expansion_whose_copy_commits_later_never_let_the_high_watermark_pass_its_member() {
        let mut r = leader_expanding();
        r.isr_change_failed(2, IsrChangeFailure::Refused);
        let Role::Leader(l) = &mut r.role else { unreachable!() };
        l.followers.get_mut(&NodeId(2)).unwrap().leo = Offset(3);
        // The leader, alone in its committed ISR, writes on.
        let batch = RecordBatch::new((5..10).map(|i| Record::from_value(format!("v{i}"))).collect());
        r.log.append(batch, LeaderEpoch(1), 0);
        r.log.mark_persisted(Offset(10));
        r.update_high_watermark(NodeId(1));
        assert_eq!(r.log.high_watermark(), Offset(3), "held at the refused joiner's LEO");
        // The copy commits: the follower is in the ISR at the next partition epoch.
        let image = state_at(3, &[1, 2]);
        assert_eq!(r.apply_state(NodeId(1), Instant::ZERO, &image), Transition::Unchanged);
        r.update_high_watermark(NodeId(1));
        let Role::Leader(l) = &r.role else { unreachable!() };
        for m in &r.isr {
            let leo = l.followers.get(m).map_or(r.log.persisted_end(), |p| p.leo);
            assert!(r.log.high_watermark() <= leo, "member {m} lacks records below the HW");
        }
    }

    /// KIP-841: a leader does not ask to add a follower that its metadata shows
    /// fenced (the controller would refuse it); a fenced member already in the
    /// ISR stays or leaves by the lag rule only. After a refusal, the leader
    /// asks for the ISR without the fenced joiner, and the commit of that ask
    /// settles the joiner.
    #[test]
    fn a_leader_does_not_add_a_fenced_follower_and_keeps_fenced_members_by_the_lag_rule() {
        let lag = Duration::from_secs(1);
        let fenced_2 = |r: NodeId| r != NodeId(2);
        let now = Instant::ZERO + Duration::from_millis(100);
        let mut r = leader_expanding();
        let Role::Leader(l) = &mut r.role else { unreachable!() };
        l.pending_isr = None;
        let p = l.followers.get_mut(&NodeId(2)).unwrap();
        p.leo = Offset(5);
        p.last_fetch = Some(now);
        p.last_caught_up = now;
        assert_eq!(r.wanted_isr(now, lag, live), Some(vec![NodeId(1), NodeId(2)]), "live: it joins");
        assert_eq!(r.wanted_isr(now, lag, fenced_2), None, "fenced: it does not");
        // Already a member: the lag rule alone decides.
        r.isr = vec![NodeId(1), NodeId(2)];
        assert_eq!(r.wanted_isr(now, lag, fenced_2), None, "a fenced member caught up stays");
        assert_eq!(r.wanted_isr(now + lag, lag, fenced_2), Some(vec![NodeId(1)]), "a lag time later it leaves");
        // A refused joiner the leader then sees fenced: the current ISR is
        // asked again, and its commit settles the joiner.
        let mut r = leader_expanding();
        r.isr_change_failed(2, IsrChangeFailure::Refused);
        assert_eq!(r.wanted_isr(Instant::ZERO, lag, fenced_2), Some(vec![NodeId(1)]));
        assert!(!r.update_high_watermark(NodeId(1)), "unsettled until that commits");
        let image = state_at(3, &[1]);
        r.apply_state(NodeId(1), Instant::ZERO, &image);
        assert!(r.update_high_watermark(NodeId(1)));
        assert_eq!(r.wanted_isr(Instant::ZERO, lag, fenced_2), None, "nothing more to ask");
    }
}
