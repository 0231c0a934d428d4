//! The checker: it lives outside the core and sees only what a user could see (the
//! history of client operations) plus what nodes expose (high watermark events and
//! read-only getters). `docs/invariants.md` lists every invariant of DESIGN.md
//! section 9 and marks which ones this checker enforces today.
//!
//! It keeps a model of each partition's *committed prefix*: when a node reports a
//! new high watermark, the records between the old and the new one are copied from
//! the node's log. From then on those records must never vanish or change, every
//! read must match them, and every acknowledged record must be among them at its
//! acknowledged offset.

use crate::history::{is_adversarial, History, Outcome, ProduceOp};
use bytes::Bytes;
use mq_core::controller::raft::Entry;
use mq_core::controller::{MetadataRecord, Raft};
use mq_core::group::acks::AckSet;
use mq_core::group::cursor::cursor_of_batch;
use mq_core::log::PartitionLog;
use mq_core::security::acl::Grant;
use mq_core::wire::{Acks, BatchKind};
use mq_core::{Instant, LeaderEpoch, Node, NodeId, Offset, PartitionId, Term, TopicPartition};
use std::collections::{BTreeMap, BTreeSet};

/// Every invariant a run is checked against, as docs/invariants.md lists them
/// (safety, then liveness); campaign summaries name them. A new invariant gets
/// its row there and its name here (a test compares the two).
pub const INVARIANTS: &[&str] = &[
    "acked_not_lost",
    "acked_at_offset",
    "one_value_per_offset",
    "committed_stable",
    "log_matching",
    "hw_monotonic",
    "read_committed",
    "no_read_of_failed_write",
    "definite_failure_not_committed",
    "final_readback",
    "consumer_positions",
    "duplicates_bounded",
    "no_unexpected_values",
    "one_leader_per_epoch",
    "one_leader_per_term",
    "metadata_committed_stable",
    "metadata_commit_protected",
    "election_from_isr",
    "min_isr_respected",
    "vacuous",
    "core_panic",
    "determinism",
    "no_duplicates_idempotent",
    "producer_order",
    "group_ack_final",
    "group_read_committed",
    "exclusive_owner",
    "exclusive_order",
    "key_shared_sticky",
    "auth_not_bypassed",
    "auth_refused",
    "shutdown_leader_bound",
    "client_metadata_monotonic",
    "fenced_not_live",
    "ack_owner",
    "acl_model",
    // liveness
    "liveness_progress",
    "liveness_leaders",
    "liveness_replicas_in_sync",
    "liveness_consumers_caught_up",
    "event_budget",
    "timer_progress",
    "group_completion",
];

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's name (as in docs/invariants.md).
    pub invariant: &'static str,
    /// What was seen.
    pub what: String,
    /// A liveness (not safety) violation.
    pub liveness: bool,
}

#[derive(Clone, Debug, Default)]
struct PartModel {
    /// Committed values from offset 0; `None` where retention removed a record
    /// before the checker saw it.
    committed: Vec<Option<Bytes>>,
    /// Records of idempotent ops committed here: (op, index) -> offset.
    idempotent: BTreeMap<(u64, usize), Offset>,
    /// Per producing client, the last idempotent (op, index) committed here.
    last_of_client: BTreeMap<u64, (u64, usize)>,
    /// Committed control records (group cursors); `None` in `committed`.
    control: u64,
    /// Per group, the acked state of its newest committed cursor record here
    /// (`group_completion`: an ack can commit after its answer timed out).
    cursors: BTreeMap<String, AckSet>,
    /// Per group, the seek count of its newest committed cursor record here.
    cursor_seeks: BTreeMap<String, u64>,
    /// Copies committed here of each record of a non-idempotent op sent here:
    /// (op, index) -> copies (`duplicates_bounded`).
    copies: BTreeMap<(u64, usize), u32>,
    /// Copies beyond the first of those records.
    duplicates: u64,
}

impl PartModel {
    fn hw(&self) -> Offset {
        Offset(self.committed.len() as u64)
    }

    /// Record `i` of non-idempotent op `op` committed once more: the copies may
    /// not outnumber the produce requests that carried it (`duplicates_bounded`);
    /// each copy after the first is counted.
    fn non_idempotent_record(&mut self, op: &ProduceOp, i: usize, offset: Offset) -> Option<String> {
        let copies = self.copies.entry((op.id, i)).or_insert(0);
        *copies += 1;
        if *copies > 1 {
            self.duplicates += 1;
        }
        // 1 + retries: the first request and each one after it (a history built
        // without requests, as in unit tests, still allows one copy).
        (*copies > op.requests.max(1)).then(|| {
            format!(
                "record {i} of op {} (c{}, acks={:?}) is committed {copies} times (the last at {offset}); {} produce request(s) carried it",
                op.id, op.client, op.acks, op.requests
            )
        })
    }

    /// Record `i` of idempotent op `op` of `client` committed at `offset`: it must
    /// be there once (`no_duplicates_idempotent`) and after every earlier record of
    /// the same client's idempotent ops (`producer_order`). No copy is exempt,
    /// not even one appended after retention removed the first: leaders keep
    /// producer state past retention (docs/replication.md, "Idempotence").
    fn idempotent_record(&mut self, client: u64, op: u64, i: usize, offset: Offset) -> Option<(&'static str, String)> {
        if let Some(first) = self.idempotent.insert((op, i), offset) {
            let what = format!("record {i} of idempotent op {op} (c{client}) is committed at {first} and at {offset}");
            return Some(("no_duplicates_idempotent", what));
        }
        let last = self.last_of_client.insert(client, (op, i));
        match last {
            Some(prev) if prev > (op, i) => Some((
                "producer_order",
                format!(
                    "record {i} of op {op} (c{client}) is committed at {offset}, after record {} of op {}, which c{client} sent later",
                    prev.1, prev.0
                ),
            )),
            _ => None,
        }
    }
}

/// A partition's state as the committed metadata log describes it.
#[derive(Clone, Debug, Default)]
struct PartState {
    leader: Option<NodeId>,
    isr: Vec<NodeId>,
    /// The replicas the topic's creation assigned (mq does not reassign them).
    replicas: Vec<NodeId>,
}

/// What an auth seed's honest admin creates: anything else in the committed
/// metadata came from an adversary (`auth_not_bypassed`).
#[derive(Clone, Debug, Default)]
pub struct AuthRules {
    /// Principals the admin creates.
    pub principals: BTreeSet<String>,
    /// Grants the admin creates.
    pub grants: BTreeSet<Grant>,
}

/// Names of the topics, principals and groups an adversary asks for start with
/// this.
pub const ADVERSARY_NAME_PREFIX: &str = "x.";

/// What the checker needs to know of the run's topics.
#[derive(Clone, Debug)]
pub struct CheckerSettings {
    /// Brokers in the cluster.
    pub cluster_size: u32,
    /// Replication factor of every topic.
    pub replication_factor: u16,
    /// `min_insync_replicas` of every topic.
    pub min_insync_replicas: u16,
    /// Whether topics allow unclean leader election.
    pub unclean_leader_election: bool,
}

/// The online checker of one run.
#[derive(Debug, Default)]
pub struct Checker {
    parts: BTreeMap<TopicPartition, PartModel>,
    /// Per leader tenure: the last HW it reported, and how far its log has been
    /// compared with the committed prefix.
    tenures: BTreeMap<(TopicPartition, LeaderEpoch), (Offset, Offset)>,
    violation: Option<Violation>,
    /// Seeks found in newly committed cursor records, in commit order, for the
    /// group checker: (partition, group, the seek's offset, the cursor record's
    /// offset). A cursor record with a higher seek count than the group's
    /// previous one holds a seek; it may be committed by a leader other than
    /// the one that answered it.
    pub committed_seeks: Vec<(TopicPartition, String, Offset, Offset)>,
    /// Records read by consumers.
    pub records_read: u64,
    /// Records acknowledged to producers (acks=1/all).
    pub records_acked: u64,
    /// Records acknowledged to acks=all producers.
    pub records_acked_all: u64,
    /// acks=1 promises durability too where the leader is the whole ISR: with a
    /// replication factor of 1 (and no unclean election). With replication an acks=1
    /// record may be lost on failover (legal), so only acks=all records are checked
    /// for loss there.
    pub leader_acks_durable: bool,
    /// `min_insync_replicas` of every topic.
    min_insync: usize,
    /// Whether topics allow unclean leader election.
    unclean_allowed: bool,
    /// Partitions that had an unclean election: their loss is allowed, reported,
    /// and no longer checked.
    lossy: BTreeSet<TopicPartition>,
    /// Unclean elections seen in the committed metadata.
    pub unclean_elections: u64,
    /// acks=all records acknowledged in partitions that later had an unclean
    /// election (exempt from the loss checks; reported).
    pub records_exempt_unclean: u64,
    /// The leader of each (partition, leader epoch), from `BecameLeader` events and
    /// committed `PartitionChange` records.
    epoch_leaders: BTreeMap<(TopicPartition, LeaderEpoch), (NodeId, &'static str)>,
    /// The Raft leader of each term, from `ControllerLeader` events.
    term_leaders: BTreeMap<Term, NodeId>,
    /// The committed metadata log, as the first node to commit each entry had it.
    meta: Vec<Entry>,
    /// Per node, how much of its committed metadata log was compared with `meta`.
    meta_checked: BTreeMap<NodeId, usize>,
    /// Partition state per the committed metadata log.
    part_state: BTreeMap<TopicPartition, PartState>,
    /// Brokers registered and unfenced per the committed metadata log.
    unfenced: BTreeSet<NodeId>,
    /// When the checker last saw each replica in its partition's committed ISR
    /// (`liveness_replicas_in_sync`).
    in_isr_at: BTreeMap<(TopicPartition, NodeId), Instant>,
    /// The simulated time of the metadata being learnt (`Checker::set_now`).
    now: Instant,
    /// The highest HW reported for each lossy partition (counted as committed, not
    /// checked).
    lossy_hw: BTreeMap<TopicPartition, Offset>,
    /// First values of acks=all batches a leader appended while its ISR was below
    /// min ISR.
    appended_below_min_isr: BTreeSet<Bytes>,
    /// Auth seeds: what the honest admin creates (`auth_not_bypassed`).
    pub auth: Option<AuthRules>,
    /// Per plain consumer and partition, the offset its next read must not be
    /// below (`consumer_positions`).
    positions: BTreeMap<(u64, TopicPartition), Offset>,
    /// The highest log start any replica of a partition reported
    /// (`Event::LogStartAdvanced`) or showed: offsets below it may be gone.
    log_start_seen: BTreeMap<TopicPartition, Offset>,
    /// Control-plane checks (`fenced_not_live`, `client_metadata_monotonic`).
    pub control: crate::control::ControlChecker,
}

/// What in `record` no honest client asked for, under `rules`: the honest admin
/// creates topics, principals and grants and never deletes anything; brokers
/// create their internal topics (`__groups`, `<topic>.dlq`).
fn adversarial_metadata(rules: &AuthRules, record: &MetadataRecord) -> Option<String> {
    match record {
        MetadataRecord::CreateTopic { config, .. } if config.name.starts_with(ADVERSARY_NAME_PREFIX) => {
            Some(format!("topic {:?} an adversarial client asked for was created", config.name))
        }
        MetadataRecord::DeleteTopic { topic } => Some(format!("topic {topic:?} was deleted; no honest client deletes")),
        MetadataRecord::PutPrincipal { app_key, .. } if !rules.principals.contains(app_key) => {
            Some(format!("principal {app_key:?} was created; the admin creates only {:?}", rules.principals))
        }
        MetadataRecord::DeletePrincipal { app_key } => {
            Some(format!("principal {app_key:?} was deleted; no honest client deletes"))
        }
        MetadataRecord::PutAcl(g) if !rules.grants.contains(g) => {
            Some(format!("grant {g:?} was created; the admin never made it"))
        }
        MetadataRecord::DeleteAcl(g) => Some(format!("grant {g:?} was deleted; no honest client deletes")),
        _ => None,
    }
}

impl Checker {
    /// A checker for a one-node cluster with one-replica topics.
    pub fn single_node() -> Self {
        Checker::new(&CheckerSettings {
            cluster_size: 1,
            replication_factor: 1,
            min_insync_replicas: 1,
            unclean_leader_election: false,
        })
    }

    /// A checker for a run with these settings.
    pub fn new(s: &CheckerSettings) -> Self {
        Checker {
            leader_acks_durable: s.replication_factor == 1 && !s.unclean_leader_election,
            min_insync: usize::from(s.min_insync_replicas),
            unclean_allowed: s.unclean_leader_election,
            ..Checker::default()
        }
    }

    /// The first violation found, if any.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// Records a violation (the first one wins).
    pub fn fail(&mut self, invariant: &'static str, what: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation { invariant, what, liveness: false });
        }
    }

    /// Records a liveness violation.
    pub fn fail_liveness(&mut self, invariant: &'static str, what: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation { invariant, what, liveness: true });
        }
    }

    /// Copies beyond the first of records of non-idempotent ops in the committed
    /// prefix (allowed up to the op's retries: `duplicates_bounded`).
    pub fn duplicates_non_idempotent(&self) -> u64 {
        self.parts.values().map(|p| p.duplicates).sum()
    }

    /// Committed records seen (the lossy partitions' up to their last HW).
    pub fn committed(&self) -> u64 {
        let checked: u64 = self.parts.values().map(|p| p.committed.len() as u64 - p.control).sum();
        let lossy: u64 = self.lossy_hw.iter().map(|(tp, hw)| hw.0.saturating_sub(self.high_watermark(tp).0)).sum();
        checked + lossy
    }

    /// The committed data records of `tp` the checker holds, with their offsets
    /// (not control records, not records retention removed before it looked).
    pub fn committed_records<'a>(&'a self, tp: &TopicPartition) -> impl Iterator<Item = (Offset, &'a Bytes)> + 'a {
        self.committed_slots(tp).iter().enumerate().filter_map(|(o, v)| v.as_ref().map(|v| (Offset(o as u64), v)))
    }

    /// Per group, the acked state of its newest committed cursor record on `tp`.
    pub fn committed_cursors(&self, tp: &TopicPartition) -> Option<&BTreeMap<String, AckSet>> {
        self.parts.get(tp).map(|p| &p.cursors)
    }

    /// The committed records of `tp` from offset 0 (`None`: a control record, or
    /// removed by retention before the checker saw it).
    pub fn committed_slots(&self, tp: &TopicPartition) -> &[Option<Bytes>] {
        self.parts.get(tp).map(|p| p.committed.as_slice()).unwrap_or_default()
    }

    /// The committed value at `tp@offset`, if the checker holds it (not a control
    /// record, not removed by retention before it looked, below the HW).
    pub fn committed_value(&self, tp: &TopicPartition, offset: Offset) -> Option<&Bytes> {
        self.parts.get(tp)?.committed.get(usize::try_from(offset.0).ok()?)?.as_ref()
    }

    /// The offset after the last committed data record of `tp` (control records
    /// after it are not for plain consumers: their fetches skip them).
    pub fn data_end(&self, tp: &TopicPartition) -> Offset {
        let Some(p) = self.parts.get(tp) else { return Offset(0) };
        let last = p.committed.iter().rposition(Option::is_some);
        match last {
            Some(i) => Offset(i as u64 + 1),
            // Nothing but control records (or records retention removed before
            // the checker saw them): the HW.
            None => p.hw(),
        }
    }

    /// Whether `tp` had an unclean election (its loss checks stopped).
    pub fn is_lossy(&self, tp: &TopicPartition) -> bool {
        self.lossy.contains(tp)
    }

    /// The partitions the checker has seen committed records of.
    pub fn partitions(&self) -> impl Iterator<Item = &TopicPartition> {
        self.parts.keys()
    }

    /// The highest high watermark seen for `tp`.
    pub fn high_watermark(&self, tp: &TopicPartition) -> Offset {
        self.parts.get(tp).map_or(Offset(0), PartModel::hw)
    }

    /// The leader of `tp` in `epoch` (on `node`) reported `hw`; `log` is its log
    /// right now. Within one leader tenure the HW never goes back; below the HW
    /// the leader's records must be the committed ones (log matching), and records
    /// past the committed prefix extend it.
    pub fn on_high_watermark(
        &mut self,
        node: u32,
        tp: &TopicPartition,
        epoch: LeaderEpoch,
        hw: Offset,
        log: &PartitionLog,
        h: &History,
    ) {
        // Only a leader reports a HW: reporting one acts as the leader of `epoch`.
        self.one_leader(NodeId(node), tp, epoch, "high-watermark event");
        if self.lossy.contains(tp) {
            let seen = self.lossy_hw.entry(tp.clone()).or_insert(Offset(0));
            *seen = (*seen).max(hw);
            return;
        }
        let (last, checked) = self.tenures.get(&(tp.clone(), epoch)).copied().unwrap_or((Offset(0), Offset(0)));
        if hw < last {
            let what = format!("n{node} moved the HW of {tp} in leader epoch {epoch} back from {last} to {hw}");
            self.fail("hw_monotonic", what);
            return;
        }
        let model_hw = self.parts.entry(tp.clone()).or_default().hw();
        let upto = hw.min(model_hw);
        if let Some(what) = self.mismatch(node, tp, log, checked.max(log.log_start()), upto) {
            self.fail("log_matching", what);
            return;
        }
        self.tenures.insert((tp.clone(), epoch), (hw, upto.max(checked)));
        self.extend(node, tp, hw, log, h);
    }

    /// The first record of `log` in `[from, to)` that differs from the committed
    /// prefix, described; `None` if they agree (records removed by retention on
    /// either side are skipped).
    fn mismatch(&self, node: u32, tp: &TopicPartition, log: &PartitionLog, from: Offset, to: Offset) -> Option<String> {
        if from >= to {
            return None;
        }
        let model = self.parts.get(tp)?;
        for b in log.batches_from(from) {
            for (o, r) in b.iter_with_offsets() {
                if o < from {
                    continue;
                }
                if o >= to {
                    return None;
                }
                if let Some(Some(v)) = model.committed.get(o.0 as usize) {
                    if *v != r.value {
                        return Some(format!("n{node} holds {:?} at {tp}@{o}; the committed record is {v:?}", r.value));
                    }
                }
            }
        }
        None
    }

    /// Copies `log`'s records in `[model hw, hw)` into the model.
    fn extend(&mut self, node: u32, tp: &TopicPartition, hw: Offset, log: &PartitionLog, h: &History) {
        let model = self.parts.entry(tp.clone()).or_default();
        let from = model.hw();
        if hw <= from {
            return;
        }
        let mut bad = None;
        let mut adversarial = None;
        let mut producer_bad: Option<(&'static str, String)> = None;
        let mut failed = None;
        let mut next = from;
        'batches: for b in log.batches_from(from) {
            for (o, r) in b.iter_with_offsets() {
                if o < next {
                    continue;
                }
                if o >= hw {
                    break 'batches;
                }
                while next < o {
                    model.committed.push(None); // removed by retention before we looked
                    next = next.next();
                }
                if b.kind == BatchKind::Control {
                    // A group cursor record: committed like data, but no producer's.
                    if let Some(Ok(cursor)) = cursor_of_batch(b) {
                        let seeks = model.cursor_seeks.entry(cursor.group.clone()).or_insert(0);
                        if cursor.seeks > *seeks {
                            *seeks = cursor.seeks;
                            self.committed_seeks.push((tp.clone(), cursor.group.clone(), cursor.acks.prefix(), o));
                        }
                        model.cursors.insert(cursor.group, cursor.acks);
                    }
                    model.committed.push(None);
                    model.control += 1;
                    next = next.next();
                    continue;
                }
                match h.origin(&r.value) {
                    None if is_adversarial(&r.value) => {
                        adversarial.get_or_insert(format!(
                            "{tp}@{o} on n{node} is committed with {:?}, written by an adversarial client",
                            r.value
                        ));
                    }
                    None => {
                        bad.get_or_insert(format!("{tp}@{o} on n{node} holds {:?}, which no producer sent", r.value));
                    }
                    Some((op, _)) if matches!(op.outcome, Outcome::Failed { .. }) => {
                        failed.get_or_insert(format!(
                            "{tp}@{o} on n{node} is committed with {:?} of op {}, which failed definitely",
                            r.value, op.id
                        ));
                    }
                    // Only the producer's own stamped batches: a dead-letter copy of
                    // an idempotent record is appended unstamped by a broker.
                    Some((op, i)) if op.idempotent && b.producer.is_some() => {
                        if let Some(what) = model.idempotent_record(op.client, op.id, i, o) {
                            producer_bad.get_or_insert(what);
                        }
                    }
                    // Dead-letter copies live in another partition.
                    Some((op, i)) if !op.idempotent && op.tp == *tp => {
                        if let Some(what) = model.non_idempotent_record(op, i, o) {
                            producer_bad.get_or_insert(("duplicates_bounded", what));
                        }
                    }
                    Some(_) => {}
                }
                model.committed.push(Some(r.value.clone()));
                next = next.next();
            }
        }
        if next < hw {
            let what = format!("n{node} reports HW {hw} for {tp} but its log ends at {next}");
            self.fail("committed_stable", what);
        }
        if let Some(what) = adversarial {
            self.fail("auth_not_bypassed", what);
        }
        if let Some(what) = bad {
            self.fail("no_unexpected_values", what);
        }
        if let Some(what) = failed {
            self.fail("definite_failure_not_committed", what);
        }
        if let Some((invariant, what)) = producer_bad {
            self.fail(invariant, format!("{tp}: {what}"));
        }
    }

    /// A consumer read `value` at `offset` of `tp`.
    pub fn on_read(&mut self, client: u64, tp: &TopicPartition, offset: Offset, value: &Bytes, h: &History) {
        self.records_read += 1;
        if is_adversarial(value) {
            // The most specific diagnosis first (above the HW or not).
            return self.check_origin(client, tp, offset, value, h);
        }
        if self.lossy.contains(tp) {
            return self.check_origin(client, tp, offset, value, h);
        }
        let model = self.parts.entry(tp.clone()).or_default();
        let hw = model.hw();
        let Some(slot) = model.committed.get(offset.0 as usize) else {
            self.fail("read_committed", format!("c{client} read {tp}@{offset} = {value:?} above the HW {hw}"));
            return;
        };
        if let Some(v) = slot {
            if v != value {
                let what = format!("c{client} read {tp}@{offset} = {value:?} but the committed record is {v:?}");
                self.fail("one_value_per_offset", what);
            }
        }
        self.check_origin(client, tp, offset, value, h);
        self.check_position(client, tp, offset);
    }

    /// `consumer_positions` for a read of `tp@offset` by plain consumer `client`
    /// (docs/invariants.md): a consumer's position only moves forward, so it
    /// never reads an offset again nor one below where it stood, and between two
    /// reads it passes only offsets that hold no committed data record (group
    /// cursor records, which plain fetches skip, and records retention removed
    /// before the checker saw them commit). A consumer starts at offset 0.
    fn check_position(&mut self, client: u64, tp: &TopicPartition, offset: Offset) {
        let key = (client, tp.clone());
        let expected = self.positions.get(&key).copied().unwrap_or(Offset(0));
        self.positions.insert(key, offset.next().max(expected));
        if self.lossy.contains(tp) {
            return;
        }
        if offset < expected {
            let what = format!("c{client} read {tp}@{offset} after its position had reached {expected}");
            return self.fail("consumer_positions", what);
        }
        if let Some((o, v)) = self.first_record_in(tp, expected, offset) {
            let what = format!(
                "c{client} read {tp}@{offset} right after its position was {expected}, passing the committed record {o} = {v:?}"
            );
            self.fail("consumer_positions", what);
        }
    }

    /// Plain consumer `client` moved its position on `tp` from `from` to `to`
    /// without reading, because its offset was below the leader's log start.
    /// Legal only over records retention removed: `to` may not pass the highest
    /// log start any replica reached (`live` is the highest among the live
    /// nodes now; `consumer_positions`).
    pub fn on_consumer_skip(&mut self, client: u64, tp: &TopicPartition, from: Offset, to: Offset, live: Offset) {
        let key = (client, tp.clone());
        let expected = self.positions.get(&key).copied().unwrap_or(Offset(0));
        self.positions.insert(key, to.max(expected));
        let floor = self.log_start_floor(tp).max(live);
        if self.lossy.contains(tp) || to <= floor {
            return;
        }
        if let Some((o, v)) = self.first_record_in(tp, from.max(floor), to) {
            let what = format!(
                "c{client} skipped {tp} from {from} to {to}, past the committed record {o} = {v:?}; no replica's log starts above {floor}"
            );
            self.fail("consumer_positions", what);
        }
    }

    /// Plain consumer `client` of `tp` found its position `from` past the log's
    /// end and moved back to `to`: only an unclean election may shorten a log.
    pub fn on_consumer_truncated(&mut self, client: u64, tp: &TopicPartition, from: Offset, to: Offset) {
        self.positions.insert((client, tp.clone()), to);
        if !self.lossy.contains(tp) {
            let what = format!(
                "c{client} found {tp} shorter than its position {from} and moved back to {to}; no unclean election truncated it"
            );
            self.fail("consumer_positions", what);
        }
    }

    /// The first committed data record of `tp` the checker holds in `[from, to)`.
    pub fn first_record_in(&self, tp: &TopicPartition, from: Offset, to: Offset) -> Option<(Offset, &Bytes)> {
        let slots = self.parts.get(tp).map(|p| p.committed.as_slice()).unwrap_or_default();
        let to = usize::try_from(to.0).unwrap_or(usize::MAX).min(slots.len());
        let from = usize::try_from(from.0).unwrap_or(usize::MAX).min(to);
        slots[from..to].iter().enumerate().find_map(|(i, v)| v.as_ref().map(|v| (Offset((from + i) as u64), v)))
    }

    /// A replica of `tp` moved its log start to `start` (retention).
    pub fn on_log_start(&mut self, tp: &TopicPartition, start: Offset) {
        let seen = self.log_start_seen.entry(tp.clone()).or_insert(Offset(0));
        *seen = (*seen).max(start);
    }

    /// The highest log start any replica of `tp` reported.
    pub fn log_start_floor(&self, tp: &TopicPartition) -> Offset {
        self.log_start_seen.get(tp).copied().unwrap_or(Offset(0))
    }

    fn check_origin(&mut self, client: u64, tp: &TopicPartition, offset: Offset, value: &Bytes, h: &History) {
        match h.origin(value) {
            None if is_adversarial(value) => self.fail(
                "auth_not_bypassed",
                format!("c{client} read {value:?} at {tp}@{offset}, written by an adversarial client"),
            ),
            None => self.fail(
                "no_unexpected_values",
                format!("c{client} read {value:?} at {tp}@{offset}; no producer sent it"),
            ),
            Some((op, _)) if matches!(op.outcome, Outcome::Failed { .. }) => {
                let what =
                    format!("c{client} read {value:?} at {tp}@{offset}, from op {} which failed definitely", op.id);
                self.fail("no_read_of_failed_write", what);
            }
            Some(_) => {}
        }
    }

    /// A producer's op was acknowledged; checks it against the committed prefix if
    /// the prefix reaches it already (otherwise `finish` does).
    pub fn on_ack(&mut self, op: u64, h: &History) {
        let op = &h.ops[op as usize];
        if op.acks != Acks::None {
            self.records_acked += op.values.len() as u64;
        }
        if op.acks == Acks::All {
            self.records_acked_all += op.values.len() as u64;
            if self.appended_below_min_isr.contains(&op.values[0]) {
                let what = format!(
                    "op {} (acks=all) was acked at {} although the leader appended it with an ISR below min ISR {}",
                    op.id, op.tp, self.min_insync
                );
                return self.fail("min_isr_respected", what);
            }
        }
        // An acks=1 ack promises nothing past a failover: a deposed leader that
        // has not yet learnt of its successor acks appends at offsets the new
        // leader may already have committed to other records (Kafka's acks=1
        // loss). Only where the leader is the whole ISR is it held to its offset.
        if self.ack_promised(op) {
            self.check_acked(op.id, h, false);
        }
    }

    /// Whether an ok outcome of `op` promises its records at their offsets:
    /// acks=all always, acks=1 only where the leader is the whole ISR
    /// (docs/invariants.md, "What a replicated cluster may lose").
    fn ack_promised(&self, op: &ProduceOp) -> bool {
        op.acks == Acks::All || (op.acks == Acks::Leader && self.leader_acks_durable)
    }

    /// A leader appended an acks=all batch (first value `first`) while the ISR it
    /// had applied from committed metadata held `isr` members.
    pub fn on_acks_all_append(&mut self, first: &Bytes, isr: usize) {
        if isr < self.min_insync {
            self.appended_below_min_isr.insert(first.clone());
        }
    }

    /// `node` became the leader of `tp` in `epoch` (an `Event::BecameLeader`).
    pub fn on_became_leader(&mut self, node: NodeId, tp: &TopicPartition, epoch: LeaderEpoch, unclean: bool) {
        if unclean {
            self.on_unclean(tp, format!("n{node} reported an unclean election of {tp} in epoch {epoch}"));
        }
        self.one_leader(node, tp, epoch, "became-leader event");
    }

    fn one_leader(&mut self, node: NodeId, tp: &TopicPartition, epoch: LeaderEpoch, source: &'static str) {
        match self.epoch_leaders.get(&(tp.clone(), epoch)) {
            Some((other, how)) if *other != node => {
                let what = format!("{tp} epoch {epoch} has leader n{other} ({how}) and n{node} ({source})");
                self.fail("one_leader_per_epoch", what);
            }
            Some(_) => {}
            None => {
                self.epoch_leaders.insert((tp.clone(), epoch), (node, source));
            }
        }
    }

    fn on_unclean(&mut self, tp: &TopicPartition, what: String) {
        if !self.unclean_allowed {
            return self.fail("election_from_isr", what);
        }
        if self.lossy.insert(tp.clone()) {
            self.unclean_elections += 1;
        }
    }

    /// `node` became the Raft leader of `term` (an `Event::ControllerLeader`).
    pub fn on_controller_leader(&mut self, node: NodeId, term: Term) {
        match self.term_leaders.get(&term) {
            Some(other) if *other != node => {
                let what = format!("term {term} has Raft leaders n{other} and n{node}");
                self.fail("one_leader_per_term", what);
            }
            Some(_) => {}
            None => {
                self.term_leaders.insert(term, node);
            }
        }
    }

    /// Compares the committed metadata log of `node` with the committed entries
    /// seen so far (they must never change) and learns new ones. Cheap when
    /// nothing new committed: call after every input.
    pub fn on_metadata(&mut self, node: NodeId, raft: &Raft) {
        let committed = raft.committed_after(0);
        let checked = self.meta_checked.get(&node).copied().unwrap_or(0).min(committed.len());
        if checked == committed.len() {
            self.meta_checked.insert(node, checked);
            return;
        }
        for e in &committed[checked..] {
            let i = e.index as usize - 1;
            match self.meta.get(i) {
                Some(known) if known != e => {
                    let what = format!(
                        "n{node} holds committed metadata entry {} = {:?} (term {}); it was {:?} (term {})",
                        e.index, e.record, e.term, known.record, known.term
                    );
                    return self.fail("metadata_committed_stable", what);
                }
                Some(_) => {}
                None => {
                    debug_assert_eq!(i, self.meta.len(), "committed entries arrive in order");
                    self.meta.push(e.clone());
                    self.apply_metadata(e);
                }
            }
        }
        self.meta_checked.insert(node, committed.len());
    }

    /// `node` committed metadata up to `commit`. Raft's election restriction must
    /// protect it: no voter whose durable log lacks `commit` may be able to collect
    /// votes from a quorum, each voter granting when the candidate's durable log is
    /// at least as up to date as its own (last term, then last index). In correct
    /// Raft a quorum holds an entry of the committing leader's term at or above
    /// `commit`, and every log lacking `commit` is behind all of theirs (Raft §5.4,
    /// figure 8). `voters` are the voters' durable logs; unlike
    /// `metadata_committed_stable` this needs no crash and no second election
    /// to show that a committed entry can be overwritten.
    pub fn on_commit_protected(&mut self, node: NodeId, commit: &Entry, voters: &[(NodeId, &[Entry])]) {
        let quorum = voters.len() / 2 + 1;
        let last = |log: &[Entry]| log.last().map_or((0, 0), |e| (e.term.0, e.index));
        for (v, log) in voters {
            if log.get(commit.index as usize - 1).is_some_and(|e| e == commit) {
                continue;
            }
            let mine = last(log);
            let grant: Vec<NodeId> = voters.iter().filter(|(_, other)| last(other) <= mine).map(|(u, _)| *u).collect();
            if grant.len() >= quorum {
                let what = format!(
                    "n{node} committed metadata entry {} (term {}); n{v} lacks it on disk and could win an election with votes from {grant:?} (its last entry: term {}, index {})",
                    commit.index, commit.term, mine.0, mine.1
                );
                return self.fail("metadata_commit_protected", what);
            }
        }
    }

    /// Elections in the committed metadata: a partition's new leader must come from
    /// the ISR of its previous committed state, unless unclean election is allowed.
    fn apply_metadata(&mut self, e: &Entry) {
        if let Some(what) = self.auth.as_ref().and_then(|rules| adversarial_metadata(rules, &e.record)) {
            self.fail("auth_not_bypassed", format!("committed metadata entry {}: {what}", e.index));
        }
        if let Some(what) = self.control.on_record(e.index, &e.record) {
            self.fail("fenced_not_live", what);
        }
        match &e.record {
            MetadataRecord::CreateTopic { config, assignment } => {
                for (i, replicas) in assignment.iter().enumerate() {
                    let tp = TopicPartition { topic: config.name.clone(), partition: PartitionId(i as u32) };
                    self.part_state.insert(tp, PartState { replicas: replicas.clone(), ..PartState::default() });
                }
            }
            MetadataRecord::DeleteTopic { topic } => self.part_state.retain(|tp, _| tp.topic != *topic),
            MetadataRecord::RegisterBroker { broker, .. } | MetadataRecord::FenceBroker { broker, .. } => {
                self.unfenced.remove(broker);
            }
            MetadataRecord::UnfenceBroker { broker, .. } => {
                self.unfenced.insert(*broker);
            }
            MetadataRecord::PartitionChange { tp, leader, leader_epoch, isr, .. } => {
                let prev = self.part_state.get(tp).cloned().unwrap_or_default();
                if let Some(l) = leader {
                    let new_leader = prev.leader != Some(*l);
                    if new_leader && !prev.isr.is_empty() && !prev.isr.contains(l) {
                        let what = format!(
                            "metadata entry {} elects n{l} for {tp} in epoch {leader_epoch}; the ISR was {:?}",
                            e.index, prev.isr
                        );
                        self.on_unclean(tp, what);
                    }
                    self.one_leader(*l, tp, *leader_epoch, "committed metadata");
                }
                for r in prev.isr.iter().chain(isr) {
                    // In the ISR until this change at least.
                    self.in_isr_at.insert((tp.clone(), *r), self.now);
                }
                let replicas = prev.replicas;
                self.part_state.insert(tp.clone(), PartState { leader: *leader, isr: isr.clone(), replicas });
            }
            _ => {}
        }
    }

    /// Client `client` follows `leader` (if any) for `tp`, as metadata of leader
    /// epoch `epoch` told it: the epoch never goes back, and a leader it follows
    /// is the one the committed metadata names for that epoch
    /// (`client_metadata_monotonic`).
    pub fn on_client_leader(&mut self, client: u64, tp: &TopicPartition, leader: Option<NodeId>, epoch: LeaderEpoch) {
        if let Some(what) = self.control.on_client_view(client, tp, epoch) {
            return self.fail("client_metadata_monotonic", what);
        }
        let Some(leader) = leader else { return };
        if let Some((other, how)) = self.epoch_leaders.get(&(tp.clone(), epoch)) {
            if *other != leader {
                let what = format!(
                    "c{client} follows n{leader} for {tp} in leader epoch {epoch}; its leader is n{other} ({how})"
                );
                self.fail("client_metadata_monotonic", what);
            }
        }
    }

    /// A hostile request of an adversarial client was answered OK.
    pub fn on_attack_accepted(&mut self, client: u64, attack: u64, what: &str, answer: &str) {
        self.fail("auth_refused", format!("c{client}'s hostile request #{attack} ({what}) was answered OK: {answer}"));
    }

    /// Node `node` appended `value`, written by an adversarial client, to its log
    /// of `tp` (committed or not, an unauthorized write took effect).
    pub fn on_adversarial_append(&mut self, node: NodeId, tp: &TopicPartition, value: &Bytes) {
        self.fail("auth_not_bypassed", format!("n{node} appended {value:?} of an adversarial client to {tp}"));
    }

    /// A node restarted: compare its whole committed metadata log again.
    pub fn on_restart_metadata(&mut self, node: NodeId, raft: &Raft) {
        self.meta_checked.insert(node, 0);
        self.on_metadata(node, raft);
    }

    /// The leader of `tp` in the committed metadata.
    pub fn committed_leader(&self, tp: &TopicPartition) -> Option<NodeId> {
        self.part_state.get(tp)?.leader
    }

    /// Partitions `node` leads in the committed metadata whose ISR holds another
    /// live (registered, unfenced) broker: a controlled shutdown of `node` must
    /// hand them over.
    pub fn led_by(&self, node: NodeId) -> Vec<TopicPartition> {
        self.part_state
            .iter()
            .filter(|(_, p)| p.leader == Some(node) && p.isr.iter().any(|r| *r != node && self.unfenced.contains(r)))
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// The simulated time now: metadata learnt from here on is dated with it.
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// Partitions with a leader in the committed metadata whose committed ISR
    /// lacks a replica that is live (registered and unfenced) there and was not
    /// in it at any time since `since`, with those replicas: under-replicated,
    /// as Kafka's metric counts them, and not merely flapping (a drawn replica
    /// lag time of 20 ms takes a follower out and back in all the time).
    pub fn under_replicated(&self, since: Instant) -> Vec<(TopicPartition, Vec<NodeId>)> {
        self.part_state
            .iter()
            .filter(|(_, p)| p.leader.is_some())
            .filter_map(|(tp, p)| {
                let out: Vec<NodeId> = p
                    .replicas
                    .iter()
                    .copied()
                    .filter(|r| self.unfenced.contains(r) && !p.isr.contains(r))
                    .filter(|r| self.in_isr_at.get(&(tp.clone(), *r)).is_none_or(|at| *at < since))
                    .collect();
                (!out.is_empty()).then(|| (tp.clone(), out))
            })
            .collect()
    }

    /// Partitions without a leader in the committed metadata although an ISR
    /// member is live (registered and unfenced) there.
    pub fn leaderless(&self) -> Vec<TopicPartition> {
        self.part_state
            .iter()
            .filter(|(_, p)| p.leader.is_none() && p.isr.iter().any(|r| self.unfenced.contains(r)))
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    fn check_acked(&mut self, op: u64, h: &History, must_be_committed: bool) {
        let op = &h.ops[op as usize];
        let Outcome::Ok { base_offset, .. } = op.outcome else { return };
        if self.lossy.contains(&op.tp) {
            if must_be_committed {
                self.records_exempt_unclean += op.values.len() as u64;
            }
            return;
        }
        let committed = self.parts.get(&op.tp).map_or(&[][..], |m| &m.committed[..]);
        for (i, v) in op.values.iter().enumerate() {
            let o = base_offset.plus(i as u64);
            match committed.get(o.0 as usize) {
                Some(Some(c)) if c != v => {
                    let what =
                        format!("op {} was acked with {v:?} at {}@{o} but the committed record is {c:?}", op.id, op.tp);
                    return self.fail("acked_at_offset", what);
                }
                None if must_be_committed => {
                    let what = format!(
                        "op {} (acks={:?}) was acked at {}@{o} but the HW is {}",
                        op.id,
                        op.acks,
                        op.tp,
                        committed.len()
                    );
                    return self.fail("acked_not_lost", what);
                }
                _ => {}
            }
        }
    }

    /// A node came back from its durable state: the committed records it holds
    /// below its HW must be unchanged.
    pub fn on_recovered(&mut self, node: &Node, _h: &History) {
        self.compare_node(node, "after recovery");
    }

    /// Log matching on a node: whatever it holds below its own HW must be the
    /// committed records. A node may hold no log (not assigned yet after a
    /// restart) or lag behind; neither is a loss, which `acked_not_lost` and the
    /// leaders' checks catch.
    fn compare_node(&mut self, node: &Node, when: &str) {
        let id = node.id().0;
        let mut found = None;
        for tp in self.parts.keys() {
            if self.lossy.contains(tp) {
                continue;
            }
            let Some(log) = node.log(tp) else { continue };
            let to = log.high_watermark().min(self.parts[tp].hw());
            if let Some(what) = self.mismatch(id, tp, log, log.log_start(), to) {
                found = Some(format!("{what} ({when})"));
                break;
            }
        }
        if let Some(what) = found {
            self.fail("log_matching", what);
        }
    }

    /// End of run: every acknowledged record is committed at its offset and still on
    /// the node (unless retention removed it), no committed record belongs to a
    /// definitely failed op, and the run committed something.
    pub fn finish(&mut self, nodes: &[&Node], h: &History) {
        for node in nodes {
            self.compare_node(node, "at the end");
        }
        for op in &h.ops {
            if self.ack_promised(op) && matches!(op.outcome, Outcome::Ok { .. }) {
                self.check_acked(op.id, h, true);
            }
        }
        let mut failed_committed = None;
        for (tp, model) in &self.parts {
            if self.lossy.contains(tp) {
                continue;
            }
            for (o, v) in model.committed.iter().enumerate() {
                let Some(v) = v else { continue };
                if let Some((op, _)) = h.origin(v) {
                    if matches!(op.outcome, Outcome::Failed { .. }) {
                        failed_committed =
                            Some(format!("{tp}@{o} holds {v:?} of op {}, which failed definitely", op.id));
                    }
                }
            }
        }
        if let Some(what) = failed_committed {
            self.fail("definite_failure_not_committed", what);
        }
        if let Some(what) = self.control.missing_admin_effect(self.meta.iter().map(|e| &e.record)) {
            self.fail("client_metadata_monotonic", format!("{what}, but the committed metadata lacks it at the end"));
        }
        if self.committed() == 0 {
            self.fail("vacuous", "no record was committed: the run tested nothing".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mq_core::wire::{Record, RecordBatch};
    use mq_core::{Instant, LeaderEpoch};

    fn setup() -> (Checker, History, PartitionLog, TopicPartition) {
        let c = Checker::single_node();
        let tp = TopicPartition::new("t", 0);
        let mut h = History::default();
        let op = h.invoke(1, tp.clone(), Acks::All, 2, Instant::ZERO);
        let mut log = PartitionLog::new(tp.clone());
        let records = h.ops[op as usize].values.iter().cloned().map(Record::from_value).collect();
        log.append(RecordBatch::new(records), LeaderEpoch(0), 0);
        log.mark_persisted(Offset(2));
        (c, h, log, tp)
    }

    #[test]
    fn a_run_that_commits_nothing_is_vacuous() {
        let mut c = Checker::default();
        c.finish(&[], &History::default());
        assert_eq!(c.violation().map(|v| v.invariant), Some("vacuous"));
    }

    #[test]
    fn a_read_above_the_high_watermark_is_caught() {
        let (mut c, h, mut log, tp) = setup();
        log.advance_high_watermark(Offset(1));
        c.on_high_watermark(1, &tp, LeaderEpoch(1), Offset(1), &log, &h);
        c.on_read(9, &tp, Offset(0), &h.ops[0].values[0], &h);
        assert!(c.violation().is_none());
        c.on_read(9, &tp, Offset(1), &h.ops[0].values[1], &h);
        assert_eq!(c.violation().map(|v| v.invariant), Some("read_committed"));
    }

    #[test]
    fn an_acks_1_ack_at_an_offset_committed_to_another_record_fails_only_where_the_leader_is_the_whole_isr() {
        // Offsets 0..2 are committed with op 0's records; op 1 (acks=1) is then
        // acked at offset 0 by a deposed leader.
        let run = |mut c: Checker| {
            let (_, mut h, mut log, tp) = setup();
            log.advance_high_watermark(Offset(2));
            c.on_high_watermark(1, &tp, LeaderEpoch(1), Offset(2), &log, &h);
            let late = h.invoke(2, tp.clone(), Acks::Leader, 1, Instant::ZERO);
            h.ops[late as usize].outcome = Outcome::Ok { at: Instant::ZERO, base_offset: Offset(0) };
            c.on_ack(late, &h);
            c.violation().map(|v| v.invariant)
        };
        let replicated = CheckerSettings {
            cluster_size: 3,
            replication_factor: 3,
            min_insync_replicas: 2,
            unclean_leader_election: false,
        };
        assert_eq!(run(Checker::new(&replicated)), None, "acks=1 may be lost to a failover");
        assert_eq!(run(Checker::single_node()), Some("acked_at_offset"));
    }

    #[test]
    fn an_acked_record_missing_at_the_end_is_lost() {
        let (mut c, mut h, _log, _tp) = setup();
        h.ops[0].outcome = Outcome::Ok { at: Instant::ZERO, base_offset: Offset(0) };
        c.on_ack(0, &h);
        c.finish(&[], &h);
        assert_eq!(c.violation().map(|v| v.invariant), Some("acked_not_lost"));
    }

    #[test]
    fn values_no_producer_sent_and_backward_high_watermarks_are_caught() {
        let (mut c, h, mut log, tp) = setup();
        log.advance_high_watermark(Offset(2));
        c.on_high_watermark(1, &tp, LeaderEpoch(1), Offset(2), &log, &h);
        c.on_read(9, &tp, Offset(0), &bytes::Bytes::from("forged"), &h);
        assert_eq!(c.violation().map(|v| v.invariant), Some("one_value_per_offset"));
        let mut c2 = Checker::default();
        c2.on_high_watermark(1, &tp, LeaderEpoch(1), Offset(2), &log, &h);
        c2.on_high_watermark(1, &tp, LeaderEpoch(1), Offset(1), &log, &h);
        assert_eq!(c2.violation().map(|v| v.invariant), Some("hw_monotonic"));
        // A new leader may start lower, but must hold the committed records.
        let mut c3 = Checker::default();
        c3.on_high_watermark(1, &tp, LeaderEpoch(1), Offset(2), &log, &h);
        c3.on_high_watermark(2, &tp, LeaderEpoch(2), Offset(1), &log, &h);
        assert!(c3.violation().is_none());
        let mut other = PartitionLog::new(tp.clone());
        other.append(RecordBatch::new(vec![Record::from_value(h.ops[0].values[1].clone())]), LeaderEpoch(2), 0);
        other.mark_persisted(Offset(1));
        other.advance_high_watermark(Offset(1));
        c3.on_high_watermark(3, &tp, LeaderEpoch(3), Offset(1), &other, &h);
        assert_eq!(c3.violation().map(|v| v.invariant), Some("log_matching"));
    }
}

#[cfg(test)]
mod client_view_tests {
    use super::*;
    use mq_core::wire::{Record, RecordBatch};
    use mq_core::Instant;

    /// Four committed records of one op at t/0, offsets 0..4.
    fn committed(acks: Acks) -> (Checker, History, TopicPartition) {
        let mut c = Checker::single_node();
        let tp = TopicPartition::new("t", 0);
        let mut h = History::default();
        let op = h.invoke(1, tp.clone(), acks, 4, Instant::ZERO);
        h.on_produce_request(&h.ops[op as usize].values.clone());
        let mut log = PartitionLog::new(tp.clone());
        let records = h.ops[op as usize].values.iter().cloned().map(Record::from_value).collect();
        log.append(RecordBatch::new(records), LeaderEpoch(0), 0);
        log.mark_persisted(Offset(4));
        log.advance_high_watermark(Offset(4));
        c.on_high_watermark(1, &tp, LeaderEpoch(1), Offset(4), &log, &h);
        assert!(c.violation().is_none(), "{:?}", c.violation());
        (c, h, tp)
    }

    fn read(c: &mut Checker, h: &History, tp: &TopicPartition, o: u64) {
        c.on_read(9, tp, Offset(o), &h.ops[0].values[o as usize], h);
    }

    #[test]
    fn a_consumer_reading_in_order_passes() {
        let (mut c, h, tp) = committed(Acks::Leader);
        (0..4).for_each(|o| read(&mut c, &h, &tp, o));
        assert!(c.violation().is_none(), "{:?}", c.violation());
    }

    #[test]
    fn a_consumer_that_goes_back_fails_consumer_positions() {
        let (mut c, h, tp) = committed(Acks::Leader);
        (0..3).for_each(|o| read(&mut c, &h, &tp, o));
        read(&mut c, &h, &tp, 1);
        assert_eq!(c.violation().map(|v| v.invariant), Some("consumer_positions"));
    }

    #[test]
    fn a_consumer_that_passes_a_committed_record_fails_consumer_positions() {
        let (mut c, h, tp) = committed(Acks::Leader);
        read(&mut c, &h, &tp, 0);
        read(&mut c, &h, &tp, 2);
        assert_eq!(c.violation().map(|v| v.invariant), Some("consumer_positions"));
    }

    #[test]
    fn a_skip_is_legal_only_up_to_a_log_start_a_replica_reached() {
        let (mut c, h, tp) = committed(Acks::Leader);
        c.on_log_start(&tp, Offset(2));
        c.on_consumer_skip(9, &tp, Offset(0), Offset(2), Offset(0));
        read(&mut c, &h, &tp, 2);
        assert!(c.violation().is_none(), "{:?}", c.violation());
        c.on_consumer_skip(9, &tp, Offset(3), Offset(4), Offset(2));
        assert_eq!(c.violation().map(|v| v.invariant), Some("consumer_positions"));
    }

    #[test]
    fn a_record_committed_twice_from_one_request_fails_duplicates_bounded() {
        let (mut c, mut h, tp) = committed(Acks::Leader);
        // The same op's first record again at offset 4: one request carried it.
        let mut log = PartitionLog::new(tp.clone());
        let mut records: Vec<Record> = h.ops[0].values.iter().cloned().map(Record::from_value).collect();
        records.push(Record::from_value(h.ops[0].values[0].clone()));
        log.append(RecordBatch::new(records), LeaderEpoch(0), 0);
        log.mark_persisted(Offset(5));
        log.advance_high_watermark(Offset(5));
        // A retry (a second request) would allow it.
        h.on_produce_request(&h.ops[0].values.clone());
        let mut allowed = Checker::single_node();
        allowed.on_high_watermark(1, &tp, LeaderEpoch(1), Offset(5), &log, &h);
        assert!(allowed.violation().is_none(), "{:?}", allowed.violation());
        assert_eq!(allowed.duplicates_non_idempotent(), 1);
        h.ops[0].requests = 1;
        c.on_high_watermark(1, &tp, LeaderEpoch(1), Offset(5), &log, &h);
        assert_eq!(c.violation().map(|v| v.invariant), Some("duplicates_bounded"));
    }

    #[test]
    fn a_definitely_failed_op_that_commits_fails_definite_failure_not_committed() {
        let (mut c, mut h, _) = committed(Acks::All);
        h.ops[0].outcome = Outcome::Failed { at: Instant::ZERO, code: mq_core::wire::ErrorCode::NotLeader };
        c.finish(&[], &h);
        assert_eq!(c.violation().map(|v| v.invariant), Some("definite_failure_not_committed"));
    }
}

#[cfg(test)]
mod commit_protected_tests {
    use super::*;
    use mq_core::controller::metadata::MetadataRecord;
    use mq_core::controller::raft::Entry;
    use mq_core::Term;

    #[test]
    fn metadata_no_honest_client_asked_for_fails_auth_not_bypassed() {
        use mq_core::security::acl::{Operation, Resource};
        let honest =
            Grant { principal: "p".into(), operation: Operation::Produce, resource: Resource::Topic("t0".into()) };
        let rules = AuthRules { principals: ["p".to_string()].into(), grants: [honest.clone()].into() };
        let entry = |index, record| Entry { term: Term(1), index, record };
        let mut c = Checker { auth: Some(rules.clone()), ..Checker::default() };
        c.apply_metadata(&entry(1, MetadataRecord::PutAcl(honest.clone())));
        let topic = mq_core::wire::TopicConfig::new("t0", 1);
        c.apply_metadata(&entry(2, MetadataRecord::CreateTopic { config: topic, assignment: vec![vec![NodeId(1)]] }));
        assert!(c.violation().is_none(), "what the admin creates passes: {:?}", c.violation());
        let stolen = Grant { principal: "x.intruder".into(), ..honest.clone() };
        for record in [
            MetadataRecord::PutAcl(stolen),
            MetadataRecord::DeleteAcl(honest),
            MetadataRecord::DeleteTopic { topic: "t0".into() },
            MetadataRecord::CreateTopic {
                config: mq_core::wire::TopicConfig::new("x.t1", 1),
                assignment: vec![vec![NodeId(1)]],
            },
        ] {
            let mut c = Checker { auth: Some(rules.clone()), ..Checker::default() };
            c.apply_metadata(&entry(3, record.clone()));
            assert_eq!(c.violation().map(|v| v.invariant), Some("auth_not_bypassed"), "{record:?}");
        }
    }

    fn lc(term: u64, index: u64, leader: u32) -> Entry {
        Entry { term: Term(term), index, record: MetadataRecord::LeaderChange { leader: NodeId(leader) } }
    }

    /// Raft figure 8 on three voters: n1 (term 4) counted n2's copy of its term-2
    /// entry at index 1 as committed while its own term-4 entry was not yet
    /// durable; n3 holds a term-3 entry at index 1 and wins with n1's vote.
    #[test]
    fn a_previous_term_entry_committed_by_counting_is_flagged() {
        let mut c = Checker::single_node();
        let (n1, n2, n3) = (vec![lc(2, 1, 1)], vec![lc(2, 1, 1), lc(4, 2, 1)], vec![lc(3, 1, 3)]);
        let voters = [(NodeId(1), &n1[..]), (NodeId(2), &n2[..]), (NodeId(3), &n3[..])];
        c.on_commit_protected(NodeId(1), &lc(2, 1, 1), &voters);
        let v = c.violation().expect("figure 8 must be flagged");
        assert_eq!(v.invariant, "metadata_commit_protected");
        assert!(v.what.contains("n3 lacks it"), "{}", v.what);
    }

    /// The same logs once n1's own term-4 entry is durable: committing index 2
    /// (term 4) is protected, since n3's log is behind n1's and n2's.
    #[test]
    fn an_own_term_commit_on_a_quorum_passes() {
        let mut c = Checker::single_node();
        let (n1, n2, n3) = (vec![lc(2, 1, 1), lc(4, 2, 1)], vec![lc(2, 1, 1), lc(4, 2, 1)], vec![lc(3, 1, 3)]);
        let voters = [(NodeId(1), &n1[..]), (NodeId(2), &n2[..]), (NodeId(3), &n3[..])];
        c.on_commit_protected(NodeId(1), &lc(4, 2, 1), &voters);
        c.on_commit_protected(NodeId(1), &lc(2, 1, 1), &voters);
        assert!(c.violation().is_none(), "{:?}", c.violation());
    }
}
