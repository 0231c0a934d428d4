//! Broker node settings, with a fluent builder (the brief's part 08).

use crate::ids::NodeId;
use crate::time::Duration;

/// Settings of one broker node. Build with [`NodeConfig::builder`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// This broker's id.
    pub node_id: NodeId,
    /// Brokers in the cluster, with ids `1..=cluster_size`.
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
    /// The controller voters (a subset of `1..=cluster_size`).
    pub voters: Vec<NodeId>,
    /// Raft's minimum election timeout.
    pub election_timeout: Duration,
    /// Raft's heartbeat interval.
    pub raft_heartbeat_interval: Duration,
    /// Most metadata entries in one Raft `Append`.
    pub raft_max_entries_per_append: usize,
    /// Producer ids the controller hands out per allocation request.
    pub producer_id_block: u64,
    /// How often a broker heartbeats to the controller.
    pub broker_heartbeat_interval: Duration,
    /// A broker silent this long is fenced by the controller.
    pub session_timeout: Duration,
    /// How much shorter than `session_timeout` a broker's delivery lease is
    /// (docs/consumers.md, "Failover"): the clock error tolerated between a
    /// broker and the controller over one session (rate drift, a process
    /// that reads its monotonic clock late). `None`: a quarter of the session.
    pub lease_clock_margin: Option<Duration>,
    /// A follower not caught up within this long leaves the ISR.
    pub replica_lag_time: Duration,
    /// How long a leader holds a follower's fetch that has nothing new.
    pub replica_fetch_max_wait: Duration,
    /// Most bytes a follower asks for in one fetch, and a leader sends in one
    /// answer (at least one batch whatever the limit).
    pub replica_fetch_max_bytes: u32,
    /// How long a broker waits for the controller before retrying.
    pub controller_request_timeout: Duration,
    /// How long a broker waits for an admin request it forwarded to the
    /// controller (create or delete a topic, principals, grants) to be decided
    /// and applied before answering its client `Timeout` (Kafka's admin client
    /// sends CreateTopics with a 30 s `timeout_ms` by default).
    pub admin_timeout: Duration,
    /// How long an `acks=all` produce may wait for the HW before a `Timeout` reply.
    pub produce_timeout: Duration,
    /// How often a non-voter fetches committed metadata.
    pub metadata_fetch_interval: Duration,
    /// Most acks=all replies waiting per partition.
    pub max_waiters_per_partition: usize,
    /// Partitions of `__groups`, created on demand: each partition's leader
    /// coordinates the groups that hash to it (docs/consumers.md).
    pub group_coordinator_partitions: u32,
    /// Replicas of each `__groups` partition (fewer if fewer brokers are live when
    /// it is created).
    pub group_replication_factor: u16,
    /// Limits the group coordinators enforce.
    pub groups: crate::group::coordinator::GroupConfig,
    /// Authentication and ACLs (docs/security.md); `None`: every client may do
    /// everything (development and single-user setups).
    pub auth: Option<AuthConfig>,
    /// BUGGIFY's seed (docs/simulator.md "BUGGIFY"; `crate::buggify`): when set,
    /// the node and its Raft replica take legal but rare paths at named points.
    /// Only the simulator sets it; `None` (the default) turns every point off.
    pub buggify: Option<u64>,
}

/// Authentication settings of a broker (docs/security.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// The bootstrap admin principal: allowed everything, known to every broker
    /// from its configuration (so the first principals and grants can be made).
    pub admin_app_key: String,
    /// The admin's salted credential (never its secret).
    pub admin_credential: crate::security::StoredCredential,
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
            voters: vec![NodeId(1)],
            election_timeout: Duration::from_millis(1000),
            raft_heartbeat_interval: Duration::from_millis(100),
            raft_max_entries_per_append: 256,
            producer_id_block: 1000,
            broker_heartbeat_interval: Duration::from_millis(500),
            session_timeout: Duration::from_secs(3),
            lease_clock_margin: None,
            replica_lag_time: Duration::from_secs(3),
            replica_fetch_max_wait: Duration::from_millis(500),
            replica_fetch_max_bytes: 1024 * 1024,
            controller_request_timeout: Duration::from_secs(2),
            admin_timeout: Duration::from_secs(30),
            produce_timeout: Duration::from_secs(10),
            metadata_fetch_interval: Duration::from_millis(200),
            max_waiters_per_partition: 10_000,
            group_coordinator_partitions: 8,
            group_replication_factor: 3,
            groups: crate::group::coordinator::GroupConfig::default(),
            auth: None,
            buggify: None,
        }
    }
}

impl NodeConfig {
    /// How long an unfenced heartbeat answer lets a broker deal group records,
    /// counted from when it sent that heartbeat: the session less the clock
    /// margin (docs/consumers.md, "Failover").
    pub fn delivery_lease(&self) -> Duration {
        let margin = self.lease_clock_margin.unwrap_or(Duration::from_nanos(self.session_timeout.as_nanos() / 4));
        Duration::from_nanos(self.session_timeout.as_nanos().saturating_sub(margin.as_nanos()))
    }

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
        if self.max_pending_write_bytes < self.max_batch_bytes {
            return Err(
                "max_pending_write_bytes must be at least max_batch_bytes (else a full batch is never taken)".into()
            );
        }
        if self.raft_max_entries_per_append == 0 || self.replica_fetch_max_bytes == 0 || self.producer_id_block == 0 {
            return Err(
                "raft_max_entries_per_append, replica_fetch_max_bytes and producer_id_block must be positive".into()
            );
        }
        if self.max_waiters_per_partition == 0 {
            return Err("max_waiters_per_partition must be at least 1".into());
        }
        if self.retention_check_interval == Duration::ZERO {
            return Err("retention_check_interval must be positive".into());
        }
        if self.voters.is_empty() || self.voters.iter().any(|v| v.0 == 0 || v.0 > self.cluster_size) {
            return Err(format!(
                "voters {:?} must be a non-empty subset of brokers 1..={}",
                self.voters, self.cluster_size
            ));
        }
        let timings = [
            ("election_timeout", self.election_timeout),
            ("raft_heartbeat_interval", self.raft_heartbeat_interval),
            ("broker_heartbeat_interval", self.broker_heartbeat_interval),
            ("session_timeout", self.session_timeout),
            ("replica_lag_time", self.replica_lag_time),
            ("replica_fetch_max_wait", self.replica_fetch_max_wait),
            ("controller_request_timeout", self.controller_request_timeout),
            ("admin_timeout", self.admin_timeout),
            ("produce_timeout", self.produce_timeout),
            ("metadata_fetch_interval", self.metadata_fetch_interval),
        ];
        if let Some((name, _)) = timings.iter().find(|(_, d)| *d == Duration::ZERO) {
            return Err(format!("{name} must be positive"));
        }
        if self.group_coordinator_partitions == 0 || self.group_coordinator_partitions > self.max_partitions_per_topic {
            return Err("group_coordinator_partitions must be between 1 and max_partitions_per_topic".into());
        }
        if self.group_replication_factor == 0 {
            return Err("group_replication_factor must be at least 1".into());
        }
        if self.groups.min_session_timeout > self.groups.max_session_timeout || self.groups.max_members_per_group == 0 {
            return Err(
                "groups: min_session_timeout must not exceed max_session_timeout; max_members_per_group >= 1".into()
            );
        }
        if self.raft_heartbeat_interval >= self.election_timeout {
            return Err("raft_heartbeat_interval must be shorter than election_timeout".into());
        }
        if self.broker_heartbeat_interval >= self.session_timeout {
            return Err("broker_heartbeat_interval must be shorter than session_timeout".into());
        }
        if self.broker_heartbeat_interval >= self.delivery_lease() {
            return Err(
                "broker_heartbeat_interval must be shorter than the delivery lease (session_timeout less lease_clock_margin)"
                    .into(),
            );
        }
        if self.replica_fetch_max_wait > self.replica_lag_time {
            // Kafka's rule: a follower's fetch held this long must not count as lag.
            return Err("replica_fetch_max_wait must not exceed replica_lag_time".into());
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
    /// Sets the controller voters.
    pub fn voters(mut self, voters: &[u32]) -> Self {
        self.0.voters = voters.iter().map(|v| NodeId(*v)).collect();
        self
    }
    /// Sets the broker session timeout.
    pub fn session_timeout(mut self, d: Duration) -> Self {
        self.0.session_timeout = d;
        self
    }
    /// Sets the clock margin of the delivery lease ([`NodeConfig::lease_clock_margin`]).
    pub fn lease_clock_margin(mut self, d: Duration) -> Self {
        self.0.lease_clock_margin = Some(d);
        self
    }
    /// Sets the replica lag time.
    pub fn replica_lag_time(mut self, d: Duration) -> Self {
        self.0.replica_lag_time = d;
        self
    }
    /// Sets the acks=all produce timeout.
    pub fn produce_timeout(mut self, d: Duration) -> Self {
        self.0.produce_timeout = d;
        self
    }
    /// Validates and returns the settings.
    pub fn build(self) -> Result<NodeConfig, String> {
        self.0.validate()?;
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(NodeConfig::default().validate(), Ok(()));
    }

    #[test]
    fn a_pending_write_bound_below_the_largest_batch_is_refused() {
        let c = NodeConfig { max_pending_write_bytes: 1000, max_batch_bytes: 1001, ..NodeConfig::default() };
        assert!(c.validate().unwrap_err().contains("max_pending_write_bytes"));
        assert_eq!(NodeConfig { max_pending_write_bytes: 1001, ..c }.validate(), Ok(()));
    }

    #[test]
    fn a_replica_fetch_wait_above_the_lag_time_is_refused() {
        let c = NodeConfig {
            replica_lag_time: Duration::from_millis(100),
            replica_fetch_max_wait: Duration::from_millis(101),
            ..NodeConfig::default()
        };
        assert!(c.validate().unwrap_err().contains("replica_fetch_max_wait"));
        let ok = NodeConfig { replica_fetch_max_wait: Duration::from_millis(100), ..c };
        assert_eq!(ok.validate(), Ok(()));
    }

    #[test]
    fn zero_entries_per_append_fetch_bytes_or_id_block_are_refused() {
        for c in [
            NodeConfig { raft_max_entries_per_append: 0, ..NodeConfig::default() },
            NodeConfig { replica_fetch_max_bytes: 0, ..NodeConfig::default() },
            NodeConfig { producer_id_block: 0, ..NodeConfig::default() },
            NodeConfig { max_waiters_per_partition: 0, ..NodeConfig::default() },
        ] {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }
}
