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
//! // A single-node cluster: the node is its own controller quorum.
//! let mut node = Node::new(NodeConfig::default(), 42);
//! let mut disk = DurableState::default();
//! let mut now = Instant::ZERO;
//! let mut replies = Vec::new();
//! let mut pending = std::collections::VecDeque::new();
//! let mut asked = false;
//! for _ in 0..10_000 {
//!     let input = match pending.pop_front() {
//!         Some(input) => input,
//!         None if node.is_ready() && !asked => {
//!             asked = true;
//!             let body = RequestBody::CreateTopic(TopicConfig::new("orders", 3));
//!             let msg = Message::Request(Request { correlation: CorrelationId(1), body });
//!             Input::Message { from: Peer::Client(ClientId(1)), msg }
//!         }
//!         None => {
//!             // Nothing to do: sleep until the node's next deadline.
//!             now = node.poll_timeout().map_or(now, |t| t.max(now));
//!             Input::Timeout
//!         }
//!     };
//!     node.handle(now, input);
//!     // Drain every output after every input.
//!     while let Some(output) = node.poll_output() {
//!         match output {
//!             Output::Send { to: Peer::Client(_), msg } => replies.push(msg),
//!             Output::Persist { token, writes } => {
//!                 disk.apply_all(&writes); // a real driver fsyncs here
//!                 pending.push_back(Input::Persisted { token });
//!             }
//!             Output::Send { .. } | Output::Close { .. } | Output::Event(_) => {}
//!         }
//!     }
//!     if !replies.is_empty() {
//!         break;
//!     }
//!     now = now + Duration::from_millis(1);
//! }
//! // The topic was acknowledged once its creation was committed and durable.
//! assert!(matches!(
//!     &replies[0],
//!     Message::Response(Response { body: Ok(ResponseBody::TopicCreated), .. })
//! ));
//! assert!(node.topic_names().any(|t| t == "orders"));
//! assert!(!disk.raft.entries.is_empty());
//! ```
//!
//! Bad input from a peer or client gets an error reply or a closed connection, never
//! a panic; a broken internal invariant panics (`check_invariants` runs after every
//! input in debug builds).

pub mod buggify;
pub mod client;
pub mod contract;
pub mod controller;
pub mod coverage;
pub mod group;
pub mod ids;
pub mod log;
pub mod node;
pub mod replication;
pub mod rng;
pub mod security;
pub mod storage;
pub mod time;
pub mod wire;

#[cfg(feature = "test-util")]
pub mod harness;

pub use contract::{Event, Input, Output, Peer, PersistToken};
pub use coverage::{Coverage, Mark};
pub use ids::{
    BrokerEpoch, ClientId, CorrelationId, Generation, GroupGeneration, LeaderEpoch, MemberId, NodeId, Offset,
    PartitionId, ProducerEpoch, ProducerId, Sequence, Term, TopicPartition,
};
pub use node::{Node, NodeConfig};
pub use rng::{Rng, Seed};
pub use time::{Duration, Instant};
