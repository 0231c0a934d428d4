//! `mq bench produce|consume|e2e`: the broker's throughput and latency over TCP
//! (DESIGN.md section 11; docs/operations.md section 5 describes the flags and
//! output, docs/benchmarks.md how to run it).
//!
//! - **produce**: K tasks, each with its own [`Producer`] (batching, idempotent
//!   with `acks=all`, many sends in flight), send keyless records; a record's
//!   latency runs from the send call to the moment its producer learned the
//!   outcome. Partitions are picked as Kafka's sticky partitioner does: a task
//!   sends one batch's worth to a partition, then moves to the next.
//! - **consume**: C tasks read records already in the topic from the earliest
//!   offset, each fetching its share of the partitions with its own client (or,
//!   with `--group`, as members of a consumer group, acking each record); latency
//!   is the wait of each fetch (or poll).
//! - **e2e**: both at once. Each value starts with its send time (8 bytes,
//!   nanoseconds since this process's start, big-endian; the top bit marks a
//!   warm-up record) and a run id (8 bytes), so consumers skip other runs'
//!   records; latency is the receive time minus the send time.
//!
//! Warm-up records (`--warmup`) run first and count in nothing. Latencies go into
//! HDR histograms at microsecond resolution. Speed is measured here, never
//! asserted in tests.

use crate::{client_error, connect, progress, usage_error, AcksArg, ConnArgs};
use bytes::{BufMut, Bytes, BytesMut};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use mq_core::PartitionId;
use mq_net::{
    Acks, Client, ClientError, Consumer, ErrorCode, NewTopic, Offset, OffsetSpec, PendingDelivery, Producer, Record,
    SendRequest,
};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Highest latency a histogram tells apart: one hour in microseconds (longer ones
/// count as one hour).
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Outcomes a producer task awaits behind its sends (its producer's own
/// `max_inflight` bounds them first).
const OUTCOME_QUEUE: usize = 65_536;
/// Bytes asked for per fetch.
const FETCH_BYTES: u32 = 1 << 20;
/// Pause of a fetching consumer that found nothing new (plain fetches do not
/// wait at the broker); a floor on e2e latency without `--group`.
const IDLE_POLL: Duration = Duration::from_millis(1);
/// Records between progress bar updates.
const BAR_STEP: u64 = 1024;
/// A run that makes no progress this long fails.
const STALL_LIMIT: Duration = Duration::from_secs(30);
/// How long producers get at the end to finish what is queued.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes at the start of an e2e value: send time, run id.
const STAMP_BYTES: usize = 16;
/// The send-time bit that marks a warm-up record in e2e.
const WARMUP_BIT: u64 = 1 << 63;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Producers only: send to acknowledgement.
    Produce,
    /// Consumers only, reading records already in the topic.
    Consume,
    /// Producers and consumers together: send to receive.
    E2e,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Produce => "produce",
            Mode::Consume => "consume",
            Mode::E2e => "e2e",
        }
    }
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    mode: Mode,
    /// The topic (created when missing, except for consume).
    #[arg(long, default_value = "mq-bench")]
    topic: String,
    /// Bytes per record value (at least 16 for e2e, which stamps each value).
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// Records measured (after the warm-up).
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Producer tasks, each with its own producer and connections.
    #[arg(long, default_value_t = 1)]
    producers: u32,
    /// Consumer tasks, each with its own client (or group member with --group).
    #[arg(long, default_value_t = 1)]
    consumers: u32,
    /// When a send counts as done.
    #[arg(long, value_enum, default_value = "all")]
    acks: AcksArg,
    /// Records per second over all producers; 0: as fast as they go.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Records sent (or read) first and counted in nothing.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// Partitions of the topic if it must be created (default 1).
    #[arg(long)]
    partitions: Option<u32>,
    /// Replication factor of the topic if it must be created (default 1).
    #[arg(long)]
    replication_factor: Option<u16>,
    /// Min in-sync replicas of the topic if it must be created (default 1).
    #[arg(long)]
    min_insync_replicas: Option<u16>,
    /// Consume as members of this consumer group (acking each record) instead of
    /// plain fetches.
    #[arg(long)]
    group: Option<String>,
    /// Producer: a batch stops taking records at this size (default 16384).
    #[arg(long)]
    batch_max_bytes: Option<usize>,
    /// Producer: how long a batch waits for more records (default 0).
    #[arg(long)]
    linger_ms: Option<u64>,
    /// Producer: sends without an outcome at most, per producer (default 1000).
    #[arg(long)]
    max_inflight: Option<usize>,
    /// Print one JSON line with the results (and no progress bar).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Why a run failed.
enum Failure {
    /// A client call failed (printed with the authentication hint).
    Client(ClientError),
    /// Anything else, as a message.
    Other(String),
    /// Already reported; exit with this code.
    Exit(ExitCode),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

/// The settings a run uses, checked.
struct Plan {
    mode: Mode,
    topic: String,
    record_size: usize,
    records: u64,
    warmup: u64,
    producers: u32,
    consumers: u32,
    acks: Acks,
    acks_name: &'static str,
    rate: Option<f64>,
    group: Option<String>,
}

impl Plan {
    fn new(args: &BenchArgs) -> Result<Plan, String> {
        let mode = args.mode;
        if args.records == 0 {
            return Err("--records must be at least 1".into());
        }
        if args.record_size == 0 {
            return Err("--record-size must be at least 1".into());
        }
        if mode == Mode::E2e && args.record_size < STAMP_BYTES {
            return Err(format!(
                "e2e stamps each value with its send time and run id: --record-size must be at least {STAMP_BYTES}"
            ));
        }
        if mode != Mode::Consume && args.producers == 0 {
            return Err("--producers must be at least 1".into());
        }
        if mode != Mode::Produce && args.consumers == 0 {
            return Err("--consumers must be at least 1".into());
        }
        if !args.rate.is_finite() || args.rate < 0.0 {
            return Err(format!("--rate must be 0 (unthrottled) or a positive number of records/s, not {}", args.rate));
        }
        if args.partitions == Some(0) || args.replication_factor == Some(0) || args.min_insync_replicas == Some(0) {
            return Err("--partitions, --replication-factor and --min-insync-replicas must be at least 1".into());
        }
        if args.batch_max_bytes == Some(0) || args.max_inflight == Some(0) {
            return Err("--batch-max-bytes and --max-inflight must be at least 1".into());
        }
        if args.group.as_deref().is_some_and(str::is_empty) {
            return Err("--group must not be empty".into());
        }
        let (acks, acks_name) = match args.acks {
            AcksArg::Zero => (Acks::None, "0"),
            AcksArg::One => (Acks::Leader, "1"),
            AcksArg::All => (Acks::All, "all"),
        };
        Ok(Plan {
            mode,
            topic: args.topic.clone(),
            record_size: args.record_size,
            records: args.records,
            warmup: args.warmup,
            producers: if mode == Mode::Consume { 0 } else { args.producers },
            consumers: if mode == Mode::Produce { 0 } else { args.consumers },
            acks,
            acks_name,
            rate: (args.rate > 0.0).then_some(args.rate),
            group: args.group.clone(),
        })
    }
}

/// Everything a mode needs: the settings, a client, the topic's partition count
/// and the progress bar.
#[derive(Clone, Copy)]
struct Run<'a> {
    plan: &'a Plan,
    args: &'a BenchArgs,
    client: &'a Client,
    partitions: u32,
    bar: &'a ProgressBar,
}

/// What a run measured.
struct Measured {
    secs: f64,
    latency: Histogram<u64>,
}

/// `mq bench`: checks the flags, prepares the topic, runs the mode, prints the
/// results.
pub async fn run(args: BenchArgs) -> ExitCode {
    let plan = match Plan::new(&args) {
        Ok(p) => p,
        Err(msg) => return usage_error(&msg),
    };
    let client = match connect(&args.conn).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let partitions = match prepare_topic(&client, &args).await {
        Ok(p) => p,
        Err(f) => return report_failure(plan.mode, f),
    };
    let total = plan.records.saturating_add(plan.warmup);
    let bar = if args.json { ProgressBar::hidden() } else { progress::bar(Some(total), "records", false) };
    let run = Run { plan: &plan, args: &args, client: &client, partitions, bar: &bar };
    let result = match plan.mode {
        Mode::Produce => bench_produce(&run).await,
        Mode::Consume => bench_consume(&run).await,
        Mode::E2e => bench_e2e(&run).await,
    };
    bar.finish_and_clear();
    match result {
        Ok(m) => {
            print_results(&plan, partitions, &m, args.json);
            ExitCode::SUCCESS
        }
        Err(f) => report_failure(plan.mode, f),
    }
}

fn report_failure(mode: Mode, f: Failure) -> ExitCode {
    match f {
        Failure::Client(e) => client_error(&e),
        Failure::Other(msg) => {
            eprintln!("mq: bench {}: {msg}", mode.name());
            ExitCode::FAILURE
        }
        Failure::Exit(code) => code,
    }
}

/// The topic's partition count; creates it when missing (except for consume).
async fn prepare_topic(client: &Client, args: &BenchArgs) -> Result<u32, Failure> {
    let existing = match client.describe_topic(&args.topic).await {
        Ok(t) => Some(t),
        Err(e) if e.code() == Some(ErrorCode::UnknownTopic) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(t) = existing {
        let c = &t.config;
        if args.partitions.is_some_and(|p| p != c.partitions)
            || args.replication_factor.is_some_and(|r| r != c.replication_factor)
        {
            eprintln!(
                "mq: bench: topic {} exists with {} partition(s) and replication factor {}; using it as it is",
                c.name, c.partitions, c.replication_factor
            );
        }
        return Ok(c.partitions);
    }
    if args.mode == Mode::Consume {
        return Err(Failure::Other(format!(
            "topic {0} does not exist; fill it first, for example: mq bench produce --topic {0} --records {1}",
            args.topic,
            args.records.saturating_add(args.warmup)
        )));
    }
    let topic = NewTopic::new(args.topic.clone(), args.partitions.unwrap_or(1))
        .replication_factor(args.replication_factor.unwrap_or(1))
        .min_insync_replicas(args.min_insync_replicas.unwrap_or(1));
    match client.create_topic(topic).await {
        Ok(()) => {}
        // Another run created it meanwhile.
        Err(e) if e.code() == Some(ErrorCode::TopicExists) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(client.describe_topic(&args.topic).await?.config.partitions)
}

fn histogram() -> Histogram<u64> {
    // The bounds are constants that satisfy the crate's rules (low >= 1,
    // high >= 2 * low, 3 significant figures), so this cannot fail.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid constant histogram bounds")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Adds `other`'s counts to `into` (same bounds, so nothing is out of range).
fn merge(into: &mut Histogram<u64>, other: &Histogram<u64>) {
    for v in other.iter_recorded() {
        into.saturating_record_n(v.value_iterated_to(), v.count_at_value());
    }
}

// ---------------------------------------------------------------------------
// Producing

/// What every producer task sends.
struct SendPlan {
    topic: String,
    acks: Acks,
    payload: Payload,
    partitions: u32,
    /// Records a task sends to one partition before it moves to the next.
    sticky_run: u64,
    /// Records per second per task.
    rate: Option<f64>,
}

/// Record values: one shared buffer, or stamped per record (e2e).
enum Payload {
    Fixed(Bytes),
    Stamped { size: usize, run: u64, epoch: Instant },
}

impl Payload {
    fn value(&self, warmup: bool) -> Bytes {
        match self {
            Payload::Fixed(b) => b.clone(),
            Payload::Stamped { size, run, epoch } => {
                let mut v = BytesMut::with_capacity(*size);
                let sent = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX) & !WARMUP_BIT;
                v.put_u64(if warmup { sent | WARMUP_BIT } else { sent });
                v.put_u64(*run);
                v.resize(*size, b'x');
                v.freeze()
            }
        }
    }
}

/// A stamped value's send time (nanoseconds since the epoch), whether it was a
/// warm-up record, and its run id; `None` if it is too short to carry them.
fn read_stamp(value: &[u8]) -> Option<(u64, bool, u64)> {
    let sent = u64::from_be_bytes(value.get(..8)?.try_into().ok()?);
    let run = u64::from_be_bytes(value.get(8..STAMP_BYTES)?.try_into().ok()?);
    Some((sent & !WARMUP_BIT, sent & WARMUP_BIT != 0, run))
}

/// The outcomes of a task's sends.
struct SendTally {
    latency: Histogram<u64>,
    failed: u64,
    first_error: Option<ClientError>,
}

impl SendTally {
    fn new() -> Self {
        SendTally { latency: histogram(), failed: 0, first_error: None }
    }

    fn add(&mut self, other: SendTally) {
        merge(&mut self.latency, &other.latency);
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// An error if any send failed.
    fn check(self) -> Result<Histogram<u64>, Failure> {
        match self.first_error {
            None => Ok(self.latency),
            Some(e) => Err(Failure::Other(format!("{} send(s) failed; the first: {e}", self.failed))),
        }
    }
}

/// The producers of a run, one per task.
async fn build_producers(plan: &Plan, args: &BenchArgs, client: &Client) -> Result<Vec<Producer>, Failure> {
    let mut producers = Vec::with_capacity(plan.producers as usize);
    for _ in 0..plan.producers {
        let mut b = client
            .producer(plan.topic.clone())
            .acks(plan.acks)
            .connect_timeout(Duration::from_secs(args.conn.connect_timeout.max(1)));
        if let Some(n) = args.batch_max_bytes {
            b = b.batch_max_bytes(n);
        }
        if let Some(ms) = args.linger_ms {
            b = b.linger(Duration::from_millis(ms));
        }
        if let Some(n) = args.max_inflight {
            b = b.max_inflight(n);
        }
        producers.push(b.build().await?);
    }
    Ok(producers)
}

fn send_plan(plan: &Plan, args: &BenchArgs, partitions: u32, payload: Payload) -> Arc<SendPlan> {
    let record_bytes = Record::from_value(vec![0u8; plan.record_size]).size_bytes().max(1);
    let batch_bytes = args.batch_max_bytes.unwrap_or(mq_core::client::ProducerConfig::default().batch_max_bytes);
    Arc::new(SendPlan {
        topic: plan.topic.clone(),
        acks: plan.acks,
        payload,
        partitions: partitions.max(1),
        sticky_run: (batch_bytes / record_bytes).max(1) as u64,
        rate: plan.rate.map(|r| r / f64::from(plan.producers.max(1))),
    })
}

/// Sends `total` records split over the producers, one task each; returns when
/// every send has its outcome.
async fn run_producers(
    producers: &[Producer],
    plan: &Arc<SendPlan>,
    total: u64,
    warmup: bool,
    bar: &ProgressBar,
) -> Result<SendTally, Failure> {
    let k = producers.len().max(1) as u64;
    let tasks: Vec<_> = producers
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let share = total / k + u64::from((i as u64) < total % k);
            tokio::spawn(produce_share(p.clone(), plan.clone(), i as u32, share, warmup, bar.clone()))
        })
        .collect();
    let mut tally = SendTally::new();
    for t in tasks {
        tally.add(joined(t.await)??);
    }
    Ok(tally)
}

fn joined<T>(r: Result<T, tokio::task::JoinError>) -> Result<T, Failure> {
    r.map_err(|e| Failure::Other(format!("a benchmark task failed: {e}")))
}

/// One producer task: sends `count` records, pacing them to the plan's rate, while
/// a companion task awaits the outcomes in send order, timing each one by when
/// the producer learned it.
async fn produce_share(
    producer: Producer,
    plan: Arc<SendPlan>,
    task: u32,
    count: u64,
    warmup: bool,
    bar: ProgressBar,
) -> Result<SendTally, Failure> {
    let (tx, mut rx) = mpsc::channel::<(Instant, PendingDelivery)>(OUTCOME_QUEUE);
    let one_way = plan.acks == Acks::None;
    let collector = tokio::spawn(async move {
        let mut tally = SendTally::new();
        let mut unshown = 0;
        while let Some((sent, pending)) = rx.recv().await {
            let (result, at) = pending.timed().await;
            match result {
                // An acks=0 send ends "unknown" once written: that is its success.
                Ok(_) | Err(ClientError::OutcomeUnknown { .. }) if result.is_ok() || one_way => {
                    tally.latency.saturating_record(micros(at.saturating_duration_since(sent)));
                }
                Ok(_) => unreachable!("the guard takes every Ok"),
                Err(e) => {
                    tally.failed += 1;
                    tally.first_error.get_or_insert(e);
                }
            }
            unshown += 1;
            if unshown == BAR_STEP {
                bar.inc(unshown);
                unshown = 0;
            }
        }
        bar.inc(unshown);
        tally
    });
    let start = Instant::now();
    let mut partition = task % plan.partitions;
    for i in 0..count {
        if let Some(rate) = plan.rate {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        if i > 0 && i % plan.sticky_run == 0 {
            partition = (partition + 1) % plan.partitions;
        }
        let request = SendRequest::new(plan.topic.as_str())
            .acks(plan.acks)
            .partition(PartitionId(partition))
            .record(Record::from_value(plan.payload.value(warmup)));
        let sent = Instant::now();
        let pending = producer.enqueue(request).await?;
        if tx.send((sent, pending)).await.is_err() {
            break;
        }
    }
    drop(tx);
    joined(collector.await)
}

async fn close_producers(producers: Vec<Producer>) -> Result<(), Failure> {
    for p in producers {
        p.close(CLOSE_TIMEOUT).await?;
    }
    Ok(())
}

async fn bench_produce(run: &Run<'_>) -> Result<Measured, Failure> {
    let Run { plan, args, client, partitions, bar } = *run;
    let producers = build_producers(plan, args, client).await?;
    let payload = Payload::Fixed(Bytes::from(vec![b'x'; plan.record_size]));
    let sends = send_plan(plan, args, partitions, payload);
    if plan.warmup > 0 {
        run_producers(&producers, &sends, plan.warmup, true, bar).await?.check()?;
    }
    let start = Instant::now();
    let latency = run_producers(&producers, &sends, plan.records, false, bar).await?.check()?;
    let secs = start.elapsed().as_secs_f64();
    close_producers(producers).await?;
    Ok(Measured { secs, latency })
}

// ---------------------------------------------------------------------------
// Consuming

/// Progress shared by the consumer tasks of a run.
struct Progress {
    /// Records received so far, warm-up included.
    received: AtomicU64,
    /// Records to receive in all, warm-up included.
    target: u64,
    warmup: u64,
    /// When measuring started (consume: the warm-up's last record arrived).
    start: Mutex<Option<Instant>>,
    /// When the last record arrived.
    end: Mutex<Option<Instant>>,
    /// Set to stop every task (done, or failed elsewhere).
    stop: AtomicBool,
}

impl Progress {
    fn new(target: u64, warmup: u64) -> Arc<Progress> {
        Arc::new(Progress {
            received: AtomicU64::new(0),
            target,
            warmup,
            start: Mutex::new(None),
            end: Mutex::new(None),
            stop: AtomicBool::new(false),
        })
    }

    fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    fn done(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.received() >= self.target
    }

    /// Counts `n` records that a fetch (or poll) asked for at `asked` brought at
    /// `at`; true if any of them is measured (past the warm-up). The measured
    /// time starts when the first fetch that brings measured records was asked
    /// for (one fetch may carry the last warm-up records and the first measured
    /// ones), and ends when the last record arrived.
    fn add(&self, n: u64, asked: Instant, at: Instant) -> bool {
        let before = self.received.fetch_add(n, Ordering::Relaxed);
        let measured = before + n > self.warmup;
        if measured {
            set_earliest(&self.start, asked);
        }
        if before < self.target && before + n >= self.target {
            set_earliest(&self.end, at);
        }
        measured
    }
}

/// Keeps the earliest instant given.
fn set_earliest(slot: &Mutex<Option<Instant>>, at: Instant) {
    // A panic while holding this lock leaves plain data behind; keep going.
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    if slot.is_none_or(|t| at < t) {
        *slot = Some(at);
    }
}

fn read_slot(slot: &Mutex<Option<Instant>>) -> Option<Instant> {
    *slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a consumer task does with a record's value.
#[derive(Clone, Copy)]
enum Reading {
    /// Consume: count it; latency is per fetch or poll.
    Count,
    /// E2e: count it if it carries this run id, and time it from its stamp.
    Stamped { run: u64, epoch: Instant },
}

/// A partition a fetching consumer reads: the next offset, and where to stop
/// (consume reads what was there at the start).
struct Cursor {
    partition: u32,
    next: Offset,
    end: Option<Offset>,
}

/// One consumer task reading its partitions with plain fetches.
async fn fetch_consumer(
    client: Client,
    topic: String,
    mut cursors: Vec<Cursor>,
    reading: Reading,
    progress: Arc<Progress>,
    bar: ProgressBar,
) -> Result<Histogram<u64>, ClientError> {
    let mut latency = histogram();
    while !progress.done() {
        let mut got_any = false;
        let mut open = false;
        for c in cursors.iter_mut() {
            if c.end.is_some_and(|end| c.next >= end) {
                continue;
            }
            open = true;
            let asked = Instant::now();
            let fetched = client.fetch(&topic, c.partition, c.next, FETCH_BYTES).await?;
            let at = Instant::now();
            let mut n = 0;
            for (offset, record) in fetched.records_from(c.next) {
                if c.end.is_some_and(|end| offset >= end) {
                    break;
                }
                c.next = offset.next();
                n += u64::from(take(reading, &record.value, at, &mut latency));
            }
            if n > 0 {
                got_any = true;
                if progress.add(n, asked, at) && matches!(reading, Reading::Count) {
                    latency.saturating_record(micros(at - asked));
                }
                bar.inc(n);
            }
            if progress.done() {
                break;
            }
        }
        if !open {
            break;
        }
        if !got_any {
            tokio::time::sleep(IDLE_POLL).await;
        }
    }
    Ok(latency)
}

/// Whether a received value counts; e2e records its latency unless it is a
/// warm-up record.
fn take(reading: Reading, value: &[u8], at: Instant, latency: &mut Histogram<u64>) -> bool {
    match reading {
        Reading::Count => true,
        Reading::Stamped { run, epoch } => match read_stamp(value) {
            Some((sent, warmup, r)) if r == run => {
                if !warmup {
                    let now = u64::try_from(at.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX);
                    latency.saturating_record(now.saturating_sub(sent) / 1000);
                }
                true
            }
            // Another run's record (or another writer's).
            _ => false,
        },
    }
}

/// One consumer task as a member of a consumer group: acks each record.
async fn group_consumer(
    mut consumer: Consumer,
    reading: Reading,
    progress: Arc<Progress>,
    bar: ProgressBar,
) -> Result<Histogram<u64>, ClientError> {
    let mut latency = histogram();
    let mut unshown = 0;
    let mut result = Ok(());
    while !progress.done() {
        let asked = Instant::now();
        // Short waits, so that a task whose share is done notices the end.
        let received = match tokio::time::timeout(Duration::from_millis(100), consumer.next()).await {
            Err(_) => continue,
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                result = Err(e);
                break;
            }
            Ok(Some(Ok(r))) => r,
        };
        let at = Instant::now();
        let counts = take(reading, received.value(), at, &mut latency);
        if let Err(e) = received.ack().await {
            result = Err(e);
            break;
        }
        if counts {
            if progress.add(1, asked, at) && matches!(reading, Reading::Count) {
                latency.saturating_record(micros(at - asked));
            }
            unshown += 1;
            if unshown == BAR_STEP {
                bar.inc(unshown);
                unshown = 0;
            }
        }
    }
    bar.inc(unshown);
    // Confirms the acks and leaves, so the group's next run starts after them.
    let closed = consumer.close(CLOSE_TIMEOUT).await;
    result.and(closed).map(|()| latency)
}

/// What one consumer task reads with.
enum Reader {
    /// A member of the `--group` consumer group.
    Member(Consumer),
    /// Its own client and its share of the partitions.
    Fetcher(Client, Vec<Cursor>),
}

/// The consumer tasks' readers, connected before any starts (connecting is not
/// measured): with `--group`, members of the group; otherwise fetchers, task `i`
/// reading partitions `i`, `i + C`, ... from `starts`.
async fn connect_readers(
    plan: &Plan,
    args: &BenchArgs,
    client: &Client,
    starts: &[(Offset, Option<Offset>)],
) -> Result<Vec<Reader>, Failure> {
    let mut readers = Vec::new();
    for i in 0..plan.consumers {
        match &plan.group {
            Some(group) => {
                let member = client.consumer(group.clone()).topic(plan.topic.clone()).build().await?;
                readers.push(Reader::Member(member));
            }
            None => {
                let cursors: Vec<Cursor> = starts
                    .iter()
                    .enumerate()
                    .filter(|(p, _)| *p as u32 % plan.consumers == i)
                    .map(|(p, (next, end))| Cursor { partition: p as u32, next: *next, end: *end })
                    .collect();
                if cursors.is_empty() {
                    continue;
                }
                // Each consumer has its own connections, as separate processes would.
                let own = connect(&args.conn).await.map_err(Failure::Exit)?;
                readers.push(Reader::Fetcher(own, cursors));
            }
        }
    }
    Ok(readers)
}

type ConsumerTask = JoinHandle<Result<Histogram<u64>, ClientError>>;

fn start_consumers(
    readers: Vec<Reader>,
    topic: &str,
    reading: Reading,
    progress: &Arc<Progress>,
    bar: &ProgressBar,
) -> Vec<ConsumerTask> {
    readers
        .into_iter()
        .map(|r| match r {
            Reader::Member(m) => tokio::spawn(group_consumer(m, reading, progress.clone(), bar.clone())),
            Reader::Fetcher(c, cursors) => {
                tokio::spawn(fetch_consumer(c, topic.to_owned(), cursors, reading, progress.clone(), bar.clone()))
            }
        })
        .collect()
}

/// Waits until `progress` reaches `goal` records (or its tasks end), failing if
/// nothing arrives for [`STALL_LIMIT`] or a task fails.
async fn wait_for(progress: &Progress, goal: u64, tasks: &mut [ConsumerTask]) -> Result<(), Failure> {
    let mut last = (progress.received(), Instant::now());
    loop {
        let received = progress.received();
        if received >= goal {
            return Ok(());
        }
        if tasks.iter().all(JoinHandle::is_finished) {
            // Every task ended early: one failed, or the topic ran out.
            for t in tasks.iter_mut() {
                joined(t.await)??;
            }
            return Err(Failure::Other(format!("the consumers stopped after {received} of {goal} record(s)")));
        }
        if received != last.0 {
            last = (received, Instant::now());
        } else if last.1.elapsed() >= STALL_LIMIT {
            return Err(Failure::Other(format!(
                "no record arrived for {} s; received {received} of {goal}",
                STALL_LIMIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Stops the consumers and merges their histograms.
async fn finish_consumers(progress: &Progress, tasks: Vec<ConsumerTask>) -> Result<Histogram<u64>, Failure> {
    progress.stop.store(true, Ordering::Relaxed);
    let mut latency = histogram();
    for t in tasks {
        merge(&mut latency, &joined(t.await)??);
    }
    Ok(latency)
}

fn abort(tasks: &[ConsumerTask]) {
    for t in tasks {
        t.abort();
    }
}

/// Per partition, the first offset and the high watermark (`spec` says which
/// start: earliest for consume, the end for e2e).
async fn partition_starts(
    client: &Client,
    topic: &str,
    partitions: u32,
    spec: OffsetSpec,
    bounded: bool,
) -> Result<Vec<(Offset, Option<Offset>)>, ClientError> {
    let mut out = Vec::with_capacity(partitions as usize);
    for p in 0..partitions {
        let start = client.list_offsets(topic, p, spec).await?;
        let end = match bounded {
            true => Some(client.list_offsets(topic, p, OffsetSpec::Latest).await?),
            false => None,
        };
        out.push((start, end));
    }
    Ok(out)
}

async fn bench_consume(run: &Run<'_>) -> Result<Measured, Failure> {
    let Run { plan, args, client, partitions, bar } = *run;
    let total = plan.records.saturating_add(plan.warmup);
    let starts = match plan.group {
        // A group starts where its acks left off; the broker says nothing of it here.
        Some(_) => Vec::new(),
        None => {
            let starts = partition_starts(client, &plan.topic, partitions, OffsetSpec::Earliest, true).await?;
            let available: u64 = starts.iter().map(|(s, e)| e.map_or(0, |e| e.0.saturating_sub(s.0))).sum();
            if available < total {
                return Err(Failure::Other(format!(
                    "topic {} holds {available} record(s), fewer than the {total} to read; produce more first \
                     (mq bench produce --topic {} --records {total})",
                    plan.topic, plan.topic
                )));
            }
            starts
        }
    };
    let readers = connect_readers(plan, args, client, &starts).await?;
    let progress = Progress::new(total, plan.warmup);
    let begin = Instant::now();
    let mut tasks = start_consumers(readers, &plan.topic, Reading::Count, &progress, bar);
    if let Err(f) = wait_for(&progress, total, &mut tasks).await {
        abort(&tasks);
        return Err(f);
    }
    let latency = finish_consumers(&progress, tasks).await?;
    let secs = elapsed(&progress, begin);
    Ok(Measured { secs, latency })
}

/// Seconds from the measured start to the last counted record.
fn elapsed(progress: &Progress, fallback: Instant) -> f64 {
    let start = read_slot(&progress.start).unwrap_or(fallback);
    let end = read_slot(&progress.end).unwrap_or_else(Instant::now);
    end.saturating_duration_since(start).as_secs_f64()
}

async fn bench_e2e(run: &Run<'_>) -> Result<Measured, Failure> {
    let Run { plan, args, client, partitions, bar } = *run;
    let epoch = Instant::now();
    // Distinct per run, so records of earlier runs in the topic are skipped.
    let run_id = u64::from(std::process::id()) << 32
        ^ u64::try_from(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
        )
        .unwrap_or_default();
    let reading = Reading::Stamped { run: run_id, epoch };
    let starts = match plan.group {
        Some(_) => Vec::new(),
        None => partition_starts(client, &plan.topic, partitions, OffsetSpec::Latest, false).await?,
    };
    let producers = build_producers(plan, args, client).await?;
    let sends = send_plan(plan, args, partitions, Payload::Stamped { size: plan.record_size, run: run_id, epoch });
    let total = plan.records.saturating_add(plan.warmup);
    let progress = Progress::new(total, 0);
    let readers = connect_readers(plan, args, client, &starts).await?;
    let mut tasks = start_consumers(readers, &plan.topic, reading, &progress, bar);
    let result = async {
        if plan.warmup > 0 {
            run_producers(&producers, &sends, plan.warmup, true, &ProgressBar::hidden()).await?.check()?;
            wait_for(&progress, plan.warmup, &mut tasks).await?;
        }
        let start = Instant::now();
        run_producers(&producers, &sends, plan.records, false, &ProgressBar::hidden()).await?.check()?;
        wait_for(&progress, total, &mut tasks).await?;
        Ok::<_, Failure>(start)
    }
    .await;
    let start = match result {
        Ok(s) => s,
        Err(f) => {
            abort(&tasks);
            return Err(f);
        }
    };
    let latency = finish_consumers(&progress, tasks).await?;
    close_producers(producers).await?;
    let end = read_slot(&progress.end).unwrap_or_else(Instant::now);
    Ok(Measured { secs: end.saturating_duration_since(start).as_secs_f64(), latency })
}

// ---------------------------------------------------------------------------
// Results

/// MB as Kafka's performance tools count them (2^20 bytes).
const MB: f64 = 1024.0 * 1024.0;

fn print_results(plan: &Plan, partitions: u32, m: &Measured, json: bool) {
    // A run shorter than the clock can tell still divides by something.
    let secs = m.secs.max(1e-6);
    let records_per_sec = plan.records as f64 / secs;
    let mb_per_sec = records_per_sec * plan.record_size as f64 / MB;
    let h = &m.latency;
    let (p50, p99, p999, max) =
        (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.value_at_quantile(0.999), h.max());
    if json {
        println!(
            "{{\"tool\":\"mq\",\"mode\":\"{}\",\"records\":{},\"record_size\":{},\"producers\":{},\"consumers\":{},\
             \"partitions\":{partitions},\"acks\":\"{}\",\"secs\":{secs:.6},\"records_per_sec\":{records_per_sec:.1},\
             \"mb_per_sec\":{mb_per_sec:.2},\"latency_us\":{{\"p50\":{p50},\"p99\":{p99},\"p999\":{p999},\"max\":{max}}}}}",
            plan.mode.name(),
            plan.records,
            plan.record_size,
            plan.producers,
            plan.consumers,
            plan.acks_name,
        );
        return;
    }
    let who = match plan.mode {
        Mode::Produce => format!("{} producer(s), acks={}", plan.producers, plan.acks_name),
        Mode::Consume => format!("{} consumer(s)", plan.consumers),
        Mode::E2e => format!("{} producer(s), {} consumer(s), acks={}", plan.producers, plan.consumers, plan.acks_name),
    };
    println!(
        "mq bench {}: {} records of {} B, topic {} ({partitions} partition(s)), {who}",
        plan.mode.name(),
        plan.records,
        plan.record_size,
        plan.topic
    );
    println!("throughput: {records_per_sec:.1} records/s, {mb_per_sec:.2} MB/s ({secs:.3} s)");
    let what = match (plan.mode, plan.acks, &plan.group) {
        (Mode::Produce, Acks::None, _) => "send to written",
        (Mode::Produce, _, _) => "send to acknowledgement",
        (Mode::Consume, _, None) => "per fetch",
        (Mode::Consume, _, Some(_)) => "per poll",
        (Mode::E2e, _, _) => "send to receive",
    };
    println!("latency ({what}): p50 {p50} us, p99 {p99} us, p99.9 {p999} us, max {max} us");
}
