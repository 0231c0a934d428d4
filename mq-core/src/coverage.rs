//! Coverage marks (issue 9; docs/simulator.md "Coverage marks"): counters of rare
//! protocol branches, so that a campaign can show which of them it reached.
//!
//! Each machine that takes such branches owns a [`Coverage`] value (the node, its
//! Raft replica, the active controller, each group coordinator) and counts a
//! [`Mark`] when it takes one; [`crate::Node::coverage`] sums a node's. There is no
//! global state, so seeds run on several threads in one process never mix, and a
//! mark only ever adds to a counter: taking or not taking a mark cannot change
//! what a machine does next.

use std::fmt;

macro_rules! marks {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// A rare branch of the protocol (see the module docs). Every mark has a
        /// stable name (`area.what`), used in reports.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum Mark {
            $($(#[$doc])* $variant,)*
        }

        impl Mark {
            /// Every mark, in report order.
            pub const ALL: &'static [Mark] = &[$(Mark::$variant,)*];

            /// Its stable name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Mark::$variant => $name,)*
                }
            }
        }
    };
}

marks!(
    // ----- partition replication (node/partitions.rs, replication/mod.rs) -----
    /// A leader answered a follower's fetch with a diverging epoch and its end
    /// offset (KIP-279/KIP-320).
    DivergenceAnswered = "replica.divergence_answered",
    /// A follower truncated its log to the diverging epoch's end.
    DivergenceTruncated = "replica.divergence_truncated",
    /// A follower got a divergence answer but held nothing past the point.
    DivergenceNothingToCut = "replica.divergence_nothing_to_cut",
    /// A follower's leader keeps no epoch at or before the follower's last one
    /// (retention removed them, or it never had them): the follower emptied its
    /// log and restarts it at the leader's log start.
    DivergenceEmptied = "replica.divergence_emptied",
    /// A follower reset its log to the leader's log start (retention removed
    /// what it needed).
    FollowerResetToLeaderStart = "replica.reset_to_leader_start",
    /// A leader refused a follower fetch carrying an older leader epoch.
    FetchStaleLeaderEpoch = "replica.fetch_stale_leader_epoch",
    /// A leader refused a follower fetch carrying a newer leader epoch.
    FetchNewerLeaderEpoch = "replica.fetch_newer_leader_epoch",
    /// A leader refused a follower fetch from a broker epoch that is not current.
    FetchStaleBrokerEpoch = "replica.fetch_stale_broker_epoch",
    /// A leader refused a follower fetch beyond its persisted end.
    FetchPastLeaderEnd = "replica.fetch_past_leader_end",
    /// A leader applied a committed ISR shrink.
    IsrShrink = "isr.shrink",
    /// A leader applied a committed ISR expansion.
    IsrExpand = "isr.expand",
    /// The controller refused (or never answered) a leader's ISR change.
    IsrChangeFailed = "isr.change_failed",
    /// A leader held its HW back: its ISR is below `min_insync_replicas`.
    HwHeldBelowMinIsr = "hw.held_below_min_isr",
    // ----- produce and fetch (node/partitions.rs) -----
    /// An acks=all produce refused with `NotEnoughReplicas` before appending.
    NotEnoughReplicas = "produce.not_enough_replicas",
    /// A retried idempotent batch recognised as appended already.
    DuplicateBatch = "produce.duplicate_batch",
    /// An idempotent batch refused with `OutOfOrderSequence`.
    OutOfOrderSequence = "produce.out_of_order_sequence",
    /// An idempotent batch of a producer id the leader has no state for, not at
    /// sequence 0, refused (`UnknownProducerId`).
    UnknownProducer = "produce.unknown_producer",
    /// An idempotent batch of an older producer epoch refused (`ProducerFenced`).
    ProducerFenced = "produce.producer_fenced",
    /// A produce answered `LeadershipLost`: leadership moved before it committed.
    LeadershipLostBeforeCommit = "produce.leadership_lost",
    /// An acks=all produce timed out waiting for the HW (it may still commit).
    CommitTimeout = "produce.commit_timeout",
    /// A consumer fetch refused with `OffsetOutOfRange`.
    FetchOffsetOutOfRange = "fetch.offset_out_of_range",
    // ----- the controller (controller/quorum.rs, node/quorum_host.rs) -----
    /// A node became the active controller (first or after a failover).
    ControllerActivated = "controller.activated",
    /// An active controller lost Raft leadership and stopped deciding.
    ControllerResigned = "controller.resigned",
    /// The controller fenced a broker whose session expired.
    BrokerSessionExpired = "controller.session_expired",
    /// The controller refused a request of a stale broker incarnation.
    StaleBrokerEpoch = "controller.stale_broker_epoch",
    /// An election found no live ISR member and unclean election is off: the
    /// partition stays leaderless (refused unclean election).
    UncleanElectionRefused = "controller.unclean_election_refused",
    /// An election picked a live replica outside the ISR (unclean election on).
    UncleanElection = "controller.unclean_election",
    /// A broker that left was the last ISR member: it stays in the ISR, leaderless.
    LastIsrMemberKept = "controller.last_isr_member_kept",
    /// An `AlterPartition` refused for a stale leader or partition epoch.
    AlterPartitionStaleEpoch = "controller.alter_partition_stale_epoch",
    /// An `AlterPartition` refused because a fenced broker would join the ISR.
    AlterPartitionFencedJoiner = "controller.alter_partition_fenced_joiner",
    /// A controlled shutdown fenced a broker and moved its leaderships.
    ControlledShutdown = "controller.controlled_shutdown",
    /// First leaders for partitions whose creation a controller change cut short.
    FirstElectionAfterCutCreation = "controller.first_election_after_cut_creation",
    // ----- the broker's session (node/broker.rs) -----
    /// A broker applied its own fencing (session expiry or shutdown).
    BrokerFenced = "broker.fenced",
    /// A broker's heartbeat was refused as a stale incarnation: it registers again.
    BrokerReregisters = "broker.reregisters",
    /// A controlled shutdown could not reach the controller and stopped anyway.
    ShutdownWithoutController = "broker.shutdown_without_controller",
    // ----- Raft (controller/raft.rs) -----
    /// A vote refused because the candidate's log is behind (Raft §5.4.1).
    VoteRefusedStaleLog = "raft.vote_refused_stale_log",
    /// A vote refused while a leader is alive (leader stickiness).
    VoteRefusedLeaderAlive = "raft.vote_refused_leader_alive",
    /// A pre-vote refused.
    PreVoteRefused = "raft.prevote_refused",
    /// A candidate with a quorum waited for its own vote to be durable.
    CandidateAwaitsDurableVote = "raft.candidate_awaits_durable_vote",
    /// A leader stepped down on seeing a higher term.
    LeaderStepDownHigherTerm = "raft.leader_step_down_higher_term",
    /// A leader stepped down for hearing from no majority (check-quorum).
    CheckQuorumStepDown = "raft.check_quorum_step_down",
    /// An append refused: the entry before the new ones did not match.
    AppendPrevMismatch = "raft.append_prev_mismatch",
    /// A follower truncated conflicting uncommitted entries.
    LogTruncatedByConflict = "raft.log_truncated_by_conflict",
    // ----- groups (group/coordinator.rs, node/groups.rs, node/delivery.rs) -----
    /// A coordinator completed a rebalance (a new generation).
    Rebalance = "group.rebalance",
    /// A member evicted for missing its session timeout.
    MemberEvictedSession = "group.member_evicted_session",
    /// A member evicted for not rejoining before the rebalance deadline.
    MemberEvictedRebalance = "group.member_evicted_rebalance",
    /// A heartbeat of an old generation refused (`IllegalGeneration`).
    IllegalGeneration = "group.illegal_generation",
    /// A coordinator resigned: its `__groups` partition moved (coordinator failover).
    CoordinatorMoved = "group.coordinator_moved",
    /// A lease expired (the member did not answer within the ack timeout).
    LeaseExpired = "delivery.lease_expired",
    /// A record handed to a group again (after a nack, an expiry or a failover).
    Redelivery = "delivery.redelivery",
    /// A record dead-lettered (its append to `<topic>.dlq` acknowledged).
    DeadLettered = "delivery.dead_lettered",
    // ----- security (node/security.rs, node/admin.rs) -----
    /// A request of an unauthenticated connection refused.
    Unauthenticated = "auth.unauthenticated",
    /// A request outside the principal's grants refused.
    Unauthorized = "auth.unauthorized",
    /// An authentication proof refused.
    ProofRefused = "auth.proof_refused",
    // ----- BUGGIFY points that fired (buggify.rs; simulator only) -----
    /// A Raft leader sent fewer entries than it could.
    BuggifyRaftShortAppend = "buggify.raft_short_append",
    /// A Raft election timeout drawn at the low end of its range.
    BuggifyRaftEarlyElection = "buggify.raft_early_election",
    /// A partition leader answered a follower's fetch with at most one batch.
    BuggifyReplicaSmallFetch = "buggify.replica_small_fetch",
    /// An acks=all produce waited for the HW only briefly.
    BuggifyProduceShortCommitWait = "buggify.produce_short_commit_wait",
    /// The controller proposed a `CreateTopic` without its first elections.
    BuggifyControllerSplitCreateTopic = "buggify.controller_split_create_topic",
);

/// Counts per [`Mark`] of one machine or one run (see the module docs).
#[derive(Clone, PartialEq, Eq)]
pub struct Coverage {
    hits: [u64; Mark::ALL.len()],
}

impl Default for Coverage {
    fn default() -> Self {
        Coverage { hits: [0; Mark::ALL.len()] }
    }
}

impl Coverage {
    /// Counts one pass through `mark`'s branch.
    pub fn hit(&mut self, mark: Mark) {
        self.hits[mark as usize] += 1;
    }

    /// Counts `n` passes through `mark`'s branch.
    pub fn hit_n(&mut self, mark: Mark, n: u64) {
        self.hits[mark as usize] += n;
    }

    /// How often `mark`'s branch was taken.
    pub fn get(&self, mark: Mark) -> u64 {
        self.hits[mark as usize]
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Coverage) {
        for (a, b) in self.hits.iter_mut().zip(other.hits.iter()) {
            *a += b;
        }
    }

    /// Every mark with its count, in report order.
    pub fn iter(&self) -> impl Iterator<Item = (Mark, u64)> + '_ {
        Mark::ALL.iter().map(move |m| (*m, self.get(*m)))
    }

    /// The marks hit at least once.
    pub fn hit_marks(&self) -> impl Iterator<Item = (Mark, u64)> + '_ {
        self.iter().filter(|(_, n)| *n > 0)
    }

    /// Whether no mark was hit.
    pub fn is_empty(&self) -> bool {
        self.hits.iter().all(|n| *n == 0)
    }
}

impl fmt::Debug for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.hit_marks().map(|(m, n)| (m.name(), n))).finish()
    }
}

impl fmt::Display for Coverage {
    /// `name=count` for every mark hit, space separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.hit_marks().map(|(m, n)| format!("{}={n}", m.name())).collect();
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_marks_index_their_own_counter() {
        let mut names: Vec<&str> = Mark::ALL.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Mark::ALL.len(), "two marks share a name");
        for (i, m) in Mark::ALL.iter().enumerate() {
            assert_eq!(*m as usize, i, "{} is not at its own index", m.name());
        }
    }

    #[test]
    fn adding_coverage_sums_every_mark() {
        let mut a = Coverage::default();
        a.hit(Mark::IsrShrink);
        let mut b = Coverage::default();
        b.hit(Mark::IsrShrink);
        b.hit(Mark::DeadLettered);
        a.add(&b);
        assert_eq!(a.get(Mark::IsrShrink), 2);
        assert_eq!(a.get(Mark::DeadLettered), 1);
        assert_eq!(a.get(Mark::IsrExpand), 0);
        assert_eq!(a.to_string(), "isr.shrink=2 delivery.dead_lettered=1");
    }
}
