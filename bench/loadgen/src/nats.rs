//! NATS JetStream: one file-storage stream (replicas 1 or 3) with one subject.
//!
//! - Producers: one connection each; `publish` returns an ack future at once and up to
//!   `--inflight` of them are outstanding per producer (a sliding window, oldest
//!   awaited first). Latency: publish call to its ack.
//! - Consumers: one durable pull consumer (explicit acks, deliver all) shared by the
//!   consumer tasks, each on its own connection pulling batches of `--batch` with the
//!   client's continuous pull stream; every message is acked (`ack()` publishes the
//!   ack without waiting for a reply).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, context::ContextBuilder, stream};
use futures_util::StreamExt;
use tokio::sync::Barrier;

use crate::{
    finish, histogram, micros, payload, run_producers, Args, BoxError, Mode, Outcome, ProducerResult, Receipts,
};

const CONSUMER_NAME: &str = "bench";

fn url(args: &Args) -> String {
    args.url.clone().unwrap_or_else(|| "nats://127.0.0.1:4222".to_string())
}

async fn context(args: &Args) -> Result<jetstream::Context, BoxError> {
    let client = async_nats::connect(url(args)).await?;
    Ok(ContextBuilder::new()
        .timeout(Duration::from_secs(30))
        // Our window (`--inflight`) is the limit; the client's own cap must not bind first.
        .max_ack_inflight(args.inflight.max(1) + 1)
        .backpressure_on_inflight(true)
        .build(client))
}

/// Deletes and re-creates the stream, retrying while a fresh cluster's JetStream is not
/// ready yet (no meta leader, not enough peers).
async fn fresh_stream(js: &jetstream::Context, args: &Args) -> Result<(), BoxError> {
    let config = stream::Config {
        name: args.name.clone(),
        subjects: vec![args.name.clone()],
        storage: stream::StorageType::File,
        num_replicas: args.replicas,
        ..Default::default()
    };
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = js.delete_stream(&args.name).await;
        match js.create_stream(config.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() < give_up => {
                eprintln!("mq-loadgen: nats: stream not created yet ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(format!("creating stream {}: {e}", args.name).into()),
        }
    }
}

async fn fresh_consumer(js: &jetstream::Context, args: &Args) -> Result<consumer::PullConsumer, BoxError> {
    let s = js
        .get_stream(&args.name)
        .await
        .map_err(|e| format!("stream {} not found ({e}); run the produce mode first", args.name))?;
    let _ = s.delete_consumer(CONSUMER_NAME).await;
    let config = consumer::pull::Config {
        durable_name: Some(CONSUMER_NAME.to_string()),
        ack_policy: consumer::AckPolicy::Explicit,
        deliver_policy: consumer::DeliverPolicy::All,
        // Room for every consumer's batches in flight plus their unsent acks.
        max_ack_pending: i64::try_from(args.batch * args.consumers as usize * 8).unwrap_or(-1),
        ..Default::default()
    };
    Ok(s.create_consumer(config).await?)
}

/// One producer: `warmup` untimed records, the barrier, then `records` timed ones.
async fn produce(
    js: jetstream::Context,
    args: Args,
    first_seq: u64,
    warmup: u64,
    records: u64,
    barrier: Arc<Barrier>,
) -> ProducerResult {
    let mut hist = histogram();
    let mut window = std::collections::VecDeque::with_capacity(args.inflight);
    let mut seq = first_seq;
    let mut start = Instant::now();
    for phase in 0..2 {
        let (count, timed) = if phase == 0 {
            (warmup, false)
        } else {
            barrier.wait().await;
            start = Instant::now();
            (records, true)
        };
        for _ in 0..count {
            if window.len() >= args.inflight {
                let (sent, ack): (Instant, jetstream::context::PublishAckFuture) =
                    window.pop_front().expect("window is not empty");
                ack.await?;
                if timed {
                    hist.saturating_record(micros(sent.elapsed()));
                }
            }
            let sent = Instant::now();
            let ack = js.publish(args.name.clone(), payload(args.record_size, seq)).await?;
            seq += 1;
            window.push_back((sent, ack));
        }
        while let Some((sent, ack)) = window.pop_front() {
            ack.await?;
            if timed {
                hist.saturating_record(micros(sent.elapsed()));
            }
        }
    }
    Ok((hist, start, Instant::now()))
}

/// One consumer task: pulls and acks until the run has every record.
async fn consume(js: jetstream::Context, args: Args, receipts: Arc<Receipts>) -> Result<(), BoxError> {
    let c: consumer::PullConsumer = js.get_stream(&args.name).await?.get_consumer(CONSUMER_NAME).await?;
    let mut messages = c.stream().max_messages_per_batch(args.batch).messages().await?;
    let mut hist = histogram();
    while !receipts.done() {
        let asked = Instant::now();
        // Wake up now and then to notice that other tasks finished the run.
        let next = match tokio::time::timeout(Duration::from_millis(200), messages.next()).await {
            Ok(Some(m)) => m?,
            Ok(None) => return Err("the pull stream ended".into()),
            Err(_) => continue,
        };
        let waited = asked.elapsed();
        next.ack().await?;
        match receipts.count() {
            Some(true) if args.mode == Mode::E2e => hist.saturating_record(crate::since_stamp_micros(&next.payload)),
            Some(true) => hist.saturating_record(micros(waited)),
            Some(false) => {}
            None => break,
        }
    }
    receipts.merge(&hist);
    Ok(())
}

pub async fn run(args: &Args) -> Result<Outcome, BoxError> {
    let admin = context(args).await?;
    match args.mode {
        Mode::Produce => {
            fresh_stream(&admin, args).await?;
            let (hist, start, end) = run_producers(args, producer_contexts(args).await?, produce).await?;
            Ok(Outcome { records: args.records, secs: (end - start).as_secs_f64(), latencies: hist })
        }
        Mode::Consume => {
            fresh_consumer(&admin, args).await?;
            let receipts = Arc::new(Receipts::new(args.records + args.warmup, args.warmup));
            let start = Instant::now();
            let consumers = spawn_consumers(args, &receipts).await?;
            for c in consumers {
                c.await??;
            }
            finish(args, &receipts, start)
        }
        Mode::E2e => {
            fresh_stream(&admin, args).await?;
            fresh_consumer(&admin, args).await?;
            let receipts = Arc::new(Receipts::new(args.records + args.warmup, args.warmup));
            let consumers = spawn_consumers(args, &receipts).await?;
            let start = Instant::now();
            run_producers(args, producer_contexts(args).await?, produce).await?;
            for c in consumers {
                c.await??;
            }
            finish(args, &receipts, start)
        }
    }
}

async fn producer_contexts(args: &Args) -> Result<Vec<jetstream::Context>, BoxError> {
    let mut conns = Vec::new();
    for _ in 0..args.producers {
        conns.push(context(args).await?);
    }
    Ok(conns)
}

async fn spawn_consumers(
    args: &Args,
    receipts: &Arc<Receipts>,
) -> Result<Vec<tokio::task::JoinHandle<Result<(), BoxError>>>, BoxError> {
    let mut tasks = Vec::new();
    for _ in 0..args.consumers {
        let js = context(args).await?;
        tasks.push(tokio::spawn(consume(js, args.clone(), receipts.clone())));
    }
    Ok(tasks)
}
