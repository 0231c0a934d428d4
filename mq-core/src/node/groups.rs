//! Group coordination on the broker (docs/consumers.md section 2): the broker that
//! leads partition `coordinator_partition(group)` of the internal topic `__groups`
//! runs that partition's [`Coordinator`]; every other broker answers group requests
//! with `NotCoordinator`. `__groups` is created on demand, through the controller,
//! by the first `FindCoordinator`. A coordinator lives exactly as long as this
//! broker leads its partition in one leader epoch: when leadership moves, it
//! resigns (held joins get `NotCoordinator`) and members rejoin the new leader.

use super::{broker::Purpose, not_ready, Node};
use crate::contract::{Event, Peer};
use crate::controller::ControllerRequest;
use crate::group::coordinator::{
    coordinator_partition, validate_group_name, Coordinator, CoordinatorInput, CoordinatorOutput, GROUPS_TOPIC,
};
use crate::ids::{CorrelationId, LeaderEpoch, PartitionId, TopicPartition};
use crate::wire::{ErrorCode, RequestBody, ResponseBody, TopicConfig, WireError};
use std::collections::BTreeMap;

impl Node {
    /// Group requests: `FindCoordinator` is answered by any broker, the others by
    /// the group's coordinator. `Ok(None)`: answered later (a held join).
    pub(super) fn group_request(
        &mut self,
        from: Peer,
        correlation: CorrelationId,
        body: RequestBody,
    ) -> Result<Option<ResponseBody>, WireError> {
        let (group, input) = match body {
            RequestBody::FindCoordinator { group } => return self.find_coordinator(&group).map(Some),
            RequestBody::JoinGroup(join) => (join.group.clone(), CoordinatorInput::Join { from, correlation, join }),
            RequestBody::Heartbeat { group, member, generation } => {
                (group.clone(), CoordinatorInput::Heartbeat { from, correlation, group, member, generation })
            }
            RequestBody::LeaveGroup { group, member } => {
                (group.clone(), CoordinatorInput::Leave { from, correlation, group, member })
            }
            other => {
                return Err(WireError::new(ErrorCode::InvalidRequest, format!("not a group request: {other:?}")));
            }
        };
        validate_group_name(&group)?;
        if !self.is_ready() {
            return Err(not_ready(self.id()));
        }
        let (partition, _) = self.coordinator_location(&group)?;
        let now = self.now;
        match self.coordinators.get_mut(&partition) {
            Some(c) => {
                c.handle(now, input);
                self.drain_coordinator(partition);
                Ok(None)
            }
            None => Err(self.not_coordinator(&group, partition)),
        }
    }

    fn find_coordinator(&mut self, group: &str) -> Result<ResponseBody, WireError> {
        validate_group_name(group)?;
        if !self.is_ready() {
            return Err(not_ready(self.id()));
        }
        let (partition, state) = self.coordinator_location(group)?;
        match state {
            (Some(coordinator), coordinator_epoch) => {
                Ok(ResponseBody::Coordinator { coordinator, partition, coordinator_epoch })
            }
            (None, _) => Err(WireError::new(
                ErrorCode::CoordinatorNotAvailable,
                format!("{GROUPS_TOPIC}/{partition}, which coordinates group {group}, has no leader right now; retry"),
            )),
        }
    }

    /// The `__groups` partition of `group` with its leader and epoch; creates
    /// `__groups` if it does not exist yet (the caller retries).
    fn coordinator_location(
        &mut self,
        group: &str,
    ) -> Result<(PartitionId, (Option<crate::ids::NodeId>, LeaderEpoch)), WireError> {
        let Some(t) = self.image.topics.get(GROUPS_TOPIC) else {
            self.create_groups_topic();
            return Err(WireError::new(
                ErrorCode::CoordinatorNotAvailable,
                format!("the group coordinators' topic {GROUPS_TOPIC} is being created; retry shortly"),
            ));
        };
        let partition = coordinator_partition(group, t.partitions.len() as u32);
        let (leader, epoch) =
            t.partitions.get(partition.0 as usize).map_or((None, LeaderEpoch(0)), |p| (p.leader, p.leader_epoch));
        Ok((partition, (leader, epoch)))
    }

    fn not_coordinator(&self, group: &str, partition: PartitionId) -> WireError {
        let tp = TopicPartition { topic: GROUPS_TOPIC.to_string(), partition };
        let hint = match self.image.partition(&tp).and_then(|p| p.leader) {
            Some(l) => format!("the coordinator is broker {l}"),
            None => "it has no coordinator right now".to_string(),
        };
        WireError::new(
            ErrorCode::NotCoordinator,
            format!(
                "broker {} does not coordinate group {group} ({tp}); {hint}; send FindCoordinator and retry",
                self.id()
            ),
        )
    }

    /// Asks the controller for `__groups` (one request at a time; `TopicExists`
    /// from a race with another broker is fine).
    fn create_groups_topic(&mut self) {
        if self.has_call(|p| matches!(p, Purpose::CreateGroupsTopic)) {
            return;
        }
        let live = self.image.brokers.values().filter(|b| !b.fenced).count().max(1);
        let rf = u32::from(self.config.group_replication_factor).min(self.config.cluster_size).min(live as u32).max(1);
        let config = TopicConfig {
            replication_factor: rf as u16,
            ..TopicConfig::new(GROUPS_TOPIC, self.config.group_coordinator_partitions)
        };
        self.call_controller(ControllerRequest::CreateTopic(config), Purpose::CreateGroupsTopic);
    }

    /// Starts a coordinator for every `__groups` partition this broker leads, ends
    /// those it no longer leads (or leads in a newer epoch), and tells the rest of
    /// partition count changes. Runs after every input once the node is quiet.
    pub(super) fn sync_coordinators(&mut self) {
        let mut led: BTreeMap<PartitionId, LeaderEpoch> = BTreeMap::new();
        if self.session.caught_up {
            if let Some(t) = self.image.topics.get(GROUPS_TOPIC) {
                for i in 0..t.partitions.len() as u32 {
                    let tp = TopicPartition::new(GROUPS_TOPIC, i);
                    if let Some(s) = self.slots.get(&tp).filter(|s| s.replica.is_leader()) {
                        led.insert(PartitionId(i), s.replica.leader_epoch);
                    }
                }
            }
        }
        let stale: Vec<PartitionId> =
            self.coordinators.iter().filter(|(p, c)| led.get(p) != Some(&c.epoch())).map(|(p, _)| *p).collect();
        for p in stale {
            if let Some(c) = self.coordinators.get_mut(&p) {
                c.resign(&format!(
                    "broker {} no longer coordinates {GROUPS_TOPIC}/{p}; send FindCoordinator and rejoin",
                    self.config.node_id
                ));
            }
            self.drain_coordinator(p);
            if let Some(c) = self.coordinators.remove(&p) {
                self.coverage.add(c.coverage());
                self.coverage.hit(crate::coverage::Mark::CoordinatorMoved);
            }
        }
        let metadata_moved = self.image.applied != self.coordinator_topics_applied;
        if metadata_moved || led.keys().any(|p| !self.coordinators.contains_key(p)) {
            self.coordinator_topics_applied = self.image.applied;
            let topics: BTreeMap<String, u32> =
                self.image.topics.iter().map(|(n, t)| (n.clone(), t.partitions.len() as u32)).collect();
            let now = self.now;
            for (p, epoch) in led {
                match self.coordinators.get_mut(&p) {
                    Some(c) if metadata_moved => c.handle(now, CoordinatorInput::Topics(topics.clone())),
                    Some(_) => {}
                    None => {
                        let c = Coordinator::new(p, epoch, self.config.groups.clone(), topics.clone(), now);
                        self.coordinators.insert(p, c);
                    }
                }
                self.drain_coordinator(p);
            }
        }
    }

    pub(super) fn coordinators_tick(&mut self) {
        let now = self.now;
        let due: Vec<PartitionId> = self
            .coordinators
            .iter()
            .filter(|(_, c)| c.poll_timeout().is_some_and(|t| t <= now))
            .map(|(p, _)| *p)
            .collect();
        for p in due {
            if let Some(c) = self.coordinators.get_mut(&p) {
                c.handle(now, CoordinatorInput::Timeout);
            }
            self.drain_coordinator(p);
        }
    }

    pub(super) fn coordinators_timeout(&self) -> Option<crate::time::Instant> {
        self.coordinators.values().filter_map(Coordinator::poll_timeout).min()
    }

    fn drain_coordinator(&mut self, p: PartitionId) {
        let Some(c) = self.coordinators.get_mut(&p) else { return };
        let outputs: Vec<CoordinatorOutput> = std::iter::from_fn(|| c.poll_output()).collect();
        for o in outputs {
            match o {
                CoordinatorOutput::Reply { to, correlation, body } => self.reply(to, correlation, body),
                CoordinatorOutput::Rebalanced { group, generation, members, partitions } => {
                    self.event(Event::GroupRebalanced { group, generation, members, partitions })
                }
            }
        }
    }

    /// The coordinators' own invariants, and that each runs on a partition this
    /// broker leads in the coordinator's epoch.
    pub(super) fn check_coordinators(&self) {
        for (p, c) in &self.coordinators {
            c.check_invariants();
            let tp = TopicPartition::new(GROUPS_TOPIC, p.0);
            let slot = self.slots.get(&tp).expect("a coordinator without its partition");
            assert!(slot.replica.is_leader(), "{tp}: a coordinator on a broker that does not lead it");
            assert_eq!(slot.replica.leader_epoch, c.epoch(), "{tp}: a coordinator from an older epoch");
        }
    }
}
