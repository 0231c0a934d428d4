//! Redis Streams: one stream key, one consumer group.
//!
//! - Producers: one connection each; records go out as pipelines of `--inflight`
//!   `XADD key * d <payload>` commands, one pipeline round trip at a time per producer.
//!   Latency of each record: its pipeline's send to the pipeline's replies.
//! - Consumers: one consumer group (`XGROUP CREATE .. 0`), one group member per task,
//!   each on its own connection: `XREADGROUP GROUP g cN COUNT --batch BLOCK 200 STREAMS
//!   key >`, and the ids of each batch acked with one `XACK` sent in the same pipeline
//!   as the next `XREADGROUP`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use redis::Value;
use tokio::sync::Barrier;

use crate::{
    finish, histogram, micros, payload, run_producers, Args, BoxError, Mode, Outcome, ProducerResult, Receipts,
};

const GROUP: &str = "bench";
const FIELD: &str = "d";

fn url(args: &Args) -> String {
    args.url.clone().unwrap_or_else(|| "redis://127.0.0.1:6379/".to_string())
}

async fn connect(args: &Args) -> Result<MultiplexedConnection, BoxError> {
    let client = redis::Client::open(url(args))?;
    let mut con = client.get_multiplexed_async_connection().await?;
    // The crate's default (500 ms) is shorter than an fsync-bound pipeline on a busy disk.
    con.set_response_timeout(Duration::from_secs(60));
    Ok(con)
}

async fn fresh_stream(con: &mut MultiplexedConnection, args: &Args) -> Result<(), BoxError> {
    redis::cmd("DEL").arg(&args.name).query_async::<()>(con).await?;
    Ok(())
}

/// Creates the consumer group anew at the start of the stream.
async fn fresh_group(con: &mut MultiplexedConnection, args: &Args) -> Result<(), BoxError> {
    let _ = redis::cmd("XGROUP").arg("DESTROY").arg(&args.name).arg(GROUP).query_async::<Value>(con).await;
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&args.name)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async::<()>(con)
        .await?;
    Ok(())
}

async fn produce(
    mut con: MultiplexedConnection,
    args: Args,
    first_seq: u64,
    warmup: u64,
    records: u64,
    barrier: Arc<Barrier>,
) -> ProducerResult {
    let mut hist = histogram();
    let mut seq = first_seq;
    let mut start = Instant::now();
    for phase in 0..2 {
        let (mut left, timed) = if phase == 0 {
            (warmup, false)
        } else {
            barrier.wait().await;
            start = Instant::now();
            (records, true)
        };
        while left > 0 {
            let n = left.min(args.inflight as u64);
            let mut pipe = redis::pipe();
            for _ in 0..n {
                pipe.cmd("XADD").arg(&args.name).arg("*").arg(FIELD).arg(payload(args.record_size, seq).as_ref());
                seq += 1;
            }
            let sent = Instant::now();
            let ids: Vec<String> = pipe.query_async(&mut con).await?;
            if ids.len() as u64 != n {
                return Err(format!("XADD pipeline of {n} returned {} ids", ids.len()).into());
            }
            if timed {
                hist.saturating_record_n(micros(sent.elapsed()), n);
            }
            left -= n;
        }
    }
    Ok((hist, start, Instant::now()))
}

fn field_bytes(v: &Value) -> &[u8] {
    match v {
        Value::BulkString(b) => b,
        _ => &[],
    }
}

async fn consume(
    mut con: MultiplexedConnection,
    args: Args,
    member: String,
    receipts: Arc<Receipts>,
) -> Result<(), BoxError> {
    let mut hist = histogram();
    let mut to_ack: Vec<String> = Vec::new();
    while !receipts.done() {
        let mut pipe = redis::pipe();
        if !to_ack.is_empty() {
            pipe.cmd("XACK").arg(&args.name).arg(GROUP).arg(&to_ack).ignore();
        }
        pipe.cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&member)
            .arg("COUNT")
            .arg(args.batch)
            // Wake up now and then to notice that other members finished the run.
            .arg("BLOCK")
            .arg(200)
            .arg("STREAMS")
            .arg(&args.name)
            .arg(">");
        let asked = Instant::now();
        let (reply,): (Option<StreamReadReply>,) = pipe.query_async(&mut con).await?;
        let waited = micros(asked.elapsed());
        to_ack.clear();
        let Some(reply) = reply else { continue };
        let mut first = true;
        for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
            let data = entry.map.get(FIELD).map(field_bytes).unwrap_or(&[]);
            let latency = match args.mode {
                Mode::E2e => crate::since_stamp_micros(data),
                // The first record of a batch waited for the round trip, the rest not.
                _ if first => waited,
                _ => 0,
            };
            first = false;
            match receipts.count() {
                Some(true) => hist.saturating_record(latency),
                Some(false) => {}
                None => break,
            }
            to_ack.push(entry.id);
        }
    }
    if !to_ack.is_empty() {
        redis::cmd("XACK").arg(&args.name).arg(GROUP).arg(&to_ack).query_async::<()>(&mut con).await?;
    }
    receipts.merge(&hist);
    Ok(())
}

async fn producer_connections(args: &Args) -> Result<Vec<MultiplexedConnection>, BoxError> {
    let mut conns = Vec::new();
    for _ in 0..args.producers {
        conns.push(connect(args).await?);
    }
    Ok(conns)
}

async fn spawn_consumers(
    args: &Args,
    receipts: &Arc<Receipts>,
) -> Result<Vec<tokio::task::JoinHandle<Result<(), BoxError>>>, BoxError> {
    let mut tasks = Vec::new();
    for i in 0..args.consumers {
        let con = connect(args).await?;
        tasks.push(tokio::spawn(consume(con, args.clone(), format!("c{i}"), receipts.clone())));
    }
    Ok(tasks)
}

pub async fn run(args: &Args) -> Result<Outcome, BoxError> {
    let mut admin = connect(args).await?;
    match args.mode {
        Mode::Produce => {
            fresh_stream(&mut admin, args).await?;
            let (hist, start, end) = run_producers(args, producer_connections(args).await?, produce).await?;
            Ok(Outcome { records: args.records, secs: (end - start).as_secs_f64(), latencies: hist })
        }
        Mode::Consume => {
            let len: u64 = redis::cmd("XLEN").arg(&args.name).query_async(&mut admin).await?;
            if len < args.records + args.warmup {
                return Err(format!(
                    "stream {} holds {len} records, fewer than --records + --warmup; run the produce mode first",
                    args.name
                )
                .into());
            }
            fresh_group(&mut admin, args).await?;
            let receipts = Arc::new(Receipts::new(args.records + args.warmup, args.warmup));
            let start = Instant::now();
            for c in spawn_consumers(args, &receipts).await? {
                c.await??;
            }
            finish(args, &receipts, start)
        }
        Mode::E2e => {
            fresh_stream(&mut admin, args).await?;
            fresh_group(&mut admin, args).await?;
            let receipts = Arc::new(Receipts::new(args.records + args.warmup, args.warmup));
            let consumers = spawn_consumers(args, &receipts).await?;
            let start = Instant::now();
            run_producers(args, producer_connections(args).await?, produce).await?;
            for c in consumers {
                c.await??;
            }
            finish(args, &receipts, start)
        }
    }
}
