//! The final read-back (docs/invariants.md `final_readback`, docs/simulator.md
//! "Final read-back"): once the liveness phase is over (the cluster healed, the
//! producers stopped, the groups drained), one fresh consumer per partition (the
//! real `mq_core::client::Consumer`, driven over the simulated network like any
//! client) reads the partition from offset 0 to the end of the committed data the
//! checker holds. What it reads is judged against the history: the cluster, not
//! the checker's model, must show every acknowledged record at its offset.
//!
//! The rules, per partition without an unclean election:
//! - the reader may skip only below a log start some replica reached (retention);
//! - every record it reads is the committed one at that offset (where the checker
//!   holds it), was sent by some producer, and not by an op that failed definitely
//!   (`definite_failure_not_committed`);
//! - every committed data record the checker holds from the reader's start up to
//!   where it read is read back, and every acknowledged record whose loss the
//!   checker does not allow (acks=all; acks=1 where the leader is the whole ISR) is
//!   read back at its acknowledged offset with its value, unless it lies below the
//!   reader's start;
//! - every reader reaches the end, and none goes [`READBACK_STALL`] without
//!   reading further, within [`READBACK_CAP`] (a liveness failure otherwise): a
//!   reader that fetches one small batch per round trip (a small `max_bytes`) is
//!   slow, not stuck.

use super::{ClientSlot, Ev, Role, Sim};
use crate::adversary::{self, ADMIN_APP_KEY};
use crate::history::{is_adversarial, Outcome};
use crate::trace::{Actor, Trace};
use bytes::Bytes;
use mq_core::client::{Consumer, ConsumerConfig, ConsumerOutput};
use mq_core::rng::Seed;
use mq_core::wire::{Acks, Message};
use mq_core::{ClientId, Duration, Input, Instant, NodeId, Offset, Peer, TopicPartition};
use std::collections::{BTreeMap, BTreeSet};

/// How long a reader may go without reading further before the read-back ends.
const READBACK_STALL: Duration = Duration::from_secs(30);

/// The longest the read-back may last, however the readers progress.
const READBACK_CAP: Duration = Duration::from_secs(600);

/// How often the run looks whether the readers are done.
const READBACK_POLL: Duration = Duration::from_millis(100);

/// One reader's view of its partition.
#[derive(Debug)]
pub(super) struct Reader {
    tp: TopicPartition,
    /// The end of the committed data the checker held when the read-back began.
    target: Offset,
    /// Records read, in the order read.
    reads: Vec<(Offset, Bytes)>,
    /// Where the reader started reading: 0, or the log start it skipped to.
    start: Offset,
    /// The reader's position (the next offset it asks for).
    position: Offset,
    /// When `position` last moved (or the read-back began).
    moved: Instant,
}

/// The read-back phase: its readers by client slot, and when it must end.
#[derive(Debug)]
pub(super) struct Readback {
    deadline: Instant,
    readers: BTreeMap<usize, Reader>,
}

impl Readback {
    fn done(&self) -> bool {
        self.readers.values().all(|r| r.position >= r.target)
    }

    /// A reader short of its target has not moved for [`READBACK_STALL`].
    fn stalled(&self, now: Instant) -> bool {
        self.readers.values().any(|r| r.position < r.target && now.saturating_since(r.moved) >= READBACK_STALL)
    }
}

/// Feeds `input` to reader `c` (client `cid`) and collects its outputs: requests
/// into `sends`, records and skips into its [`Reader`].
#[allow(clippy::too_many_arguments)] // the disjoint fields of `Sim` a reader touches
pub(super) fn drive(
    consumer: &mut Consumer,
    readback: Option<&mut Readback>,
    c: usize,
    cid: ClientId,
    now: Instant,
    input: Option<Input>,
    sends: &mut Vec<(Peer, Message)>,
    trace: &mut Trace,
) {
    if let Some(input) = input {
        consumer.handle(now, input);
    }
    let mut reader = readback.and_then(|rb| rb.readers.get_mut(&c));
    while let Some(out) = consumer.poll_output() {
        match out {
            ConsumerOutput::Send { to, msg } => sends.push((to, msg)),
            ConsumerOutput::Records { records, .. } => {
                if let Some(r) = reader.as_deref_mut() {
                    r.reads.extend(records.into_iter().map(|(o, rec)| (o, rec.value)));
                }
            }
            ConsumerOutput::Skipped { from, to } => {
                trace.event(now, Actor::Client(cid.0), "skip", from.0, to.0, String::new);
                if let Some(r) = reader.as_deref_mut() {
                    if r.reads.is_empty() {
                        r.start = r.start.max(to);
                    }
                }
            }
            ConsumerOutput::Truncated { from, to } => {
                // A healed cluster's log does not shrink under the reader; if it
                // did, the records read past its end are no longer the log's.
                trace.event(now, Actor::Client(cid.0), "truncated", from.0, to.0, String::new);
                if let Some(r) = reader.as_deref_mut() {
                    r.reads.retain(|(o, _)| *o < to);
                }
            }
            ConsumerOutput::Error(e) => {
                trace.event(now, Actor::Client(cid.0), "error", 0, 0, || e.to_string());
            }
        }
    }
    if let Some(r) = reader {
        let position = consumer.position();
        if position != r.position {
            r.position = position;
            r.moved = now;
        }
    }
}

impl Sim {
    /// At the planned end: starts the read-back, or looks whether it is done.
    /// True while it runs (the run goes on; another `End` is queued).
    pub(super) fn readback_pending(&mut self) -> bool {
        let now = self.now;
        match &self.readback {
            None => self.begin_readback(),
            Some(rb) if !rb.done() && !rb.stalled(now) && now < rb.deadline => {}
            Some(_) => return false,
        }
        self.push(now + READBACK_POLL, Ev::End);
        true
    }

    /// One fresh reader per partition (the run's topics and every partition the
    /// checker saw commit, such as dead-letter topics), without an unclean
    /// election, from offset 0 to the end of the committed data now.
    fn begin_readback(&mut self) {
        let now = self.now;
        let seed = self.cfg.seed;
        let tps: BTreeSet<TopicPartition> = self
            .topics
            .iter()
            .chain(self.checker.partitions())
            .filter(|tp| !self.checker.is_lossy(tp))
            .cloned()
            .collect();
        let brokers: Vec<NodeId> = self.nodes.iter().map(|s| s.id).collect();
        let mut readers = BTreeMap::new();
        for (i, tp) in tps.into_iter().enumerate() {
            let mut config = ConsumerConfig::new(tp.clone());
            config.brokers = brokers.clone();
            config.request_timeout = Duration::from_millis(self.opts.request_timeout_ms);
            // The bootstrap admin may consume every topic.
            config.credentials = self.opts.auth.then(|| adversary::credentials(seed, ADMIN_APP_KEY));
            let consumer = Consumer::new(config, Seed(seed).child("reader", i as u64).0);
            let c = self.clients.len();
            let id = ClientId(c as u64 + 1);
            let role = Role::Reader(Box::new(consumer));
            self.clients.push(ClientSlot { id, role, timer: None, timer_generation: 0, started: true });
            let target = self.checker.data_end(&tp);
            let reader = Reader { tp, target, reads: Vec::new(), start: Offset(0), position: Offset(0), moved: now };
            readers.insert(c, reader);
            self.schedule_client_timer(c);
        }
        let n = readers.len() as u64;
        self.trace
            .event(now, Actor::Sim, "readback", n, 0, || format!("{n} fresh consumers read every partition back"));
        self.drained_ends = Some(readers.values().map(|r| (r.tp.clone(), r.target)).collect());
        self.readback = Some(Readback { deadline: now + READBACK_CAP, readers });
    }

    /// Judges what the readers read (module docs); the first broken rule fails
    /// the seed.
    pub(super) fn judge_readback(&mut self) {
        let Some(rb) = self.readback.take() else { return };
        let mut acked: BTreeMap<&TopicPartition, Vec<(Offset, &Bytes, u64)>> = BTreeMap::new();
        for op in &self.history.ops {
            let promised = op.acks == Acks::All || (op.acks == Acks::Leader && self.checker.leader_acks_durable);
            if let (true, Outcome::Ok { base_offset, .. }) = (promised, &op.outcome) {
                let records = op.values.iter().enumerate().map(|(i, v)| (base_offset.plus(i as u64), v, op.id));
                acked.entry(&op.tp).or_default().extend(records);
            }
        }
        let mut total = 0;
        let mut found: Option<(&'static str, String, bool)> = None;
        for (c, r) in &rb.readers {
            total += r.reads.len() as u64;
            if self.checker.is_lossy(&r.tp) {
                continue;
            }
            let cid = self.clients[*c].id.0;
            let verdict = self.judge_reader(cid, r, acked.get(&r.tp).map(Vec::as_slice).unwrap_or_default());
            if found.is_none() {
                found = verdict;
            }
        }
        self.counters.readback_records = total;
        match found {
            Some((invariant, what, false)) => self.checker.fail(invariant, what),
            Some((invariant, what, true)) => self.checker.fail_liveness(invariant, what),
            None => {}
        }
    }

    /// The first broken rule of reader `cid` of `r.tp`: (invariant, what,
    /// liveness).
    fn judge_reader(
        &self,
        cid: u64,
        r: &Reader,
        acked: &[(Offset, &Bytes, u64)],
    ) -> Option<(&'static str, String, bool)> {
        let tp = &r.tp;
        let fail = |what: String| Some(("final_readback", what, false));
        let floor = self.checker.log_start_floor(tp).max(self.max_log_start(tp));
        if r.start > floor {
            if let Some((o, v)) = self.checker.first_record_in(tp, floor, r.start) {
                return fail(format!(
                    "reader c{cid} of {tp} was sent from offset 0 to {}, past the committed record {o} = {v:?}; no replica's log starts above {floor}",
                    r.start
                ));
            }
        }
        // Below `low` records may be gone: retention removed them, before the
        // reader started or while it read.
        let low = floor.max(r.start);
        let mut last: Option<Offset> = None;
        for (o, v) in &r.reads {
            if last.is_some_and(|l| *o <= l) {
                return fail(format!("reader c{cid} read {tp}@{o} after {}", last.unwrap_or_default()));
            }
            // Every committed data record between two reads was read.
            let from = last.map_or(low, Offset::next).max(low);
            if let Some((missed, mv)) = self.checker.first_record_in(tp, from, *o) {
                return fail(format!(
                    "reader c{cid} read {tp}@{o} after {from} and never saw the committed record {missed} = {mv:?}"
                ));
            }
            last = Some(*o);
            if let Some(c) = self.checker.committed_value(tp, *o) {
                if c != v {
                    return fail(format!("reader c{cid} read {v:?} at {tp}@{o}; the committed record is {c:?}"));
                }
            }
            match self.history.origin(v) {
                Some((op, _)) if matches!(op.outcome, Outcome::Failed { .. }) => {
                    let what =
                        format!("reader c{cid} read {v:?} at {tp}@{o}, of op {}, which failed definitely", op.id);
                    return Some(("definite_failure_not_committed", what, false));
                }
                Some(_) => {}
                None if is_adversarial(v) => {
                    let what = format!("reader c{cid} read {v:?} at {tp}@{o}, written by an adversarial client");
                    return Some(("auth_not_bypassed", what, false));
                }
                None => return fail(format!("reader c{cid} read {v:?} at {tp}@{o}; no producer sent it")),
            }
        }
        // The tail up to where the reader stands.
        let from = last.map_or(low, Offset::next).max(low);
        if let Some((missed, mv)) = self.checker.first_record_in(tp, from, r.position) {
            return fail(format!(
                "reader c{cid} reached {} of {tp} and never saw the committed record {missed} = {mv:?}",
                r.position
            ));
        }
        for (o, v, op) in acked {
            if *o < low || *o >= r.position {
                continue;
            }
            match r.reads.binary_search_by_key(o, |(ro, _)| *ro) {
                Ok(i) if r.reads[i].1 == **v => {}
                Ok(i) => {
                    let got = &r.reads[i].1;
                    return fail(format!("op {op} was acked with {v:?} at {tp}@{o}; reader c{cid} read {got:?} there"));
                }
                Err(_) => {
                    return fail(format!("op {op} was acked with {v:?} at {tp}@{o}; reader c{cid} never read it"))
                }
            }
        }
        if r.position < r.target {
            let next = self.checker.first_record_in(tp, r.position, r.target);
            let what = format!(
                "reader c{cid} of {tp} reached only {} (last moved at {}; the read-back allows {READBACK_STALL} without progress, {READBACK_CAP} in all); the committed data ends at {} (next unread: {next:?})",
                r.position, r.moved, r.target
            );
            return Some(("final_readback", what, true));
        }
        None
    }
}
