//! The group consumer client (`mq_core::client::GroupConsumer`, docs/consumers.md
//! section 6.6) against a three-broker in-process cluster: members find the
//! coordinator, split the partitions, rebalance when one leaves, and survive a
//! coordinator crash in the middle of a rebalance by rejoining the new one;
//! records flow end to end in each mode, pulled and pushed, with every ack kind,
//! and an ack once confirmed is never followed by a redelivery to the group.

mod support;

use mq_core::client::{ConsumedRecord, GroupConsumer, GroupConsumerConfig, GroupConsumerOutput, GroupEvent};
use mq_core::group::assign::Assignor;
use mq_core::group::GroupMode;
use mq_core::harness::Harness;
use mq_core::wire::{AckKind, Acks, Message, Record, RecordBatch, RequestBody, ResponseBody, SeekTo, TopicConfig};
use mq_core::{ClientId, CorrelationId, Duration, Event, Input, NodeId, Offset, PartitionId, Peer, TopicPartition};
use std::collections::{BTreeMap, BTreeSet};
use support::{leader_of, ok, CLIENT};

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
    /// Records handed to the application, in order.
    received: Vec<ConsumedRecord>,
    /// Ack every record as soon as it is handed out.
    auto_ack: bool,
}

impl Member {
    fn new(client: u64, mode: GroupMode) -> Member {
        Member::with(client, base(mode))
    }

    fn with(client: u64, config: GroupConsumerConfig) -> Member {
        let c = GroupConsumer::new(config, client).unwrap();
        Member { client, c, routes: BTreeMap::new(), events: Vec::new(), received: Vec::new(), auto_ack: false }
    }

    fn auto_ack(mut self) -> Member {
        self.auto_ack = true;
        self
    }

    /// Offsets whose ack the leaders confirmed to this member, per partition
    /// (`Ack` entries and cumulative acks below the prefix).
    fn confirmed(&self) -> BTreeSet<(u32, u64)> {
        let mut done = BTreeSet::new();
        for e in &self.events {
            if let GroupEvent::AcksConfirmed { tp, acks, up_to, .. } = e {
                let p = tp.partition.0;
                done.extend(acks.iter().filter(|(_, k)| *k == AckKind::Ack).map(|(o, _)| (p, o.0)));
                if let Some(end) = up_to {
                    done.extend((0..end.0).map(|o| (p, o)));
                }
            }
        }
        done
    }

    fn partitions(&self) -> BTreeSet<u32> {
        self.c.assignment().iter().map(|tp| tp.partition.0).collect()
    }
}

fn base(mode: GroupMode) -> GroupConsumerConfig {
    GroupConsumerConfig::new([NodeId(1), NodeId(2), NodeId(3)], GROUP, ["orders"])
        .mode(mode)
        .session_timeout(Duration::from_secs(3))
        .request_timeout(Duration::from_millis(500))
        .join_timeout(Duration::from_secs(5))
        .pull(10, Duration::from_millis(200))
}

/// Moves every member's requests into the harness and the answers back, for `d`
/// of harness time in steps of 5 ms. A request to a crashed broker is answered by
/// a closed connection. Checks on the way that no member is handed a record
/// whose ack some member had seen confirmed (`group_ack_final`).
fn pump(h: &mut Harness, members: &mut [&mut Member], d: Duration) {
    let until = h.now() + d;
    while h.now() < until {
        let confirmed: BTreeSet<(u32, u64)> = members.iter().flat_map(|m| m.confirmed()).collect();
        for m in members.iter_mut() {
            while let Some(r) = m.c.poll_record() {
                let key = (r.tp.partition.0, r.offset.0);
                assert!(!confirmed.contains(&key), "{key:?} delivered to {} after its ack was confirmed", m.client);
                if m.auto_ack {
                    m.c.ack(h.now(), &r.tp, r.offset).expect("room for the ack");
                }
                m.received.push(r);
            }
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

/// Appends `records` to `orders/partition` with acks=all through its leader and
/// waits for the acknowledgement.
fn produce(h: &mut Harness, partition: u32, records: Vec<Record>) -> Offset {
    let tp = TopicPartition::new("orders", partition);
    let l = leader_of(h, &tp).expect("a leader");
    let batch = RecordBatch::new(records);
    let body =
        RequestBody::Produce { topic: "orders".into(), partition: PartitionId(partition), acks: Acks::All, batch };
    let c = h.request(CLIENT, l, body);
    h.advance(Duration::from_millis(100));
    match ok(h, c) {
        ResponseBody::Produced { base_offset, .. } => base_offset,
        other => panic!("{other:?}"),
    }
}

/// `n` records on each partition, valued `p<partition>-<i>` and keyed `k<i % 4>`.
fn produce_all(h: &mut Harness, n: u64) -> BTreeSet<(u32, u64)> {
    let mut all = BTreeSet::new();
    for p in 0..PARTITIONS {
        let records = (0..n).map(|i| Record::keyed(format!("k{}", i % 4), format!("p{p}-{i}"))).collect();
        let base = produce(h, p, records);
        all.extend((base.0..base.0 + n).map(|o| (p, o)));
    }
    all
}

fn received(members: &[&Member]) -> BTreeSet<(u32, u64)> {
    members.iter().flat_map(|m| m.received.iter().map(|r| (r.tp.partition.0, r.offset.0))).collect()
}

fn confirmed(members: &[&Member]) -> BTreeSet<(u32, u64)> {
    members.iter().flat_map(|m| m.confirmed()).collect()
}

#[test]
fn exclusive_pull_end_to_end_each_partition_goes_to_its_owner_and_every_ack_is_confirmed() {
    let mut h = cluster(21);
    let (mut a, mut b) = (Member::new(10, sticky()).auto_ack(), Member::new(11, sticky()).auto_ack());
    pump(&mut h, &mut [&mut a, &mut b], Duration::from_secs(4));
    assert_exclusive_cover(&[&a, &b]);
    let all = produce_all(&mut h, 10);
    pump(&mut h, &mut [&mut a, &mut b], Duration::from_secs(3));
    assert_eq!(received(&[&a, &b]), all, "every record handed out");
    assert_eq!(confirmed(&[&a, &b]), all, "every ack confirmed");
    for m in [&a, &b] {
        let owned = m.partitions();
        assert!(m.received.iter().all(|r| owned.contains(&r.tp.partition.0)), "only its own partitions");
        for p in &owned {
            let offsets: Vec<u64> = m.received.iter().filter(|r| r.tp.partition.0 == *p).map(|r| r.offset.0).collect();
            assert!(offsets.windows(2).all(|w| w[0] < w[1]), "in offset order, once: {offsets:?}");
        }
    }
}

#[test]
fn shared_push_end_to_end_spreads_records_over_both_members() {
    let mut h = cluster(22);
    let config = |_| base(GroupMode::Shared).push(4, 8);
    let (mut a, mut b) = (Member::with(10, config(())).auto_ack(), Member::with(11, config(())).auto_ack());
    pump(&mut h, &mut [&mut a, &mut b], Duration::from_secs(4));
    let all = produce_all(&mut h, 20);
    pump(&mut h, &mut [&mut a, &mut b], Duration::from_secs(3));
    assert_eq!(received(&[&a, &b]), all);
    assert_eq!(confirmed(&[&a, &b]), all);
    assert!(a.received.len() >= 10 && b.received.len() >= 10, "{} and {}", a.received.len(), b.received.len());
}

#[test]
fn key_shared_end_to_end_sends_each_key_to_one_member() {
    for delivery in ["pull", "push"] {
        let mut h = cluster(23);
        let config = |_| match delivery {
            "pull" => base(GroupMode::KeyShared),
            _ => base(GroupMode::KeyShared).push(4, 8),
        };
        let (mut a, mut b) = (Member::with(10, config(())).auto_ack(), Member::with(11, config(())).auto_ack());
        pump(&mut h, &mut [&mut a, &mut b], Duration::from_secs(4));
        let all = produce_all(&mut h, 12);
        pump(&mut h, &mut [&mut a, &mut b], Duration::from_secs(3));
        assert_eq!(received(&[&a, &b]), all, "{delivery}");
        assert_eq!(confirmed(&[&a, &b]), all, "{delivery}");
        let keys = |m: &Member| -> BTreeSet<_> { m.received.iter().map(|r| r.record.key.clone()).collect() };
        assert!(keys(&a).is_disjoint(&keys(&b)), "{delivery}: {:?} and {:?}", keys(&a), keys(&b));
    }
}

#[test]
fn every_ack_kind_end_to_end_nack_redelivers_reject_dead_letters_seek_replays() {
    let mut h = cluster(24);
    let mut a = Member::new(10, sticky());
    pump(&mut h, &mut [&mut a], Duration::from_secs(2));
    let tp = TopicPartition::new("orders", 0);
    produce(&mut h, 0, (0..8).map(|i| Record::from_value(format!("v{i}"))).collect());
    pump(&mut h, &mut [&mut a], Duration::from_millis(500));
    let first: Vec<(u64, u32)> = a.received.iter().map(|r| (r.offset.0, r.delivery)).collect();
    assert_eq!(first, (0..8).map(|o| (o, 1)).collect::<Vec<_>>());

    let now = h.now();
    a.c.nack(now, &tp, Offset(0), Duration::from_millis(300)).unwrap();
    a.c.reject(now, &tp, Offset(1)).unwrap();
    a.c.ack_batch(now, &tp, &[Offset(2), Offset(3)]).unwrap();
    a.c.ack(now, &tp, Offset(5)).unwrap();
    pump(&mut h, &mut [&mut a], Duration::from_secs(1));
    let again: Vec<(u64, u32)> = a.received[8..].iter().map(|r| (r.offset.0, r.delivery)).collect();
    assert_eq!(again, vec![(0, 2)], "the nacked record came back, counted as a second delivery");
    assert!(h.events().iter().any(|(_, _, e)| matches!(
        e,
        Event::DeadLettered { offset: Offset(1), reason: "rejected", tp: t, .. } if *t == tp
    )));
    let done = a.confirmed();
    assert!([(0, 2), (0, 3), (0, 5)].iter().all(|k| done.contains(k)), "{done:?}");

    // A cumulative ack covers the rest; a seek back to 4 replays from there.
    a.c.ack_up_to(h.now(), &tp, Offset(8)).unwrap();
    pump(&mut h, &mut [&mut a], Duration::from_millis(500));
    assert!(a.events.iter().any(|e| matches!(e, GroupEvent::AcksConfirmed { prefix: Offset(8), .. })));
    a.events.clear(); // the seek makes acked records deliverable again on purpose
    let before = a.received.len();
    a.c.seek(h.now(), &tp, SeekTo::Offset(Offset(4))).unwrap();
    pump(&mut h, &mut [&mut a], Duration::from_millis(500));
    assert!(a.events.iter().any(|e| *e == GroupEvent::Sought { tp: tp.clone(), offset: Offset(4) }), "{:?}", a.events);
    let replay: Vec<u64> = a.received[before..].iter().map(|r| r.offset.0).collect();
    assert_eq!(replay, vec![4, 5, 6, 7]);
}

#[test]
fn a_coordinator_crash_mid_rebalance_loses_no_confirmed_ack() {
    let mut h = cluster(25);
    let (mut a, mut b, mut c) = (
        Member::new(10, sticky()).auto_ack(),
        Member::new(11, sticky()).auto_ack(),
        Member::new(12, sticky()).auto_ack(),
    );
    pump(&mut h, &mut [&mut a, &mut b], Duration::from_secs(4));
    let mut all = produce_all(&mut h, 10);
    pump(&mut h, &mut [&mut a, &mut b], Duration::from_millis(300));
    let coordinator = a.c.coordinator().expect("a coordinator");
    assert!(!confirmed(&[&a, &b]).is_empty(), "acks were confirmed before the crash");

    // c's join starts a rebalance; the coordinator (which also leads some of the
    // data partitions) crashes while it holds the barrier.
    pump(&mut h, &mut [&mut a, &mut b, &mut c], Duration::from_millis(100));
    h.crash(coordinator.0);
    pump(&mut h, &mut [&mut a, &mut b, &mut c], Duration::from_secs(15));
    assert_exclusive_cover(&[&a, &b, &c]);
    all.extend(produce_all(&mut h, 10));
    // `pump` fails the test if any confirmed ack is followed by a redelivery.
    pump(&mut h, &mut [&mut a, &mut b, &mut c], Duration::from_secs(5));
    assert_eq!(received(&[&a, &b, &c]), all);
    assert_eq!(confirmed(&[&a, &b, &c]), all, "every record acked and confirmed in the end");
    assert!(c.c.records_received() > 0, "the third member consumes its share");
}
