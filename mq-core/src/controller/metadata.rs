//! The records of the metadata log (DESIGN.md section 4). Every broker applies the
//! committed prefix of this log, in order, to its [`crate::controller`] image of the
//! cluster; the controller leader appends to it. Variant order is part of the
//! stored and wire format: append new variants at the end only.

use crate::ids::{BrokerEpoch, LeaderEpoch, NodeId, ProducerId, TopicPartition};
use crate::security::acl::Grant;
use crate::security::StoredCredential;
use crate::wire::TopicConfig;
use serde::{Deserialize, Serialize};

/// One committed change to the cluster's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// Written by every new Raft leader as the first entry of its term, so that it
    /// can commit (Raft §5.4.2: only entries of the leader's own term are committed
    /// by counting replicas).
    LeaderChange {
        /// The new controller leader.
        leader: NodeId,
    },
    /// A broker (re)started and registered with a fresh incarnation.
    RegisterBroker {
        /// The broker.
        broker: NodeId,
        /// Its new incarnation.
        broker_epoch: BrokerEpoch,
    },
    /// The broker missed its heartbeats (or shut down): it leads nothing and is in no
    /// ISR until it registers again and catches up.
    FenceBroker {
        /// The broker.
        broker: NodeId,
        /// The incarnation being fenced.
        broker_epoch: BrokerEpoch,
    },
    /// The registered broker caught up on metadata and may lead again.
    UnfenceBroker {
        /// The broker.
        broker: NodeId,
        /// Its current incarnation.
        broker_epoch: BrokerEpoch,
    },
    /// A topic with its replica assignment.
    CreateTopic {
        /// Settings.
        config: TopicConfig,
        /// Replicas of each partition, preferred leader first.
        assignment: Vec<Vec<NodeId>>,
    },
    /// A topic was deleted.
    DeleteTopic {
        /// Its name.
        topic: String,
    },
    /// A partition's leadership or ISR changed.
    PartitionChange {
        /// The partition.
        tp: TopicPartition,
        /// Its leader, if any replica can lead.
        leader: Option<NodeId>,
        /// The leader epoch (bumped on every leader change).
        leader_epoch: LeaderEpoch,
        /// The in-sync replicas.
        isr: Vec<NodeId>,
        /// Bumped on every change of this partition's state.
        partition_epoch: u32,
    },
    /// A block of producer ids handed out.
    AllocateProducerIds {
        /// The first id of the block.
        first: ProducerId,
        /// How many ids.
        count: u64,
    },
    /// A principal was created or its secret replaced (docs/security.md). Only the
    /// salted credential is stored, never the secret.
    PutPrincipal {
        /// The app key.
        app_key: String,
        /// The salted hash of its secret.
        credential: StoredCredential,
    },
    /// A principal was deleted, with every grant naming it.
    DeletePrincipal {
        /// The app key.
        app_key: String,
    },
    /// An ACL grant was added.
    PutAcl(Grant),
    /// An ACL grant was removed.
    DeleteAcl(Grant),
}
