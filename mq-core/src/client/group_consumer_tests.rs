//! The group consumer driven with scripted broker answers (docs/consumers.md
//! section 6.6).

use super::*;
use crate::client::auth::scripted::AuthBroker;
use crate::group::assign::Assignor;
use crate::ids::{Generation, LeaderEpoch, PartitionId};
use crate::wire::{DeliveredRecord, PartitionInfo, Response, TopicConfig, TopicInfo};

const HEARTBEAT: Duration = Duration::from_millis(1_000);

fn tp(p: u32) -> TopicPartition {
    TopicPartition::new("t", p)
}

fn gen(epoch: u32, g: u32) -> GroupGeneration {
    GroupGeneration { coordinator_epoch: LeaderEpoch(epoch), generation: Generation(g) }
}

fn config() -> GroupConsumerConfig {
    GroupConsumerConfig::new([NodeId(1), NodeId(2), NodeId(3)], "g", ["t"])
        .session_timeout(Duration::from_secs(3))
        .request_timeout(Duration::from_millis(500))
        .retry_backoff(Duration::from_millis(100), Duration::from_millis(800))
        .pull(10, Duration::from_secs(5))
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// Drains the requests the consumer wants sent.
fn sends(c: &mut GroupConsumer) -> Vec<(NodeId, CorrelationId, RequestBody)> {
    std::iter::from_fn(|| c.poll_output())
        .map(|GroupConsumerOutput::Send { to, msg }| match (to, msg) {
            (Peer::Node(n), Message::Request(r)) => (n, r.correlation, r.body),
            other => panic!("not a request to a broker: {other:?}"),
        })
        .collect()
}

fn one(c: &mut GroupConsumer) -> (NodeId, CorrelationId, RequestBody) {
    let mut s = sends(c);
    assert_eq!(s.len(), 1, "expected one request, got {s:?}");
    s.remove(0)
}

fn events(c: &mut GroupConsumer) -> Vec<GroupEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn answer(
    c: &mut GroupConsumer,
    now: Instant,
    from: NodeId,
    corr: CorrelationId,
    body: Result<ResponseBody, WireError>,
) {
    let msg = Message::Response(Response { correlation: corr, body });
    c.handle(now, Input::Message { from: Peer::Node(from), msg });
}

fn err(code: ErrorCode) -> Result<ResponseBody, WireError> {
    Err(WireError::new(code, "scripted"))
}

fn joined(member: u64, generation: GroupGeneration, assignment: &[u32]) -> Result<ResponseBody, WireError> {
    Ok(ResponseBody::Joined(Joined {
        member: MemberId(member),
        generation,
        assignment: assignment.iter().map(|p| tp(*p)).collect(),
        heartbeat_interval: HEARTBEAT,
        settings: GroupSettings::default(),
        peers: vec![("t".into(), vec![(MemberId(member), 1)])],
    }))
}

/// Metadata naming `leader` (at `epoch`) for partitions 0 and 1 of `t`.
fn metadata(leader: u32, epoch: u32) -> Result<ResponseBody, WireError> {
    let partitions = (0..2)
        .map(|p| PartitionInfo {
            partition: PartitionId(p),
            leader: Some(NodeId(leader)),
            leader_epoch: LeaderEpoch(epoch),
            replicas: vec![NodeId(1), NodeId(2), NodeId(3)],
            isr: vec![NodeId(1), NodeId(2), NodeId(3)],
            log_start: Offset(0),
            high_watermark: Offset(100),
        })
        .collect();
    let topics = vec![TopicInfo { config: TopicConfig::new("t", 2), partitions }];
    Ok(ResponseBody::Metadata { brokers: vec![NodeId(1), NodeId(2), NodeId(3)], controller: None, topics })
}

fn delivered(p: u32, offsets: &[u64]) -> Result<ResponseBody, WireError> {
    let records = offsets
        .iter()
        .map(|o| DeliveredRecord { offset: Offset(*o), delivery: 1, record: Record::from_value(format!("r{o}")) })
        .collect();
    Ok(ResponseBody::Delivered { tp: tp(p), high_watermark: Offset(100), records })
}

fn coordinator(n: u32) -> Result<ResponseBody, WireError> {
    Ok(ResponseBody::Coordinator {
        coordinator: NodeId(n),
        partition: PartitionId(0),
        coordinator_epoch: LeaderEpoch(1),
    })
}

/// A new consumer that found coordinator `coord` at 1 ms; returns it and its
/// first join (sent to `coord`).
fn joining(config: GroupConsumerConfig, coord: u32) -> (GroupConsumer, CorrelationId, JoinGroup) {
    let mut c = GroupConsumer::new(config, 1).unwrap();
    c.handle(at(0), Input::Timeout);
    let (to, corr, body) = one(&mut c);
    assert!(matches!(body, RequestBody::FindCoordinator { ref group } if group == "g"), "{body:?}");
    answer(&mut c, at(1), to, corr, coordinator(coord));
    let (to, corr, body) = one(&mut c);
    assert_eq!(to, NodeId(coord), "joins go to the coordinator");
    let RequestBody::JoinGroup(join) = body else { panic!("a join, got {body:?}") };
    (c, corr, join)
}

/// A consumer that found coordinator 1, joined as member 7 at generation 1.1 with
/// partition t/0, and learnt that broker 2 leads it; returns its first fetch.
fn stable(config: GroupConsumerConfig) -> (GroupConsumer, CorrelationId, RequestBody) {
    let (mut c, corr, join) = joining(config, 1);
    assert_eq!(join.member, None, "a first join has no member id");
    assert_eq!(join.topics, vec!["t".to_string()]);
    answer(&mut c, at(2), NodeId(1), corr, joined(7, gen(1, 1), &[0]));
    assert_eq!(
        events(&mut c),
        vec![GroupEvent::Rebalanced { member: MemberId(7), generation: gen(1, 1), assignment: vec![tp(0)] }]
    );
    let (to, corr, body) = one(&mut c);
    assert!(matches!(body, RequestBody::Metadata { .. }), "{body:?}");
    answer(&mut c, at(3), to, corr, metadata(2, 1));
    let (to, corr, body) = one(&mut c);
    assert_eq!(to, NodeId(2), "the fetch goes to the partition's leader");
    (c, corr, body)
}

#[test]
fn happy_path_find_join_metadata_fetch_deliver_ack_and_confirm() {
    let (mut c, corr, body) = stable(config());
    let RequestBody::GroupFetch(f) = body else { panic!("a fetch, got {body:?}") };
    assert_eq!(f.tp, tp(0));
    assert_eq!(f.max_records, 10);
    assert_eq!(f.mode, FetchMode::Pull { max_wait: Duration::from_secs(5) });
    assert_eq!(f.view.member, MemberId(7));
    assert_eq!(f.view.generation, gen(1, 1));
    assert_eq!(f.view.members, vec![(MemberId(7), 1)], "the view carries the topic's peers");

    answer(&mut c, at(10), NodeId(2), corr, delivered(0, &[0, 1, 2]));
    let (to, _, body) = one(&mut c);
    assert!(matches!(body, RequestBody::GroupFetch(_)) && to == NodeId(2), "answered pulls are sent again");
    let got: Vec<(Offset, u32)> = std::iter::from_fn(|| c.poll_record()).map(|r| (r.offset, r.delivery)).collect();
    assert_eq!(got, vec![(Offset(0), 1), (Offset(1), 1), (Offset(2), 1)]);

    c.ack(at(11), &tp(0), Offset(0)).unwrap();
    c.nack(at(11), &tp(0), Offset(1), Duration::from_millis(50)).unwrap();
    c.reject(at(11), &tp(0), Offset(2)).unwrap();
    c.ack_up_to(at(11), &tp(0), Offset(1)).unwrap();
    assert_eq!(c.poll_timeout(), Some(at(11)), "queued acks want a drain now");
    let (to, corr, body) = one(&mut c);
    assert_eq!(to, NodeId(2), "acks go to the partition leader");
    let RequestBody::GroupAck(a) = body else { panic!("an ack, got {body:?}") };
    let expected = vec![
        (Offset(0), AckKind::Ack),
        (Offset(1), AckKind::Nack { delay: Duration::from_millis(50) }),
        (Offset(2), AckKind::Reject),
    ];
    assert_eq!(a.acks, expected, "one request carries every ack made since the last drain");
    assert_eq!((a.up_to, a.generation, a.member), (Some(Offset(1)), gen(1, 1), MemberId(7)));
    assert!(events(&mut c).is_empty(), "nothing is confirmed before Acked");
    assert_eq!(c.pending_acks(), 4);

    let acked =
        ResponseBody::Acked { tp: tp(0), prefix: Offset(1), refused: vec![(Offset(1), ErrorCode::InvalidRequest)] };
    answer(&mut c, at(20), NodeId(2), corr, Ok(acked));
    let confirmed = vec![(Offset(0), AckKind::Ack), (Offset(2), AckKind::Reject)];
    assert_eq!(
        events(&mut c),
        vec![GroupEvent::AcksConfirmed {
            tp: tp(0),
            acks: confirmed,
            up_to: Some(Offset(1)),
            prefix: Offset(1),
            refused: vec![(Offset(1), ErrorCode::InvalidRequest)],
        }]
    );
    assert_eq!(c.pending_acks(), 0);
}

#[test]
fn heartbeats_leave_every_interval_from_the_previous_one() {
    let (mut c, _, _) = stable(config());
    // Joined at 2 ms: the first heartbeat is due at 1002 ms.
    assert_eq!(c.poll_timeout(), Some(at(2) + HEARTBEAT));
    c.handle(at(1_001), Input::Timeout);
    assert!(sends(&mut c).is_empty(), "no heartbeat before the interval");
    c.handle(at(1_002), Input::Timeout);
    let (to, corr, body) = one(&mut c);
    assert_eq!(to, NodeId(1), "heartbeats go to the coordinator");
    assert_eq!(body, RequestBody::Heartbeat { group: "g".into(), member: MemberId(7), generation: gen(1, 1) });
    // Answered late; the next one is still due an interval after this one left.
    answer(&mut c, at(1_400), to, corr, Ok(ResponseBody::HeartbeatOk));
    c.handle(at(2_001), Input::Timeout);
    assert!(sends(&mut c).is_empty());
    c.handle(at(2_002), Input::Timeout);
    assert!(matches!(one(&mut c).2, RequestBody::Heartbeat { .. }));
}

#[test]
fn rebalance_stops_fetching_flushes_acks_with_the_old_generation_then_rejoins_with_its_id() {
    let (mut c, fetch, _) = stable(config());
    answer(&mut c, at(10), NodeId(2), fetch, delivered(0, &[0]));
    let (_, fetch, _) = one(&mut c);
    assert!(c.poll_record().is_some());
    c.ack(at(11), &tp(0), Offset(0)).unwrap();
    // The heartbeat says a rebalance runs before the driver drained the ack.
    c.handle(at(1_002), Input::Timeout);
    let sent = sends(&mut c);
    let (hb_to, hb, _) = sent.iter().find(|s| matches!(s.2, RequestBody::Heartbeat { .. })).cloned().unwrap();
    let ack = sent.iter().find(|s| matches!(s.2, RequestBody::GroupAck(_))).cloned();
    assert!(ack.is_some(), "the ack left with the heartbeat's drain: {sent:?}");
    answer(&mut c, at(1_003), hb_to, hb, err(ErrorCode::RebalanceInProgress));
    assert_eq!(events(&mut c), vec![GroupEvent::RebalanceStarted { reason: ErrorCode::RebalanceInProgress }]);
    assert!(!c.is_stable());
    let sent = sends(&mut c);
    assert_eq!(sent.len(), 1, "only the join: no fetch while rebalancing: {sent:?}");
    let RequestBody::JoinGroup(join) = &sent[0].2 else { panic!("a join, got {sent:?}") };
    assert_eq!(join.member, Some(MemberId(7)), "a rejoin carries the member id");
    // The old fetch's answer is ignored: its records are not handed out.
    answer(&mut c, at(1_004), NodeId(2), fetch, delivered(0, &[1]));
    assert_eq!(c.poll_record(), None);
    assert!(sends(&mut c).is_empty());
}

#[test]
fn a_shared_member_keeps_taking_pushes_of_its_old_subscription_until_the_next_one_replaces_it() {
    let (mut c, sub, _) = stable(config().mode(GroupMode::Shared).push(5, 20));
    heartbeat_refused(&mut c, ErrorCode::RebalanceInProgress);
    let (to, join, _) = one(&mut c);
    // The leader still holds the subscription and pushes: those records are
    // leased to this member, which stays in the shared group's view.
    answer(&mut c, at(1_004), NodeId(2), sub, delivered(0, &[3]));
    let r = c.poll_record().expect("taken while rejoining");
    assert_eq!((r.offset, r.generation), (Offset(3), gen(1, 1)));
    assert!(sends(&mut c).is_empty(), "no new fetch while rejoining");
    answer(&mut c, at(1_005), to, join, joined(7, gen(1, 2), &[0]));
    let (_, _, body) = one(&mut c);
    assert!(matches!(&body, RequestBody::GroupFetch(f) if f.view.generation == gen(1, 2)), "{body:?}");
    // Pushes dealt on the old subscription before the leader saw the new one
    // are on their way: they are leased to this member and taken.
    answer(&mut c, at(1_006), NodeId(2), sub, delivered(0, &[4]));
    let r = c.poll_record().expect("a push dealt before the replacement is taken");
    assert_eq!((r.offset, r.generation), (Offset(4), gen(1, 1)));
    // The leader ends the old subscription when the new one replaces it;
    // nothing after that end is taken.
    answer(&mut c, at(1_007), NodeId(2), sub, err(ErrorCode::Superseded));
    c.check_invariants();
    answer(&mut c, at(1_008), NodeId(2), sub, delivered(0, &[5]));
    assert_eq!(c.poll_record(), None);
}

/// A shared member's pull parked at the leader when a rebalance began: the
/// leader deals a record on it just before the member's pull of the new
/// generation replaces it. The record is leased to the member, so the member
/// takes it; forgetting the old pull when the new one was sent left the record
/// unseen until its ack timeout (mq-net's `two_shared_members_split_the_records`
/// test, about one run in ten).
#[test]
fn a_shared_member_takes_what_its_old_pull_got_after_the_new_pull_left() {
    let (mut c, pull, _) = stable(config().mode(GroupMode::Shared));
    heartbeat_refused(&mut c, ErrorCode::RebalanceInProgress);
    let (to, join, _) = one(&mut c);
    answer(&mut c, at(1_005), to, join, joined(7, gen(1, 2), &[0]));
    let (_, new_pull, body) = one(&mut c);
    assert!(matches!(&body, RequestBody::GroupFetch(f) if f.view.generation == gen(1, 2)), "{body:?}");
    answer(&mut c, at(1_006), NodeId(2), pull, delivered(0, &[8]));
    let r = c.poll_record().expect("the old pull's record is taken");
    assert_eq!((r.offset, r.generation), (Offset(8), gen(1, 1)));
    c.check_invariants();
    // That answer ended the old pull; the new one goes on.
    answer(&mut c, at(1_007), NodeId(2), pull, delivered(0, &[9]));
    assert_eq!(c.poll_record(), None, "a pull has one answer");
    answer(&mut c, at(1_008), NodeId(2), new_pull, delivered(0, &[9]));
    assert_eq!(c.poll_record().map(|r| (r.offset, r.generation)), Some((Offset(9), gen(1, 2))));
}

/// Rebalances in a row while the leader answers nothing leave at most
/// `MAX_ORPHANS_PER_PARTITION` old fetches per partition listened on.
#[test]
fn old_fetches_listened_on_are_bounded_per_partition() {
    let (mut c, _, _) = stable(config().mode(GroupMode::Shared).push(5, 20));
    for g in 2..12 {
        // The next heartbeat hears of a rebalance.
        let (now, sent) = wake(&mut c);
        let [(to, hb, RequestBody::Heartbeat { .. })] = &sent[..] else { panic!("a heartbeat, got {sent:?}") };
        answer(&mut c, now, *to, *hb, err(ErrorCode::RebalanceInProgress));
        let (to, join, _) = one(&mut c);
        answer(&mut c, now, to, join, joined(7, gen(1, g), &[0]));
        let (_, _, body) = one(&mut c);
        assert!(matches!(body, RequestBody::GroupFetch(_)), "{body:?}");
        c.check_invariants();
    }
}

#[test]
fn acks_queued_during_a_rebalance_leave_with_the_old_generation() {
    let (mut c, _, _) = stable(config());
    heartbeat_refused(&mut c, ErrorCode::RebalanceInProgress);
    let _join = one(&mut c);
    c.ack(at(1_004), &tp(0), Offset(3)).unwrap();
    let (to, _, body) = one(&mut c);
    let RequestBody::GroupAck(a) = body else { panic!("an ack, got {body:?}") };
    assert_eq!((to, a.generation), (NodeId(2), gen(1, 1)), "flushed to the leader with the old generation");
}

#[test]
fn unknown_member_joins_without_an_id_and_illegal_generation_with_it() {
    for (code, id) in [(ErrorCode::UnknownMember, None), (ErrorCode::IllegalGeneration, Some(MemberId(7)))] {
        let (mut c, _, _) = stable(config());
        heartbeat_refused(&mut c, code);
        let RequestBody::JoinGroup(join) = one(&mut c).2 else { panic!("a join") };
        assert_eq!(join.member, id, "after {code}");
    }
}

#[test]
fn a_rejoin_refused_joins_again_with_the_identity_the_refusal_asks_for() {
    let (mut c, _, _) = stable(config());
    heartbeat_refused(&mut c, ErrorCode::RebalanceInProgress);
    let (to, corr, body) = one(&mut c);
    assert!(matches!(&body, RequestBody::JoinGroup(j) if j.member == Some(MemberId(7))), "{body:?}");
    answer(&mut c, at(1_004), to, corr, err(ErrorCode::IllegalGeneration));
    let (to, corr, body) = one(&mut c);
    assert!(matches!(&body, RequestBody::JoinGroup(j) if j.member == Some(MemberId(7))), "{body:?}");
    answer(&mut c, at(1_005), to, corr, err(ErrorCode::UnknownMember));
    let (to, corr, body) = one(&mut c);
    assert!(matches!(&body, RequestBody::JoinGroup(j) if j.member.is_none()), "{body:?}");
    // A join that goes unanswered finds the coordinator again, then joins.
    c.handle(at(1_005) + Duration::from_secs(30), Input::Timeout);
    assert_eq!(c.coordinator(), None);
    let (_, sent) = wake(&mut c);
    let [(fto, fcorr, RequestBody::FindCoordinator { .. })] = &sent[..] else { panic!("a find, got {sent:?}") };
    answer(&mut c, at(40_000), *fto, *fcorr, coordinator(2));
    let (to2, _, body) = one(&mut c);
    assert!(matches!(&body, RequestBody::JoinGroup(j) if j.member.is_none()) && to2 == NodeId(2), "{body:?}");
    let _ = (to, corr);
}

#[test]
fn a_moved_coordinator_is_looked_up_again_and_the_member_rejoins_there() {
    let (mut c, _, _) = stable(config());
    heartbeat_refused(&mut c, ErrorCode::NotCoordinator);
    assert_eq!(c.coordinator(), None);
    assert!(c.is_stable(), "a stale coordinator alone does not stop fetching");
    // After a backoff of 50 to 100 ms it asks any broker again.
    c.handle(at(1_052), Input::Timeout);
    let mut find = sends(&mut c);
    if find.is_empty() {
        c.handle(at(1_103), Input::Timeout);
        find = sends(&mut c);
    }
    let (to, corr, body) = find.pop().expect("a FindCoordinator");
    assert!(matches!(body, RequestBody::FindCoordinator { .. }), "{body:?}");
    answer(&mut c, at(1_110), to, corr, coordinator(3));
    let (to, hb, body) = one(&mut c);
    assert!(matches!(body, RequestBody::Heartbeat { .. }) && to == NodeId(3), "heartbeat the new coordinator");
    answer(&mut c, at(1_111), to, hb, err(ErrorCode::UnknownMember));
    let (to, _, body) = one(&mut c);
    let RequestBody::JoinGroup(join) = body else { panic!("a join") };
    assert_eq!((to, join.member), (NodeId(3), None), "a fresh join at the new coordinator");
}

#[test]
fn a_join_refused_not_coordinator_finds_the_coordinator_again() {
    let (mut c, corr, _) = joining(config(), 1);
    answer(&mut c, at(2), NodeId(1), corr, err(ErrorCode::NotCoordinator));
    assert_eq!(c.coordinator(), None);
    let t = c.poll_timeout().unwrap();
    assert!(t >= at(52) && t <= at(102), "find again after a backoff: {t}");
    c.handle(t, Input::Timeout);
    assert!(matches!(one(&mut c).2, RequestBody::FindCoordinator { .. }));
}

/// The first heartbeat (due at 1002 ms) is answered `code`.
fn heartbeat_refused(c: &mut GroupConsumer, code: ErrorCode) {
    c.handle(at(1_002), Input::Timeout);
    let (to, hb, body) = one(c);
    assert!(matches!(body, RequestBody::Heartbeat { .. }), "{body:?}");
    answer(c, at(1_003), to, hb, err(code));
}

/// Runs the consumer to its next wake-up; returns it and what it sent.
fn wake(c: &mut GroupConsumer) -> (Instant, Vec<(NodeId, CorrelationId, RequestBody)>) {
    let t = c.poll_timeout().expect("a wake-up");
    c.handle(t, Input::Timeout);
    (t, sends(c))
}

#[test]
fn leader_moved_mid_fetch_refreshes_metadata_and_fetches_from_the_new_leader() {
    let (mut c, fetch, _) = stable(config());
    answer(&mut c, at(10), NodeId(2), fetch, err(ErrorCode::NotLeader));
    assert_eq!(c.leader(&tp(0)), None);
    // Metadata is asked at most once per backoff (the last went at 3 ms).
    let (mut now, mut sent) = (at(10), sends(&mut c));
    while sent.is_empty() {
        (now, sent) = wake(&mut c);
    }
    let [(to, corr, RequestBody::Metadata { .. })] = &sent[..] else { panic!("metadata, got {sent:?}") };
    answer(&mut c, now, *to, *corr, metadata(3, 2));
    // The fetch waits out its backoff (50 to 100 ms after the refusal).
    let (mut t, mut sent) = (now, sends(&mut c));
    if sent.is_empty() {
        (t, sent) = wake(&mut c);
    }
    assert!(t >= at(60) && t <= at(110), "{t}");
    let [(to, _, RequestBody::GroupFetch(_))] = &sent[..] else { panic!("a fetch, got {sent:?}") };
    assert_eq!(*to, NodeId(3), "to the new leader");
    // A closed connection forgets the leader too; older metadata never brings
    // the old leader back.
    c.handle(t, Input::Disconnected { peer: Peer::Node(NodeId(3)) });
    let mut sent = sends(&mut c);
    while sent.is_empty() {
        sent = wake(&mut c).1;
    }
    let [(to, corr, RequestBody::Metadata { .. })] = &sent[..] else { panic!("metadata, got {sent:?}") };
    let now = c.poll_timeout().unwrap();
    answer(&mut c, now, *to, *corr, metadata(2, 1));
    assert_eq!(c.leader(&tp(0)), None, "epoch 1 is older than epoch 2");
}

#[test]
fn an_unanswered_ack_is_sent_again_to_the_new_leader() {
    let (mut c, _, _) = stable(config());
    c.ack(at(10), &tp(0), Offset(4)).unwrap();
    let sent = sends(&mut c);
    assert!(sent.iter().any(|s| matches!(s.2, RequestBody::GroupAck(_)) && s.0 == NodeId(2)));
    // No answer by the request deadline: the leader is forgotten.
    c.handle(at(510), Input::Timeout);
    let sent = sends(&mut c);
    let (to, corr, _) = sent.iter().find(|s| matches!(s.2, RequestBody::Metadata { .. })).cloned().unwrap();
    answer(&mut c, at(511), to, corr, metadata(3, 2));
    let t = c.poll_timeout().unwrap();
    c.handle(t, Input::Timeout);
    let sent = sends(&mut c);
    let ack = sent.iter().find(|s| matches!(s.2, RequestBody::GroupAck(_))).expect("the ack again");
    let RequestBody::GroupAck(a) = &ack.2 else { unreachable!() };
    assert_eq!((ack.0, a.acks.clone()), (NodeId(3), vec![(Offset(4), AckKind::Ack)]));
    assert!(events(&mut c).iter().all(|e| !matches!(e, GroupEvent::AcksConfirmed { .. })));
}

#[test]
fn push_answers_arrive_repeatedly_on_one_subscription() {
    let (mut c, sub, body) = stable(config().push(5, 20));
    let RequestBody::GroupFetch(f) = body else { panic!("a fetch") };
    assert_eq!((f.mode, f.max_records), (FetchMode::Push { prefetch: 20 }, 5));
    for (i, offsets) in [[0u64, 1], [2, 3], [4, 5]].iter().enumerate() {
        answer(&mut c, at(10 + i as u64), NodeId(2), sub, delivered(0, offsets));
        assert!(sends(&mut c).is_empty(), "a subscription is not sent again after a push");
    }
    let got: Vec<u64> = std::iter::from_fn(|| c.poll_record()).map(|r| r.offset.0).collect();
    assert_eq!(got, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(c.records_received(), 6);
    // An error ends the subscription: the member subscribes again.
    answer(&mut c, at(20), NodeId(2), sub, err(ErrorCode::Backpressure));
    let t = c.poll_timeout().unwrap();
    c.handle(t, Input::Timeout);
    let (to, again, body) = one(&mut c);
    assert!(matches!(body, RequestBody::GroupFetch(_)) && to == NodeId(2));
    assert_ne!(again, sub);
    // Late pushes on the ended subscription are ignored.
    answer(&mut c, t, NodeId(2), sub, delivered(0, &[9]));
    assert_eq!(c.poll_record(), None);
}

#[test]
fn a_silent_push_subscription_is_opened_again_after_a_session_timeout() {
    let (mut c, sub, _) = stable(config().push(5, 20));
    answer(&mut c, at(10), NodeId(2), sub, delivered(0, &[0]));
    // Heartbeats keep coming; the subscription stays silent for 3 s after its last push.
    let mut now = at(10);
    let mut fetches = Vec::new();
    while now < at(3_200) {
        now = c.poll_timeout().unwrap();
        c.handle(now, Input::Timeout);
        for (to, corr, body) in sends(&mut c) {
            match body {
                RequestBody::Heartbeat { .. } => answer(&mut c, now, to, corr, Ok(ResponseBody::HeartbeatOk)),
                RequestBody::Metadata { .. } => answer(&mut c, now, to, corr, metadata(2, 1)),
                RequestBody::GroupFetch(_) => fetches.push(now),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(fetches.len(), 1, "{fetches:?}");
    assert!(fetches[0] >= at(3_010), "not before the subscription was silent a session timeout");
}

/// Seed 1000989: a leader still pushes on a subscription the member gave up as
/// silent (a redelivery after an `ack_timeout` longer than the session timeout).
/// The records are leased to the member: they are taken until the member's new
/// subscription replaces that one, in exclusive groups as in shared ones.
#[test]
fn pushes_on_a_subscription_given_up_as_silent_are_taken_until_it_is_replaced() {
    for mode in [GroupMode::Shared, GroupMode::Exclusive(crate::group::assign::Assignor::Sticky)] {
        let (mut c, sub, _) = stable(config().mode(mode).push(5, 20));
        answer(&mut c, at(10), NodeId(2), sub, delivered(0, &[0]));
        assert_eq!(c.poll_record().map(|r| r.offset.0), Some(0));
        let mut now = at(10);
        let mut resubscribed = None;
        let mut pushed_late = false;
        while resubscribed.is_none() {
            now = c.poll_timeout().unwrap();
            c.handle(now, Input::Timeout);
            if now >= at(3_010) && !pushed_late {
                // The redelivery reaches the subscription just given up.
                answer(&mut c, now, NodeId(2), sub, delivered(0, &[0]));
                assert_eq!(c.poll_record().map(|r| (r.offset.0, r.delivery)), Some((0, 1)), "{mode:?}");
                pushed_late = true;
            }
            for (to, corr, body) in sends(&mut c) {
                match body {
                    RequestBody::Heartbeat { .. } => answer(&mut c, now, to, corr, Ok(ResponseBody::HeartbeatOk)),
                    RequestBody::Metadata { .. } => answer(&mut c, now, to, corr, metadata(2, 1)),
                    RequestBody::GroupFetch(_) => resubscribed = Some(corr),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert!(pushed_late);
        c.check_invariants();
        // A push the leader dealt on the old subscription before it saw the new
        // one is taken; the leader's `Superseded` ends the old one, and the new
        // one's pushes are taken.
        answer(&mut c, now, NodeId(2), sub, delivered(0, &[5]));
        assert_eq!(c.poll_record().map(|r| r.offset.0), Some(5), "{mode:?}");
        answer(&mut c, now, NodeId(2), sub, err(ErrorCode::Superseded));
        answer(&mut c, now, NodeId(2), sub, delivered(0, &[7]));
        assert_eq!(c.poll_record(), None, "{mode:?}");
        answer(&mut c, now, NodeId(2), resubscribed.unwrap(), delivered(0, &[6]));
        assert_eq!(c.poll_record().map(|r| r.offset.0), Some(6));
    }
}

#[test]
fn a_find_refused_unauthorized_is_reported_and_retried_after_a_backoff() {
    let mut c = GroupConsumer::new(config(), 1).unwrap();
    c.handle(at(0), Input::Timeout);
    let (to, corr, _) = one(&mut c);
    answer(&mut c, at(10), to, corr, err(ErrorCode::Unauthorized));
    let ev = events(&mut c);
    assert!(
        matches!(&ev[..], [GroupEvent::Error { error }] if error.code == ErrorCode::Unauthorized),
        "the application hears of it: {ev:?}"
    );
    assert!(sends(&mut c).is_empty(), "not again before the backoff");
    let t = c.poll_timeout().unwrap();
    c.handle(t, Input::Timeout);
    assert!(matches!(one(&mut c).2, RequestBody::FindCoordinator { .. }), "looked up again");
}

#[test]
fn an_unanswered_find_goes_to_another_broker_after_a_growing_backoff() {
    let mut c = GroupConsumer::new(config(), 1).unwrap();
    c.handle(at(0), Input::Timeout);
    let (first, _, _) = one(&mut c);
    assert_eq!(c.poll_timeout(), Some(at(500)), "the request deadline");
    c.handle(at(500), Input::Timeout);
    assert!(sends(&mut c).is_empty(), "not again before the backoff");
    let t1 = c.poll_timeout().unwrap();
    assert!(t1 >= at(550) && t1 <= at(600), "first backoff 50 to 100 ms: {t1}");
    c.handle(t1, Input::Timeout);
    let (second, corr, _) = one(&mut c);
    assert_ne!(first, second, "rotates over the brokers");
    answer(&mut c, t1, second, corr, err(ErrorCode::CoordinatorNotAvailable));
    let t2 = c.poll_timeout().unwrap();
    let wait = t2.saturating_since(t1);
    assert!(wait >= Duration::from_millis(100) && wait <= Duration::from_millis(200), "doubled: {wait}");
}

#[test]
fn close_flushes_acks_then_leaves_the_group() {
    let (mut c, fetch, _) = stable(config());
    answer(&mut c, at(10), NodeId(2), fetch, delivered(0, &[0, 1]));
    let _ = sends(&mut c);
    let r = c.poll_record().unwrap();
    c.ack(at(11), &tp(0), r.offset).unwrap();
    c.close(at(11), Duration::from_secs(2));
    assert_eq!(c.poll_record(), None, "records not taken are dropped");
    assert_eq!(c.ack(at(11), &tp(0), Offset(1)), Err(AckError::Closing));
    let (to, corr, body) = one(&mut c);
    assert!(matches!(body, RequestBody::GroupAck(_)), "acks first, no leave yet: {body:?}");
    let acked = ResponseBody::Acked { tp: tp(0), prefix: Offset(1), refused: vec![] };
    answer(&mut c, at(20), to, corr, Ok(acked));
    let (to, corr, body) = one(&mut c);
    assert_eq!((to, body), (NodeId(1), RequestBody::LeaveGroup { group: "g".into(), member: MemberId(7) }));
    assert!(!c.is_closed());
    answer(&mut c, at(21), to, corr, Ok(ResponseBody::Left));
    assert!(c.is_closed());
    let ev = events(&mut c);
    assert!(matches!(ev[0], GroupEvent::RecordsDropped { count: 1, .. }), "{ev:?}");
    assert!(matches!(ev[1], GroupEvent::AcksConfirmed { .. }), "{ev:?}");
    assert_eq!(ev[2], GroupEvent::Closed);
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn close_drops_acks_unconfirmed_at_its_deadline_and_still_leaves() {
    let (mut c, _, _) = stable(config());
    c.ack(at(10), &tp(0), Offset(0)).unwrap();
    c.close(at(10), Duration::from_millis(300));
    let (_, _, body) = one(&mut c);
    assert!(matches!(body, RequestBody::GroupAck(_)));
    assert_eq!(c.poll_timeout(), Some(at(310)));
    c.handle(at(310), Input::Timeout);
    let (_, _, body) = one(&mut c);
    assert!(matches!(body, RequestBody::LeaveGroup { .. }));
    let ev = events(&mut c);
    assert!(
        matches!(&ev[..], [GroupEvent::AcksDropped { acks, .. }] if acks == &vec![(Offset(0), AckKind::Ack)]),
        "{ev:?}"
    );
    // The leave goes unanswered: closed at its deadline all the same.
    c.handle(at(810), Input::Timeout);
    assert!(c.is_closed());
    assert_eq!(events(&mut c), vec![GroupEvent::Closed]);
}

#[test]
fn a_new_assignment_drops_acks_and_records_of_revoked_partitions_and_keeps_the_rest() {
    let (mut c, corr, _) = joining(config(), 1);
    answer(&mut c, at(2), NodeId(1), corr, joined(7, gen(1, 1), &[0, 1]));
    let (to, corr, _) = one(&mut c);
    answer(&mut c, at(3), to, corr, metadata(2, 1));
    let fetches = sends(&mut c);
    assert_eq!(fetches.len(), 2, "one fetch per assigned partition");
    for (to, corr, body) in fetches {
        let RequestBody::GroupFetch(f) = body else { panic!() };
        answer(&mut c, at(4), to, corr, delivered(f.tp.partition.0, &[0]));
    }
    let _ = sends(&mut c);
    // The application has taken one record of each partition and acked them,
    // but a rebalance starts before the driver drains.
    c.ack(at(5), &tp(0), Offset(0)).unwrap();
    c.ack(at(5), &tp(1), Offset(0)).unwrap();
    c.handle(at(1_002), Input::Timeout);
    let sent = sends(&mut c);
    let (hto, hb, _) = sent.iter().find(|s| matches!(s.2, RequestBody::Heartbeat { .. })).cloned().unwrap();
    let acks: Vec<_> = sent.iter().filter(|s| matches!(s.2, RequestBody::GroupAck(_))).cloned().collect();
    assert_eq!(acks.len(), 2);
    answer(&mut c, at(1_003), hto, hb, err(ErrorCode::RebalanceInProgress));
    let (to, corr, _) = one(&mut c);
    // Both acks time out: partition 1 moves elsewhere, partition 0 stays.
    answer(&mut c, at(1_004), to, corr, joined(7, gen(1, 2), &[0]));
    for (to, corr, _) in acks {
        answer(&mut c, at(1_005), to, corr, err(ErrorCode::IllegalGeneration));
    }
    let ev = events(&mut c);
    assert!(ev.iter().any(|e| matches!(e, GroupEvent::RecordsDropped { tp: t, count: 1 } if *t == tp(1))), "{ev:?}");
    assert!(ev.iter().any(|e| matches!(e, GroupEvent::AcksDropped { tp: t, .. } if *t == tp(1))), "{ev:?}");
    assert!(!ev.iter().any(|e| matches!(e, GroupEvent::AcksDropped { tp: t, .. } if *t == tp(0))), "{ev:?}");
    assert_eq!(c.ack(at(1_005), &tp(1), Offset(1)), Err(AckError::NotAssigned(tp(1))));
    let sent = sends(&mut c);
    let again: Vec<_> = sent
        .iter()
        .filter_map(|s| match &s.2 {
            RequestBody::GroupAck(a) => Some((a.tp.clone(), a.generation, a.acks.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(again, vec![(tp(0), gen(1, 2), vec![(Offset(0), AckKind::Ack)])], "sent again in the new generation");
    let records: Vec<TopicPartition> = std::iter::from_fn(|| c.poll_record()).map(|r| r.tp).collect();
    assert_eq!(records, vec![tp(0)]);
}

#[test]
fn acks_refused_for_the_current_generation_wait_for_the_next_one() {
    let (mut c, _, _) = stable(config());
    c.ack(at(10), &tp(0), Offset(0)).unwrap();
    let sent = sends(&mut c);
    let (to, corr, _) = sent.iter().find(|s| matches!(s.2, RequestBody::GroupAck(_))).cloned().unwrap();
    // The leader adopted a newer generation than this member knows.
    answer(&mut c, at(11), to, corr, err(ErrorCode::IllegalGeneration));
    let sent = sends(&mut c);
    assert!(
        matches!(&sent[..], [(_, _, RequestBody::JoinGroup(j))] if j.member == Some(MemberId(7))),
        "rejoin, and the refused ack is not sent again in the same generation: {sent:?}"
    );
    let (jto, jcorr, _) = sent[0].clone();
    answer(&mut c, at(12), jto, jcorr, joined(7, gen(1, 2), &[0]));
    let sent = sends(&mut c);
    assert!(sent.iter().any(|s| matches!(&s.2, RequestBody::GroupAck(a) if a.generation == gen(1, 2))), "{sent:?}");
}

#[test]
fn pending_acks_and_buffered_records_are_bounded() {
    let (mut c, fetch, _) = stable(config().max_pending_acks(2).max_buffered_records(3));
    c.ack_batch(at(5), &tp(0), &[Offset(0), Offset(1)]).unwrap();
    assert_eq!(c.ack(at(5), &tp(0), Offset(2)), Err(AckError::TooManyPending { pending: 2, limit: 2 }));
    c.ack(at(5), &tp(0), Offset(1)).unwrap(); // the same offset again takes no room
    assert_eq!(c.ack(at(5), &tp(1), Offset(0)), Err(AckError::NotAssigned(tp(1))));
    let _ = sends(&mut c);
    answer(&mut c, at(10), NodeId(2), fetch, delivered(0, &[0, 1, 2]));
    assert!(sends(&mut c).is_empty(), "no fetch while the buffer is full");
    assert_eq!(c.buffered_records(), 3);
    c.poll_record().unwrap();
    assert_eq!(c.poll_timeout(), Some(at(10)), "room again: drain");
    assert!(matches!(one(&mut c).2, RequestBody::GroupFetch(_)));
}

#[test]
fn a_seek_drops_the_records_buffered_before_it_and_keeps_those_after() {
    let (mut c, fetch, _) = stable(config());
    answer(&mut c, at(10), NodeId(2), fetch, delivered(0, &[5, 6]));
    let (_, fetch, _) = one(&mut c);
    c.seek(at(11), &tp(0), SeekTo::Offset(Offset(0))).unwrap();
    let (to, corr, body) = one(&mut c);
    let RequestBody::GroupSeek(s) = body else { panic!("a seek, got {body:?}") };
    assert_eq!((to, s.to, s.generation), (NodeId(2), SeekTo::Offset(Offset(0)), gen(1, 1)));
    assert_eq!(c.buffered_records(), 0, "records from before the seek are dropped when it leaves");
    // The leader applied the seek and replays before the seek's answer arrives.
    answer(&mut c, at(12), NodeId(2), fetch, delivered(0, &[0]));
    answer(&mut c, at(12), to, corr, Ok(ResponseBody::Sought { tp: tp(0), offset: Offset(0) }));
    assert_eq!(c.poll_record().map(|r| r.offset), Some(Offset(0)), "the replay is kept");
    let ev = events(&mut c);
    assert_eq!(ev.first(), Some(&GroupEvent::RecordsDropped { tp: tp(0), count: 2 }), "{ev:?}");
    assert_eq!(ev.last(), Some(&GroupEvent::Sought { tp: tp(0), offset: Offset(0) }), "{ev:?}");
}

#[test]
fn acks_queued_before_a_seek_leave_before_it() {
    let (mut c, _, _) = stable(config());
    c.ack(at(10), &tp(0), Offset(0)).unwrap();
    c.seek(at(10), &tp(0), SeekTo::Earliest).unwrap();
    let (to, corr, body) = one(&mut c);
    assert!(matches!(body, RequestBody::GroupAck(_)), "one cursor request at a time, acks first");
    answer(&mut c, at(11), to, corr, Ok(ResponseBody::Acked { tp: tp(0), prefix: Offset(1), refused: vec![] }));
    assert!(matches!(one(&mut c).2, RequestBody::GroupSeek(_)));
}

#[test]
fn join_carries_the_configured_mode_settings_and_weight() {
    let settings = GroupSettings { max_deliveries: 3, ..GroupSettings::default() };
    let config = config().mode(GroupMode::Shared).settings(settings.clone()).weight(5);
    let (_, _, j) = joining(config, 2);
    assert_eq!((j.mode, j.settings, j.weight), (GroupMode::Shared, settings, 5));
    assert_eq!(j.session_timeout, Duration::from_secs(3));
}

#[test]
fn inconsistent_group_is_reported_and_retried_after_the_longest_backoff() {
    let (mut c, corr, _) = joining(config().mode(GroupMode::Exclusive(Assignor::Range)), 1);
    answer(&mut c, at(2), NodeId(1), corr, err(ErrorCode::InconsistentGroup));
    assert!(matches!(&events(&mut c)[..], [GroupEvent::Error { error }] if error.code == ErrorCode::InconsistentGroup));
    let t = c.poll_timeout().unwrap();
    assert!(t >= at(402) && t <= at(802), "{t}");
}

#[test]
fn bad_settings_are_refused_with_the_setting_named() {
    let named = |c: GroupConsumerConfig| match c.validate() {
        Err(GroupConsumerConfigError::Invalid { setting, .. }) => setting,
        Ok(()) => "ok",
    };
    assert_eq!(named(config()), "ok");
    assert_eq!(named(GroupConsumerConfig { brokers: vec![], ..config() }), "brokers");
    assert_eq!(named(GroupConsumerConfig { group: "a b".into(), ..config() }), "group");
    assert_eq!(named(GroupConsumerConfig { topics: vec![], ..config() }), "topics");
    assert_eq!(named(GroupConsumerConfig { topics: vec!["__groups".into()], ..config() }), "topics");
    assert_eq!(named(config().weight(0)), "weight");
    assert_eq!(named(config().weight(1_001)), "weight");
    assert_eq!(named(config().session_timeout(Duration::from_millis(99))), "session_timeout");
    let s = GroupSettings { ack_timeout: Duration::from_millis(1), ..GroupSettings::default() };
    assert_eq!(named(config().settings(s)), "settings.ack_timeout");
    let s = GroupSettings { max_deliveries: 0, ..GroupSettings::default() };
    assert_eq!(named(config().settings(s)), "settings.max_deliveries");
    assert_eq!(named(config().pull(0, Duration::ZERO)), "delivery.max_records");
    assert_eq!(named(config().push(1, 0)), "delivery.prefetch");
    assert_eq!(named(config().request_timeout(Duration::ZERO)), "request_timeout");
    assert_eq!(named(config().join_timeout(Duration::from_secs(1))), "join_timeout");
    assert_eq!(named(config().retry_backoff(Duration::from_secs(2), Duration::from_secs(1))), "retry_backoff");
    assert_eq!(named(config().max_pending_acks(0)), "max_pending_acks");
    assert_eq!(named(config().max_buffered_records(0)), "max_buffered_records");
    assert_eq!(named(config().credentials(Credentials::new("", "s"))), "credentials");
    assert!(GroupConsumer::new(config().weight(0), 1).is_err());
}

/// A member of `g` on a one-broker cluster (broker 1 coordinates and leads t/0)
/// with these credentials.
fn authenticating(secret: &str) -> GroupConsumer {
    let config = GroupConsumerConfig { brokers: vec![NodeId(1)], ..config() };
    GroupConsumer::new(config.credentials(Credentials::new("app", secret)), 1).unwrap()
}

/// Serves the member from broker 1 with auth on: the exchange through `broker`,
/// `Unauthenticated` for other requests before it ended, the coordinator, a join
/// (member 7, t/0), metadata and heartbeats; fetches and acks are returned
/// unanswered. Fires timeouts until `until` while nothing else happens. `log`
/// records each request's kind.
fn serve_auth(
    c: &mut GroupConsumer,
    broker: &mut AuthBroker,
    mut now: Instant,
    until: Instant,
    log: &mut Vec<&'static str>,
) -> (Instant, Vec<(CorrelationId, RequestBody)>) {
    let mut unanswered = Vec::new();
    loop {
        let reqs = sends(c);
        if reqs.is_empty() {
            match c.poll_timeout().filter(|t| *t <= until) {
                Some(t) if unanswered.is_empty() => {
                    now = t.max(now);
                    c.handle(now, Input::Timeout);
                    continue;
                }
                _ => return (now, unanswered),
            }
        }
        for (to, corr, body) in reqs {
            assert_eq!(to, NodeId(1));
            log.push(match &body {
                RequestBody::AuthStart { .. } => "start",
                RequestBody::AuthProof { .. } => "proof",
                RequestBody::FindCoordinator { .. } => "find",
                RequestBody::JoinGroup(_) => "join",
                RequestBody::Metadata { .. } => "metadata",
                RequestBody::Heartbeat { .. } => "heartbeat",
                RequestBody::GroupFetch(_) => "fetch",
                RequestBody::GroupAck(_) => "ack",
                other => panic!("unexpected request {other:?}"),
            });
            let reply = match (broker.exchange(&body).or_else(|| broker.refuse_unauthenticated()), &body) {
                (Some(a), _) => a,
                (None, RequestBody::FindCoordinator { .. }) => coordinator(1),
                (None, RequestBody::JoinGroup(_)) => joined(7, gen(1, 1), &[0]),
                (None, RequestBody::Metadata { .. }) => metadata(1, 1),
                (None, RequestBody::Heartbeat { .. }) => Ok(ResponseBody::HeartbeatOk),
                (None, _) => {
                    unanswered.push((corr, body));
                    continue;
                }
            };
            answer(c, now, to, corr, reply);
        }
    }
}

const HORIZON: Duration = Duration::from_secs(60);

#[test]
fn with_credentials_the_member_logs_in_first_then_consumes_and_acks() {
    let mut c = authenticating("s3cret");
    let mut broker = AuthBroker::new(b"s3cret");
    let mut log = Vec::new();
    let (now, out) = serve_auth(&mut c, &mut broker, at(0), at(0) + HORIZON, &mut log);
    assert_eq!(log, ["start", "proof", "find", "join", "metadata", "fetch"], "nothing before the login");
    let [(fetch, RequestBody::GroupFetch(_))] = out.as_slice() else { panic!("{out:?}") };
    answer(&mut c, now, NodeId(1), *fetch, delivered(0, &[0, 1]));
    let offsets: Vec<Offset> = std::iter::from_fn(|| c.poll_record()).map(|r| r.offset).collect();
    assert_eq!(offsets, [Offset(0), Offset(1)]);
    c.ack_up_to(now, &tp(0), Offset(2)).unwrap();
    let acks: Vec<_> = sends(&mut c).into_iter().filter(|(_, _, b)| matches!(b, RequestBody::GroupAck(_))).collect();
    let [(_, ack, _)] = acks.as_slice() else { panic!("{acks:?}") };
    let acked = ResponseBody::Acked { tp: tp(0), prefix: Offset(2), refused: vec![] };
    answer(&mut c, now, NodeId(1), *ack, Ok(acked));
    assert!(events(&mut c).iter().any(|e| matches!(e, GroupEvent::AcksConfirmed { prefix: Offset(2), .. })));
    assert_eq!(broker.exchange_requests, 2);
}

#[test]
fn a_leader_that_restarted_is_authenticated_again_and_the_fetch_sent_again() {
    let mut c = authenticating("s3cret");
    let mut broker = AuthBroker::new(b"s3cret");
    let mut log = Vec::new();
    let (now, out) = serve_auth(&mut c, &mut broker, at(0), at(0) + HORIZON, &mut log);
    events(&mut c);
    broker.restart();
    let fetch = out[0].0;
    answer(&mut c, now, NodeId(1), fetch, broker.refuse_unauthenticated().unwrap());
    log.clear();
    let (_, out) = serve_auth(&mut c, &mut broker, now, now + HORIZON, &mut log);
    assert_eq!(log, ["start", "proof", "fetch"], "a login, then the fetch again");
    assert!(matches!(out.as_slice(), [(_, RequestBody::GroupFetch(_))]), "{out:?}");
    assert_eq!(events(&mut c), vec![], "no error and no rebalance: a passing refusal");
    assert!(c.is_stable() && c.auth_error().is_none());
}

#[test]
fn a_wrong_secret_stops_the_member_with_an_error_naming_the_app_key() {
    let mut c = authenticating("guess");
    let mut broker = AuthBroker::new(b"s3cret");
    let mut log = Vec::new();
    serve_auth(&mut c, &mut broker, at(0), at(0) + HORIZON, &mut log);
    assert_eq!(log, ["start", "proof"], "one exchange, then nothing: no retry loop");
    let evs = events(&mut c);
    let [GroupEvent::Error { error }, GroupEvent::Closed] = evs.as_slice() else { panic!("{evs:?}") };
    assert_eq!(error.code, ErrorCode::Unauthenticated);
    assert!(error.message.contains("app key \"app\""), "{error}");
    assert!(c.is_closed() && c.auth_error().is_some());
    assert_eq!(c.poll_timeout(), None);
    c.handle(at(100_000), Input::Timeout);
    assert_eq!(sends(&mut c), vec![]);
}

#[test]
fn a_lost_exchange_answer_times_out_and_the_exchange_runs_again() {
    let mut c = authenticating("s3cret");
    let mut broker = AuthBroker::new(b"s3cret");
    c.handle(at(0), Input::Timeout);
    let (_, _, body) = one(&mut c);
    assert!(matches!(body, RequestBody::AuthStart { .. }), "{body:?}");
    // Its answer is lost: the exchange's deadline (the request timeout) wakes it.
    assert_eq!(c.poll_timeout(), Some(at(500)));
    let mut log = Vec::new();
    let (now, _) = serve_auth(&mut c, &mut broker, at(0), at(0) + HORIZON, &mut log);
    assert_eq!(log, ["start", "proof", "find", "join", "metadata", "fetch"]);
    assert!(now > at(500), "{now}");
    assert!(c.is_stable());
}

#[test]
fn a_member_closed_during_its_login_sends_nothing_afterwards() {
    let mut c = authenticating("s3cret");
    let mut broker = AuthBroker::new(b"s3cret");
    c.handle(at(0), Input::Timeout);
    let (to, corr, start) = one(&mut c);
    assert!(matches!(start, RequestBody::AuthStart { .. }), "the find waits for the login: {start:?}");
    c.close(at(1), Duration::from_secs(1));
    assert_eq!(sends(&mut c), vec![], "no coordinator to leave");
    assert!(c.is_closed());
    answer(&mut c, at(2), to, corr, broker.exchange(&start).unwrap());
    assert_eq!(sends(&mut c), vec![], "neither the proof nor the held find leaves after the close");
}
