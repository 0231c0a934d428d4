//! Broker settings: an embedded default, a TOML file, and command-line flags on top
//! (flags win). `mq broker` with no arguments runs a single-node cluster on
//! 127.0.0.1:9092 with data in `./mq-data` (DESIGN.md section 10).

use mq_core::{Duration, NodeConfig, NodeId};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Everything `mq broker` can be told, in TOML or by flags. See docs/operations.md.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// This broker's id (1..=N).
    pub id: u32,
    /// Address to listen on for clients and other brokers (`host:port`; port 0
    /// picks a free one, which only a single broker can use).
    pub listen: String,
    /// Directory for the Raft log (`raft.wal`) and partition logs.
    pub data_dir: PathBuf,
    /// Every broker of the cluster by id, `"1" = "host:port"`, this broker
    /// included; ids are 1..=N. Every broker gets the same table. Empty: this broker
    /// alone (id 1). Brokers dial each other at these addresses, so each must be
    /// the address the broker's `listen` is reachable at.
    pub peers: BTreeMap<String, String>,
    /// The controller voters (Raft metadata quorum). Empty: the first min(3, N)
    /// ids.
    pub voters: Vec<u32>,
    /// Seed of the core's random streams; unset: drawn from the clock at start and
    /// logged so a run can be reproduced.
    pub seed: Option<u64>,
    /// Most client connections at once; further ones are closed on accept.
    pub max_connections: usize,
    /// Largest frame accepted or sent (bytes after the length prefix).
    pub max_frame_bytes: usize,
    /// A frame that has started arriving must complete within this many ms.
    pub read_timeout_ms: u64,
    /// Writing one reply must complete within this many ms.
    pub write_timeout_ms: u64,
    /// A connection with no complete request for this many ms is closed.
    pub idle_timeout_ms: u64,
    /// Replies queued per connection; a client that lets more pile up is closed.
    pub outbound_queue: usize,
    /// Segment files roll over at this size.
    pub segment_bytes: u64,
    /// Largest batch a producer may send.
    pub max_batch_bytes: usize,
    /// Cap on one fetch reply.
    pub max_fetch_bytes: usize,
    /// Bytes of appended records waiting for fsync before producers get Backpressure.
    pub max_pending_write_bytes: usize,
    /// How often retention runs, in ms.
    pub retention_check_interval_ms: u64,
    /// When appended records reach the disk (docs/operations.md section 3):
    /// `always` fsyncs every Persist before it is reported (group commit), so an
    /// acknowledged record survives a power loss; `interval` reports a Persist once
    /// written and fsyncs every `fsync_interval_ms`, trading that for throughput
    /// (durability then comes from replication, as in Kafka). The Raft log is
    /// fsynced before every report either way.
    pub fsync: FsyncPolicy,
    /// With `fsync = "interval"`: ms between fsyncs of the partition logs.
    pub fsync_interval_ms: u64,
    /// The secret every broker of the cluster shares: with it, each link between
    /// brokers starts with a challenge-response and a broker that cannot prove it
    /// is refused (docs/security.md section 5). Every broker needs the same value,
    /// or none. At least 16 bytes.
    pub cluster_secret: Option<Secret>,
    /// Client authentication and ACLs: unset, every client may do everything.
    pub auth: Option<AuthSettings>,
}

/// When the storage thread fsyncs partition logs (the `fsync` setting).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Every Persist is fsynced before it is reported (group commit): an
    /// acknowledged record is on disk.
    #[default]
    Always,
    /// Persists are reported once written; the logs are fsynced every
    /// `fsync_interval_ms` and at shutdown. Acknowledged records can be lost if
    /// every replica's machine fails within the interval.
    Interval,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "interval" => Ok(FsyncPolicy::Interval),
            other => Err(ConfigError::Invalid(format!("fsync must be \"always\" or \"interval\", not {other:?}"))),
        }
    }
}

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::Interval => "interval",
        })
    }
}

/// Longest `fsync_interval_ms` accepted (one hour): anything longer is almost
/// certainly a unit mistake.
pub const MAX_FSYNC_INTERVAL_MS: u64 = 3_600_000;

/// The `[auth]` table: turns on authentication with a bootstrap admin principal.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// The admin's app key: allowed everything, known from configuration.
    pub admin_app_key: String,
    /// The admin's secret (or env `MQ_ADMIN_SECRET` / `--admin-secret-file` for
    /// `mq broker`). Only its salted credential reaches the node.
    #[serde(default)]
    pub admin_app_secret: Option<Secret>,
}

/// A secret from the configuration: never printed (`Debug` shows its length only).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// Reads a secret file: its content without the trailing newline.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Ok(Secret(text.trim_end_matches(['\n', '\r']).to_owned()))
    }

    /// The secret's bytes.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let node = NodeConfig::default();
        BrokerConfig {
            id: 1,
            listen: "127.0.0.1:9092".into(),
            data_dir: PathBuf::from("./mq-data"),
            peers: BTreeMap::new(),
            voters: Vec::new(),
            seed: None,
            max_connections: 1024,
            max_frame_bytes: mq_core::wire::DEFAULT_MAX_FRAME_BYTES,
            read_timeout_ms: 30_000,
            write_timeout_ms: 30_000,
            idle_timeout_ms: 600_000,
            outbound_queue: 1024,
            segment_bytes: 64 * 1024 * 1024,
            max_batch_bytes: node.max_batch_bytes,
            max_fetch_bytes: node.max_fetch_bytes,
            max_pending_write_bytes: node.max_pending_write_bytes,
            retention_check_interval_ms: node.retention_check_interval.as_millis(),
            fsync: FsyncPolicy::Always,
            fsync_interval_ms: 1000,
            cluster_secret: None,
            auth: None,
        }
    }
}

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for these settings.
    #[error("config file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A setting is out of range or inconsistent.
    #[error("invalid setting: {0}")]
    Invalid(String),
}

impl BrokerConfig {
    /// Reads a TOML file on top of the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse { path: path.into(), message })
    }

    /// Parses TOML on top of the defaults.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Parses `--peers 1=host:port,2=host:port` into the peers table.
    pub fn parse_peers(list: &str) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut peers = BTreeMap::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (id, addr) = item
                .split_once('=')
                .ok_or_else(|| ConfigError::Invalid(format!("peer {item:?} must look like ID=HOST:PORT")))?;
            if peers.insert(id.trim().to_owned(), addr.trim().to_owned()).is_some() {
                return Err(ConfigError::Invalid(format!("peer id {id} is listed twice")));
            }
        }
        Ok(peers)
    }

    /// The peers by id, validated: ids are positive integers, addresses `host:port`,
    /// and this broker's id is among them when any are given.
    pub fn peer_map(&self) -> Result<BTreeMap<NodeId, String>, ConfigError> {
        let mut out = BTreeMap::new();
        for (id, addr) in &self.peers {
            let n: u32 = id
                .parse()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| ConfigError::Invalid(format!("peer id {id:?} must be a positive integer")))?;
            check_host_port(addr).map_err(|e| ConfigError::Invalid(format!("peer {id}: {e}")))?;
            if self.peers.len() > 1 && addr.ends_with(":0") {
                return Err(ConfigError::Invalid(format!(
                    "peer {id}: {addr:?} has port 0, which other brokers cannot dial; give every peer its real port"
                )));
            }
            out.insert(NodeId(n), addr.clone());
        }
        if !out.is_empty() && !out.contains_key(&NodeId(self.id)) {
            return Err(ConfigError::Invalid(format!("peers do not list this broker's id {}", self.id)));
        }
        // The core numbers brokers 1..=N.
        if let Some((i, id)) = out.keys().enumerate().find(|(i, id)| id.0 as usize != i + 1) {
            return Err(ConfigError::Invalid(format!(
                "peer ids must be 1..={} without gaps; found {id} where {} was expected",
                out.len(),
                i + 1
            )));
        }
        Ok(out)
    }

    /// Parses `--voters 1,2,3`.
    pub fn parse_voters(list: &str) -> Result<Vec<u32>, ConfigError> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|v| v.parse().map_err(|_| ConfigError::Invalid(format!("voter {v:?} must be a broker id"))))
            .collect()
    }

    /// Brokers in the cluster: the number of peers, or 1 without any.
    pub fn cluster_size(&self) -> u32 {
        (self.peers.len() as u32).max(1)
    }

    /// The controller voters in effect: `voters`, or the first min(3, N) ids.
    pub fn effective_voters(&self) -> Vec<u32> {
        if self.voters.is_empty() {
            (1..=self.cluster_size().min(3)).collect()
        } else {
            let mut v = self.voters.clone();
            v.sort_unstable();
            v.dedup();
            v
        }
    }

    /// Checks every setting and builds the core's node settings.
    pub fn validate(&self) -> Result<NodeConfig, ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        check_host_port(&self.listen).map_err(|e| ConfigError::Invalid(format!("listen: {e}")))?;
        let peers = self.peer_map()?;
        if peers.is_empty() && self.id != 1 {
            return invalid(format!(
                "broker id {} needs --peers listing the cluster (a broker alone is broker 1)",
                self.id
            ));
        }
        let n = self.cluster_size();
        let voters = self.effective_voters();
        if let Some(v) = voters.iter().find(|v| **v == 0 || **v > n) {
            return invalid(format!("voter {v} is not a broker of the cluster (ids 1..={n})"));
        }
        if self.max_connections == 0 || self.outbound_queue == 0 {
            return invalid("max_connections and outbound_queue must be positive".into());
        }
        if self.max_frame_bytes < 1024 {
            return invalid(format!("max_frame_bytes {} is below the minimum of 1024", self.max_frame_bytes));
        }
        if self.read_timeout_ms == 0 || self.write_timeout_ms == 0 || self.idle_timeout_ms == 0 {
            return invalid("read, write and idle timeouts must be positive".into());
        }
        if self.segment_bytes < 1024 {
            return invalid(format!("segment_bytes {} is below the minimum of 1024", self.segment_bytes));
        }
        if self.fsync_interval_ms == 0 || self.fsync_interval_ms > MAX_FSYNC_INTERVAL_MS {
            return invalid(format!(
                "fsync_interval_ms {} must be from 1 to {MAX_FSYNC_INTERVAL_MS} (1 h)",
                self.fsync_interval_ms
            ));
        }
        if self.max_fetch_bytes + 64 * 1024 > self.max_frame_bytes {
            return invalid(format!(
                "max_fetch_bytes {} must leave 64 KiB of room below max_frame_bytes {}",
                self.max_fetch_bytes, self.max_frame_bytes
            ));
        }
        if let Some(secret) = &self.cluster_secret {
            mq_core::security::peer::validate_cluster_secret(secret.expose())
                .map_err(|e| ConfigError::Invalid(format!("cluster_secret: {e}")))?;
        }
        let auth = match &self.auth {
            None => None,
            Some(a) => {
                mq_core::security::validate_app_key(&a.admin_app_key)
                    .map_err(|e| ConfigError::Invalid(format!("auth.admin_app_key: {}", e.message)))?;
                let Some(secret) = a.admin_app_secret.as_ref().filter(|s| !s.expose().is_empty()) else {
                    return invalid(format!(
                        "auth.admin_app_key {:?} has no secret: set auth.admin_app_secret, MQ_ADMIN_SECRET or --admin-secret-file",
                        a.admin_app_key
                    ));
                };
                // Only the salted credential reaches the node (docs/security.md section 1).
                let mut salt = [0u8; 16];
                getrandom::fill(&mut salt).map_err(|e| {
                    ConfigError::Invalid(format!("no OS randomness for the admin credential's salt: {e}"))
                })?;
                Some(mq_core::node::AuthConfig {
                    admin_app_key: a.admin_app_key.clone(),
                    admin_credential: mq_core::security::StoredCredential::new(secret.expose(), salt),
                })
            }
        };
        let mut node = NodeConfig::builder()
            .node_id(self.id)
            .cluster_size(n)
            .voters(&voters)
            .max_batch_bytes(self.max_batch_bytes)
            .max_fetch_bytes(self.max_fetch_bytes)
            .max_pending_write_bytes(self.max_pending_write_bytes)
            .retention_check_interval(Duration::from_millis(self.retention_check_interval_ms))
            .build()
            .map_err(ConfigError::Invalid)?;
        node.auth = auth;
        Ok(node)
    }
}

fn check_host_port(addr: &str) -> Result<(), String> {
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| format!("{addr:?} must look like HOST:PORT"))?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("{addr:?} must look like HOST:PORT with a port from 0 to 65535"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_is_a_single_node_on_loopback() {
        let c = BrokerConfig::default();
        assert_eq!((c.id, c.listen.as_str(), c.data_dir.as_path()), (1, "127.0.0.1:9092", Path::new("./mq-data")));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_keys() {
        let c = BrokerConfig::from_toml("listen = \"0.0.0.0:9000\"\n[peers]\n1 = \"a:1\"\n2 = \"b:2\"\n").unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.peer_map().unwrap().len(), 2);
        assert!(BrokerConfig::from_toml("lisen = \"x:1\"").unwrap_err().contains("lisen"));
    }

    #[test]
    fn peers_flag_is_validated() {
        assert_eq!(BrokerConfig::parse_peers("1=a:1, 2=b:2").unwrap().len(), 2);
        assert!(BrokerConfig::parse_peers("1=a:1,1=b:2").is_err());
        assert!(BrokerConfig::parse_peers("a:1").is_err());
        let c = BrokerConfig { peers: BrokerConfig::parse_peers("2=b:2").unwrap(), ..BrokerConfig::default() };
        assert!(c.validate().is_err(), "own id missing from peers");
        let c = BrokerConfig { peers: BrokerConfig::parse_peers("1=a:x").unwrap(), ..BrokerConfig::default() };
        assert!(c.validate().is_err(), "bad port");
        let c = BrokerConfig { peers: BrokerConfig::parse_peers("1=a:1,3=c:3").unwrap(), ..BrokerConfig::default() };
        assert!(c.validate().is_err(), "ids with a gap");
        let c = BrokerConfig { peers: BrokerConfig::parse_peers("1=a:1,2=b:0").unwrap(), ..BrokerConfig::default() };
        assert!(c.validate().is_err(), "a peer port nobody can dial");
    }

    #[test]
    fn voters_default_to_the_first_three_brokers() {
        let peers = BrokerConfig::parse_peers("1=a:1,2=b:2,3=c:3,4=d:4,5=e:5").unwrap();
        let c = BrokerConfig { id: 4, peers, ..BrokerConfig::default() };
        let node = c.validate().unwrap();
        assert_eq!((node.cluster_size, node.voters.len()), (5, 3));
        let c = BrokerConfig { voters: vec![1, 2, 3, 4, 5], ..c };
        assert_eq!(c.validate().unwrap().voters.len(), 5);
        let c = BrokerConfig { voters: vec![6], ..c };
        assert!(c.validate().is_err(), "voter outside the cluster");
        let single = BrokerConfig::default().validate().unwrap();
        assert_eq!((single.cluster_size, single.voters.len()), (1, 1));
    }

    #[test]
    fn auth_and_cluster_secret_come_from_toml_and_only_the_salted_credential_reaches_the_node() {
        let c = BrokerConfig::from_toml(
            "cluster_secret = \"0123456789abcdef-cluster\"\n[auth]\nadmin_app_key = \"admin\"\nadmin_app_secret = \"hunter2\"\n",
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"), "secrets never print");
        assert!(!format!("{c:?}").contains("0123456789abcdef"), "secrets never print");
        let node = c.validate().unwrap();
        let auth = node.auth.expect("auth on");
        assert_eq!(auth.admin_app_key, "admin");
        assert_eq!(
            auth.admin_credential,
            mq_core::security::StoredCredential::new(b"hunter2", auth.admin_credential.salt)
        );
        assert!(BrokerConfig::default().validate().unwrap().auth.is_none(), "off by default");
    }

    #[test]
    fn bad_auth_settings_are_refused_clearly() {
        let no_secret = BrokerConfig::from_toml("[auth]\nadmin_app_key = \"admin\"\n").unwrap();
        assert!(no_secret.validate().unwrap_err().to_string().contains("MQ_ADMIN_SECRET"));
        let bad_key = BrokerConfig::from_toml("[auth]\nadmin_app_key = \"a b\"\nadmin_app_secret = \"x\"\n").unwrap();
        assert!(bad_key.validate().is_err());
        let short = BrokerConfig::from_toml("cluster_secret = \"short\"\n").unwrap();
        assert!(short.validate().unwrap_err().to_string().contains("at least 16"));
        assert!(BrokerConfig::from_toml("[auth]\nadmin_key = \"x\"\n").is_err(), "typos are errors");
    }

    #[test]
    fn fsync_defaults_to_always_and_interval_mode_comes_from_toml_or_a_flag() {
        let c = BrokerConfig::default();
        assert_eq!((c.fsync, c.fsync_interval_ms), (FsyncPolicy::Always, 1000));
        let c = BrokerConfig::from_toml("fsync = \"interval\"\nfsync_interval_ms = 250\n").unwrap();
        assert_eq!((c.fsync, c.fsync_interval_ms), (FsyncPolicy::Interval, 250));
        assert!(c.validate().is_ok());
        assert_eq!("interval".parse::<FsyncPolicy>().unwrap(), FsyncPolicy::Interval);
        assert_eq!("always".parse::<FsyncPolicy>().unwrap(), FsyncPolicy::Always);
        assert_eq!(FsyncPolicy::Interval.to_string(), "interval");
    }

    #[test]
    fn bad_fsync_settings_are_refused_with_the_allowed_values() {
        let e = BrokerConfig::from_toml("fsync = \"sometimes\"\n").unwrap_err();
        assert!(e.contains("sometimes") && e.contains("always") && e.contains("interval"), "{e}");
        assert!(BrokerConfig::from_toml("fsync = 1\n").is_err());
        assert!(BrokerConfig::from_toml("fsync_interval_ms = -5\n").is_err());
        let e = "never".parse::<FsyncPolicy>().unwrap_err().to_string();
        assert!(e.contains("\"always\" or \"interval\"") && e.contains("never"), "{e}");
        for bad in [0, MAX_FSYNC_INTERVAL_MS + 1] {
            let c = BrokerConfig { fsync: FsyncPolicy::Interval, fsync_interval_ms: bad, ..BrokerConfig::default() };
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("fsync_interval_ms") && e.contains(&bad.to_string()), "{e}");
        }
    }
}
