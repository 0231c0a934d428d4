//! `shared` delivery (DESIGN.md section 7; RabbitMQ's competing consumers, Pulsar's
//! Shared): any member may get any record; the next record goes to the member
//! picked by smooth weighted round robin (every member's weight is added to its
//! credit, the highest credit wins and pays the total). With equal weights it is
//! plain round robin; with weights 5:1:1 the picks interleave instead of bursting.
//! Members with no room (no credit granted, or no poll waiting) are skipped by the
//! caller through `eligible`.

use crate::ids::MemberId;
use std::collections::BTreeMap;

/// Smooth weighted round robin over the members.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WeightedRoundRobin {
    members: BTreeMap<MemberId, (u32, i64)>,
}

impl WeightedRoundRobin {
    /// Adds or re-weights a member (a weight of 0 counts as 1).
    pub fn set(&mut self, member: MemberId, weight: u32) {
        let w = weight.max(1);
        self.members.entry(member).and_modify(|e| e.0 = w).or_insert((w, 0));
    }

    /// Removes a member.
    pub fn remove(&mut self, member: MemberId) {
        self.members.remove(&member);
    }

    /// Members known.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True with no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Picks the next member among those `eligible` says may take a record.
    pub fn next(&mut self, eligible: impl Fn(MemberId) -> bool) -> Option<MemberId> {
        let mut total = 0i64;
        let mut winner: Option<(MemberId, i64)> = None;
        for (m, (w, credit)) in self.members.iter_mut() {
            if !eligible(*m) {
                continue;
            }
            *credit += i64::from(*w);
            total += i64::from(*w);
            // Ties go to the lowest id: members iterate in order and only a
            // strictly higher credit replaces the current winner.
            if winner.is_none_or(|(_, c)| *credit > c) {
                winner = Some((*m, *credit));
            }
        }
        let (m, _) = winner?;
        if let Some(e) = self.members.get_mut(&m) {
            e.1 -= total;
        }
        Some(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_weights_are_plain_round_robin() {
        let mut w = WeightedRoundRobin::default();
        for m in 1..=3 {
            w.set(MemberId(m), 1);
        }
        let picks: Vec<u64> = (0..6).map(|_| w.next(|_| true).unwrap().0).collect();
        assert_eq!(picks, vec![1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn weights_set_the_shares_and_picks_interleave() {
        let mut w = WeightedRoundRobin::default();
        w.set(MemberId(1), 5);
        w.set(MemberId(2), 1);
        w.set(MemberId(3), 1);
        let picks: Vec<u64> = (0..7).map(|_| w.next(|_| true).unwrap().0).collect();
        assert_eq!(picks.iter().filter(|m| **m == 1).count(), 5);
        assert!(picks.windows(5).all(|win| win.iter().any(|m| *m != 1)), "no burst of five: {picks:?}");
    }

    #[test]
    fn ineligible_members_are_skipped() {
        let mut w = WeightedRoundRobin::default();
        w.set(MemberId(1), 1);
        w.set(MemberId(2), 1);
        for _ in 0..4 {
            assert_eq!(w.next(|m| m == MemberId(2)), Some(MemberId(2)));
        }
        assert_eq!(w.next(|_| false), None);
    }
}
