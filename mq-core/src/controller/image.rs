//! The cluster's metadata as the committed log describes it: brokers with their
//! incarnations and fencing, topics with their replica assignments, and each
//! partition's leader, leader epoch, ISR and partition epoch. Every broker builds one
//! by applying committed [`MetadataRecord`]s in order; the controller leader keeps a
//! second one that also includes its proposals not yet committed.

use super::metadata::MetadataRecord;
use super::raft::LogIndex;
use crate::ids::{BrokerEpoch, LeaderEpoch, NodeId, PartitionId, ProducerId, TopicPartition};
use crate::security::acl::Acls;
use crate::security::StoredCredential;
use crate::wire::TopicConfig;
use std::collections::BTreeMap;

/// A registered broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerImage {
    /// Its current incarnation.
    pub epoch: BrokerEpoch,
    /// Fenced brokers lead nothing and are in no ISR.
    pub fenced: bool,
    /// The metadata index at which it registered; it is unfenced once caught up to
    /// here.
    pub registered_at: LogIndex,
}

/// One partition's replication state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionImage {
    /// Replicas, preferred leader first.
    pub replicas: Vec<NodeId>,
    /// The leader, if any.
    pub leader: Option<NodeId>,
    /// Bumped on every leader change.
    pub leader_epoch: LeaderEpoch,
    /// In-sync replicas.
    pub isr: Vec<NodeId>,
    /// Bumped on every change.
    pub partition_epoch: u32,
}

/// A topic's settings and partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicImage {
    /// Settings.
    pub config: TopicConfig,
    /// Partitions by index.
    pub partitions: Vec<PartitionImage>,
}

/// The whole metadata image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataImage {
    /// Index of the last record applied.
    pub applied: LogIndex,
    /// The current controller leader, as announced by `LeaderChange`.
    pub controller: Option<NodeId>,
    /// Registered brokers.
    pub brokers: BTreeMap<NodeId, BrokerImage>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicImage>,
    /// The next producer id to hand out.
    pub next_producer_id: ProducerId,
    /// Principals (app keys) with their salted credentials.
    pub principals: BTreeMap<String, StoredCredential>,
    /// The ACL grants in force.
    pub acls: Acls,
}

impl MetadataImage {
    /// Applies the record at `index`. Records are applied once each, in order.
    pub fn apply(&mut self, index: LogIndex, record: &MetadataRecord) {
        debug_assert!(index > self.applied, "record {index} applied after {}", self.applied);
        self.applied = index;
        match record {
            MetadataRecord::LeaderChange { leader } => self.controller = Some(*leader),
            MetadataRecord::RegisterBroker { broker, broker_epoch } => {
                self.brokers.insert(*broker, BrokerImage { epoch: *broker_epoch, fenced: true, registered_at: index });
            }
            MetadataRecord::FenceBroker { broker, broker_epoch } => {
                if let Some(b) = self.brokers.get_mut(broker).filter(|b| b.epoch == *broker_epoch) {
                    b.fenced = true;
                }
            }
            MetadataRecord::UnfenceBroker { broker, broker_epoch } => {
                if let Some(b) = self.brokers.get_mut(broker).filter(|b| b.epoch == *broker_epoch) {
                    b.fenced = false;
                }
            }
            MetadataRecord::CreateTopic { config, assignment } => {
                let partitions = assignment
                    .iter()
                    .map(|replicas| PartitionImage {
                        replicas: replicas.clone(),
                        leader: None,
                        leader_epoch: LeaderEpoch(0),
                        isr: Vec::new(),
                        partition_epoch: 0,
                    })
                    .collect();
                self.topics.insert(config.name.clone(), TopicImage { config: config.clone(), partitions });
            }
            MetadataRecord::DeleteTopic { topic } => {
                self.topics.remove(topic);
            }
            MetadataRecord::PartitionChange { tp, leader, leader_epoch, isr, partition_epoch } => {
                if let Some(p) = self.partition_mut(tp) {
                    p.leader = *leader;
                    p.leader_epoch = *leader_epoch;
                    p.isr = isr.clone();
                    p.partition_epoch = *partition_epoch;
                }
            }
            MetadataRecord::AllocateProducerIds { first, count } => {
                self.next_producer_id = ProducerId(first.0.saturating_add(*count));
            }
            MetadataRecord::PutPrincipal { app_key, credential } => {
                self.principals.insert(app_key.clone(), credential.clone());
            }
            MetadataRecord::DeletePrincipal { app_key } => {
                self.principals.remove(app_key);
                self.acls.revoke_principal(app_key);
            }
            MetadataRecord::PutAcl(grant) => self.acls.grant(grant.clone()),
            MetadataRecord::DeleteAcl(grant) => self.acls.revoke(grant),
        }
    }

    /// The state of `tp`.
    pub fn partition(&self, tp: &TopicPartition) -> Option<&PartitionImage> {
        self.topics.get(&tp.topic)?.partitions.get(tp.partition.0 as usize)
    }

    fn partition_mut(&mut self, tp: &TopicPartition) -> Option<&mut PartitionImage> {
        self.topics.get_mut(&tp.topic)?.partitions.get_mut(tp.partition.0 as usize)
    }

    /// Whether `broker` is registered with `epoch` and not fenced.
    pub fn is_live(&self, broker: NodeId) -> bool {
        self.brokers.get(&broker).is_some_and(|b| !b.fenced)
    }

    /// Every partition with its state.
    pub fn partitions(&self) -> impl Iterator<Item = (TopicPartition, &PartitionImage)> {
        self.topics.iter().flat_map(|(name, t)| {
            t.partitions
                .iter()
                .enumerate()
                .map(move |(i, p)| (TopicPartition { topic: name.clone(), partition: PartitionId(i as u32) }, p))
        })
    }
}
