//! The controller's decisions (DESIGN.md sections 4 and 5, KRaft's QuorumController
//! in outline): broker registration and fencing by heartbeat, topic creation with
//! replica placement, partition leader election and ISR changes with epoch checks,
//! producer id blocks.
//!
//! Only the active controller decides: the Raft leader once its own `LeaderChange`
//! entry has committed, so that its image includes everything earlier terms
//! committed. It decides against a *speculative* image (committed records plus its
//! own proposals) so that decisions in flight never contradict each other; losing
//! leadership throws that image away. Each decision is a list of records to
//! propose; the caller replies once the last of them commits.

use super::image::{MetadataImage, PartitionImage};
use super::metadata::MetadataRecord;
use super::raft::LogIndex;
use crate::buggify::{Buggify, Point};
use crate::coverage::{Coverage, Mark};
use crate::ids::{BrokerEpoch, LeaderEpoch, NodeId, TopicPartition};
use crate::node::validate_topic_name;
use crate::security::acl::Grant;
use crate::security::{validate_app_key, validate_grant, StoredCredential};
use crate::time::{Duration, Instant};
use crate::wire::{ErrorCode, TopicConfig, WireError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Requests brokers and clients make of the active controller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// A broker (re)started: give it a new incarnation.
    RegisterBroker {
        /// The broker.
        broker: NodeId,
    },
    /// A broker is alive and has applied metadata up to `metadata_applied`.
    Heartbeat {
        /// The broker.
        broker: NodeId,
        /// Its incarnation.
        broker_epoch: BrokerEpoch,
        /// The metadata index it has applied.
        metadata_applied: LogIndex,
    },
    /// Create a topic.
    CreateTopic(TopicConfig),
    /// Delete a topic.
    DeleteTopic {
        /// Its name.
        topic: String,
    },
    /// A partition leader asks to change the ISR.
    AlterPartition {
        /// The partition.
        tp: TopicPartition,
        /// The requesting leader.
        leader: NodeId,
        /// Its incarnation.
        broker_epoch: BrokerEpoch,
        /// The leader epoch it leads in.
        leader_epoch: LeaderEpoch,
        /// The partition epoch its view is based on.
        partition_epoch: u32,
        /// The ISR it wants.
        isr: Vec<NodeId>,
    },
    /// A broker wants a block of producer ids.
    AllocateProducerIds {
        /// The broker.
        broker: NodeId,
        /// Its incarnation.
        broker_epoch: BrokerEpoch,
    },
    /// A broker is stopping (controlled shutdown): move its leaderships to other
    /// in-sync replicas and fence it, so it is never elected while it stops.
    ControlledShutdown {
        /// The broker.
        broker: NodeId,
        /// Its incarnation.
        broker_epoch: BrokerEpoch,
    },
    /// Create a principal or replace its credential (forwarded for an admin).
    PutPrincipal {
        /// The app key.
        app_key: String,
        /// The salted hash of its secret (computed by the admin's client).
        credential: StoredCredential,
    },
    /// Delete a principal and its grants.
    DeletePrincipal {
        /// The app key.
        app_key: String,
    },
    /// Add an ACL grant.
    PutAcl(Grant),
    /// Remove an ACL grant.
    DeleteAcl(Grant),
}

/// Controller settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerConfig {
    /// A broker silent this long is fenced.
    pub session_timeout: Duration,
    /// Producer ids handed out per request.
    pub producer_id_block: u64,
    /// Most brokers the cluster may register.
    pub max_brokers: usize,
    /// Most principals the cluster may hold.
    pub max_principals: usize,
    /// Most ACL grants the cluster may hold.
    pub max_grants: usize,
    /// Most partitions a topic may have. The admin path checks this too; the
    /// controller checks it again because a forwarded request allocates here.
    pub max_partitions_per_topic: u32,
    /// BUGGIFY's seed (`crate::buggify`; `NodeConfig::buggify`); `None`: off.
    pub buggify: Option<u64>,
    /// This controller's node id and Raft term: they pick its BUGGIFY stream.
    pub buggify_stream: (u32, u64),
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            session_timeout: Duration::from_secs(9),
            producer_id_block: 1000,
            max_brokers: 1024,
            max_principals: 10_000,
            max_grants: 100_000,
            max_partitions_per_topic: 10_000,
            buggify: None,
            buggify_stream: (0, 0),
        }
    }
}

/// The active controller's state.
#[derive(Clone, Debug)]
pub struct QuorumController {
    config: ControllerConfig,
    image: MetadataImage,
    last_heartbeat: BTreeMap<NodeId, Instant>,
    next_broker_epoch: u64,
    /// Rare branches taken (never read by the decisions).
    coverage: Coverage,
    /// Legal but rare paths under the simulator (off in production).
    buggify: Buggify,
    /// The image it became active on had a fencing or an unfencing whose
    /// partition changes a controller change cut short
    /// ([`QuorumController::stale_fencing`],
    /// [`QuorumController::stale_unfencing`]): the next ticks finish them.
    repair_due: bool,
}

impl QuorumController {
    /// Becomes active on top of the committed `image`: every registered broker gets
    /// a full session of grace, since heartbeats to the old leader are not known.
    pub fn activate(config: ControllerConfig, image: &MetadataImage, now: Instant) -> Self {
        let last_heartbeat = image.brokers.keys().map(|b| (*b, now)).collect();
        let next_broker_epoch = image.brokers.values().map(|b| b.epoch.0).max().unwrap_or(0) + 1;
        let (id, term) = config.buggify_stream;
        let buggify = Buggify::new(config.buggify, "buggify-controller", (u64::from(id) << 32) ^ term);
        let mut c = QuorumController {
            config,
            image: image.clone(),
            last_heartbeat,
            next_broker_epoch,
            coverage: Coverage::default(),
            buggify,
            repair_due: false,
        };
        c.repair_due = c.stale_fencing().is_some() || c.stale_unfencing().is_some();
        c
    }

    /// A broker that is not live but still leads a partition or sits in an ISR
    /// it is not the last member of. A fencing's partition changes are entries
    /// of their own after the `FenceBroker`, so a controller change can commit
    /// the fencing and lose them (mq-sim seed 1008532); only a newly active
    /// controller can meet this, since an active one proposes them together.
    fn stale_fencing(&self) -> Option<NodeId> {
        let image = &self.image;
        image.partitions().find_map(|(_, p)| {
            let isr_member = || p.isr.iter().copied().find(|r| p.isr.len() > 1 && !image.is_live(*r));
            p.leader.filter(|l| !image.is_live(*l)).or_else(isr_member)
        })
    }

    /// A live broker that would lead a partition that has no leader: the
    /// elections of an unfencing are entries of their own after the
    /// `UnfenceBroker` too, so a controller change can commit the unfencing and
    /// lose them (mq-sim seed 71 at 847cffe: the only replica of a `__groups`
    /// partition was unfenced and never led it again, since elections follow
    /// only fencings and unfencings). Partitions never elected at all are
    /// [`QuorumController::first_elections`]'s.
    fn stale_unfencing(&self) -> Option<NodeId> {
        let image = &self.image;
        image.partitions().find_map(|(tp, p)| {
            if p.leader.is_some() || (p.isr.is_empty() && p.partition_epoch == 0) {
                return None;
            }
            let unclean = image.topics.get(&tp.topic).is_some_and(|t| t.config.unclean_leader_election);
            p.replicas.iter().copied().find(|r| image.is_live(*r) && (p.isr.contains(r) || unclean))
        })
    }

    /// The rare branches this controller took ([`crate::coverage`]).
    pub fn coverage(&self) -> &Coverage {
        &self.coverage
    }

    /// The speculative image (committed plus proposed).
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// Records that `record` was proposed at `index`, updating the speculative
    /// image. Call for every record a decision returned, in order.
    pub fn proposed(&mut self, index: LogIndex, record: &MetadataRecord) {
        if let MetadataRecord::RegisterBroker { broker_epoch, .. } = record {
            self.next_broker_epoch = self.next_broker_epoch.max(broker_epoch.0 + 1);
        }
        self.image.apply(index, record);
    }

    /// When [`QuorumController::tick`] next has work: the earliest session expiry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.repair_due {
            return Some(Instant::ZERO);
        }
        self.image
            .brokers
            .iter()
            .filter(|(_, b)| !b.fenced)
            .filter_map(|(id, _)| self.last_heartbeat.get(id))
            .map(|t| *t + self.config.session_timeout)
            .min()
    }

    /// Fences brokers whose session expired; returns the records to propose.
    pub fn tick(&mut self, now: Instant) -> Vec<MetadataRecord> {
        let expired: Vec<(NodeId, BrokerEpoch)> = self
            .image
            .brokers
            .iter()
            .filter(|(id, b)| {
                !b.fenced
                    && self
                        .last_heartbeat
                        .get(id)
                        .is_none_or(|t| now.saturating_since(*t) >= self.config.session_timeout)
            })
            .map(|(id, b)| (*id, b.epoch))
            .collect();
        // One broker per call: its elections must see the image with the previous
        // broker's fencing and elections applied (the host proposes, then calls
        // again while another session is still expired).
        let mut records = Vec::new();
        if let Some((broker, broker_epoch)) = expired.into_iter().next() {
            tracing::debug!(%broker, "session expired: fencing");
            self.coverage.hit(Mark::BrokerSessionExpired);
            records.push(MetadataRecord::FenceBroker { broker, broker_epoch });
            records.extend(self.reelect_without(broker));
            return records;
        }
        // A newly active controller finishes a fencing a controller change cut
        // short: the broker leaves every ISR it is not the last member of, and
        // every leadership, one broker per call as above, until none is left
        // (or a re-election changes nothing, so that no tick spins on it).
        if self.repair_due {
            if let Some(broker) = self.stale_fencing() {
                records.extend(self.reelect_without(broker));
            } else if let Some(broker) = self.stale_unfencing() {
                records.extend(self.elect_with(broker));
            }
            self.repair_due = !records.is_empty();
        }
        records
    }

    /// Decides on `req`; returns the records to propose (possibly none), or an
    /// error for the requester.
    pub fn handle(&mut self, now: Instant, req: ControllerRequest) -> Result<Vec<MetadataRecord>, WireError> {
        match req {
            ControllerRequest::RegisterBroker { broker } => {
                if broker.0 == 0 {
                    return Err(WireError::new(ErrorCode::InvalidRequest, "broker ids start at 1"));
                }
                if !self.image.brokers.contains_key(&broker) && self.image.brokers.len() >= self.config.max_brokers {
                    return Err(WireError::new(ErrorCode::InvalidConfig, "the cluster has its maximum of brokers"));
                }
                self.last_heartbeat.insert(broker, now);
                // The old incarnation may have lost unpersisted records: out of
                // every ISR and leadership before the new one registers.
                let mut records = self.reelect_without(broker);
                let broker_epoch = BrokerEpoch(self.next_broker_epoch);
                self.next_broker_epoch += 1;
                records.push(MetadataRecord::RegisterBroker { broker, broker_epoch });
                Ok(records)
            }
            ControllerRequest::Heartbeat { broker, broker_epoch, metadata_applied } => {
                let b = self.check_broker(broker, broker_epoch)?;
                self.last_heartbeat.insert(broker, now);
                let mut records = self.first_elections();
                // Decisions below read the image: take them on the next heartbeat,
                // once these first elections are applied.
                if records.is_empty() && b.fenced && metadata_applied >= b.registered_at {
                    records.push(MetadataRecord::UnfenceBroker { broker, broker_epoch });
                    records.extend(self.elect_with(broker));
                }
                Ok(records)
            }
            ControllerRequest::CreateTopic(config) => self.create_topic(config),
            ControllerRequest::DeleteTopic { topic } => {
                if !self.image.topics.contains_key(&topic) {
                    return Err(WireError::new(ErrorCode::UnknownTopic, format!("unknown topic {topic}")));
                }
                Ok(vec![MetadataRecord::DeleteTopic { topic }])
            }
            ControllerRequest::AlterPartition { tp, leader, broker_epoch, leader_epoch, partition_epoch, isr } => {
                self.check_broker(leader, broker_epoch)?;
                let p = self
                    .image
                    .partition(&tp)
                    .ok_or_else(|| WireError::new(ErrorCode::UnknownPartition, format!("unknown partition {tp}")))?;
                if leader_epoch < p.leader_epoch {
                    self.coverage.hit(Mark::AlterPartitionStaleEpoch);
                    return Err(WireError::new(
                        ErrorCode::FencedEpoch,
                        format!("leader epoch {leader_epoch} of {tp} is stale; current is {}", p.leader_epoch),
                    ));
                }
                if leader_epoch > p.leader_epoch {
                    return Err(WireError::new(
                        ErrorCode::UnknownEpoch,
                        format!("leader epoch {leader_epoch} of {tp} is ahead of the controller's {}", p.leader_epoch),
                    ));
                }
                if p.leader != Some(leader) {
                    return Err(WireError::new(ErrorCode::NotLeader, format!("broker {leader} does not lead {tp}")));
                }
                if partition_epoch != p.partition_epoch {
                    self.coverage.hit(Mark::AlterPartitionStaleEpoch);
                    return Err(WireError::new(
                        ErrorCode::FencedEpoch,
                        format!("partition epoch {partition_epoch} of {tp} is stale; current is {}", p.partition_epoch),
                    ));
                }
                if !isr.contains(&leader) || isr.iter().any(|r| !p.replicas.contains(r)) {
                    return Err(WireError::new(
                        ErrorCode::InvalidRequest,
                        format!("ISR {isr:?} of {tp} must contain the leader and only replicas {:?}", p.replicas),
                    ));
                }
                if let Some(dead) = isr.iter().find(|r| !p.isr.contains(r) && !self.image.is_live(**r)) {
                    self.coverage.hit(Mark::AlterPartitionFencedJoiner);
                    return Err(WireError::new(
                        ErrorCode::InvalidRequest,
                        format!("broker {dead} is fenced and cannot join the ISR of {tp}"),
                    ));
                }
                let mut isr = isr;
                isr.sort_by_key(|r| p.replicas.iter().position(|x| x == r));
                isr.dedup();
                Ok(vec![MetadataRecord::PartitionChange {
                    tp,
                    leader: Some(leader),
                    leader_epoch,
                    isr,
                    partition_epoch: p.partition_epoch + 1,
                }])
            }
            ControllerRequest::ControlledShutdown { broker, broker_epoch } => {
                let b = self.check_broker(broker, broker_epoch)?;
                if b.fenced {
                    return Ok(Vec::new());
                }
                self.coverage.hit(Mark::ControlledShutdown);
                // Fencing is what moving leadership away means: the broker leaves
                // every ISR (unless it is the last member) and every leadership goes
                // to another live ISR member, exactly as after a missed session.
                let mut records = vec![MetadataRecord::FenceBroker { broker, broker_epoch }];
                records.extend(self.reelect_without(broker));
                Ok(records)
            }
            ControllerRequest::AllocateProducerIds { broker, broker_epoch } => {
                self.check_broker(broker, broker_epoch)?;
                Ok(vec![MetadataRecord::AllocateProducerIds {
                    first: self.image.next_producer_id,
                    count: self.config.producer_id_block,
                }])
            }
            ControllerRequest::PutPrincipal { app_key, credential } => {
                validate_app_key(&app_key)?;
                if !self.image.principals.contains_key(&app_key)
                    && self.image.principals.len() >= self.config.max_principals
                {
                    return Err(WireError::new(
                        ErrorCode::InvalidConfig,
                        format!("the cluster has its maximum of {} principals", self.config.max_principals),
                    ));
                }
                Ok(vec![MetadataRecord::PutPrincipal { app_key, credential }])
            }
            ControllerRequest::DeletePrincipal { app_key } => {
                if !self.image.principals.contains_key(&app_key) {
                    return Err(WireError::new(ErrorCode::InvalidRequest, format!("unknown principal {app_key:?}")));
                }
                Ok(vec![MetadataRecord::DeletePrincipal { app_key }])
            }
            ControllerRequest::PutAcl(grant) => {
                validate_grant(&grant)?;
                if self.image.acls.len() >= self.config.max_grants {
                    return Err(WireError::new(
                        ErrorCode::InvalidConfig,
                        format!("the cluster has its maximum of {} ACL grants", self.config.max_grants),
                    ));
                }
                Ok(vec![MetadataRecord::PutAcl(grant)])
            }
            ControllerRequest::DeleteAcl(grant) => {
                if !self.image.acls.grants().any(|g| *g == grant) {
                    return Err(WireError::new(ErrorCode::InvalidRequest, format!("no such grant: {grant:?}")));
                }
                Ok(vec![MetadataRecord::DeleteAcl(grant)])
            }
        }
    }

    fn check_broker(&mut self, broker: NodeId, epoch: BrokerEpoch) -> Result<super::image::BrokerImage, WireError> {
        let found = self.image.brokers.get(&broker);
        if found.is_none_or(|b| b.epoch != epoch) {
            self.coverage.hit(Mark::StaleBrokerEpoch);
        }
        match found {
            Some(b) if b.epoch == epoch => Ok(b.clone()),
            Some(b) => Err(WireError::new(
                ErrorCode::FencedEpoch,
                format!("broker {broker} epoch {epoch} is not its current epoch {}; register again", b.epoch),
            )),
            None => Err(WireError::new(ErrorCode::FencedEpoch, format!("broker {broker} is not registered"))),
        }
    }

    fn create_topic(&mut self, config: TopicConfig) -> Result<Vec<MetadataRecord>, WireError> {
        validate_topic_name(&config.name)?;
        if self.image.topics.contains_key(&config.name) {
            return Err(WireError::new(ErrorCode::TopicExists, format!("topic {} already exists", config.name)));
        }
        let live: Vec<NodeId> = self.image.brokers.iter().filter(|(_, b)| !b.fenced).map(|(id, _)| *id).collect();
        let rf = usize::from(config.replication_factor);
        if config.partitions == 0 {
            return Err(WireError::new(ErrorCode::InvalidConfig, "a topic needs at least one partition"));
        }
        if config.partitions > self.config.max_partitions_per_topic {
            return Err(WireError::new(
                ErrorCode::InvalidConfig,
                format!(
                    "topic {} asks for {} partitions; the most is {}",
                    config.name, config.partitions, self.config.max_partitions_per_topic
                ),
            ));
        }
        if rf == 0 || rf > live.len() {
            return Err(WireError::new(
                ErrorCode::InvalidConfig,
                format!(
                    "replication factor {rf} of topic {} needs that many live brokers; {} are live",
                    config.name,
                    live.len()
                ),
            ));
        }
        if config.min_insync_replicas == 0 || config.min_insync_replicas > config.replication_factor {
            return Err(WireError::new(
                ErrorCode::InvalidConfig,
                format!(
                    "min_insync_replicas {} must be between 1 and the replication factor {rf}",
                    config.min_insync_replicas
                ),
            ));
        }
        // Spread leaders and replicas round-robin, starting where the topic count
        // points so that topics do not all lead on the first broker.
        let start = self.image.topics.len();
        let assignment: Vec<Vec<NodeId>> = (0..config.partitions as usize)
            .map(|p| (0..rf).map(|i| live[(start + p + i) % live.len()]).collect())
            .collect();
        let mut records = vec![MetadataRecord::CreateTopic { config: config.clone(), assignment: assignment.clone() }];
        for (i, replicas) in assignment.into_iter().enumerate() {
            records.push(MetadataRecord::PartitionChange {
                tp: TopicPartition::new(config.name.clone(), i as u32),
                leader: Some(replicas[0]),
                leader_epoch: LeaderEpoch(1),
                isr: replicas,
                partition_epoch: 1,
            });
        }
        if self.buggify.fire(Point::ControllerSplitCreateTopic, &mut self.coverage) {
            // Only the topic, as if this controller lost its leadership after its
            // first entry: `first_elections` must elect the partitions.
            records.truncate(1);
        }
        Ok(records)
    }

    /// First leaders for partitions that never had one: a topic's records are
    /// separate Raft entries, so a controller change can commit its `CreateTopic`
    /// without the `PartitionChange`s that followed. Such a partition holds no data
    /// anywhere, so its whole replica set is in sync, as at creation.
    fn first_elections(&mut self) -> Vec<MetadataRecord> {
        let records: Vec<MetadataRecord> = self
            .image
            .partitions()
            .filter(|(_, p)| p.leader.is_none() && p.isr.is_empty() && p.partition_epoch == 0)
            .filter_map(|(tp, p)| {
                let leader = p.replicas.iter().copied().find(|r| self.image.is_live(*r))?;
                Some(MetadataRecord::PartitionChange {
                    tp,
                    leader: Some(leader),
                    leader_epoch: LeaderEpoch(1),
                    isr: p.replicas.clone(),
                    partition_epoch: 1,
                })
            })
            .collect();
        if !records.is_empty() {
            self.coverage.hit(Mark::FirstElectionAfterCutCreation);
        }
        records
    }

    /// Partition changes once `gone` may no longer lead or be in sync.
    fn reelect_without(&mut self, gone: NodeId) -> Vec<MetadataRecord> {
        let QuorumController { image, coverage, .. } = self;
        let mut records = Vec::new();
        for (tp, p) in image.partitions() {
            if !p.isr.contains(&gone) && p.leader != Some(gone) {
                continue;
            }
            let unclean = image.topics[&tp.topic].config.unclean_leader_election;
            if p.isr == [gone] {
                coverage.hit(Mark::LastIsrMemberKept);
            }
            // The last ISR member stays in the ISR, leaderless, so that it can lead
            // again without loss when it returns (Kafka before KIP-966). Other
            // members that are not live leave with `gone`: a fencing whose own
            // changes a controller change cut short left them there (seed 1008532).
            let live: Vec<NodeId> = p.isr.iter().copied().filter(|r| *r != gone && image.is_live(*r)).collect();
            let isr: Vec<NodeId> = if !live.is_empty() {
                live
            } else if p.isr.len() > 1 {
                p.isr.iter().copied().filter(|r| *r != gone).collect()
            } else {
                p.isr.clone()
            };
            let keep = p.leader.filter(|l| *l != gone && image.is_live(*l));
            let change = elect(coverage, p, keep, isr, unclean, |b| b != gone && image.is_live(b));
            records.extend(change.map(|c| c.into_record(tp)));
        }
        records
    }

    /// Partition changes once `back` is live again: leaderless partitions it can
    /// lead get it as leader.
    fn elect_with(&mut self, back: NodeId) -> Vec<MetadataRecord> {
        let QuorumController { image, coverage, .. } = self;
        let mut records = Vec::new();
        for (tp, p) in image.partitions() {
            if p.leader.is_some() || !p.replicas.contains(&back) {
                continue;
            }
            let unclean = image.topics[&tp.topic].config.unclean_leader_election;
            let live = |b: NodeId| b == back || image.is_live(b);
            let change = elect(coverage, p, None, p.isr.clone(), unclean, live);
            records.extend(change.map(|c| c.into_record(tp)));
        }
        records
    }
}

/// Keeps `keep` as leader if given; otherwise the first live ISR member in
/// replica order; otherwise, only with unclean election, the first live replica
/// (which becomes the whole ISR). `None` when nothing changes.
fn elect(
    coverage: &mut Coverage,
    p: &PartitionImage,
    keep: Option<NodeId>,
    isr: Vec<NodeId>,
    unclean: bool,
    live: impl Fn(NodeId) -> bool,
) -> Option<Change> {
    let (leader, isr) = match keep {
        Some(l) => (Some(l), isr),
        None => match p.replicas.iter().copied().find(|r| isr.contains(r) && live(*r)) {
            Some(l) => (Some(l), isr),
            None if unclean => match p.replicas.iter().copied().find(|r| live(*r)) {
                Some(l) => {
                    coverage.hit(Mark::UncleanElection);
                    (Some(l), vec![l])
                }
                None => (None, isr),
            },
            None => {
                coverage.hit(Mark::UncleanElectionRefused);
                (None, isr)
            }
        },
    };
    if leader == p.leader && isr == p.isr {
        return None;
    }
    let leader_epoch = if leader != p.leader { p.leader_epoch.next() } else { p.leader_epoch };
    Some(Change { leader, leader_epoch, isr, partition_epoch: p.partition_epoch + 1 })
}

struct Change {
    leader: Option<NodeId>,
    leader_epoch: LeaderEpoch,
    isr: Vec<NodeId>,
    partition_epoch: u32,
}

impl Change {
    fn into_record(self, tp: TopicPartition) -> MetadataRecord {
        MetadataRecord::PartitionChange {
            tp,
            leader: self.leader,
            leader_epoch: self.leader_epoch,
            isr: self.isr,
            partition_epoch: self.partition_epoch,
        }
    }
}
