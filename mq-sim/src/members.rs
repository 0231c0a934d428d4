//! Consumer-group members of the workload: each is the real client machine
//! (`mq_core::client::GroupConsumer`) plus a behaviour drawn per record from the
//! seed's `members` stream: ack (most records), nack with a delay (consume later),
//! reject (to the dead-letter topic) or forget (never answer: the lease expires),
//! after a processing delay per batch.

use crate::options::{GroupOptions, Options};
use mq_core::client::{GroupConsumer, GroupConsumerConfig};
use mq_core::wire::GroupSettings;
use mq_core::{Duration, Instant, NodeId, Offset, Rng, Seed, TopicPartition};
use rand::Rng as _;

/// What a member does with one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Done.
    Ack,
    /// Consume later, after this delay.
    Nack(Duration),
    /// Failed: dead-letter it.
    Reject,
    /// Never answer.
    Forget,
}

/// One group member of the run.
pub struct Member {
    /// The client machine.
    pub gc: Box<GroupConsumer>,
    /// Index of its group in the options.
    pub group: usize,
    /// Index within the group.
    pub index: usize,
    /// Incarnations so far (a crash replaces the machine).
    pub incarnation: u64,
    /// Records taken from the machine, with what to do, waiting for the processing
    /// delay to pass.
    pub todo: Vec<(TopicPartition, Offset, Action)>,
    /// When the current batch is processed (a `MemberTick` is scheduled then).
    pub busy_until: Option<Instant>,
}

/// The group's name in the run.
pub fn group_name(g: usize) -> String {
    format!("g{g}")
}

/// The settings every member of group `g` joins with.
pub fn group_settings(g: &GroupOptions) -> GroupSettings {
    GroupSettings {
        filter: if g.filter_blue { vec!["blue".to_string()] } else { Vec::new() },
        ack_timeout: Duration::from_millis(g.ack_timeout_ms),
        max_deliveries: g.max_deliveries,
        ..GroupSettings::default()
    }
}

impl Member {
    /// A fresh machine for member `index` of group `group` of the run with options
    /// `o` (incarnation `incarnation`): it consumes every topic of the run.
    pub fn new(seed: u64, o: &Options, group: usize, index: usize, incarnation: u64) -> Member {
        let opts = &o.groups[group];
        let brokers: Vec<NodeId> = (1..=o.cluster_size).map(NodeId).collect();
        let topics: Vec<String> = (0..o.topics).map(|t| format!("t{t}")).collect();
        let request_timeout = Duration::from_millis(o.request_timeout_ms);
        let mut config = GroupConsumerConfig::new(brokers.iter().copied(), group_name(group), topics.iter().cloned())
            .mode(opts.mode)
            .settings(group_settings(opts))
            .weight(opts.weights[index])
            .session_timeout(Duration::from_millis(opts.session_ms))
            .request_timeout(request_timeout)
            // The coordinator holds a join up to the group's session timeout.
            .join_timeout(o.knobs.member_join_timeout(opts.session_ms))
            .retry_backoff(
                Duration::from_millis(o.knobs.member_retry_backoff_ms),
                Duration::from_millis(o.knobs.member_retry_backoff_max_ms),
            )
            .max_pending_acks(o.knobs.member_max_pending_acks)
            .max_buffered_records(o.knobs.member_max_buffered_records);
        if o.auth {
            let key = crate::adversary::member_key(&group_name(group));
            config = config.credentials(crate::adversary::credentials(seed, &key));
        }
        config = match opts.push_prefetch {
            Some(prefetch) => config.push(opts.max_records, prefetch),
            None => config.pull(opts.max_records, Duration::from_millis(o.knobs.member_pull_max_wait_ms)),
        };
        let seed = Seed(seed).child("member", (group as u64) << 32 | (index as u64) << 16 | incarnation).0;
        let gc = GroupConsumer::new(config, seed).expect("the simulator draws valid group consumer settings");
        Member { gc: Box::new(gc), group, index, incarnation, todo: Vec::new(), busy_until: None }
    }

    /// Draws what to do with the next record taken.
    pub fn decide(rng: &mut Rng, opts: &GroupOptions) -> Action {
        let x: f64 = rng.random();
        if x < opts.forget_prob {
            Action::Forget
        } else if x < opts.forget_prob + opts.reject_prob {
            Action::Reject
        } else if x < opts.forget_prob + opts.reject_prob + opts.nack_prob {
            Action::Nack(Duration::from_millis(rng.random_range(1..=300)))
        } else {
            Action::Ack
        }
    }
}
