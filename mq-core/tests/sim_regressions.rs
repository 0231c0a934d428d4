//! Regressions found by the simulator (mq-sim), one test per seed's bug, named
//! after the behaviour that must hold.

mod support;

use mq_core::harness::Harness;
use mq_core::wire::{Acks, RequestBody, ResponseBody, TopicConfig};
use mq_core::{Duration, Event, LeaderEpoch, NodeId, Offset, PartitionId, TopicPartition};
use support::{log_values, ok, values, CLIENT};

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

/// mq-sim seed 443 (liveness): a follower whose last epoch retention removed from
/// the leader (every record of epoch 1 gone, the leader's log starting where epoch
/// 2 does) fetches at the leader's log start with `last_fetched_epoch` 1. It must
/// not be answered a divergence to that same offset forever: it catches up and
/// rejoins the ISR. (The leader, keeping no epoch at or before 1, answers with
/// its log start, and the follower empties its log there: what it held below
/// cannot be checked, see `kip279_a_follower_does_not_keep_a_diverging_record_below_the_leaders_log_start`
/// in tests/kip101_kip279.rs.)
#[test]
fn a_follower_whose_last_epoch_retention_removed_catches_up_and_rejoins_the_isr() {
    let mut h = Harness::new(3, 443, |c| c);
    h.wait_ready();
    let config = TopicConfig {
        replication_factor: 2,
        min_insync_replicas: 1,
        retention_time: Some(Duration::from_secs(60)),
        ..TopicConfig::new("t", 1)
    };
    let c = h.request(CLIENT, 1, RequestBody::CreateTopic(config));
    h.advance(Duration::from_millis(500));
    assert_eq!(ok(&mut h, c), ResponseBody::TopicCreated);
    let produce = |h: &mut Harness, to: u32, vals: &[&str]| {
        let body =
            RequestBody::Produce { topic: "t".into(), partition: PartitionId(0), acks: Acks::All, batch: values(vals) };
        let c = h.request(CLIENT, to, body);
        h.advance(Duration::from_millis(500));
        match ok(h, c) {
            ResponseBody::Produced { base_offset, .. } => base_offset,
            other => panic!("expected Produced, got {other:?}"),
        }
    };
    // Replicas [1, 2] (placement starts at the first broker): 1 leads epoch 1.
    let replicas = h.node(1).replica(&tp()).expect("a replica on n1").replicas.clone();
    assert_eq!(replicas, vec![NodeId(1), NodeId(2)]);
    assert!(h.node(1).replica(&tp()).is_some_and(|r| r.is_leader()));
    produce(&mut h, 1, &["e1-a", "e1-b"]);
    h.advance(Duration::from_secs(1));
    assert_eq!(log_values(&h, 2, &tp()), vec!["e1-a", "e1-b"], "n2 replicated epoch 1");
    // n1 stops with all of epoch 1; n2 leads epoch 2 alone.
    h.crash(1);
    h.advance(Duration::from_secs(40));
    let r2 = h.node(2).replica(&tp()).expect("a replica on n2");
    assert!(r2.is_leader() && r2.leader_epoch == LeaderEpoch(2), "n2 leads epoch 2: {:?}", r2.leader_epoch);
    let epoch2_start = produce(&mut h, 2, &["e2-a"]);
    assert_eq!(epoch2_start, Offset(2));
    // Retention removes every record of epoch 1 from n2, none of epoch 2.
    h.advance(Duration::from_secs(25));
    let log2 = h.node(2).log(&tp()).expect("n2 log");
    assert_eq!(log2.log_start(), epoch2_start, "retention removed epoch 1 exactly");
    // n1 returns holding epoch 1 up to n2's log start and fetches from there.
    assert_eq!(h.store(1).logs[&tp()].log_end(), epoch2_start, "n1 holds epoch 1 only");
    h.restart(1);
    h.advance(Duration::from_secs(20));
    // (Its own retention may since have removed epoch 1 too.)
    assert_eq!(log_values(&h, 1, &tp()).last().map(String::as_str), Some("e2-a"), "n1 caught up with epoch 2");
    assert_eq!(h.node(1).log(&tp()).map(|l| l.log_end()), Some(Offset(3)));
    let r2 = h.node(2).replica(&tp()).expect("a replica on n2");
    assert_eq!(r2.isr, vec![NodeId(1), NodeId(2)], "n1 is back in the ISR");
}
