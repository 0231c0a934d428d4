//! The producer: batched, idempotent sends with their partition and offset.
//!
//! ```sh
//! mq broker &                                   # or: cargo run -p mq-net --bin mq -- broker
//! cargo run -p mq-net --example produce         # MQ_BOOTSTRAP=1=h:p,2=h:p,.. for a cluster
//! ```

use mq_net::{Acks, Client, ClientError, ErrorCode, NewTopic, Producer, Record, SendRequest};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    let bootstrap = std::env::var("MQ_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let admin = Client::connect(&bootstrap, Duration::from_secs(3)).await?;
    match admin.create_topic(NewTopic::new("example", 2)).await {
        Ok(()) => {}
        Err(e) if e.code() == Some(ErrorCode::TopicExists) => {}
        Err(e) => return Err(e),
    }
    // Fails fast with a clear error when no broker answers within the timeout.
    let producer = Producer::builder()
        .bootstrap(bootstrap)
        .connect_timeout(Duration::from_secs(3))
        .topic("example")
        .acks(Acks::All)
        .linger(Duration::from_millis(5))
        .build()
        .await?;

    // One send at a time: each waits for its acknowledgement.
    let d = producer.send(Record::keyed("user-1", "signed up")).await?;
    println!("signed up -> partition {} offset {}", d.partition, d.offset);

    // Many sends in flight: they pack into batches; outcomes come back in order.
    let mut pending = Vec::new();
    for i in 0..10 {
        let record = Record::keyed(format!("user-{}", i % 3), format!("event {i}"));
        pending.push((i, producer.enqueue(SendRequest::new("example").record(record)).await?));
    }
    for (i, p) in pending {
        let d = p.await?;
        println!("event {i} -> partition {} offset {}", d.partition, d.offset);
    }

    // Fire and forget, then make sure it left before exiting.
    producer.send_oneway(Record::from_value("heartbeat")).await?;
    producer.close(Duration::from_secs(5)).await
}
