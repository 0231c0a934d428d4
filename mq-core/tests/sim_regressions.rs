//! Regressions found by the simulator (mq-sim), one test per seed's bug, named
//! after the behaviour that must hold.

mod support;

use mq_core::harness::Harness;
use mq_core::wire::{RequestBody, ResponseBody, TopicConfig};
use mq_core::{Duration, Event, LeaderEpoch, NodeId, TopicPartition};
use support::{ok, CLIENT};

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

/// mq-sim seed 397 (log_matching): a broker that restarts replays the committed
/// metadata log; it must not become leader, nor report a HW, in a leader epoch that
/// ended while it was down.
#[test]
fn restarted_broker_never_leads_an_epoch_that_ended_while_it_was_down() {
    let mut h = Harness::new(3, 397, |c| c);
    h.wait_ready();
    let config = TopicConfig { replication_factor: 3, min_insync_replicas: 1, ..TopicConfig::new("t", 1) };
    let c = h.request(CLIENT, 1, RequestBody::CreateTopic(config));
    h.advance(Duration::from_millis(500));
    assert_eq!(ok(&mut h, c), ResponseBody::TopicCreated);
    let first =
        h.running().into_iter().find(|id| h.node(*id).replica(&tp()).is_some_and(|r| r.is_leader())).expect("a leader");
    h.crash(first);
    // Long enough for the controller to fence it and elect another leader.
    h.advance(Duration::from_secs(8));
    let epoch_now = h.running().iter().filter_map(|id| h.node(*id).replica(&tp())).map(|r| r.leader_epoch).max();
    assert!(epoch_now > Some(LeaderEpoch(1)), "a new leader epoch after the crash");
    let before = h.events().len();
    h.restart(first);
    h.advance(Duration::from_secs(5));
    for (_, node, e) in &h.events()[before..] {
        match e {
            Event::BecameLeader { tp: t, leader_epoch, .. } if *node == NodeId(first) && *t == tp() => {
                assert!(*leader_epoch > LeaderEpoch(1), "n{first} led {t} again in ended epoch {leader_epoch}");
            }
            Event::HighWatermark { tp: t, leader_epoch, .. } if *node == NodeId(first) && *t == tp() => {
                assert!(*leader_epoch > LeaderEpoch(1), "n{first} reported a HW in ended epoch {leader_epoch}");
            }
            _ => {}
        }
    }
}
