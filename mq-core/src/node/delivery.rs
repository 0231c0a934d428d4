//! Group delivery on partition leaders (docs/consumers.md section 6): `GroupFetch`
//! (pull long polls and push subscriptions), `GroupAck` and `GroupSeek`, lease
//! expiry and nack delays, cursor records, retention of cursors, and dead letters.
//! The rules of who gets which record live in [`crate::group::cursor`]; this file
//! is the glue to the node's log, persist pipeline, timers and peers.
//!
//! - State exists per partition this broker leads, for one leader epoch. It is
//!   built on first use from the newest cursor record of each group in the log
//!   (committed or not; leases restart) and dropped, with its waiting requests
//!   answered `NotLeader`, as soon as leadership moves ([`Node::sync_deliveries`]
//!   runs after every input).
//! - A cursor record goes through the leader's normal append path (staged,
//!   persisted, replicated); `Acked` and `Sought` are `acks=all` waiters on it, so
//!   they are answered only once the high watermark passes it, and fail like a
//!   produce when leadership moves or it does not commit in time.
//! - Dead letters (6.4) are appended with acks=all by the leader of the
//!   dead-letter partition, locally or through [`PeerMessage::DeadLetter`]; once
//!   acknowledged the source record is acked with a cursor record. One append is
//!   in flight per dead-letter partition, carrying every dead letter waiting for
//!   it (up to [`MAX_DEAD_LETTERS_PER_APPEND`] and `max_batch_bytes`): a burst of
//!   expiries costs one request, and a lost request or answer one retry, not one
//!   per record. The receiver waits for the commit as long as the request says
//!   (half the sender's `controller_request_timeout`, doubled per `Timeout`
//!   answer), not its `produce_timeout`: a slow commit is answered on a later
//!   try instead of being written again on every one.

use super::broker::Purpose;
use super::{not_ready, validate_topic_name, Effect, Node, PendingReply};
use crate::contract::{Event, Peer};
use crate::controller::ControllerRequest;
use crate::coverage::Mark;
use crate::group::coordinator::validate_group_name;
use crate::group::cursor::{self, Cursor, DeadLetterReason};
use crate::group::dead_letter_topic;
use crate::ids::{CorrelationId, GroupGeneration, LeaderEpoch, MemberId, NodeId, Offset, TopicPartition};
use crate::storage::Write;
use crate::time::{Duration, Instant};
use crate::wire::{
    Acks, ErrorCode, FetchMode, GroupAck, GroupFetch, GroupSeek, Header, PeerMessage, Record, RecordBatch, RequestBody,
    ResponseBody, SeekTo, TopicConfig, WireError,
};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

/// Most records one `GroupFetch` answer may ask for.
pub const MAX_RECORDS_PER_FETCH: u32 = 10_000;
/// Largest push window.
pub const MAX_PREFETCH: u32 = 100_000;
/// Longest pull wait; longer ones are shortened to it.
pub const MAX_PULL_WAIT: Duration = Duration::from_secs(300);
/// Parked pulls plus push subscriptions per broker.
pub const MAX_GROUP_WAITERS: usize = 10_000;
/// Entries in one `GroupAck`.
pub const MAX_ACKS_PER_REQUEST: usize = 10_000;
/// Members in one view (the coordinator allows at most 1 000 per group).
pub const MAX_VIEW_MEMBERS: usize = 10_000;
/// Dead letters waiting or in flight per broker; beyond it records are delivered
/// again instead.
pub const MAX_DEAD_LETTERS: usize = 10_000;
/// Most dead letters in one append.
pub const MAX_DEAD_LETTERS_PER_APPEND: usize = 500;
/// Pause before a dead letter is tried again.
const DEAD_LETTER_RETRY: Duration = Duration::from_millis(200);
/// Longest commit wait a dead-letter append asks of its receiver.
pub const MAX_DEAD_LETTER_COMMIT_WAIT: Duration = Duration::from_secs(30);

/// Group delivery state of the whole broker.
#[derive(Debug, Default)]
pub(super) struct Deliveries {
    parts: BTreeMap<TopicPartition, PartDelivery>,
    /// Dead letters not yet acknowledged, by an id of their own.
    dead_letters: BTreeMap<u64, DeadLetter>,
    next_dead_letter: u64,
    /// Appends of dead letters in flight, at most one per dead-letter partition.
    dead_letter_appends: BTreeMap<CorrelationId, DeadLetterAppend>,
    next_dead_letter_append: u64,
    /// Nack delays ending at or before this were acted on (they stay in the leases
    /// until a member takes the record, so the timer must not report them again).
    checked_at: Instant,
}

/// Delivery on one partition this broker leads, for one leader epoch.
#[derive(Debug)]
struct PartDelivery {
    leader_epoch: LeaderEpoch,
    cursors: BTreeMap<String, Cursor>,
    /// The offset of each group's newest cursor record in the log.
    newest_cursor: BTreeMap<String, Offset>,
    waiters: Vec<Waiter>,
}

/// A parked pull or a push subscription.
#[derive(Debug)]
struct Waiter {
    to: Peer,
    correlation: CorrelationId,
    group: String,
    member: MemberId,
    generation: GroupGeneration,
    max_records: usize,
    kind: WaitKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WaitKind {
    Pull { deadline: Instant },
    Push { prefetch: usize },
}

#[derive(Debug)]
struct DeadLetter {
    source: TopicPartition,
    source_epoch: LeaderEpoch,
    group: String,
    offset: Offset,
    /// The cursor's seek count when the record was dead-lettered.
    seeks: u64,
    reason: DeadLetterReason,
    /// The source record with the `mq.dlq.*` headers.
    record: Record,
    /// Sent in an append of its own: an append it shared was refused as a whole.
    alone: bool,
    /// Appends carrying it that were answered `Timeout` (not committed within
    /// their commit wait): each one doubles the wait of the next.
    timeouts: u32,
    state: DeadLetterState,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum DeadLetterState {
    /// To be sent once `not_before` has passed.
    Waiting { not_before: Instant },
    /// Ready, behind the append in flight to its dead-letter partition; sent when
    /// that one ends (answered or timed out).
    Queued,
    /// Part of this append.
    InFlight { append: CorrelationId },
}

/// An append of dead letters in flight.
#[derive(Debug)]
struct DeadLetterAppend {
    to: TopicPartition,
    deadline: Instant,
    /// The dead letters, in the order of the batch's records.
    letters: Vec<u64>,
}

fn invalid(message: impl Into<String>) -> WireError {
    WireError::new(ErrorCode::InvalidRequest, message)
}

/// The commit wait a dead-letter append asks of its receiver after `timeouts`
/// `Timeout` answers to earlier appends of its dead letters: half the
/// controller request timeout, doubled per answer, at most
/// [`MAX_DEAD_LETTER_COMMIT_WAIT`] (and never less than the first wait).
fn dead_letter_commit_wait(controller_request_timeout: Duration, timeouts: u32) -> Duration {
    let first = Duration::from_nanos(controller_request_timeout.as_nanos() / 2);
    first.saturating_mul(1 << timeouts.min(16)).min(MAX_DEAD_LETTER_COMMIT_WAIT).max(first)
}

impl Node {
    /// `GroupFetch`, `GroupAck` and `GroupSeek`. `Ok(None)`: answered later.
    pub(super) fn delivery_request(
        &mut self,
        from: Peer,
        correlation: CorrelationId,
        body: RequestBody,
    ) -> Result<Option<ResponseBody>, WireError> {
        match body {
            RequestBody::GroupFetch(f) => self.group_fetch(from, correlation, f),
            RequestBody::GroupAck(a) => self.group_ack(from, correlation, a),
            RequestBody::GroupSeek(s) => self.group_seek(from, correlation, s),
            other => Err(invalid(format!("not a group delivery request: {other:?}"))),
        }
    }

    /// Checks what every delivery request shares and makes sure this broker has
    /// delivery state for `tp` in its current leader epoch.
    fn delivery_preamble(&mut self, group: &str, tp: &TopicPartition) -> Result<(), WireError> {
        validate_group_name(group)?;
        if tp.topic.starts_with("__") {
            return Err(invalid(format!("{tp} is an internal partition; groups cannot consume it")));
        }
        if !self.is_ready() {
            return Err(not_ready(self.id()));
        }
        self.ensure_delivery(tp)
    }

    /// Builds delivery state for `tp` from its log if this broker leads it and has
    /// none for its current epoch.
    fn ensure_delivery(&mut self, tp: &TopicPartition) -> Result<(), WireError> {
        let Some(slot) = self.slots.get(tp).filter(|s| s.replica.is_leader()) else {
            return Err(self.missing_partition(&tp.topic, tp.partition));
        };
        let epoch = slot.replica.leader_epoch;
        if self.deliveries.parts.get(tp).is_some_and(|p| p.leader_epoch == epoch) {
            return Ok(());
        }
        let rebuilt = cursor::rebuild(&slot.replica.log);
        for (offset, e) in &rebuilt.bad {
            tracing::warn!(%tp, %offset, error = %e, "skipping a control record that is not a valid cursor");
        }
        let mut part = PartDelivery {
            leader_epoch: epoch,
            cursors: BTreeMap::new(),
            newest_cursor: BTreeMap::new(),
            waiters: Vec::new(),
        };
        for (group, found) in rebuilt.cursors {
            part.newest_cursor.insert(group.clone(), found.offset);
            part.cursors.insert(group.clone(), Cursor::rebuilt(group, found));
        }
        if let Some(old) = self.deliveries.parts.insert(tp.clone(), part) {
            self.fail_waiters_of(tp, old.waiters);
        }
        Ok(())
    }

    fn waiter_count(&self) -> usize {
        self.deliveries.parts.values().map(|p| p.waiters.len()).sum()
    }

    // ----- GroupFetch -----

    fn group_fetch(
        &mut self,
        from: Peer,
        correlation: CorrelationId,
        f: GroupFetch,
    ) -> Result<Option<ResponseBody>, WireError> {
        if f.max_records == 0 || f.max_records > MAX_RECORDS_PER_FETCH {
            return Err(invalid(format!(
                "max_records {} must be between 1 and {MAX_RECORDS_PER_FETCH}",
                f.max_records
            )));
        }
        let kind = match f.mode {
            FetchMode::Pull { max_wait } => WaitKind::Pull { deadline: self.now + max_wait.min(MAX_PULL_WAIT) },
            FetchMode::Push { prefetch } if prefetch == 0 || prefetch > MAX_PREFETCH => {
                return Err(invalid(format!("prefetch {prefetch} must be between 1 and {MAX_PREFETCH}")));
            }
            FetchMode::Push { prefetch } => WaitKind::Push { prefetch: prefetch as usize },
        };
        if f.view.members.is_empty() || f.view.members.len() > MAX_VIEW_MEMBERS {
            return Err(invalid(format!(
                "a group view lists 1 to {MAX_VIEW_MEMBERS} members, not {}",
                f.view.members.len()
            )));
        }
        let tp = f.tp.clone();
        let group = f.view.group.clone();
        self.delivery_preamble(&group, &tp)?;
        let now = self.now;
        if self.deliveries.parts[&tp].waiters.iter().any(|w| w.to == from && w.correlation == correlation) {
            // The same request again (a network that duplicates messages): the
            // fetch it opened goes on. Taken as a newer fetch, it would end
            // itself with `Superseded` while its waiter stayed, and the member,
            // told it ended, would not take what is dealt on it.
            return Ok(None);
        }
        let same_member = |w: &Waiter| w.group == group && w.member == f.view.member;
        let replacing = self.deliveries.parts[&tp].waiters.iter().any(same_member);
        let others = self.waiter_count() - usize::from(replacing);
        if others >= MAX_GROUP_WAITERS {
            return Err(WireError::new(
                ErrorCode::Backpressure,
                format!("broker {} holds {others} group fetches already; retry later", self.config.node_id),
            ));
        }
        let (dead, adopted, replaced, hw) = {
            let log = &self.slots[&tp].replica.log;
            let part = self.deliveries.parts.get_mut(&tp).expect("ensure_delivery made it");
            let c = part.cursors.entry(group.clone()).or_insert_with(|| Cursor::start(&f.view, log));
            let before = c.generation();
            let dead = c.observe(&f.view, log, now).map_err(|e| WireError::new(e.code(), e.to_string()))?;
            let adopted = c.generation() != before;
            let replaced = part.waiters.iter().position(same_member).map(|i| part.waiters.remove(i));
            (dead, adopted, replaced, log.high_watermark())
        };
        // The member's previous fetch of this partition ends with an answer, so
        // that the member knows nothing more comes on it: a parked pull gets an
        // empty answer, a push subscription `Superseded`. Until then the member
        // takes what was dealt on it (records may be on their way).
        if let Some(old) = replaced {
            let end = match old.kind {
                WaitKind::Pull { .. } => {
                    Ok(ResponseBody::Delivered { tp: tp.clone(), high_watermark: hw, records: Vec::new() })
                }
                WaitKind::Push { .. } => Err(WireError::new(
                    ErrorCode::Superseded,
                    format!("a newer fetch of member {} replaced this subscription of {tp}", f.view.member),
                )),
            };
            self.reply(old.to, old.correlation, end);
        }
        if adopted {
            self.end_stale_waiters(&tp, &group);
        }
        let waiter = Waiter {
            to: from,
            correlation,
            group: group.clone(),
            member: f.view.member,
            generation: f.view.generation,
            max_records: f.max_records as usize,
            kind,
        };
        if let Some(part) = self.deliveries.parts.get_mut(&tp) {
            part.waiters.push(waiter);
        }
        self.enqueue_dead_letters(&tp, &group, dead);
        self.serve_group(&tp, &group);
        // A pull with no wait that got nothing is answered empty at once.
        if let WaitKind::Pull { deadline } = kind {
            if deadline <= now {
                self.end_pulls(&tp, |w| w.correlation == correlation && w.to == from);
            }
        }
        Ok(None)
    }

    /// Ends, with `IllegalGeneration`, the waiters of `group` on `tp` from
    /// generations older than the newest the leader adopted.
    fn end_stale_waiters(&mut self, tp: &TopicPartition, group: &str) {
        let Some(part) = self.deliveries.parts.get_mut(tp) else { return };
        let Some(newest) = part.cursors.get(group).and_then(Cursor::generation) else { return };
        let mut stale = Vec::new();
        part.waiters.retain(|w| {
            let keep = w.group != group || w.generation >= newest;
            if !keep {
                stale.push((w.to, w.correlation, w.generation));
            }
            keep
        });
        for (to, correlation, g) in stale {
            let e = WireError::new(
                ErrorCode::IllegalGeneration,
                format!("group {group} moved to generation {newest} (yours is {g}) on {tp}; rejoin the group"),
            );
            self.reply(to, correlation, Err(e));
        }
    }

    /// Answers parked pulls of `tp` matching `pick` with no records.
    fn end_pulls(&mut self, tp: &TopicPartition, pick: impl Fn(&Waiter) -> bool) {
        let Some(part) = self.deliveries.parts.get_mut(tp) else { return };
        let hw = self.slots.get(tp).map_or(Offset(0), |s| s.replica.log.high_watermark());
        let mut done = Vec::new();
        part.waiters.retain(|w| {
            let end = matches!(w.kind, WaitKind::Pull { .. }) && pick(w);
            if end {
                done.push((w.to, w.correlation));
            }
            !end
        });
        for (to, correlation) in done {
            let body = ResponseBody::Delivered { tp: tp.clone(), high_watermark: hw, records: Vec::new() };
            self.reply(to, correlation, Ok(body));
        }
    }

    /// Deals what `group` may get now on `tp` to its waiting members.
    fn serve_group(&mut self, tp: &TopicPartition, group: &str) {
        // A broker that is stopping, fenced or not yet registered hands out
        // nothing, first deliveries or redeliveries of expired leases alike: its
        // leaderships are moving or may have moved already (a controlled
        // shutdown's answer arrives after the change commits, and the new leader
        // may confirm acks of these records meanwhile), and members cannot ack
        // here (their requests are refused `NotReady`). The new leader, or this
        // one once it is ready again, deals them from the committed cursor.
        // Nor does a broker whose delivery lease lapsed: it may have been
        // fenced and deposed without knowing it yet (docs/consumers.md,
        // "Failover"; seed 1008486). Its lease deals them when renewed.
        if !self.is_ready() || !self.holds_lease() {
            return;
        }
        let now = self.now;
        let Some(slot) = self.slots.get(tp) else { return };
        let log = &slot.replica.log;
        let Some(part) = self.deliveries.parts.get_mut(tp) else { return };
        let Some(c) = part.cursors.get_mut(group) else { return };
        // A pull takes one answer of up to `max_records`; a push subscription
        // takes its whole open window, sent as answers of up to `max_records`.
        let mut room = BTreeMap::new();
        for w in part.waiters.iter().filter(|w| w.group == group) {
            let n = match w.kind {
                WaitKind::Pull { .. } => w.max_records,
                WaitKind::Push { prefetch } => prefetch.saturating_sub(c.held_by(w.member)),
            };
            room.insert(w.member, n);
        }
        if room.values().all(|n| *n == 0) {
            return;
        }
        let mut dealt = c.deal(log, now, &room);
        if dealt.is_empty() {
            return;
        }
        let generation = c.generation().unwrap_or_default();
        let leader_epoch = part.leader_epoch;
        let hw = log.high_watermark();
        let mut answers = Vec::new();
        part.waiters.retain(|w| {
            if w.group != group {
                return true;
            }
            match dealt.remove(&w.member) {
                Some(records) => {
                    answers.push((w.to, w.correlation, w.member, w.max_records.max(1), records));
                    matches!(w.kind, WaitKind::Push { .. })
                }
                None => true,
            }
        });
        for (to, correlation, member, per_answer, records) in answers {
            for r in &records {
                if r.delivery > 1 {
                    self.coverage.hit(Mark::Redelivery);
                }
                self.event(Event::GroupDelivered {
                    group: group.to_string(),
                    member,
                    tp: tp.clone(),
                    offset: r.offset,
                    delivery: r.delivery,
                    generation,
                    leader_epoch,
                });
            }
            for chunk in records.chunks(per_answer) {
                let body = ResponseBody::Delivered { tp: tp.clone(), high_watermark: hw, records: chunk.to_vec() };
                self.reply(to, correlation, Ok(body));
            }
        }
    }

    /// Serves every group with waiters on `tp`.
    fn serve_partition(&mut self, tp: &TopicPartition) {
        let groups: BTreeSet<String> = match self.deliveries.parts.get(tp) {
            Some(p) => p.waiters.iter().map(|w| w.group.clone()).collect(),
            None => return,
        };
        for g in groups {
            self.serve_group(tp, &g);
        }
    }

    /// The high watermark of `tp` moved, or this broker is ready again (leases
    /// that expired while it was fenced): records may be deliverable.
    pub(super) fn delivery_on_high_watermark(&mut self, tp: &TopicPartition) {
        if self.deliveries.parts.get(tp).is_some_and(|p| !p.waiters.is_empty()) {
            self.serve_partition(tp);
        }
    }

    /// The newest generation of `group` this node took from a member's fetch of
    /// `tp` while leading it (acks and seeks naming an older one are refused), if
    /// any. For checkers: docs/invariants.md, `ack_owner`.
    pub fn group_generation(&self, tp: &TopicPartition, group: &str) -> Option<GroupGeneration> {
        self.deliveries.parts.get(tp)?.cursors.get(group)?.generation()
    }

    // ----- GroupAck and GroupSeek -----

    /// Refuses a cursor append the partition cannot commit or hold right now.
    fn check_cursor_append(&self, tp: &TopicPartition) -> Result<(), WireError> {
        let slot = self.slots.get(tp).expect("checked by ensure_delivery");
        let r = &slot.replica;
        if r.isr.len() < r.min_insync {
            return Err(WireError::new(
                ErrorCode::NotEnoughReplicas,
                format!(
                    "{tp} has {} in-sync replica(s), fewer than min_insync_replicas {}; acks cannot commit now",
                    r.isr.len(),
                    r.min_insync
                ),
            ));
        }
        if slot.hw_waiters.len() >= self.config.max_waiters_per_partition
            || self.pending_write_bytes > self.config.max_pending_write_bytes
        {
            return Err(WireError::new(ErrorCode::Backpressure, format!("{tp} has too many writes waiting to commit")));
        }
        Ok(())
    }

    /// The cursor of `group` on `tp` for an ack or seek of `member` at
    /// `generation`: refused if the generation is stale, or current and without
    /// the member. Created provisionally when the leader knows nothing of the
    /// group (no cursor in the log, no fetch since it took over).
    fn cursor_for_update(
        &mut self,
        tp: &TopicPartition,
        group: &str,
        member: MemberId,
        generation: GroupGeneration,
    ) -> Result<&mut Cursor, WireError> {
        let log = &self.slots.get(tp).expect("checked by ensure_delivery").replica.log;
        let part = self.deliveries.parts.get_mut(tp).expect("made by ensure_delivery");
        let c = part.cursors.entry(group.to_string()).or_insert_with(|| Cursor::provisional(group, log));
        c.check_generation(generation).map_err(|e| WireError::new(e.code(), e.to_string()))?;
        if c.generation() == Some(generation) && !c.has_member(member) {
            return Err(WireError::new(
                ErrorCode::UnknownMember,
                format!("member {member} is not in generation {generation} of group {group}; join again"),
            ));
        }
        Ok(c)
    }

    fn group_ack(
        &mut self,
        from: Peer,
        correlation: CorrelationId,
        a: GroupAck,
    ) -> Result<Option<ResponseBody>, WireError> {
        if a.acks.len() > MAX_ACKS_PER_REQUEST {
            return Err(invalid(format!("{} acks in one request; send at most {MAX_ACKS_PER_REQUEST}", a.acks.len())));
        }
        self.delivery_preamble(&a.group, &a.tp)?;
        self.check_cursor_append(&a.tp)?;
        let now = self.now;
        let hw = self.slots[&a.tp].replica.log.high_watermark();
        let c = self.cursor_for_update(&a.tp, &a.group, a.member, a.generation)?;
        let out = c.apply_acks(a.member, &a.acks, a.up_to, hw, now);
        let body = ResponseBody::Acked { tp: a.tp.clone(), prefix: c.acks().prefix(), refused: out.refused };
        let reply = PendingReply { to: from, correlation, body, event: None };
        self.enqueue_dead_letters(&a.tp, &a.group, out.dead_letters);
        if out.changed {
            self.append_cursor(&a.tp, &a.group, Some(reply), false);
        } else {
            self.answer_when_cursor_commits(&a.tp, &a.group, reply);
        }
        self.serve_group(&a.tp, &a.group);
        Ok(None)
    }

    fn group_seek(
        &mut self,
        from: Peer,
        correlation: CorrelationId,
        s: GroupSeek,
    ) -> Result<Option<ResponseBody>, WireError> {
        self.delivery_preamble(&s.group, &s.tp)?;
        self.check_cursor_append(&s.tp)?;
        let log = &self.slots[&s.tp].replica.log;
        let target = match s.to {
            SeekTo::Offset(o) if o < log.log_start() || o > log.high_watermark() => {
                return Err(WireError::new(
                    ErrorCode::OffsetOutOfRange,
                    format!(
                        "offset {o} is outside {}, which holds {}..{}; seek to the earliest or latest offset",
                        s.tp,
                        log.log_start(),
                        log.high_watermark()
                    ),
                ));
            }
            SeekTo::Offset(o) => o,
            SeekTo::Timestamp(ms) => log.offset_for_time(ms),
            SeekTo::Earliest => log.log_start(),
            SeekTo::Latest => log.high_watermark(),
        };
        let c = self.cursor_for_update(&s.tp, &s.group, s.member, s.generation)?;
        c.seek(target);
        let body = ResponseBody::Sought { tp: s.tp.clone(), offset: target };
        let reply = PendingReply { to: from, correlation, body, event: None };
        self.append_cursor(&s.tp, &s.group, Some(reply), true);
        self.serve_group(&s.tp, &s.group);
        Ok(None)
    }

    /// Appends `group`'s cursor record to `tp` through the leader's append path;
    /// `reply` (with a `GroupAckCommitted` event) goes out once it commits.
    fn append_cursor(&mut self, tp: &TopicPartition, group: &str, reply: Option<PendingReply>, sought: bool) {
        let now_ms = self.now.as_millis();
        let Some(slot) = self.slots.get_mut(tp).filter(|s| s.replica.is_leader()) else { return };
        let Some(part) = self.deliveries.parts.get_mut(tp) else { return };
        let Some(c) = part.cursors.get(group) else { return };
        let batch = c.record();
        let (prefix, acked_above) = (c.acks().prefix(), c.acks().acked_above().collect());
        let epoch = slot.replica.leader_epoch;
        let stamped = slot.replica.log.append(batch, epoch, now_ms);
        part.newest_cursor.insert(group.to_string(), stamped.base_offset);
        if sought {
            // The replay starts once the seek is committed (docs 6.5).
            part.cursors.get_mut(group).expect("read above").hold_for_seek(stamped.base_offset);
        }
        let event = Event::GroupAckCommitted {
            group: group.to_string(),
            tp: tp.clone(),
            prefix,
            acked_above,
            cursor_offset: stamped.base_offset,
            sought,
        };
        let reply = reply.map(|r| PendingReply { event: Some(Box::new(event)), ..r });
        let (end, size) = (stamped.end_offset(), stamped.size_bytes());
        let write = Write::Append { tp: tp.clone(), batches: vec![stamped] };
        let effect = Effect::Appended { tp: tp.clone(), end, epoch, acks: Acks::All, reply, commit_deadline: None };
        self.stage(write, Some(effect), size);
    }

    /// Nothing changed: answer once the group's newest cursor record (which holds
    /// everything acked so far) is committed; at once if it is.
    fn answer_when_cursor_commits(&mut self, tp: &TopicPartition, group: &str, reply: PendingReply) {
        let deadline = self.now + self.config.produce_timeout;
        let Some(slot) = self.slots.get_mut(tp) else { return };
        let Some(part) = self.deliveries.parts.get(tp) else { return };
        let Some(c) = part.cursors.get(group) else { return };
        let newest = part.newest_cursor.get(group).copied();
        let event = Event::GroupAckCommitted {
            group: group.to_string(),
            tp: tp.clone(),
            prefix: c.acks().prefix(),
            acked_above: c.acks().acked_above().collect(),
            cursor_offset: newest.unwrap_or_default(),
            sought: false,
        };
        match newest {
            Some(o) if o >= slot.replica.log.high_watermark() => {
                slot.hw_waiters.push_back((o.next(), deadline, PendingReply { event: Some(Box::new(event)), ..reply }));
            }
            Some(_) => self.send_reply(PendingReply { event: Some(Box::new(event)), ..reply }),
            // No cursor at all: nothing was ever acked, nothing to promise.
            None => self.send_reply(reply),
        }
    }

    // ----- timers, connections, leadership -----

    /// When delivery next needs a tick: pull deadlines, lease expiries, nack
    /// delays, dead letters to try again.
    pub(super) fn delivery_timeout(&self) -> Option<Instant> {
        let after = self.deliveries.checked_at;
        let parts = self.deliveries.parts.values();
        let pulls = parts.clone().flat_map(|p| p.waiters.iter()).filter_map(|w| match w.kind {
            WaitKind::Pull { deadline } => Some(deadline),
            WaitKind::Push { .. } => None,
        });
        let leases = parts.flat_map(|p| p.cursors.values()).filter_map(|c| c.poll_timeout(after));
        let waiting = self.deliveries.dead_letters.values().filter_map(|d| match &d.state {
            DeadLetterState::Waiting { not_before } => Some(*not_before),
            DeadLetterState::Queued | DeadLetterState::InFlight { .. } => None,
        });
        let appends = self.deliveries.dead_letter_appends.values().map(|a| a.deadline);
        pulls.chain(leases).chain(waiting).chain(appends).min()
    }

    pub(super) fn delivery_tick(&mut self) {
        let now = self.now;
        let before = std::mem::replace(&mut self.deliveries.checked_at, now);
        let tps: Vec<TopicPartition> = self.deliveries.parts.keys().cloned().collect();
        for tp in &tps {
            let mut dead = Vec::new();
            let mut due = false;
            if let Some(part) = self.deliveries.parts.get_mut(tp) {
                for (g, c) in part.cursors.iter_mut() {
                    // Something expired or a nack delay ended since the last tick:
                    // records may be deliverable again. (Dealing scans the log, so
                    // it runs only then, not on every timer of the node.)
                    due |= c.poll_timeout(before).is_some_and(|t| t <= now);
                    let leased = c.leases().leased();
                    dead.extend(c.expire(now).into_iter().map(|d| (g.clone(), d)));
                    self.coverage.hit_n(Mark::LeaseExpired, (leased - c.leases().leased()) as u64);
                }
            }
            for (g, d) in dead {
                self.queue_dead_letters(tp, &g, vec![d]);
            }
            if due {
                self.serve_partition(tp);
            }
            self.end_pulls(tp, |w| matches!(w.kind, WaitKind::Pull { deadline } if deadline <= now));
        }
        // An append not answered in time: its dead letters go again (the append
        // may have happened; dead-lettering is at least once), counted as a
        // `Timeout` answer, so the next append waits twice as long.
        let expired: Vec<CorrelationId> =
            self.deliveries.dead_letter_appends.iter().filter(|(_, a)| a.deadline <= now).map(|(id, _)| *id).collect();
        for id in expired {
            self.count_dead_letter_timeout(id);
            self.end_dead_letter_append(id, DeadLetterState::Waiting { not_before: now });
        }
        self.drive_dead_letters();
    }

    /// A client connection closed: its pulls and subscriptions end.
    pub(super) fn delivery_disconnected(&mut self, peer: Peer) {
        for part in self.deliveries.parts.values_mut() {
            part.waiters.retain(|w| w.to != peer);
        }
    }

    /// Drops delivery state of partitions this broker no longer leads in the
    /// state's epoch; their waiters are answered `NotLeader` (`TopicDeleted`).
    pub(super) fn sync_deliveries(&mut self) {
        let stale: Vec<TopicPartition> = self
            .deliveries
            .parts
            .iter()
            .filter(|(tp, p)| {
                !self.slots.get(*tp).is_some_and(|s| s.replica.is_leader() && s.replica.leader_epoch == p.leader_epoch)
            })
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in stale {
            if let Some(part) = self.deliveries.parts.remove(&tp) {
                self.fail_waiters_of(&tp, part.waiters);
            }
        }
        let parts = &self.deliveries.parts;
        // Dead letters of a tenure that ended are forgotten: the new leader
        // delivers their records again. (An append in flight stays, to keep one
        // per dead-letter partition; its answer finds them gone.)
        self.deliveries
            .dead_letters
            .retain(|_, d| parts.get(&d.source).is_some_and(|p| p.leader_epoch == d.source_epoch));
    }

    fn fail_waiters_of(&mut self, tp: &TopicPartition, waiters: Vec<Waiter>) {
        for w in waiters {
            let e = if self.image.topics.contains_key(&tp.topic) {
                self.not_leader(tp)
            } else {
                WireError::new(ErrorCode::TopicDeleted, format!("topic {} was deleted", tp.topic))
            };
            self.reply(w.to, w.correlation, Err(e));
        }
    }

    /// Retention (docs 6.3): re-appends each group's newest cursor record once it
    /// is in the older half of what retention keeps (so the copy commits on every
    /// replica long before any replica's retention reaches the original), and
    /// returns, per led partition, how far retention may go: never past a group's
    /// newest cursor record.
    pub(super) fn cursor_retention_limits(&mut self) -> BTreeMap<TopicPartition, Offset> {
        let now_ms = self.now.as_millis();
        let led: Vec<(TopicPartition, Option<u64>, Option<u64>)> = self
            .slots
            .iter()
            .filter(|(_, s)| s.replica.is_leader())
            .filter_map(|(tp, _)| {
                let c = &self.image.topics.get(&tp.topic)?.config;
                let half_time = c.retention_time.map(|d| now_ms.saturating_sub(d.as_millis() / 2));
                let half_bytes = c.retention_bytes.map(|b| b / 2);
                (half_time.is_some() || half_bytes.is_some()).then(|| (tp.clone(), half_time, half_bytes))
            })
            .collect();
        let mut limits = BTreeMap::new();
        for (tp, half_time, half_bytes) in led {
            if !self.is_ready() || self.ensure_delivery(&tp).is_err() {
                continue;
            }
            let log = &self.slots[&tp].replica.log;
            let Some(half) = log.retention_point(half_time, half_bytes) else {
                if let Some(min) = self.deliveries.parts[&tp].newest_cursor.values().min() {
                    limits.insert(tp, *min);
                }
                continue;
            };
            let old: Vec<String> = self.deliveries.parts[&tp]
                .newest_cursor
                .iter()
                .filter(|(_, o)| **o < half)
                .map(|(g, _)| g.clone())
                .collect();
            for g in old {
                self.append_cursor(&tp, &g, None, false);
            }
            if let Some(min) = self.deliveries.parts[&tp].newest_cursor.values().min() {
                limits.insert(tp, *min);
            }
        }
        limits
    }

    // ----- dead letters -----

    /// Queues `dead` for the dead-letter topic and sends what can go now.
    fn enqueue_dead_letters(&mut self, tp: &TopicPartition, group: &str, dead: Vec<(Offset, DeadLetterReason)>) {
        self.queue_dead_letters(tp, group, dead);
        self.drive_dead_letters();
    }

    /// Queues `dead` for the dead-letter topic; [`Node::drive_dead_letters`]
    /// sends them.
    fn queue_dead_letters(&mut self, tp: &TopicPartition, group: &str, dead: Vec<(Offset, DeadLetterReason)>) {
        for (offset, reason) in dead {
            let Some(part) = self.deliveries.parts.get_mut(tp) else { return };
            let Some(c) = part.cursors.get_mut(group) else { return };
            let log = &self.slots[tp].replica.log;
            let record = log
                .batches_from(offset)
                .next()
                .and_then(|b| b.iter_with_offsets().find(|(o, _)| *o == offset).map(|(_, r)| r.clone()));
            let Some(mut record) = record.filter(|_| self.deliveries.dead_letters.len() < MAX_DEAD_LETTERS) else {
                // Gone (retention) or too many in flight: deliver it again instead.
                c.dead_letter_failed(offset);
                continue;
            };
            let header = |key: &str, value: String| Header { key: key.to_string(), value: Bytes::from(value) };
            record.headers.extend([
                header("mq.dlq.topic", tp.topic.clone()),
                header("mq.dlq.partition", tp.partition.to_string()),
                header("mq.dlq.offset", offset.to_string()),
                header("mq.dlq.group", group.to_string()),
                header("mq.dlq.reason", reason.as_str().to_string()),
            ]);
            self.deliveries.next_dead_letter += 1;
            let d = DeadLetter {
                source: tp.clone(),
                source_epoch: part.leader_epoch,
                group: group.to_string(),
                offset,
                seeks: c.seeks(),
                reason,
                record,
                alone: false,
                timeouts: 0,
                state: DeadLetterState::Waiting { not_before: self.now },
            };
            self.deliveries.dead_letters.insert(self.deliveries.next_dead_letter, d);
        }
    }

    /// Sends the dead letters that are due to their partitions' leaders (creating
    /// the dead-letter topic first if needed): one append per dead-letter
    /// partition with none in flight, holding the oldest due dead letters that
    /// fit; the others queue behind it.
    fn drive_dead_letters(&mut self) {
        let now = self.now;
        let due: Vec<u64> = self
            .deliveries
            .dead_letters
            .iter()
            .filter(|(_, d)| match d.state {
                DeadLetterState::Waiting { not_before } => not_before <= now,
                DeadLetterState::Queued => true,
                DeadLetterState::InFlight { .. } => false,
            })
            .map(|(id, _)| *id)
            .collect();
        let busy: BTreeSet<TopicPartition> =
            self.deliveries.dead_letter_appends.values().map(|a| a.to.clone()).collect();
        let retry = DeadLetterState::Waiting { not_before: now + DEAD_LETTER_RETRY };
        let mut appends: BTreeMap<TopicPartition, (NodeId, Vec<u64>)> = BTreeMap::new();
        for id in due {
            let source = self.deliveries.dead_letters[&id].source.clone();
            let dlq = dead_letter_topic(&source.topic);
            let target = self.image.topics.get(&dlq).map(|t| {
                let p = source.partition.0 % (t.partitions.len().max(1) as u32);
                let tp = TopicPartition::new(dlq.clone(), p);
                let leader = self.image.partition(&tp).and_then(|s| s.leader);
                (tp, leader)
            });
            match target {
                None => {
                    self.create_dead_letter_topic(&source.topic);
                    self.set_dead_letter_state(id, retry.clone());
                }
                Some((_, None)) => self.set_dead_letter_state(id, retry.clone()),
                Some((tp, Some(_))) if busy.contains(&tp) => self.set_dead_letter_state(id, DeadLetterState::Queued),
                Some((tp, Some(leader))) => appends.entry(tp).or_insert_with(|| (leader, Vec::new())).1.push(id),
            }
        }
        let max_bytes = self.config.max_batch_bytes;
        for (tp, (leader, ids)) in appends {
            let mut letters = Vec::new();
            let mut records = Vec::new();
            let mut bytes = RecordBatch::new(Vec::new()).size_bytes();
            for id in ids {
                let d = &self.deliveries.dead_letters[&id];
                let size = d.record.size_bytes();
                // The first always goes (alone if it is too large: the leader
                // refuses it, and its record is delivered again).
                let fits = letters.is_empty()
                    || (!d.alone
                        && !self.deliveries.dead_letters[&letters[0]].alone
                        && letters.len() < MAX_DEAD_LETTERS_PER_APPEND
                        && bytes + size <= max_bytes);
                if fits {
                    bytes += size;
                    records.push(d.record.clone());
                    letters.push(id);
                } else {
                    self.set_dead_letter_state(id, DeadLetterState::Queued);
                }
            }
            // Like a controller call, not a client's produce: a lost request or
            // answer is sent again after `controller_request_timeout`, and the
            // append it may have made is at worst written twice (dead-lettering is
            // at least once, docs 6.4). A produce timeout here held the group's
            // records for 12 s per lost message. The receiver may spend half of
            // that waiting for the commit, twice as long after each `Timeout`
            // answer: a commit slower than the wait is answered on a later try
            // instead of being written again on every one.
            let timeouts = letters.iter().map(|id| self.deliveries.dead_letters[id].timeouts).max().unwrap_or(0);
            let commit_wait = dead_letter_commit_wait(self.config.controller_request_timeout, timeouts);
            self.deliveries.next_dead_letter_append += 1;
            let correlation = CorrelationId(self.deliveries.next_dead_letter_append);
            for id in &letters {
                self.set_dead_letter_state(*id, DeadLetterState::InFlight { append: correlation });
            }
            // The round trip is given as long as the commit wait, so both grow
            // when appends go unanswered (links slower than half the request
            // timeout): with a fixed trip every append of seed 1007295 expired
            // unanswered and was written again at once, tens of thousands of
            // times, until the dead-letter partition's followers fell out of
            // its ISR for good.
            let deadline = now + commit_wait + commit_wait;
            let append = DeadLetterAppend { to: tp.clone(), deadline, letters };
            self.deliveries.dead_letter_appends.insert(correlation, append);
            let batch = RecordBatch::new(records);
            self.send_peer(leader, PeerMessage::DeadLetter { correlation, tp, batch, commit_wait });
        }
    }

    /// The append `id` timed out (answered `Timeout`, or not answered in time):
    /// its dead letters' next append asks for a longer commit wait.
    fn count_dead_letter_timeout(&mut self, id: CorrelationId) {
        let mine = DeadLetterState::InFlight { append: id };
        let letters = self.deliveries.dead_letter_appends.get(&id).map(|a| a.letters.clone());
        for letter in letters.unwrap_or_default() {
            if let Some(d) = self.deliveries.dead_letters.get_mut(&letter).filter(|d| d.state == mine) {
                d.timeouts = d.timeouts.saturating_add(1);
            }
        }
    }

    /// Ends the append `id` without an acknowledgement: its dead letters still
    /// here take `state`.
    fn end_dead_letter_append(&mut self, id: CorrelationId, state: DeadLetterState) -> Option<DeadLetterAppend> {
        let append = self.deliveries.dead_letter_appends.remove(&id)?;
        for letter in &append.letters {
            if self
                .deliveries
                .dead_letters
                .get(letter)
                .is_some_and(|d| d.state == DeadLetterState::InFlight { append: id })
            {
                self.set_dead_letter_state(*letter, state.clone());
            }
        }
        Some(append)
    }

    fn set_dead_letter_state(&mut self, id: u64, state: DeadLetterState) {
        if let Some(d) = self.deliveries.dead_letters.get_mut(&id) {
            d.state = state;
        }
    }

    /// Asks the controller for `<topic>.dlq` with the source topic's partition
    /// count, replication factor and min ISR (one request at a time).
    fn create_dead_letter_topic(&mut self, source: &str) {
        let name = dead_letter_topic(source);
        if self.has_call(|p| matches!(p, Purpose::CreateDeadLetterTopic(n) if *n == name)) {
            return;
        }
        let Some(t) = self.image.topics.get(source) else { return };
        if let Err(e) = validate_topic_name(&name) {
            tracing::warn!(topic = %source, error = %e, "the dead-letter topic name is invalid; dead letters wait");
            return;
        }
        let config = TopicConfig {
            replication_factor: t.config.replication_factor,
            min_insync_replicas: t.config.min_insync_replicas,
            ..TopicConfig::new(name.clone(), t.partitions.len() as u32)
        };
        self.call_controller(ControllerRequest::CreateTopic(config), Purpose::CreateDeadLetterTopic(name));
    }

    /// Another partition leader asks this broker to append a dead letter.
    pub(super) fn handle_dead_letter(
        &mut self,
        from: NodeId,
        correlation: CorrelationId,
        tp: TopicPartition,
        batch: RecordBatch,
        commit_wait: Duration,
    ) {
        let to = Peer::Node(from);
        let deadline = self.now + commit_wait.min(MAX_DEAD_LETTER_COMMIT_WAIT);
        match self.produce(to, correlation, tp.topic, tp.partition, Acks::All, batch, Some(deadline)) {
            Ok(Some(body)) => self.reply(to, correlation, Ok(body)),
            Ok(None) => {}
            Err(e) => self.reply(to, correlation, Err(e)),
        }
    }

    /// The answer to one of this broker's dead-letter appends.
    pub(super) fn handle_dead_letter_reply(&mut self, correlation: CorrelationId, result: Result<Offset, WireError>) {
        match result {
            Ok(base) => {
                let Some(append) = self.deliveries.dead_letter_appends.remove(&correlation) else { return };
                let mut changed: BTreeSet<(TopicPartition, String)> = BTreeSet::new();
                let mut touched: BTreeSet<(TopicPartition, String)> = BTreeSet::new();
                for (i, id) in append.letters.iter().enumerate() {
                    let mine = DeadLetterState::InFlight { append: correlation };
                    if self.deliveries.dead_letters.get(id).is_none_or(|d| d.state != mine) {
                        continue;
                    }
                    let Some(d) = self.deliveries.dead_letters.remove(id) else { continue };
                    let Some(c) = self.deliveries.parts.get_mut(&d.source).and_then(|p| p.cursors.get_mut(&d.group))
                    else {
                        continue;
                    };
                    // A seek since then replays the record: its dead letter stays
                    // written (at-least-once), but it is not acked here.
                    if c.seeks() == d.seeks && c.dead_lettered(d.offset) {
                        changed.insert((d.source.clone(), d.group.clone()));
                    }
                    touched.insert((d.source.clone(), d.group.clone()));
                    self.coverage.hit(Mark::DeadLettered);
                    self.event(Event::DeadLettered {
                        group: d.group.clone(),
                        tp: d.source.clone(),
                        offset: d.offset,
                        reason: d.reason.as_str(),
                        dead_letter: (append.to.clone(), base.plus(i as u64)),
                    });
                }
                for (tp, group) in &changed {
                    self.append_cursor(tp, group, None, false);
                }
                for (tp, group) in &touched {
                    self.serve_group(tp, group);
                }
            }
            Err(e) if matches!(e.code, ErrorCode::InvalidRequest | ErrorCode::RecordTooLarge) => {
                let shared = self.deliveries.dead_letter_appends.get(&correlation).is_some_and(|a| a.letters.len() > 1);
                if shared {
                    // Refused as a whole: each goes again in an append of its own.
                    let Some(append) =
                        self.end_dead_letter_append(correlation, DeadLetterState::Waiting { not_before: self.now })
                    else {
                        return;
                    };
                    for id in append.letters {
                        if let Some(d) = self.deliveries.dead_letters.get_mut(&id) {
                            d.alone = true;
                        }
                    }
                } else {
                    tracing::warn!(error = %e, "a dead letter was refused; the record will be delivered again");
                    let Some(append) = self.deliveries.dead_letter_appends.remove(&correlation) else { return };
                    for id in append.letters {
                        let mine = DeadLetterState::InFlight { append: correlation };
                        if self.deliveries.dead_letters.get(&id).is_none_or(|d| d.state != mine) {
                            continue;
                        }
                        let Some(d) = self.deliveries.dead_letters.remove(&id) else { continue };
                        if let Some(c) =
                            self.deliveries.parts.get_mut(&d.source).and_then(|p| p.cursors.get_mut(&d.group))
                        {
                            c.dead_letter_failed(d.offset);
                        }
                        self.serve_group(&d.source, &d.group);
                    }
                }
            }
            Err(e) => {
                if e.code == ErrorCode::Timeout {
                    // Appended but not committed within the wait we asked for.
                    self.count_dead_letter_timeout(correlation);
                }
                let retry = DeadLetterState::Waiting { not_before: self.now + DEAD_LETTER_RETRY };
                if self.end_dead_letter_append(correlation, retry).is_none() {
                    return;
                }
            }
        }
        self.drive_dead_letters();
    }

    /// Delivery state only on partitions led in its epoch; cursors consistent;
    /// at most one waiter per member and partition; bounds kept.
    pub(super) fn check_deliveries(&self) {
        for (tp, part) in &self.deliveries.parts {
            let slot = self.slots.get(tp).expect("delivery state without its partition");
            assert!(slot.replica.is_leader(), "{tp}: delivery state on a broker that does not lead it");
            assert_eq!(slot.replica.leader_epoch, part.leader_epoch, "{tp}: delivery state of an older epoch");
            for c in part.cursors.values() {
                c.check_invariants();
            }
            let mut seen = BTreeSet::new();
            for w in &part.waiters {
                assert!(seen.insert((&w.group, w.member)), "{tp}: two fetches of member {} of {}", w.member, w.group);
                assert!(part.cursors.contains_key(&w.group), "{tp}: a waiter of a group without a cursor");
            }
            for (g, o) in &part.newest_cursor {
                assert!(*o < slot.replica.log.log_end(), "{tp}: the cursor of {g} at {o} is beyond the log end");
            }
        }
        assert!(self.waiter_count() <= MAX_GROUP_WAITERS);
        assert!(self.deliveries.dead_letters.len() <= MAX_DEAD_LETTERS);
        let mut targets = BTreeSet::new();
        for (id, a) in &self.deliveries.dead_letter_appends {
            assert!(targets.insert(&a.to), "two dead-letter appends in flight to {}", a.to);
            assert!(!a.letters.is_empty() && a.letters.len() <= MAX_DEAD_LETTERS_PER_APPEND, "append {id}");
        }
        for (id, d) in &self.deliveries.dead_letters {
            if let DeadLetterState::InFlight { append } = d.state {
                let a = self.deliveries.dead_letter_appends.get(&append);
                assert!(a.is_some_and(|a| a.letters.contains(id)), "dead letter {id} in flight in no append");
            }
        }
    }
}
