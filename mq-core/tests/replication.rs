//! Replicated partitions on a three-broker cluster (DESIGN.md sections 4 and 5):
//! the controller quorum elects leaders, followers pull, `acks=all` waits for the
//! ISR, consumers read below the HW, failover keeps what was acknowledged, and a
//! returning replica truncates only what diverged (KIP-101, KIP-279).

mod support;

use bytes::Bytes;
use mq_core::harness::Harness;
use mq_core::wire::{Acks, ErrorCode, Record, RecordBatch, RequestBody, ResponseBody, TopicConfig};
use mq_core::{CorrelationId, Duration, Event, LeaderEpoch, Mark, NodeId, Offset, PartitionId, TopicPartition};
use support::{err, ok, response, CLIENT};

fn cluster(seed: u64) -> Harness {
    let mut h = Harness::new(3, seed, |c| c);
    h.wait_ready();
    h
}

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

/// The running node that leads `t/0` with the highest epoch.
fn leader(h: &Harness) -> u32 {
    support::leader_of(h, &tp()).expect("a leader for t/0")
}

/// The first of brokers 1 to 3 other than `leader`.
fn a_follower(leader: u32) -> u32 {
    (1..=3).find(|id| *id != leader).unwrap()
}

fn create(h: &mut Harness, rf: u16, min_isr: u16) {
    let config = TopicConfig { replication_factor: rf, min_insync_replicas: min_isr, ..TopicConfig::new("t", 1) };
    let c = h.request(CLIENT, 1, RequestBody::CreateTopic(config));
    // Broker 1 answers once it has applied the records, which may take a Raft
    // heartbeat when another broker is the controller.
    h.advance(Duration::from_millis(500));
    assert_eq!(ok(h, c), ResponseBody::TopicCreated);
}

fn send(h: &mut Harness, to: u32, acks: Acks, vals: &[&str]) -> CorrelationId {
    let batch =
        RecordBatch::new(vals.iter().map(|v| Record::from_value(Bytes::copy_from_slice(v.as_bytes()))).collect());
    h.request(CLIENT, to, RequestBody::Produce { topic: "t".into(), partition: PartitionId(0), acks, batch })
}

/// Produces with acks=all to the current leader and returns the base offset.
fn produce_all(h: &mut Harness, vals: &[&str]) -> Offset {
    let l = leader(h);
    let c = send(h, l, Acks::All, vals);
    h.advance(Duration::from_millis(200));
    match ok(h, c) {
        ResponseBody::Produced { base_offset, .. } => base_offset,
        other => panic!("{other:?}"),
    }
}

fn read_all(h: &mut Harness, node: u32) -> Vec<String> {
    let c = h.request(
        CLIENT,
        node,
        RequestBody::Fetch { topic: "t".into(), partition: PartitionId(0), offset: Offset(0), max_bytes: u32::MAX },
    );
    match ok(h, c) {
        ResponseBody::Fetched { batches, .. } => batches
            .iter()
            .flat_map(|b| b.records.iter().map(|r| String::from_utf8_lossy(&r.value).into_owned()).collect::<Vec<_>>())
            .collect(),
        other => panic!("{other:?}"),
    }
}

fn log_values(h: &Harness, node: u32) -> Vec<String> {
    support::log_values(h, node, &tp())
}

#[test]
fn three_brokers_elect_one_controller_and_all_register() {
    let h = cluster(1);
    let active: Vec<u32> = h.running().into_iter().filter(|id| h.node(*id).is_active_controller()).collect();
    assert_eq!(active.len(), 1);
    for id in 1..=3 {
        assert!(h.node(id).is_ready());
        assert_eq!(h.node(id).metadata().brokers.len(), 3);
    }
}

#[test]
fn acks_all_is_answered_once_every_in_sync_replica_has_the_batch() {
    let mut h = cluster(2);
    create(&mut h, 3, 2);
    let off = produce_all(&mut h, &["a", "b"]);
    assert_eq!(off, Offset(0));
    for id in 1..=3 {
        assert_eq!(log_values(&h, id), vec!["a", "b"], "node {id}");
        assert!(h.node(id).log(&tp()).unwrap().persisted_end() >= Offset(2));
    }
}

#[test]
fn followers_serve_no_client_reads_and_the_leader_names_itself() {
    let mut h = cluster(3);
    create(&mut h, 3, 1);
    produce_all(&mut h, &["x"]);
    let l = leader(&h);
    let follower = a_follower(l);
    let c = h.request(
        CLIENT,
        follower,
        RequestBody::Fetch { topic: "t".into(), partition: PartitionId(0), offset: Offset(0), max_bytes: 1024 },
    );
    let (code, msg) = err(&mut h, c);
    assert_eq!(code, ErrorCode::NotLeader);
    assert!(msg.contains(&format!("leader is broker {l}")), "{msg}");
}

#[test]
fn failover_keeps_acked_records() {
    let mut h = cluster(4);
    create(&mut h, 3, 2);
    for i in 0..10 {
        produce_all(&mut h, &[&format!("v{i}")]);
    }
    let old = leader(&h);
    h.crash(old);
    h.advance(Duration::from_secs(10));
    let new = leader(&h);
    assert_ne!(new, old);
    let expected: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
    assert_eq!(read_all(&mut h, new), expected);
    let e = h.node(new).replica(&tp()).unwrap().leader_epoch;
    assert!(e > LeaderEpoch(1), "the leader epoch moved on: {e}");
    // The cluster keeps taking writes with one broker down (min ISR 2 of 3).
    assert_eq!(produce_all(&mut h, &["after"]), Offset(10));
}

#[test]
fn a_stopped_follower_leaves_the_isr_and_rejoins_once_caught_up() {
    let mut h = cluster(5);
    create(&mut h, 3, 1);
    produce_all(&mut h, &["a"]);
    let l = leader(&h);
    let f = a_follower(l);
    h.crash(f);
    h.advance(Duration::from_secs(10));
    let isr = h.node(l).replica(&tp()).unwrap().isr.clone();
    assert!(!isr.contains(&NodeId(f)), "{isr:?}");
    assert!(h.events().iter().any(|(_, _, e)| matches!(e, Event::IsrChanged { shrink: true, .. })));
    produce_all(&mut h, &["while-away"]);
    h.restart(f);
    h.advance(Duration::from_secs(10));
    let l = leader(&h);
    let isr = h.node(l).replica(&tp()).unwrap().isr.clone();
    assert!(isr.contains(&NodeId(f)), "rejoined: {isr:?}");
    assert_eq!(log_values(&h, f), vec!["a", "while-away"]);
}

#[test]
fn acks_all_is_refused_before_appending_when_the_isr_is_below_min_isr() {
    let mut h = cluster(6);
    create(&mut h, 3, 3);
    produce_all(&mut h, &["a"]);
    let l = leader(&h);
    let f = a_follower(l);
    h.crash(f);
    h.advance(Duration::from_secs(10));
    let l = leader(&h);
    let end_before = h.node(l).log(&tp()).unwrap().log_end();
    let c = send(&mut h, l, Acks::All, &["refused"]);
    let (code, msg) = err(&mut h, c);
    assert_eq!(code, ErrorCode::NotEnoughReplicas);
    assert!(msg.contains("min_insync_replicas"), "{msg}");
    assert_eq!(h.node(l).log(&tp()).unwrap().log_end(), end_before, "nothing was appended");
    // acks=1 still works, but its record is not exposed while the ISR is short.
    let c = send(&mut h, l, Acks::Leader, &["one"]);
    h.advance(Duration::from_millis(100));
    assert!(matches!(ok(&mut h, c), ResponseBody::Produced { .. }));
    assert_eq!(read_all(&mut h, l), vec!["a"], "HW frozen below min ISR");
}

#[test]
fn consumers_never_read_above_the_high_watermark() {
    let mut h = cluster(7);
    create(&mut h, 3, 2);
    produce_all(&mut h, &["committed"]);
    let l = leader(&h);
    // Followers stop fetching: the leader appends, but the HW cannot pass it.
    for f in (1..=3).filter(|id| *id != l) {
        h.cut(l, f);
    }
    let c = send(&mut h, l, Acks::All, &["pending"]);
    h.advance(Duration::from_millis(300));
    assert!(h.take_response(CLIENT, c).is_none());
    assert_eq!(h.node(l).log(&tp()).unwrap().log_end(), Offset(2));
    assert_eq!(read_all(&mut h, l), vec!["committed"]);
}

/// KIP-101 / KIP-279: a leader's tail that no follower got is truncated when that
/// broker returns as a follower of a newer epoch, to the point where its epoch
/// diverges, not to its (stale) high watermark.
#[test]
fn a_returning_leader_truncates_its_diverging_tail_not_to_its_hw() {
    let mut h = cluster(8);
    create(&mut h, 3, 1);
    produce_all(&mut h, &["a", "b"]);
    let old = leader(&h);
    let others: Vec<u32> = (1..=3).filter(|id| *id != old).collect();
    // The old leader takes an acks=1 write that nobody replicates...
    for f in &others {
        h.cut(old, *f);
    }
    let c = send(&mut h, old, Acks::Leader, &["lost"]);
    h.advance(Duration::from_millis(50));
    assert!(matches!(ok(&mut h, c), ResponseBody::Produced { base_offset: Offset(2), .. }));
    // ...then dies; the others elect a new leader that writes in the new epoch.
    h.crash(old);
    h.heal();
    h.advance(Duration::from_secs(10));
    let new = leader(&h);
    produce_all(&mut h, &["c", "d"]);
    assert_eq!(h.node(new).coverage().get(Mark::DivergenceAnswered), 0);
    h.restart(old);
    assert_eq!(h.node(old).coverage().get(Mark::DivergenceTruncated), 0, "a new incarnation starts at zero");
    h.advance(Duration::from_secs(10));
    assert_eq!(log_values(&h, old), vec!["a", "b", "c", "d"], "diverging record truncated, new ones fetched");
    // The coverage marks of both sides moved (docs/simulator.md "Coverage marks").
    assert_eq!(h.node(old).coverage().get(Mark::DivergenceTruncated), 1);
    assert!(h.node(new).coverage().get(Mark::DivergenceAnswered) >= 1);
    assert_eq!(running_total(&h, Mark::UncleanElection), 0);
    assert!(h
        .events()
        .iter()
        .any(|(_, n, e)| *n == NodeId(old) && matches!(e, Event::Truncated { end: Offset(2), removed: 1, .. })));
    assert_eq!(log_values(&h, new), vec!["a", "b", "c", "d"]);
}

#[test]
fn a_restarted_broker_registers_with_a_new_epoch() {
    let mut h = cluster(9);
    let before = h.node(2).metadata().brokers[&NodeId(3)].epoch;
    h.crash(3);
    h.restart(3);
    h.wait_ready();
    let after = h.node(2).metadata().brokers[&NodeId(3)].epoch;
    assert!(after > before);
    let _ = response; // used by other test files through `support`
}

#[test]
fn controlled_shutdown_hands_leadership_over_before_the_broker_stops() {
    let mut h = cluster(10);
    create(&mut h, 3, 2);
    produce_all(&mut h, &["before"]);
    let old = leader(&h);
    h.begin_shutdown(old);
    // Requests are refused with a retriable status from now on.
    let c = send(&mut h, old, Acks::All, &["refused"]);
    let (code, _) = err(&mut h, c);
    assert_eq!(code, ErrorCode::NotReady);
    h.advance(Duration::from_millis(500));
    assert!(h.node(old).is_shut_down(), "leadership moved and every write is durable");
    let new = leader(&h);
    assert_ne!(new, old, "another in-sync replica leads, well before any session timeout");
    assert!(!h.node(new).replica(&tp()).unwrap().isr.contains(&NodeId(old)));
    h.crash(old);
    assert_eq!(produce_all(&mut h, &["after"]), Offset(1));
    assert_eq!(read_all(&mut h, new), vec!["before", "after"]);
}

/// A broker that stops without a session (it never registered, or lost it) does
/// not register again, and its session timer must say so: it used to return
/// "now" forever, and the simulator spun on that timer (seed 1334).
#[test]
fn a_broker_stopping_without_a_session_sets_no_timer_it_will_not_act_on() {
    let mut h = Harness::new(3, 11, |c| c);
    h.begin_shutdown(1);
    assert!(h.node(1).is_stopping());
    for _ in 0..3 {
        let now = h.now();
        let next = h.node(1).poll_timeout();
        assert!(next.is_none_or(|t| t > now), "a timer due at once ({next:?} at {now:?}) that changes nothing");
        h.advance(Duration::from_millis(100));
    }
}

/// A heartbeat the controller answers later than `controller_request_timeout`
/// still reached it and kept the session; the broker's next one must leave
/// within the heartbeat interval. A fixed 100 ms pause after each timed-out
/// heartbeat spaced them a request timeout plus 100 ms apart, past a short
/// session: the controller fenced the broker, it rejoined, and the ISRs
/// shrank and grew all run long (simulator seed 1000065, 100 ms sessions
/// and 10 ms controller requests).
#[test]
fn heartbeats_answered_after_the_request_timeout_keep_the_session() {
    // Every answer takes 80 ms: each heartbeat times out, though each reaches
    // the controller 40 ms after it left.
    sessions_survive_a_slow_network(12, Duration::from_millis(60), Duration::from_millis(40));
}

/// Three brokers with a 150 ms session and 20 ms heartbeats, whose controller
/// calls give up after `request_timeout`: once every message takes
/// `network_delay`, no broker is fenced for 3 s.
fn sessions_survive_a_slow_network(seed: u64, request_timeout: Duration, network_delay: Duration) {
    let mut h = Harness::new(3, seed, |c| mq_core::NodeConfig {
        session_timeout: Duration::from_millis(150),
        broker_heartbeat_interval: Duration::from_millis(20),
        controller_request_timeout: request_timeout,
        ..c
    });
    h.wait_ready();
    let expired_before = running_total(&h, Mark::BrokerSessionExpired);
    h.network_delay = network_delay;
    h.advance(Duration::from_secs(3));
    assert_eq!(running_total(&h, Mark::BrokerSessionExpired), expired_before, "a broker was fenced");
    let controller = h.running().into_iter().find(|id| h.node(*id).is_active_controller()).unwrap();
    let image = h.node(controller).metadata();
    assert!((1..=3).all(|b| image.is_live(NodeId(b))), "every broker stays unfenced");
}

/// Heartbeats overlap: a broker sends one every interval whether or not the
/// previous one was answered (each waits at most the session). Sent one at a
/// time, a heartbeat whose round trip outlasts the session cost the session
/// however short the interval: the controller heard from the broker once per
/// round trip and fenced it (simulator seed 1000811, a 100 ms session, 10 ms
/// heartbeats and network tails up to 410 ms).
#[test]
fn heartbeats_overlap_when_a_round_trip_outlasts_the_session() {
    // A round trip takes 180 ms, longer than the session.
    sessions_survive_a_slow_network(14, Duration::from_secs(5), Duration::from_millis(90));
}

/// A broker registers fenced and is unfenced by a heartbeat once its metadata
/// caught up. While fenced it heartbeats every 10 ms, as Kafka's broker does
/// while STARTING, not once per heartbeat interval: with a long interval a
/// restarted broker stayed fenced, serving nothing, for a whole interval after
/// it caught up (simulator seed 1000365, an 8 s interval, with a set-up that
/// took the whole workload window).
#[test]
fn a_restarted_broker_is_unfenced_soon_after_catching_up_not_a_heartbeat_interval_later() {
    let mut h = Harness::new(3, 13, |c| mq_core::NodeConfig {
        session_timeout: Duration::from_secs(20),
        broker_heartbeat_interval: Duration::from_secs(5),
        ..c
    });
    h.wait_ready();
    h.crash(3);
    h.restart(3);
    h.advance(Duration::from_millis(1_000));
    let controller = h.running().into_iter().find(|id| h.node(*id).is_active_controller()).unwrap();
    assert!(h.node(controller).metadata().is_live(NodeId(3)), "broker 3 is still fenced a second after its restart");
}

// ----- coverage marks (docs/simulator.md "Coverage marks") -----
// Each scenario drives one rare branch and checks its mark moved on the node
// that took it, before and after.

/// Crashes a follower of `t/0` and waits out its session; returns it.
fn crash_a_follower(h: &mut Harness) -> u32 {
    let l = leader(h);
    let f = a_follower(l);
    h.crash(f);
    h.advance(Duration::from_secs(10));
    f
}

/// The sum of `mark` over the running nodes.
fn running_total(h: &Harness, mark: Mark) -> u64 {
    h.running().into_iter().map(|id| h.node(id).coverage().get(mark)).sum()
}

#[test]
fn a_stopped_follower_marks_session_expiry_isr_shrink_and_later_expand() {
    let mut h = cluster(5);
    create(&mut h, 3, 1);
    produce_all(&mut h, &["a"]);
    let l = leader(&h);
    assert_eq!(h.node(l).coverage().get(Mark::IsrShrink), 0);
    let f = crash_a_follower(&mut h);
    assert!(!h.node(l).replica(&tp()).unwrap().isr.contains(&NodeId(f)));
    assert_eq!(h.node(l).coverage().get(Mark::IsrShrink), 1, "one committed shrink, applied by the leader");
    assert_eq!(running_total(&h, Mark::BrokerSessionExpired), 1, "the active controller fenced the silent broker");
    let expands_before = h.node(l).coverage().get(Mark::IsrExpand);
    h.restart(f);
    h.advance(Duration::from_secs(10));
    let l = leader(&h);
    assert!(h.node(l).replica(&tp()).unwrap().isr.contains(&NodeId(f)));
    assert!(h.node(l).coverage().get(Mark::IsrExpand) > expands_before);
}

#[test]
fn an_isr_below_min_isr_marks_the_refusal_and_the_held_high_watermark() {
    let mut h = cluster(6);
    create(&mut h, 3, 3);
    produce_all(&mut h, &["a"]);
    crash_a_follower(&mut h);
    let l = leader(&h);
    assert_eq!(h.node(l).coverage().get(Mark::NotEnoughReplicas), 0);
    let c = send(&mut h, l, Acks::All, &["refused"]);
    assert_eq!(err(&mut h, c).0, ErrorCode::NotEnoughReplicas);
    assert_eq!(h.node(l).coverage().get(Mark::NotEnoughReplicas), 1);
    let held_before = h.node(l).coverage().get(Mark::HwHeldBelowMinIsr);
    let c = send(&mut h, l, Acks::Leader, &["one"]);
    h.advance(Duration::from_millis(100));
    assert!(matches!(ok(&mut h, c), ResponseBody::Produced { .. }));
    assert!(h.node(l).coverage().get(Mark::HwHeldBelowMinIsr) > held_before, "the append could not move the HW");
}

/// Duplicated fetches (a network that repeats messages, or a follower that retried)
/// do not pile up at the leader: a follower's newer fetch supersedes its parked one.
/// Before this rule a duplicated fetch or answer started a second fetch loop, and
/// the parked list of a long run grew into the thousands (found by profiling a
/// simulator campaign).
#[test]
fn a_followers_repeated_fetches_keep_one_parked_at_the_leader() {
    let mut h = cluster(8);
    create(&mut h, 3, 1);
    produce_all(&mut h, &["a"]);
    h.advance(Duration::from_millis(100));
    let l = leader(&h);
    let f = a_follower(l);
    let follower = h.node(f);
    let log = follower.log(&tp()).unwrap();
    let fetch = mq_core::wire::ReplicaFetch {
        tp: tp(),
        replica: NodeId(f),
        broker_epoch: h.node(l).metadata().brokers[&NodeId(f)].epoch,
        fetch_offset: log.log_end(),
        last_fetched_epoch: log.last_epoch(),
        current_leader_epoch: follower.replica(&tp()).unwrap().leader_epoch,
        max_bytes: 1 << 20,
        // Copies of the follower's first fetch, arriving late.
        fetch_id: 1,
    };
    assert_eq!(fetch.fetch_offset, h.node(l).log(&tp()).unwrap().log_end(), "the follower is caught up");
    for _ in 0..5 {
        let msg = mq_core::wire::Message::Peer(mq_core::wire::PeerMessage::ReplicaFetch(fetch.clone()));
        h.input(l, mq_core::Input::Message { from: mq_core::Peer::Node(NodeId(f)), msg });
    }
    // The two followers' fetches at most, however many copies arrived.
    let parked = h.node(l).parked_fetches(&tp());
    assert!((1..=2).contains(&parked), "parked fetches: {parked}");
    h.node(l).check_invariants();
    // The cluster goes on replicating.
    produce_all(&mut h, &["b"]);
    h.advance(Duration::from_millis(500));
    assert_eq!(log_values(&h, f), vec!["a", "b"]);
}
