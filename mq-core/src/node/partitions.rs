//! The node's partitions: produce, consumer fetches and offset lookups on leaders;
//! the replication protocol on both sides (follower fetches, parked fetches, HW,
//! ISR requests, divergence truncation); reacting to committed partition state.
//! The rules themselves live in [`crate::replication`].

use super::broker::Purpose;
use super::{Effect, Node, PendingReply};
use crate::buggify::{Buggify, Point};
use crate::contract::{Event, Peer};
use crate::controller::ControllerRequest;
use crate::coverage::{Coverage, Mark};
use crate::ids::{BrokerEpoch, CorrelationId, LeaderEpoch, NodeId, Offset, PartitionId, TopicPartition};
use crate::log::PartitionLog;
use crate::replication::producers::{ProducerTable, SequenceCheck};
use crate::replication::{FetchAnswer, Replica, Resolution, Role, Transition};
use crate::storage::Write;
use crate::time::{Duration, Instant};
use crate::wire::{
    Acks, BatchKind, ErrorCode, OffsetSpec, PeerMessage, RecordBatch, ReplicaData, ReplicaFetch, ResponseBody,
    WireError,
};
use std::collections::VecDeque;

/// Pause after a failed follower fetch.
const FETCH_BACKOFF: Duration = Duration::from_millis(100);

/// When an `acks=all` produce waiting for the HW times out: after
/// `produce_timeout`, or (BUGGIFY) after a few milliseconds, so that the client's
/// unknown-outcome path runs while the batch may still commit.
fn commit_wait_deadline(b: &mut Buggify, coverage: &mut Coverage, now: Instant, produce_timeout: Duration) -> Instant {
    if b.fire(Point::ProduceShortCommitWait, coverage) {
        return now + Duration::from_micros(b.pick(1_000..50_000));
    }
    now + produce_timeout
}

/// The leader's answer to follower fetch `f`.
fn fetch_reply(f: &ReplicaFetch, result: Result<ReplicaData, WireError>) -> PeerMessage {
    PeerMessage::ReplicaFetchReply {
        tp: f.tp.clone(),
        leader_epoch: f.current_leader_epoch,
        fetch: (f.broker_epoch, f.fetch_id),
        result,
    }
}

/// Where a follower's fetching stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FetchState {
    /// May fetch from this time on.
    Idle(Instant),
    /// A fetch is out (its `fetch_id`); give up on it at the deadline.
    InFlight(Instant, u64),
    /// Fetched data is being persisted; the next fetch reports it.
    AwaitingPersist,
}

/// One partition replica with the node's bookkeeping around it.
#[derive(Clone, Debug)]
pub struct Slot {
    /// The replica.
    pub replica: Replica,
    /// `acks=all` replies waiting for the HW: (batch end, deadline, reply).
    pub(super) hw_waiters: VecDeque<(Offset, Instant, PendingReply)>,
    /// Follower fetches with nothing new yet: (follower, request, deadline).
    pub(super) parked: Vec<(NodeId, ReplicaFetch, Instant)>,
    pub(super) fetch: FetchState,
    /// Answers to this follower's fetches up to this id are no longer taken:
    /// one was taken, and so the fetches sent before it are abandoned.
    pub(super) fetch_settled: u64,
    /// The leader's HW as last seen by this follower.
    pub(super) leader_hw: Offset,
}

impl Node {
    // ----- produce, fetch, list offsets (leaders) -----

    /// Appends a client's batch (or a dead-letter batch for another leader, whose
    /// `commit_deadline` replaces `produce_timeout`).
    #[allow(clippy::too_many_arguments)] // one request's fields and its deadline
    pub(super) fn produce(
        &mut self,
        from: Peer,
        corr: CorrelationId,
        topic: String,
        partition: PartitionId,
        acks: Acks,
        batch: RecordBatch,
        commit_deadline: Option<Instant>,
    ) -> Result<Option<ResponseBody>, WireError> {
        let size = batch.size_bytes();
        let max_batch = self.config.max_batch_bytes;
        if batch.is_empty() {
            return Err(WireError::new(ErrorCode::InvalidRequest, "empty batch: send at least one record"));
        }
        if batch.kind != BatchKind::Data {
            return Err(WireError::new(ErrorCode::InvalidRequest, "clients may not write control batches"));
        }
        if size > max_batch {
            return Err(WireError::new(
                ErrorCode::RecordTooLarge,
                format!("batch of {size} bytes exceeds max_batch_bytes {max_batch}; split it or raise the limit"),
            ));
        }
        if self.pending_write_bytes + size > self.config.max_pending_write_bytes {
            return Err(WireError::new(
                ErrorCode::Backpressure,
                format!("broker {} has {} bytes waiting for disk; retry later", self.id(), self.pending_write_bytes),
            ));
        }
        let tp = TopicPartition { topic, partition };
        let now_ms = self.now.as_millis();
        let max_waiters = self.config.max_waiters_per_partition;
        let ready = self.is_ready();
        let Some(slot) = self.slots.get_mut(&tp).filter(|s| ready && s.replica.is_leader()) else {
            return Err(self.missing_partition(&tp.topic, tp.partition));
        };
        let r = &slot.replica;
        if acks == Acks::All && r.isr.len() < r.min_insync {
            self.coverage.hit(Mark::NotEnoughReplicas);
            return Err(WireError::new(
                ErrorCode::NotEnoughReplicas,
                format!(
                    "{tp} has {} in-sync replica(s) {:?}, fewer than min_insync_replicas {}; nothing was written",
                    r.isr.len(),
                    r.isr,
                    r.min_insync
                ),
            ));
        }
        if acks == Acks::All && slot.hw_waiters.len() >= max_waiters {
            return Err(WireError::new(ErrorCode::Backpressure, format!("{tp} has too many writes waiting to commit")));
        }
        if let Some(stamp) = batch.producer {
            match slot.replica.producers.check(&stamp, batch.len()) {
                SequenceCheck::Accept => {}
                SequenceCheck::Duplicate { base_offset, end, append_time_ms } => {
                    self.coverage.hit(Mark::DuplicateBatch);
                    // A retry of a batch already in the log (or removed from it by
                    // retention, which only takes committed batches): answer with the
                    // original offsets, once the original is as durable as `acks`
                    // promises.
                    let log = &slot.replica.log;
                    let body = ResponseBody::Produced { partition, base_offset, append_time_ms };
                    let done = match acks {
                        Acks::None => return Ok(None),
                        Acks::Leader => log.persisted_end() >= end,
                        Acks::All => log.high_watermark() >= end,
                    };
                    if done {
                        return Ok(Some(body));
                    }
                    let deadline = commit_deadline.unwrap_or_else(|| {
                        commit_wait_deadline(
                            &mut self.buggify,
                            &mut self.coverage,
                            self.now,
                            self.config.produce_timeout,
                        )
                    });
                    let reply = PendingReply { to: from, correlation: corr, body, event: None };
                    slot.hw_waiters.push_back((end, deadline, reply));
                    return Ok(None);
                }
                SequenceCheck::Fenced { current } => {
                    self.coverage.hit(Mark::ProducerFenced);
                    return Err(WireError::new(
                        ErrorCode::ProducerFenced,
                        format!(
                            "producer {} epoch {} is fenced by epoch {current} on {tp}",
                            stamp.producer_id, stamp.producer_epoch
                        ),
                    ));
                }
                SequenceCheck::UnknownProducer => {
                    self.coverage.hit(Mark::UnknownProducer);
                    return Err(WireError::new(
                        ErrorCode::UnknownProducerId,
                        format!(
                            "{tp} has no state for producer {} epoch {} and its first batch must start at sequence 0, not {}; nothing was written",
                            stamp.producer_id, stamp.producer_epoch, stamp.base_sequence
                        ),
                    ));
                }
                SequenceCheck::OutOfOrder { expected } => {
                    self.coverage.hit(Mark::OutOfOrderSequence);
                    return Err(WireError::new(
                        ErrorCode::OutOfOrderSequence,
                        format!(
                            "producer {} sent sequence {} to {tp}, expected {expected}; nothing was written",
                            stamp.producer_id, stamp.base_sequence
                        ),
                    ));
                }
            }
        }
        let epoch = slot.replica.leader_epoch;
        let stamped = slot.replica.log.append(batch, epoch, now_ms);
        slot.replica.producers.record(&stamped);
        let reply = (acks != Acks::None).then(|| PendingReply {
            to: from,
            correlation: corr,
            body: ResponseBody::Produced {
                partition,
                base_offset: stamped.base_offset,
                append_time_ms: stamped.append_time_ms,
            },
            event: None,
        });
        let end = stamped.end_offset();
        let write = Write::Append { tp: tp.clone(), batches: vec![stamped] };
        self.stage(write, Some(Effect::Appended { tp, end, epoch, acks, reply, commit_deadline }), size);
        Ok(None)
    }

    fn leader_slot(&mut self, topic: &str, partition: PartitionId) -> Result<&mut Slot, WireError> {
        let tp = TopicPartition { topic: topic.to_string(), partition };
        let ready = self.is_ready();
        match self.slots.get(&tp) {
            Some(s) if ready && s.replica.is_leader() => Ok(self.slots.get_mut(&tp).expect("just found")),
            _ => Err(self.missing_partition(topic, partition)),
        }
    }

    pub(super) fn fetch(
        &mut self,
        topic: &str,
        partition: PartitionId,
        offset: Offset,
        max_bytes: usize,
    ) -> Result<ResponseBody, WireError> {
        let cap = self.config.max_fetch_bytes;
        let log = &self.leader_slot(topic, partition)?.replica.log;
        if offset < log.log_start() || offset > log.log_end() {
            let (start, hw) = (log.log_start(), log.high_watermark());
            self.coverage.hit(Mark::FetchOffsetOutOfRange);
            return Err(WireError::new(
                ErrorCode::OffsetOutOfRange,
                format!(
                    "offset {offset} is outside {topic}/{partition}, which holds {}..{}; seek to the earliest or latest offset",
                    start, hw
                ),
            ));
        }
        Ok(ResponseBody::Fetched {
            partition,
            high_watermark: log.high_watermark(),
            log_start: log.log_start(),
            batches: log.read_committed_data(offset, max_bytes.min(cap)),
        })
    }

    pub(super) fn list_offsets(
        &mut self,
        topic: &str,
        partition: PartitionId,
        spec: OffsetSpec,
    ) -> Result<Offset, WireError> {
        let log = &self.leader_slot(topic, partition)?.replica.log;
        Ok(match spec {
            OffsetSpec::Earliest => log.log_start(),
            OffsetSpec::Latest => log.high_watermark(),
            OffsetSpec::Timestamp(t) => log.offset_for_time(t),
        })
    }

    /// A leader's append is durable.
    pub(super) fn on_appended(
        &mut self,
        tp: TopicPartition,
        end: Offset,
        epoch: LeaderEpoch,
        acks: Acks,
        reply: Option<PendingReply>,
        commit_deadline: Option<Instant>,
    ) {
        let deadline = match commit_deadline {
            Some(d) => d,
            None if matches!(acks, Acks::All) && reply.is_some() => {
                commit_wait_deadline(&mut self.buggify, &mut self.coverage, self.now, self.config.produce_timeout)
            }
            None => self.now + self.config.produce_timeout,
        };
        let Some(slot) = self.slots.get_mut(&tp) else {
            if let Some(r) = reply {
                let e = WireError::new(ErrorCode::TopicDeleted, format!("{tp} was deleted before the batch committed"));
                self.reply(r.to, r.correlation, Err(e));
            }
            return;
        };
        slot.replica.log.mark_persisted(end);
        let same_tenure = slot.replica.is_leader() && slot.replica.leader_epoch == epoch;
        match (reply, same_tenure, acks) {
            (None, _, _) => {}
            (Some(r), false, _) => {
                self.coverage.hit(Mark::LeadershipLostBeforeCommit);
                let e = WireError::new(
                    ErrorCode::LeadershipLost,
                    format!("leadership of {tp} moved before the batch committed; it may or may not be committed"),
                );
                self.reply(r.to, r.correlation, Err(e));
            }
            (Some(r), true, Acks::All) => slot.hw_waiters.push_back((end, deadline, r)),
            (Some(r), true, _) => self.send_reply(r),
        }
        self.after_leader_progress(&tp);
        // A former leader that now follows waited for this to report a durable LEO.
        self.maybe_fetch(&tp);
    }

    /// A follower's append or truncation is durable: fetch again.
    pub(super) fn on_replicated(&mut self, tp: TopicPartition, end: Offset) {
        let Some(slot) = self.slots.get_mut(&tp) else { return };
        if end <= slot.replica.log.log_end() {
            slot.replica.log.mark_persisted(end);
        }
        if slot.fetch == FetchState::AwaitingPersist {
            slot.fetch = FetchState::Idle(self.now);
        }
        if slot.replica.is_leader() {
            self.after_leader_progress(&tp);
        } else {
            let hw = slot.leader_hw;
            slot.replica.log.follow_high_watermark(hw);
            self.maybe_fetch(&tp);
        }
    }

    /// The leader's LEO or a follower's LEO moved: recompute the HW, answer
    /// waiters, wake parked fetches.
    fn after_leader_progress(&mut self, tp: &TopicPartition) {
        let me = self.id();
        let Some(slot) = self.slots.get_mut(tp) else { return };
        if !slot.replica.is_leader() {
            return;
        }
        // `update_high_watermark` keeps the HW where it is below min ISR.
        let held = slot.replica.isr.len() < slot.replica.min_insync;
        if slot.replica.update_high_watermark(me) {
            self.on_high_watermark(tp);
        } else if held {
            self.coverage.hit(Mark::HwHeldBelowMinIsr);
        }
        self.wake_parked(tp, false);
    }

    /// Follower: its log of `tp` was just emptied and restarted at `start`.
    /// It takes the producer state the leader sent of its log below `start`
    /// (docs/replication.md section 5), and fetches again once the reset is
    /// durable.
    fn stage_log_reset(&mut self, tp: TopicPartition, start: Offset, producers: Option<ProducerTable>) {
        let Some(slot) = self.slots.get_mut(&tp) else { return };
        if let Some(p) = &producers {
            slot.replica.log.adopt_retired_producers(p.clone());
        }
        slot.fetch = FetchState::AwaitingPersist;
        let reset = Write::ResetLog { tp: tp.clone(), start, producers };
        self.stage(reset, Some(Effect::Replicated { tp, end: start }), 0);
    }

    fn on_high_watermark(&mut self, tp: &TopicPartition) {
        let Some(slot) = self.slots.get_mut(tp) else { return };
        let hw = slot.replica.log.high_watermark();
        let leader_epoch = slot.replica.leader_epoch;
        // Waiters are in arrival order (deadline order too, unless BUGGIFY shortened one), which is
        // not end-offset order once a retried duplicate waits for an earlier batch:
        // take every satisfied one.
        let mut ready = Vec::new();
        slot.hw_waiters.retain(|(end, _, r)| {
            let done = *end <= hw;
            if done {
                ready.push(r.clone());
            }
            !done
        });
        self.event(Event::HighWatermark { tp: tp.clone(), high_watermark: hw, leader_epoch });
        for r in ready {
            self.send_reply(r);
        }
        self.delivery_on_high_watermark(tp);
    }

    // ----- replication: leader side -----

    pub(super) fn handle_replica_fetch(&mut self, from: NodeId, f: ReplicaFetch) {
        let tp = f.tp.clone();
        if f.replica != from {
            let e = WireError::new(ErrorCode::InvalidRequest, "a broker may fetch only for itself");
            self.send_peer(from, fetch_reply(&f, Err(e)));
            return;
        }
        if self.image.brokers.get(&from).is_none_or(|b| b.epoch != f.broker_epoch) {
            self.coverage.hit(Mark::FetchStaleBrokerEpoch);
            let e = WireError::new(
                ErrorCode::FencedEpoch,
                format!("broker {from} epoch {} is not current", f.broker_epoch),
            );
            self.send_peer(from, fetch_reply(&f, Err(e)));
            return;
        }
        let deadline = self.now + self.config.replica_fetch_max_wait;
        self.answer_fetch(from, f, deadline);
        self.maybe_alter_isr(&tp);
    }

    /// Answers or parks a follower fetch.
    fn answer_fetch(&mut self, from: NodeId, f: ReplicaFetch, deadline: Instant) {
        let me = self.id();
        let now = self.now;
        let tp = f.tp.clone();
        let mut max_bytes = f.max_bytes.min(self.config.replica_fetch_max_bytes) as usize;
        if self.buggify.fire(Point::ReplicaSmallFetch, &mut self.coverage) {
            // The log always answers at least one batch.
            max_bytes = 1;
        }
        let Some(slot) = self.slots.get_mut(&tp) else {
            let e = self.missing_partition(&tp.topic, tp.partition);
            self.send_peer(from, fetch_reply(&f, Err(e)));
            return;
        };
        let hw_before = slot.replica.log.high_watermark();
        let answer = slot.replica.handle_fetch(me, now, &f, max_bytes);
        let hw_moved = slot.replica.log.high_watermark() > hw_before;
        let mark = match &answer {
            Ok(FetchAnswer::Reply(ReplicaData { diverging: Some(_), .. })) => Some(Mark::DivergenceAnswered),
            Err(e) if e.code == ErrorCode::FencedEpoch => Some(Mark::FetchStaleLeaderEpoch),
            Err(e) if e.code == ErrorCode::UnknownEpoch => Some(Mark::FetchNewerLeaderEpoch),
            Err(e) if e.code == ErrorCode::OffsetOutOfRange => Some(Mark::FetchPastLeaderEnd),
            _ => None,
        };
        if let Some(m) = mark {
            self.coverage.hit(m);
        }
        match answer {
            Ok(FetchAnswer::Park) if deadline > now => {
                // A follower has one fetch of a partition out at a time (Kafka's
                // fetcher does the same): a newer one supersedes whatever of it is
                // parked. Without this, duplicated fetches or answers would each
                // start another fetch loop, and the parked list would grow without
                // bound. A copy of an older fetch arriving late parks nothing:
                // the follower takes no answer to it.
                let order = |x: &ReplicaFetch| (x.broker_epoch, x.fetch_id);
                if !slot.parked.iter().any(|(r, p, _)| *r == from && order(p) >= order(&f)) {
                    slot.parked.retain(|(r, _, _)| *r != from);
                    slot.parked.push((from, f, deadline));
                }
            }
            Ok(FetchAnswer::Park) => {
                let log = &slot.replica.log;
                let data = ReplicaData {
                    high_watermark: log.high_watermark(),
                    log_start: log.log_start(),
                    diverging: None,
                    batches: Vec::new(),
                    producers: None,
                };
                self.send_peer(from, fetch_reply(&f, Ok(data)));
            }
            Ok(FetchAnswer::Reply(data)) => self.send_peer(from, fetch_reply(&f, Ok(data))),
            Err(e) => self.send_peer(from, fetch_reply(&f, Err(e))),
        }
        if hw_moved {
            self.on_high_watermark(&tp);
        }
    }

    /// Re-answers parked fetches of `tp` (new data, or `all` to flush them).
    fn wake_parked(&mut self, tp: &TopicPartition, expire_only: bool) {
        let now = self.now;
        let Some(slot) = self.slots.get_mut(tp) else { return };
        if slot.parked.is_empty() {
            return;
        }
        let mut due = std::mem::take(&mut slot.parked);
        if expire_only {
            let waiting;
            (due, waiting) = due.into_iter().partition(|(_, _, deadline)| *deadline <= now);
            slot.parked = waiting;
        }
        for (from, f, deadline) in due {
            self.answer_fetch(from, f, deadline.max(now));
        }
    }

    /// Asks the controller for an ISR change if one is due and none is pending.
    fn maybe_alter_isr(&mut self, tp: &TopicPartition) {
        let now = self.now;
        let lag = self.config.replica_lag_time;
        let Some(broker_epoch) = self.session.epoch else { return };
        let Some(slot) = self.slots.get_mut(tp) else { return };
        let image = &self.image;
        let Some(isr) = slot.replica.wanted_isr(now, lag, |r| image.is_live(r)) else { return };
        let (leader_epoch, partition_epoch) = (slot.replica.leader_epoch, slot.replica.partition_epoch);
        if let Role::Leader(l) = &mut slot.replica.role {
            l.pending_isr = Some(isr.clone());
        }
        let request = ControllerRequest::AlterPartition {
            tp: tp.clone(),
            leader: self.id(),
            broker_epoch,
            leader_epoch,
            partition_epoch,
            isr,
        };
        self.call_controller(request, Purpose::AlterPartition(tp.clone(), partition_epoch));
    }

    // ----- replication: follower side -----

    /// Sends a fetch to the leader if this replica follows and may fetch now.
    pub(super) fn maybe_fetch(&mut self, tp: &TopicPartition) {
        let now = self.now;
        let Some(broker_epoch) = self.session.epoch else { return };
        let me = self.id();
        let timeout = self.config.replica_fetch_max_wait + self.config.controller_request_timeout;
        let Some(slot) = self.slots.get_mut(tp) else { return };
        let Some(leader) = slot.replica.leader_to_follow() else { return };
        if !matches!(slot.fetch, FetchState::Idle(t) if t <= now) {
            return;
        }
        let log = &slot.replica.log;
        if log.persisted_end() != log.log_end() {
            return; // report only what is durable; the Persist completion calls back
        }
        let f = ReplicaFetch {
            tp: tp.clone(),
            replica: me,
            broker_epoch,
            fetch_offset: log.log_end(),
            last_fetched_epoch: log.last_epoch(),
            current_leader_epoch: slot.replica.leader_epoch,
            max_bytes: self.config.replica_fetch_max_bytes,
            fetch_id: self.next_fetch_id,
        };
        slot.fetch = FetchState::InFlight(now + timeout, self.next_fetch_id);
        self.next_fetch_id += 1;
        self.send_peer(leader, PeerMessage::ReplicaFetch(f));
    }

    pub(super) fn handle_replica_fetch_reply(
        &mut self,
        from: NodeId,
        tp: TopicPartition,
        leader_epoch: LeaderEpoch,
        fetch: (BrokerEpoch, u64),
        result: Result<ReplicaData, WireError>,
    ) {
        let now = self.now;
        let incarnation = self.session.epoch;
        let Some(slot) = self.slots.get_mut(&tp) else { return };
        let current = slot.replica.leader_to_follow() == Some(from) && slot.replica.leader_epoch == leader_epoch;
        // The answer to any fetch still out is taken, the first to arrive (a
        // fetch that timed out may still be answered before its successor, and
        // with links slower than the fetch timeout only such answers arrive);
        // taking it settles every fetch sent so far, so a later answer to one of
        // them, or a repeated answer, starts no second fetch loop.
        let FetchState::InFlight(_, newest) = slot.fetch else { return };
        let outstanding = fetch.1 > slot.fetch_settled && fetch.1 <= newest;
        if !current || Some(fetch.0) != incarnation || !outstanding {
            // A late answer from an old leader or an earlier incarnation, to a
            // settled fetch, or a repeated one.
            return;
        }
        slot.fetch_settled = newest;
        let data = match result {
            Ok(d) => d,
            Err(_) => {
                slot.fetch = FetchState::Idle(now + FETCH_BACKOFF);
                return;
            }
        };
        slot.leader_hw = data.high_watermark;
        if let Some((epoch, end)) = data.diverging {
            let log = &slot.replica.log;
            let (before, held) = (log.log_end(), log.log_end().distance_from(log.log_start()));
            match slot.replica.truncate_diverging(epoch, end, data.log_start) {
                Resolution::Truncated(new_end) => {
                    self.coverage.hit(Mark::DivergenceTruncated);
                    let removed = before.distance_from(new_end);
                    slot.fetch = FetchState::AwaitingPersist;
                    self.stage(
                        Write::Truncate { tp: tp.clone(), end: new_end },
                        Some(Effect::Replicated { tp: tp.clone(), end: new_end }),
                        0,
                    );
                    self.event(Event::Truncated { tp, end: new_end, removed });
                }
                Resolution::Emptied(start) => {
                    self.coverage.hit(Mark::DivergenceEmptied);
                    self.stage_log_reset(tp.clone(), start, data.producers);
                    self.event(Event::Truncated { tp, end: start, removed: held });
                }
                Resolution::NothingToCut => {
                    self.coverage.hit(Mark::DivergenceNothingToCut);
                    slot.fetch = FetchState::Idle(now + FETCH_BACKOFF);
                }
            }
            return;
        }
        if data.log_start > slot.replica.log.log_end() {
            self.coverage.hit(Mark::FollowerResetToLeaderStart);
            slot.replica.log.reset_to(data.log_start);
            self.stage_log_reset(tp, data.log_start, data.producers);
            return;
        }
        let appended: Vec<RecordBatch> =
            data.batches.iter().filter_map(|b| slot.replica.log.append_replicated(b)).collect();
        if appended.is_empty() {
            slot.replica.log.follow_high_watermark(data.high_watermark);
            slot.fetch = FetchState::Idle(now);
            self.maybe_fetch(&tp);
            return;
        }
        let end = slot.replica.log.log_end();
        let bytes = appended.iter().map(RecordBatch::size_bytes).sum();
        slot.fetch = FetchState::AwaitingPersist;
        self.stage(Write::Append { tp: tp.clone(), batches: appended }, Some(Effect::Replicated { tp, end }), bytes);
    }

    // ----- reacting to metadata -----

    /// Brings the local replica of `tp` in line with committed metadata, once this
    /// incarnation has caught up on metadata (a restarted broker replaying the
    /// metadata log must not lead, nor move a HW, in an epoch that ended long ago).
    pub(super) fn sync_partition(&mut self, tp: &TopicPartition) {
        if !self.session.caught_up {
            return;
        }
        let me = self.id();
        let now = self.now;
        let Some(state) = self.image.partition(tp).cloned() else { return };
        if !state.replicas.contains(&me) {
            if let Some(slot) = self.slots.remove(tp) {
                self.fail_leader_work(tp.clone(), slot);
            }
            return;
        }
        let min_insync = self.image.topics.get(&tp.topic).map_or(1, |t| usize::from(t.config.min_insync_replicas));
        if !self.slots.contains_key(tp) {
            let log = self.orphans.remove(tp).unwrap_or_else(|| PartitionLog::new(tp.clone()));
            let slot = Slot {
                replica: Replica::new(log, min_insync),
                hw_waiters: VecDeque::new(),
                parked: Vec::new(),
                fetch: FetchState::Idle(now),
                fetch_settled: 0,
                leader_hw: Offset(0),
            };
            self.slots.insert(tp.clone(), slot);
        }
        let slot = self.slots.get_mut(tp).expect("inserted above");
        let isr_before = slot.replica.isr.clone();
        let transition = slot.replica.apply_state(me, now, &state);
        match transition {
            Transition::BecameLeader => {
                let unclean = !isr_before.is_empty() && !isr_before.contains(&me);
                let (leader_epoch, isr) = (state.leader_epoch, state.isr.clone());
                self.event(Event::BecameLeader { tp: tp.clone(), leader_epoch, isr, unclean });
            }
            Transition::BecameFollower | Transition::LostLeadership | Transition::WentOffline => {
                let slot = self.slots.get_mut(tp).expect("present");
                slot.fetch = FetchState::Idle(now);
                let waiters = std::mem::take(&mut slot.hw_waiters);
                let parked = std::mem::take(&mut slot.parked);
                self.fail_waiters(tp, waiters, parked);
            }
            Transition::Unchanged => {
                if slot.replica.is_leader() && slot.replica.isr != isr_before {
                    let shrink = slot.replica.isr.len() < isr_before.len();
                    self.coverage.hit(if shrink { Mark::IsrShrink } else { Mark::IsrExpand });
                    let isr = slot.replica.isr.clone();
                    self.event(Event::IsrChanged { tp: tp.clone(), isr, shrink });
                }
            }
        }
        self.after_leader_progress(tp);
        self.maybe_fetch(tp);
    }

    fn fail_waiters(
        &mut self,
        tp: &TopicPartition,
        waiters: VecDeque<(Offset, Instant, PendingReply)>,
        parked: Vec<(NodeId, ReplicaFetch, Instant)>,
    ) {
        for (_, _, r) in waiters {
            self.coverage.hit(Mark::LeadershipLostBeforeCommit);
            let e = WireError::new(
                ErrorCode::LeadershipLost,
                format!("leadership of {tp} moved before the batch committed; it may or may not be committed"),
            );
            self.reply(r.to, r.correlation, Err(e));
        }
        for (from, f, _) in parked {
            let e = self.not_leader(tp);
            self.send_peer(from, fetch_reply(&f, Err(e)));
        }
    }

    fn fail_leader_work(&mut self, tp: TopicPartition, slot: Slot) {
        self.fail_waiters(&tp, slot.hw_waiters, slot.parked);
    }

    /// A topic was deleted: drop its replicas and their logs.
    pub(super) fn drop_topic(&mut self, topic: &str) {
        let tps: Vec<TopicPartition> = self.slots.keys().filter(|tp| tp.topic == topic).cloned().collect();
        for tp in tps {
            if let Some(slot) = self.slots.remove(&tp) {
                for (_, _, r) in slot.hw_waiters {
                    let e = WireError::new(
                        ErrorCode::TopicDeleted,
                        format!("topic {topic} was deleted before the batch committed"),
                    );
                    self.reply(r.to, r.correlation, Err(e));
                }
            }
        }
        self.orphans.retain(|tp, _| tp.topic != topic);
        self.stage(Write::DeleteTopic { topic: topic.to_string() }, None, 0);
        self.event(Event::TopicDeleted { topic: topic.to_string() });
    }

    // ----- timers -----

    pub(super) fn partitions_tick(&mut self) {
        let now = self.now;
        let tps: Vec<TopicPartition> = self.slots.keys().cloned().collect();
        for tp in &tps {
            let Some(slot) = self.slots.get_mut(tp) else { continue };
            // Produce waiters past their deadline: the outcome is unknown.
            let mut late = Vec::new();
            slot.hw_waiters.retain(|(_, d, r)| {
                let keep = *d > now;
                if !keep {
                    late.push(r.clone());
                }
                keep
            });
            if let FetchState::InFlight(d, _) = slot.fetch {
                if d <= now {
                    slot.fetch = FetchState::Idle(now);
                }
            }
            for r in late {
                self.coverage.hit(Mark::CommitTimeout);
                let e = WireError::new(
                    ErrorCode::Timeout,
                    format!("{tp} did not commit the batch in time; it may still commit"),
                );
                self.reply(r.to, r.correlation, Err(e));
            }
            self.wake_parked(tp, true);
            self.maybe_fetch(tp);
        }
        if now >= self.next_isr_check {
            self.next_isr_check = now + self.isr_check_interval();
            for tp in &tps {
                self.maybe_alter_isr(tp);
            }
        }
    }

    fn isr_check_interval(&self) -> Duration {
        Duration::from_nanos((self.config.replica_lag_time.as_nanos() / 4).max(1))
    }

    pub(super) fn partitions_timeout(&self) -> Option<Instant> {
        let mut t = Instant::MAX;
        let mut any_leader = false;
        for s in self.slots.values() {
            any_leader |= s.replica.is_leader();
            // Arrival order, but not deadline order once BUGGIFY shortened one.
            for (_, d, _) in &s.hw_waiters {
                t = t.min(*d);
            }
            for (_, _, d) in &s.parked {
                t = t.min(*d);
            }
            match s.fetch {
                FetchState::InFlight(d, _) => t = t.min(d),
                FetchState::Idle(d)
                    if s.replica.leader_to_follow().is_some()
                        && self.session.epoch.is_some()
                        && s.replica.log.persisted_end() == s.replica.log.log_end() =>
                {
                    t = t.min(d)
                }
                _ => {}
            }
        }
        if any_leader {
            t = t.min(self.next_isr_check);
        }
        (t != Instant::MAX).then_some(t)
    }
}
