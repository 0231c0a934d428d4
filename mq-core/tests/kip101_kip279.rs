//! Scripted scenarios for the cases that KIP-101 ("use the leader epoch rather
//! than the high watermark for truncation") and KIP-279 ("fix log divergence
//! between leader and follower after fast leader fail-over") describe, replayed
//! step by step on real nodes. docs/simulator.md, "Scripted scenarios: KIP-101,
//! KIP-279, figure 8", lists them with what each checks.
//!
//! The cluster has six brokers. Brokers 1 to 3 are the controller quorum and hold
//! no replica of the partition under test, so a script can crash every replica at
//! once (a power failure) and the metadata quorum still elects. The replicas are
//! brokers 4, 5 and 6 (`A`, `B`, `C`), in that order: the controller elects the
//! first live in-sync one.
//!
//! mq differs from the Kafka of the KIPs in ways that change how a case is set
//! up, not what it must end in:
//! - a follower reports (and the leader counts towards the HW) only records it
//!   has persisted, so a crash cannot take back a record the HW covers;
//! - the HW is not stored: a restarted replica starts with its HW at its log start;
//! - the controller takes a restarted or fenced broker out of every ISR, and a
//!   follower rejoins only with a fetch at or past the HW, which comes after any
//!   divergence is resolved; so a deposed leader that still holds its tail can
//!   lead again only through an unclean election, or (with three replicas) the
//!   tail can sit on a follower that a clean election promotes;
//! - divergence is found inside the fetch (KIP-320): the leader answers a fetch
//!   whose last epoch ends earlier on it with that epoch's `(epoch, end)`,
//!   instead of a separate OffsetsForLeaderEpoch round trip first.

mod support;

use bytes::Bytes;
use mq_core::controller::PartitionImage;
use mq_core::harness::Harness;
use mq_core::wire::{
    Acks, ErrorCode, Message, PeerMessage, Record, RecordBatch, ReplicaData, RequestBody, ResponseBody, TopicConfig,
};
use mq_core::{CorrelationId, Duration, Event, Input, LeaderEpoch, Mark, NodeId, Offset, Peer, TopicPartition};
use support::CLIENT;

const A: u32 = 4;
const B: u32 = 5;
const C: u32 = 6;
/// Enough partitions that one of them has its replicas on brokers 4 and up
/// (placement is round robin over the six brokers).
const PARTITIONS: u32 = 6;
/// How long a script waits for a step before it calls the run stuck.
const STEP_LIMIT: Duration = Duration::from_secs(60);

/// A six-broker cluster and the partition a script drives.
struct Script {
    h: Harness,
    tp: TopicPartition,
}

impl Script {
    /// Creates topic `t` with `rf` replicas (`min_insync_replicas` 1 unless
    /// `topic` says otherwise) and waits until `A` leads the partition under test.
    fn new(seed: u64, rf: u16, topic: impl FnOnce(TopicConfig) -> TopicConfig) -> Self {
        let mut h = Harness::new(6, seed, |c| c);
        h.wait_ready();
        let config =
            topic(TopicConfig { replication_factor: rf, min_insync_replicas: 1, ..TopicConfig::new("t", PARTITIONS) });
        let c = h.request(CLIENT, 1, RequestBody::CreateTopic(config));
        h.advance(Duration::from_millis(500));
        assert_eq!(support::ok(&mut h, c), ResponseBody::TopicCreated);
        let want: Vec<NodeId> = (A..A + u32::from(rf)).map(NodeId).collect();
        let tp = (0..PARTITIONS)
            .map(|p| TopicPartition::new("t", p))
            .find(|tp| h.node(1).metadata().partition(tp).is_some_and(|p| p.replicas == want))
            .expect("a partition on brokers 4 and up");
        let mut s = Script { h, tp };
        s.wait_leader(A);
        s
    }

    /// Advances in small steps until `cond` holds; panics after `STEP_LIMIT`.
    fn until(&mut self, what: &str, cond: impl Fn(&Script) -> bool) {
        self.until_checking(what, cond, |_| {});
    }

    /// Like [`Script::until`], running `check` after every step as well.
    fn until_checking(&mut self, what: &str, cond: impl Fn(&Script) -> bool, check: impl Fn(&Script)) {
        let deadline = self.h.now() + STEP_LIMIT;
        while !cond(self) {
            assert!(self.h.now() < deadline, "stuck waiting for: {what}");
            self.h.advance(Duration::from_millis(1));
            check(self);
        }
    }

    /// The partition as committed in metadata (broker 1 is a controller voter).
    fn image(&self) -> PartitionImage {
        self.h.node(1).metadata().partition(&self.tp).expect("the partition exists").clone()
    }

    fn isr(&self) -> Vec<u32> {
        self.image().isr.iter().map(|n| n.0).collect()
    }

    fn leads(&self, n: u32) -> bool {
        self.h.is_running(n) && self.h.node(n).replica(&self.tp).is_some_and(|r| r.is_leader())
    }

    /// Whether `n` follows `leader` in `leader`'s current epoch.
    fn follows(&self, n: u32, leader: u32) -> bool {
        let (Some(f), Some(l)) = (self.h.node(n).replica(&self.tp), self.h.node(leader).replica(&self.tp)) else {
            return false;
        };
        l.is_leader() && f.leader_to_follow() == Some(NodeId(leader)) && f.leader_epoch == l.leader_epoch
    }

    fn wait_leader(&mut self, n: u32) {
        self.until(&format!("broker {n} leads"), |s| s.leads(n) && s.h.node(n).is_ready());
    }

    /// Waits until every one of `nodes` is in the ISR and holds the same log,
    /// persisted (compared from the latest log start of them, as retention may
    /// have moved it differently).
    fn wait_converged(&mut self, nodes: &[u32]) {
        self.until("the replicas converge", |s| {
            let logs: Vec<_> = nodes.iter().map(|n| s.h.node(*n).log(&s.tp)).collect();
            if logs.iter().any(|l| l.is_none_or(|l| l.persisted_end() != l.log_end())) {
                return false;
            }
            let start = logs.iter().flatten().map(|l| l.log_start().0).max().unwrap_or(0);
            let tail = |n: u32| s.entries(n).into_iter().filter(|(o, _, _)| *o >= start).collect::<Vec<_>>();
            nodes.iter().all(|n| s.isr().contains(n) && tail(*n) == tail(nodes[0]))
        });
    }

    /// Stops `follower` fetching from `leader`, and waits out the fetch it may
    /// have parked there already (a parked fetch is answered when new data comes).
    fn block_fetches(&mut self, follower: u32, leader: u32) {
        self.h.block_fetches(follower, leader);
        self.h.advance(Duration::from_millis(600));
    }

    fn send(&mut self, to: u32, acks: Acks, vals: &[&str]) -> CorrelationId {
        let batch = RecordBatch::new(vals.iter().map(|v| Record::from_value(Bytes::from(v.to_string()))).collect());
        let body = RequestBody::Produce { topic: "t".into(), partition: self.tp.partition, acks, batch };
        self.h.request(CLIENT, to, body)
    }

    /// Produces to `to` and waits for the answer; returns the base offset.
    fn produce(&mut self, to: u32, acks: Acks, vals: &[&str]) -> Offset {
        let c = self.send(to, acks, vals);
        self.answer(c)
    }

    /// Waits for the answer to produce request `c`; returns the base offset.
    fn answer(&mut self, c: CorrelationId) -> Offset {
        let mut answer = None;
        let deadline = self.h.now() + STEP_LIMIT;
        while answer.is_none() {
            assert!(self.h.now() < deadline, "no answer to {c:?}");
            self.h.advance(Duration::from_millis(1));
            answer = self.h.take_response(CLIENT, c);
        }
        match answer.expect("just taken").body {
            Ok(ResponseBody::Produced { base_offset, .. }) => base_offset,
            other => panic!("produce {c:?}: {other:?}"),
        }
    }

    /// `(offset, leader epoch, value)` of every record `n` holds.
    fn entries(&self, n: u32) -> Vec<(u64, u32, String)> {
        let Some(log) = self.h.node(n).log(&self.tp) else { return Vec::new() };
        log.batches()
            .flat_map(|b| {
                b.iter_with_offsets()
                    .map(|(o, r)| (o.0, b.leader_epoch.0, String::from_utf8_lossy(&r.value).into_owned()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn values(&self, n: u32) -> Vec<String> {
        self.entries(n).into_iter().map(|(_, _, v)| v).collect()
    }

    fn hw(&self, n: u32) -> Offset {
        self.h.node(n).log(&self.tp).expect("a replica").high_watermark()
    }

    /// What a consumer reads from `n` from `offset` on: `(offset, value)`.
    fn read(&mut self, n: u32, offset: u64) -> Result<Vec<(u64, String)>, ErrorCode> {
        let body = RequestBody::Fetch {
            topic: "t".into(),
            partition: self.tp.partition,
            offset: Offset(offset),
            max_bytes: u32::MAX,
        };
        let c = self.h.request(CLIENT, n, body);
        match support::response(&mut self.h, c).body {
            Ok(ResponseBody::Fetched { batches, .. }) => Ok(batches
                .iter()
                .flat_map(|b| {
                    b.iter_with_offsets()
                        .map(|(o, r)| (o.0, String::from_utf8_lossy(&r.value).into_owned()))
                        .collect::<Vec<_>>()
                })
                .collect()),
            Ok(other) => panic!("fetch: {other:?}"),
            Err(e) => Err(e.code),
        }
    }

    /// The divergence truncations node `n` reported (every incarnation), as
    /// `(new end, records removed)`.
    fn truncations(&self, n: u32) -> Vec<(u64, u64)> {
        self.h
            .events()
            .iter()
            .filter_map(|(_, node, e)| match e {
                Event::Truncated { tp, end, removed } if *node == NodeId(n) && *tp == self.tp => {
                    Some((end.0, *removed))
                }
                _ => None,
            })
            .collect()
    }

    /// How often the running incarnation of `n` took the branch `mark`.
    fn mark(&self, n: u32, mark: Mark) -> u64 {
        self.h.node(n).coverage().get(mark)
    }

    /// `mark` summed over the running nodes.
    fn total(&self, mark: Mark) -> u64 {
        self.h.running().into_iter().map(|n| self.mark(n, mark)).sum()
    }
}

fn owned(vals: &[&str]) -> Vec<String> {
    vals.iter().map(|v| v.to_string()).collect()
}

fn pairs(vals: &[(u64, &str)]) -> Vec<(u64, String)> {
    vals.iter().map(|(o, v)| (*o, v.to_string())).collect()
}

/// KIP-101, scenario 1 ("high watermark truncation followed by immediate leader
/// election"), as a follower that is not restarted: a follower learns the HW one
/// fetch after it has the records, so when the leader dies right after
/// acknowledging `m2`, the followers hold `m2` with their HW still at 1. A
/// replica that truncated to its HW on becoming a follower of the next leader,
/// and was then elected itself because that leader died before it fetched again,
/// would lead without the acknowledged `m2`. mq never truncates to the HW:
/// `C` keeps `m2` through both elections and serves it.
#[test]
fn kip101_case1_a_follower_whose_hw_lags_keeps_its_tail_through_two_quick_elections() {
    let mut s = Script::new(1011, 3, |t| t);
    assert_eq!(s.produce(A, Acks::All, &["m1"]), Offset(0));
    s.h.advance(Duration::from_secs(1)); // the followers learn HW 1
    assert_eq!(s.produce(A, Acks::All, &["m2"]), Offset(1));
    assert_eq!(s.hw(A), Offset(2), "m2 is committed and acknowledged");
    assert_eq!((s.hw(B), s.hw(C)), (Offset(1), Offset(1)), "the followers learn HW 2 with their next fetch answer");
    // A dies; B is elected. C cannot fetch from B, so it takes B's epoch without
    // a fetch answer from it.
    s.h.block_fetches(C, B);
    s.h.crash(A);
    s.until("C follows B's epoch", |s| s.follows(C, B));
    assert_eq!(s.values(C), owned(&["m1", "m2"]), "C keeps what lies above its HW (KIP-101)");
    assert_eq!(s.hw(C), Offset(1));
    // B dies before C fetched from it: C, the last in-sync replica, leads.
    s.h.crash(B);
    s.wait_leader(C);
    assert_eq!(s.read(C, 0), Ok(pairs(&[(0, "m1"), (1, "m2")])), "the acknowledged m2 survived");
    assert_eq!(s.produce(C, Acks::All, &["m3"]), Offset(2));
    // The others return; nothing diverged, so nobody truncates.
    s.h.heal();
    s.h.restart(A);
    s.h.restart(B);
    s.wait_converged(&[A, B, C]);
    for n in [A, B, C] {
        assert_eq!(s.values(n), owned(&["m1", "m2", "m3"]), "broker {n}");
        assert!(s.truncations(n).is_empty(), "broker {n}: {:?}", s.truncations(n));
    }
    assert_eq!(s.total(Mark::DivergenceAnswered), 0);
}

/// KIP-101, scenario 1, as the KIP tells it: the follower restarts with `m2` in
/// its log and its HW behind it (in mq a restarted replica's HW is its log start).
/// Pre-KIP-101 it truncated to that HW on restart. mq keeps every persisted
/// record: at no step does the restarted follower's log end below `m2`, its first
/// fetch proves it holds `m2` and brings it back into the ISR without fetching
/// anything, and when the leader then dies it leads with `m2`.
#[test]
fn kip101_case1_a_restarted_follower_keeps_its_records_above_the_hw_and_leads_with_them() {
    let mut s = Script::new(1012, 2, |t| t);
    s.produce(A, Acks::All, &["m1"]);
    s.h.advance(Duration::from_secs(1));
    assert_eq!(s.produce(A, Acks::All, &["m2"]), Offset(1));
    assert_eq!(s.hw(B), Offset(1), "B's HW lags");
    s.h.crash(B);
    s.h.restart(B);
    assert_eq!(s.isr(), [A, B], "not yet re-registered");
    s.until("B re-registers and leaves the ISR", |s| s.isr() == [A]);
    s.until_checking(
        "B back in the ISR",
        |s| s.isr() == [A, B],
        |s| {
            if let Some(log) = s.h.node(B).log(&s.tp) {
                assert!(log.log_end() >= Offset(2), "B dropped records it had persisted: {:?}", s.entries(B));
                assert!(log.high_watermark() <= Offset(2));
            }
        },
    );
    assert!(s.truncations(B).is_empty(), "{:?}", s.truncations(B));
    s.h.crash(A);
    s.wait_leader(B);
    assert_eq!(s.read(B, 0), Ok(pairs(&[(0, "m1"), (1, "m2")])));
}

/// KIP-101, scenario 1, the "immediate leader election" half: in mq a restarted
/// follower is out of the ISR until a fetch of its proves what it holds, so if
/// the leader dies first the controller elects nobody (unclean election is off)
/// rather than a replica that has not shown it holds every committed record. The
/// partition waits for the leader, which returns with everything.
#[test]
fn kip101_case1_a_restarted_follower_is_not_elected_before_it_rejoins_the_isr() {
    let mut s = Script::new(1013, 2, |t| t);
    s.produce(A, Acks::All, &["m1"]);
    s.produce(A, Acks::All, &["m2"]);
    s.h.crash(B);
    s.block_fetches(B, A);
    s.h.restart(B);
    s.until("B re-registers and leaves the ISR", |s| s.isr() == [A] && s.h.node(B).is_ready());
    s.h.crash(A);
    s.h.advance(Duration::from_secs(10));
    let p = s.image();
    assert_eq!((p.leader, s.isr()), (None, vec![A]), "no leader; A stays the last in-sync replica");
    assert!(!s.leads(B));
    assert!(s.total(Mark::UncleanElectionRefused) >= 1);
    s.h.heal();
    s.h.restart(A);
    s.wait_leader(A);
    s.wait_converged(&[A, B]);
    assert_eq!(s.values(B), owned(&["m1", "m2"]));
    assert_eq!(s.read(A, 0), Ok(pairs(&[(0, "m1"), (1, "m2")])));
}

/// KIP-101, scenario 2 ("replica divergence on restart after multiple hard
/// failures"): both replicas crash at once; the follower loses the copy of `m2`
/// it had not flushed, the leader keeps `m2`. The follower comes back first and
/// leads, writing `m3` at `m2`'s offset. Truncating to the HW, the old leader
/// would keep `m2` beside the new leader's `m3`; by epoch it finds that epoch 1
/// ends at offset 1 on the new leader and drops exactly `m2`.
///
/// In Kafka the leader's HW already covered `m2` (followers acknowledged before
/// flushing); in mq a follower reports only persisted records, so `m2` is not
/// committed, and only `acks=1` could acknowledge it.
#[test]
fn kip101_case2_after_a_power_failure_the_old_leader_drops_the_write_the_new_one_lost() {
    let mut s = Script::new(1020, 2, |t| t);
    s.produce(A, Acks::All, &["m1"]);
    // A loses touch with the controller a second before the power failure, so
    // its session ends first and B is the last in-sync replica.
    for voter in 1..=3 {
        s.h.cut(A, voter);
    }
    s.h.advance(Duration::from_secs(1));
    s.h.hold_persists(B, true);
    assert_eq!(s.produce(A, Acks::Leader, &["m2"]), Offset(1));
    s.until("B fetched m2", |s| s.h.node(B).log(&s.tp).is_some_and(|l| l.log_end() == Offset(2)));
    assert_eq!(s.h.node(B).log(&s.tp).unwrap().persisted_end(), Offset(1), "B's copy of m2 is not flushed");
    // The power failure.
    s.h.crash(A);
    s.h.crash(B);
    s.h.heal();
    assert_eq!(s.h.store(A).logs[&s.tp].log_end(), Offset(2), "A flushed m2");
    assert_eq!(s.h.store(B).logs[&s.tp].log_end(), Offset(1), "B lost m2");
    s.until("both fenced, B the last in-sync replica", |s| s.image().leader.is_none() && s.isr() == [B]);
    // B returns first and leads; it writes m3 where A holds m2.
    s.h.restart(B);
    s.wait_leader(B);
    assert_eq!(s.produce(B, Acks::All, &["m3"]), Offset(1));
    s.h.restart(A);
    s.wait_converged(&[A, B]);
    assert_eq!(s.values(A), owned(&["m1", "m3"]));
    assert_eq!(s.truncations(A), [(1, 1)], "A cut exactly m2");
    assert_eq!(s.mark(A, Mark::DivergenceTruncated), 1);
    assert!(s.mark(B, Mark::DivergenceAnswered) >= 1);
    assert_eq!(s.total(Mark::DivergenceNothingToCut), 0);
    assert_eq!(s.read(B, 0), Ok(pairs(&[(0, "m1"), (1, "m3")])));
}

/// KIP-279, fast leader fail-over where the new leader holds a longer tail of an
/// older epoch than a follower's tail of a newer one: `C` fetched `m2` (epoch 1)
/// from `A`, `B` did not. `A` dies and `B` leads epoch 2 just long enough to
/// write `m3` at offset 1, which nobody fetches; `B` dies and `C` leads (a clean
/// election: it is the last in-sync replica), which commits `m2`. `B` returns
/// asking about epoch 2, which `C` never had. `C` answers with epoch 1, which
/// ends at 2 on `C` but at 1 on `B`: `B` must truncate to 1 (the lesser), not
/// to 2, which would keep `m3` beside the committed `m2`.
#[test]
fn kip279_a_follower_truncates_a_newer_epoch_the_leader_never_had_to_where_its_own_older_epoch_ends() {
    let mut s = Script::new(2791, 3, |t| t);
    s.produce(A, Acks::All, &["m1"]);
    s.block_fetches(B, A);
    assert_eq!(s.produce(A, Acks::Leader, &["m2"]), Offset(1));
    s.until("C fetched m2", |s| s.h.node(C).log(&s.tp).is_some_and(|l| l.persisted_end() == Offset(2)));
    s.block_fetches(C, B);
    s.h.crash(A);
    s.wait_leader(B);
    assert_eq!(s.produce(B, Acks::Leader, &["m3"]), Offset(1));
    s.h.crash(B);
    s.wait_leader(C);
    s.h.heal();
    assert_eq!(s.produce(C, Acks::All, &["m4"]), Offset(2));
    assert_eq!(s.read(C, 0), Ok(pairs(&[(0, "m1"), (1, "m2"), (2, "m4")])), "m2 is committed");
    s.h.restart(B);
    s.h.restart(A);
    s.wait_converged(&[A, B, C]);
    for n in [A, B, C] {
        assert_eq!(s.values(n), owned(&["m1", "m2", "m4"]), "broker {n}");
    }
    assert_eq!(s.truncations(B), [(1, 1)], "B cut m3 and only m3");
    assert!(s.truncations(A).is_empty(), "A's epoch 1 is C's: {:?}", s.truncations(A));
    assert_eq!(s.mark(B, Mark::DivergenceTruncated), 1);
    assert_eq!(s.total(Mark::DivergenceNothingToCut), 0);
}

/// KIP-279, "multiple rounds": after three fast fail-overs with unclean
/// elections, one divergence answer is not enough. `B` ends with epochs
/// (1, 2, e3), `A` with (1, e2', e4), where `A` never had epoch 2 and `B` never had
/// e2' or e4. `B` asks about its last epoch; `A`'s largest epoch at or before it
/// is e2', which `B` lacks, so `B` cuts only its last epoch (end 2) and asks again
/// about epoch 2; `A` answers with epoch 1, ending at 1 on both, and `B` cuts its
/// epoch-2 record too. The logs then match (Kafka's acceptance test for this
/// case alternates leaders the same way).
#[test]
fn kip279_three_quick_unclean_fail_overs_take_two_divergence_rounds() {
    let mut s = Script::new(2792, 2, |t| TopicConfig { unclean_leader_election: true, ..t });
    s.produce(A, Acks::All, &["m0"]);
    s.h.crash(A);
    s.wait_leader(B);
    assert_eq!(s.produce(B, Acks::Leader, &["b1"]), Offset(1));
    s.h.crash(B);
    s.h.restart(A);
    s.wait_leader(A);
    assert_eq!(s.produce(A, Acks::Leader, &["a1", "a2", "a3"]), Offset(1));
    s.h.crash(A);
    s.h.restart(B);
    s.wait_leader(B);
    assert_eq!(s.produce(B, Acks::Leader, &["b2"]), Offset(2));
    s.h.crash(B);
    s.h.restart(A);
    s.wait_leader(A);
    assert_eq!(s.produce(A, Acks::Leader, &["a4", "a5"]), Offset(4));
    assert_eq!(s.h.store(B).logs[&s.tp].log_end(), Offset(3));
    s.h.restart(B);
    s.wait_converged(&[A, B]);
    assert_eq!(s.values(B), owned(&["m0", "a1", "a2", "a3", "a4", "a5"]));
    assert_eq!(s.truncations(B), [(2, 1), (1, 1)], "two rounds: b2, then b1");
    assert_eq!(s.mark(B, Mark::DivergenceTruncated), 2);
    assert!(s.mark(A, Mark::DivergenceAnswered) >= 2);
    assert_eq!(s.total(Mark::DivergenceNothingToCut), 0);
    let epochs: Vec<u32> = s.entries(B).iter().map(|(_, e, _)| *e).collect();
    assert!(epochs.windows(2).all(|w| w[0] <= w[1]), "epochs never decrease: {epochs:?}");
}

/// KIP-279 (and its follow-up KAFKA-7415): the leader holds no epoch at or before
/// the follower's last one. `B` never fetched `m1` but is in sync, so when `A`
/// dies `B` leads epoch 2 with an empty log (a clean election; `m1` was only
/// acknowledged with `acks=1`) and writes `m2` at offset 0. `A` returns asking
/// about epoch 1; `B`'s log starts with epoch 2, so epoch 1 ends where `B`'s log
/// starts, and `A` truncates to 0.
#[test]
fn kip279_a_leader_with_no_epoch_at_or_before_the_followers_makes_it_truncate_to_the_leaders_log_start() {
    let mut s = Script::new(2793, 2, |t| t);
    s.block_fetches(B, A);
    assert_eq!(s.produce(A, Acks::Leader, &["m1"]), Offset(0));
    s.h.crash(A);
    s.h.heal();
    s.wait_leader(B);
    assert_eq!(s.values(B), Vec::<String>::new());
    assert_eq!(s.produce(B, Acks::All, &["m2"]), Offset(0));
    s.h.restart(A);
    s.wait_converged(&[A, B]);
    assert_eq!(s.values(A), owned(&["m2"]));
    assert_eq!(s.truncations(A), [(0, 1)]);
    assert_eq!(s.mark(A, Mark::DivergenceEmptied), 1);
    assert_eq!(s.total(Mark::UncleanElection), 0);
    assert_eq!(s.total(Mark::DivergenceNothingToCut), 0);
}

/// KIP-279's rule that the follower cannot vouch for anything the leader has no
/// epoch for, at the leader's log start: `B` holds `m2` (epoch 1) at offset 1,
/// which nobody else has; while `B` is down, `C` leads, commits `c1` at offset 1
/// and more, and retention removes `c1` (so `C` keeps no record of epoch 1 or
/// before). `B` returns asking about epoch 1 at offset 2, which is `C`'s log
/// start. Everything `B` holds below that start is unverifiable: `B` must not keep
/// `m2` where `c1` was committed, or a clean election of `B` would serve it.
#[test]
fn kip279_a_follower_does_not_keep_a_diverging_record_below_the_leaders_log_start() {
    // Small records on B, a big committed one on C: byte retention removes `c1`
    // on C and nothing on B.
    let mut s = Script::new(2794, 3, |t| TopicConfig { retention_bytes: Some(1_000), ..t });
    s.produce(A, Acks::All, &["m1"]);
    s.block_fetches(C, A);
    assert_eq!(s.produce(A, Acks::Leader, &["m2"]), Offset(1));
    s.until("B fetched m2", |s| s.h.node(B).log(&s.tp).is_some_and(|l| l.persisted_end() == Offset(2)));
    s.h.crash(B);
    s.h.crash(A);
    s.h.heal();
    s.wait_leader(C);
    let c1 = format!("c1{}", "-".repeat(4_000));
    assert_eq!(s.produce(C, Acks::All, &[&c1]), Offset(1));
    assert_eq!(s.produce(C, Acks::All, &["c2"]), Offset(2));
    assert_eq!(s.produce(C, Acks::All, &["c3"]), Offset(3));
    s.until("retention removed c1 on C", |s| s.h.node(C).log(&s.tp).is_some_and(|l| l.log_start() == Offset(2)));
    s.h.restart(B);
    s.wait_converged(&[B, C]);
    assert_eq!(s.truncations(B), [(2, 2)], "B emptied its log at C's log start");
    assert_eq!(s.mark(B, Mark::DivergenceEmptied), 1);
    assert!(s.mark(C, Mark::DivergenceAnswered) >= 1);
    // C dies: B, in sync again, is elected cleanly.
    s.h.crash(C);
    s.wait_leader(B);
    let committed = ["m1", &c1, "c2", "c3"];
    let start = s.h.node(B).log(&s.tp).unwrap().log_start().0;
    for (o, v) in s.read(B, start).expect("B serves from its log start") {
        assert!(committed[o as usize] == v, "B serves {v:.8} at offset {o}, committed as {:.8}", committed[o as usize]);
    }
    assert!(start >= 2, "B kept records below C's log start it cannot vouch for: {:?}", s.entries(B));
    assert_eq!(s.total(Mark::UncleanElection), 0);
}

/// Not a KIP case: a repeated divergence answer. The network delivers the
/// leader's divergence answer to `A` a second time, after `A` cut its log and
/// asked again. Fetch answers name the fetch they answer, and `A` takes only the
/// answer to its newest fetch: the copy changes nothing (before fetch ids it was
/// taken, found nothing to cut and started a second fetch loop beside the first;
/// seed 1002286 grew such loops until its links were full). `A` converges with
/// one truncation. (`replica.divergence_nothing_to_cut` is still reached, by an
/// answer to a fetch parked while retention emptied both logs: docs/simulator.md.)
#[test]
fn a_repeated_divergence_answer_is_ignored_and_the_follower_still_converges() {
    let mut s = Script::new(2795, 2, |t| t);
    s.produce(A, Acks::All, &["m1"]);
    s.block_fetches(B, A);
    assert_eq!(s.produce(A, Acks::Leader, &["m2"]), Offset(1));
    s.h.crash(A);
    s.h.heal();
    s.wait_leader(B);
    assert_eq!(s.produce(B, Acks::All, &["m3"]), Offset(1));
    let (epoch, hw) = (s.h.node(B).replica(&s.tp).unwrap().leader_epoch, s.hw(B));
    s.h.restart(A);
    // One event at a time: A cuts m2, and its next fetch leaves once the cut is durable.
    let deadline = s.h.now() + STEP_LIMIT;
    while s.truncations(A).is_empty() {
        assert!(s.h.now() < deadline, "A never truncated");
        s.h.step();
    }
    while s.h.pending_persists(A) > 0 {
        s.h.step();
    }
    let answer = ReplicaData {
        high_watermark: hw,
        log_start: Offset(0),
        diverging: Some((LeaderEpoch(1), Offset(1))),
        batches: Vec::new(),
        producers: None,
    };
    // The copy of the answer to A's first fetch of this incarnation.
    let incarnation = s.h.node(B).metadata().brokers[&NodeId(A)].epoch;
    let msg = PeerMessage::ReplicaFetchReply {
        tp: s.tp.clone(),
        leader_epoch: epoch,
        fetch: (incarnation, 1),
        result: Ok(answer),
    };
    s.h.input(A, Input::Message { from: Peer::Node(NodeId(B)), msg: Message::Peer(msg) });
    assert_eq!(s.mark(A, Mark::DivergenceNothingToCut), 0, "the repeated answer was taken");
    s.wait_converged(&[A, B]);
    assert_eq!(s.values(A), owned(&["m1", "m3"]));
    assert_eq!(s.truncations(A), [(1, 1)]);
    assert_eq!(s.mark(A, Mark::DivergenceTruncated), 1);
}
