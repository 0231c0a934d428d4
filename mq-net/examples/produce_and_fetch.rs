//! Produce a few records and read them back.
//!
//! ```sh
//! mq broker &                                   # or: cargo run -p mq-net --bin mq -- broker
//! cargo run -p mq-net --example produce_and_fetch
//! ```

use mq_net::{Acks, Client, ClientError, ErrorCode, NewTopic, OffsetSpec, Record};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    let client = Client::connect("127.0.0.1:9092", Duration::from_secs(3)).await?;
    match client.create_topic(NewTopic::new("example", 2)).await {
        Ok(()) => {}
        Err(e) if e.code() == Some(ErrorCode::TopicExists) => {}
        Err(e) => return Err(e),
    }
    let producer = client.producer("example").acks(Acks::All).build().await?;
    for i in 0..4 {
        let d = producer.send(Record::keyed(format!("user-{}", i % 2), format!("event {i}"))).await?;
        println!("sent event {i} to partition {} offset {}", d.partition, d.offset);
    }
    for p in 0..2 {
        let start = client.list_offsets("example", p, OffsetSpec::Earliest).await?;
        let fetched = client.fetch("example", p, start, 1 << 20).await?;
        for (offset, r) in fetched.records_from(start) {
            println!("partition {p} offset {offset}: {}", String::from_utf8_lossy(&r.value));
        }
    }
    Ok(())
}
