//! Unit and property tests of the coordinator (docs/consumers.md sections 3 and 4),
//! fed inputs directly, asserting the drained outputs.

use super::*;
use crate::group::assign::Assignor;
use crate::ids::ClientId;
use proptest::prelude::*;

const SESSION: Duration = Duration::from_secs(10);

struct T {
    c: Coordinator,
    now: Instant,
    next: u64,
}

impl T {
    fn new(topics: &[(&str, u32)]) -> T {
        let topics = topics.iter().map(|(t, n)| (t.to_string(), *n)).collect();
        T {
            c: Coordinator::new(PartitionId(0), LeaderEpoch(3), GroupConfig::default(), topics, Instant::ZERO),
            now: Instant::ZERO,
            next: 1,
        }
    }

    fn feed(&mut self, input: CoordinatorInput) -> Vec<CoordinatorOutput> {
        self.c.handle(self.now, input);
        self.c.check_invariants();
        std::iter::from_fn(|| self.c.poll_output()).collect()
    }

    fn corr(&mut self) -> CorrelationId {
        self.next += 1;
        CorrelationId(self.next)
    }

    /// Sends a join from client `client`; returns its correlation and the outputs.
    fn join_as(
        &mut self,
        client: u64,
        member: Option<MemberId>,
        topics: &[&str],
        mode: GroupMode,
    ) -> (CorrelationId, Vec<CoordinatorOutput>) {
        let correlation = self.corr();
        let join = JoinGroup {
            group: "g".into(),
            member,
            topics: topics.iter().map(|t| t.to_string()).collect(),
            mode,
            session_timeout: SESSION,
            settings: crate::wire::GroupSettings::default(),
            weight: 1,
        };
        let out = self.feed(CoordinatorInput::Join { from: Peer::Client(ClientId(client)), correlation, join });
        (correlation, out)
    }

    fn heartbeat(&mut self, member: MemberId, generation: GroupGeneration) -> Result<ResponseBody, WireError> {
        let correlation = self.corr();
        let out = self.feed(CoordinatorInput::Heartbeat {
            from: Peer::Client(ClientId(0)),
            correlation,
            group: "g".into(),
            member,
            generation,
        });
        reply_to(&out, correlation).expect("heartbeats are answered at once")
    }

    fn leave(&mut self, member: MemberId) -> Result<ResponseBody, WireError> {
        let correlation = self.corr();
        let out = self.feed(CoordinatorInput::Leave {
            from: Peer::Client(ClientId(0)),
            correlation,
            group: "g".into(),
            member,
        });
        reply_to(&out, correlation).expect("leaves are answered at once")
    }

    fn advance(&mut self, d: Duration) -> Vec<CoordinatorOutput> {
        let until = self.now + d;
        let mut out = Vec::new();
        while let Some(t) = self.c.poll_timeout().filter(|t| *t <= until) {
            self.now = self.now.max(t);
            out.extend(self.feed(CoordinatorInput::Timeout));
        }
        self.now = until;
        out
    }

    /// A stable group of two members subscribed to `orders`: (first, second).
    fn pair(&mut self, mode: GroupMode) -> (Joined, Joined) {
        let (c1, out) = self.join_as(1, None, &["orders"], mode);
        let a = joined(&out, c1);
        let (c2, _) = self.join_as(2, None, &["orders"], mode);
        let (c3, out) = self.join_as(1, Some(a.member), &["orders"], mode);
        (joined(&out, c3), joined(&out, c2))
    }

    fn view(&self) -> GroupView {
        self.c.group("g").expect("group exists")
    }
}

fn reply_to(out: &[CoordinatorOutput], c: CorrelationId) -> Option<Result<ResponseBody, WireError>> {
    out.iter().find_map(|o| match o {
        CoordinatorOutput::Reply { correlation, body, .. } if *correlation == c => Some(body.clone()),
        _ => None,
    })
}

fn joined(out: &[CoordinatorOutput], c: CorrelationId) -> Joined {
    match reply_to(out, c) {
        Some(Ok(ResponseBody::Joined(j))) => j,
        other => panic!("expected Joined for {c:?}, got {other:?}"),
    }
}

fn code(r: Result<ResponseBody, WireError>) -> ErrorCode {
    r.expect_err("expected an error").code
}

const RANGE: GroupMode = GroupMode::Exclusive(Assignor::Range);

#[test]
fn a_first_member_gets_every_partition_at_generation_one() {
    let mut t = T::new(&[("orders", 3)]);
    let (c, out) = t.join_as(1, None, &["orders"], RANGE);
    let j = joined(&out, c);
    assert_eq!(j.generation, GroupGeneration { coordinator_epoch: LeaderEpoch(3), generation: Generation(1) });
    assert_eq!(j.assignment.len(), 3);
    assert_eq!(j.member.0 >> 32, 3, "member ids carry the coordinator epoch");
    assert_eq!(t.heartbeat(j.member, j.generation), Ok(ResponseBody::HeartbeatOk));
}

#[test]
fn a_second_join_is_held_until_the_first_member_rejoins() {
    let mut t = T::new(&[("orders", 4)]);
    let (c1, out) = t.join_as(1, None, &["orders"], RANGE);
    let a = joined(&out, c1);
    let (c2, out) = t.join_as(2, None, &["orders"], RANGE);
    assert_eq!(reply_to(&out, c2), None, "held at the barrier");
    assert_eq!(code(t.heartbeat(a.member, a.generation)), ErrorCode::RebalanceInProgress);
    let (c3, out) = t.join_as(1, Some(a.member), &["orders"], RANGE);
    let (a2, b) = (joined(&out, c3), joined(&out, c2));
    assert_eq!(a2.generation.generation, Generation(2));
    assert_eq!(b.generation, a2.generation);
    assert_eq!((a2.assignment.len(), b.assignment.len()), (2, 2));
    assert!(out.iter().any(|o| matches!(o, CoordinatorOutput::Rebalanced { members: 2, partitions: 4, .. })));
}

#[test]
fn a_stale_generation_is_refused_and_an_unknown_member_told_to_rejoin() {
    let mut t = T::new(&[("orders", 2)]);
    let (c, out) = t.join_as(1, None, &["orders"], RANGE);
    let a = joined(&out, c);
    let stale = GroupGeneration { generation: Generation(0), ..a.generation };
    assert_eq!(code(t.heartbeat(a.member, stale)), ErrorCode::IllegalGeneration);
    let older_coordinator = GroupGeneration { coordinator_epoch: LeaderEpoch(2), ..a.generation };
    assert_eq!(code(t.heartbeat(a.member, older_coordinator)), ErrorCode::IllegalGeneration);
    assert_eq!(code(t.heartbeat(MemberId(99), a.generation)), ErrorCode::UnknownMember);
    let (c, out) = t.join_as(1, Some(MemberId(99)), &["orders"], RANGE);
    assert_eq!(code(reply_to(&out, c).unwrap()), ErrorCode::UnknownMember);
}

#[test]
fn a_silent_member_is_evicted_after_its_session_timeout() {
    let mut t = T::new(&[("orders", 4)]);
    let (a, b) = t.pair(RANGE);
    // b keeps heartbeating; a falls silent.
    for _ in 0..4 {
        t.advance(Duration::from_secs(3));
        let r = t.heartbeat(b.member, b.generation);
        if r.is_err() {
            assert_eq!(code(r), ErrorCode::RebalanceInProgress);
            break;
        }
    }
    assert!(!t.view().members.contains_key(&a.member), "a was evicted");
    let (c, out) = t.join_as(2, Some(b.member), &["orders"], RANGE);
    let b2 = joined(&out, c);
    assert_eq!(b2.assignment.len(), 4, "b owns everything after a's eviction");
}

#[test]
fn a_member_that_does_not_rejoin_is_evicted_at_the_rebalance_deadline() {
    let mut t = T::new(&[("orders", 2)]);
    let (c1, out) = t.join_as(1, None, &["orders"], RANGE);
    let a = joined(&out, c1);
    t.advance(Duration::from_secs(5));
    assert_eq!(t.heartbeat(a.member, a.generation), Ok(ResponseBody::HeartbeatOk));
    let (c2, out) = t.join_as(2, None, &["orders"], RANGE);
    assert_eq!(reply_to(&out, c2), None);
    // a heartbeats (so its session stays alive) but never rejoins.
    let mut answered = None;
    for _ in 0..5 {
        let out = t.advance(Duration::from_secs(3));
        answered = answered.or(reply_to(&out, c2));
        if answered.is_none() {
            let _ = t.heartbeat(a.member, a.generation);
        }
    }
    match answered {
        Some(Ok(ResponseBody::Joined(b))) => assert_eq!(b.assignment.len(), 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(t.view().members.len(), 1);
}

#[test]
fn leave_rebalances_at_once_and_an_empty_group_disappears() {
    let mut t = T::new(&[("orders", 2)]);
    let (a, b) = t.pair(RANGE);
    assert_eq!(t.leave(a.member), Ok(ResponseBody::Left));
    assert_eq!(code(t.heartbeat(b.member, b.generation)), ErrorCode::RebalanceInProgress);
    let (c, out) = t.join_as(2, Some(b.member), &["orders"], RANGE);
    assert_eq!(joined(&out, c).assignment.len(), 2);
    assert_eq!(t.leave(b.member), Ok(ResponseBody::Left));
    assert!(t.c.group("g").is_none());
    assert_eq!(code(t.leave(b.member)), ErrorCode::UnknownMember);
}

#[test]
fn more_partitions_rebalance_the_group() {
    let mut t = T::new(&[("orders", 2)]);
    let (c1, out) = t.join_as(1, None, &["orders"], RANGE);
    let a = joined(&out, c1);
    t.feed(CoordinatorInput::Topics([("orders".to_string(), 5)].into()));
    assert_eq!(code(t.heartbeat(a.member, a.generation)), ErrorCode::RebalanceInProgress);
    let (c, out) = t.join_as(1, Some(a.member), &["orders"], RANGE);
    assert_eq!(joined(&out, c).assignment.len(), 5);
}

#[test]
fn shared_and_key_shared_members_each_get_every_partition() {
    for mode in [GroupMode::Shared, GroupMode::KeyShared] {
        let mut t = T::new(&[("orders", 3)]);
        let (c1, out) = t.join_as(1, None, &["orders"], mode);
        let a = joined(&out, c1);
        let (c2, _) = t.join_as(2, None, &["orders"], mode);
        let (c3, out) = t.join_as(1, Some(a.member), &["orders"], mode);
        assert_eq!(joined(&out, c3).assignment.len(), 3);
        assert_eq!(joined(&out, c2).assignment.len(), 3);
    }
}

#[test]
fn bad_joins_get_clear_errors() {
    let mut t = T::new(&[("orders", 1)]);
    let (c, out) = t.join_as(1, None, &["nope"], RANGE);
    assert_eq!(code(reply_to(&out, c).unwrap()), ErrorCode::UnknownTopic);
    let (c, out) = t.join_as(1, None, &[], RANGE);
    assert_eq!(code(reply_to(&out, c).unwrap()), ErrorCode::InvalidRequest);
    let (c, out) = t.join_as(1, None, &["__groups"], RANGE);
    assert_eq!(code(reply_to(&out, c).unwrap()), ErrorCode::InvalidRequest);
    let (c, out) = t.join_as(1, None, &["orders"], RANGE);
    joined(&out, c);
    let (c, out) = t.join_as(2, None, &["orders"], GroupMode::Shared);
    let e = reply_to(&out, c).unwrap().unwrap_err();
    assert_eq!(e.code, ErrorCode::InconsistentGroup);
    assert!(e.message.contains("Exclusive"), "{}", e.message);
    let correlation = t.corr();
    let join = JoinGroup {
        group: "".into(),
        member: None,
        topics: vec!["orders".into()],
        mode: RANGE,
        session_timeout: Duration::from_millis(1),
        settings: crate::wire::GroupSettings::default(),
        weight: 1,
    };
    let out = t.feed(CoordinatorInput::Join { from: Peer::Client(ClientId(1)), correlation, join });
    assert_eq!(code(reply_to(&out, correlation).unwrap()), ErrorCode::InvalidRequest);
}

#[test]
fn resigning_answers_held_joins_not_coordinator() {
    let mut t = T::new(&[("orders", 1)]);
    let (c1, out) = t.join_as(1, None, &["orders"], RANGE);
    joined(&out, c1);
    let (c2, _) = t.join_as(2, None, &["orders"], RANGE);
    t.c.resign("leadership of __groups/0 moved");
    let out: Vec<_> = std::iter::from_fn(|| t.c.poll_output()).collect();
    assert_eq!(code(reply_to(&out, c2).unwrap()), ErrorCode::NotCoordinator);
    assert!(t.c.group("g").is_none());
}

#[test]
fn coordinator_partition_is_stable_and_in_range() {
    assert_eq!(coordinator_partition("payments", 8), coordinator_partition("payments", 8));
    for g in ["a", "b", "orders-consumers", "x.y_z"] {
        assert!(coordinator_partition(g, 5).0 < 5);
    }
    assert_eq!(coordinator_partition("g", 0), PartitionId(0), "no division by zero");
}

/// One step of a random workload against a single group.
#[derive(Clone, Debug)]
enum Step {
    Join(u8),
    Rejoin(u8),
    Heartbeat(u8),
    Leave(u8),
    Wait(u16),
    Partitions(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..5).prop_map(Step::Join),
        (0u8..5).prop_map(Step::Rejoin),
        (0u8..5).prop_map(Step::Heartbeat),
        (0u8..5).prop_map(Step::Leave),
        (0u16..15_000).prop_map(Step::Wait),
        (1u8..9).prop_map(Step::Partitions),
    ]
}

proptest! {
    /// Whatever the order of joins, rejoins, heartbeats, leaves, silences and
    /// partition count changes, the invariants hold after every input (each
    /// stable exclusive group owns every partition exactly once), and once every
    /// member has rejoined the rebalance completes with full coverage.
    #[test]
    fn every_partition_has_exactly_one_owner_after_a_rebalance(
        steps in prop::collection::vec(step(), 1..60), which in 0usize..3,
    ) {
        let mode = GroupMode::Exclusive([Assignor::Range, Assignor::RoundRobin, Assignor::Sticky][which]);
        let mut t = T::new(&[("a", 3), ("b", 2)]);
        // Client slot -> (member id, generation) as last told.
        let mut known: BTreeMap<u8, (MemberId, GroupGeneration)> = BTreeMap::new();
        let mut pending: BTreeMap<CorrelationId, u8> = BTreeMap::new();
        let record = |out: &[CoordinatorOutput], pending: &mut BTreeMap<CorrelationId, u8>,
                          known: &mut BTreeMap<u8, (MemberId, GroupGeneration)>| {
            for o in out {
                if let CoordinatorOutput::Reply { correlation, body, .. } = o {
                    if let Some(slot) = pending.remove(correlation) {
                        match body {
                            Ok(ResponseBody::Joined(j)) => { known.insert(slot, (j.member, j.generation)); }
                            Err(_) => { known.remove(&slot); }
                            Ok(other) => panic!("{other:?}"),
                        }
                    }
                }
            }
        };
        for s in steps {
            match s {
                Step::Join(k) if !known.contains_key(&k) && !pending.values().any(|v| *v == k) => {
                    let (c, out) = t.join_as(u64::from(k), None, &["a", "b"], mode);
                    pending.insert(c, k);
                    record(&out, &mut pending, &mut known);
                }
                Step::Rejoin(k) => {
                    if let Some((m, _)) = known.get(&k).copied() {
                        pending.retain(|_, v| *v != k);
                        let (c, out) = t.join_as(u64::from(k), Some(m), &["a", "b"], mode);
                        pending.insert(c, k);
                        record(&out, &mut pending, &mut known);
                    }
                }
                Step::Heartbeat(k) => {
                    if let Some((m, g)) = known.get(&k).copied() {
                        let _ = t.heartbeat(m, g);
                    }
                }
                Step::Leave(k) => {
                    if let Some((m, _)) = known.remove(&k) {
                        let _ = t.leave(m);
                    }
                }
                Step::Wait(ms) => {
                    let out = t.advance(Duration::from_millis(u64::from(ms)));
                    record(&out, &mut pending, &mut known);
                }
                Step::Partitions(n) => {
                    let out = t.feed(CoordinatorInput::Topics([("a".to_string(), u32::from(n)), ("b".to_string(), 2)].into()));
                    record(&out, &mut pending, &mut known);
                }
                _ => {}
            }
        }
        // Every live member rejoins; the rebalance must complete with full coverage.
        if let Some(view) = t.c.group("g") {
            for id in view.members.keys() {
                t.join_as(100, Some(*id), &["a", "b"], mode);
            }
            let view = t.view();
            prop_assert!(!view.rebalancing);
            let owned: usize = view.members.values().map(Vec::len).sum();
            let expected = t.c.topics.values().map(|n| *n as usize).sum::<usize>();
            prop_assert_eq!(owned, expected);
        }
    }
}

#[test]
fn joined_names_the_peers_of_each_topic_with_their_weights_and_the_group_settings() {
    let mut t = T::new(&[("orders", 2)]);
    let (a, b) = t.pair(GroupMode::Shared);
    assert_eq!(a.settings, crate::wire::GroupSettings::default());
    let mut expected = vec![(a.member, 1), (b.member, 1)];
    expected.sort();
    assert_eq!(a.peers, vec![("orders".to_string(), expected.clone())]);
    assert_eq!(b.peers, a.peers);
}

#[test]
fn a_join_with_other_settings_or_a_bad_weight_is_refused_and_changes_nothing() {
    let mut t = T::new(&[("orders", 2)]);
    let (c1, out) = t.join_as(1, None, &["orders"], GroupMode::Shared);
    let first = joined(&out, c1);
    let before = t.view();
    let other = crate::wire::GroupSettings { max_deliveries: 3, ..Default::default() };
    let mut bad_weight = JoinGroup {
        group: "g".into(),
        member: None,
        topics: vec!["orders".into()],
        mode: GroupMode::Shared,
        session_timeout: SESSION,
        settings: other,
        weight: 1,
    };
    for (join, code) in [
        (bad_weight.clone(), ErrorCode::InconsistentGroup),
        (
            {
                bad_weight.settings = Default::default();
                bad_weight.weight = 0;
                bad_weight.clone()
            },
            ErrorCode::InvalidRequest,
        ),
        (
            {
                bad_weight.weight = 1;
                bad_weight.settings.max_deliveries = 0;
                bad_weight.clone()
            },
            ErrorCode::InvalidRequest,
        ),
    ] {
        let correlation = t.corr();
        let out = t.feed(CoordinatorInput::Join { from: Peer::Client(ClientId(9)), correlation, join });
        match reply_to(&out, correlation) {
            Some(Err(e)) => assert_eq!(e.code, code, "{e}"),
            other => panic!("expected {code:?}, got {other:?}"),
        }
    }
    assert_eq!(t.view(), before);
    assert_eq!(t.heartbeat(first.member, first.generation), Ok(ResponseBody::HeartbeatOk));
}

#[test]
fn a_group_deleted_and_created_again_never_repeats_a_generation() {
    // Partition leaders keep the newest generation they saw per group and take an
    // equal one as is: a recreated group must not start over at generation 1.
    let mut t = T::new(&[("orders", 2)]);
    let (c1, out) = t.join_as(1, None, &["orders"], GroupMode::Exclusive(Assignor::Sticky));
    let first = joined(&out, c1);
    assert_eq!(t.leave(first.member), Ok(ResponseBody::Left));
    assert!(t.c.group("g").is_none(), "the last member leaving deletes the group");
    let (c2, out) = t.join_as(2, None, &["orders"], GroupMode::Exclusive(Assignor::Sticky));
    let second = joined(&out, c2);
    assert_ne!(second.member, first.member);
    assert!(second.generation > first.generation, "{} then {}", first.generation, second.generation);
}
