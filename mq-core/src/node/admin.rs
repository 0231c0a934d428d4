//! Client requests: dispatch, topic administration (forwarded to the controller),
//! listings and cluster metadata.

use super::{not_ready, unknown_topic, validate_topic_name, Node};
use crate::contract::Peer;
use crate::controller::ControllerRequest;
use crate::coverage::Mark;
use crate::ids::{CorrelationId, LeaderEpoch, NodeId, Offset, PartitionId, TopicPartition};
use crate::time::Duration;
use crate::wire::{ErrorCode, PartitionInfo, Request, RequestBody, ResponseBody, TopicConfig, TopicInfo, WireError};

impl Node {
    pub(super) fn handle_request(&mut self, from: Peer, req: Request) {
        let corr = req.correlation;
        if let Err(e) = self.authorize(from, &req.body) {
            let mark = if e.code == ErrorCode::Unauthenticated { Mark::Unauthenticated } else { Mark::Unauthorized };
            self.coverage.hit(mark);
            self.reply(from, corr, Err(e));
            return;
        }
        let result = match req.body {
            RequestBody::CreateTopic(config) => self.create_topic(from, corr, config),
            RequestBody::DeleteTopic { topic } => self.delete_topic(from, corr, topic),
            RequestBody::ListTopics => Ok(Some(ResponseBody::Topics(self.topic_infos(&[])))),
            RequestBody::Metadata { topics } => Ok(Some(self.cluster_metadata(&topics))),
            RequestBody::InitProducer => {
                if self.is_ready() {
                    self.init_producer(from, corr);
                    Ok(None)
                } else {
                    Err(not_ready(self.id()))
                }
            }
            body @ (RequestBody::GroupFetch(_) | RequestBody::GroupAck(_) | RequestBody::GroupSeek(_)) => {
                self.delivery_request(from, corr, body)
            }
            RequestBody::Produce { topic, partition, acks, batch } => {
                self.produce(from, corr, topic, partition, acks, batch, None)
            }
            RequestBody::Fetch { topic, partition, offset, max_bytes } => {
                self.fetch(&topic, partition, offset, max_bytes as usize).map(Some)
            }
            RequestBody::ListOffsets { topic, partition, spec } => {
                self.list_offsets(&topic, partition, spec).map(|offset| Some(ResponseBody::Offset { offset }))
            }
            body @ (RequestBody::FindCoordinator { .. }
            | RequestBody::JoinGroup(_)
            | RequestBody::Heartbeat { .. }
            | RequestBody::LeaveGroup { .. }) => self.group_request(from, corr, body),
            body @ (RequestBody::AuthStart { .. }
            | RequestBody::AuthProof { .. }
            | RequestBody::PutPrincipal { .. }
            | RequestBody::DeletePrincipal { .. }
            | RequestBody::PutAcl(_)
            | RequestBody::DeleteAcl(_)
            | RequestBody::DescribeSecurity) => self.security_request(from, corr, body),
        };
        match result {
            Ok(Some(body)) => self.reply(from, corr, Ok(body)),
            Ok(None) => {} // answered later, or never (acks=0)
            Err(e) => self.reply(from, corr, Err(e)),
        }
    }

    fn create_topic(
        &mut self,
        from: Peer,
        corr: CorrelationId,
        config: TopicConfig,
    ) -> Result<Option<ResponseBody>, WireError> {
        validate_topic_name(&config.name)?;
        reserved_name(&config.name)?;
        if !self.is_ready() {
            return Err(not_ready(self.id()));
        }
        if self.image.topics.contains_key(&config.name) {
            return Err(WireError::new(ErrorCode::TopicExists, format!("topic {} already exists", config.name)));
        }
        let invalid = |m: String| Err(WireError::new(ErrorCode::InvalidConfig, m));
        if self.image.topics.len() >= self.config.max_topics {
            return invalid(format!(
                "the cluster holds its maximum of {} topics; delete one first",
                self.config.max_topics
            ));
        }
        if config.partitions == 0 || config.partitions > self.config.max_partitions_per_topic {
            return invalid(format!(
                "topic {} asks for {} partitions; allowed are 1 to {}",
                config.name, config.partitions, self.config.max_partitions_per_topic
            ));
        }
        if config.replication_factor == 0 || u32::from(config.replication_factor) > self.config.cluster_size {
            return invalid(format!(
                "replication factor {} of topic {} must be between 1 and the {} broker(s) in the cluster",
                config.replication_factor, config.name, self.config.cluster_size
            ));
        }
        if config.min_insync_replicas == 0 || config.min_insync_replicas > config.replication_factor {
            return invalid(format!(
                "min_insync_replicas {} of topic {} must be between 1 and its replication factor {}",
                config.min_insync_replicas, config.name, config.replication_factor
            ));
        }
        if config.retention_time == Some(Duration::ZERO) || config.retention_bytes == Some(0) {
            return invalid(format!("retention of topic {} must be positive (or unset for none)", config.name));
        }
        self.forward(from, corr, ControllerRequest::CreateTopic(config), ResponseBody::TopicCreated);
        Ok(None)
    }

    fn delete_topic(
        &mut self,
        from: Peer,
        corr: CorrelationId,
        topic: String,
    ) -> Result<Option<ResponseBody>, WireError> {
        reserved_name(&topic)?;
        if !self.is_ready() {
            return Err(not_ready(self.id()));
        }
        if !self.image.topics.contains_key(&topic) {
            return Err(unknown_topic(&topic));
        }
        self.forward(from, corr, ControllerRequest::DeleteTopic { topic }, ResponseBody::TopicDeleted);
        Ok(None)
    }

    /// Topics (all when `names` is empty) with per-partition state; HW and log
    /// start are known for partitions this broker leads, zero elsewhere.
    fn topic_infos(&self, names: &[String]) -> Vec<TopicInfo> {
        self.image
            .topics
            .iter()
            .filter(|(n, _)| names.is_empty() || names.contains(n))
            .map(|(name, t)| TopicInfo {
                config: t.config.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let tp = TopicPartition { topic: name.clone(), partition: PartitionId(i as u32) };
                        let (log_start, hw) =
                            self.slots.get(&tp).filter(|s| s.replica.is_leader()).map_or((Offset(0), Offset(0)), |s| {
                                (s.replica.log.log_start(), s.replica.log.high_watermark())
                            });
                        PartitionInfo {
                            partition: PartitionId(i as u32),
                            leader: p.leader,
                            leader_epoch: p.leader_epoch,
                            replicas: p.replicas.clone(),
                            isr: p.isr.clone(),
                            log_start,
                            high_watermark: hw,
                        }
                    })
                    .collect(),
            })
            .collect()
    }

    fn cluster_metadata(&self, topics: &[String]) -> ResponseBody {
        let brokers: Vec<NodeId> = self.image.brokers.iter().filter(|(_, b)| !b.fenced).map(|(id, _)| *id).collect();
        ResponseBody::Metadata { brokers, controller: self.image.controller, topics: self.topic_infos(topics) }
    }

    /// Retention on every replica this broker holds: whole committed batches only.
    pub(super) fn run_retention(&mut self) {
        let cursor_limits = self.cursor_retention_limits();
        let now_ms = self.now.as_millis();
        let mut writes = Vec::new();
        let mut events = Vec::new();
        for (tp, slot) in &mut self.slots {
            let Some(t) = self.image.topics.get(&tp.topic) else { continue };
            let min_time = t.config.retention_time.map(|d| now_ms.saturating_sub(d.as_millis()));
            let point = slot.replica.log.retention_point(min_time, t.config.retention_bytes);
            // A leader keeps every group's newest cursor record (docs/consumers.md 6.3).
            let point = point.map(|p| cursor_limits.get(tp).map_or(p, |limit| p.min(*limit)));
            if let Some(start) = point.filter(|p| *p > slot.replica.log.log_start()) {
                slot.replica.log.advance_log_start(start);
                events.push(crate::contract::Event::LogStartAdvanced { tp: tp.clone(), log_start: start });
                writes.push(crate::storage::Write::AdvanceLogStart { tp: tp.clone(), log_start: start });
            }
        }
        for w in writes {
            // Deleting is not a promise to anyone: no effect on completion.
            self.stage(w, None, 0);
        }
        for e in events {
            self.event(e);
        }
    }

    pub(super) fn not_leader(&self, tp: &TopicPartition) -> WireError {
        let leader = self.image.partition(tp).and_then(|p| p.leader);
        let epoch = self.image.partition(tp).map_or(LeaderEpoch(0), |p| p.leader_epoch);
        let hint = leader.map_or("no leader right now".to_string(), |l| format!("leader is broker {l}"));
        WireError::new(
            ErrorCode::NotLeader,
            format!("broker {} does not lead {tp} (epoch {epoch}); {hint}; refresh metadata and retry", self.id()),
        )
    }

    /// The error for a request about `topic`/`partition` this broker holds no
    /// leading replica of.
    pub(super) fn missing_partition(&self, topic: &str, partition: PartitionId) -> WireError {
        if !self.is_ready() {
            return not_ready(self.id());
        }
        match self.image.topics.get(topic) {
            None => unknown_topic(topic),
            Some(t) if partition.0 as usize >= t.partitions.len() => WireError::new(
                ErrorCode::UnknownPartition,
                format!("topic {topic} has partitions 0..{}; partition {partition} does not exist", t.partitions.len()),
            ),
            Some(_) => self.not_leader(&TopicPartition { topic: topic.to_string(), partition }),
        }
    }
}

/// Names starting with `__` belong to internal topics (`__groups`), which only
/// brokers create and nobody deletes.
fn reserved_name(name: &str) -> Result<(), WireError> {
    if name.starts_with("__") {
        return Err(WireError::new(
            ErrorCode::InvalidRequest,
            format!(
                "topic names starting with __ are reserved for internal topics; {name} cannot be created or deleted"
            ),
        ));
    }
    Ok(())
}
