//! `mq-loadgen`: the peers' half of `bench/compare.sh`.
//!
//! Runs one workload (produce, consume or end to end) against NATS JetStream or Redis
//! Streams through their maintained client crates (`async-nats`, `redis`) and prints one
//! JSON line in the schema `mq bench --json` prints, so the script can put the three
//! side by side. docs/benchmarks.md ("Comparison with NATS JetStream and Redis
//! Streams") describes the workloads and what each option means for each peer.
//!
//! Every payload starts with the send time (microseconds since the Unix epoch, u64
//! little-endian) and a sequence number, so the end-to-end mode measures the time from
//! send to receive with one clock (producer and consumer share the machine).

// The repository's clippy.toml bans reading the clock for mq-core and mq-sim; a load
// generator measures time, like mq-net (which opts out the same way).
#![allow(clippy::disallowed_methods)]

mod nats;
mod redis_streams;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::Barrier;

/// Bytes at the start of each payload: send time (µs) and sequence number.
const HEADER_BYTES: usize = 16;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "mq-loadgen",
    about = "Produce/consume/e2e workloads against NATS JetStream and Redis Streams; prints one JSON line"
)]
pub struct Args {
    /// The peer to load.
    pub peer: Peer,
    /// produce: publish and wait for acks; consume: read what a produce run left
    /// (acking each record); e2e: producers and consumers at once, latency from the send
    /// time carried in the payload.
    pub mode: Mode,
    /// Server address (default nats://127.0.0.1:4222 or redis://127.0.0.1:6379/).
    #[arg(long)]
    pub url: Option<String>,
    /// JetStream stream (and subject) name, or Redis stream key.
    #[arg(long, default_value = "bench")]
    pub name: String,
    /// NATS only: stream replicas (1, or 3 on a three-server cluster).
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// Timed records (warm-up records come on top).
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,
    /// Payload bytes per record (at least 16: send time and sequence number).
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Producer tasks, each with its own connection.
    #[arg(long, default_value_t = 1)]
    pub producers: u64,
    /// Consumer tasks, each with its own connection, sharing one consumer (NATS) or
    /// consumer group (Redis).
    #[arg(long, default_value_t = 1)]
    pub consumers: u64,
    /// Records sent (produce, e2e) or received (consume) before the clock starts; not
    /// in the rates or latencies.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// Per producer: publishes whose acks may be outstanding (NATS: async publish acks
    /// in a sliding window), or XADDs per pipeline (Redis: one pipeline round trip at
    /// a time).
    #[arg(long, default_value_t = 256)]
    pub inflight: usize,
    /// Per consumer: records asked for per pull (NATS pull batch, Redis XREADGROUP COUNT).
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Give up (exit 1) when the run takes longer than this.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    /// The "acks" field of the report (default: "1" for NATS R1 and Redis,
    /// "majority" for NATS R3).
    #[arg(long)]
    pub acks_label: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Nats,
    Redis,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Produce,
    Consume,
    E2e,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Produce => "produce",
            Mode::Consume => "consume",
            Mode::E2e => "e2e",
        }
    }
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A new latency histogram in microseconds: 1 µs to 10 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    // The bounds are constants that satisfy hdrhistogram's rules (low >= 1, high >= 2 * low).
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn now_unix_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(micros).unwrap_or(0)
}

/// A payload of `size` bytes stamped with the current time and `seq`.
pub fn payload(size: usize, seq: u64) -> Bytes {
    let mut buf = vec![b'x'; size.max(HEADER_BYTES)];
    buf[..8].copy_from_slice(&now_unix_micros().to_le_bytes());
    buf[8..16].copy_from_slice(&seq.to_le_bytes());
    Bytes::from(buf)
}

/// Microseconds from the send time stamped in `payload` to now (0 if it has no stamp).
pub fn since_stamp_micros(payload: &[u8]) -> u64 {
    let Some(stamp) = payload.get(..8) else {
        return 0;
    };
    let mut sent = [0u8; 8];
    sent.copy_from_slice(stamp);
    now_unix_micros().saturating_sub(u64::from_le_bytes(sent))
}

/// Splits `total` over `parts` as evenly as possible; part `i`'s share.
pub fn share(total: u64, parts: u64, i: u64) -> u64 {
    total / parts + u64::from(i < total % parts)
}

/// What the consumer side of a run shares between its tasks: how many records arrived,
/// when the warm-up ended, and the latencies of timed records.
pub struct Receipts {
    /// Records to receive in all (warm-up included).
    pub target: u64,
    pub warmup: u64,
    pub received: AtomicU64,
    /// When the first timed record was counted (the clock start for consume and e2e).
    pub timed_start: OnceLock<Instant>,
    pub last: Mutex<Option<Instant>>,
    pub latencies: Mutex<Histogram<u64>>,
}

impl Receipts {
    pub fn new(target: u64, warmup: u64) -> Self {
        Receipts {
            target,
            warmup,
            received: AtomicU64::new(0),
            timed_start: OnceLock::new(),
            last: Mutex::new(None),
            latencies: Mutex::new(histogram()),
        }
    }

    /// Counts one received record; `Some(true)` when it is a timed one, `None` once the
    /// target was reached before it (the record is surplus: another task finished the run).
    pub fn count(&self) -> Option<bool> {
        let index = self.received.fetch_add(1, Ordering::AcqRel);
        if index >= self.target {
            return None;
        }
        if index == self.warmup {
            let _ = self.timed_start.set(Instant::now());
        }
        if index + 1 == self.target {
            *self.last.lock().expect("lock not poisoned") = Some(Instant::now());
        }
        Some(index >= self.warmup)
    }

    pub fn done(&self) -> bool {
        self.received.load(Ordering::Acquire) >= self.target
    }

    pub fn merge(&self, local: &Histogram<u64>) {
        // Both histograms come from `histogram()`, so the bounds match and `add` cannot fail.
        self.latencies.lock().expect("lock not poisoned").add(local).expect("same histogram bounds");
    }
}

/// Measured result of one run, before formatting.
pub struct Outcome {
    pub records: u64,
    pub secs: f64,
    pub latencies: Histogram<u64>,
}

/// A producer task's result: its timed latencies, and when its timed phase began and ended.
pub type ProducerResult = Result<(Histogram<u64>, Instant, Instant), BoxError>;

/// Runs one producer task per connection: each sends its share of the warm-up records,
/// waits at a barrier for the others, then sends its share of the timed records.
/// Returns the merged latencies and the span from the first timed start to the last end.
pub async fn run_producers<T, F, Fut>(args: &Args, conns: Vec<T>, produce: F) -> ProducerResult
where
    F: Fn(T, Args, u64, u64, u64, Arc<Barrier>) -> Fut,
    Fut: Future<Output = ProducerResult> + Send + 'static,
{
    let parts = conns.len() as u64;
    let barrier = Arc::new(Barrier::new(conns.len()));
    let mut tasks = Vec::new();
    let mut first_seq = 0;
    for (i, con) in (0..parts).zip(conns) {
        let warmup = share(args.warmup, parts, i);
        let records = share(args.records, parts, i);
        tasks.push(tokio::spawn(produce(con, args.clone(), first_seq, warmup, records, barrier.clone())));
        first_seq += warmup + records;
    }
    let mut hist = histogram();
    let (mut start, mut end) = (None::<Instant>, None::<Instant>);
    for t in tasks {
        let (h, s, e) = t.await??;
        hist.add(&h).expect("same histogram bounds");
        start = Some(start.map_or(s, |x| x.min(s)));
        end = Some(end.map_or(e, |x| x.max(e)));
    }
    match (start, end) {
        (Some(s), Some(e)) => Ok((hist, s, e)),
        _ => Err("no producer ran".into()),
    }
}

/// The consume and e2e outcome: from the clock start (the end of the warm-up, or
/// `start` without one) to the last record.
pub fn finish(args: &Args, receipts: &Receipts, start: Instant) -> Result<Outcome, BoxError> {
    let start = if args.warmup > 0 { *receipts.timed_start.get().ok_or("warm-up never ended")? } else { start };
    let end = receipts.last.lock().expect("lock not poisoned").ok_or("the run ended before the last record")?;
    let latencies = receipts.latencies.lock().expect("lock not poisoned").clone();
    Ok(Outcome { records: args.records, secs: (end - start).as_secs_f64(), latencies })
}

#[derive(Serialize)]
struct LatencyReport {
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

/// One JSON line, the schema `mq bench --json` shares.
#[derive(Serialize)]
struct Report {
    tool: &'static str,
    mode: &'static str,
    records: u64,
    record_size: usize,
    producers: u64,
    consumers: u64,
    partitions: u32,
    acks: String,
    secs: f64,
    records_per_sec: f64,
    mb_per_sec: f64,
    latency_us: LatencyReport,
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn report(args: &Args, outcome: &Outcome) -> Report {
    let secs = outcome.secs.max(1e-9);
    let rate = outcome.records as f64 / secs;
    let h = &outcome.latencies;
    let acks = args.acks_label.clone().unwrap_or_else(|| {
        if args.peer == Peer::Nats && args.replicas > 1 {
            "majority".to_string()
        } else {
            "1".to_string()
        }
    });
    Report {
        tool: match args.peer {
            Peer::Nats => "nats",
            Peer::Redis => "redis",
        },
        mode: args.mode.as_str(),
        records: outcome.records,
        record_size: args.record_size,
        producers: if args.mode == Mode::Consume { 0 } else { args.producers },
        consumers: if args.mode == Mode::Produce { 0 } else { args.consumers },
        partitions: 1,
        acks,
        secs: round(outcome.secs, 3),
        records_per_sec: round(rate, 1),
        mb_per_sec: round(rate * args.record_size as f64 / 1e6, 2),
        latency_us: LatencyReport {
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        },
    }
}

fn check(args: &Args) -> Result<(), String> {
    if args.record_size < HEADER_BYTES {
        return Err(format!("--record-size must be at least {HEADER_BYTES} (send time and sequence number)"));
    }
    if args.records == 0 || args.producers == 0 || args.consumers == 0 {
        return Err("--records, --producers and --consumers must be at least 1".into());
    }
    if args.inflight == 0 || args.batch == 0 {
        return Err("--inflight and --batch must be at least 1".into());
    }
    if args.peer == Peer::Redis && args.replicas != 1 {
        return Err("--replicas is for NATS only".into());
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(e) = check(&args) {
        eprintln!("mq-loadgen: {e}");
        std::process::exit(2);
    }
    let deadline = Duration::from_secs(args.timeout_secs);
    let run = async {
        match args.peer {
            Peer::Nats => nats::run(&args).await,
            Peer::Redis => redis_streams::run(&args).await,
        }
    };
    match tokio::time::timeout(deadline, run).await {
        Ok(Ok(outcome)) => {
            let line = serde_json::to_string(&report(&args, &outcome)).expect("the report serializes");
            println!("{line}");
        }
        Ok(Err(e)) => {
            eprintln!("mq-loadgen: {:?} {} failed: {e}", args.peer, args.mode.as_str());
            std::process::exit(1);
        }
        Err(_) => {
            eprintln!(
                "mq-loadgen: {:?} {} did not finish within {} s (--timeout-secs)",
                args.peer,
                args.mode.as_str(),
                args.timeout_secs
            );
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_total() {
        for (total, parts) in [(10, 3), (3, 10), (100_000, 4), (0, 2)] {
            let sum: u64 = (0..parts).map(|i| share(total, parts, i)).sum();
            assert_eq!(sum, total);
        }
    }

    #[test]
    fn payload_carries_its_send_time() {
        let p = payload(100, 7);
        assert_eq!(p.len(), 100);
        assert_eq!(u64::from_le_bytes(p[8..16].try_into().unwrap()), 7);
        assert!(since_stamp_micros(&p) < 60_000_000);
    }

    #[test]
    fn receipts_start_the_clock_after_warmup_and_drop_surplus() {
        let r = Receipts::new(3, 1);
        assert_eq!(r.count(), Some(false));
        assert!(r.timed_start.get().is_none());
        assert_eq!(r.count(), Some(true));
        assert!(r.timed_start.get().is_some());
        assert_eq!(r.count(), Some(true));
        assert!(r.done());
        assert_eq!(r.count(), None);
    }
}
