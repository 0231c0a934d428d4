//! What the core costs per record (`cargo bench -p mq-core`): the produce path and
//! the fetch path through the broker state machine at batch sizes 1, 100 and 1,000,
//! and a leader answering follower fetches. Time is divan's wall clock around
//! sans-IO calls only (no I/O happens); divan's allocation profiler counts
//! allocations, so "allocs per record" is the alloc count divided by the records.

use bytes::Bytes;
use divan::counter::ItemsCount;
use divan::{AllocProfiler, Bencher};
use mq_core::controller::PartitionImage;
use mq_core::log::PartitionLog;
use mq_core::replication::Replica;
use mq_core::wire::{
    Acks, Message, Record, RecordBatch, ReplicaFetch, Request, RequestBody, Response, ResponseBody, TopicConfig,
};
use mq_core::{
    BrokerEpoch, ClientId, CorrelationId, Duration, Input, Instant, LeaderEpoch, Node, NodeConfig, NodeId, Offset,
    Output, PartitionId, Peer, TopicPartition,
};

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

const VALUE_BYTES: usize = 100;

/// A single-node broker, ready, with topic `t` of one partition; the driver loop of
/// the crate docs with an instant disk.
struct Driver {
    node: Node,
    now: Instant,
    corr: u64,
}

impl Driver {
    fn new() -> Self {
        let config = NodeConfig { max_pending_write_bytes: usize::MAX / 2, ..NodeConfig::default() };
        let mut d = Driver { node: Node::new(config, 1), now: Instant::ZERO, corr: 0 };
        while !d.node.is_ready() {
            d.now += Duration::from_millis(10);
            d.feed(Input::Timeout);
        }
        d.request(RequestBody::CreateTopic(TopicConfig::new("t", 1)));
        d
    }

    /// Feeds one input and completes every Persist at once; returns client replies.
    fn feed(&mut self, input: Input) -> usize {
        let mut pending = vec![input];
        let mut replies = 0;
        while let Some(i) = pending.pop() {
            self.node.handle(self.now, i);
            while let Some(o) = self.node.poll_output() {
                match o {
                    Output::Persist { token, .. } => pending.push(Input::Persisted { token }),
                    Output::Send { to: Peer::Client(_), .. } => replies += 1,
                    _ => {}
                }
            }
        }
        replies
    }

    fn request(&mut self, body: RequestBody) -> usize {
        self.corr += 1;
        let msg = Message::Request(Request { correlation: CorrelationId(self.corr), body });
        self.feed(Input::Message { from: Peer::Client(ClientId(1)), msg })
    }
}

fn batch(n: usize) -> RecordBatch {
    let value = Bytes::from(vec![b'x'; VALUE_BYTES]);
    RecordBatch::new((0..n).map(|_| Record::from_value(value.clone())).collect())
}

fn produce_body(b: &RecordBatch) -> RequestBody {
    RequestBody::Produce { topic: "t".into(), partition: PartitionId(0), acks: Acks::All, batch: b.clone() }
}

/// One acks=all produce of a batch, through append, Persist, HW and reply.
#[divan::bench(args = [1, 100, 1000])]
fn produce(bencher: Bencher<'_, '_>, records: usize) {
    let mut d = Driver::new();
    let b = batch(records);
    bencher.counter(ItemsCount::new(records)).bench_local(|| {
        let replies = d.request(produce_body(&b));
        assert_eq!(replies, 1);
    });
}

/// One consumer fetch returning `records` committed records.
#[divan::bench(args = [1, 100, 1000])]
fn fetch(bencher: Bencher<'_, '_>, records: usize) {
    let mut d = Driver::new();
    let b = batch(100);
    for _ in 0..100 {
        d.request(produce_body(&b));
    }
    let max_bytes = (records * b.records[0].size_bytes()) as u32;
    let mut offset = 0u64;
    bencher.counter(ItemsCount::new(records)).bench_local(|| {
        d.corr += 1;
        let body =
            RequestBody::Fetch { topic: "t".into(), partition: PartitionId(0), offset: Offset(offset), max_bytes };
        let msg = Message::Request(Request { correlation: CorrelationId(d.corr), body });
        d.node.handle(d.now, Input::Message { from: Peer::Client(ClientId(1)), msg });
        while let Some(o) = d.node.poll_output() {
            if let Output::Send {
                msg: Message::Response(Response { body: Ok(ResponseBody::Fetched { .. }), .. }),
                ..
            } = o
            {
                divan::black_box(o);
            }
        }
        offset = (offset + records as u64) % 9_000;
    });
}

/// A leader answering a follower's fetch of `records` records (the replication
/// module's side, without the node around it).
#[divan::bench(args = [1, 100, 1000])]
fn follower_fetch(bencher: Bencher<'_, '_>, records: usize) {
    let tp = TopicPartition::new("t", 0);
    let mut log = PartitionLog::new(tp.clone());
    for _ in 0..100 {
        log.append(batch(100), LeaderEpoch(1), 0);
    }
    log.mark_persisted(log.log_end());
    let mut r = Replica::new(log, 1);
    let state = PartitionImage {
        replicas: vec![NodeId(1), NodeId(2)],
        leader: Some(NodeId(1)),
        leader_epoch: LeaderEpoch(1),
        isr: vec![NodeId(1), NodeId(2)],
        partition_epoch: 1,
    };
    r.apply_state(NodeId(1), Instant::ZERO, &state);
    let max_bytes = records * batch(1).records[0].size_bytes();
    let mut offset = 0u64;
    bencher.counter(ItemsCount::new(records)).bench_local(|| {
        let f = ReplicaFetch {
            tp: tp.clone(),
            replica: NodeId(2),
            broker_epoch: BrokerEpoch(1),
            fetch_offset: Offset(offset),
            last_fetched_epoch: (offset > 0).then_some(LeaderEpoch(1)),
            current_leader_epoch: LeaderEpoch(1),
            max_bytes: u32::MAX,
            fetch_id: offset,
        };
        divan::black_box(r.handle_fetch(NodeId(1), Instant::ZERO, &f, max_bytes).unwrap());
        offset = (offset + records as u64) % 9_000;
    });
}
