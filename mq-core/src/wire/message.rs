//! Message types: every frame on the wire carries one [`Message`]. Client traffic is
//! request/response matched by a [`CorrelationId`]; `docs/protocol.md` lists them.
//! Variant order is part of the wire format: add new variants at the end only.

use super::error::WireError;
use super::record::RecordBatch;
use crate::ids::{CorrelationId, LeaderEpoch, NodeId, Offset, PartitionId};
use crate::time::Duration;
use serde::{Deserialize, Serialize};

/// Everything that crosses a connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// A client request to a broker.
    Request(Request),
    /// A broker's reply to a request.
    Response(Response),
}

/// A client request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Echoed in the response.
    pub correlation: CorrelationId,
    /// What is asked.
    pub body: RequestBody,
}

/// When a producer wants its acknowledgement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Acks {
    /// `acks=0`: no reply at all (one-way send).
    None,
    /// `acks=1`: once the leader has persisted the batch.
    Leader,
    /// `acks=all`: once every in-sync replica has it (the high watermark passed it).
    #[default]
    All,
}

/// Which offset `ListOffsets` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OffsetSpec {
    /// The first offset still in the log (the log start).
    Earliest,
    /// The high watermark: the offset the next committed record will get.
    Latest,
    /// The first committed offset whose batch was appended at or after this time
    /// (milliseconds); the high watermark if none.
    Timestamp(u64),
}

/// A topic's settings, as given at creation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    /// Topic name: 1 to 249 characters of `[A-Za-z0-9._-]`.
    pub name: String,
    /// Number of partitions (at least 1).
    pub partitions: u32,
    /// Copies of each partition (at least 1, at most the number of brokers).
    pub replication_factor: u16,
    /// In-sync replicas needed to accept `acks=all` writes.
    pub min_insync_replicas: u16,
    /// Delete batches appended longer ago than this (`None`: keep forever).
    pub retention_time: Option<Duration>,
    /// Delete the oldest batches while a partition is larger (`None`: no limit).
    pub retention_bytes: Option<u64>,
    /// Allow electing an out-of-sync replica (may lose acknowledged records).
    pub unclean_leader_election: bool,
}

impl TopicConfig {
    /// A topic with `partitions` partitions, one replica and no retention limit.
    pub fn new(name: impl Into<String>, partitions: u32) -> Self {
        TopicConfig {
            name: name.into(),
            partitions,
            replication_factor: 1,
            min_insync_replicas: 1,
            retention_time: None,
            retention_bytes: None,
            unclean_leader_election: false,
        }
    }
}

/// What a client asks of a broker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RequestBody {
    /// Create a topic.
    CreateTopic(TopicConfig),
    /// Delete a topic and all its records.
    DeleteTopic {
        /// Topic name.
        topic: String,
    },
    /// List topics with their partition state.
    ListTopics,
    /// Append a batch to a partition.
    Produce {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: PartitionId,
        /// When to reply.
        acks: Acks,
        /// The records; base offset and leader epoch are assigned by the leader.
        batch: RecordBatch,
    },
    /// Read committed records from an offset.
    Fetch {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: PartitionId,
        /// First offset wanted.
        offset: Offset,
        /// Soft limit on the reply size; at least one batch is returned if any is
        /// available, so a consumer always makes progress.
        max_bytes: u32,
    },
    /// Look up an offset.
    ListOffsets {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: PartitionId,
        /// Which offset.
        spec: OffsetSpec,
    },
}

/// One partition's state as reported to clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    /// Partition index.
    pub partition: PartitionId,
    /// The broker leading it, if any.
    pub leader: Option<NodeId>,
    /// Current leader epoch.
    pub leader_epoch: LeaderEpoch,
    /// Brokers holding a replica.
    pub replicas: Vec<NodeId>,
    /// In-sync replicas.
    pub isr: Vec<NodeId>,
    /// First offset still in the log.
    pub log_start: Offset,
    /// High watermark: records below it are committed.
    pub high_watermark: Offset,
}

/// A topic's settings and partition state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    /// The settings.
    pub config: TopicConfig,
    /// Per-partition state.
    pub partitions: Vec<PartitionInfo>,
}

/// A broker's reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The request's correlation id.
    pub correlation: CorrelationId,
    /// The outcome.
    pub body: Result<ResponseBody, WireError>,
}

/// A successful outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ResponseBody {
    /// The topic was created.
    TopicCreated,
    /// The topic was deleted.
    TopicDeleted,
    /// The topics.
    Topics(Vec<TopicInfo>),
    /// The batch was appended (and is as durable as the acks level promised).
    Produced {
        /// Partition it went to.
        partition: PartitionId,
        /// Offset of its first record.
        base_offset: Offset,
        /// The leader's append time (milliseconds).
        append_time_ms: u64,
    },
    /// Committed records.
    Fetched {
        /// Partition read.
        partition: PartitionId,
        /// The partition's high watermark.
        high_watermark: Offset,
        /// The partition's log start.
        log_start: Offset,
        /// Batches from the requested offset, below the high watermark.
        batches: Vec<RecordBatch>,
    },
    /// The offset asked for.
    Offset {
        /// The offset.
        offset: Offset,
    },
}
