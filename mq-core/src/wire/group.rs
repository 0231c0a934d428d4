//! Wire types of group delivery (docs/consumers.md section 6): the settings a group
//! is created with, the view of a group a member shows a partition leader, pull and
//! push fetches, acks and seeks. Membership itself (`JoinGroup`, `Joined`) is in
//! `message.rs`. Variant order is part of the wire format: add at the end only.

use super::record::Record;
use crate::group::GroupMode;
use crate::ids::{GroupGeneration, MemberId, Offset, TopicPartition};
use crate::time::Duration;
use serde::{Deserialize, Serialize};

/// Where a group starts reading a partition it has never acked anything on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartPosition {
    /// From the partition's log start: every record still in the log (RabbitMQ's
    /// queue semantics; Kafka's `auto.offset.reset=earliest`).
    #[default]
    Earliest,
    /// From the high watermark when the group first reads the partition (Kafka's
    /// and Pulsar's default).
    Latest,
}

/// A group's settings, fixed by its first member's join; a later join asking for
/// other settings is refused `InconsistentGroup`, like a different mode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSettings {
    /// Tags: a record is for this group when it carries at least one of them.
    /// Empty: every record. Records that do not match are skipped (never
    /// delivered, counted as done).
    pub filter: Vec<String>,
    /// A delivered record is leased to its member this long; unacked by then, it
    /// is delivered again (to any member that may have it).
    pub ack_timeout: Duration,
    /// After this many deliveries without an ack, the record goes to the
    /// dead-letter topic `<topic>.dlq` instead of being delivered again (at
    /// least 1).
    pub max_deliveries: u32,
    /// Where a group starts on a partition with no cursor.
    pub start: StartPosition,
}

impl Default for GroupSettings {
    fn default() -> Self {
        GroupSettings {
            filter: Vec::new(),
            ack_timeout: Duration::from_secs(30),
            max_deliveries: 10,
            start: StartPosition::Earliest,
        }
    }
}

impl GroupSettings {
    /// Whether a record with these tags is for the group.
    pub fn matches(&self, tags: &[String]) -> bool {
        self.filter.is_empty() || tags.iter().any(|t| self.filter.contains(t))
    }
}

/// What a partition leader must know of a group to deliver to one of its members,
/// carried on every [`GroupFetch`]: leaders learn generations and membership from
/// the members themselves and never ask the coordinator. A leader adopts a view
/// with a newer generation than it knows (releasing the leases of members not in
/// it, and every lease of an exclusive group), answers an older one
/// `IllegalGeneration`, and takes an equal one as is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupView {
    /// The group name.
    pub group: String,
    /// The member asking.
    pub member: MemberId,
    /// The generation of the member's assignment.
    pub generation: GroupGeneration,
    /// The group's mode.
    pub mode: GroupMode,
    /// The group's settings.
    pub settings: GroupSettings,
    /// The members subscribed to this topic at this generation with their
    /// weights, sorted by id (from `Joined::peers`); the leader spreads shared and
    /// key_shared records over them.
    pub members: Vec<(MemberId, u32)>,
}

/// How records reach the member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchMode {
    /// One answer with at most `max_records` records, sent as soon as at least one
    /// is deliverable or after `max_wait` (then possibly empty): a long poll.
    Pull {
        /// Longest wait for a first record.
        max_wait: Duration,
    },
    /// Opens a push subscription: the leader answers the same correlation id
    /// again and again, each time with up to `max_records` records, as records
    /// commit, as long as the member holds fewer than `prefetch` unacked
    /// deliveries on the partition (acks open the window again). The subscription
    /// ends with an error answer (stale generation, leadership moved), when the
    /// member's connection closes, or when a newer `GroupFetch` of the same member
    /// for the same partition replaces it.
    Push {
        /// The most unacked deliveries the member holds on this partition.
        prefetch: u32,
    },
}

/// A member asks a partition leader for records of its group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupFetch {
    /// Who asks and the group as the member knows it.
    pub view: GroupView,
    /// The partition.
    pub tp: TopicPartition,
    /// At most this many records per answer (at least 1).
    pub max_records: u32,
    /// Pull or push.
    pub mode: FetchMode,
}

/// A record delivered to a group member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveredRecord {
    /// Its offset in the partition.
    pub offset: Offset,
    /// 1 for the first delivery since the current leader took over, 2 for the
    /// next, and so on (leases are soft state: a new leader counts again).
    pub delivery: u32,
    /// The record.
    pub record: Record,
}

/// What a member says about one delivered record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AckKind {
    /// Done: never deliver it to this group again.
    Ack,
    /// Consume later: deliver it again after `delay` (counts as a delivery towards
    /// `max_deliveries`).
    Nack {
        /// How long to hold it back.
        delay: Duration,
    },
    /// Failed: send it to the dead-letter topic now.
    Reject,
}

/// A member's acks on one partition (to its leader).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupAck {
    /// The group name.
    pub group: String,
    /// The member.
    pub member: MemberId,
    /// The member's generation; an older one than the leader knows is refused
    /// `IllegalGeneration` (nothing changes).
    pub generation: GroupGeneration,
    /// The partition.
    pub tp: TopicPartition,
    /// Per-record acks, nacks and rejects (a batch ack is several `Ack`s).
    pub acks: Vec<(Offset, AckKind)>,
    /// Cumulative ack: every record below this offset is done.
    pub up_to: Option<Offset>,
}

/// Where a seek moves a group's cursor on a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeekTo {
    /// To this offset: records below it are done, records from it on are not.
    Offset(Offset),
    /// To the first record appended at or after this time (milliseconds).
    Timestamp(u64),
    /// To the log start.
    Earliest,
    /// To the high watermark.
    Latest,
}

/// A member moves its group's cursor on one partition (to its leader).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSeek {
    /// The group name.
    pub group: String,
    /// The member.
    pub member: MemberId,
    /// The member's generation.
    pub generation: GroupGeneration,
    /// The partition.
    pub tp: TopicPartition,
    /// Where to.
    pub to: SeekTo,
}
