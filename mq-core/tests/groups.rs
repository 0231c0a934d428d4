//! Consumer-group membership end to end (DESIGN.md section 7, docs/consumers.md):
//! members find the coordinator (the leader of the group's `__groups` partition),
//! join, heartbeat and leave; the coordinator rebalances behind a join barrier,
//! fences stale generations, evicts silent members, and a coordinator crash is
//! survived by rejoining the new one.

mod support;

use mq_core::group::assign::Assignor;
use mq_core::group::GroupMode;
use mq_core::harness::Harness;
use mq_core::wire::{ErrorCode, JoinGroup, Joined, RequestBody, ResponseBody, TopicConfig, WireError};
use mq_core::{CorrelationId, Duration, Event, GroupGeneration, MemberId, TopicPartition};
use std::collections::BTreeSet;
use support::{err, ok, CLIENT};

const SESSION: Duration = Duration::from_secs(3);
const GROUP: &str = "billing";

fn cluster(seed: u64) -> Harness {
    let mut h = Harness::new(3, seed, |c| c);
    h.wait_ready();
    let c = h.request(CLIENT, 1, RequestBody::CreateTopic(TopicConfig::new("orders", 4)));
    h.advance(Duration::from_millis(500));
    assert_eq!(ok(&mut h, c), ResponseBody::TopicCreated);
    h
}

/// Asks broker `via` (then the others) for the coordinator until one is named.
fn find_coordinator(h: &mut Harness, client: u64) -> (u32, GroupGeneration) {
    for attempt in 0..50 {
        let running = h.running();
        let via = running[attempt % running.len()];
        let c = h.request(client, via, RequestBody::FindCoordinator { group: GROUP.into() });
        match h.take_response(client, c).expect("FindCoordinator is answered at once").body {
            Ok(ResponseBody::Coordinator { coordinator, partition, coordinator_epoch })
                if h.is_running(coordinator.0) && h.node(coordinator.0).coordinator(partition).is_some() =>
            {
                let g = GroupGeneration { coordinator_epoch, ..GroupGeneration::default() };
                return (coordinator.0, g);
            }
            Ok(ResponseBody::Coordinator { .. }) => {}
            Ok(other) => panic!("{other:?}"),
            Err(e) => assert!(e.code.is_retriable(), "{e}"),
        }
        h.advance(Duration::from_millis(200));
    }
    panic!("no coordinator for {GROUP} after 10 s");
}

/// One simulated group member: a client id plus what the coordinator told it.
#[derive(Clone, Debug)]
struct Member {
    client: u64,
    id: Option<MemberId>,
    generation: GroupGeneration,
    assignment: Vec<TopicPartition>,
}

impl Member {
    fn new(client: u64) -> Member {
        Member { client, id: None, generation: GroupGeneration::default(), assignment: Vec::new() }
    }

    fn join(&self, h: &mut Harness, coordinator: u32, mode: GroupMode) -> CorrelationId {
        let join = JoinGroup {
            group: GROUP.into(),
            member: self.id,
            topics: vec!["orders".into()],
            mode,
            session_timeout: SESSION,
            settings: mq_core::wire::GroupSettings::default(),
            weight: 1,
        };
        h.request(self.client, coordinator, RequestBody::JoinGroup(join))
    }

    /// Takes the answer to a join, if it came.
    fn joined(&mut self, h: &mut Harness, c: CorrelationId) -> Option<Result<Joined, WireError>> {
        let r = h.take_response(self.client, c)?;
        Some(match r.body {
            Ok(ResponseBody::Joined(j)) => {
                self.id = Some(j.member);
                self.generation = j.generation;
                self.assignment = j.assignment.clone();
                Ok(j)
            }
            Ok(other) => panic!("expected Joined, got {other:?}"),
            Err(e) => Err(e),
        })
    }

    fn heartbeat(&self, h: &mut Harness, coordinator: u32) -> Result<(), WireError> {
        let body = RequestBody::Heartbeat {
            group: GROUP.into(),
            member: self.id.expect("joined"),
            generation: self.generation,
        };
        let c = h.request(self.client, coordinator, body);
        match h.take_response(self.client, c).expect("heartbeats are answered at once").body {
            Ok(ResponseBody::HeartbeatOk) => Ok(()),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        }
    }
}

fn range() -> GroupMode {
    GroupMode::Exclusive(Assignor::Range)
}

/// Every partition of `orders` is owned exactly once by `members`.
fn assert_exclusive_cover(members: &[&Member]) {
    let mut seen = BTreeSet::new();
    for m in members {
        for tp in &m.assignment {
            assert!(seen.insert(tp.clone()), "{tp} owned twice: {members:?}");
        }
    }
    let all: BTreeSet<TopicPartition> = (0..4).map(|p| TopicPartition::new("orders", p)).collect();
    assert_eq!(seen, all, "{members:?}");
}

fn parts(m: &Member) -> Vec<u32> {
    m.assignment.iter().map(|tp| tp.partition.0).collect()
}

/// `a` (alone and stable) and a new member `b` go through one rebalance; both end
/// at the same new generation.
fn second_member_joins(h: &mut Harness, coord: u32, a: &mut Member, b: &mut Member, mode: GroupMode) {
    let cb = b.join(h, coord, mode);
    h.drive();
    assert!(b.joined(h, cb).is_none(), "b's join waits at the barrier for a");
    assert_eq!(a.heartbeat(h, coord).unwrap_err().code, ErrorCode::RebalanceInProgress);
    let ca = a.join(h, coord, mode);
    h.drive();
    a.joined(h, ca).expect("answered").expect("a rejoined");
    b.joined(h, cb).expect("answered once a rejoined").expect("b joined");
    assert_eq!(a.generation, b.generation);
    assert_eq!(a.heartbeat(h, coord), Ok(()));
    assert_eq!(b.heartbeat(h, coord), Ok(()));
}

/// A stable group of two members, `a` (client 11) and `b` (client 12).
fn stable_pair(h: &mut Harness, coord: u32, mode: GroupMode) -> (Member, Member) {
    let mut a = first_member(h, coord, mode);
    let mut b = Member::new(12);
    second_member_joins(h, coord, &mut a, &mut b, mode);
    (a, b)
}

/// A group of `a` alone, stable.
fn first_member(h: &mut Harness, coord: u32, mode: GroupMode) -> Member {
    let mut a = Member::new(11);
    let c = a.join(h, coord, mode);
    h.drive();
    a.joined(h, c).expect("the first join completes at once").expect("joined");
    a
}

/// Advances `d` in steps of a second, heartbeating for `alive` (errors ignored).
fn keep_alive(h: &mut Harness, coord: u32, alive: &[&Member], d: Duration) {
    let steps = d.as_millis() / 1000;
    for _ in 0..steps {
        h.advance(Duration::from_secs(1));
        for m in alive {
            let _ = m.heartbeat(h, coord);
        }
    }
}

#[test]
fn find_coordinator_creates_groups_topic_and_names_its_leader() {
    let mut h = cluster(1);
    let c = h.request(CLIENT, 2, RequestBody::FindCoordinator { group: GROUP.into() });
    let (code, msg) = err(&mut h, c);
    assert_eq!(code, ErrorCode::CoordinatorNotAvailable);
    assert!(msg.contains("__groups"), "{msg}");
    let (coord, _) = find_coordinator(&mut h, CLIENT);
    let topic = h.node(1).metadata().topics.get("__groups").expect("created on demand");
    assert_eq!(topic.config.replication_factor, 3);
    assert_eq!(topic.partitions.len(), 8);
    // Every broker names the same coordinator.
    for via in 1..=3 {
        let c = h.request(CLIENT, via, RequestBody::FindCoordinator { group: GROUP.into() });
        match ok(&mut h, c) {
            ResponseBody::Coordinator { coordinator, .. } => assert_eq!(coordinator.0, coord),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_first_member_is_assigned_every_partition() {
    let mut h = cluster(2);
    let (coord, _) = find_coordinator(&mut h, CLIENT);
    let a = first_member(&mut h, coord, range());
    assert_eq!(parts(&a), vec![0, 1, 2, 3]);
    assert_exclusive_cover(&[&a]);
    assert!(h.events().iter().any(|(_, n, e)| n.0 == coord
        && matches!(e, Event::GroupRebalanced { group, members: 1, partitions: 4, .. } if group == GROUP)));
}

#[test]
fn a_second_member_splits_the_partitions_by_range() {
    let mut h = cluster(3);
    let (coord, _) = find_coordinator(&mut h, CLIENT);
    let (a, b) = stable_pair(&mut h, coord, range());
    assert_eq!((parts(&a), parts(&b)), (vec![0, 1], vec![2, 3]));
    assert_exclusive_cover(&[&a, &b]);
}

#[test]
fn a_second_member_splits_the_partitions_round_robin() {
    let mut h = cluster(4);
    let mode = GroupMode::Exclusive(Assignor::RoundRobin);
    let (coord, _) = find_coordinator(&mut h, CLIENT);
    let (a, b) = stable_pair(&mut h, coord, mode);
    assert_eq!((parts(&a), parts(&b)), (vec![0, 2], vec![1, 3]));
}

#[test]
fn a_second_member_takes_only_its_share_with_the_sticky_assignor() {
    let mut h = cluster(5);
    let mode = GroupMode::Exclusive(Assignor::Sticky);
    let (coord, _) = find_coordinator(&mut h, CLIENT);
    let mut a = first_member(&mut h, coord, mode);
    let before: BTreeSet<_> = a.assignment.iter().cloned().collect();
    let mut b = Member::new(12);
    second_member_joins(&mut h, coord, &mut a, &mut b, mode);
    assert_eq!((a.assignment.len(), b.assignment.len()), (2, 2));
    assert!(a.assignment.iter().all(|tp| before.contains(tp)), "a keeps what it had, minus b's share");
    assert_exclusive_cover(&[&a, &b]);
}

#[test]
fn a_silent_member_is_evicted_after_its_session_timeout_and_its_partitions_move() {
    let mut h = cluster(6);
    let (coord, _) = find_coordinator(&mut h, CLIENT);
    let (a, mut b) = stable_pair(&mut h, coord, range());
    // b heartbeats every second; a falls silent.
    keep_alive(&mut h, coord, &[], Duration::from_secs(2));
    assert_eq!(b.heartbeat(&mut h, coord), Ok(()), "a is still within its session");
    keep_alive(&mut h, coord, &[&b], Duration::from_secs(2));
    assert_eq!(b.heartbeat(&mut h, coord).unwrap_err().code, ErrorCode::RebalanceInProgress);
    let c = b.join(&mut h, coord, range());
    h.drive();
    b.joined(&mut h, c).expect("answered").expect("rejoined");
    assert_eq!(parts(&b), vec![0, 1, 2, 3], "a's partitions moved to b");
    assert_eq!(a.heartbeat(&mut h, coord).unwrap_err().code, ErrorCode::UnknownMember);
}

#[test]
fn a_heartbeat_with_a_stale_generation_is_refused() {
    let mut h = cluster(7);
    let (coord, _) = find_coordinator(&mut h, CLIENT);
    let mut a = first_member(&mut h, coord, range());
    let stale = a.clone();
    let mut b = Member::new(12);
    second_member_joins(&mut h, coord, &mut a, &mut b, range());
    assert!(stale.generation < a.generation);
    let e = stale.heartbeat(&mut h, coord).unwrap_err();
    assert_eq!(e.code, ErrorCode::IllegalGeneration);
    assert!(e.message.contains(&a.generation.to_string()), "{}", e.message);
    assert!(e.code.needs_rejoin());
}

#[test]
fn leave_rebalances_at_once() {
    let mut h = cluster(8);
    let (coord, _) = find_coordinator(&mut h, CLIENT);
    let (a, mut b) = stable_pair(&mut h, coord, range());
    let c = h.request(a.client, coord, RequestBody::LeaveGroup { group: GROUP.into(), member: a.id.unwrap() });
    assert_eq!(h.take_response(a.client, c).unwrap().body, Ok(ResponseBody::Left));
    assert_eq!(b.heartbeat(&mut h, coord).unwrap_err().code, ErrorCode::RebalanceInProgress);
    let c = b.join(&mut h, coord, range());
    h.drive();
    b.joined(&mut h, c).expect("answered at once: nobody else to wait for").expect("rejoined");
    assert_eq!(parts(&b), vec![0, 1, 2, 3]);
}

#[test]
fn brokers_that_do_not_coordinate_the_group_say_who_does() {
    let mut h = cluster(9);
    let (coord, _) = find_coordinator(&mut h, CLIENT);
    let other = (1..=3).find(|n| *n != coord).unwrap();
    let c = Member::new(CLIENT).join(&mut h, other, range());
    let (code, msg) = err(&mut h, c);
    assert_eq!(code, ErrorCode::NotCoordinator);
    assert!(code.is_retriable() && code.means_stale_coordinator());
    assert!(msg.contains(&format!("the coordinator is broker {coord}")), "{msg}");
}

#[test]
fn bad_group_requests_get_clear_errors_and_no_panic() {
    let mut h = cluster(10);
    let (coord, _) = find_coordinator(&mut h, CLIENT);
    let ghost = Member { id: Some(MemberId(42)), ..Member::new(11) };
    assert_eq!(ghost.heartbeat(&mut h, coord).unwrap_err().code, ErrorCode::UnknownMember);
    let c = h.request(CLIENT, coord, RequestBody::LeaveGroup { group: GROUP.into(), member: MemberId(42) });
    assert_eq!(err(&mut h, c).0, ErrorCode::UnknownMember);
    let c = h.request(CLIENT, coord, RequestBody::FindCoordinator { group: "no spaces".into() });
    assert_eq!(err(&mut h, c).0, ErrorCode::InvalidRequest);
    let join = JoinGroup {
        group: GROUP.into(),
        member: None,
        topics: vec!["missing".into()],
        mode: range(),
        session_timeout: SESSION,
        settings: mq_core::wire::GroupSettings::default(),
        weight: 1,
    };
    let c = h.request(CLIENT, coord, RequestBody::JoinGroup(join));
    assert_eq!(err(&mut h, c).0, ErrorCode::UnknownTopic);
    let c = h.request(CLIENT, 1, RequestBody::CreateTopic(TopicConfig::new("__groups2", 1)));
    assert_eq!(err(&mut h, c).0, ErrorCode::InvalidRequest);
    let c = h.request(CLIENT, 1, RequestBody::DeleteTopic { topic: "__groups".into() });
    assert_eq!(err(&mut h, c).0, ErrorCode::InvalidRequest);
}

#[test]
fn after_a_coordinator_crash_members_rejoin_the_new_one_and_every_partition_is_covered() {
    let mut h = cluster(11);
    let (coord, before) = find_coordinator(&mut h, CLIENT);
    let (mut a, mut b) = stable_pair(&mut h, coord, range());
    h.crash(coord);
    h.advance(Duration::from_secs(10));
    let (new, after) = find_coordinator(&mut h, CLIENT);
    assert_ne!(new, coord);
    assert!(after.coordinator_epoch > before.coordinator_epoch, "{after} after {before}");
    // The new coordinator starts empty: membership is soft state.
    let e = a.heartbeat(&mut h, new).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownMember, "{e}");
    for m in [&mut a, &mut b] {
        *m = Member::new(m.client);
    }
    let ca = a.join(&mut h, new, range());
    h.drive();
    a.joined(&mut h, ca).expect("answered").expect("a joined the new coordinator");
    second_member_joins(&mut h, new, &mut a, &mut b, range());
    assert_exclusive_cover(&[&a, &b]);
    assert!(a.generation.coordinator_epoch > before.coordinator_epoch, "generations keep increasing");
}

#[test]
fn recreating_a_subscribed_topic_with_more_partitions_rebalances_the_group() {
    let mut h = cluster(12);
    let (coord, _) = find_coordinator(&mut h, CLIENT);
    let mut a = first_member(&mut h, coord, range());
    let c = h.request(CLIENT, 1, RequestBody::DeleteTopic { topic: "orders".into() });
    h.advance(Duration::from_millis(500));
    assert_eq!(ok(&mut h, c), ResponseBody::TopicDeleted);
    let c = h.request(CLIENT, 1, RequestBody::CreateTopic(TopicConfig::new("orders", 6)));
    h.advance(Duration::from_millis(500));
    assert_eq!(ok(&mut h, c), ResponseBody::TopicCreated);
    assert_eq!(a.heartbeat(&mut h, coord).unwrap_err().code, ErrorCode::RebalanceInProgress);
    let c = a.join(&mut h, coord, range());
    h.drive();
    a.joined(&mut h, c).expect("answered").expect("rejoined");
    assert_eq!(parts(&a), vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn a_join_held_when_the_coordinator_moves_is_answered_not_coordinator_and_the_group_reforms() {
    let mut h = cluster(13);
    let (coord, before) = find_coordinator(&mut h, CLIENT);
    let mut a = first_member(&mut h, coord, range());
    let mut b = Member::new(12);
    let cb = b.join(&mut h, coord, range());
    h.drive();
    assert!(b.joined(&mut h, cb).is_none(), "held at the barrier");
    // The coordinator's broker shuts down in the middle of the rebalance: the
    // controller moves its leaderships, and the held join learns it at once.
    h.begin_shutdown(coord);
    h.advance(Duration::from_secs(2));
    let e = b.joined(&mut h, cb).expect("the held join is answered").unwrap_err();
    assert_eq!(e.code, ErrorCode::NotCoordinator, "{e}");
    assert!(e.code.means_stale_coordinator());
    let (new, after) = find_coordinator(&mut h, CLIENT);
    assert_ne!(new, coord);
    assert!(after.coordinator_epoch > before.coordinator_epoch);
    a = Member::new(a.client);
    b = Member::new(b.client);
    let ca = a.join(&mut h, new, range());
    h.drive();
    a.joined(&mut h, ca).expect("answered").expect("a joined the new coordinator");
    second_member_joins(&mut h, new, &mut a, &mut b, range());
    assert_exclusive_cover(&[&a, &b]);
}

/// One random group request, for the no-panic property.
#[derive(Clone, Debug)]
enum Op {
    Join { client: u64, group: usize, member: Option<u64>, topic: usize, mode: usize, session_ms: u64 },
    Heartbeat { client: u64, group: usize, member: u64, epoch: u32, generation: u32 },
    Leave { client: u64, group: usize, member: u64 },
    Advance { ms: u64 },
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    // Member ids are small indexes into the ids seen so far, or arbitrary.
    prop_oneof![
        (1u64..4, 0usize..3, proptest::option::of(0u64..6), 0usize..3, 0usize..5, 0u64..6_000).prop_map(
            |(client, group, member, topic, mode, session_ms)| Op::Join {
                client,
                group,
                member,
                topic,
                mode,
                session_ms
            }
        ),
        (1u64..4, 0usize..3, 0u64..6, 0u32..3, 0u32..4).prop_map(|(client, group, member, epoch, generation)| {
            Op::Heartbeat { client, group, member, epoch, generation }
        }),
        (1u64..4, 0usize..3, 0u64..6).prop_map(|(client, group, member)| Op::Leave { client, group, member }),
        (0u64..4_000).prop_map(|ms| Op::Advance { ms }),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    /// Bad and racing group requests (unknown groups, members and topics, invalid
    /// names and session timeouts, stale generations, mixed modes) never panic the
    /// broker, which runs its invariants (and the coordinator's) after every input,
    /// and every request but a held join is answered at once.
    #[test]
    fn random_group_requests_never_panic_the_broker(ops in proptest::collection::vec(op(), 1..40)) {
        let mut h = Harness::single();
        let c = h.request(CLIENT, 1, RequestBody::CreateTopic(TopicConfig::new("orders", 3)));
        h.drive();
        assert_eq!(ok(&mut h, c), ResponseBody::TopicCreated);
        find_coordinator(&mut h, CLIENT);
        let groups = ["billing", "audit", "not a name"];
        let topics = ["orders", "missing", "__groups"];
        let modes = [
            range(),
            GroupMode::Exclusive(Assignor::RoundRobin),
            GroupMode::Exclusive(Assignor::Sticky),
            GroupMode::Shared,
            GroupMode::KeyShared,
        ];
        // Member ids the coordinator handed out, so that ops can name real ones.
        let mut ids: Vec<MemberId> = Vec::new();
        let pick = |ids: &[MemberId], i: u64| ids.get(i as usize).copied().unwrap_or(MemberId(i));
        for op in ops {
            let (client, c, may_be_held) = match op {
                Op::Join { client, group, member, topic, mode, session_ms } => {
                    let join = JoinGroup {
                        group: groups[group].into(),
                        member: member.map(|m| pick(&ids, m)),
                        topics: vec![topics[topic].into()],
                        mode: modes[mode],
                        session_timeout: Duration::from_millis(session_ms),
                        settings: mq_core::wire::GroupSettings::default(),
                        weight: 1,
                    };
                    (client, h.request(client, 1, RequestBody::JoinGroup(join)), true)
                }
                Op::Heartbeat { client, group, member, epoch, generation } => {
                    let generation = GroupGeneration {
                        coordinator_epoch: mq_core::LeaderEpoch(epoch),
                        generation: mq_core::Generation(generation),
                    };
                    let body = RequestBody::Heartbeat { group: groups[group].into(), member: pick(&ids, member), generation };
                    (client, h.request(client, 1, body), false)
                }
                Op::Leave { client, group, member } => {
                    let body = RequestBody::LeaveGroup { group: groups[group].into(), member: pick(&ids, member) };
                    (client, h.request(client, 1, body), false)
                }
                Op::Advance { ms } => {
                    h.advance(Duration::from_millis(ms));
                    continue;
                }
            };
            if !may_be_held {
                proptest::prop_assert!(h.take_response(client, c).is_some(), "not answered at once");
            }
            for client in 1..4 {
                for r in h.take_responses(client) {
                    match r.body {
                        Ok(ResponseBody::Joined(j)) if !ids.contains(&j.member) => ids.push(j.member),
                        Ok(_) => {}
                        Err(e) => proptest::prop_assert!(!e.message.is_empty()),
                    }
                }
            }
        }
    }
}
