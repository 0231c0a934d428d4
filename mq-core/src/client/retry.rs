//! Pieces every client machine shares: broker rotation for requests any broker
//! answers, the leader table built from `Metadata` answers, and exponential
//! backoff with jitter drawn from the client's seeded stream (DESIGN.md section 2).

use crate::ids::{LeaderEpoch, NodeId, TopicPartition};
use crate::rng::Rng;
use crate::time::Duration;
use crate::wire::TopicInfo;
use rand::Rng as _;
use std::collections::BTreeMap;

/// `d` scaled by a factor drawn from [0.5, 1.0], so that clients that failed
/// together do not retry together.
pub(crate) fn jittered(rng: &mut Rng, d: Duration) -> Duration {
    let n = d.as_nanos().max(1);
    Duration::from_nanos(n / 2 + rng.random_range(0..=n / 2))
}

/// The wait before attempt `failures + 1`: `first` doubled per failure after the
/// first, capped at `max`, jittered.
pub(crate) fn backoff(rng: &mut Rng, first: Duration, max: Duration, failures: u32) -> Duration {
    let exp = first.as_nanos().saturating_mul(1u64 << failures.saturating_sub(1).min(20));
    jittered(rng, Duration::from_nanos(exp.min(max.as_nanos())))
}

/// Round robin over the configured brokers, for requests any broker answers
/// (`Metadata`, `InitProducer`, `FindCoordinator`).
#[derive(Clone, Debug)]
pub(crate) struct BrokerRotation {
    brokers: Vec<NodeId>,
    next: usize,
}

impl BrokerRotation {
    /// Starts at a broker drawn from `rng`. `brokers` is not empty (validated).
    pub(crate) fn new(brokers: &[NodeId], rng: &mut Rng) -> Self {
        let next = rng.random_range(0..brokers.len());
        BrokerRotation { brokers: brokers.to_vec(), next }
    }

    /// The next broker to ask.
    pub(crate) fn next(&mut self) -> NodeId {
        let broker = self.brokers[self.next % self.brokers.len()];
        self.next = (self.next + 1) % self.brokers.len();
        broker
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LeaderInfo {
    leader: Option<NodeId>,
    epoch: LeaderEpoch,
}

/// Partition leaders as the newest metadata told them. An answer from a broker
/// with older metadata (a lower leader epoch) never replaces a newer one.
#[derive(Clone, Debug, Default)]
pub(crate) struct Leaders(BTreeMap<TopicPartition, LeaderInfo>);

impl Leaders {
    /// The leader of `tp`, if known.
    pub(crate) fn get(&self, tp: &TopicPartition) -> Option<NodeId> {
        self.0.get(tp).and_then(|l| l.leader)
    }

    /// Every partition known, with its leader (if not forgotten) and the newest
    /// leader epoch metadata named for it.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&TopicPartition, Option<NodeId>, LeaderEpoch)> + '_ {
        self.0.iter().map(|(tp, l)| (tp, l.leader, l.epoch))
    }

    /// Takes the leaders of a `Metadata` answer's topics.
    pub(crate) fn apply(&mut self, topics: &[TopicInfo]) {
        for t in topics {
            for p in &t.partitions {
                let tp = TopicPartition { topic: t.config.name.clone(), partition: p.partition };
                let known = self.0.get(&tp);
                if known.is_none_or(|k| p.leader_epoch >= k.epoch) {
                    self.0.insert(tp, LeaderInfo { leader: p.leader, epoch: p.leader_epoch });
                }
            }
        }
    }

    /// Forgets the leader of `tp` if it is `bad` (or whoever it is, for `None`):
    /// the next request for it refreshes metadata first. The epoch is kept, so
    /// older metadata still cannot bring the stale leader back.
    pub(crate) fn forget(&mut self, tp: &TopicPartition, bad: Option<NodeId>) {
        if let Some(info) = self.0.get_mut(tp) {
            if bad.is_none() || info.leader == bad {
                info.leader = None;
            }
        }
    }
}
