//! The metadata quorum (DESIGN.md section 4): Raft among the controller voters over
//! a log of [`MetadataRecord`]s. [`quorum`] turns broker heartbeats and requests into
//! records on the active controller; every broker applies the committed records to
//! its [`MetadataImage`].

pub mod image;
pub mod metadata;
pub mod quorum;
pub mod raft;

#[cfg(test)]
mod quorum_tests;
#[cfg(test)]
mod raft_tests;

pub use image::{BrokerImage, MetadataImage, PartitionImage, TopicImage};
pub use metadata::MetadataRecord;
pub use quorum::{ControllerConfig, ControllerRequest, QuorumController};
pub use raft::{Raft, RaftConfig, RaftDurable, RaftMessage, RaftOutput, RaftRole, RaftWrite};
