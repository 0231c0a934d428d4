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
}

impl Ctl {
    fn new() -> Self {
        let now = Instant::from_millis(1);
        Ctl {
            c: QuorumController::activate(ControllerConfig::default(), &MetadataImage::default(), now),
            index: 0,
            now,
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
    let mut ctl = Ctl::new();
    ctl.brokers(3);
    ctl.create(topic("t", 1, 3));
    let p = ctl.part("t", 0);
    let leader = p.leader.unwrap();
    let others: Vec<NodeId> = p.replicas.iter().copied().filter(|r| *r != leader).collect();
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
