//! Partition assignment for `exclusive` groups (DESIGN.md section 7): each
//! partition has one owner at a time. Three assignors, as Kafka users know them:
//!
//! - `Range`: per topic, members in order take contiguous ranges of partitions; the
//!   first `P mod M` members get one more.
//! - `RoundRobin`: all partitions of all topics in order, dealt to members in turn.
//! - `Sticky`: keeps each partition with its previous owner while that owner stays
//!   and is not above its fair share (`ceil(P / M)`), then gives the rest to the
//!   members with the fewest; balanced to within one partition, and moving as few as
//!   possible (Kafka's KIP-54 goal).
//!
//! Inputs are sorted sets, so the result is deterministic.

use crate::ids::{MemberId, TopicPartition};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How an exclusive group spreads partitions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Assignor {
    /// Contiguous ranges per topic.
    Range,
    /// Dealt in turn across all topics.
    RoundRobin,
    /// Balanced, keeping previous owners where possible.
    #[default]
    Sticky,
}

/// Owner of each partition.
pub type Assignment = BTreeMap<TopicPartition, MemberId>;

/// Assigns `partitions` to `members` (no owner at all when there is no member).
pub fn assign(
    assignor: Assignor,
    members: &BTreeSet<MemberId>,
    partitions: &BTreeSet<TopicPartition>,
    previous: &Assignment,
) -> Assignment {
    let members: Vec<MemberId> = members.iter().copied().collect();
    if members.is_empty() {
        return Assignment::new();
    }
    match assignor {
        Assignor::Range => {
            let mut by_topic: BTreeMap<&str, Vec<&TopicPartition>> = BTreeMap::new();
            for tp in partitions {
                by_topic.entry(tp.topic.as_str()).or_default().push(tp);
            }
            let mut out = Assignment::new();
            for tps in by_topic.values() {
                let (per, extra) = (tps.len() / members.len(), tps.len() % members.len());
                let mut i = 0;
                for (m, member) in members.iter().enumerate() {
                    let take = per + usize::from(m < extra);
                    for tp in &tps[i..i + take] {
                        out.insert((*tp).clone(), *member);
                    }
                    i += take;
                }
            }
            out
        }
        Assignor::RoundRobin => {
            partitions.iter().enumerate().map(|(i, tp)| (tp.clone(), members[i % members.len()])).collect()
        }
        Assignor::Sticky => {
            let quota = partitions.len().div_ceil(members.len());
            let mut load: BTreeMap<MemberId, usize> = members.iter().map(|m| (*m, 0)).collect();
            let mut out = Assignment::new();
            let mut free = Vec::new();
            for tp in partitions {
                match previous.get(tp) {
                    Some(owner) if load.get(owner).is_some_and(|l| *l < quota) => {
                        *load.get_mut(owner).expect("checked") += 1;
                        out.insert(tp.clone(), *owner);
                    }
                    _ => free.push(tp.clone()),
                }
            }
            for tp in free {
                let (&least, _) = load.iter().min_by_key(|(m, l)| (**l, **m)).expect("members is not empty");
                *load.get_mut(&least).expect("present") += 1;
                out.insert(tp, least);
            }
            // Keeping owners up to the ceiling can leave someone two below it;
            // move partitions from the fullest until loads differ by at most one.
            loop {
                let (&max_m, &max_l) =
                    load.iter().max_by_key(|(m, l)| (**l, std::cmp::Reverse(**m))).expect("nonempty");
                let (&min_m, &min_l) = load.iter().min_by_key(|(m, l)| (**l, **m)).expect("nonempty");
                if max_l <= min_l + 1 {
                    break;
                }
                let tp = out.iter().rev().find(|(_, o)| **o == max_m).map(|(tp, _)| tp.clone()).expect("has load");
                out.insert(tp, min_m);
                *load.get_mut(&max_m).expect("present") -= 1;
                *load.get_mut(&min_m).expect("present") += 1;
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parts(topics: &[(&str, u32)]) -> BTreeSet<TopicPartition> {
        topics.iter().flat_map(|(t, n)| (0..*n).map(move |p| TopicPartition::new(*t, p))).collect()
    }

    fn members(ids: &[u64]) -> BTreeSet<MemberId> {
        ids.iter().map(|i| MemberId(*i)).collect()
    }

    fn loads(a: &Assignment) -> BTreeMap<MemberId, usize> {
        let mut l = BTreeMap::new();
        for m in a.values() {
            *l.entry(*m).or_default() += 1;
        }
        l
    }

    #[test]
    fn range_gives_contiguous_ranges_and_the_extra_to_the_first() {
        let a = assign(Assignor::Range, &members(&[1, 2]), &parts(&[("t", 5)]), &Assignment::new());
        let owners: Vec<u64> = (0..5).map(|p| a[&TopicPartition::new("t", p)].0).collect();
        assert_eq!(owners, vec![1, 1, 1, 2, 2]);
    }

    #[test]
    fn round_robin_deals_in_turn_across_topics() {
        let a = assign(Assignor::RoundRobin, &members(&[1, 2]), &parts(&[("a", 2), ("b", 1)]), &Assignment::new());
        assert_eq!(a.values().map(|m| m.0).collect::<Vec<_>>(), vec![1, 2, 1]);
    }

    #[test]
    fn sticky_moves_only_what_it_must_when_a_member_joins() {
        let ps = parts(&[("t", 6)]);
        let before = assign(Assignor::Sticky, &members(&[1, 2]), &ps, &Assignment::new());
        let after = assign(Assignor::Sticky, &members(&[1, 2, 3]), &ps, &before);
        let moved = ps.iter().filter(|tp| before[*tp] != after[*tp]).count();
        assert_eq!(moved, 2, "exactly the new member's fair share moves");
        assert!(loads(&after).values().all(|l| *l == 2));
    }

    proptest! {
        #[test]
        fn every_assignor_gives_each_partition_one_live_owner_and_balances(
            n_members in 1u64..6, n_parts in 0u32..20, prev_members in 1u64..6, which in 0usize..3,
        ) {
            let assignor = [Assignor::Range, Assignor::RoundRobin, Assignor::Sticky][which];
            let ps = parts(&[("t", n_parts)]);
            let prev = assign(Assignor::Sticky, &(1..=prev_members).map(MemberId).collect(), &ps, &Assignment::new());
            let ms: BTreeSet<MemberId> = (1..=n_members).map(MemberId).collect();
            let a = assign(assignor, &ms, &ps, &prev);
            prop_assert_eq!(a.len(), ps.len());
            prop_assert!(a.values().all(|m| ms.contains(m)));
            let l = loads(&a);
            let max = l.values().copied().max().unwrap_or(0);
            let min = if l.len() < ms.len() { 0 } else { l.values().copied().min().unwrap_or(0) };
            prop_assert!(max <= min + 1, "unbalanced: {:?}", l);
        }

        #[test]
        fn sticky_keeps_every_owner_that_stays_within_its_share(n in 1u64..6, extra in 0u64..3, n_parts in 1u32..24) {
            let ps = parts(&[("t", n_parts)]);
            let before = assign(Assignor::Sticky, &(1..=n).map(MemberId).collect(), &ps, &Assignment::new());
            let after = assign(Assignor::Sticky, &(1..=n + extra).map(MemberId).collect(), &ps, &before);
            let moved = ps.iter().filter(|tp| before[*tp] != after[*tp]).count();
            let fair_new = (n_parts as usize / (n + extra) as usize) * extra as usize;
            // At most what the new members must receive, plus one per member of rounding.
            prop_assert!(moved <= fair_new + (n + extra) as usize, "moved {} of {}", moved, n_parts);
        }
    }
}
