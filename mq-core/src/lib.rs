//! # mq-core
//!
//! The sans-IO core of mq: every protocol decision of the message queue lives in
//! state machines that never touch a socket, a file, a clock or a global random
//! number generator (DESIGN.md section 2, docs/architecture.md). The same code runs
//! under the deterministic simulator (`mq-sim`) and in production (`mq-net`).
//!
//! Every machine has the same shape: `handle(now, input)` feeds one [`Input`],
//! `poll_output()` drains [`Output`]s until `None`, and `poll_timeout()` says when
//! to feed [`Input::Timeout`]. Writes that must be durable leave as
//! [`Output::Persist`]; the driver makes them durable and answers
//! [`Input::Persisted`]. A driver loop looks like this:
//!
//! ```
//! use mq_core::{Input, Instant, Duration, Node, NodeConfig, Output, Peer, ClientId, CorrelationId};
//! use mq_core::storage::DurableState;
//! use mq_core::wire::{Message, Request, RequestBody, TopicConfig, Response, ResponseBody};
//!
//! let mut node = Node::new(NodeConfig::default(), 42);
//! let mut disk = DurableState::default();
//! let mut now = Instant::ZERO;
//! let client = Peer::Client(ClientId(1));
//! let mut inputs = vec![Input::Message {
//!     from: client,
//!     msg: Message::Request(Request {
//!         correlation: CorrelationId(1),
//!         body: RequestBody::CreateTopic(TopicConfig::new("orders", 3)),
//!     }),
//! }];
//! let mut replies = Vec::new();
//! while let Some(input) = inputs.pop() {
//!     node.handle(now, input);
//!     // Drain every output after every input.
//!     while let Some(output) = node.poll_output() {
//!         match output {
//!             Output::Send { to, msg } => replies.push((to, msg)),
//!             Output::Persist { token, writes } => {
//!                 disk.apply_all(&writes); // a real driver fsyncs here
//!                 inputs.push(Input::Persisted { token });
//!             }
//!             Output::Close { .. } | Output::Event(_) => {}
//!         }
//!     }
//!     if inputs.is_empty() && node.poll_timeout().is_some_and(|t| t <= now) {
//!         inputs.push(Input::Timeout);
//!     }
//!     now = now + Duration::from_millis(1);
//! }
//! // The topic was acknowledged only after its creation was durable.
//! assert!(disk.topics.contains_key("orders"));
//! assert!(matches!(
//!     &replies[0].1,
//!     Message::Response(Response { body: Ok(ResponseBody::TopicCreated), .. })
//! ));
//! ```
//!
//! Bad input from a peer or client gets an error reply or a closed connection, never
//! a panic; a broken internal invariant panics (`check_invariants` runs after every
//! input in debug builds).

pub mod client;
pub mod contract;
pub mod controller;
pub mod ids;
pub mod log;
pub mod node;
pub mod rng;
pub mod storage;
pub mod time;
pub mod wire;

#[cfg(feature = "test-util")]
pub mod harness;

pub use contract::{Event, Input, Output, Peer, PersistToken};
pub use ids::{
    BrokerEpoch, ClientId, CorrelationId, Generation, LeaderEpoch, MemberId, NodeId, Offset, PartitionId,
    ProducerEpoch, ProducerId, Sequence, Term, TopicPartition,
};
pub use node::{Node, NodeConfig};
pub use rng::{Rng, Seed};
pub use time::{Duration, Instant};
