//! Tests of the controller's decisions against DESIGN.md sections 4 and 5.

use super::image::MetadataImage;
use super::metadata::MetadataRecord;
use super::quorum::*;
use crate::ids::{BrokerEpoch, LeaderEpoch, NodeId, TopicPartition};
use crate::time::{Duration, Instant};
use crate::wire::{ErrorCode, TopicConfig};

struct Ctl {
    c: QuorumController,
    index: u64,
    now: Instant,
    /// Every record committed so far, in order.
    log: Vec<MetadataRecord>,
}

impl Ctl {
    fn new() -> Self {
        let now = Instant::from_millis(1);
        Ctl {
            c: QuorumController::activate(ControllerConfig::default(), &MetadataImage::default(), now),
            index: 0,
            now,
            log: Vec::new(),
        }
    }

    fn run(&mut self, req: ControllerRequest) -> Result<Vec<MetadataRecord>, crate::wire::WireError> {
        let records = self.c.handle(self.now, req)?;
        self.commit(&records);
        Ok(records)
    }

    fn commit(&mut self, records: &[MetadataRecord]) {
        for r in records {
            self.index += 1;
            self.c.proposed(self.index, r);
            self.log.push(r.clone());
        }
    }

    /// Registers and unfences brokers `1..=n`.
    fn brokers(&mut self, n: u32) {
        for b in 1..=n {
            self.run(ControllerRequest::RegisterBroker { broker: NodeId(b) }).unwrap();
            self.heartbeat(b);
            assert!(self.c.image().is_live(NodeId(b)));
        }
    }

    fn epoch(&self, b: u32) -> BrokerEpoch {
        self.c.image().brokers[&NodeId(b)].epoch
    }

    fn heartbeat_all_but(&mut self, silent: &[u32]) {
        let ids: Vec<u32> = self.c.image().brokers.keys().map(|b| b.0).filter(|b| !silent.contains(b)).collect();
        for b in ids {
            self.heartbeat(b);
        }
    }

    /// Broker `b` heartbeats with its current epoch, caught up on metadata.
    fn heartbeat(&mut self, b: u32) {
        let epoch = self.epoch(b);
        self.run(ControllerRequest::Heartbeat { broker: NodeId(b), broker_epoch: epoch, metadata_applied: self.index })
            .unwrap();
    }

    /// Advances time past a session timeout, with everyone but `silent` heartbeating.
    fn expire(&mut self, silent: &[u32]) {
        self.now += Duration::from_secs(5);
        self.heartbeat_all_but(silent);
        self.now += Duration::from_secs(5);
        self.heartbeat_all_but(silent);
        let records = self.c.tick(self.now);
        self.commit(&records);
    }

    fn create(&mut self, config: TopicConfig) {
        self.run(ControllerRequest::CreateTopic(config)).unwrap();
    }

    /// Three live brokers and topic `t` with one partition replicated on all
    /// three: the controller, the partition's state, its leader and the others.
    fn one_replicated_partition() -> (Ctl, super::image::PartitionImage, NodeId, Vec<NodeId>) {
        let mut ctl = Ctl::new();
        ctl.brokers(3);
        ctl.create(topic("t", 1, 3));
        let p = ctl.part("t", 0);
        let leader = p.leader.unwrap();
        let others: Vec<NodeId> = p.replicas.iter().copied().filter(|r| *r != leader).collect();
        (ctl, p, leader, others)
    }

    fn part(&self, topic: &str, p: u32) -> super::image::PartitionImage {
        self.c.image().partition(&TopicPartition::new(topic, p)).unwrap().clone()
    }
}

fn topic(name: &str, partitions: u32, rf: u16) -> TopicConfig {
    TopicConfig { replication_factor: rf, min_insync_replicas: 1, ..TopicConfig::new(name, partitions) }
}

#[test]
fn registered_brokers_are_fenced_until_caught_up_and_get_increasing_epochs() {
    let mut ctl = Ctl::new();
    ctl.run(ControllerRequest::RegisterBroker { broker: NodeId(1) }).unwrap();
    let first = ctl.epoch(1);
    assert!(!ctl.c.image().is_live(NodeId(1)));
    let registered_at = ctl.index;
    let hb =
        |applied| ControllerRequest::Heartbeat { broker: NodeId(1), broker_epoch: first, metadata_applied: applied };
    assert_eq!(ctl.run(hb(registered_at - 1)).unwrap(), vec![], "not caught up: stays fenced");
    assert!(!ctl.c.image().is_live(NodeId(1)));
    ctl.run(hb(registered_at)).unwrap();
    assert!(ctl.c.image().is_live(NodeId(1)));
    ctl.run(ControllerRequest::RegisterBroker { broker: NodeId(1) }).unwrap();
    assert!(ctl.epoch(1) > first);
    let stale = ctl.run(hb(ctl.index)).unwrap_err();
    assert_eq!(stale.code, ErrorCode::FencedEpoch, "{stale}");
}

#[test]
fn topics_spread_replicas_and_leaders_across_live_brokers() {
    let mut ctl = Ctl::new();
    ctl.brokers(3);
    ctl.create(topic("t", 3, 2));
    let leaders: Vec<NodeId> = (0..3).map(|p| ctl.part("t", p).leader.unwrap()).collect();
    let mut distinct = leaders.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "each broker leads one partition: {leaders:?}");
    for p in 0..3 {
        let part = ctl.part("t", p);
        assert_eq!(part.replicas.len(), 2);
        assert_ne!(part.replicas[0], part.replicas[1]);
        assert_eq!(part.isr, part.replicas);
        assert_eq!(part.leader_epoch, LeaderEpoch(1));
    }
    let err = ctl.run(ControllerRequest::CreateTopic(topic("big", 1, 4))).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidConfig);
    assert!(err.message.contains("3 are live"), "{err}");
}

/// Found by the `node` fuzz target: a CreateTopic forwarded to the controller
/// with billions of partitions made it allocate the assignment (about 100 GB)
/// before anything refused it. The controller applies the partition bound itself.
#[test]
fn a_topic_with_more_partitions_than_the_bound_is_refused_before_any_allocation() {
    let mut ctl = Ctl::new();
    ctl.brokers(1);
    let before = ctl.log.len();
    let err = ctl.run(ControllerRequest::CreateTopic(topic("huge", u32::MAX, 1))).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidConfig);
    assert!(err.message.contains("the most is 10000"), "{err}");
    assert_eq!(ctl.log.len(), before, "nothing committed");
    ctl.create(topic("fits", ControllerConfig::default().max_partitions_per_topic, 1));
    assert_eq!(ctl.c.image().topics["fits"].partitions.len(), 10_000);
}

#[test]
fn a_silent_broker_is_fenced_and_its_partitions_get_a_new_leader_from_the_isr() {
    let mut ctl = Ctl::new();
    ctl.brokers(3);
    ctl.create(topic("t", 1, 3));
    let before = ctl.part("t", 0);
    let old = before.leader.unwrap();
    ctl.expire(&[old.0]);
    assert!(!ctl.c.image().is_live(old));
    let after = ctl.part("t", 0);
    assert!(after.leader.is_some() && after.leader != Some(old));
    assert!(!after.isr.contains(&old));
    assert_eq!(after.leader_epoch, before.leader_epoch.next());
    assert!(after.partition_epoch > before.partition_epoch);
}

#[test]
fn the_last_isr_member_stays_in_the_isr_and_leads_again_when_it_returns() {
    let mut ctl = Ctl::new();
    ctl.brokers(2);
    ctl.create(topic("t", 1, 2));
    let p = ctl.part("t", 0);
    let leader = p.leader.unwrap();
    let follower = *p.replicas.iter().find(|r| **r != leader).unwrap();
    ctl.expire(&[follower.0]);
    assert_eq!(ctl.part("t", 0).isr, vec![leader]);
    ctl.expire(&[follower.0, leader.0]);
    let p = ctl.part("t", 0);
    assert_eq!(p.leader, None, "the follower is alive but out of sync: no clean leader");
    assert_eq!(p.isr, vec![leader]);
    // The last in-sync replica re-registers and catches up: it leads again.
    ctl.run(ControllerRequest::RegisterBroker { broker: leader }).unwrap();
    let epoch = ctl.epoch(leader.0);
    ctl.run(ControllerRequest::Heartbeat { broker: leader, broker_epoch: epoch, metadata_applied: ctl.index }).unwrap();
    let back = ctl.part("t", 0);
    assert_eq!(back.leader, Some(leader));
    assert!(back.leader_epoch > p.leader_epoch);
}

#[test]
fn unclean_election_picks_an_out_of_sync_replica_only_when_enabled() {
    for unclean in [false, true] {
        let mut ctl = Ctl::new();
        ctl.brokers(2);
        ctl.create(TopicConfig { unclean_leader_election: unclean, ..topic("t", 1, 2) });
        let p = ctl.part("t", 0);
        let leader = p.leader.unwrap();
        let follower = *p.replicas.iter().find(|r| **r != leader).unwrap();
        // Shrink the ISR to the leader alone, then lose the leader.
        ctl.run(ControllerRequest::AlterPartition {
            tp: TopicPartition::new("t", 0),
            leader,
            broker_epoch: ctl.epoch(leader.0),
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: vec![leader],
        })
        .unwrap();
        ctl.expire(&[leader.0]);
        let p = ctl.part("t", 0);
        if unclean {
            assert_eq!(p.leader, Some(follower));
            assert_eq!(p.isr, vec![follower]);
        } else {
            assert_eq!(p.leader, None);
            assert_eq!(p.isr, vec![leader]);
        }
    }
}

#[test]
fn alter_partition_checks_every_epoch() {
    let (mut ctl, p, leader, others) = Ctl::one_replicated_partition();
    let req =
        |leader_epoch, partition_epoch, who: NodeId, isr: Vec<NodeId>, ctl: &Ctl| ControllerRequest::AlterPartition {
            tp: TopicPartition::new("t", 0),
            leader: who,
            broker_epoch: ctl.epoch(who.0),
            leader_epoch,
            partition_epoch,
            isr,
        };
    let le = p.leader_epoch;
    let pe = p.partition_epoch;
    let code = |r: Result<_, crate::wire::WireError>| r.unwrap_err().code;
    assert_eq!(code(ctl.run(req(LeaderEpoch(0), pe, leader, vec![leader], &ctl))), ErrorCode::FencedEpoch);
    assert_eq!(code(ctl.run(req(le.next(), pe, leader, vec![leader], &ctl))), ErrorCode::UnknownEpoch);
    assert_eq!(code(ctl.run(req(le, pe + 7, leader, vec![leader], &ctl))), ErrorCode::FencedEpoch);
    assert_eq!(code(ctl.run(req(le, pe, others[0], vec![others[0]], &ctl))), ErrorCode::NotLeader);
    assert_eq!(code(ctl.run(req(le, pe, leader, vec![others[0]], &ctl))), ErrorCode::InvalidRequest);
    // A valid shrink bumps the partition epoch; the old epoch is then stale.
    ctl.run(req(le, pe, leader, vec![leader, others[0]], &ctl)).unwrap();
    assert_eq!(ctl.part("t", 0).isr.len(), 2);
    assert_eq!(ctl.part("t", 0).partition_epoch, pe + 1);
    assert_eq!(code(ctl.run(req(le, pe, leader, vec![leader], &ctl))), ErrorCode::FencedEpoch);
    // A fenced broker cannot be added back.
    ctl.expire(&[others[1].0]);
    let p = ctl.part("t", 0);
    let back = vec![leader, others[0], others[1]];
    assert_eq!(code(ctl.run(req(p.leader_epoch, p.partition_epoch, leader, back, &ctl))), ErrorCode::InvalidRequest);
}

/// Seed 1406825 at the controller: an ask to add a fenced broker is refused,
/// yet a copy of the very same ask commits once that broker is unfenced with
/// the same broker epoch, so a refusal does not settle the ask (the leader
/// keeps the joiner unsettled). Only a newer partition epoch does: an ask of
/// the unchanged ISR, fenced member or not, commits and bumps it, and the copy
/// is then stale.
#[test]
fn a_refused_isr_ask_may_commit_later_until_a_newer_partition_epoch_stops_it() {
    let (mut ctl, _, leader, others) = Ctl::one_replicated_partition();
    ctl.expire(&[others[1].0]);
    let p = ctl.part("t", 0);
    assert!(p.leader == Some(leader) && !p.isr.contains(&others[1]), "fenced out of the ISR");
    let ask = |isr: Vec<NodeId>, partition_epoch, ctl: &Ctl| ControllerRequest::AlterPartition {
        tp: TopicPartition::new("t", 0),
        leader,
        broker_epoch: ctl.epoch(leader.0),
        leader_epoch: p.leader_epoch,
        partition_epoch,
        isr,
    };
    let mut back = p.isr.clone();
    back.push(others[1]);
    let code = |r: Result<_, crate::wire::WireError>| r.unwrap_err().code;
    assert_eq!(code(ctl.run(ask(back.clone(), p.partition_epoch, &ctl))), ErrorCode::InvalidRequest);
    let epoch = ctl.epoch(others[1].0);
    ctl.heartbeat(others[1].0);
    assert!(ctl.c.image().is_live(others[1]) && ctl.epoch(others[1].0) == epoch, "unfenced, same epoch");
    // The copy of the refused ask commits.
    let mut late = Ctl { c: ctl.c.clone(), index: ctl.index, now: ctl.now, log: ctl.log.clone() };
    late.run(ask(back.clone(), p.partition_epoch, &late)).unwrap();
    assert!(late.part("t", 0).isr.contains(&others[1]));
    // An ask of the unchanged ISR commits first: the copy is stale.
    ctl.run(ask(p.isr.clone(), p.partition_epoch, &ctl)).unwrap();
    assert_eq!(ctl.part("t", 0).partition_epoch, p.partition_epoch + 1);
    assert_eq!(ctl.part("t", 0).isr, p.isr);
    assert_eq!(code(ctl.run(ask(back, p.partition_epoch, &ctl))), ErrorCode::FencedEpoch);
}

#[test]
fn producer_id_blocks_never_overlap() {
    let mut ctl = Ctl::new();
    ctl.brokers(2);
    let mut firsts = Vec::new();
    for b in [1, 2, 1] {
        let epoch = ctl.epoch(b);
        let records =
            ctl.run(ControllerRequest::AllocateProducerIds { broker: NodeId(b), broker_epoch: epoch }).unwrap();
        let [MetadataRecord::AllocateProducerIds { first, count }] = records.as_slice() else { panic!("{records:?}") };
        firsts.push((first.0, *count));
    }
    for w in firsts.windows(2) {
        assert!(w[1].0 >= w[0].0 + w[0].1, "overlapping blocks {firsts:?}");
    }
}

#[test]
fn controlled_shutdown_moves_leadership_to_another_isr_member_and_fences() {
    let mut ctl = Ctl::new();
    ctl.brokers(3);
    ctl.create(topic("t", 3, 3));
    let leading: Vec<u32> = (0..3).filter(|p| ctl.part("t", *p).leader == Some(NodeId(1))).collect();
    assert!(!leading.is_empty());
    let epoch = ctl.epoch(1);
    ctl.run(ControllerRequest::ControlledShutdown { broker: NodeId(1), broker_epoch: epoch }).unwrap();
    assert!(!ctl.c.image().is_live(NodeId(1)));
    for p in 0..3 {
        let part = ctl.part("t", p);
        assert_ne!(part.leader, Some(NodeId(1)), "partition {p} still led by the stopping broker");
        assert!(part.leader.is_some());
        assert!(!part.isr.contains(&NodeId(1)));
    }
    // Asking again is harmless.
    assert_eq!(
        ctl.run(ControllerRequest::ControlledShutdown { broker: NodeId(1), broker_epoch: epoch }).unwrap(),
        vec![]
    );
}

/// Replays `records` on a copy of `image` and checks every partition change the
/// way mq-sim's `election_from_isr` and one-leader-per-epoch checks would: a leader
/// is live and in the ISR it leads with, a new leader gets a new (higher) leader
/// epoch, and each change bumps the partition epoch by one.
fn assert_changes_sound(image: &MetadataImage, records: &[MetadataRecord]) {
    let mut image = image.clone();
    for r in records {
        if let MetadataRecord::PartitionChange { tp, leader, leader_epoch, isr, partition_epoch } = r {
            let before = image.partition(tp).unwrap().clone();
            if let Some(l) = leader {
                assert!(image.is_live(*l), "{tp}: fenced broker {l} elected by {r:?} (before: {before:?})");
                assert!(isr.contains(l), "{tp}: leader {l} outside its ISR in {r:?}");
            }
            if *leader != before.leader {
                assert!(*leader_epoch > before.leader_epoch, "{tp}: leader changed without a new epoch: {r:?}");
            } else {
                assert_eq!(*leader_epoch, before.leader_epoch, "{tp}: {r:?}");
            }
            assert_eq!(*partition_epoch, before.partition_epoch + 1, "{tp}: {r:?} (before: {before:?})");
        }
        image.apply(image.applied + 1, r);
    }
}

/// mq-sim seed 255 (no partition ever led): a topic's `CreateTopic` and its
/// `PartitionChange`s are separate Raft entries; when the controller loses
/// leadership after only `CreateTopic` committed, the next controller must still
/// give each partition its first leader, with the replica set as ISR.
#[test]
fn partitions_whose_creation_a_controller_change_cut_short_get_first_leaders() {
    let mut ctl = Ctl::new();
    ctl.brokers(3);
    let records = ctl.c.handle(ctl.now, ControllerRequest::CreateTopic(topic("t", 3, 2))).unwrap();
    assert!(matches!(records[0], MetadataRecord::CreateTopic { .. }), "{records:?}");
    assert_eq!(records.len(), 4, "{records:?}");
    // Only `CreateTopic` committed; the next controller starts from that image.
    ctl.commit(&records[..1]);
    let committed = ctl.c.image().clone();
    ctl.c = QuorumController::activate(ControllerConfig::default(), &committed, ctl.now);
    assert_eq!(ctl.part("t", 0).leader, None);
    ctl.now += Duration::from_millis(500);
    let (before, start) = (ctl.c.image().clone(), ctl.log.len());
    ctl.heartbeat_all_but(&[]);
    ctl.heartbeat_all_but(&[]);
    assert_changes_sound(&before, &ctl.log[start..]);
    for p in 0..3 {
        let part = ctl.part("t", p);
        assert_eq!(part.leader, Some(part.replicas[0]), "partition {p} has its first leader: {part:?}");
        assert_eq!(part.isr, part.replicas);
        assert_eq!(part.leader_epoch, LeaderEpoch(1));
        assert_eq!(part.partition_epoch, 1);
    }
}

/// mq-sim seed 71 at 847cffe (liveness_leaders): an unfencing's elections are
/// metadata entries of their own after the `UnfenceBroker`, and a controller
/// change committed the unfencing but not the election of the only replica of
/// a partition, which then had no leader for good (elections follow only
/// fencings and unfencings). The next controller's tick elects it.
#[test]
fn an_unfencing_whose_elections_a_controller_change_cut_short_is_completed() {
    let mut ctl = Ctl::new();
    ctl.brokers(3);
    ctl.create(topic("t", 3, 1));
    let led_by_2 = |image: &MetadataImage| {
        image.partitions().filter(|(_, p)| p.replicas == [NodeId(2)]).map(|(_, p)| p.leader).collect::<Vec<_>>()
    };
    assert_eq!(led_by_2(ctl.c.image()), vec![Some(NodeId(2))], "one partition lives on broker 2 alone");
    ctl.expire(&[2]);
    assert!(!ctl.c.image().is_live(NodeId(2)));
    assert_eq!(led_by_2(ctl.c.image()), vec![None], "fenced: its partition has no leader");
    // Broker 2 heartbeats again: unfenced, and it leads its partition again, in
    // entries after the unfencing, which a controller change loses.
    let epoch = ctl.epoch(2);
    let hb = ControllerRequest::Heartbeat { broker: NodeId(2), broker_epoch: epoch, metadata_applied: ctl.index };
    let records = ctl.c.handle(ctl.now, hb).unwrap();
    assert!(matches!(records[0], MetadataRecord::UnfenceBroker { broker: NodeId(2), .. }), "{records:?}");
    assert!(records.len() > 1, "the unfencing elects 2: {records:?}");
    let mut committed = MetadataImage::default();
    let mut log = ctl.log.clone();
    log.push(records[0].clone());
    for (i, r) in log.iter().enumerate() {
        committed.apply(i as u64 + 1, r);
    }
    assert!(committed.is_live(NodeId(2)));
    assert_eq!(led_by_2(&committed), vec![None], "the election was cut short");

    ctl.c = QuorumController::activate(ControllerConfig::default(), &committed, ctl.now);
    assert!(ctl.c.poll_timeout().is_some_and(|t| t <= ctl.now), "the repair waits: {:?}", ctl.c.poll_timeout());
    let records = ctl.c.tick(ctl.now);
    assert_changes_sound(&committed, &records);
    ctl.index = log.len() as u64;
    ctl.commit(&records);
    assert_eq!(led_by_2(ctl.c.image()), vec![Some(NodeId(2))], "the new controller elects 2: {records:?}");
    assert!(ctl.c.tick(ctl.now).is_empty(), "nothing more to do");
    assert!(ctl.c.poll_timeout().is_some_and(|t| t > ctl.now), "no tick spins once it is done");
}

/// mq-sim seed 1008532 (fenced_not_live): a fencing's ISR changes are metadata
/// entries of their own after the `FenceBroker`, and a controller change
/// committed the fencing but not them. The next controller starts from an image
/// in which the fenced broker is still in the ISRs: no change it makes for
/// another reason keeps it there, and its tick takes it out of the rest.
#[test]
fn a_fencing_whose_isr_changes_a_controller_change_cut_short_is_completed() {
    let mut ctl = Ctl::new();
    ctl.brokers(3);
    ctl.create(topic("t", 3, 3));
    ctl.now += Duration::from_secs(10);
    ctl.heartbeat_all_but(&[2]);
    let records = ctl.c.tick(ctl.now);
    assert!(matches!(records[0], MetadataRecord::FenceBroker { broker: NodeId(2), .. }), "{records:?}");
    assert!(records.len() > 1, "the fencing moves 2 out of the ISRs: {records:?}");
    ctl.commit(&records[..1]);
    let committed = ctl.c.image().clone();
    assert!(!committed.is_live(NodeId(2)));
    assert!(committed.partitions().all(|(_, p)| p.isr.contains(&NodeId(2))), "the changes were cut short");
    let fenced_in_isr = |records: &[MetadataRecord]| {
        records.iter().any(
            |r| matches!(r, MetadataRecord::PartitionChange { isr, .. } if isr.len() > 1 && isr.contains(&NodeId(2))),
        )
    };

    // Another change for another reason (broker 1 registers a new incarnation).
    ctl.c = QuorumController::activate(ControllerConfig::default(), &committed, ctl.now);
    let records = ctl.c.handle(ctl.now, ControllerRequest::RegisterBroker { broker: NodeId(1) }).unwrap();
    assert_changes_sound(&committed, &records);
    assert!(!fenced_in_isr(&records), "a change keeps fenced broker 2 in an ISR: {records:?}");

    // The tick finishes the fencing by itself, and is due at once (not only
    // when a session next expires).
    ctl.c = QuorumController::activate(ControllerConfig::default(), &committed, ctl.now);
    assert!(ctl.c.poll_timeout().is_some_and(|t| t <= ctl.now), "the repair waits: {:?}", ctl.c.poll_timeout());
    let records = ctl.c.tick(ctl.now);
    assert!(!records.is_empty(), "the new controller leaves the fencing unfinished");
    assert_changes_sound(&committed, &records);
    ctl.commit(&records);
    for (tp, p) in ctl.c.image().partitions() {
        assert!(!p.isr.contains(&NodeId(2)) && p.leader != Some(NodeId(2)), "{tp}: {p:?}");
    }
    assert!(ctl.c.tick(ctl.now).is_empty(), "nothing more to do");
    assert!(ctl.c.poll_timeout().is_some_and(|t| t > ctl.now), "no tick spins once it is done");
}

/// mq-sim seeds 1275 and 1502 (election_from_isr): two sessions expire in the same
/// tick. The second broker's re-elections must be computed with the first one's
/// fencing and elections applied: otherwise they keep the just-fenced first broker
/// as leader, in the leader epoch it had before the first re-election.
#[test]
fn brokers_whose_sessions_expire_together_are_replaced_by_a_live_isr_member() {
    let mut ctl = Ctl::new();
    ctl.brokers(3);
    ctl.create(topic("t", 1, 3));
    let p = ctl.part("t", 0);
    let (leader, next, last) = (p.replicas[0], p.replicas[1], p.replicas[2]);
    assert_eq!(p.leader, Some(leader));
    // The leader and the next in line fall silent together; the controller ticks
    // (as its host does) until nothing more is due.
    ctl.now += Duration::from_secs(5);
    ctl.heartbeat_all_but(&[leader.0, next.0]);
    ctl.now += Duration::from_secs(5);
    ctl.heartbeat_all_but(&[leader.0, next.0]);
    let (before, start) = (ctl.c.image().clone(), ctl.log.len());
    for _ in 0..10 {
        let records = ctl.c.tick(ctl.now);
        if records.is_empty() {
            break;
        }
        ctl.commit(&records);
    }
    assert!(!ctl.c.image().is_live(leader) && !ctl.c.image().is_live(next), "both fenced");
    assert_changes_sound(&before, &ctl.log[start..]);
    let after = ctl.part("t", 0);
    assert_eq!(after.leader, Some(last), "{after:?}");
    assert_eq!(after.isr, vec![last]);
    assert!(after.leader_epoch > p.leader_epoch.next(), "two leader changes: {after:?}");
}

/// The same commit as seeds 1275 and 1502, its heartbeat half: a heartbeat that
/// gives a cut-short partition its first leader takes no other decision, since
/// unfencing the heartbeating broker and electing with it read the image without
/// that first election (with unclean election allowed, it then elected that broker
/// too, in the same leader epoch 1, as sole ISR member).
#[test]
fn a_first_election_is_decided_alone_before_the_heartbeating_broker_is_unfenced() {
    let mut ctl = Ctl::new();
    ctl.brokers(3);
    let config = TopicConfig { unclean_leader_election: true, ..topic("t", 1, 3) };
    let records = ctl.c.handle(ctl.now, ControllerRequest::CreateTopic(config)).unwrap();
    ctl.commit(&records[..1]);
    let first = ctl.part("t", 0).replicas[0];
    // The preferred replica restarts (fenced until caught up), then the
    // controller changes.
    ctl.run(ControllerRequest::RegisterBroker { broker: first }).unwrap();
    let committed = ctl.c.image().clone();
    ctl.c = QuorumController::activate(ControllerConfig::default(), &committed, ctl.now);
    let (before, start) = (ctl.c.image().clone(), ctl.log.len());
    ctl.heartbeat(first.0);
    ctl.heartbeat(first.0);
    ctl.heartbeat_all_but(&[]);
    assert!(ctl.c.image().is_live(first));
    assert_changes_sound(&before, &ctl.log[start..]);
    let p = ctl.part("t", 0);
    assert_eq!(p.leader_epoch, LeaderEpoch(1), "one first election: {p:?}");
    assert_eq!(p.isr, p.replicas, "a clean first election: {p:?}");
}

#[test]
fn principals_and_grants_are_metadata_records_and_deleting_a_principal_revokes_its_grants() {
    use crate::security::acl::{Grant, Operation, Resource};
    use crate::security::StoredCredential;
    let mut t = Ctl::new();
    let credential = StoredCredential::new(b"s3cret", [1; 16]);
    t.run(ControllerRequest::PutPrincipal { app_key: "billing".into(), credential: credential.clone() }).unwrap();
    let grant = Grant {
        principal: "billing".into(),
        operation: Operation::Produce,
        resource: Resource::Topic("orders*".into()),
    };
    t.run(ControllerRequest::PutAcl(grant.clone())).unwrap();
    let image = t.c.image();
    assert_eq!(image.principals.get("billing"), Some(&credential));
    assert!(image.acls.allows("billing", Operation::Produce, &Resource::Topic("orders-eu".into())));
    // The log holds the salted credential, never the secret.
    let stored = format!("{:?}", t.log);
    assert!(!stored.contains("s3cret"));
    t.run(ControllerRequest::DeletePrincipal { app_key: "billing".into() }).unwrap();
    let image = t.c.image();
    assert!(image.principals.is_empty());
    assert!(image.acls.is_empty(), "deleting a principal revokes its grants");
}

#[test]
fn bad_principal_and_acl_requests_are_refused_with_nothing_proposed() {
    use crate::security::acl::{Grant, Operation, Resource};
    use crate::security::StoredCredential;
    let mut t = Ctl::new();
    let credential = StoredCredential::new(b"x", [1; 16]);
    let bad = [
        ControllerRequest::PutPrincipal { app_key: "has space".into(), credential: credential.clone() },
        ControllerRequest::PutPrincipal { app_key: String::new(), credential },
        ControllerRequest::DeletePrincipal { app_key: "nobody".into() },
        ControllerRequest::PutAcl(Grant {
            principal: "app".into(),
            operation: Operation::Consume,
            resource: Resource::Topic("bad/name".into()),
        }),
        ControllerRequest::DeleteAcl(Grant {
            principal: "app".into(),
            operation: Operation::Consume,
            resource: Resource::Topic("never-granted".into()),
        }),
    ];
    for req in bad {
        let e = t.run(req.clone()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest, "{req:?}: {e}");
    }
    assert!(t.log.is_empty());
}
