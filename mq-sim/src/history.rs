//! The history: every client operation with its invocation and its outcome, and
//! every record a consumer read. The checker reads it; failure reports quote it.
//!
//! Every value a producer sends is unique and names its operation (`v<op>.<i>`), so a
//! value read anywhere leads back to the send that wrote it.

use bytes::Bytes;
use mq_core::wire::{Acks, ErrorCode};
use mq_core::{Instant, Offset, TopicPartition};

/// How a produce operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No outcome yet.
    Pending,
    /// Acknowledged at `base_offset`.
    Ok {
        /// When.
        at: Instant,
        /// Offset of the first record.
        base_offset: Offset,
    },
    /// Definitely not written.
    Failed {
        /// When.
        at: Instant,
        /// The broker's error code.
        code: ErrorCode,
    },
    /// Maybe written (timeout, acks=0, unknown effect).
    Indefinite {
        /// When.
        at: Instant,
    },
}

/// One produce operation.
#[derive(Clone, Debug)]
pub struct ProduceOp {
    /// Index in [`History::ops`].
    pub id: u64,
    /// The producing client.
    pub client: u64,
    /// Where it was sent.
    pub tp: TopicPartition,
    /// Its acks level.
    pub acks: Acks,
    /// Its record values, in order.
    pub values: Vec<Bytes>,
    /// When it was invoked.
    pub invoked: Instant,
    /// How it ended.
    pub outcome: Outcome,
    /// Sent by an idempotent producer with acks=all: deduplicated and ordered.
    pub idempotent: bool,
    /// Produce requests that carried its records (the first attempt and every
    /// retry, as the simulator put them on the wire): no record of the op can be
    /// appended more often (`duplicates_bounded`).
    pub requests: u32,
}

/// One record a consumer read.
#[derive(Clone, Debug)]
pub struct ReadOp {
    /// When.
    pub at: Instant,
    /// The consuming client.
    pub client: u64,
    /// The partition.
    pub tp: TopicPartition,
    /// Its offset.
    pub offset: Offset,
    /// Its value.
    pub value: Bytes,
}

/// How a hostile request of an adversarial client ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttackOutcome {
    /// No answer yet (maybe never: lost, or the broker was down).
    Pending,
    /// Refused with this error code (what must happen).
    Refused(ErrorCode),
    /// Answered OK (a bypass: `auth_refused` fails the seed).
    Accepted,
}

/// One hostile request of an adversarial client (`sim.rs`, `Adversary`).
#[derive(Clone, Debug)]
pub struct Attack {
    /// Index in [`History::attacks`]; adversarial values name it (`x<id>.<i>`).
    pub id: u64,
    /// The adversarial client.
    pub client: u64,
    /// What it tried (`produce-batch`, `wrong-secret`, `replay-proof`, ...).
    pub kind: &'static str,
    /// The request, in one line.
    pub what: String,
    /// When it was sent.
    pub at: Instant,
    /// How it ended.
    pub outcome: AttackOutcome,
}

/// The prefix of every value an adversarial client writes: `x<attack>.<i>`.
pub const ADVERSARY_VALUE_PREFIX: &[u8] = b"x";

/// Whether `value` was written by an adversarial client (it can never take
/// effect: `auth_not_bypassed`).
pub fn is_adversarial(value: &[u8]) -> bool {
    value.starts_with(ADVERSARY_VALUE_PREFIX)
}

/// Every client operation of a run.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Produce operations, by id.
    pub ops: Vec<ProduceOp>,
    /// Records read, in the order they were read.
    pub reads: Vec<ReadOp>,
    /// Hostile requests of the adversarial clients, by id.
    pub attacks: Vec<Attack>,
}

impl History {
    /// Records an invocation; returns the op id.
    pub fn invoke(&mut self, client: u64, tp: TopicPartition, acks: Acks, n: u32, at: Instant) -> u64 {
        let id = self.ops.len() as u64;
        let values = (0..n).map(|i| Bytes::from(format!("v{id}.{i}"))).collect();
        self.ops.push(ProduceOp {
            id,
            client,
            tp,
            acks,
            values,
            invoked: at,
            outcome: Outcome::Pending,
            idempotent: false,
            requests: 0,
        });
        id
    }

    /// Takes back op `id`, the last one invoked, before anything was sent for it
    /// (its producer had no room: the application waits, as Kafka's `send`
    /// blocks while the buffer is full).
    pub fn withdraw(&mut self, id: u64) {
        assert_eq!(id + 1, self.ops.len() as u64, "only the last op invoked can be withdrawn");
        self.ops.pop();
    }

    /// Records a hostile request; returns its id.
    pub fn attack(&mut self, client: u64, kind: &'static str, what: String, at: Instant) -> u64 {
        let id = self.attacks.len() as u64;
        self.attacks.push(Attack { id, client, kind, what, at, outcome: AttackOutcome::Pending });
        id
    }

    /// A producer put a produce request carrying `values` on the wire: each op
    /// with a record among them counts one more request.
    pub fn on_produce_request<'a>(&mut self, values: impl IntoIterator<Item = &'a Bytes>) {
        let mut ops: Vec<usize> =
            values.into_iter().filter_map(|v| self.origin(v).map(|(op, _)| op.id as usize)).collect();
        ops.sort_unstable();
        ops.dedup();
        for op in ops {
            self.ops[op].requests += 1;
        }
    }

    /// The op and record index that sent `value`, if any op did.
    pub fn origin(&self, value: &[u8]) -> Option<(&ProduceOp, usize)> {
        let s = std::str::from_utf8(value).ok()?.strip_prefix('v')?;
        let (op, i) = s.split_once('.')?;
        let (op, i): (usize, usize) = (op.parse().ok()?, i.parse().ok()?);
        let found = self.ops.get(op)?;
        (found.values.get(i)?.as_ref() == value).then_some((found, i))
    }
}
