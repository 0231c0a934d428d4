//! Message types: every frame on the wire carries one [`Message`]. Client traffic is
//! request/response matched by a [`CorrelationId`]; `docs/protocol.md` lists them.
//! Variant order is part of the wire format: add new variants at the end only.

use super::error::WireError;
use super::group::{DeliveredRecord, GroupAck, GroupFetch, GroupSeek, GroupSettings};
use super::record::RecordBatch;
use crate::controller::raft::{Entry, LogIndex, RaftMessage};
use crate::controller::ControllerRequest;
use crate::group::GroupMode;
use crate::ids::{
    BrokerEpoch, CorrelationId, GroupGeneration, LeaderEpoch, MemberId, NodeId, Offset, PartitionId, ProducerEpoch,
    ProducerId, TopicPartition,
};
use crate::security::acl::Grant;
use crate::security::{StoredCredential, KEY_BYTES};
use crate::time::Duration;
use serde::{Deserialize, Serialize};

/// Everything that crosses a connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// A client request to a broker.
    Request(Request),
    /// A broker's reply to a request.
    Response(Response),
    /// Traffic among brokers (Raft, the controller, replication).
    Peer(PeerMessage),
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
    /// Which brokers lead which partitions (all topics when `topics` is empty).
    Metadata {
        /// Topics of interest.
        topics: Vec<String>,
    },
    /// An idempotent producer asks for its producer id (any broker answers).
    InitProducer,
    /// Which broker coordinates `group` (any broker answers; docs/consumers.md).
    FindCoordinator {
        /// The group name.
        group: String,
    },
    /// Join a group, or rejoin it after a rebalance began (to its coordinator).
    JoinGroup(JoinGroup),
    /// A member is alive and at `generation` (to its coordinator).
    Heartbeat {
        /// The group name.
        group: String,
        /// The member, as the coordinator named it.
        member: MemberId,
        /// The generation of the member's assignment.
        generation: GroupGeneration,
    },
    /// A member leaves at once (graceful shutdown); the group rebalances.
    LeaveGroup {
        /// The group name.
        group: String,
        /// The member leaving.
        member: MemberId,
    },
    /// Records of a group from a partition leader, pulled or pushed
    /// (docs/consumers.md section 6).
    GroupFetch(GroupFetch),
    /// Acks, nacks and rejects on one partition, answered `Acked` once the group's
    /// cursor record holding them is committed.
    GroupAck(GroupAck),
    /// Moves a group's cursor on one partition, answered `Sought` once committed.
    GroupSeek(GroupSeek),
    /// Starts authenticating this connection as `app_key` (docs/security.md);
    /// answered `AuthChallenge`.
    AuthStart {
        /// The principal.
        app_key: String,
        /// Random bytes of the client's.
        client_nonce: [u8; KEY_BYTES],
    },
    /// Answers the pending challenge; answered `Authenticated` or
    /// `Unauthenticated`.
    AuthProof {
        /// `client_key XOR HMAC(stored_key, app_key | server_nonce | client_nonce)`.
        proof: [u8; KEY_BYTES],
    },
    /// Creates a principal or replaces its credential (admin on the cluster). The
    /// client computes the salted credential: the secret never travels.
    PutPrincipal {
        /// The app key.
        app_key: String,
        /// The salted hash of its secret.
        credential: StoredCredential,
    },
    /// Deletes a principal and every grant naming it (admin on the cluster).
    DeletePrincipal {
        /// The app key.
        app_key: String,
    },
    /// Adds an ACL grant (admin on the cluster).
    PutAcl(Grant),
    /// Removes an ACL grant (admin on the cluster).
    DeleteAcl(Grant),
    /// Lists principals and grants (admin on the cluster).
    DescribeSecurity,
}

/// A member's request to join a group. The coordinator computes every member's
/// assignment itself (no leader member, no second round trip): the reply carries
/// it once the rebalance completes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinGroup {
    /// The group name.
    pub group: String,
    /// `None` for a new member; the coordinator's id when rejoining.
    pub member: Option<MemberId>,
    /// Topics the member consumes.
    pub topics: Vec<String>,
    /// How the group spreads records (and the assignor of an exclusive group).
    /// Every member of a group must ask for the same mode.
    pub mode: GroupMode,
    /// The member is evicted after this long without a heartbeat or join.
    pub session_timeout: Duration,
    /// The group's settings; the first join fixes them and later joins must ask
    /// for the same (`InconsistentGroup` otherwise).
    pub settings: GroupSettings,
    /// This member's share of a shared group's records relative to the others
    /// (weighted round robin; at least 1; ignored by other modes).
    pub weight: u32,
}

/// The coordinator's answer to a join: the member's share at a new generation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    /// The member's id (new for a first join).
    pub member: MemberId,
    /// The generation this assignment belongs to; heartbeats carry it.
    pub generation: GroupGeneration,
    /// Partitions this member consumes. Exclusive groups: each partition goes to
    /// one member. Shared and key_shared groups: every partition of the member's
    /// topics (the partition leaders spread the records).
    pub assignment: Vec<TopicPartition>,
    /// Heartbeat this often (a third of the session timeout).
    pub heartbeat_interval: Duration,
    /// The group's settings.
    pub settings: GroupSettings,
    /// For each topic of the member: the members subscribed to it at this
    /// generation with their weights, sorted by id. The member shows the list of a
    /// partition's topic to its leader in every `GroupFetch` (`GroupView`).
    pub peers: Vec<(String, Vec<(MemberId, u32)>)>,
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
    /// The cluster as this broker's metadata describes it.
    Metadata {
        /// Live (unfenced) brokers.
        brokers: Vec<NodeId>,
        /// The controller leader, if known.
        controller: Option<NodeId>,
        /// Topics asked for, with per-partition leaders.
        topics: Vec<TopicInfo>,
    },
    /// A producer id for an idempotent producer.
    ProducerId {
        /// The id, unique in the cluster.
        producer_id: ProducerId,
        /// Its epoch.
        producer_epoch: ProducerEpoch,
    },
    /// Where a group's coordinator is.
    Coordinator {
        /// The broker to send `JoinGroup`, `Heartbeat` and `LeaveGroup` to.
        coordinator: NodeId,
        /// The `__groups` partition it leads for this group.
        partition: PartitionId,
        /// That partition's leader epoch (the first part of the group's generations).
        coordinator_epoch: LeaderEpoch,
    },
    /// The member's assignment at a new generation.
    Joined(Joined),
    /// The heartbeat was accepted: the member's generation is current.
    HeartbeatOk,
    /// The member left the group.
    Left,
    /// Records for a group member (one answer of a pull, or one push of a push
    /// subscription). Never control records; only records below the high
    /// watermark.
    Delivered {
        /// The partition.
        tp: TopicPartition,
        /// Its high watermark.
        high_watermark: Offset,
        /// The records, in offset order within this answer.
        records: Vec<DeliveredRecord>,
    },
    /// The acks were applied and the cursor record holding them is committed.
    Acked {
        /// The partition.
        tp: TopicPartition,
        /// The group's acked prefix on the partition after these acks.
        prefix: Offset,
        /// Entries not applied, with why (a nack or reject of a record that is not
        /// leased to this member, an offset not below the high watermark, ...).
        refused: Vec<(Offset, super::error::ErrorCode)>,
    },
    /// The cursor moved and is committed.
    Sought {
        /// The partition.
        tp: TopicPartition,
        /// The new acked prefix: the next record delivered is the first one at or
        /// after it.
        offset: Offset,
    },
    /// The principal's salt and a fresh server nonce: compute the proof.
    AuthChallenge {
        /// The principal's salt (a decoy for an unknown app key).
        salt: [u8; 16],
        /// Random bytes of the broker's, good for one proof.
        server_nonce: [u8; KEY_BYTES],
    },
    /// The connection now acts for this principal.
    Authenticated {
        /// The app key proved.
        principal: String,
    },
    /// A principal or ACL change committed.
    SecurityUpdated,
    /// Principals and grants.
    Security {
        /// App keys of the principals in the metadata log (not the bootstrap admin).
        principals: Vec<String>,
        /// Every grant.
        grants: Vec<Grant>,
    },
}

/// Messages among brokers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PeerMessage {
    /// Raft among the controller voters.
    Raft(RaftMessage),
    /// A broker asks a voter for committed metadata entries after `after`.
    MetadataFetch {
        /// The last index the broker has applied.
        after: LogIndex,
    },
    /// Committed metadata entries.
    MetadataEntries {
        /// Entries after the asked index, up to the voter's commit index.
        entries: Vec<Entry>,
        /// The voter's commit index.
        commit: LogIndex,
        /// The controller leader as the voter knows it.
        leader: Option<NodeId>,
    },
    /// A request to the active controller.
    Controller {
        /// Echoed in the reply.
        correlation: CorrelationId,
        /// What is asked.
        request: ControllerRequest,
    },
    /// The active controller's answer, sent once its records committed.
    ControllerReply {
        /// The request's correlation id.
        correlation: CorrelationId,
        /// The outcome.
        result: Result<ControllerReply, WireError>,
    },
    /// A follower fetches from a partition leader.
    ReplicaFetch(ReplicaFetch),
    /// The leader's answer.
    ReplicaFetchReply {
        /// The partition.
        tp: TopicPartition,
        /// The leader epoch the follower asked in.
        leader_epoch: LeaderEpoch,
        /// The incarnation that asked and its fetch (`ReplicaFetch::fetch_id`).
        fetch: (BrokerEpoch, u64),
        /// Records, or why not.
        result: Result<ReplicaData, WireError>,
    },
    /// A partition leader asks the leader of a dead-letter partition to append
    /// dead letters with acks=all (docs/consumers.md section 6.4), one such
    /// append in flight per dead-letter partition.
    DeadLetter {
        /// Echoed in the reply.
        correlation: CorrelationId,
        /// The dead-letter partition (`<topic>.dlq`, `p % P`).
        tp: TopicPartition,
        /// The dead letters, one record each with the `mq.dlq.*` headers.
        batch: RecordBatch,
        /// How long the receiver waits for the append to commit, from its
        /// arrival, before it answers `Timeout`: the sender's own wait, not the
        /// receiver's `produce_timeout` (a client's setting), so that a slow
        /// commit is answered rather than written again by a retry.
        commit_wait: Duration,
    },
    /// The answer to [`PeerMessage::DeadLetter`], sent once the append committed
    /// (or failed).
    DeadLetterReply {
        /// The request's correlation id.
        correlation: CorrelationId,
        /// The batch's base offset (record `i` is at base + `i`), or why it was
        /// not appended.
        result: Result<Offset, WireError>,
    },
}

/// What the controller answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerReply {
    /// The request's records committed at `index` (zero: nothing needed).
    Done {
        /// Index of the last record the request produced.
        index: LogIndex,
    },
    /// The broker registered with this incarnation.
    Registered {
        /// The new broker epoch.
        broker_epoch: BrokerEpoch,
        /// Index of the registration record.
        index: LogIndex,
    },
    /// Heartbeat acknowledged.
    Heartbeat {
        /// Whether the broker is still fenced.
        fenced: bool,
        /// The controller's last metadata index when it decided: an unfenced
        /// answer renews the broker's delivery lease only once the broker has
        /// applied this far (docs/consumers.md, "Failover").
        metadata_index: LogIndex,
    },
    /// A block of producer ids.
    ProducerIds {
        /// First id.
        first: ProducerId,
        /// Count.
        count: u64,
    },
}

/// A follower's fetch (KIP-320 fields).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaFetch {
    /// The partition.
    pub tp: TopicPartition,
    /// The fetching replica.
    pub replica: NodeId,
    /// Its incarnation.
    pub broker_epoch: BrokerEpoch,
    /// Its persisted log end: the offset it wants next.
    pub fetch_offset: Offset,
    /// The leader epoch of its last record (`None` for an empty log).
    pub last_fetched_epoch: Option<LeaderEpoch>,
    /// The leader epoch it believes current.
    pub current_leader_epoch: LeaderEpoch,
    /// Soft limit on the reply size.
    pub max_bytes: u32,
    /// Which of the follower's fetches this is: the answer echoes it, and the
    /// follower takes only the answer to its newest fetch (a late or repeated
    /// answer to an older one would start a second fetch loop beside the first;
    /// seed 1002286 grew them until its links were full).
    pub fetch_id: u64,
}

/// The leader's answer to a follower.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplicaData {
    /// The leader's high watermark.
    pub high_watermark: Offset,
    /// The leader's log start.
    pub log_start: Offset,
    /// Set when the follower's log diverges: truncate to the lesser of this end
    /// offset and the follower's own end of that epoch, then fetch again. An end
    /// at `log_start` means the leader keeps no epoch at or before the
    /// follower's: empty the log and restart it at `log_start`.
    pub diverging: Option<(LeaderEpoch, Offset)>,
    /// Records from the fetch offset (persisted on the leader).
    pub batches: Vec<RecordBatch>,
    /// Set when the follower must empty its log and restart at `log_start`
    /// (its fetch offset is below it, or `diverging` ends there): the producer
    /// state of the leader's log below its start, which the follower takes as
    /// its own, so that a retry of a batch retention removed before the
    /// follower ever held it is still known if the follower leads next.
    pub producers: Option<crate::replication::producers::ProducerTable>,
}
