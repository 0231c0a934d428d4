//! Newtypes for every id and position (STYLE.md item 3). Arithmetic goes through
//! methods so that an offset is never added to an epoch by accident.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub $inner);

        impl $name {
            /// The raw value.
            pub const fn get(self) -> $inner {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id_type!(
    /// A broker in the cluster; ids run `1..=N`.
    NodeId(u32)
);
id_type!(
    /// A client connection as the broker sees it (assigned by the driver).
    ClientId(u64)
);
id_type!(
    /// A partition index within a topic, `0..partitions`.
    PartitionId(u32)
);
id_type!(
    /// A position in a partition log. The first record of a new log is offset 0.
    Offset(u64)
);
id_type!(
    /// The epoch of a partition's leadership; bumped on every leader change.
    LeaderEpoch(u32)
);
id_type!(
    /// A Raft term of the metadata quorum.
    Term(u64)
);
id_type!(
    /// An idempotent producer's id, allocated by the controller.
    ProducerId(u64)
);
id_type!(
    /// The epoch of a producer id; a newer epoch fences older ones.
    ProducerEpoch(u16)
);
id_type!(
    /// A per-partition sequence number of an idempotent producer's record.
    Sequence(u32)
);
id_type!(
    /// The incarnation of a broker, bumped at each registration.
    BrokerEpoch(u64)
);
id_type!(
    /// A consumer-group member.
    MemberId(u64)
);
id_type!(
    /// A consumer-group generation; fences stale members.
    Generation(u32)
);
id_type!(
    /// Matches a request to its response on one connection.
    CorrelationId(u64)
);

impl Offset {
    /// The offset `n` records after this one.
    pub const fn plus(self, n: u64) -> Offset {
        Offset(self.0 + n)
    }
    /// The next offset.
    pub const fn next(self) -> Offset {
        Offset(self.0 + 1)
    }
    /// Records between `earlier` and `self` (zero if `earlier` is later).
    pub const fn distance_from(self, earlier: Offset) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl LeaderEpoch {
    /// The following epoch.
    pub const fn next(self) -> LeaderEpoch {
        LeaderEpoch(self.0 + 1)
    }
}

impl Term {
    /// The following term.
    pub const fn next(self) -> Term {
        Term(self.0 + 1)
    }
}

impl Sequence {
    /// The sequence `n` records after this one, wrapping as Kafka does.
    pub const fn plus(self, n: u32) -> Sequence {
        Sequence(self.0.wrapping_add(n))
    }
}

impl Generation {
    /// The following generation.
    pub const fn next(self) -> Generation {
        Generation(self.0 + 1)
    }
}

/// A consumer group's generation as its coordinator numbers it: the leader epoch
/// of the coordinator's `__groups` partition, then a counter that this coordinator
/// bumps at every rebalance (docs/consumers.md section 3). Membership is soft state,
/// so a new coordinator restarts the counter; the epoch in front keeps generations
/// increasing across coordinator failovers. Ordered lexicographically.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupGeneration {
    /// Leader epoch of the coordinator's `__groups` partition.
    pub coordinator_epoch: LeaderEpoch,
    /// Rebalances completed by this coordinator for this group.
    pub generation: Generation,
}

impl fmt::Display for GroupGeneration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.coordinator_epoch, self.generation)
    }
}

/// A topic and partition, the address of one log.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    /// The topic name.
    pub topic: String,
    /// The partition index.
    pub partition: PartitionId,
}

impl TopicPartition {
    /// Builds the address of `topic`/`partition`.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition { topic: topic.into(), partition: PartitionId(partition) }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}
