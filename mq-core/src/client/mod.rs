//! Client state machines (producer and consumer), sans-IO like the broker node
//! (DESIGN.md sections 2, 6 and 7).
//!
//! Both follow the core contract: `handle(now, input)` feeds one [`crate::Input`]
//! (a broker's response, a timeout, a closed connection), `poll_output()` drains what
//! the client wants sent and what it has to report, and `poll_timeout()` says when it
//! next needs [`crate::Input::Timeout`]. They never read a clock or open a socket.
//!
//! This first version is deliberately small: one broker per client, one request
//! deadline, no retries. Later steps grow the producer (batching, idempotence) and
//! the consumer (groups, acks) in this module. [`partitioner`] holds the
//! producer-side partitioners (explicit, key hash, round robin, weighted, random).

mod consumer;
pub mod partitioner;
mod producer;

pub use consumer::{Consumer, ConsumerConfig, ConsumerOutput};
pub use partitioner::{
    choose_partition, key_partition, murmur2, PartitionError, Partitioner, PartitionerConfigError, PartitionerKind,
};
pub use producer::{
    ProduceError, ProduceOutcome, Producer, ProducerConfig, ProducerConfigError, ProducerOutput, SendId, SendRequest,
};
