//! The disk model of one node. Writes become durable only when their Persist
//! completes: until then they sit in `pending`, in token order. A crash drops every
//! pending write; with the seed's probability it first applies some whole writes of
//! the oldest pending Persist (the one the disk was working on) and tears the next
//! append, leaving a prefix of its stored bytes that recovery must detect by CRC.
//! Fsync latency has a minimum, an exponential part and rare slow outliers;
//! completions never overtake each other.

use crate::network::exp_sample;
use crate::options::Options;
use mq_core::storage::{DurableState, Write};
use mq_core::wire::codec::encode_stored_batch;
use mq_core::{Duration, Instant, PersistToken, Rng};
use rand::Rng as _;
use std::collections::VecDeque;

/// What a crash did to the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashDamage {
    /// Persists dropped (not reported durable).
    pub dropped_persists: usize,
    /// Whole writes of the oldest pending Persist that reached the disk anyway.
    pub partial_writes: usize,
    /// Bytes of a torn append left at a log's end.
    pub torn_bytes: usize,
}

/// One node's disk.
pub struct Disk {
    /// What survives a crash.
    pub durable: DurableState,
    pending: VecDeque<(PersistToken, Vec<Write>)>,
    last_completion: Instant,
    fsync_min: Duration,
    fsync_mean_ns: f64,
    slow_prob: f64,
    slow_max_ns: u64,
    torn_prob: f64,
    /// Persists submitted before this time take `stall` longer (a scripted slow
    /// disk; see `Sim::figure8_step`).
    pub stall_until: Instant,
    /// The extra latency of a stalled Persist.
    pub stall: Duration,
    /// No Persist completes before this (`Fault::DiskStall`: the device stops
    /// answering; writes already submitted wait too). A crash ends it.
    pub hold_until: Instant,
}

impl Disk {
    /// An empty disk with the run's latencies.
    pub fn new(o: &Options) -> Self {
        Disk {
            durable: DurableState::default(),
            pending: VecDeque::new(),
            last_completion: Instant::ZERO,
            fsync_min: Duration::from_micros(o.fsync_min_us),
            fsync_mean_ns: o.fsync_mean_us as f64 * 1_000.0,
            slow_prob: o.fsync_slow_prob,
            slow_max_ns: o.fsync_slow_max_ms * 1_000_000,
            torn_prob: o.torn_prob,
            stall_until: Instant::ZERO,
            stall: Duration::ZERO,
            hold_until: Instant::ZERO,
        }
    }

    /// Queues a Persist; returns when it completes and whether it was slow.
    pub fn submit(&mut self, now: Instant, token: PersistToken, writes: Vec<Write>, rng: &mut Rng) -> (Instant, bool) {
        let mut latency = self.fsync_min.as_nanos() + exp_sample(rng, self.fsync_mean_ns);
        let slow = self.slow_prob > 0.0 && rng.random_bool(self.slow_prob);
        if slow {
            latency += rng.random_range(0..=self.slow_max_ns);
        }
        if now < self.stall_until {
            latency += self.stall.as_nanos();
        }
        let done = (now + Duration::from_nanos(latency)).max(self.last_completion);
        self.last_completion = done;
        self.pending.push_back((token, writes));
        (done, slow)
    }

    /// Makes the oldest pending Persist durable; it must be `token`.
    pub fn complete(&mut self, token: PersistToken) {
        let Some((t, writes)) = self.pending.pop_front() else {
            panic!("disk: completion of {token:?} with nothing pending")
        };
        assert_eq!(t, token, "disk: completions out of token order");
        self.durable.apply_all(&writes);
    }

    /// Persists waiting for their fsync.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Drops every pending Persist with nothing of it reaching the disk, as a
    /// crash that tears nothing does (for a script that needs the loss certain;
    /// the crash that follows finds nothing pending). Returns how many.
    pub fn lose_pending(&mut self) -> usize {
        let n = self.pending.len();
        self.pending.clear();
        n
    }

    /// The process died: drop what was not durable, maybe tearing the write in
    /// progress.
    pub fn crash(&mut self, rng: &mut Rng) -> CrashDamage {
        let mut damage = CrashDamage { dropped_persists: self.pending.len(), ..CrashDamage::default() };
        if let Some((_, writes)) = self.pending.front() {
            if rng.random_bool(self.torn_prob) {
                let whole = rng.random_range(0..=writes.len());
                for w in &writes[..whole] {
                    self.durable.apply(w);
                }
                damage.partial_writes = whole;
                if let Some(Write::Append { tp, batches }) = writes.get(whole) {
                    if let Some(first) = batches.first() {
                        let mut bytes = Vec::new();
                        encode_stored_batch(first, &mut bytes);
                        let keep = rng.random_range(1..bytes.len());
                        self.durable.logs.entry(tp.clone()).or_default().append_torn_bytes(&bytes[..keep]);
                        damage.torn_bytes = keep;
                    }
                }
            }
        }
        self.pending.clear();
        self.hold_until = Instant::ZERO;
        damage
    }
}
