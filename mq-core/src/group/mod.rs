//! Consumer groups (DESIGN.md section 7; issue "consumer groups"): the pieces that
//! decide who gets which record and what an ack means, kept free of any messaging
//! so that each rule is tested on its own. The consumer client and the partition
//! leaders' delivery that use them are built on top.
//!
//! - [`acks`]: a group's acked prefix plus individual acks per partition (what the
//!   cursor control records carry).
//! - [`assign`]: partition ownership for `exclusive` groups (range, round robin,
//!   sticky).
//! - [`coordinator`]: the group coordinator: membership, the join barrier,
//!   generations, session-timeout eviction and assignment (docs/consumers.md).
//! - [`shared`]: smooth weighted round robin for `shared` groups.
//! - [`keyshared`]: consistent hashing of record keys for `key_shared` groups.
//! - [`cursor`]: one group's delivery state on one partition (acks, leases,
//!   views, who gets which record, the cursor record).
//! - [`leases`]: in-flight deliveries, ack timeouts, nack delays, rejects and
//!   `max_deliveries` towards the dead-letter topic.

pub mod acks;
pub mod assign;
pub mod coordinator;
pub mod cursor;
pub mod keyshared;
pub mod leases;
pub mod shared;

use serde::{Deserialize, Serialize};

/// How a group spreads records over its members.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupMode {
    /// One owner per partition at a time; per-partition order (Kafka).
    Exclusive(assign::Assignor),
    /// Any member gets any record; no order (RabbitMQ, Pulsar Shared).
    Shared,
    /// The same key goes to the same member while membership is stable (Pulsar
    /// Key_Shared).
    KeyShared,
}

/// The dead-letter topic of `topic`.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}
