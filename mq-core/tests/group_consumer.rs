//! The group consumer client (`mq_core::client::GroupConsumer`, docs/consumers.md
//! section 6.6) against a three-broker in-process cluster: members find the
//! coordinator, split the partitions, rebalance when one leaves, and survive a
//! coordinator crash in the middle of a rebalance by rejoining the new one.

mod support;

use mq_core::client::{GroupConsumer, GroupConsumerConfig, GroupConsumerOutput, GroupEvent};
use mq_core::group::assign::Assignor;
use mq_core::group::GroupMode;
use mq_core::harness::Harness;
use mq_core::wire::{Message, RequestBody, ResponseBody, TopicConfig};
use mq_core::{ClientId, CorrelationId, Duration, Input, NodeId, Peer, TopicPartition};
use std::collections::{BTreeMap, BTreeSet};
use support::{ok, CLIENT};

const GROUP: &str = "billing";
const PARTITIONS: u32 = 4;

fn cluster(seed: u64) -> Harness {
    let mut h = Harness::new(3, seed, |c| c);
    h.wait_ready();
    let config = TopicConfig { replication_factor: 3, ..TopicConfig::new("orders", PARTITIONS) };
    let c = h.request(CLIENT, 1, RequestBody::CreateTopic(config));
    h.advance(Duration::from_millis(500));
    assert_eq!(ok(&mut h, c), ResponseBody::TopicCreated);
    h
}

/// One consumer, its client id in the harness, and what it reported.
struct Member {
    client: u64,
    c: GroupConsumer,
    routes: BTreeMap<CorrelationId, u32>,
    events: Vec<GroupEvent>,
}

impl Member {
    fn new(client: u64, mode: GroupMode) -> Member {
        let config = GroupConsumerConfig::new([NodeId(1), NodeId(2), NodeId(3)], GROUP, ["orders"])
            .mode(mode)
            .session_timeout(Duration::from_secs(3))
            .request_timeout(Duration::from_millis(500))
            .join_timeout(Duration::from_secs(5));
        Member { client, c: GroupConsumer::new(config, client).unwrap(), routes: BTreeMap::new(), events: Vec::new() }
    }

    fn partitions(&self) -> BTreeSet<u32> {
        self.c.assignment().iter().map(|tp| tp.partition.0).collect()
    }
}

/// Moves every member's requests into the harness and the answers back, for `d`
/// of harness time in steps of 5 ms. A request to a crashed broker is answered by
/// a closed connection.
fn pump(h: &mut Harness, members: &mut [&mut Member], d: Duration) {
    let until = h.now() + d;
    while h.now() < until {
        for m in members.iter_mut() {
            while let Some(GroupConsumerOutput::Send { to, msg }) = m.c.poll_output() {
                let Peer::Node(n) = to else { continue };
                if let Message::Request(r) = &msg {
                    m.routes.insert(r.correlation, n.0);
                }
                if h.is_running(n.0) {
                    h.input(n.0, Input::Message { from: Peer::Client(ClientId(m.client)), msg });
                } else {
                    m.c.handle(h.now(), Input::Disconnected { peer: to });
                }
            }
            m.events.extend(std::iter::from_fn(|| m.c.poll_event()));
            while m.c.poll_record().is_some() {}
        }
        h.advance(Duration::from_millis(5));
        for m in members.iter_mut() {
            for resp in h.take_responses(m.client) {
                // Push answers share a correlation id: keep the route.
                let from = NodeId(*m.routes.get(&resp.correlation).expect("an answer to a request"));
                m.c.handle(h.now(), Input::Message { from: Peer::Node(from), msg: Message::Response(resp) });
            }
            if m.c.poll_timeout().is_some_and(|t| t <= h.now()) {
                m.c.handle(h.now(), Input::Timeout);
            }
        }
    }
}

/// Each partition of the topic is assigned to exactly one of the members, all of
/// them stable at one generation.
fn assert_exclusive_cover(members: &[&Member]) {
    let generations: BTreeSet<_> = members.iter().map(|m| m.c.generation()).collect();
    assert_eq!(generations.len(), 1, "one generation: {generations:?}");
    let mut seen = BTreeSet::new();
    for m in members {
        assert!(m.c.is_stable(), "member {} is stable", m.client);
        for p in m.partitions() {
            assert!(seen.insert(p), "partition {p} assigned twice");
        }
    }
    assert_eq!(seen, (0..PARTITIONS).collect(), "every partition assigned");
}

fn sticky() -> GroupMode {
    GroupMode::Exclusive(Assignor::Sticky)
}

#[test]
fn members_split_the_partitions_and_one_leaving_hands_its_share_to_the_other() {
    let mut h = cluster(3);
    let (mut a, mut b) = (Member::new(10, sticky()), Member::new(11, sticky()));
    pump(&mut h, &mut [&mut a], Duration::from_secs(2));
    assert_eq!(a.partitions(), (0..PARTITIONS).collect(), "a first member gets everything");
    pump(&mut h, &mut [&mut a, &mut b], Duration::from_secs(4));
    assert_exclusive_cover(&[&a, &b]);
    assert_eq!(a.partitions().len(), 2);
    assert!(a.events.iter().any(|e| matches!(e, GroupEvent::RebalanceStarted { .. })), "a saw the rebalance");
    assert_eq!(a.c.rebalances(), 1);

    b.c.close(h.now(), Duration::from_secs(1));
    pump(&mut h, &mut [&mut a, &mut b], Duration::from_secs(3));
    assert!(b.c.is_closed());
    assert_eq!(b.events.last(), Some(&GroupEvent::Closed));
    assert_eq!(a.partitions(), (0..PARTITIONS).collect(), "the leave rebalanced at once");
    assert!(a.c.is_stable());
}

#[test]
fn a_coordinator_crash_in_the_middle_of_a_rebalance_makes_every_member_rejoin_the_new_one() {
    let mut h = cluster(7);
    let (mut a, mut b, mut c) = (Member::new(10, sticky()), Member::new(11, sticky()), Member::new(12, sticky()));
    pump(&mut h, &mut [&mut a, &mut b], Duration::from_secs(4));
    assert_exclusive_cover(&[&a, &b]);
    let coordinator = a.c.coordinator().expect("a coordinator");
    let before = a.c.generation().expect("joined");

    // A third member joins: the coordinator holds its join until a and b rejoin.
    // Crash the coordinator while it holds the barrier.
    pump(&mut h, &mut [&mut a, &mut b, &mut c], Duration::from_millis(100));
    assert!(!c.c.is_stable() && c.c.generation().is_none(), "c's join is held");
    h.crash(coordinator.0);
    pump(&mut h, &mut [&mut a, &mut b, &mut c], Duration::from_secs(20));

    let new = a.c.coordinator().expect("a new coordinator");
    assert_ne!(new, coordinator);
    assert_exclusive_cover(&[&a, &b, &c]);
    let after = a.c.generation().unwrap();
    assert!(after.coordinator_epoch > before.coordinator_epoch, "{after} after {before}");
    for m in [&a, &b, &c] {
        assert_eq!(m.c.coordinator(), Some(new));
        assert!(!m.partitions().is_empty(), "member {} has a share", m.client);
    }
}

#[test]
fn shared_and_key_shared_members_each_get_every_partition() {
    for mode in [GroupMode::Shared, GroupMode::KeyShared] {
        let mut h = cluster(5);
        let (mut a, mut b) = (Member::new(10, mode), Member::new(11, mode));
        pump(&mut h, &mut [&mut a, &mut b], Duration::from_secs(4));
        let all: BTreeSet<u32> = (0..PARTITIONS).collect();
        assert_eq!(a.partitions(), all, "{mode:?}");
        assert_eq!(b.partitions(), all, "{mode:?}");
        assert_eq!(a.c.generation(), b.c.generation());
        let tp = TopicPartition::new("orders", 0);
        assert!(a.c.leader(&tp).is_some(), "the member found the partition's leader");
    }
}
