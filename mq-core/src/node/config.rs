//! Broker node settings, with a fluent builder (the brief's part 08).

use crate::ids::NodeId;
use crate::time::Duration;

/// Settings of one broker node. Build with [`NodeConfig::builder`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// This broker's id.
    pub node_id: NodeId,
    /// Brokers in the cluster (this foundation runs single-node clusters).
    pub cluster_size: u32,
    /// Largest batch a producer may send.
    pub max_batch_bytes: usize,
    /// Cap on one fetch reply, whatever the consumer asks for.
    pub max_fetch_bytes: usize,
    /// Most topics the broker holds.
    pub max_topics: usize,
    /// Most partitions one topic may have.
    pub max_partitions_per_topic: u32,
    /// Most bytes of appended records waiting for their Persist; beyond it produce
    /// requests get a `Backpressure` error.
    pub max_pending_write_bytes: usize,
    /// Persists in flight at once; writes staged meanwhile share the next one
    /// (group commit).
    pub max_inflight_persists: usize,
    /// How often retention runs.
    pub retention_check_interval: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            node_id: NodeId(1),
            cluster_size: 1,
            max_batch_bytes: 1024 * 1024,
            max_fetch_bytes: 8 * 1024 * 1024,
            max_topics: 10_000,
            max_partitions_per_topic: 10_000,
            max_pending_write_bytes: 64 * 1024 * 1024,
            max_inflight_persists: 1,
            retention_check_interval: Duration::from_secs(5),
        }
    }
}

impl NodeConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> NodeConfigBuilder {
        NodeConfigBuilder(NodeConfig::default())
    }

    /// Checks the settings; the message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.node_id.0 == 0 {
            return Err("node_id must be at least 1".into());
        }
        if self.node_id.0 > self.cluster_size {
            return Err(format!("node_id {} is above cluster_size {}", self.node_id, self.cluster_size));
        }
        if self.max_batch_bytes == 0 || self.max_fetch_bytes == 0 {
            return Err("max_batch_bytes and max_fetch_bytes must be positive".into());
        }
        if self.max_inflight_persists == 0 {
            return Err("max_inflight_persists must be at least 1".into());
        }
        if self.retention_check_interval == Duration::ZERO {
            return Err("retention_check_interval must be positive".into());
        }
        Ok(())
    }
}

/// Fluent builder for [`NodeConfig`].
#[derive(Clone, Debug)]
pub struct NodeConfigBuilder(NodeConfig);

impl NodeConfigBuilder {
    /// Sets the node id.
    pub fn node_id(mut self, id: u32) -> Self {
        self.0.node_id = NodeId(id);
        self
    }
    /// Sets the number of brokers.
    pub fn cluster_size(mut self, n: u32) -> Self {
        self.0.cluster_size = n;
        self
    }
    /// Sets the largest accepted batch.
    pub fn max_batch_bytes(mut self, n: usize) -> Self {
        self.0.max_batch_bytes = n;
        self
    }
    /// Sets the cap on a fetch reply.
    pub fn max_fetch_bytes(mut self, n: usize) -> Self {
        self.0.max_fetch_bytes = n;
        self
    }
    /// Sets the most topics.
    pub fn max_topics(mut self, n: usize) -> Self {
        self.0.max_topics = n;
        self
    }
    /// Sets the most partitions per topic.
    pub fn max_partitions_per_topic(mut self, n: u32) -> Self {
        self.0.max_partitions_per_topic = n;
        self
    }
    /// Sets the bound on bytes waiting for persistence.
    pub fn max_pending_write_bytes(mut self, n: usize) -> Self {
        self.0.max_pending_write_bytes = n;
        self
    }
    /// Sets how many Persists may be in flight.
    pub fn max_inflight_persists(mut self, n: usize) -> Self {
        self.0.max_inflight_persists = n;
        self
    }
    /// Sets the retention period check.
    pub fn retention_check_interval(mut self, d: Duration) -> Self {
        self.0.retention_check_interval = d;
        self
    }
    /// Validates and returns the settings.
    pub fn build(self) -> Result<NodeConfig, String> {
        self.0.validate()?;
        Ok(self.0)
    }
}
