//! Client state machines (producer, consumer, group consumer), sans-IO like the broker node
//! (DESIGN.md sections 2, 6 and 7).
//!
//! All follow the core contract: `handle(now, input)` feeds one [`crate::Input`]
//! (a broker's response, a timeout, a closed connection), `poll_output()` drains what
//! the client wants sent and what it has to report, and `poll_timeout()` says when it
//! next needs [`crate::Input::Timeout`]. They never read a clock or open a socket.
//!
//! The [`Producer`] batches, partitions, retries and deduplicates (DESIGN.md
//! section 6); [`partitioner`] holds its partitioners (explicit, key hash, round
//! robin, weighted, random). The [`Consumer`] reads one partition, following its
//! leader. The [`GroupConsumer`] is a member of a consumer group (section 7,
//! docs/consumers.md section 6.6): membership, pull or push delivery from the
//! partition leaders, and acks confirmed once committed.

pub mod auth;
mod consumer;
mod group_consumer;
pub mod partitioner;
mod producer;
mod retry;

pub use auth::Credentials;
pub use consumer::{Consumer, ConsumerConfig, ConsumerOutput};
pub use group_consumer::{
    AckError, ConsumedRecord, Delivery, GroupConsumer, GroupConsumerConfig, GroupConsumerConfigError,
    GroupConsumerOutput, GroupEvent,
};
pub use partitioner::{
    choose_partition, key_partition, murmur2, PartitionError, Partitioner, PartitionerConfigError, PartitionerKind,
};
pub use producer::{
    ProduceError, ProduceOutcome, Producer, ProducerConfig, ProducerConfigError, ProducerOutput, SendId, SendRequest,
};
