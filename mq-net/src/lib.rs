//! # mq-net
//!
//! mq's production adapter (DESIGN.md section 10): the same sans-IO
//! [`mq_core::Node`] the simulator runs, driven by tokio with real sockets, files and
//! fsync, plus the `mq` binary and an async client library.
//!
//! - [`Broker`]: one node task feeding the core one input at a time
//!   ([`broker`]), TCP connections framed by the core's codec for clients and for
//!   the links among brokers (`transport`), and a storage thread writing segment
//!   files and the Raft log ([`storage`]).
//! - [`Client`]: the async request layer for applications and the CLI; routes to
//!   partition leaders from cluster metadata and retries across failover.
//! - [`Producer`]: mq-core's producer machine (batching, partitioners, idempotent
//!   retries) driven by one task over TCP ([`producer`]).
//! - [`Consumer`]: mq-core's group consumer machine (membership, pull or push
//!   delivery, acks) driven by one task, as a `Stream` of records to ack
//!   ([`consumer`]).
//! - [`BrokerConfig`]: the TOML file and flags of `mq broker`.
//!
//! No protocol decision lives here: every `if` about the protocol is in mq-core.

// This crate owns the broker's clock (clock.rs); the workspace bans clock reads
// elsewhere so the core and the simulator stay deterministic.
#![allow(clippy::disallowed_methods)]

pub mod broker;
pub mod client;
pub mod clock;
pub mod config;
pub mod consumer;
pub mod producer;
mod rt;
pub mod storage;
mod transport;

pub use broker::{Broker, BrokerError};
pub use client::{
    partition_for_key, Appended, BrokerView, Client, ClientBuilder, ClientError, ClusterMetadata, Fetched, NewTopic,
};
pub use config::{AuthSettings, BrokerConfig, ConfigError, FsyncPolicy, Secret};
pub use consumer::{Consumer, ConsumerBuilder, Received};
pub use mq_core::client::{PartitionerKind, SendRequest};
pub use mq_core::group::{assign::Assignor, GroupMode};
pub use mq_core::security::acl::{Grant, Operation, Resource};
pub use mq_core::wire::{Acks, ErrorCode, OffsetSpec, Record};
pub use mq_core::Offset;
pub use producer::{Delivery, PendingDelivery, Producer, ProducerBuilder};
