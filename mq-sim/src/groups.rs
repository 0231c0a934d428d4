//! Consumer-group invariants (docs/invariants.md, "Consumer groups"), checked
//! outside the core from what brokers report (`GroupDelivered`, `GroupAckCommitted`,
//! `DeadLettered` events) and what members are told (`Joined`).
//!
//! - `group_ack_final`: once a leader confirmed an ack of a record to a group, no
//!   leader delivers that record to that group again.
//! - `group_read_committed`: a group is only handed records below the high
//!   watermark.
//! - `exclusive_owner`: in an exclusive group, one member owns a partition per
//!   generation, and only its owner is handed the partition's records.
//! - `exclusive_order`: an exclusive group's leader hands out first deliveries of
//!   a partition in offset order (per leader tenure and generation), and hands a
//!   partition's records to each generation's owner from its lowest unfinished
//!   record on: before it hands a record in a generation of its tenure, every
//!   earlier committed record for the group was handed in that generation, or is
//!   acked, dead-lettered, nacked or rejected, or used its last delivery (a new
//!   generation ends every lease of an exclusive group, as an eager Kafka
//!   rebalance resumes a partition from its committed offset).
//! - `key_shared_sticky`: in a key_shared group, all records with one key go to one
//!   member per generation (membership is fixed within a generation).
//! - `group_completion` (liveness): after healing, every committed record that
//!   matches a group's filter is acked by the group or dead-lettered. Acked: a
//!   leader confirmed the ack, or a member asked to ack it and the group's newest
//!   committed cursor record holds it as acked (the ack committed after its
//!   answer timed out, and the member was not told: a rebalance moved the
//!   partition before its retry).
//!
//! The workload derives each record's key and tags from its value, so the checker
//! recomputes them: [`key_of`], [`tags_of`].

use bytes::Bytes;
use mq_core::group::acks::AckSet;
use mq_core::group::GroupMode;
use mq_core::wire::{AckKind, GroupSettings};
use mq_core::{GroupGeneration, Instant, MemberId, NodeId, Offset, TopicPartition};
use std::collections::{BTreeMap, BTreeSet};

/// Distinct keys in the workload.
pub const KEYS: u64 = 8;

fn fnv(value: &[u8]) -> u64 {
    value.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The key the workload gives the record with this value.
pub fn key_of(value: &[u8]) -> Bytes {
    Bytes::from(format!("k{}", fnv(value) % KEYS))
}

/// The tags the workload gives the record with this value: a third are `blue`.
pub fn tags_of(value: &[u8]) -> Vec<String> {
    vec![if fnv(value) / KEYS % 3 == 0 { "blue".to_string() } else { "red".to_string() }]
}

/// What the checker is told of one group when the run starts.
#[derive(Clone, Debug)]
pub struct GroupSpec {
    /// The group's mode.
    pub mode: GroupMode,
    /// Its settings (the checker uses the tag filter).
    pub settings: GroupSettings,
    /// Its topics.
    pub topics: BTreeSet<String>,
}

/// A record a leader handed to a member (from `Event::GroupDelivered`).
#[derive(Clone, Debug)]
pub struct Handed<'a> {
    /// When.
    pub at: Instant,
    /// The leader.
    pub node: NodeId,
    /// The leader's tenure: its incarnation and leader epoch (the cursor is
    /// rebuilt and first deliveries start again at each new tenure).
    pub tenure: (u64, mq_core::LeaderEpoch),
    /// The group.
    pub group: &'a str,
    /// The member.
    pub member: MemberId,
    /// The generation the leader served.
    pub generation: GroupGeneration,
    /// The partition.
    pub tp: &'a TopicPartition,
    /// The record's offset.
    pub offset: Offset,
    /// Its delivery count at that leader.
    pub delivery: u32,
    /// The committed prefix's end (the highest HW seen).
    pub high_watermark: Offset,
    /// The leader's log start (retention settles the records below it).
    pub log_start: Offset,
    /// The committed records of `tp` the checker holds, from offset 0 (`None`:
    /// a control record, or removed by retention before the checker saw it).
    pub values: &'a [Option<Bytes>],
}

/// What a partition leader handed to an exclusive group in one generation of one
/// tenure (`exclusive_order`).
#[derive(Debug)]
struct Window {
    tenure: (u64, mq_core::LeaderEpoch),
    generation: GroupGeneration,
    /// Offsets handed in this window.
    handed: BTreeSet<Offset>,
    /// Every record below it was accounted for when a later one was handed.
    checked_to: Offset,
}

#[derive(Debug, Default)]
struct GroupModel {
    spec: Option<GroupSpec>,
    /// Per partition: offsets whose ack was confirmed (from when).
    confirmed: BTreeMap<TopicPartition, BTreeMap<Offset, Instant>>,
    /// Per partition: confirmed acked prefix (everything below is acked).
    prefix: BTreeMap<TopicPartition, Offset>,
    /// Dead-lettered offsets per partition.
    dead: BTreeMap<TopicPartition, BTreeSet<Offset>>,
    /// Per partition: offsets a member asked to ack (`Ack` entries of the
    /// `GroupAck` requests that reached a broker), confirmed or not.
    asked: BTreeMap<TopicPartition, BTreeSet<Offset>>,
    /// Per partition: the highest cumulative ack (`up_to`) a member asked for.
    asked_below: BTreeMap<TopicPartition, Offset>,
    /// Exclusive owners per generation, from `Joined`.
    owners: BTreeMap<(GroupGeneration, TopicPartition), MemberId>,
    /// Last first-delivered offset per (partition, leader, tenure, generation).
    first_order: BTreeMap<(TopicPartition, NodeId, (u64, mq_core::LeaderEpoch), GroupGeneration), Offset>,
    /// Key owners per generation.
    key_owner: BTreeMap<(GroupGeneration, Bytes), MemberId>,
    /// Per (partition, leader): the generation of the leader's tenure it serves.
    windows: BTreeMap<(TopicPartition, NodeId), Window>,
    /// Per partition: offsets a member asked to nack or reject (a nack delay or a
    /// dead letter may hold them back).
    held_back: BTreeMap<TopicPartition, BTreeSet<Offset>>,
    /// Per partition: offsets handed with their last allowed delivery (an expired
    /// or released lease sends them to the dead-letter topic).
    exhausted: BTreeMap<TopicPartition, BTreeSet<Offset>>,
    /// Per partition: the highest offset a member asked to seek to (a leader
    /// applies a seek before it commits: everything below may be settled).
    seek_floor: BTreeMap<TopicPartition, Offset>,
    /// Per partition: the cursor record offset of the newest committed seek.
    /// A confirmation of an older cursor record that arrives after it (answers
    /// of one high watermark advance come after the log is read) is superseded.
    seek_cursor: BTreeMap<TopicPartition, Offset>,
}

impl GroupModel {
    /// `exclusive_order`, handover half: `h` may be handed only if every earlier
    /// committed record for the group is accounted for (see the module doc).
    fn handed_in_order(&mut self, h: &Handed<'_>) -> Option<GroupViolation> {
        let spec = self.spec.as_ref()?;
        let tp = h.tp;
        let max_deliveries = spec.settings.max_deliveries;
        if h.delivery >= max_deliveries {
            self.exhausted.entry(tp.clone()).or_default().insert(h.offset);
        }
        let new_window =
            || Window { tenure: h.tenure, generation: h.generation, handed: BTreeSet::new(), checked_to: Offset(0) };
        let w = self.windows.entry((tp.clone(), h.node)).or_insert_with(new_window);
        if w.tenure != h.tenure || w.generation != h.generation {
            *w = new_window();
        }
        let floor = [
            self.prefix.get(tp).copied().unwrap_or(Offset(0)),
            self.asked_below.get(tp).copied().unwrap_or(Offset(0)),
            self.seek_floor.get(tp).copied().unwrap_or(Offset(0)),
            h.log_start,
        ]
        .into_iter()
        .max()
        .expect("four floors");
        let empty = BTreeSet::new();
        w.handed.insert(h.offset);
        let confirmed = self.confirmed.get(tp);
        let sets = [&self.asked, &self.dead, &self.held_back, &self.exhausted].map(|m| m.get(tp).unwrap_or(&empty));
        let mut p = w.checked_to.max(floor);
        while p < h.offset {
            let done = match h.values.get(p.0 as usize) {
                None | Some(None) => true,
                Some(Some(v)) => {
                    !spec.settings.matches(&tags_of(v))
                        || w.handed.contains(&p)
                        || confirmed.is_some_and(|c| c.contains_key(&p))
                        || sets.iter().any(|s| s.contains(&p))
                }
            };
            if !done {
                w.checked_to = h.offset.next();
                let what = format!(
                    "n{} handed {}@{} to member {} of group {} in generation {} while {p}, neither handed in that generation nor acked, dead-lettered, nacked or out of deliveries, waits",
                    h.node, tp, h.offset, h.member, h.group, h.generation
                );
                return Some(("exclusive_order", what, false));
            }
            p = p.next();
        }
        w.checked_to = w.checked_to.max(p);
        None
    }
}

/// The online consumer-group checker of one run.
#[derive(Debug, Default)]
pub struct GroupChecker {
    groups: BTreeMap<String, GroupModel>,
    /// Records handed to members.
    pub deliveries: u64,
    /// Of which deliveries after the first (delivery count above 1).
    pub redeliveries: u64,
    /// Acks confirmed (offsets newly covered).
    pub acks_confirmed: u64,
    /// Records dead-lettered.
    pub dead_letters: u64,
}

/// A broken group invariant: (name, what was seen, liveness).
pub type GroupViolation = (&'static str, String, bool);

impl GroupChecker {
    /// Declares a group of the run.
    pub fn add_group(&mut self, name: &str, spec: GroupSpec) {
        self.groups.entry(name.to_string()).or_default().spec = Some(spec);
    }

    /// A leader handed a record to a member.
    pub fn on_handed(&mut self, h: &Handed<'_>, key: Option<&Bytes>) -> Option<GroupViolation> {
        self.deliveries += 1;
        if h.delivery > 1 {
            self.redeliveries += 1;
        }
        let g = self.groups.entry(h.group.to_string()).or_default();
        if h.offset >= h.high_watermark {
            let what = format!(
                "n{} handed {}@{} to member {} of group {} above the committed prefix ({})",
                h.node, h.tp, h.offset, h.member, h.group, h.high_watermark
            );
            return Some(("group_read_committed", what, false));
        }
        let prefix = g.prefix.get(h.tp).copied().unwrap_or(Offset(0));
        let acked_at = g.confirmed.get(h.tp).and_then(|c| c.get(&h.offset)).copied();
        if h.offset < prefix || acked_at.is_some() {
            let when = acked_at.map_or("earlier".to_string(), |t| format!("at {t}"));
            let what = format!(
                "n{} handed {}@{} to member {} of group {} at {} (delivery {}); its ack was confirmed {when}",
                h.node, h.tp, h.offset, h.member, h.group, h.at, h.delivery
            );
            return Some(("group_ack_final", what, false));
        }
        let mode = g.spec.as_ref().map(|s| s.mode);
        match mode {
            Some(GroupMode::Exclusive(_)) => {
                if let Some(owner) = g.owners.get(&(h.generation, h.tp.clone())) {
                    if *owner != h.member {
                        let what = format!(
                            "n{} handed {}@{} of group {} to member {} in generation {}, whose owner is {owner}",
                            h.node, h.tp, h.offset, h.group, h.member, h.generation
                        );
                        return Some(("exclusive_owner", what, false));
                    }
                }
                if h.delivery == 1 {
                    let k = (h.tp.clone(), h.node, h.tenure, h.generation);
                    if let Some(last) = g.first_order.insert(k, h.offset) {
                        if last >= h.offset {
                            let what = format!(
                                "n{} first-delivered {}@{} to member {} of group {} after {} (generation {})",
                                h.node, h.tp, h.offset, h.member, h.group, last, h.generation
                            );
                            return Some(("exclusive_order", what, false));
                        }
                    }
                }
                return g.handed_in_order(h);
            }
            Some(GroupMode::KeyShared) => {
                let key = key.cloned().unwrap_or_default();
                let owner = *g.key_owner.entry((h.generation, key.clone())).or_insert(h.member);
                if owner != h.member {
                    let what = format!(
                        "n{} handed {}@{} (key {key:?}) of group {} to member {} in generation {}; member {owner} has that key",
                        h.node, h.tp, h.offset, h.group, h.member, h.generation
                    );
                    return Some(("key_shared_sticky", what, false));
                }
            }
            _ => {}
        }
        None
    }

    /// A leader confirmed acks of `group` on `tp`: everything below `prefix` and
    /// the offsets in `above`, as its cursor record at `cursor` holds them.
    pub fn on_ack_confirmed(
        &mut self,
        at: Instant,
        group: &str,
        tp: &TopicPartition,
        prefix: Offset,
        above: &[Offset],
        cursor: Offset,
    ) {
        let g = self.groups.entry(group.to_string()).or_default();
        if g.seek_cursor.get(tp).is_some_and(|s| cursor < *s) {
            return;
        }
        let old = g.prefix.entry(tp.clone()).or_insert(Offset(0));
        let confirmed = g.confirmed.entry(tp.clone()).or_default();
        if prefix > *old {
            // Offsets below the prefix are covered by it; only those not confirmed
            // individually before count as new.
            let already = confirmed.range(*old..prefix).count() as u64;
            self.acks_confirmed += prefix.0 - old.0 - already;
            *confirmed = confirmed.split_off(&prefix);
            *old = prefix;
        }
        // `above` is the leader's whole set of acks above its prefix, in offset
        // order, again at every confirmation: one merge walk against what is
        // confirmed already finds the new ones (each keeps its first time).
        let mut known = confirmed.keys().copied().peekable();
        let mut new = Vec::new();
        for o in above.iter().copied().filter(|o| *o >= *old) {
            while known.next_if(|k| *k < o).is_some() {}
            if known.next_if_eq(&o).is_none() {
                new.push(o);
            }
        }
        self.acks_confirmed += new.len() as u64;
        confirmed.extend(new.into_iter().map(|o| (o, at)));
    }

    /// A seek of `group` on `tp` to `offset`, in the cursor record at `cursor`,
    /// committed: records from `offset` on may be delivered again. Seen once
    /// from the committed log and once from the leader's answer, if it sent one.
    pub fn on_sought(&mut self, group: &str, tp: &TopicPartition, offset: Offset, cursor: Offset) {
        let g = self.groups.entry(group.to_string()).or_default();
        if g.seek_cursor.get(tp).is_some_and(|s| cursor <= *s) {
            return;
        }
        g.seek_cursor.insert(tp.clone(), cursor);
        g.prefix.insert(tp.clone(), offset);
        if let Some(c) = g.confirmed.get_mut(tp) {
            c.retain(|o, _| *o < offset);
        }
        // First deliveries start again from the seek's offset.
        g.first_order.retain(|k, _| k.0 != *tp);
        g.windows.retain(|k, _| k.0 != *tp);
    }

    /// A member's request to seek `group` on `tp` to `to` (`None`: not to an
    /// offset) reached a broker.
    pub fn on_seek_asked(&mut self, group: &str, tp: &TopicPartition, to: Option<Offset>) {
        let g = self.groups.entry(group.to_string()).or_default();
        let floor = g.seek_floor.entry(tp.clone()).or_insert(Offset(0));
        *floor = (*floor).max(to.unwrap_or(Offset(u64::MAX)));
    }

    /// A member's request to ack `acks` (and everything below `up_to`) of
    /// `group` on `tp` reached a broker: what the member's application finished,
    /// whatever the answer.
    pub fn on_ack_asked(
        &mut self,
        group: &str,
        tp: &TopicPartition,
        acks: &[(Offset, AckKind)],
        up_to: Option<Offset>,
    ) {
        let g = self.groups.entry(group.to_string()).or_default();
        let asked = g.asked.entry(tp.clone()).or_default();
        asked.extend(acks.iter().filter(|(_, k)| *k == AckKind::Ack).map(|(o, _)| *o));
        let held_back = g.held_back.entry(tp.clone()).or_default();
        held_back.extend(acks.iter().filter(|(_, k)| *k != AckKind::Ack).map(|(o, _)| *o));
        if let Some(end) = up_to {
            let below = g.asked_below.entry(tp.clone()).or_insert(Offset(0));
            *below = (*below).max(end);
        }
    }

    /// A leader's dead-letter append of `tp@offset` for `group` was acknowledged.
    pub fn on_dead_lettered(&mut self, group: &str, tp: &TopicPartition, offset: Offset) {
        self.dead_letters += 1;
        self.groups.entry(group.to_string()).or_default().dead.entry(tp.clone()).or_default().insert(offset);
    }

    /// A member was told its assignment at `generation` (exclusive groups: each
    /// partition has one owner per generation).
    pub fn on_joined(
        &mut self,
        group: &str,
        member: MemberId,
        generation: GroupGeneration,
        assignment: &[TopicPartition],
    ) -> Option<GroupViolation> {
        let g = self.groups.entry(group.to_string()).or_default();
        if !matches!(g.spec.as_ref().map(|s| s.mode), Some(GroupMode::Exclusive(_))) {
            return None;
        }
        for tp in assignment {
            let owner = *g.owners.entry((generation, tp.clone())).or_insert(member);
            if owner != member {
                let what = format!(
                    "{tp} of group {group} is assigned to members {owner} and {member} in generation {generation}"
                );
                return Some(("exclusive_owner", what, false));
            }
        }
        None
    }

    /// At the end of a healed run: every committed record of `tp` (from
    /// `records`, below the partition's `log_start` excluded) that matches the
    /// group's filter is acked or dead-lettered. `cursors` holds each group's
    /// newest committed cursor record on `tp`: an offset it holds as acked counts
    /// as acked when a member asked to ack it, though no answer confirmed it.
    pub fn check_completion<'a>(
        &self,
        tp: &TopicPartition,
        log_start: Offset,
        records: impl Iterator<Item = (Offset, &'a Bytes)>,
        cursors: Option<&BTreeMap<String, AckSet>>,
    ) -> Option<GroupViolation> {
        let records: Vec<(Offset, &Bytes)> = records.filter(|(o, _)| *o >= log_start).collect();
        for (name, g) in &self.groups {
            let Some(spec) = &g.spec else { continue };
            if !spec.topics.contains(&tp.topic) {
                continue;
            }
            let prefix = g.prefix.get(tp).copied().unwrap_or(Offset(0));
            let confirmed = g.confirmed.get(tp);
            let dead = g.dead.get(tp);
            let cursor = cursors.and_then(|c| c.get(name));
            let asked = g.asked.get(tp);
            let asked_below = g.asked_below.get(tp).copied().unwrap_or(Offset(0));
            let committed_unconfirmed = |o: &Offset| {
                cursor.is_some_and(|c| c.is_acked(*o)) && (*o < asked_below || asked.is_some_and(|a| a.contains(o)))
            };
            let missing: Vec<Offset> = records
                .iter()
                .filter(|(o, v)| {
                    spec.settings.matches(&tags_of(v))
                        && *o >= prefix
                        && !confirmed.is_some_and(|c| c.contains_key(o))
                        && !dead.is_some_and(|d| d.contains(o))
                        && !committed_unconfirmed(o)
                })
                .map(|(o, _)| *o)
                .collect();
            if let Some(first) = missing.first() {
                let what = format!(
                    "group {name}: {} committed records of {tp} matching its filter are neither acked nor dead-lettered after healing (first {first}; acked prefix {prefix})",
                    missing.len()
                );
                return Some(("group_completion", what, true));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mq_core::group::assign::Assignor;
    use mq_core::{Generation, LeaderEpoch};

    fn generation(g: u32) -> GroupGeneration {
        GroupGeneration { coordinator_epoch: LeaderEpoch(1), generation: Generation(g) }
    }

    fn handed<'a>(tp: &'a TopicPartition, member: u64, g: u32, offset: u64, delivery: u32) -> Handed<'a> {
        Handed {
            at: Instant::ZERO,
            node: NodeId(1),
            tenure: (0, LeaderEpoch(1)),
            group: "g",
            member: MemberId(member),
            generation: generation(g),
            tp,
            offset: Offset(offset),
            delivery,
            high_watermark: Offset(100),
            log_start: Offset(0),
            values: &[],
        }
    }

    fn checker(mode: GroupMode, filter: &[&str]) -> GroupChecker {
        let mut c = GroupChecker::default();
        let spec = GroupSpec {
            mode,
            settings: GroupSettings { filter: filter.iter().map(|s| s.to_string()).collect(), ..Default::default() },
            topics: ["t0".to_string()].into(),
        };
        c.add_group("g", spec);
        c
    }

    #[test]
    fn a_delivery_after_a_confirmed_ack_is_caught_but_not_before() {
        let tp = TopicPartition::new("t0", 0);
        let mut c = checker(GroupMode::Shared, &[]);
        assert!(c.on_handed(&handed(&tp, 1, 1, 5, 1), None).is_none());
        assert!(c.on_handed(&handed(&tp, 2, 1, 5, 2), None).is_none(), "redelivery before any ack is fine");
        c.on_ack_confirmed(Instant::ZERO, "g", &tp, Offset(3), &[Offset(5)], Offset(6));
        let v = c.on_handed(&handed(&tp, 1, 1, 5, 3), None).expect("caught");
        assert_eq!(v.0, "group_ack_final");
        let v = c.on_handed(&handed(&tp, 1, 1, 2, 1), None).expect("below the prefix");
        assert_eq!(v.0, "group_ack_final");
        assert!(c.on_handed(&handed(&tp, 1, 1, 4, 1), None).is_none());
        assert_eq!(c.acks_confirmed, 4);
    }

    #[test]
    fn a_delivery_above_the_committed_prefix_is_caught() {
        let tp = TopicPartition::new("t0", 0);
        let mut c = checker(GroupMode::Shared, &[]);
        let v = c.on_handed(&handed(&tp, 1, 1, 100, 1), None).expect("caught");
        assert_eq!(v.0, "group_read_committed");
    }

    #[test]
    fn exclusive_groups_have_one_owner_and_first_deliveries_in_order() {
        let tp = TopicPartition::new("t0", 0);
        let mut c = checker(GroupMode::Exclusive(Assignor::Sticky), &[]);
        assert!(c.on_joined("g", MemberId(1), generation(1), std::slice::from_ref(&tp)).is_none());
        assert_eq!(
            c.on_joined("g", MemberId(2), generation(1), std::slice::from_ref(&tp)).unwrap().0,
            "exclusive_owner"
        );
        assert!(c.on_joined("g", MemberId(2), generation(2), std::slice::from_ref(&tp)).is_none());
        assert!(c.on_handed(&handed(&tp, 1, 1, 1, 1), None).is_none());
        assert!(c.on_handed(&handed(&tp, 1, 1, 2, 1), None).is_none());
        assert!(c.on_handed(&handed(&tp, 1, 1, 1, 2), None).is_none(), "a redelivery may go back");
        assert_eq!(c.on_handed(&handed(&tp, 1, 1, 2, 1), None).unwrap().0, "exclusive_order");
        assert_eq!(c.on_handed(&handed(&tp, 1, 2, 3, 1), None).unwrap().0, "exclusive_owner");
        assert!(c.on_handed(&handed(&tp, 2, 2, 1, 1), None).is_none(), "a new generation starts over");
    }

    /// The mutant `exclusive_keeps_leases_on_rebalance`: a new generation's owner
    /// is handed later records while an earlier one stays leased to a member of
    /// an older generation.
    #[test]
    fn a_new_generation_is_handed_a_partition_from_its_lowest_unfinished_record() {
        let tp = TopicPartition::new("t0", 0);
        let values: Vec<Option<Bytes>> = (0..10).map(|i| Some(Bytes::from(format!("v{i}.0")))).collect();
        let at = |member, g, offset, delivery| Handed { values: &values, ..handed(&tp, member, g, offset, delivery) };
        let mut c = checker(GroupMode::Exclusive(Assignor::Sticky), &[]);
        for o in 0..4 {
            assert!(c.on_handed(&at(1, 1, o, 1), None).is_none(), "generation 1 in order");
        }
        // Generation 2 starts at 4 while 0..4 are neither finished nor handed again.
        let v = c.on_handed(&at(2, 2, 4, 1), None).expect("caught");
        assert_eq!(v.0, "exclusive_order");
        assert!(v.1.contains("while 0"), "{}", v.1);
        // Generation 3: each earlier record is accounted for in another way.
        c.on_ack_asked("g", &tp, &[(Offset(0), AckKind::Ack)], None);
        c.on_ack_asked("g", &tp, &[(Offset(1), AckKind::Nack { delay: mq_core::Duration::from_millis(5) })], None);
        assert!(c.on_handed(&at(1, 3, 2, 2), None).is_none(), "2 handed again first");
        assert_eq!(c.on_handed(&at(1, 3, 4, 2), None).unwrap().0, "exclusive_order", "3 is still leased");
        c.on_dead_lettered("g", &tp, Offset(3));
        assert!(c.on_handed(&at(1, 3, 5, 1), None).is_none(), "3 was dead-lettered");
        // Generation 4: a seek to 6 was asked (5 is not accounted for otherwise).
        c.on_seek_asked("g", &tp, Some(Offset(6)));
        assert!(c.on_handed(&at(2, 4, 6, 1), None).is_none(), "a seek may have settled them");
        // Another leader tenure starts over; records out of deliveries may wait.
        let mut c = checker(GroupMode::Exclusive(Assignor::Sticky), &[]);
        let last = GroupSettings::default().max_deliveries;
        assert!(c.on_handed(&at(1, 1, 0, last), None).is_none());
        let other = Handed { tenure: (1, LeaderEpoch(2)), ..at(1, 1, 1, 1) };
        assert!(c.on_handed(&other, None).is_none(), "0 used its last delivery");
        let retained = Handed { log_start: Offset(3), ..at(2, 2, 3, 1) };
        assert!(c.on_handed(&retained, None).is_none(), "retention settled 1 and 2");
    }

    #[test]
    fn key_shared_keys_stay_with_one_member_per_generation() {
        let tp = TopicPartition::new("t0", 0);
        let mut c = checker(GroupMode::KeyShared, &[]);
        let k = Bytes::from("k1");
        assert!(c.on_handed(&handed(&tp, 1, 1, 1, 1), Some(&k)).is_none());
        assert!(c.on_handed(&handed(&tp, 2, 1, 2, 1), Some(&Bytes::from("k2"))).is_none());
        assert_eq!(c.on_handed(&handed(&tp, 2, 1, 3, 1), Some(&k)).unwrap().0, "key_shared_sticky");
        assert!(c.on_handed(&handed(&tp, 2, 2, 3, 1), Some(&k)).is_none(), "membership changed");
    }

    #[test]
    fn completion_needs_every_matching_record_acked_or_dead_lettered() {
        let tp = TopicPartition::new("t0", 0);
        let mut c = checker(GroupMode::Shared, &["blue"]);
        let values: Vec<Bytes> = (0..30).map(|i| Bytes::from(format!("v{i}.0"))).collect();
        let blue: Vec<u64> = (0..30).filter(|i| tags_of(&values[*i as usize]) == ["blue"]).collect();
        assert!(!blue.is_empty() && blue.len() < 30, "the workload mixes tags");
        let records = || values.iter().enumerate().map(|(o, v)| (Offset(o as u64), v));
        let v = c.check_completion(&tp, Offset(0), records(), None).expect("nothing acked");
        assert_eq!(v.0, "group_completion");
        let (last, rest) = blue.split_last().unwrap();
        let above: Vec<Offset> = rest.iter().map(|o| Offset(*o)).collect();
        c.on_ack_confirmed(Instant::ZERO, "g", &tp, Offset(0), &above, Offset(0));
        assert!(c.check_completion(&tp, Offset(0), records(), None).is_some(), "one blue record left");
        assert!(c.check_completion(&tp, Offset(last + 1), records(), None).is_none(), "below the log start is exempt");
        c.on_dead_lettered("g", &tp, Offset(*last));
        assert!(c.check_completion(&tp, Offset(0), records(), None).is_none(), "red records are not for the group");
        assert!(c.check_completion(&TopicPartition::new("t9", 0), Offset(0), records(), None).is_none());
    }

    /// Seed 1000010: a member's ack of 0..3 committed after its answer timed out
    /// (a 1 ms produce timeout), the retry was refused for a rebalance, and the
    /// member dropped the acks: no leader ever confirmed them, yet the group's
    /// committed cursor holds them as acked and no leader delivers them again.
    #[test]
    fn an_ack_committed_without_a_confirmation_completes_once_a_member_asked_for_it() {
        let tp = TopicPartition::new("t0", 0);
        let mut c = checker(GroupMode::Exclusive(Assignor::RoundRobin), &[]);
        let values: Vec<Bytes> = (0..4).map(|i| Bytes::from(format!("v{i}.0"))).collect();
        let records = || values.iter().enumerate().map(|(o, v)| (Offset(o as u64), v));
        let mut cursor = AckSet::new(Offset(0));
        for o in 0..3 {
            cursor.ack(Offset(o)).unwrap();
        }
        let cursors: BTreeMap<String, AckSet> = [("g".to_string(), cursor)].into();
        // A cursor alone is the leader's word: records no member asked to ack
        // (a leader that folded its prefix over them) are still missing.
        let v = c.check_completion(&tp, Offset(0), records(), Some(&cursors)).expect("nobody asked");
        assert!(v.1.contains("4 committed records"), "{}", v.1);
        let acks: Vec<(Offset, AckKind)> = (0..3).map(|o| (Offset(o), AckKind::Ack)).collect();
        c.on_ack_asked("g", &tp, &acks[..2], None);
        c.on_ack_asked("g", &tp, &[(Offset(2), AckKind::Reject)], None);
        let v = c.check_completion(&tp, Offset(0), records(), Some(&cursors)).expect("2 and 3 left");
        assert!(v.1.contains("2 committed records") && v.1.contains("first 2"), "{}", v.1);
        c.on_ack_asked("g", &tp, &[], Some(Offset(3)));
        let v = c.check_completion(&tp, Offset(0), records(), Some(&cursors)).expect("3 is in no cursor");
        assert!(v.1.contains("1 committed records") && v.1.contains("first 3"), "{}", v.1);
        c.on_ack_asked("g", &tp, &[(Offset(3), AckKind::Ack)], None);
        assert!(c.check_completion(&tp, Offset(0), records(), Some(&cursors)).is_some(), "asked, not committed");
        assert!(c.check_completion(&tp, Offset(0), records(), None).is_some(), "no cursor committed at all");
        let mut cursor = cursors["g"].clone();
        cursor.ack(Offset(3)).unwrap();
        let cursors: BTreeMap<String, AckSet> = [("g".to_string(), cursor)].into();
        assert!(c.check_completion(&tp, Offset(0), records(), Some(&cursors)).is_none());
    }
}
