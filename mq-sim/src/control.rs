//! Control-plane checks (docs/invariants.md): what clients see of metadata
//! (`client_metadata_monotonic`) and which broker incarnations the committed
//! metadata treats as live (`fenced_not_live`). The [`Checker`](crate::checker::Checker)
//! owns one [`ControlChecker`] and feeds it every committed metadata entry, in
//! log order; the simulator feeds it the admin's confirmed requests and the
//! clients' leader tables.

use mq_core::controller::MetadataRecord;
use mq_core::security::acl::Grant;
use mq_core::wire::RequestBody;
use mq_core::{BrokerEpoch, LeaderEpoch, NodeId, TopicPartition};
use std::collections::{BTreeMap, BTreeSet};

/// The control-plane state the committed metadata log describes, and what
/// clients were shown.
#[derive(Clone, Debug, Default)]
pub struct ControlChecker {
    /// Every registered broker's current incarnation and whether it is fenced, as
    /// the committed metadata applies them (`MetadataImage::apply`'s rules: a
    /// registration starts fenced; fencing and unfencing name the incarnation).
    brokers: BTreeMap<NodeId, (BrokerEpoch, bool)>,
    /// Each partition's ISR in its last committed change.
    isr: BTreeMap<TopicPartition, Vec<NodeId>>,
    /// ISR members that were not live when a partition's first election put the
    /// whole replica set in its ISR; exempt until they leave it or are live.
    first_isr: BTreeSet<(TopicPartition, NodeId)>,
    /// Per (client, partition): the newest leader epoch the client followed.
    client_epochs: BTreeMap<(u64, TopicPartition), LeaderEpoch>,
    /// Admin requests the cluster confirmed (topics, principals, grants).
    confirmed: Vec<RequestBody>,
}

impl ControlChecker {
    fn live(&self, b: NodeId) -> bool {
        self.brokers.get(&b).is_some_and(|(_, fenced)| !fenced)
    }

    fn forget_topic(&mut self, topic: &str) {
        self.isr.retain(|tp, _| tp.topic != topic);
        self.first_isr.retain(|(tp, _)| tp.topic != topic);
    }

    fn describe(&self, b: NodeId) -> String {
        match self.brokers.get(&b) {
            Some((epoch, true)) => format!("n{b} (incarnation {epoch}, fenced)"),
            Some((epoch, false)) => format!("n{b} (incarnation {epoch})"),
            None => format!("n{b} (never registered)"),
        }
    }

    /// Applies committed metadata entry `index`; describes a broken
    /// `fenced_not_live`: a committed partition change whose leader is not a live
    /// (registered, unfenced, current) incarnation, or whose ISR holds a broker
    /// that is not live, except the last ISR member kept in a leaderless ISR and
    /// the replica set a partition's first election takes as its ISR.
    pub fn on_record(&mut self, index: u64, record: &MetadataRecord) -> Option<String> {
        match record {
            MetadataRecord::RegisterBroker { broker, broker_epoch } => {
                self.brokers.insert(*broker, (*broker_epoch, true));
            }
            MetadataRecord::FenceBroker { broker, broker_epoch } => {
                if let Some(b) = self.brokers.get_mut(broker).filter(|b| b.0 == *broker_epoch) {
                    b.1 = true;
                }
            }
            MetadataRecord::UnfenceBroker { broker, broker_epoch } => {
                if let Some(b) = self.brokers.get_mut(broker).filter(|b| b.0 == *broker_epoch) {
                    b.1 = false;
                    let back = *broker;
                    self.first_isr.retain(|(_, m)| *m != back);
                }
            }
            MetadataRecord::CreateTopic { config, .. } => self.forget_topic(&config.name),
            MetadataRecord::DeleteTopic { topic } => self.forget_topic(topic),
            MetadataRecord::PartitionChange { tp, leader, leader_epoch, isr, .. } => {
                let prev = self.isr.get(tp).cloned().unwrap_or_default();
                let first = prev.is_empty();
                let mut found = None;
                if let Some(l) = leader.filter(|l| !self.live(*l)) {
                    found = Some(format!(
                        "committed metadata entry {index} makes {} the leader of {tp} in leader epoch {leader_epoch}",
                        self.describe(l)
                    ));
                }
                for m in isr {
                    if self.live(*m) {
                        self.first_isr.remove(&(tp.clone(), *m));
                        continue;
                    }
                    let kept_last = prev.contains(m) && leader.is_none() && isr.len() == 1;
                    let from_first = prev.contains(m) && self.first_isr.contains(&(tp.clone(), *m));
                    if first {
                        self.first_isr.insert((tp.clone(), *m));
                    } else if !kept_last && !from_first && found.is_none() {
                        let how = if prev.contains(m) { "keeps" } else { "adds" };
                        found = Some(format!(
                            "committed metadata entry {index} {how} {} in the ISR {isr:?} of {tp} (leader {leader:?}, epoch {leader_epoch})",
                            self.describe(*m)
                        ));
                    }
                }
                self.first_isr.retain(|(t, m)| t != tp || isr.contains(m));
                self.isr.insert(tp.clone(), isr.clone());
                return found;
            }
            _ => {}
        }
        None
    }

    /// Client `client` follows `leader` for `tp`, told in `epoch`; describes a
    /// broken `client_metadata_monotonic` if the epoch went back.
    pub fn on_client_view(&mut self, client: u64, tp: &TopicPartition, epoch: LeaderEpoch) -> Option<String> {
        let last = self.client_epochs.entry((client, tp.clone())).or_insert(epoch);
        if epoch < *last {
            let what = format!("c{client} follows {tp} at leader epoch {epoch} after it was told epoch {last}");
            return Some(what);
        }
        *last = epoch;
        None
    }

    /// The admin's `request` was confirmed (created, or already there).
    pub fn on_admin_confirmed(&mut self, request: RequestBody) {
        self.confirmed.push(request);
    }

    /// The first confirmed admin request whose effect is not in `committed` (the
    /// committed metadata log, in order), described.
    pub fn missing_admin_effect<'a>(&self, committed: impl Iterator<Item = &'a MetadataRecord>) -> Option<String> {
        let mut topics = BTreeSet::new();
        let mut principals = BTreeSet::new();
        let mut grants: BTreeSet<Grant> = BTreeSet::new();
        for r in committed {
            match r {
                MetadataRecord::CreateTopic { config, .. } => {
                    topics.insert(config.name.clone());
                }
                MetadataRecord::DeleteTopic { topic } => {
                    topics.remove(topic);
                }
                MetadataRecord::PutPrincipal { app_key, .. } => {
                    principals.insert(app_key.clone());
                }
                MetadataRecord::DeletePrincipal { app_key } => {
                    principals.remove(app_key);
                    grants.retain(|g| g.principal != *app_key);
                }
                MetadataRecord::PutAcl(g) => {
                    grants.insert(g.clone());
                }
                MetadataRecord::DeleteAcl(g) => {
                    grants.remove(g);
                }
                _ => {}
            }
        }
        self.confirmed.iter().find_map(|req| match req {
            RequestBody::CreateTopic(tc) if !topics.contains(&tc.name) => {
                Some(format!("the creation of topic {} was confirmed to the admin", tc.name))
            }
            RequestBody::PutPrincipal { app_key, .. } if !principals.contains(app_key) => {
                Some(format!("principal {app_key:?} was confirmed to the admin"))
            }
            RequestBody::PutAcl(g) if !grants.contains(g) => Some(format!("grant {g:?} was confirmed to the admin")),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mq_core::wire::TopicConfig;

    fn change(tp: &TopicPartition, leader: Option<u32>, epoch: u32, isr: &[u32]) -> MetadataRecord {
        MetadataRecord::PartitionChange {
            tp: tp.clone(),
            leader: leader.map(NodeId),
            leader_epoch: LeaderEpoch(epoch),
            isr: isr.iter().copied().map(NodeId).collect(),
            partition_epoch: epoch,
        }
    }

    fn setup() -> (ControlChecker, TopicPartition) {
        let mut c = ControlChecker::default();
        for (b, e) in [(1, 1), (2, 2), (3, 3)] {
            let (broker, broker_epoch) = (NodeId(b), BrokerEpoch(e));
            assert!(c.on_record(0, &MetadataRecord::RegisterBroker { broker, broker_epoch }).is_none());
            assert!(c.on_record(0, &MetadataRecord::UnfenceBroker { broker, broker_epoch }).is_none());
        }
        let config = TopicConfig::new("t", 1);
        let assignment = vec![vec![NodeId(1), NodeId(2), NodeId(3)]];
        assert!(c.on_record(0, &MetadataRecord::CreateTopic { config, assignment }).is_none());
        (c, TopicPartition::new("t", 0))
    }

    #[test]
    fn a_fenced_broker_may_stay_only_as_the_last_member_of_a_leaderless_isr() {
        let (mut c, tp) = setup();
        assert!(c.on_record(1, &change(&tp, Some(1), 1, &[1, 2, 3])).is_none());
        let fence = MetadataRecord::FenceBroker { broker: NodeId(3), broker_epoch: BrokerEpoch(3) };
        assert!(c.on_record(2, &fence).is_none());
        assert!(c.on_record(3, &change(&tp, Some(1), 1, &[1, 2])).is_none());
        // The controller takes the fenced broker back into the ISR: caught.
        let what = c.on_record(4, &change(&tp, Some(1), 1, &[1, 2, 3])).expect("a fenced joiner");
        assert!(what.contains("adds n3"), "{what}");
        // A superseded incarnation (re-registered, not yet unfenced) cannot lead.
        let (mut c, tp) = setup();
        assert!(c.on_record(1, &change(&tp, Some(1), 1, &[1, 2, 3])).is_none());
        let again = MetadataRecord::RegisterBroker { broker: NodeId(2), broker_epoch: BrokerEpoch(4) };
        assert!(c.on_record(2, &change(&tp, Some(1), 1, &[1, 3])).is_none());
        assert!(c.on_record(3, &again).is_none());
        assert!(c.on_record(4, &change(&tp, Some(2), 2, &[1, 2, 3])).expect("a fenced leader").contains("leader"));
        // The last ISR member kept while leaderless is no live replica, but legal.
        let (mut c, tp) = setup();
        assert!(c.on_record(1, &change(&tp, Some(1), 1, &[1])).is_none());
        let fence = MetadataRecord::FenceBroker { broker: NodeId(1), broker_epoch: BrokerEpoch(1) };
        assert!(c.on_record(2, &fence).is_none());
        assert!(c.on_record(3, &change(&tp, None, 2, &[1])).is_none());
    }

    #[test]
    fn a_client_epoch_going_back_and_a_confirmed_topic_missing_are_caught() {
        let mut c = ControlChecker::default();
        let tp = TopicPartition::new("t", 0);
        assert!(c.on_client_view(7, &tp, LeaderEpoch(3)).is_none());
        assert!(c.on_client_view(7, &tp, LeaderEpoch(3)).is_none());
        assert!(c.on_client_view(8, &tp, LeaderEpoch(1)).is_none(), "another client");
        assert!(c.on_client_view(7, &tp, LeaderEpoch(2)).is_some());
        c.on_admin_confirmed(RequestBody::CreateTopic(TopicConfig::new("t", 1)));
        let created =
            MetadataRecord::CreateTopic { config: TopicConfig::new("t", 1), assignment: vec![vec![NodeId(1)]] };
        assert!(c.missing_admin_effect([&created].into_iter()).is_none());
        assert!(c.missing_admin_effect(std::iter::empty()).is_some());
    }
}
