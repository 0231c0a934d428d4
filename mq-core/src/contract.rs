//! The sans-IO contract shared by every mq state machine (DESIGN.md section 2).
//!
//! A driver owns the clock, the sockets and the disk. It feeds one [`Input`] at a
//! time to `handle(now, input)`, then drains `poll_output()` until it returns `None`,
//! and calls `handle(now, Input::Timeout)` once `now` passes `poll_timeout()`.
//!
//! Durability leaves as data: a machine emits [`Output::Persist`] with a token and a
//! list of [`Write`]s; the driver makes them durable *in token order* and answers
//! [`Input::Persisted`] with that token. Completing token `t` means every write of
//! every token up to `t` is durable. Nothing that promises durability leaves a
//! machine before the writes it depends on were reported persisted.

use crate::ids::{BrokerEpoch, ClientId, GroupGeneration, LeaderEpoch, MemberId, NodeId, Offset, Term, TopicPartition};
use crate::storage::Write;
use crate::wire::Message;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The other end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Peer {
    /// Another broker.
    Node(NodeId),
    /// A client connection.
    Client(ClientId),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Node(n) => write!(f, "n{n}"),
            Peer::Client(c) => write!(f, "c{c}"),
        }
    }
}

/// Identifies one `Persist` output; completions arrive in token order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PersistToken(pub u64);

/// What a driver feeds a machine.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A message arrived from `from`.
    Message {
        /// The sender.
        from: Peer,
        /// The message.
        msg: Message,
    },
    /// A connection to `peer` opened.
    Connected {
        /// The peer.
        peer: Peer,
    },
    /// The connection to `peer` closed; replies to it can be dropped.
    Disconnected {
        /// The peer.
        peer: Peer,
    },
    /// `now` passed the deadline the machine gave in `poll_timeout`.
    Timeout,
    /// Every write up to and including this token's is durable.
    Persisted {
        /// The completed token.
        token: PersistToken,
    },
}

/// What a machine asks its driver to do, or reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send `msg` to `to` (best effort; the protocol tolerates loss).
    Send {
        /// The receiver.
        to: Peer,
        /// The message.
        msg: Message,
    },
    /// Make `writes` durable, in order, then answer `Input::Persisted { token }`.
    Persist {
        /// Completion token.
        token: PersistToken,
        /// The writes, applied in order.
        writes: Vec<Write>,
    },
    /// Close the connection to `peer` (for example after malformed input).
    Close {
        /// The peer.
        peer: Peer,
        /// Why, for the log.
        reason: String,
    },
    /// Something observable happened (for tests, the simulator's checker, metrics).
    Event(Event),
}

/// Observable state changes. The simulator's checker consumes them; drivers log them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A partition leader's high watermark moved to `high_watermark`; records below
    /// it are committed and visible to consumers.
    HighWatermark {
        /// The partition.
        tp: TopicPartition,
        /// The new high watermark.
        high_watermark: Offset,
        /// The leader epoch of the leader that moved it.
        leader_epoch: LeaderEpoch,
    },
    /// This broker became the leader of a partition.
    BecameLeader {
        /// The partition.
        tp: TopicPartition,
        /// Its leader epoch.
        leader_epoch: LeaderEpoch,
        /// The ISR it leads with.
        isr: Vec<NodeId>,
        /// Whether the election was unclean (the leader was not in the ISR).
        unclean: bool,
    },
    /// A leader saw the ISR it leads change.
    IsrChanged {
        /// The partition.
        tp: TopicPartition,
        /// The new ISR.
        isr: Vec<NodeId>,
        /// True for a shrink, false for an expansion.
        shrink: bool,
    },
    /// A follower truncated a diverging tail of its log (or all of it, when its
    /// leader keeps no epoch to check it against; `end` is then the leader's
    /// log start, where the emptied log restarts).
    Truncated {
        /// The partition.
        tp: TopicPartition,
        /// The new log end.
        end: Offset,
        /// Records removed.
        removed: u64,
    },
    /// This node became the Raft leader of the metadata quorum.
    ControllerLeader {
        /// Its term.
        term: Term,
    },
    /// This broker registered with a new incarnation.
    Registered {
        /// The incarnation.
        broker_epoch: BrokerEpoch,
    },
    /// Retention removed the records below `log_start`.
    LogStartAdvanced {
        /// The partition.
        tp: TopicPartition,
        /// The new first offset.
        log_start: Offset,
    },
    /// Recovery dropped a torn or corrupt tail of a partition log.
    RecoveredTail {
        /// The partition.
        tp: TopicPartition,
        /// The log end after recovery.
        log_end: Offset,
        /// Bytes dropped.
        dropped_bytes: usize,
    },
    /// A topic was created.
    TopicCreated {
        /// Its name.
        topic: String,
    },
    /// A topic was deleted.
    TopicDeleted {
        /// Its name.
        topic: String,
    },
    /// A group coordinator completed a rebalance.
    GroupRebalanced {
        /// The group.
        group: String,
        /// Its new generation.
        generation: GroupGeneration,
        /// Members in it.
        members: usize,
        /// Partitions it consumes.
        partitions: usize,
    },
    /// A partition leader handed a record to a group member (docs/consumers.md
    /// section 6.2); one event per record and delivery.
    GroupDelivered {
        /// The group.
        group: String,
        /// The member it went to.
        member: MemberId,
        /// The partition.
        tp: TopicPartition,
        /// The record's offset.
        offset: Offset,
        /// 1 for the first delivery by this leader, then 2, ... (leases are soft
        /// state: a new leader counts from 1 again).
        delivery: u32,
        /// The generation of the view the leader delivered under.
        generation: GroupGeneration,
        /// The leader epoch of the tenure that delivered it. Delivery counts and
        /// first-delivery order are per tenure; one input can both deliver and
        /// end the tenure (a high-watermark advance and a metadata change
        /// completing in the same persist), so the replica's epoch read after
        /// the input may already be the next one.
        leader_epoch: LeaderEpoch,
    },
    /// A leader answered `Acked` (or `Sought`): the cursor record holding this
    /// acked state is committed (below the high watermark), so the state survives
    /// any clean failover.
    GroupAckCommitted {
        /// The group.
        group: String,
        /// The partition.
        tp: TopicPartition,
        /// Every offset below it is acked.
        prefix: Offset,
        /// The individual acks above the prefix, lowest first.
        acked_above: Vec<Offset>,
        /// The offset of the committed cursor record holding this state.
        cursor_offset: Offset,
        /// True for a `Sought` answer: the cursor moved, possibly backwards
        /// (records from `prefix` on may be delivered again).
        sought: bool,
    },
    /// A record's dead-letter append was acknowledged (acks=all) by the leader of
    /// the dead-letter partition; the source record is acked for the group next.
    DeadLettered {
        /// The group.
        group: String,
        /// The source partition.
        tp: TopicPartition,
        /// The source record's offset.
        offset: Offset,
        /// `rejected` or `max_deliveries`.
        reason: &'static str,
        /// Where it went: the dead-letter partition and offset.
        dead_letter: (TopicPartition, Offset),
    },
}
