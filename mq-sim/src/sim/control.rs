//! What clients see of metadata (docs/invariants.md, `client_metadata_monotonic`):
//! before a client sends anything, the leader table it routes by is read and
//! judged by the checker.

use super::{Role, Sim};
use mq_core::{LeaderEpoch, NodeId, TopicPartition};

impl Sim {
    /// Judges the leaders client `c` follows now: per partition, the leader epoch
    /// never goes back and a followed leader is the committed one of its epoch.
    pub(super) fn check_client_leaders(&mut self, c: usize) {
        let Some(slot) = self.clients.get(c) else { return };
        let client = slot.id.0;
        let view: Vec<(TopicPartition, Option<NodeId>, LeaderEpoch)> = match &slot.role {
            Role::Producer { p, .. } => p.leader_epochs().map(|(tp, l, e)| (tp.clone(), l, e)).collect(),
            Role::Member(m) => m.gc.leader_epochs().map(|(tp, l, e)| (tp.clone(), l, e)).collect(),
            Role::Consumer(consumer) | Role::Reader(consumer) => {
                let (followed, seen) = consumer.leader_epoch();
                let tp = consumer.config().tp.clone();
                vec![(tp, followed.map(|(l, _)| l), followed.map_or(seen, |(_, e)| e))]
            }
            Role::Admin(_) | Role::Gone | Role::Adversary(_) => return,
        };
        for (tp, leader, epoch) in view {
            self.checker.on_client_leader(client, &tp, leader, epoch);
        }
    }
}
