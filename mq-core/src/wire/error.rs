//! Errors that cross the wire: a stable code a program can branch on plus a message a
//! person can act on ("unknown topic orders; create it with `mq topic create`").

use serde::{Deserialize, Serialize};
use std::fmt;

/// Stable error codes. Their order is part of the wire format: add new codes at the
/// end only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request was malformed or its arguments are invalid.
    InvalidRequest,
    /// The topic does not exist.
    UnknownTopic,
    /// The topic exists already.
    TopicExists,
    /// The partition does not exist in the topic.
    UnknownPartition,
    /// The offset is outside the log's range.
    OffsetOutOfRange,
    /// A batch or record exceeds the configured size limit.
    RecordTooLarge,
    /// A topic or broker setting is invalid.
    InvalidConfig,
    /// A bounded queue or buffer is full; retry later.
    Backpressure,
    /// This broker is not the leader of the partition (retriable after a metadata
    /// refresh).
    NotLeader,
    /// Fewer in-sync replicas than `min_insync_replicas`; nothing was appended.
    NotEnoughReplicas,
    /// The request's epoch is older than the current one.
    FencedEpoch,
    /// The request's epoch is newer than this broker knows.
    UnknownEpoch,
    /// The request timed out; its effect is unknown (it may still commit).
    Timeout,
    /// The connection has not authenticated.
    Unauthenticated,
    /// The principal lacks the permission.
    Unauthorized,
    /// The broker is starting or shutting down (retriable).
    NotReady,
    /// An idempotent producer skipped sequence numbers.
    OutOfOrderSequence,
    /// The topic was deleted while the request was in flight.
    TopicDeleted,
    /// The broker failed internally; the request's effect is unknown.
    Internal,
    /// The batch was appended but leadership moved before it committed: it may or
    /// may not be committed (retry; an idempotent producer's retry is deduplicated).
    LeadershipLost,
    /// An idempotent producer's epoch is older than the partition has seen from the
    /// same producer id: a newer incarnation took over; this batch was not written.
    ProducerFenced,
    /// This broker does not coordinate the group (retriable: ask any broker
    /// `FindCoordinator` again; the message names the coordinator if known).
    NotCoordinator,
    /// The group's coordinator is not available yet: `__groups` is being created
    /// or its partition has no leader right now (retriable).
    CoordinatorNotAvailable,
    /// The group is rebalancing: stop consuming and send `JoinGroup` with your
    /// member id to get the new assignment.
    RebalanceInProgress,
    /// The group has no such member (never joined, left, evicted after its
    /// session timeout, or the coordinator moved): join again without a member id.
    UnknownMember,
    /// The member's generation is not the group's current one: join again with
    /// your member id.
    IllegalGeneration,
    /// The join asks for a different mode than the group's members use.
    InconsistentGroup,
    /// The partition leader has no state for this idempotent producer id and the
    /// batch does not start at sequence 0; nothing was written. An earlier batch
    /// still on its way goes first; with none, the producer's history is gone and
    /// it starts a new epoch at sequence 0 (Kafka's KIP-360).
    UnknownProducerId,
    /// A newer request of the same client replaced this one: a group member's
    /// push subscription ends so when the member subscribes to the partition
    /// again. Nothing more comes on it.
    Superseded,
}

impl ErrorCode {
    /// True when the error means the client's idea of the partition leader is
    /// stale: it should forget the leader and refresh metadata before retrying.
    pub fn means_stale_leader(self) -> bool {
        matches!(
            self,
            ErrorCode::NotLeader
                | ErrorCode::NotReady
                | ErrorCode::FencedEpoch
                | ErrorCode::UnknownEpoch
                | ErrorCode::UnknownTopic
                | ErrorCode::UnknownPartition
        )
    }

    /// True when the request's effect is unknown: it may still take effect. A client
    /// must report such an outcome as indefinite, never as a failure.
    pub fn is_indefinite(self) -> bool {
        matches!(self, ErrorCode::Timeout | ErrorCode::Internal | ErrorCode::LeadershipLost)
    }

    /// True when retrying the same request later (maybe after a metadata refresh)
    /// can succeed.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorCode::Backpressure
                | ErrorCode::NotLeader
                | ErrorCode::NotEnoughReplicas
                | ErrorCode::FencedEpoch
                | ErrorCode::UnknownEpoch
                | ErrorCode::Timeout
                | ErrorCode::NotReady
                | ErrorCode::LeadershipLost
                | ErrorCode::NotCoordinator
                | ErrorCode::CoordinatorNotAvailable
        )
    }

    /// True when a group member must send `JoinGroup` again (with its member id
    /// for `RebalanceInProgress` and `IllegalGeneration`, without one for
    /// `UnknownMember`) before it consumes further.
    pub fn needs_rejoin(self) -> bool {
        matches!(self, ErrorCode::RebalanceInProgress | ErrorCode::UnknownMember | ErrorCode::IllegalGeneration)
    }

    /// True when the client should look the group coordinator up again
    /// (`FindCoordinator`) before retrying.
    pub fn means_stale_coordinator(self) -> bool {
        matches!(self, ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable | ErrorCode::NotReady)
    }
}

/// An error reply: a code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct WireError {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong and what to do about it, for people.
    pub message: String,
}

impl WireError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError { code, message: message.into() }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
