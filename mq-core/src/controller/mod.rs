//! The metadata quorum (DESIGN.md section 4): Raft among the controller voters over
//! a log of [`MetadataRecord`]s. Later steps add the controller that turns broker
//! heartbeats and requests into records, and the brokers that follow the log.

pub mod metadata;
pub mod raft;

#[cfg(test)]
mod raft_tests;

pub use metadata::MetadataRecord;
pub use raft::{Raft, RaftConfig, RaftDurable, RaftMessage, RaftOutput, RaftRole, RaftWrite};
