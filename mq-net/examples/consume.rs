//! The group consumer: join a shared group, print and ack records, leave.
//!
//! ```sh
//! mq broker &                                   # or: cargo run -p mq-net --bin mq -- broker
//! cargo run -p mq-net --example produce         # some records in topic "example"
//! cargo run -p mq-net --example consume         # run it twice at once: they share the records
//! ```
//!
//! Against brokers with `[auth]`, set `MQ_APP_KEY` and `MQ_APP_SECRET` (a principal
//! with `consume` on topic `example` and group `example-workers`).

use mq_net::{ClientError, Consumer, GroupMode};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    let bootstrap = std::env::var("MQ_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let mut builder = Consumer::builder()
        .bootstrap(bootstrap)
        .connect_timeout(Duration::from_secs(3))
        .group("example-workers")
        .topic("example")
        .mode(GroupMode::Shared);
    if let (Ok(key), Ok(secret)) = (std::env::var("MQ_APP_KEY"), std::env::var("MQ_APP_SECRET")) {
        builder = builder.credentials(key, secret);
    }
    let mut consumer = builder.build().await?;
    // Stop after 5 s without a record.
    while let Ok(Some(received)) = tokio::time::timeout(Duration::from_secs(5), consumer.next()).await {
        let received = received?;
        println!(
            "{}/{} (delivery {}): {}",
            received.partition(),
            received.offset(),
            received.delivery(),
            String::from_utf8_lossy(received.value())
        );
        received.ack().await?;
    }
    // Confirms the acks, then leaves the group: a restart does not see these again.
    consumer.close(Duration::from_secs(5)).await
}
