//! Group delivery on partition leaders (docs/consumers.md section 6): exclusive,
//! shared and key_shared dealing, pull long polls and push windows, acks, nacks,
//! rejects and dead letters, lease expiry, seeks, acks answered only once their
//! cursor record commits and surviving a leader crash, stale generations, and
//! cursor records hidden from plain fetches. Leaders never talk to coordinators,
//! so these tests show them hand-made group views.

mod support;

use bytes::Bytes;
use mq_core::group::assign::Assignor;
use mq_core::group::GroupMode;
use mq_core::harness::Harness;
use mq_core::wire::{
    AckKind, Acks, DeliveredRecord, ErrorCode, FetchMode, GroupAck, GroupFetch, GroupSeek, GroupSettings, GroupView,
    Record, RecordBatch, RequestBody, Response, ResponseBody, SeekTo, TopicConfig, WireError,
};
use mq_core::wire::{Message, Request};
use mq_core::{
    ClientId, CorrelationId, Duration, Event, Generation, GroupGeneration, Input, LeaderEpoch, MemberId, NodeConfig,
    NodeId, Offset, PartitionId, Peer, TopicPartition,
};
use std::collections::BTreeSet;
use support::{leader_of, ok, CLIENT};

const TOPIC: &str = "orders";
const GROUP: &str = "billing";
const M1: MemberId = MemberId(1);
const M2: MemberId = MemberId(2);
const M3: MemberId = MemberId(3);

fn tp() -> TopicPartition {
    TopicPartition::new(TOPIC, 0)
}

fn gen(n: u32) -> GroupGeneration {
    GroupGeneration { coordinator_epoch: LeaderEpoch(1), generation: Generation(n) }
}

/// A three-broker cluster with `orders` (one partition, `rf` replicas, `min_isr`).
fn cluster(seed: u64, rf: u16, min_isr: u16) -> Harness {
    let config = TopicConfig { replication_factor: rf, min_insync_replicas: min_isr, ..TopicConfig::new(TOPIC, 1) };
    cluster_with(seed, |c| c, config)
}

/// A three-broker cluster, each broker configured by `configure`, with `topic`.
fn cluster_with(seed: u64, configure: impl Fn(NodeConfig) -> NodeConfig, topic: TopicConfig) -> Harness {
    let mut h = Harness::new(3, seed, configure);
    h.wait_ready();
    let c = h.request(CLIENT, 1, RequestBody::CreateTopic(topic));
    h.advance(Duration::from_millis(500));
    assert_eq!(ok(&mut h, c), ResponseBody::TopicCreated);
    h
}

fn leader(h: &Harness) -> u32 {
    leader_of(h, &tp()).expect("orders/0 has a leader")
}

fn client(m: MemberId) -> u64 {
    10 + m.0
}

/// Produces `records` as one batch with acks=all to the leader and waits for it.
fn produce(h: &mut Harness, records: Vec<Record>) -> Offset {
    let l = leader(h);
    let body = RequestBody::Produce {
        topic: TOPIC.into(),
        partition: PartitionId(0),
        acks: Acks::All,
        batch: RecordBatch::new(records),
    };
    let c = h.request(CLIENT, l, body);
    h.advance(Duration::from_millis(100));
    match ok(h, c) {
        ResponseBody::Produced { base_offset, .. } => base_offset,
        other => panic!("{other:?}"),
    }
}

fn values(n: usize) -> Vec<Record> {
    (0..n).map(|i| Record::from_value(format!("v{i}"))).collect()
}

struct Group {
    mode: GroupMode,
    settings: GroupSettings,
    generation: GroupGeneration,
    members: Vec<(MemberId, u32)>,
}

impl Group {
    fn new(mode: GroupMode, members: &[(MemberId, u32)]) -> Group {
        let settings =
            GroupSettings { ack_timeout: Duration::from_secs(5), max_deliveries: 3, ..GroupSettings::default() };
        Group { mode, settings, generation: gen(1), members: members.to_vec() }
    }

    fn view(&self, member: MemberId) -> GroupView {
        GroupView {
            group: GROUP.into(),
            member,
            generation: self.generation,
            mode: self.mode,
            settings: self.settings.clone(),
            members: self.members.clone(),
        }
    }

    fn fetch(&self, h: &mut Harness, member: MemberId, max_records: u32, mode: FetchMode) -> CorrelationId {
        let l = leader(h);
        let f = GroupFetch { view: self.view(member), tp: tp(), max_records, mode };
        h.request(client(member), l, RequestBody::GroupFetch(f))
    }

    /// A pull with no wait, answered at once: the offsets delivered.
    fn poll(&self, h: &mut Harness, member: MemberId, max_records: u32) -> Vec<DeliveredRecord> {
        let c = self.fetch(h, member, max_records, FetchMode::Pull { max_wait: Duration::ZERO });
        delivered(h, member, c)
    }

    fn ack(&self, h: &mut Harness, member: MemberId, acks: &[(u64, AckKind)], up_to: Option<u64>) -> CorrelationId {
        let l = leader(h);
        let a = GroupAck {
            group: GROUP.into(),
            member,
            generation: self.generation,
            tp: tp(),
            acks: acks.iter().map(|(o, k)| (Offset(*o), *k)).collect(),
            up_to: up_to.map(Offset),
        };
        h.request(client(member), l, RequestBody::GroupAck(a))
    }

    /// Acks and waits for the answer: (prefix, refused).
    fn ack_ok(
        &self,
        h: &mut Harness,
        member: MemberId,
        acks: &[(u64, AckKind)],
        up_to: Option<u64>,
    ) -> (u64, Vec<(u64, ErrorCode)>) {
        let c = self.ack(h, member, acks, up_to);
        h.advance(Duration::from_millis(100));
        match answer(h, member, c) {
            Ok(ResponseBody::Acked { prefix, refused, .. }) => {
                (prefix.0, refused.into_iter().map(|(o, e)| (o.0, e)).collect())
            }
            other => panic!("{other:?}"),
        }
    }

    fn seek(&self, h: &mut Harness, member: MemberId, to: SeekTo) -> Result<u64, WireError> {
        let l = leader(h);
        let s = GroupSeek { group: GROUP.into(), member, generation: self.generation, tp: tp(), to };
        let c = h.request(client(member), l, RequestBody::GroupSeek(s));
        h.advance(Duration::from_millis(100));
        match answer(h, member, c) {
            Ok(ResponseBody::Sought { offset, .. }) => Ok(offset.0),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        }
    }
}

fn answer(h: &mut Harness, member: MemberId, c: CorrelationId) -> Result<ResponseBody, WireError> {
    h.take_response(client(member), c).unwrap_or_else(|| panic!("no answer to {c:?}")).body
}

fn delivered(h: &mut Harness, member: MemberId, c: CorrelationId) -> Vec<DeliveredRecord> {
    match answer(h, member, c) {
        Ok(ResponseBody::Delivered { records, .. }) => records,
        other => panic!("expected Delivered, got {other:?}"),
    }
}

fn offs(records: &[DeliveredRecord]) -> Vec<u64> {
    records.iter().map(|r| r.offset.0).collect()
}

/// Every `Delivered` answer `member` got on correlation `c` so far, flattened.
fn pushed(h: &mut Harness, member: MemberId, c: CorrelationId) -> Vec<DeliveredRecord> {
    let all: Vec<Response> = h.take_responses(client(member));
    let mut out = Vec::new();
    for r in all {
        assert_eq!(r.correlation, c, "an answer to another request: {r:?}");
        match r.body {
            Ok(ResponseBody::Delivered { records, .. }) => out.extend(records),
            other => panic!("{other:?}"),
        }
    }
    out
}

fn exclusive() -> GroupMode {
    GroupMode::Exclusive(Assignor::Sticky)
}

#[test]
fn exclusive_delivers_in_offset_order_and_not_again_while_leased() {
    let mut h = cluster(1, 3, 1);
    produce(&mut h, values(5));
    let g = Group::new(exclusive(), &[(M1, 1)]);
    assert_eq!(offs(&g.poll(&mut h, M1, 3)), vec![0, 1, 2]);
    assert_eq!(offs(&g.poll(&mut h, M1, 10)), vec![3, 4]);
    assert!(g.poll(&mut h, M1, 10).is_empty(), "leased records are not delivered twice");
    let l = NodeId(leader(&h));
    let events: Vec<u64> = h
        .events()
        .iter()
        .filter_map(|(_, n, e)| match e {
            Event::GroupDelivered { offset, member: M1, delivery: 1, generation, .. }
                if *n == l && *generation == gen(1) =>
            {
                Some(offset.0)
            }
            _ => None,
        })
        .collect();
    assert_eq!(events, vec![0, 1, 2, 3, 4]);
}

#[test]
fn shared_pull_goes_to_whoever_asks_and_push_deals_by_weight() {
    let mut h = cluster(2, 3, 1);
    produce(&mut h, values(4));
    let g = Group::new(GroupMode::Shared, &[(M1, 1), (M2, 2), (M3, 3)]);
    assert_eq!(offs(&g.poll(&mut h, M2, 3)), vec![0, 1, 2]);
    assert_eq!(offs(&g.poll(&mut h, M1, 3)), vec![3]);
    // Push: three subscriptions with room for everything; 60 records split 1:2:3.
    let subs: Vec<(MemberId, CorrelationId)> =
        [M1, M2, M3].iter().map(|m| (*m, g.fetch(&mut h, *m, 100, FetchMode::Push { prefetch: 100 }))).collect();
    h.advance(Duration::from_millis(50));
    produce(&mut h, values(60));
    h.advance(Duration::from_millis(100));
    let counts: Vec<usize> = subs.iter().map(|(m, c)| pushed(&mut h, *m, *c).len()).collect();
    assert_eq!(counts, vec![10, 20, 30]);
}

#[test]
fn key_shared_sends_each_key_to_one_member() {
    let mut h = cluster(3, 3, 1);
    let records: Vec<Record> = (0..40).map(|i| Record::keyed(format!("k{}", i % 8), format!("v{i}"))).collect();
    produce(&mut h, records);
    let g = Group::new(GroupMode::KeyShared, &[(M1, 1), (M2, 1)]);
    let keys =
        |recs: &[DeliveredRecord]| -> BTreeSet<Bytes> { recs.iter().map(|r| r.record.key.clone().unwrap()).collect() };
    let a = g.poll(&mut h, M1, 100);
    let b = g.poll(&mut h, M2, 100);
    assert_eq!(a.len() + b.len(), 40);
    assert!(!a.is_empty() && !b.is_empty());
    assert!(keys(&a).is_disjoint(&keys(&b)), "a key went to both members");
    // Later records of a key go to the same member.
    produce(&mut h, (0..8).map(|i| Record::keyed(format!("k{i}"), "later")).collect());
    let a2 = g.poll(&mut h, M1, 100);
    assert_eq!(keys(&a2), keys(&a));
}

#[test]
fn a_pull_long_poll_wakes_when_a_record_commits_and_ends_empty_after_max_wait() {
    let mut h = cluster(4, 3, 1);
    let g = Group::new(exclusive(), &[(M1, 1)]);
    let c = g.fetch(&mut h, M1, 10, FetchMode::Pull { max_wait: Duration::from_secs(2) });
    h.advance(Duration::from_millis(300));
    assert!(h.take_response(client(M1), c).is_none(), "parked while nothing is committed");
    produce(&mut h, values(1));
    assert_eq!(offs(&delivered(&mut h, M1, c)), vec![0]);
    let c = g.fetch(&mut h, M1, 10, FetchMode::Pull { max_wait: Duration::from_millis(500) });
    h.advance(Duration::from_millis(400));
    assert!(h.take_response(client(M1), c).is_none());
    h.advance(Duration::from_millis(200));
    assert!(delivered(&mut h, M1, c).is_empty(), "answered empty after max_wait");
}

#[test]
fn push_respects_the_prefetch_window_and_acks_open_it() {
    let mut h = cluster(5, 3, 1);
    produce(&mut h, values(5));
    let g = Group::new(exclusive(), &[(M1, 1)]);
    let c = g.fetch(&mut h, M1, 10, FetchMode::Push { prefetch: 2 });
    h.advance(Duration::from_millis(50));
    assert_eq!(offs(&pushed(&mut h, M1, c)), vec![0, 1]);
    let a = g.ack(&mut h, M1, &[(0, AckKind::Ack)], None);
    h.advance(Duration::from_millis(100));
    let mut got = Vec::new();
    for r in h.take_responses(client(M1)) {
        match r.body {
            Ok(ResponseBody::Delivered { records, .. }) if r.correlation == c => got.extend(offs(&records)),
            Ok(ResponseBody::Acked { prefix, .. }) if r.correlation == a => assert_eq!(prefix, Offset(1)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, vec![2], "one ack opens the window by one");
}

#[test]
fn acks_batch_acks_and_cumulative_acks_are_never_redelivered() {
    let mut h = cluster(6, 3, 1);
    produce(&mut h, values(6));
    let mut g = Group::new(exclusive(), &[(M1, 1)]);
    g.settings.ack_timeout = Duration::from_millis(300);
    assert_eq!(g.poll(&mut h, M1, 6).len(), 6);
    assert_eq!(g.ack_ok(&mut h, M1, &[(4, AckKind::Ack)], None), (0, vec![]));
    assert_eq!(g.ack_ok(&mut h, M1, &[(1, AckKind::Ack), (2, AckKind::Ack)], None), (0, vec![]));
    assert_eq!(g.ack_ok(&mut h, M1, &[], Some(1)), (3, vec![]));
    // Out of range is refused for that entry only.
    assert_eq!(g.ack_ok(&mut h, M1, &[(99, AckKind::Ack)], None), (3, vec![(99, ErrorCode::OffsetOutOfRange)]));
    h.advance(Duration::from_millis(500));
    let again = g.poll(&mut h, M1, 10);
    assert_eq!(offs(&again), vec![3, 5], "only the unacked records come back after their leases expire");
    assert!(again.iter().all(|r| r.delivery == 2));
    assert!(h.events().iter().any(|(_, _, e)| matches!(e,
        Event::GroupAckCommitted { prefix: Offset(3), acked_above, sought: false, .. } if acked_above == &vec![Offset(4)])));
}

#[test]
fn a_nack_is_delivered_again_after_its_delay() {
    let mut h = cluster(7, 3, 1);
    produce(&mut h, values(2));
    let g = Group::new(GroupMode::Shared, &[(M1, 1), (M2, 1)]);
    assert_eq!(offs(&g.poll(&mut h, M1, 1)), vec![0]);
    let (_, refused) = g.ack_ok(
        &mut h,
        M1,
        &[(0, AckKind::Nack { delay: Duration::from_secs(1) }), (1, AckKind::Nack { delay: Duration::ZERO })],
        None,
    );
    assert_eq!(refused, vec![(1, ErrorCode::InvalidRequest)], "a nack of a record not leased to the member");
    let c = g.fetch(&mut h, M2, 10, FetchMode::Pull { max_wait: Duration::from_secs(3) });
    h.advance(Duration::from_millis(100));
    let first = delivered(&mut h, M2, c);
    assert_eq!(offs(&first), vec![1], "offset 0 waits out its delay");
    let c = g.fetch(&mut h, M2, 10, FetchMode::Pull { max_wait: Duration::from_secs(3) });
    h.advance(Duration::from_millis(500));
    assert!(h.take_response(client(M2), c).is_none());
    h.advance(Duration::from_millis(600));
    let later = delivered(&mut h, M2, c);
    assert_eq!(offs(&later), vec![0]);
    assert_eq!(later[0].delivery, 2, "the nack counted as a delivery");
}

#[test]
fn an_expired_lease_is_delivered_again_to_another_member() {
    let mut h = cluster(8, 3, 1);
    produce(&mut h, values(1));
    let mut g = Group::new(GroupMode::Shared, &[(M1, 1), (M2, 1)]);
    g.settings.ack_timeout = Duration::from_millis(200);
    assert_eq!(offs(&g.poll(&mut h, M1, 1)), vec![0]);
    let c = g.fetch(&mut h, M2, 1, FetchMode::Pull { max_wait: Duration::from_secs(1) });
    h.advance(Duration::from_millis(100));
    assert!(h.take_response(client(M2), c).is_none(), "leased to M1");
    h.advance(Duration::from_millis(150));
    let r = delivered(&mut h, M2, c);
    assert_eq!((offs(&r), r[0].delivery), (vec![0], 2));
}

/// The dead letters in `orders.dlq` (all partitions), read from their leaders.
fn dead_letters(h: &mut Harness) -> Vec<Record> {
    let dlq = TopicPartition::new("orders.dlq", 0);
    let l = leader_of(h, &dlq).expect("orders.dlq/0 exists and has a leader");
    let body = RequestBody::Fetch {
        topic: "orders.dlq".into(),
        partition: PartitionId(0),
        offset: Offset(0),
        max_bytes: u32::MAX,
    };
    let c = h.request(CLIENT, l, body);
    match ok(h, c) {
        ResponseBody::Fetched { batches, .. } => batches.into_iter().flat_map(|b| b.records).collect(),
        other => panic!("{other:?}"),
    }
}

fn header(r: &Record, key: &str) -> String {
    let h = r.headers.iter().find(|h| h.key == key).unwrap_or_else(|| panic!("no header {key}"));
    String::from_utf8_lossy(&h.value).into_owned()
}

#[test]
fn a_rejected_record_goes_to_the_dead_letter_topic_with_headers_and_is_done() {
    let mut h = cluster(9, 3, 1);
    produce(&mut h, values(3));
    let g = Group::new(exclusive(), &[(M1, 1)]);
    assert_eq!(g.poll(&mut h, M1, 3).len(), 3);
    assert_eq!(g.ack_ok(&mut h, M1, &[(1, AckKind::Reject), (0, AckKind::Ack)], None), (1, vec![]));
    h.advance(Duration::from_secs(2));
    let topic = h.node(1).metadata().topics.get("orders.dlq").expect("created on demand");
    assert_eq!((topic.partitions.len(), topic.config.replication_factor), (1, 3));
    let dl = dead_letters(&mut h);
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0].value, Bytes::from("v1"));
    assert_eq!(header(&dl[0], "mq.dlq.topic"), "orders");
    assert_eq!(header(&dl[0], "mq.dlq.partition"), "0");
    assert_eq!(header(&dl[0], "mq.dlq.offset"), "1");
    assert_eq!(header(&dl[0], "mq.dlq.group"), GROUP);
    assert_eq!(header(&dl[0], "mq.dlq.reason"), "rejected");
    assert!(h
        .events()
        .iter()
        .any(|(_, _, e)| matches!(e, Event::DeadLettered { offset: Offset(1), reason: "rejected", .. })));
    // The source record is acked: the prefix passed it.
    assert_eq!(g.ack_ok(&mut h, M1, &[(2, AckKind::Ack)], None), (3, vec![]));
}

#[test]
fn max_deliveries_sends_the_record_to_the_dead_letter_topic() {
    let mut h = cluster(10, 3, 1);
    produce(&mut h, values(1));
    let mut g = Group::new(exclusive(), &[(M1, 1)]);
    g.settings.ack_timeout = Duration::from_millis(200);
    g.settings.max_deliveries = 2;
    for delivery in 1..=2 {
        let r = g.poll(&mut h, M1, 1);
        assert_eq!((offs(&r), r[0].delivery), (vec![0], delivery));
        h.advance(Duration::from_millis(250));
    }
    h.advance(Duration::from_secs(2));
    assert!(g.poll(&mut h, M1, 1).is_empty(), "not delivered a third time");
    let dl = dead_letters(&mut h);
    assert_eq!(dl.len(), 1);
    assert_eq!(header(&dl[0], "mq.dlq.reason"), "max_deliveries");
}

#[test]
fn a_burst_of_dead_letters_travels_in_one_append_per_dead_letter_partition() {
    let mut h = cluster(16, 3, 1);
    produce(&mut h, values(60));
    let g = Group::new(exclusive(), &[(M1, 1)]);
    assert_eq!(g.poll(&mut h, M1, 60).len(), 60);
    // The first dead letter creates `orders.dlq`.
    assert_eq!(g.ack_ok(&mut h, M1, &[(0, AckKind::Reject)], None), (0, vec![]));
    h.advance(Duration::from_secs(2));
    assert_eq!(dead_letters(&mut h).len(), 1);
    // 59 at once: one append, not one request (and one retry when lost) per
    // record; on a link of small capacity those requests were dropped faster
    // than their retries got through.
    let rejects: Vec<(u64, AckKind)> = (1..60).map(|o| (o, AckKind::Reject)).collect();
    assert_eq!(g.ack_ok(&mut h, M1, &rejects, None), (1, vec![]));
    h.advance(Duration::from_secs(1));
    let dl = dead_letters(&mut h);
    let sources: Vec<String> = dl.iter().map(|r| header(r, "mq.dlq.offset")).collect();
    assert_eq!(sources, (0..60).map(|o| o.to_string()).collect::<Vec<_>>());
    let dlq = TopicPartition::new("orders.dlq", 0);
    let batches = h.node(leader_of(&h, &dlq).unwrap()).log(&dlq).unwrap().batches().count();
    assert_eq!(batches, 2, "the burst is one batch in the dead-letter partition");
    // Each event names where its own record went.
    for (_, _, e) in h.events() {
        if let Event::DeadLettered { offset, dead_letter: (to, at), .. } = e {
            assert_eq!(to, &dlq);
            assert_eq!(header(&dl[at.0 as usize], "mq.dlq.offset"), offset.0.to_string());
        }
    }
    // Every source record is done: the prefix passed them all.
    assert_eq!(g.ack_ok(&mut h, M1, &[], Some(60)), (60, vec![]));
}

/// A dead-letter append waits for its commit as long as its sender waits for the
/// answer, not `produce_timeout` (a client's setting). With a produce timeout
/// shorter than a commit, every append was answered `Timeout` and sent again
/// 200 ms later, one more copy each time, while its record stayed on its way to
/// the dead-letter topic, neither deliverable nor done, for good (simulator
/// seeds 1000043, 1000154 and 1000177: a 1 ms produce timeout).
#[test]
fn a_dead_letter_completes_when_commits_outlast_the_produce_timeout() {
    let mut h = Harness::new(3, 17, |c| mq_core::NodeConfig { produce_timeout: Duration::from_millis(1), ..c });
    h.wait_ready();
    let config = TopicConfig { replication_factor: 3, min_insync_replicas: 2, ..TopicConfig::new(TOPIC, 1) };
    let c = h.request(CLIENT, 1, RequestBody::CreateTopic(config));
    h.advance(Duration::from_millis(500));
    assert_eq!(ok(&mut h, c), ResponseBody::TopicCreated);
    // acks=1: an acks=all produce would time out like everything else here.
    let body = RequestBody::Produce {
        topic: TOPIC.into(),
        partition: PartitionId(0),
        acks: Acks::Leader,
        batch: RecordBatch::new(values(2)),
    };
    let l = leader(&h);
    let c = h.request(CLIENT, l, body);
    h.advance(Duration::from_millis(100));
    assert!(matches!(ok(&mut h, c), ResponseBody::Produced { .. }));
    let g = Group::new(exclusive(), &[(M1, 1)]);
    assert_eq!(offs(&g.poll(&mut h, M1, 2)), vec![0, 1]);
    // Applied when it arrives, whatever the answer (the cursor record's commit
    // outlasts the produce timeout too).
    g.ack(&mut h, M1, &[(0, AckKind::Reject), (1, AckKind::Ack)], None);
    h.advance(Duration::from_secs(3));
    let done = h.events().iter().any(|(_, _, e)| matches!(e, Event::DeadLettered { offset: Offset(0), .. }));
    assert!(done, "the dead letter was never acknowledged");
    assert_eq!(dead_letters(&mut h).len(), 1, "one copy, not one per retry");
    assert!(g.poll(&mut h, M1, 2).is_empty(), "both records are done");
}

/// A dead-letter append asks its receiver to wait half the controller request
/// timeout for the commit, and twice as long after each `Timeout` answer: a
/// commit slower than the first wait (here 1 s against a commit of about 1.4 s)
/// is answered on a later try, leaving a copy per try that timed out, instead of
/// being written again every 200 ms for good.
#[test]
fn a_dead_letter_commit_slower_than_its_wait_is_answered_on_a_later_try() {
    let mut h = cluster(18, 3, 2);
    produce(&mut h, values(1));
    let g = Group::new(exclusive(), &[(M1, 1)]);
    assert_eq!(offs(&g.poll(&mut h, M1, 1)), vec![0]);
    // `orders.dlq` exists before the disks slow down.
    assert_eq!(g.ack_ok(&mut h, M1, &[(0, AckKind::Reject)], None), (0, vec![]));
    h.advance(Duration::from_secs(2));
    assert_eq!(dead_letters(&mut h).len(), 1);
    // After the first one's cursor record.
    let second = produce(&mut h, values(1));
    assert_eq!(offs(&g.poll(&mut h, M1, 1)), vec![second.0]);
    h.persist_delay = Duration::from_millis(700);
    g.ack(&mut h, M1, &[(second.0, AckKind::Reject)], None);
    h.advance(Duration::from_secs(20));
    let done = h.events().iter().any(|(_, _, e)| matches!(e, Event::DeadLettered { offset, .. } if *offset == second));
    assert!(done, "the second dead letter was never acknowledged");
    let copies = dead_letters(&mut h).iter().filter(|r| header(r, "mq.dlq.offset") == second.0.to_string()).count();
    assert!((1..=3).contains(&copies), "{copies} copies of the second dead letter");
}

#[test]
fn seeks_move_the_cursor_by_offset_time_earliest_and_latest() {
    let mut h = cluster(11, 3, 1);
    produce(&mut h, values(3));
    h.advance(Duration::from_secs(1));
    let t = h.now().as_millis();
    produce(&mut h, values(2));
    let g = Group::new(exclusive(), &[(M1, 1)]);
    assert_eq!(g.poll(&mut h, M1, 10).len(), 5);
    assert_eq!(g.ack_ok(&mut h, M1, &[], Some(5)).0, 5);
    assert_eq!(g.seek(&mut h, M1, SeekTo::Offset(Offset(1))), Ok(1));
    assert_eq!(offs(&g.poll(&mut h, M1, 10)), vec![1, 2, 3, 4], "a replay from offset 1");
    assert_eq!(g.seek(&mut h, M1, SeekTo::Timestamp(t)), Ok(3));
    assert_eq!(offs(&g.poll(&mut h, M1, 10)), vec![3, 4]);
    assert_eq!(g.seek(&mut h, M1, SeekTo::Earliest), Ok(0));
    assert_eq!(g.poll(&mut h, M1, 10).len(), 5);
    let hw = g.seek(&mut h, M1, SeekTo::Latest).unwrap();
    assert!(hw > 5, "the high watermark, past the cursor records: {hw}");
    assert!(g.poll(&mut h, M1, 10).is_empty());
    assert_eq!(g.seek(&mut h, M1, SeekTo::Offset(Offset(10_000))).unwrap_err().code, ErrorCode::OffsetOutOfRange);
}

#[test]
fn an_ack_is_answered_only_once_its_cursor_record_commits() {
    let mut h = cluster(12, 3, 2);
    produce(&mut h, values(2));
    let g = Group::new(exclusive(), &[(M1, 1)]);
    assert_eq!(g.poll(&mut h, M1, 2).len(), 2);
    let l = leader(&h);
    for f in (1..=3).filter(|n| *n != l) {
        h.block_fetches(f, l);
    }
    let c = g.ack(&mut h, M1, &[(0, AckKind::Ack)], None);
    h.advance(Duration::from_secs(1));
    assert!(h.take_response(client(M1), c).is_none(), "answered before the cursor record committed");
    assert!(!h.events().iter().any(|(_, _, e)| matches!(e, Event::GroupAckCommitted { .. })));
    h.heal();
    // The followers retry their lost fetches after the fetch timeout (2.5 s).
    h.advance(Duration::from_secs(4));
    match answer(&mut h, M1, c) {
        Ok(ResponseBody::Acked { prefix, .. }) => assert_eq!(prefix, Offset(1)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_confirmed_ack_survives_a_leader_crash() {
    let mut h = cluster(13, 3, 2);
    produce(&mut h, values(4));
    let g = Group::new(exclusive(), &[(M1, 1)]);
    assert_eq!(g.poll(&mut h, M1, 4).len(), 4);
    assert_eq!(g.ack_ok(&mut h, M1, &[(0, AckKind::Ack), (2, AckKind::Ack)], None), (1, vec![]));
    let old = leader(&h);
    h.crash(old);
    h.advance(Duration::from_secs(8));
    let new = leader(&h);
    assert_ne!(new, old);
    let again = g.poll(&mut h, M1, 10);
    assert_eq!(offs(&again), vec![1, 3], "acked records are not delivered by the new leader");
    assert!(again.iter().all(|r| r.delivery == 1), "delivery counts restart with a new leader");
    // Each delivery event names the tenure that made it: first deliveries are in
    // offset order per tenure, not across tenures.
    let new_epoch = h.node(new).replica(&tp()).unwrap().leader_epoch;
    type Tenure = (u32, u64, LeaderEpoch);
    let tenures: Vec<Tenure> = h
        .events()
        .iter()
        .filter_map(|(_, n, e)| match e {
            Event::GroupDelivered { offset, leader_epoch, .. } => Some((n.0, offset.0, *leader_epoch)),
            _ => None,
        })
        .collect();
    let (first, second): (Vec<Tenure>, Vec<Tenure>) = tenures.into_iter().partition(|(n, _, _)| *n == old);
    assert_eq!(first.iter().map(|t| t.1).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    assert!(first.iter().all(|t| t.2 < new_epoch), "{first:?}");
    assert_eq!(second, vec![(new, 1, new_epoch), (new, 3, new_epoch)]);
}

#[test]
fn a_stale_generation_is_refused_and_ends_older_subscriptions() {
    let mut h = cluster(14, 3, 1);
    produce(&mut h, values(2));
    let old = Group::new(GroupMode::Shared, &[(M1, 1), (M2, 1)]);
    let sub = old.fetch(&mut h, M2, 10, FetchMode::Push { prefetch: 1 });
    h.advance(Duration::from_millis(50));
    assert_eq!(pushed(&mut h, M2, sub).len(), 1);
    let mut new = Group::new(GroupMode::Shared, &[(M1, 1)]);
    new.generation = gen(2);
    assert_eq!(new.poll(&mut h, M1, 10).len(), 2, "M2 left: its lease is released at once");
    match answer(&mut h, M2, sub) {
        Err(e) => assert_eq!(e.code, ErrorCode::IllegalGeneration),
        other => panic!("{other:?}"),
    }
    let c = old.fetch(&mut h, M1, 10, FetchMode::Pull { max_wait: Duration::ZERO });
    assert_eq!(answer(&mut h, M1, c).unwrap_err().code, ErrorCode::IllegalGeneration);
    let c = old.ack(&mut h, M1, &[(0, AckKind::Ack)], None);
    assert_eq!(answer(&mut h, M1, c).unwrap_err().code, ErrorCode::IllegalGeneration);
}

/// A member's newer fetch of a partition replaces its older one, which the
/// leader ends with an answer, so the member knows when nothing more can come
/// on it: a parked pull empty, a push subscription `Superseded`.
#[test]
fn a_members_newer_fetch_ends_its_older_one_with_an_answer() {
    let mut h = cluster(15, 3, 1);
    let g = Group::new(GroupMode::Shared, &[(M1, 1)]);
    let pull = g.fetch(&mut h, M1, 10, FetchMode::Pull { max_wait: Duration::from_secs(5) });
    h.advance(Duration::from_millis(50));
    assert!(h.take_responses(client(M1)).is_empty(), "the pull waits");
    let sub = g.fetch(&mut h, M1, 10, FetchMode::Push { prefetch: 10 });
    h.advance(Duration::from_millis(50));
    assert_eq!(delivered(&mut h, M1, pull), Vec::new(), "the replaced pull is answered empty");
    let newer = g.fetch(&mut h, M1, 10, FetchMode::Push { prefetch: 10 });
    h.advance(Duration::from_millis(50));
    assert_eq!(answer(&mut h, M1, sub).unwrap_err().code, ErrorCode::Superseded);
    produce(&mut h, values(2));
    h.advance(Duration::from_millis(50));
    assert_eq!(offs(&pushed(&mut h, M1, newer)), vec![0, 1], "only the newest subscription gets records");
}

/// A network that delivers a `GroupFetch` twice: the copy is the same fetch, not
/// a newer one that would end it.
#[test]
fn a_duplicated_fetch_is_the_same_fetch() {
    let mut h = cluster(16, 3, 1);
    let g = Group::new(GroupMode::Shared, &[(M1, 1)]);
    let l = leader(&h);
    let body = RequestBody::GroupFetch(GroupFetch {
        view: g.view(M1),
        tp: tp(),
        max_records: 10,
        mode: FetchMode::Push { prefetch: 10 },
    });
    let sub = h.request(client(M1), l, body.clone());
    let again = Message::Request(Request { correlation: sub, body });
    h.input(l, Input::Message { from: Peer::Client(ClientId(client(M1))), msg: again });
    h.advance(Duration::from_millis(50));
    produce(&mut h, values(2));
    h.advance(Duration::from_millis(50));
    assert_eq!(offs(&pushed(&mut h, M1, sub)), vec![0, 1], "the subscription goes on, unended");
}

#[test]
fn cursor_records_are_invisible_to_plain_fetches() {
    let mut h = cluster(15, 3, 1);
    produce(&mut h, values(2));
    let g = Group::new(exclusive(), &[(M1, 1)]);
    g.poll(&mut h, M1, 2);
    g.ack_ok(&mut h, M1, &[(0, AckKind::Ack)], None);
    produce(&mut h, values(1));
    let l = leader(&h);
    let log = h.node(l).log(&tp()).unwrap();
    assert!(log.batches().any(|b| b.kind == mq_core::wire::BatchKind::Control), "a cursor record is in the log");
    let fetch = |h: &mut Harness, offset: u64, max_bytes: u32| {
        let body =
            RequestBody::Fetch { topic: TOPIC.into(), partition: PartitionId(0), offset: Offset(offset), max_bytes };
        let c = h.request(CLIENT, l, body);
        match ok(h, c) {
            ResponseBody::Fetched { batches, .. } => batches,
            other => panic!("{other:?}"),
        }
    };
    let all = fetch(&mut h, 0, u32::MAX);
    assert!(all.iter().all(|b| b.kind == mq_core::wire::BatchKind::Data));
    let offsets: Vec<u64> = all.iter().flat_map(|b| b.iter_with_offsets().map(|(o, _)| o.0)).collect();
    assert_eq!(offsets, vec![0, 1, 3]);
    // A reader positioned on the cursor record with a tiny limit still gets the data after it.
    let from_cursor = fetch(&mut h, 2, 1);
    assert_eq!(from_cursor.iter().flat_map(|b| b.iter_with_offsets().map(|(o, _)| o.0)).collect::<Vec<_>>(), vec![3]);
}

#[test]
fn bad_group_requests_get_clear_errors() {
    let mut h = cluster(16, 3, 1);
    produce(&mut h, values(1));
    let g = Group::new(exclusive(), &[(M1, 1)]);
    let l = leader(&h);
    let other = (1..=3).find(|n| *n != l).unwrap();
    let mut cases: Vec<(RequestBody, u32, ErrorCode)> = Vec::new();
    let fetch = |max_records, mode, tp: TopicPartition| {
        RequestBody::GroupFetch(GroupFetch { view: g.view(M1), tp, max_records, mode })
    };
    let pull = FetchMode::Pull { max_wait: Duration::ZERO };
    cases.push((fetch(0, pull, tp()), l, ErrorCode::InvalidRequest));
    cases.push((fetch(1_000_000, pull, tp()), l, ErrorCode::InvalidRequest));
    cases.push((fetch(1, FetchMode::Push { prefetch: 0 }, tp()), l, ErrorCode::InvalidRequest));
    cases.push((fetch(1, pull, TopicPartition::new("nope", 0)), l, ErrorCode::UnknownTopic));
    cases.push((fetch(1, pull, TopicPartition::new(TOPIC, 7)), l, ErrorCode::UnknownPartition));
    cases.push((fetch(1, pull, tp()), other, ErrorCode::NotLeader));
    cases.push((fetch(1, pull, TopicPartition::new("__groups", 0)), l, ErrorCode::InvalidRequest));
    let mut bad_view = g.view(M1);
    bad_view.members = vec![(M2, 1)];
    cases.push((
        RequestBody::GroupFetch(GroupFetch { view: bad_view, tp: tp(), max_records: 1, mode: pull }),
        l,
        ErrorCode::InvalidRequest,
    ));
    let mut bad_name = g.view(M1);
    bad_name.group = "no spaces".into();
    cases.push((
        RequestBody::GroupFetch(GroupFetch { view: bad_name, tp: tp(), max_records: 1, mode: pull }),
        l,
        ErrorCode::InvalidRequest,
    ));
    let ack = GroupAck {
        group: GROUP.into(),
        member: M1,
        generation: gen(1),
        tp: tp(),
        acks: vec![(Offset(0), AckKind::Ack); 20_000],
        up_to: None,
    };
    cases.push((RequestBody::GroupAck(ack), l, ErrorCode::InvalidRequest));
    for (body, to, code) in cases {
        let what = format!("{body:?}").chars().take(120).collect::<String>();
        let c = h.request(CLIENT, to, body);
        match h.take_response(CLIENT, c).map(|r| r.body) {
            Some(Err(e)) => {
                assert_eq!(e.code, code, "{what}: {e}");
                assert!(!e.message.is_empty());
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn a_closed_connection_ends_its_subscription_and_lost_leadership_ends_pulls() {
    let mut h = cluster(17, 3, 1);
    let g = Group::new(GroupMode::Shared, &[(M1, 1), (M2, 1)]);
    let sub = g.fetch(&mut h, M1, 10, FetchMode::Push { prefetch: 10 });
    let pull = g.fetch(&mut h, M2, 10, FetchMode::Pull { max_wait: Duration::from_secs(60) });
    h.advance(Duration::from_millis(50));
    let l = leader(&h);
    h.input(l, mq_core::Input::Disconnected { peer: mq_core::Peer::Client(mq_core::ClientId(client(M1))) });
    produce(&mut h, values(3));
    assert!(h.take_response(client(M1), sub).is_none(), "no pushes after the connection closed");
    assert_eq!(delivered(&mut h, M2, pull).len(), 3, "the remaining member's pull took them");
    // Leadership moves: a parked pull is answered NotLeader.
    let pull = g.fetch(&mut h, M2, 10, FetchMode::Pull { max_wait: Duration::from_secs(60) });
    h.advance(Duration::from_millis(50));
    h.begin_shutdown(l);
    h.advance(Duration::from_secs(3));
    assert_eq!(answer(&mut h, M2, pull).unwrap_err().code, ErrorCode::NotLeader);
}

#[test]
fn retention_keeps_a_copy_of_each_groups_newest_cursor() {
    let config = TopicConfig {
        replication_factor: 3,
        retention_time: Some(Duration::from_secs(6)),
        ..TopicConfig::new(TOPIC, 1)
    };
    let mut h = cluster_with(18, |c| NodeConfig { retention_check_interval: Duration::from_secs(1), ..c }, config);
    produce(&mut h, values(3));
    let g = Group::new(exclusive(), &[(M1, 1)]);
    assert_eq!(g.poll(&mut h, M1, 3).len(), 3);
    assert_eq!(g.ack_ok(&mut h, M1, &[(0, AckKind::Ack), (2, AckKind::Ack)], None), (1, vec![]));
    for _ in 0..20 {
        produce(&mut h, values(1));
        h.advance(Duration::from_millis(900));
    }
    let l = leader(&h);
    let log = h.node(l).log(&tp()).unwrap();
    assert!(log.log_start() > Offset(3), "retention removed the first cursor record (at 3): {}", log.log_start());
    let rebuilt = mq_core::group::cursor::rebuild(log);
    let acks = &rebuilt.cursors.get(GROUP).expect("a copy of the group's cursor is still in the log").acks;
    assert!(acks.is_acked(Offset(2)) && !acks.is_acked(Offset(1)), "{acks:?}");
}

/// One random delivery request (or a pause) for the property test below.
#[derive(Clone, Debug)]
enum Op {
    Fetch { member: u64, generation: u32, mode: u8, max_records: u32, push: bool, wait_ms: u64, topic: usize },
    Ack { member: u64, generation: u32, offsets: Vec<(u64, u8)>, up_to: Option<u64> },
    Seek { member: u64, generation: u32, to: u8, offset: u64 },
    Produce { n: usize },
    Advance { ms: u64 },
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        (1u64..4, 0u32..4, 0u8..3, 0u32..5, any::<bool>(), 0u64..800, 0usize..3).prop_map(
            |(member, generation, mode, max_records, push, wait_ms, topic)| Op::Fetch {
                member,
                generation,
                mode,
                max_records,
                push,
                wait_ms,
                topic
            }
        ),
        (1u64..4, 0u32..4, proptest::collection::vec((0u64..30, 0u8..3), 0..6), proptest::option::of(0u64..30))
            .prop_map(|(member, generation, offsets, up_to)| Op::Ack { member, generation, offsets, up_to }),
        (1u64..4, 0u32..4, 0u8..4, 0u64..40).prop_map(|(member, generation, to, offset)| Op::Seek {
            member,
            generation,
            to,
            offset
        }),
        (1usize..5).prop_map(|n| Op::Produce { n }),
        (1u64..3_000).prop_map(|ms| Op::Advance { ms }),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]
    /// Random, stale, malformed and racing delivery requests in every mode never
    /// panic the broker (which checks its invariants, the cursors' included, after
    /// every input), and every pull, ack and seek is answered.
    #[test]
    fn random_delivery_requests_never_panic_the_broker(ops in proptest::collection::vec(op(), 1..40)) {
        let mut h = Harness::single();
        let c = h.request(CLIENT, 1, RequestBody::CreateTopic(TopicConfig::new(TOPIC, 1)));
        h.drive();
        assert_eq!(ok(&mut h, c), ResponseBody::TopicCreated);
        let modes = [exclusive(), GroupMode::Shared, GroupMode::KeyShared];
        let topics = [TOPIC, "missing", "__groups"];
        let mut open: Vec<(u64, CorrelationId, bool)> = Vec::new();
        let seeks = ops.iter().any(|o| matches!(o, Op::Seek { .. }));
        for op in ops {
            match op {
                Op::Fetch { member, generation, mode, max_records, push, wait_ms, topic } => {
                    let mut g = Group::new(modes[mode as usize], &[(M1, 1), (M2, 3), (M3, 1)]);
                    g.generation = gen(generation);
                    g.settings.ack_timeout = Duration::from_millis(400);
                    let mode = if push {
                        FetchMode::Push { prefetch: max_records }
                    } else {
                        FetchMode::Pull { max_wait: Duration::from_millis(wait_ms) }
                    };
                    let f = GroupFetch { view: g.view(MemberId(member)), tp: TopicPartition::new(topics[topic], 0), max_records, mode };
                    let c = h.request(client(MemberId(member)), 1, RequestBody::GroupFetch(f));
                    open.push((client(MemberId(member)), c, push));
                }
                Op::Ack { member, generation, offsets, up_to } => {
                    let kinds = [AckKind::Ack, AckKind::Nack { delay: Duration::from_millis(100) }, AckKind::Reject];
                    let a = GroupAck {
                        group: GROUP.into(),
                        member: MemberId(member),
                        generation: gen(generation),
                        tp: tp(),
                        acks: offsets.iter().map(|(o, k)| (Offset(*o), kinds[*k as usize])).collect(),
                        up_to: up_to.map(Offset),
                    };
                    let c = h.request(client(MemberId(member)), 1, RequestBody::GroupAck(a));
                    open.push((client(MemberId(member)), c, false));
                }
                Op::Seek { member, generation, to, offset } => {
                    let to = match to {
                        0 => SeekTo::Offset(Offset(offset)),
                        1 => SeekTo::Timestamp(offset * 100),
                        2 => SeekTo::Earliest,
                        _ => SeekTo::Latest,
                    };
                    let s = GroupSeek { group: GROUP.into(), member: MemberId(member), generation: gen(generation), tp: tp(), to };
                    let c = h.request(client(MemberId(member)), 1, RequestBody::GroupSeek(s));
                    open.push((client(MemberId(member)), c, false));
                }
                Op::Produce { n } => {
                    let body = RequestBody::Produce { topic: TOPIC.into(), partition: PartitionId(0), acks: Acks::Leader, batch: RecordBatch::new(values(n)) };
                    h.request(CLIENT, 1, body);
                }
                Op::Advance { ms } => h.advance(Duration::from_millis(ms)),
            }
        }
        // Everything but push subscriptions is answered within the longest wait
        // (pulls 0.8 s, acks and seeks once committed, dead letters a few tries).
        h.advance(Duration::from_secs(12));
        let mut answered: BTreeSet<(u64, CorrelationId)> = BTreeSet::new();
        for m in [M1, M2, M3] {
            for r in h.take_responses(client(m)) {
                answered.insert((client(m), r.correlation));
            }
        }
        for (c, corr, push) in open {
            proptest::prop_assert!(push || answered.contains(&(c, corr)), "request {corr:?} of client {c} never answered");
        }
        // Without seeks, a confirmed ack is final: nothing it covers is delivered
        // after the `Acked` answer went out.
        if !seeks {
            let mut done_below = Offset(0);
            let mut done: BTreeSet<Offset> = BTreeSet::new();
            for (_, _, e) in h.events() {
                match e {
                    Event::GroupAckCommitted { prefix, acked_above, .. } => {
                        done_below = done_below.max(*prefix);
                        done.extend(acked_above.iter().copied());
                    }
                    Event::GroupDelivered { offset, .. } => proptest::prop_assert!(
                        *offset >= done_below && !done.contains(offset),
                        "{offset} delivered after an ack of it was confirmed"
                    ),
                    _ => {}
                }
            }
        }
    }
}

/// Seed 1000681 of the campaign (`group_ack_final`): a leader in controlled
/// shutdown redelivered records whose leases expired after the controller had
/// already moved the partition, and the new leader had confirmed their acks. A
/// broker that is stopping hands nothing out, not even expired leases again; the
/// new leader deals them from the committed cursor.
#[test]
fn a_stopping_leader_hands_out_nothing_more() {
    let mut h = cluster(23, 3, 1);
    let mut g = Group::new(GroupMode::Shared, &[(M1, 1)]);
    g.settings.ack_timeout = Duration::from_millis(200);
    let sub = g.fetch(&mut h, M1, 10, FetchMode::Push { prefetch: 10 });
    produce(&mut h, values(3));
    assert_eq!(offs(&pushed(&mut h, M1, sub)), vec![0, 1, 2]);
    let l = leader(&h);
    // Its shutdown request cannot reach the controller: until it gives up
    // (`controller_request_timeout`, 2 s), it still leads the partition.
    for other in h.running() {
        if other != l {
            h.cut(l, other);
        }
    }
    let from = h.events().len();
    h.begin_shutdown(l);
    h.advance(Duration::from_secs(1));
    let handed: Vec<(u32, u64, u32)> = h.events()[from..]
        .iter()
        .filter_map(|(_, n, e)| match e {
            Event::GroupDelivered { offset, delivery, .. } => Some((n.0, offset.0, *delivery)),
            _ => None,
        })
        .collect();
    assert!(handed.is_empty(), "the stopping leader handed records again after their leases expired: {handed:?}");
    assert!(h.take_responses(client(M1)).is_empty(), "nothing pushed while stopping");
}

/// Seed 1008486 of the campaign (`group_ack_final`): a leader fenced without
/// knowing it, whose partition already had a new leader confirming acks, went on
/// dealing. A broker deals group records only while its delivery lease runs
/// (the session less a clock margin, from the send time of its newest heartbeat
/// the controller answered unfenced), so a leader cut off from the controller
/// stops dealing before the controller can have fenced it and moved its
/// partitions.
#[test]
fn a_leader_cut_off_from_the_controller_stops_dealing_before_it_can_be_replaced() {
    let mut h = cluster(25, 3, 1);
    let mut g = Group::new(GroupMode::Shared, &[(M1, 1)]);
    g.settings.ack_timeout = Duration::from_millis(200);
    g.settings.max_deliveries = 1_000;
    let sub = g.fetch(&mut h, M1, 10, FetchMode::Push { prefetch: 10 });
    produce(&mut h, values(3));
    assert_eq!(offs(&pushed(&mut h, M1, sub)), vec![0, 1, 2]);
    let l = leader(&h);
    // Cut off from every other broker, and so from the controller, whichever
    // it is: the member still reaches it and never acks, so its leases expire
    // and it deals the records again every 200 ms for as long as it may.
    let cut_at = h.now();
    for other in h.running() {
        if other != l {
            h.cut(l, other);
        }
    }
    let from = h.events().len();
    h.advance(Duration::from_secs(8));
    let tp = tp();
    let replaced = h.events()[from..]
        .iter()
        .find_map(|(at, n, e)| match e {
            Event::BecameLeader { tp: t, .. } if *t == tp && n.0 != l => Some(*at),
            _ => None,
        })
        .expect("another broker leads orders/0 once the cut-off one is fenced");
    let dealt: Vec<_> = h.events()[from..]
        .iter()
        .filter_map(|(at, n, e)| match e {
            Event::GroupDelivered { .. } if n.0 == l => Some(*at),
            _ => None,
        })
        .collect();
    assert!(dealt.iter().any(|at| *at > cut_at), "the leader dealt again while its lease ran");
    let late: Vec<_> = dealt.iter().filter(|at| **at >= replaced).collect();
    assert!(late.is_empty(), "dealt at {late:?} after broker {l} was replaced at {replaced}");
    let lease_end = cut_at + h.node(l).config().delivery_lease();
    assert!(dealt.iter().all(|at| *at < lease_end), "dealt after its lease lapsed ({lease_end}): {dealt:?}");
}

/// Seed 1007295 of the campaign (`group_completion`): dead-letter appends on
/// links slower than half the controller request timeout. Each append's round
/// trip was given a fixed half of that timeout, so every one expired before its
/// answer and was written again at once: tens of thousands of copies, until the
/// dead-letter partition's followers fell out of its ISR for good. An append not
/// answered in time now counts as a `Timeout`: the next waits twice as long.
#[test]
fn dead_letter_appends_wait_longer_after_each_unanswered_one() {
    let config = TopicConfig { replication_factor: 3, min_insync_replicas: 1, ..TopicConfig::new(TOPIC, 1) };
    let mut h = cluster_with(24, |c| NodeConfig { controller_request_timeout: Duration::from_millis(20), ..c }, config);
    produce(&mut h, values(2));
    let g = Group::new(exclusive(), &[(M1, 1)]);
    assert_eq!(g.poll(&mut h, M1, 2).len(), 2);
    // The first dead letter creates `orders.dlq` on fast links.
    assert_eq!(g.ack_ok(&mut h, M1, &[(0, AckKind::Reject)], None).1, vec![]);
    h.advance(Duration::from_secs(1));
    assert_eq!(dead_letters(&mut h).len(), 1);
    // Now every round trip takes 30 ms and more, past the first append's 20 ms.
    h.network_delay = Duration::from_millis(15);
    let c = g.ack(&mut h, M1, &[(1, AckKind::Reject)], None);
    h.advance(Duration::from_secs(3));
    assert!(matches!(answer(&mut h, M1, c), Ok(ResponseBody::Acked { .. })));
    let copies = dead_letters(&mut h).len() - 1;
    assert!((1..=3).contains(&copies), "the second dead letter was written {copies} times");
    let dead_lettered =
        h.events().iter().filter(|(_, _, e)| matches!(e, Event::DeadLettered { offset: Offset(1), .. })).count();
    assert_eq!(dead_lettered, 1, "the second record is dead-lettered once it is answered");
}
