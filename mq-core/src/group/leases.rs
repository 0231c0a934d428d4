//! Deliveries in flight for one partition of one group (DESIGN.md section 7): a
//! delivered record is *leased* to a member until `ack_timeout`. An ack ends the
//! lease. A nack (consume later) makes the record deliverable again after a delay;
//! a reject sends it to the dead-letter topic at once; an expired lease or a dead
//! member makes it deliverable again. A record delivered `max_deliveries` times
//! without an ack goes to the dead-letter topic instead of being redelivered.
//!
//! Leases are soft state: a new partition leader starts with none, so every unacked
//! record is deliverable again (at-least-once), and delivery counts restart.

use crate::ids::{MemberId, Offset};
use crate::time::{Duration, Instant};
use std::collections::BTreeMap;

/// A record leased to a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Who has it.
    pub member: MemberId,
    /// When the lease ends without an ack.
    pub expires: Instant,
    /// Deliveries so far, this one included.
    pub deliveries: u32,
}

/// What to do with a record whose lease ended without an ack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Deliver it again from this time on.
    Redeliver {
        /// Not before this time.
        at: Instant,
    },
    /// Append it to the dead-letter topic (and ack it here once that committed).
    DeadLetter {
        /// Deliveries it had: if the dead letter fails, the record is delivered
        /// again with its count going on ([`Leases::release`]).
        deliveries: u32,
    },
}

/// Why an ack, nack or reject was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// The record is not leased (never delivered, already settled, or expired and
    /// leased again).
    #[error("offset {0} is not leased")]
    NotLeased(Offset),
    /// The record is leased to another member (this member's lease expired).
    #[error("offset {offset} is leased to member {owner}, not to this member")]
    NotYours {
        /// The record.
        offset: Offset,
        /// Its current holder.
        owner: MemberId,
    },
}

/// Leases and pending redeliveries of one partition for one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leases {
    leased: BTreeMap<Offset, Lease>,
    /// Records to deliver again, with the earliest time and deliveries so far.
    redeliver: BTreeMap<Offset, (Instant, u32)>,
    ack_timeout: Duration,
    max_deliveries: u32,
}

impl Leases {
    /// Empty, with the group's settings (`max_deliveries` of 0 counts as 1).
    pub fn new(ack_timeout: Duration, max_deliveries: u32) -> Self {
        Leases {
            leased: BTreeMap::new(),
            redeliver: BTreeMap::new(),
            ack_timeout,
            max_deliveries: max_deliveries.max(1),
        }
    }

    /// Records leased now.
    pub fn leased(&self) -> usize {
        self.leased.len()
    }

    /// The lease on `o`, if any.
    pub fn lease(&self, o: Offset) -> Option<&Lease> {
        self.leased.get(&o)
    }

    /// Whether `o` may be delivered at `now`: not leased and not waiting out a nack
    /// delay.
    pub fn deliverable(&self, o: Offset, now: Instant) -> bool {
        !self.leased.contains_key(&o) && self.redeliver.get(&o).is_none_or(|(at, _)| *at <= now)
    }

    /// Records due for redelivery at `now`, lowest offset first.
    pub fn due(&self, now: Instant) -> impl Iterator<Item = Offset> + '_ {
        self.redeliver.iter().filter(move |(_, (at, _))| *at <= now).map(|(o, _)| *o)
    }

    /// Records from `from` to before `to` due for redelivery at `now`, lowest
    /// offset first.
    pub fn due_between(&self, from: Offset, to: Offset, now: Instant) -> impl Iterator<Item = Offset> + '_ {
        self.redeliver.range(from..to.max(from)).filter(move |(_, (at, _))| *at <= now).map(|(o, _)| *o)
    }

    /// Leases `o` to `member`; returns the delivery count.
    pub fn deliver(&mut self, o: Offset, member: MemberId, now: Instant) -> u32 {
        let before = self.redeliver.remove(&o).map_or(0, |(_, n)| n);
        let deliveries = before + 1;
        self.leased.insert(o, Lease { member, expires: now + self.ack_timeout, deliveries });
        deliveries
    }

    fn take(&mut self, o: Offset, member: MemberId) -> Result<Lease, LeaseError> {
        match self.leased.get(&o) {
            None => Err(LeaseError::NotLeased(o)),
            Some(l) if l.member != member => Err(LeaseError::NotYours { offset: o, owner: l.member }),
            Some(_) => Ok(self.leased.remove(&o).expect("just found")),
        }
    }

    /// `member` acked `o`: the lease ends (the caller records the ack durably).
    pub fn ack(&mut self, o: Offset, member: MemberId) -> Result<(), LeaseError> {
        self.take(o, member).map(|_| ())
    }

    /// `member` asks to consume `o` later, after `delay`.
    pub fn nack(&mut self, o: Offset, member: MemberId, delay: Duration, now: Instant) -> Result<Outcome, LeaseError> {
        let lease = self.take(o, member)?;
        Ok(self.requeue(o, lease.deliveries, now + delay))
    }

    /// `member` rejects `o`: straight to the dead-letter topic. Returns its
    /// deliveries so far.
    pub fn reject(&mut self, o: Offset, member: MemberId) -> Result<u32, LeaseError> {
        Ok(self.take(o, member)?.deliveries)
    }

    fn requeue(&mut self, o: Offset, deliveries: u32, at: Instant) -> Outcome {
        if deliveries >= self.max_deliveries {
            Outcome::DeadLetter { deliveries }
        } else {
            self.redeliver.insert(o, (at, deliveries));
            Outcome::Redeliver { at }
        }
    }

    /// A record whose dead letter failed (it is not leased): deliverable again at
    /// once, its `deliveries` so far kept. Within one tenure a record's delivery
    /// count never starts over (seed 1002484: a count restarted at 1 let an
    /// exclusive group first-deliver an offset behind later ones).
    pub fn release(&mut self, o: Offset, deliveries: u32) {
        debug_assert!(!self.leased.contains_key(&o), "offset {o} released while leased");
        self.redeliver.insert(o, (Instant::ZERO, deliveries));
    }

    /// Ends expired leases; returns what became of each record.
    pub fn expire(&mut self, now: Instant) -> Vec<(Offset, Outcome)> {
        let expired: Vec<(Offset, Lease)> =
            self.leased.iter().filter(|(_, l)| l.expires <= now).map(|(o, l)| (*o, *l)).collect();
        expired
            .into_iter()
            .map(|(o, l)| {
                self.leased.remove(&o);
                (o, self.requeue(o, l.deliveries, now))
            })
            .collect()
    }

    /// `member` left or was evicted: its leases end now.
    pub fn member_gone(&mut self, member: MemberId, now: Instant) -> Vec<(Offset, Outcome)> {
        let gone: Vec<(Offset, Lease)> =
            self.leased.iter().filter(|(_, l)| l.member == member).map(|(o, l)| (*o, *l)).collect();
        gone.into_iter()
            .map(|(o, l)| {
                self.leased.remove(&o);
                (o, self.requeue(o, l.deliveries, now))
            })
            .collect()
    }

    /// Forgets a settled record (acked by a cumulative ack, or dead-lettered).
    pub fn forget(&mut self, o: Offset) {
        self.leased.remove(&o);
        self.redeliver.remove(&o);
    }

    /// Records leased to `member` now.
    pub fn held_by(&self, member: MemberId) -> usize {
        self.leased.values().filter(|l| l.member == member).count()
    }

    /// Changes the group's settings (a newer generation may carry others); leases
    /// already granted keep their expiry.
    pub fn set_limits(&mut self, ack_timeout: Duration, max_deliveries: u32) {
        self.ack_timeout = ack_timeout;
        self.max_deliveries = max_deliveries.max(1);
    }

    /// Forgets every record below `end` (a cumulative ack or a seek past them).
    pub fn forget_below(&mut self, end: Offset) {
        self.leased = self.leased.split_off(&end);
        self.redeliver = self.redeliver.split_off(&end);
    }

    /// Leased or waiting records, for invariant checks.
    pub fn offsets(&self) -> impl Iterator<Item = Offset> + '_ {
        self.leased.keys().chain(self.redeliver.keys()).copied()
    }

    /// The next lease expiry, or the next nack delay ending after `after` (delays
    /// that ended at or before it were already acted on by the caller).
    pub fn next_after(&self, after: Instant) -> Option<Instant> {
        let lease = self.leased.values().map(|l| l.expires).min();
        let due = self.redeliver.values().map(|(at, _)| *at).filter(|at| *at > after).min();
        lease.into_iter().chain(due).min()
    }

    /// The next time something expires or becomes due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let lease = self.leased.values().map(|l| l.expires).min();
        let due = self.redeliver.values().map(|(at, _)| *at).min();
        lease.into_iter().chain(due).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M1: MemberId = MemberId(1);
    const M2: MemberId = MemberId(2);

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn an_expired_lease_makes_the_record_deliverable_again() {
        let mut l = Leases::new(Duration::from_millis(100), 5);
        l.deliver(Offset(3), M1, t(0));
        assert!(!l.deliverable(Offset(3), t(50)));
        assert_eq!(l.poll_timeout(), Some(t(100)));
        assert_eq!(l.expire(t(100)), vec![(Offset(3), Outcome::Redeliver { at: t(100) })]);
        assert!(l.deliverable(Offset(3), t(100)));
        assert_eq!(l.deliver(Offset(3), M2, t(100)), 2, "the second delivery");
        assert_eq!(l.ack(Offset(3), M1), Err(LeaseError::NotYours { offset: Offset(3), owner: M2 }));
        assert_eq!(l.ack(Offset(3), M2), Ok(()));
        assert_eq!(l.ack(Offset(3), M2), Err(LeaseError::NotLeased(Offset(3))));
    }

    #[test]
    fn a_nack_waits_out_its_delay() {
        let mut l = Leases::new(Duration::from_secs(30), 5);
        l.deliver(Offset(0), M1, t(0));
        assert_eq!(l.nack(Offset(0), M1, Duration::from_millis(500), t(10)), Ok(Outcome::Redeliver { at: t(510) }));
        assert!(!l.deliverable(Offset(0), t(509)));
        assert_eq!(l.due(t(510)).collect::<Vec<_>>(), vec![Offset(0)]);
    }

    #[test]
    fn max_deliveries_sends_the_record_to_the_dead_letter_topic() {
        let mut l = Leases::new(Duration::from_millis(10), 2);
        l.deliver(Offset(7), M1, t(0));
        assert_eq!(l.expire(t(10)), vec![(Offset(7), Outcome::Redeliver { at: t(10) })]);
        l.deliver(Offset(7), M1, t(10));
        assert_eq!(l.expire(t(20)), vec![(Offset(7), Outcome::DeadLetter { deliveries: 2 })]);
        assert_eq!(l.poll_timeout(), None);
    }

    #[test]
    fn reject_goes_to_the_dead_letter_topic_at_once_and_a_dead_member_loses_its_leases() {
        let mut l = Leases::new(Duration::from_secs(30), 5);
        l.deliver(Offset(1), M1, t(0));
        l.deliver(Offset(2), M1, t(0));
        l.deliver(Offset(3), M2, t(0));
        assert_eq!(l.reject(Offset(1), M1), Ok(1));
        let gone = l.member_gone(M1, t(5));
        assert_eq!(gone, vec![(Offset(2), Outcome::Redeliver { at: t(5) })]);
        assert_eq!(l.leased(), 1);
    }
}
