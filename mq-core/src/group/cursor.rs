//! One group's delivery state on one partition, as its leader holds it
//! (docs/consumers.md section 6): the acked state ([`AckSet`]), the leases of
//! records in flight ([`Leases`]), the newest view of the group the leader has seen,
//! and the choice of which records go to which member. Pure: the node feeds it the
//! partition log, the time and the members' requests, and turns what it returns into
//! answers, cursor records and dead letters (`node/delivery.rs`).
//!
//! Rules implemented here:
//! - generations (6.1): a newer view is adopted (exclusive: every lease released;
//!   shared and key_shared: the leases of members not in it), an older one refused;
//! - which records are deliverable (6.2): below the high watermark, not acked, not
//!   leased, not waiting out a nack delay, not on their way to the dead-letter
//!   topic, not in a `Control` batch, inside the group's filter, and for key_shared
//!   owned by the member on the hash ring of the view's members;
//! - the acked prefix moves over records that are not for the group (control
//!   records, records outside the filter) and over records retention removed;
//! - acks, nacks, rejects and cumulative acks (6.3), seeks (6.5);
//! - the cursor record: a one-record `Control` batch whose value is the postcard
//!   encoding of [`CursorPayload`]; [`decode_cursor`] refuses garbage with an error.

use super::acks::{AckError, AckSet};
use super::keyshared::HashRing;
use super::leases::{LeaseError, Leases, Outcome};
use super::shared::WeightedRoundRobin;
use super::GroupMode;
use crate::ids::{GroupGeneration, MemberId, Offset};
use crate::log::PartitionLog;
use crate::time::Instant;
use crate::wire::{
    AckKind, BatchKind, DeliveredRecord, ErrorCode, GroupSettings, GroupView, Record, RecordBatch, StartPosition,
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Most records one choice looks at (deliverable or not), so that a fetch over a
/// long stretch of other members' keys or leased records stays cheap.
pub const MAX_SCAN: usize = 100_000;

/// Version byte in front of every cursor record's payload (version 1 had no
/// seek count; it still decodes, as a count of 0).
const CURSOR_VERSION: u8 = 2;

/// Why a dead letter is written (the `mq.dlq.reason` header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeadLetterReason {
    /// The member rejected the record.
    Rejected,
    /// The record was delivered `max_deliveries` times without an ack.
    MaxDeliveries,
}

impl DeadLetterReason {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Rejected => "rejected",
            DeadLetterReason::MaxDeliveries => "max_deliveries",
        }
    }
}

/// Why a request about a group was refused as a whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// The request's generation is older than the newest this leader has seen.
    #[error("generation {got} of group {group} is stale: this leader has seen {known}; rejoin the group")]
    StaleGeneration {
        /// The group.
        group: String,
        /// The request's generation.
        got: GroupGeneration,
        /// The newest known.
        known: GroupGeneration,
    },
    /// The view is inconsistent (the member is not among the view's members).
    #[error("member {member} is not among the members of its own view of group {group}")]
    NotInView {
        /// The group.
        group: String,
        /// The member.
        member: MemberId,
    },
}

impl CursorError {
    /// The wire code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            CursorError::StaleGeneration { .. } => ErrorCode::IllegalGeneration,
            CursorError::NotInView { .. } => ErrorCode::InvalidRequest,
        }
    }
}

/// Why a cursor record could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CursorDecodeError {
    /// The batch is not a one-record control batch.
    #[error("not a cursor record: {0}")]
    NotACursor(&'static str),
    /// The payload is not a cursor of a known version.
    #[error("cursor record payload does not decode: {0}")]
    Garbage(String),
    /// The payload decodes but is not a valid acked state.
    #[error("cursor record holds an invalid ack set: {0}")]
    Invalid(String),
}

/// What a cursor record's value holds (postcard, after a version byte).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorPayload {
    /// The group.
    pub group: String,
    /// Its acked state on the partition.
    pub acks: AckSet,
    /// Seeks of the group on the partition so far (a seek is the only change
    /// that takes acks back: a newer record with a higher count replays).
    pub seeks: u64,
}

/// A version 1 payload: no seek count.
#[derive(Deserialize)]
struct CursorPayloadV1 {
    group: String,
    acks: AckSet,
}

/// The cursor record of `group` holding `acks` after `seeks` seeks: a
/// one-record control batch.
pub fn encode_cursor(group: &str, acks: &AckSet, seeks: u64) -> RecordBatch {
    let payload = CursorPayload { group: group.to_string(), acks: acks.clone(), seeks };
    let mut value = vec![CURSOR_VERSION];
    // Serializing owned strings and sets into a Vec cannot fail.
    value.extend(postcard::to_allocvec(&payload).expect("a cursor payload always serializes"));
    let record = Record { value: Bytes::from(value), ..Record::default() };
    RecordBatch { kind: BatchKind::Control, ..RecordBatch::new(vec![record]) }
}

/// Decodes a cursor record's value. Never panics; refuses anything that is not a
/// canonical acked state of a valid group name.
pub fn decode_cursor(value: &[u8]) -> Result<CursorPayload, CursorDecodeError> {
    let Some((&version, rest)) = value.split_first() else {
        return Err(CursorDecodeError::Garbage("empty value".into()));
    };
    let garbage = |e: postcard::Error| CursorDecodeError::Garbage(e.to_string());
    let (payload, left): (CursorPayload, &[u8]) = match version {
        CURSOR_VERSION => postcard::take_from_bytes(rest).map_err(garbage)?,
        1 => {
            let (v1, left): (CursorPayloadV1, &[u8]) = postcard::take_from_bytes(rest).map_err(garbage)?;
            (CursorPayload { group: v1.group, acks: v1.acks, seeks: 0 }, left)
        }
        _ => return Err(CursorDecodeError::Garbage(format!("unknown cursor version {version}"))),
    };
    if !left.is_empty() {
        return Err(CursorDecodeError::Garbage(format!("{} trailing bytes", left.len())));
    }
    if payload.group.is_empty() || payload.group.len() > 249 {
        return Err(CursorDecodeError::Invalid(format!("group name of {} bytes", payload.group.len())));
    }
    payload.acks.validate().map_err(CursorDecodeError::Invalid)?;
    Ok(payload)
}

/// The cursor records of a batch, if it is one.
pub fn cursor_of_batch(batch: &RecordBatch) -> Option<Result<CursorPayload, CursorDecodeError>> {
    if batch.kind != BatchKind::Control {
        return None;
    }
    Some(match batch.records.as_slice() {
        [r] => decode_cursor(&r.value),
        _ => Err(CursorDecodeError::NotACursor("a control batch with other than one record")),
    })
}

/// What applying a member's acks did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AckOutcome {
    /// Whether the acked state changed (a cursor record is due).
    pub changed: bool,
    /// Entries not applied, with why.
    pub refused: Vec<(Offset, ErrorCode)>,
    /// Records to send to the dead-letter topic.
    pub dead_letters: Vec<(Offset, DeadLetterReason)>,
}

/// One group's delivery state on one partition (see the module docs).
#[derive(Clone, Debug)]
pub struct Cursor {
    group: String,
    /// The newest view's mode and settings (defaults until a view is seen).
    mode: GroupMode,
    settings: GroupSettings,
    generation: Option<GroupGeneration>,
    members: BTreeMap<MemberId, u32>,
    ring: HashRing,
    wrr: WeightedRoundRobin,
    acks: AckSet,
    leases: Leases,
    /// Records whose dead-letter append is in flight, with the deliveries each
    /// had: not deliverable.
    dead_lettering: BTreeMap<Offset, u32>,
    /// Set while the state was made by an ack without any cursor in the log or
    /// view: the lowest offset acked, so that a `Latest` group's first view does
    /// not replay history (see [`Cursor::observe`]).
    provisional_floor: Option<Offset>,
    /// Seeks so far (kept in cursor records): a dead letter sent before a seek
    /// does not ack its record.
    seeks: u64,
    /// The offset of a cursor record holding a seek that is not committed yet:
    /// nothing is dealt until the high watermark passes it (a seek replays
    /// records once it is committed, never on the word of a record a failover
    /// may truncate).
    held_by_seek: Option<Offset>,
    /// Where dealing resumes in exclusive and shared groups: every record of the
    /// group between the prefix and this offset was looked at by a deal, so if it
    /// is deliverable now, the leases hold it as due again or it is in `revisit`
    /// (see [`Cursor::deal`]).
    scan: Offset,
    /// The same per member in key_shared groups, for the records of its keys.
    member_scan: BTreeMap<MemberId, Offset>,
    /// Records below a scan position that are deliverable again without the
    /// leases knowing: a record no member with room could take. (A failed dead
    /// letter goes back to the leases with its delivery count.)
    revisit: BTreeSet<Offset>,
}

/// What a deal did with one record it looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Offer {
    /// Acked or not for the group: nothing to do with it, ever.
    Done,
    /// Leased, waiting out a nack delay, being dead-lettered, or dealt now.
    Taken,
    /// Deliverable, but no member with room may have it.
    Left,
}

impl Cursor {
    /// State rebuilt from a cursor record (or a fresh one starting at `acks`'
    /// prefix); no view yet.
    pub fn new(group: impl Into<String>, acks: AckSet) -> Self {
        let settings = GroupSettings::default();
        Cursor {
            group: group.into(),
            mode: GroupMode::Shared,
            leases: Leases::new(settings.ack_timeout, settings.max_deliveries),
            settings,
            generation: None,
            members: BTreeMap::new(),
            ring: HashRing::default(),
            wrr: WeightedRoundRobin::default(),
            acks,
            dead_lettering: BTreeMap::new(),
            provisional_floor: None,
            seeks: 0,
            held_by_seek: None,
            scan: Offset(0),
            member_scan: BTreeMap::new(),
            revisit: BTreeSet::new(),
        }
    }

    /// State for a group first seen through `view` on a partition with no cursor
    /// of it: starts at the log start or the high watermark per its settings.
    pub fn start(view: &GroupView, log: &PartitionLog) -> Self {
        let start = match view.settings.start {
            StartPosition::Earliest => log.log_start(),
            StartPosition::Latest => log.high_watermark(),
        };
        Cursor::new(view.group.clone(), AckSet::new(start))
    }

    /// State made by an ack or seek before any view or cursor record: starts at
    /// the log start, provisionally.
    pub fn provisional(group: impl Into<String>, log: &PartitionLog) -> Self {
        let mut c = Cursor::new(group, AckSet::new(log.log_start()));
        c.provisional_floor = Some(log.high_watermark());
        c
    }

    // ----- getters -----

    /// The group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The acked state.
    pub fn acks(&self) -> &AckSet {
        &self.acks
    }

    /// The leases.
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// The newest generation seen, if any.
    pub fn generation(&self) -> Option<GroupGeneration> {
        self.generation
    }

    /// The group's mode as the newest view says.
    pub fn mode(&self) -> GroupMode {
        self.mode
    }

    /// Seeks applied so far (dead letters remember it: one acknowledged after a
    /// seek does not ack its record).
    pub fn seeks(&self) -> u64 {
        self.seeks
    }

    /// Unacked deliveries `member` holds.
    pub fn held_by(&self, member: MemberId) -> usize {
        self.leases.held_by(member)
    }

    /// Whether `member` is in the newest view.
    pub fn has_member(&self, member: MemberId) -> bool {
        self.members.contains_key(&member)
    }

    /// When leases expire or a nack delay ending after `after` ends.
    pub fn poll_timeout(&self, after: Instant) -> Option<Instant> {
        self.leases.next_after(after)
    }

    /// The cursor record of the current acked state.
    pub fn record(&self) -> RecordBatch {
        encode_cursor(&self.group, &self.acks, self.seeks)
    }

    /// State rebuilt from cursor record `rebuilt` (see [`rebuild`]): its acked
    /// state and seek count, and, if the record holds a seek the log's high
    /// watermark does not cover yet, held until it does.
    pub fn rebuilt(group: impl Into<String>, rebuilt: RebuiltCursor) -> Self {
        let mut c = Cursor::new(group, rebuilt.acks);
        c.seeks = rebuilt.seeks;
        c.held_by_seek = rebuilt.uncommitted_seek.then_some(rebuilt.offset);
        c
    }

    /// The cursor record holding this cursor's newest seek was appended at
    /// `offset`: nothing is dealt until it commits.
    pub fn hold_for_seek(&mut self, offset: Offset) {
        self.held_by_seek = Some(offset);
    }

    /// Whether dealing waits for a seek's cursor record to commit.
    pub fn is_held_by_seek(&self) -> bool {
        self.held_by_seek.is_some()
    }

    // ----- generations -----

    /// Refuses a request of a generation older than the newest seen.
    pub fn check_generation(&self, g: GroupGeneration) -> Result<(), CursorError> {
        match self.generation {
            Some(known) if g < known => Err(CursorError::StaleGeneration { group: self.group.clone(), got: g, known }),
            _ => Ok(()),
        }
    }

    /// Takes a member's view (docs 6.1). Returns the records whose leases a newer
    /// generation released, with what becomes of each (`DeadLetter` once they
    /// reached `max_deliveries`; the caller sends those).
    pub fn observe(
        &mut self,
        view: &GroupView,
        log: &PartitionLog,
        now: Instant,
    ) -> Result<Vec<(Offset, DeadLetterReason)>, CursorError> {
        self.check_generation(view.generation)?;
        if !view.members.iter().any(|(m, _)| *m == view.member) {
            return Err(CursorError::NotInView { group: self.group.clone(), member: view.member });
        }
        if self.generation == Some(view.generation) {
            return Ok(Vec::new());
        }
        self.generation = Some(view.generation);
        self.mode = view.mode;
        self.settings = view.settings.clone();
        self.leases.set_limits(view.settings.ack_timeout, view.settings.max_deliveries);
        if let Some(floor) = self.provisional_floor.take() {
            if view.settings.start == StartPosition::Latest {
                // Made by acks on a partition with no cursor: a `Latest` group
                // starts at the high watermark it had then, not at the log start.
                self.settle_below(floor.min(log.high_watermark()));
            }
        }
        self.members = view.members.iter().map(|(m, w)| (*m, (*w).max(1))).collect();
        let mut wrr = WeightedRoundRobin::default();
        for (m, w) in &self.members {
            wrr.set(*m, *w);
        }
        self.wrr = wrr;
        self.ring = HashRing::new(&self.members.keys().copied().collect());
        // The mode, the settings (filter) and the key owners may have changed:
        // the next deal looks at every record from the prefix again.
        self.scan = Offset(0);
        self.member_scan.clear();
        // Exclusive: the partition may have a new owner, every lease ends. Shared
        // and key_shared: leases of members not in the new view end (member death).
        let exclusive = matches!(self.mode, GroupMode::Exclusive(_));
        let gone: Vec<MemberId> =
            self.lease_holders().into_iter().filter(|m| exclusive || !self.members.contains_key(m)).collect();
        let mut released = Vec::new();
        for m in gone {
            released.extend(self.leases.member_gone(m, now));
        }
        Ok(self.dead_letters_of(released))
    }

    fn lease_holders(&self) -> BTreeSet<MemberId> {
        self.leases.offsets().filter_map(|o| self.leases.lease(o).map(|l| l.member)).collect()
    }

    fn dead_letters_of(&mut self, outcomes: Vec<(Offset, Outcome)>) -> Vec<(Offset, DeadLetterReason)> {
        let mut out = Vec::new();
        for (o, outcome) in outcomes {
            if let Outcome::DeadLetter { deliveries } = outcome {
                self.dead_lettering.insert(o, deliveries);
                out.push((o, DeadLetterReason::MaxDeliveries));
            }
        }
        out
    }

    // ----- delivery -----

    /// Whether `record` in a batch of `kind` is for this group at all.
    fn for_group(&self, kind: BatchKind, record: &Record) -> bool {
        kind == BatchKind::Data && self.settings.matches(&record.tags)
    }

    /// Deals deliverable records to the members in `room` (member -> most records
    /// it may take now) and leases them: exclusive and shared groups by weighted
    /// round robin over the members with room, in offset order (one member asking
    /// gets the next records in offset order); key_shared groups to each record's
    /// key owner on the ring, if it has room. Moves the acked prefix over records
    /// that are not for the group. Returns what each member gets.
    ///
    /// Only records less than [`MAX_SCAN`] past the prefix are dealt. The result is
    /// that of looking at every record from the prefix in offset order, but the
    /// records a previous deal looked at are not looked at again: below the scan
    /// position (per member of its keys in key_shared groups) the deliverable ones
    /// are those the leases hold as due again and those in `revisit`, so a deal
    /// costs what it hands out, what it skips above the scan position and the
    /// records due again.
    pub fn deal(
        &mut self,
        log: &PartitionLog,
        now: Instant,
        room: &BTreeMap<MemberId, usize>,
    ) -> BTreeMap<MemberId, Vec<DeliveredRecord>> {
        let mut out: BTreeMap<MemberId, Vec<DeliveredRecord>> = BTreeMap::new();
        match self.held_by_seek {
            Some(o) if log.high_watermark() <= o => return out,
            Some(_) => self.held_by_seek = None,
            None => {}
        }
        if log.log_start() > self.acks.prefix() {
            // Retention removed them: they count as done, even one whose dead
            // letter is in flight (its append still completes, acking nothing).
            self.settle_below(log.log_start());
        }
        let mut left: BTreeMap<MemberId, usize> = room.iter().filter(|(_, n)| **n > 0).map(|(m, n)| (*m, *n)).collect();
        let start = self.acks.prefix();
        let limit = start.plus(MAX_SCAN as u64).min(log.high_watermark());
        if left.is_empty() || start >= limit {
            return out;
        }
        // The prefix moves over the records at its head that are acked or not for
        // the group.
        let mut fold_to = start;
        'fold: for b in log.batches_from(start) {
            for (o, r) in b.iter_with_offsets().skip_while(|(o, _)| *o < start) {
                if o >= limit || (!self.acks.is_acked(o) && self.for_group(b.kind, r)) {
                    break 'fold;
                }
                fold_to = o.next();
            }
        }
        let asking: Vec<MemberId> = left.keys().copied().collect();
        let resume = match self.mode {
            GroupMode::KeyShared => {
                asking.iter().map(|m| self.member_scan.get(m).copied().unwrap_or(start)).min().unwrap_or(start)
            }
            GroupMode::Exclusive(_) | GroupMode::Shared => self.scan,
        };
        let from = resume.max(fold_to).min(limit);
        // Below `from`: only the records deliverable again, in offset order.
        let again: BTreeSet<Offset> =
            self.leases.due_between(fold_to, from, now).chain(self.revisit.range(fold_to..from).copied()).collect();
        // Where each member ran out of room.
        let mut full: BTreeMap<MemberId, Offset> = BTreeMap::new();
        for o in again {
            if left.is_empty() {
                break;
            }
            let Some((kind, r)) = record_at(log, o) else { continue };
            if self.offer(o, kind, r, now, &mut left, &mut full, &mut out) == Offer::Done {
                self.revisit.remove(&o);
            }
        }
        // From `from` on: every record, until no member has room.
        let mut next = from;
        'batches: for b in log.batches_from(from) {
            for (o, r) in b.iter_with_offsets().skip_while(|(o, _)| *o < from) {
                if o >= limit || left.is_empty() {
                    break 'batches;
                }
                next = o.next();
                match self.offer(o, b.kind, r, now, &mut left, &mut full, &mut out) {
                    Offer::Done => {
                        self.revisit.remove(&o);
                    }
                    Offer::Taken => {}
                    Offer::Left => {
                        // Only key_shared records of members not asking are left
                        // on purpose; their own scan positions do not pass them.
                        if self.mode != GroupMode::KeyShared {
                            self.revisit.insert(o);
                        }
                    }
                }
            }
        }
        match self.mode {
            GroupMode::KeyShared => {
                for m in asking {
                    let reached = full.get(&m).copied().unwrap_or(next);
                    let e = self.member_scan.entry(m).or_insert(start);
                    *e = (*e).max(reached);
                }
            }
            GroupMode::Exclusive(_) | GroupMode::Shared => self.scan = self.scan.max(next),
        }
        if fold_to > self.acks.prefix() {
            self.settle_below(fold_to);
        }
        out
    }

    /// Looks at record `o` for a deal: hands it to a member with room in `left`
    /// if it is deliverable (and notes in `full` where a member's room ran out).
    #[allow(clippy::too_many_arguments)]
    fn offer(
        &mut self,
        o: Offset,
        kind: BatchKind,
        r: &Record,
        now: Instant,
        left: &mut BTreeMap<MemberId, usize>,
        full: &mut BTreeMap<MemberId, Offset>,
        out: &mut BTreeMap<MemberId, Vec<DeliveredRecord>>,
    ) -> Offer {
        if self.acks.is_acked(o) || !self.for_group(kind, r) {
            return Offer::Done;
        }
        if !self.leases.deliverable(o, now) || self.dead_lettering.contains_key(&o) {
            return Offer::Taken;
        }
        let to = match self.mode {
            GroupMode::KeyShared => {
                let key = r.key.as_deref().unwrap_or(&[]);
                match self.ring.member_for(key) {
                    Some(m) if left.contains_key(&m) => Some(m),
                    _ => None,
                }
            }
            GroupMode::Exclusive(_) | GroupMode::Shared => {
                if left.len() == 1 {
                    left.keys().next().copied()
                } else {
                    self.wrr.next(|m| left.contains_key(&m))
                }
            }
        };
        let Some(m) = to else { return Offer::Left };
        let delivery = self.leases.deliver(o, m, now);
        self.revisit.remove(&o);
        out.entry(m).or_default().push(DeliveredRecord { offset: o, delivery, record: r.clone() });
        if let Some(n) = left.get_mut(&m) {
            *n -= 1;
            if *n == 0 {
                left.remove(&m);
                full.insert(m, o.next());
            }
        }
        Offer::Taken
    }

    /// Everything below `end` is done: the prefix moves to it, and the leases,
    /// nack delays and dead letters in flight below it are forgotten (such a dead
    /// letter still completes, but acks nothing: see [`Cursor::dead_lettered`]).
    /// Returns whether the acked state changed.
    fn settle_below(&mut self, end: Offset) -> bool {
        let changed = self.acks.ack_up_to(end);
        self.leases.forget_below(end);
        self.dead_lettering = self.dead_lettering.split_off(&end);
        self.revisit = self.revisit.split_off(&end);
        changed
    }

    /// Ends expired leases; returns the records due for the dead-letter topic.
    pub fn expire(&mut self, now: Instant) -> Vec<(Offset, DeadLetterReason)> {
        let outcomes = self.leases.expire(now);
        self.dead_letters_of(outcomes)
    }

    // ----- acks and seeks -----

    /// Applies `member`'s acks (docs 6.3). Offsets at or above `hw` are refused
    /// `OffsetOutOfRange`; nacks and rejects of records not leased to the member
    /// `InvalidRequest`; acks beyond the individual-ack bound `Backpressure`.
    pub fn apply_acks(
        &mut self,
        member: MemberId,
        acks: &[(Offset, AckKind)],
        up_to: Option<Offset>,
        hw: Offset,
        now: Instant,
    ) -> AckOutcome {
        let mut out = AckOutcome::default();
        if let Some(end) = up_to {
            if end > hw {
                out.refused.push((end, ErrorCode::OffsetOutOfRange));
            } else if self.settle_below(end) {
                self.note_provisional(end);
                out.changed = true;
            }
        }
        for (o, kind) in acks {
            let o = *o;
            if o >= hw {
                out.refused.push((o, ErrorCode::OffsetOutOfRange));
                continue;
            }
            match kind {
                AckKind::Ack => {
                    // The work is done, whoever did it.
                    match self.acks.ack(o) {
                        Ok(changed) => {
                            self.leases.forget(o);
                            self.dead_lettering.remove(&o);
                            if changed {
                                self.note_provisional(o);
                            }
                            out.changed |= changed;
                        }
                        Err(AckError::TooManyIndividualAcks { .. }) => out.refused.push((o, ErrorCode::Backpressure)),
                    }
                }
                AckKind::Nack { delay } => match self.leases.nack(o, member, *delay, now) {
                    Ok(Outcome::Redeliver { .. }) => {}
                    Ok(Outcome::DeadLetter { deliveries }) => {
                        self.dead_lettering.insert(o, deliveries);
                        out.dead_letters.push((o, DeadLetterReason::MaxDeliveries));
                    }
                    Err(e) => out.refused.push((o, lease_error_code(e))),
                },
                AckKind::Reject => match self.leases.reject(o, member) {
                    Ok(deliveries) => {
                        self.dead_lettering.insert(o, deliveries);
                        out.dead_letters.push((o, DeadLetterReason::Rejected));
                    }
                    Err(e) => out.refused.push((o, lease_error_code(e))),
                },
            }
        }
        out
    }

    fn note_provisional(&mut self, o: Offset) {
        if let Some(f) = self.provisional_floor.as_mut() {
            *f = (*f).min(o);
        }
    }

    /// A dead-letter append of `o` was acknowledged: the record is done. Returns
    /// whether that changed the acked state: not if the record was acked
    /// meanwhile (an ack, a cumulative ack, or retention removing it), which wins.
    pub fn dead_lettered(&mut self, o: Offset) -> bool {
        let deliveries = self.dead_lettering.remove(&o);
        self.leases.forget(o);
        self.acks.ack(o).unwrap_or_else(|_| {
            // Too many individual acks: it is delivered again, its count going on.
            match deliveries {
                Some(n) => self.leases.release(o, n),
                None => {
                    self.revisit.insert(o);
                }
            }
            false
        })
    }

    /// A dead-letter append of `o` failed for good: deliver it again, its
    /// delivery count going on (the next delivery is past `max_deliveries`, and
    /// when it ends unacked the record is dead-lettered again).
    pub fn dead_letter_failed(&mut self, o: Offset) {
        if let Some(n) = self.dead_lettering.remove(&o) {
            self.leases.release(o, n);
        }
    }

    /// Whether `o` is waiting for its dead-letter append.
    pub fn is_dead_lettering(&self, o: Offset) -> bool {
        self.dead_lettering.contains_key(&o)
    }

    /// Moves the cursor to `to` (docs 6.5): below it done, from it on not acked;
    /// leases dropped.
    pub fn seek(&mut self, to: Offset) {
        self.acks = AckSet::new(to);
        self.leases = Leases::new(self.settings.ack_timeout, self.settings.max_deliveries);
        self.dead_lettering.clear();
        self.provisional_floor = None;
        self.seeks += 1;
        self.scan = to;
        self.member_scan.clear();
        self.revisit.clear();
    }

    /// Panics if the state is inconsistent.
    pub fn check_invariants(&self) {
        self.acks.check_invariants();
        for o in self.leases.offsets() {
            assert!(!self.acks.is_acked(o), "{}: offset {o} is acked and still leased or waiting", self.group);
            assert!(!self.dead_lettering.contains_key(&o), "{}: offset {o} is leased and dead-lettering", self.group);
        }
        for o in self.dead_lettering.keys() {
            assert!(!self.acks.is_acked(*o), "{}: offset {o} is acked and dead-lettering", self.group);
        }
        if let Some(g) = self.generation {
            assert!(!self.members.is_empty(), "{}: generation {g} adopted without members", self.group);
        }
    }
}

/// Record `o` of `log` with its batch's kind, if the log holds it.
fn record_at(log: &PartitionLog, o: Offset) -> Option<(BatchKind, &Record)> {
    let b = log.batches_from(o).next().filter(|b| b.base_offset <= o)?;
    b.records.get(o.distance_from(b.base_offset) as usize).map(|r| (b.kind, r))
}

fn lease_error_code(e: LeaseError) -> ErrorCode {
    match e {
        LeaseError::NotLeased(_) | LeaseError::NotYours { .. } => ErrorCode::InvalidRequest,
    }
}

/// The newest decodable cursor record of each group in `log` (all of them,
/// committed or not: docs 6.3 "Failover"), with its offset. Undecodable control
/// records are skipped and reported.
pub fn rebuild(log: &PartitionLog) -> Rebuilt {
    let hw = log.high_watermark();
    let mut found: BTreeMap<String, RebuiltCursor> = BTreeMap::new();
    // Per group: the seek count of its newest committed cursor record.
    let mut committed_seeks: BTreeMap<String, u64> = BTreeMap::new();
    let mut bad = Vec::new();
    for b in log.batches() {
        match cursor_of_batch(b) {
            None => {}
            Some(Ok(p)) => {
                let below = committed_seeks.get(&p.group).copied().unwrap_or(0);
                if b.base_offset < hw {
                    committed_seeks.insert(p.group.clone(), p.seeks);
                }
                let uncommitted_seek = b.base_offset >= hw && p.seeks > below;
                found.insert(
                    p.group,
                    RebuiltCursor { offset: b.base_offset, acks: p.acks, seeks: p.seeks, uncommitted_seek },
                );
            }
            Some(Err(e)) => bad.push((b.base_offset, e)),
        }
    }
    Rebuilt { cursors: found, bad }
}

/// A group's newest cursor record in a log (see [`rebuild`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebuiltCursor {
    /// Its offset.
    pub offset: Offset,
    /// The acked state in it.
    pub acks: AckSet,
    /// Its seek count.
    pub seeks: u64,
    /// Whether it holds a seek the log's high watermark does not cover: a
    /// higher seek count than the group's newest committed record.
    pub uncommitted_seek: bool,
}

/// What [`rebuild`] found in a log.
#[derive(Clone, Debug, Default)]
pub struct Rebuilt {
    /// Per group: its newest cursor record.
    pub cursors: BTreeMap<String, RebuiltCursor>,
    /// Control records that did not decode, with why.
    pub bad: Vec<(Offset, CursorDecodeError)>,
}

#[cfg(test)]
#[path = "cursor_tests.rs"]
mod tests;
