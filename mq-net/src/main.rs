//! The `mq` binary: `mq broker` runs a broker; the other commands are clients
//! (docs/operations.md describes every command and what it prints).

// The CLI and the broker it starts own the process clock (see mq-net's lib.rs).
#![allow(clippy::disallowed_methods)]

mod bench;
mod progress;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::ProgressBar;
use mq_core::PartitionId;
use mq_net::{
    Acks, Broker, BrokerConfig, Client, ClientError, ErrorCode, GroupMode, NewTopic, Offset, OffsetSpec, Operation,
    PendingDelivery, Record, Resource, SendRequest,
};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

#[derive(Parser, Debug)]
#[command(name = "mq", version, about = "mq: a message queue with a deterministic simulation harness")]
struct Cli {
    /// Log filter (error, warn, info, debug, trace, or a tracing filter such as
    /// `mq_net=debug`). Default: info for the broker, warn for client commands.
    #[arg(long, global = true, env = "MQ_LOG")]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a broker (no arguments: a single-node cluster on 127.0.0.1:9092 with data in ./mq-data).
    Broker(BrokerArgs),
    /// Create, list, describe and delete topics.
    Topic {
        #[command(subcommand)]
        command: TopicCommand,
    },
    /// Produce one record per line of standard input.
    Produce(ProduceArgs),
    /// Print the records of a topic (with --group: as a member of a consumer group, acking each).
    Consume(ConsumeArgs),
    /// Create and delete principals (app keys with secrets); needs admin.
    Principal {
        #[command(subcommand)]
        command: PrincipalCommand,
    },
    /// Grant, revoke and list ACLs; needs admin.
    Acl {
        #[command(subcommand)]
        command: AclCommand,
    },
    /// Cluster state.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Measure throughput and latency: produce, consume, or both end to end.
    Bench(bench::BenchArgs),
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// The controller, every broker's state, and partitions without a leader or under min ISR.
    Status {
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Args, Debug)]
struct BrokerArgs {
    /// TOML config file; flags override its settings.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Broker id.
    #[arg(long)]
    id: Option<u32>,
    /// Listen address, HOST:PORT (port 0 picks a free port).
    #[arg(long)]
    listen: Option<String>,
    /// Brokers of the cluster, this one included: 1=host:port,2=host:port,...
    /// (the same list for every broker). Without --listen, the broker listens on
    /// its own entry.
    #[arg(long)]
    peers: Option<String>,
    /// Controller voters: 1,2,3 (default: the first min(3, N) brokers).
    #[arg(long)]
    voters: Option<String>,
    /// Data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// File holding the cluster secret every broker shares (links between brokers
    /// then prove it); env MQ_CLUSTER_SECRET holds the secret itself.
    #[arg(long)]
    cluster_secret_file: Option<PathBuf>,
    /// Turns on client authentication with this bootstrap admin app key; its
    /// secret comes from --admin-secret-file or env MQ_ADMIN_SECRET.
    #[arg(long, env = "MQ_ADMIN_APP_KEY")]
    admin_app_key: Option<String>,
    /// File holding the bootstrap admin's secret.
    #[arg(long)]
    admin_secret_file: Option<PathBuf>,
    /// When partition logs are fsynced: `always` (before every acknowledgement)
    /// or `interval` (every --fsync-interval-ms; faster, but acknowledged records
    /// can be lost if every replica's machine fails within the interval).
    #[arg(long, value_name = "always|interval")]
    fsync: Option<String>,
    /// Milliseconds between fsyncs with --fsync interval (default 1000).
    #[arg(long)]
    fsync_interval_ms: Option<u64>,
}

#[derive(Args, Debug, Clone)]
struct ConnArgs {
    /// Brokers to contact: ID=HOST:PORT[,..] (the brokers' --peers list; needed to
    /// reach partition leaders in a cluster), or HOST:PORT for a single broker.
    #[arg(long, env = "MQ_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Seconds to wait for a broker to answer when connecting.
    #[arg(long, default_value_t = 5)]
    connect_timeout: u64,
    /// App key to authenticate as (brokers with [auth] refuse anonymous clients).
    #[arg(long, env = "MQ_APP_KEY")]
    app_key: Option<String>,
    /// The app key's secret (prefer the environment: flags show in `ps`).
    #[arg(long, env = "MQ_APP_SECRET", hide_env_values = true)]
    app_secret: Option<String>,
}

#[derive(Subcommand, Debug)]
enum PrincipalCommand {
    /// Create a principal (or give it a new secret). The secret comes from --secret
    /// or the first line of standard input; only its salted hash is sent.
    Create {
        #[arg(value_name = "APP_KEY")]
        principal: String,
        #[arg(long, hide_env_values = true)]
        secret: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Delete a principal and every grant naming it.
    Delete {
        #[arg(value_name = "APP_KEY")]
        principal: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// List principals (not the bootstrap admin), one per line.
    List {
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum OpArg {
    Produce,
    Consume,
    Admin,
}

#[derive(Args, Debug)]
struct GrantArgs {
    /// The app key granted to.
    #[arg(long)]
    principal: String,
    /// A topic name, or a prefix ending in `*`.
    #[arg(long, group = "resource")]
    topic: Option<String>,
    /// A group name, or a prefix ending in `*`.
    #[arg(long, group = "resource")]
    group: Option<String>,
    /// The cluster (admin on the cluster allows everything).
    #[arg(long, group = "resource")]
    cluster: bool,
    #[arg(long, value_enum)]
    op: OpArg,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Subcommand, Debug)]
enum AclCommand {
    /// Allow a principal an operation on a topic, group or the cluster.
    Grant(GrantArgs),
    /// Remove such a grant.
    Revoke(GrantArgs),
    /// List every grant: principal, operation, resource.
    List {
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ModeArg {
    Exclusive,
    Shared,
    KeyShared,
}

#[derive(Subcommand, Debug)]
enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        #[arg(long, default_value_t = 1)]
        replication_factor: u16,
        #[arg(long)]
        min_insync_replicas: Option<u16>,
        /// Delete records older than this many seconds.
        #[arg(long)]
        retention_secs: Option<u64>,
        /// Delete the oldest records while a partition is larger than this.
        #[arg(long)]
        retention_bytes: Option<u64>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// List topic names, one per line.
    List {
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Show a topic's settings and per-partition state.
    Describe {
        name: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Delete a topic and all its records.
    Delete {
        name: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum AcksArg {
    #[value(name = "0")]
    Zero,
    #[value(name = "1")]
    One,
    #[value(name = "all")]
    All,
}

#[derive(Args, Debug)]
struct ProduceArgs {
    topic: String,
    /// Key of every record; picks the partition by key hash unless --partition is given.
    #[arg(long)]
    key: Option<String>,
    #[arg(long, value_enum, default_value = "all")]
    acks: AcksArg,
    /// Send every record to this partition.
    #[arg(long)]
    partition: Option<u32>,
    /// Print one JSON object per acknowledged record.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum From {
    Earliest,
    Latest,
}

#[derive(Args, Debug)]
struct ConsumeArgs {
    topic: String,
    /// Consume as a member of this group: records are shared with the group's
    /// other members, each is acked after it is printed, and the group resumes
    /// after the last acked record.
    #[arg(long)]
    group: Option<String>,
    /// The group's mode (with --group).
    #[arg(long, value_enum, requires = "group")]
    mode: Option<ModeArg>,
    /// Where to start without --group (default earliest).
    #[arg(long, value_enum, conflicts_with = "group")]
    from: Option<From>,
    /// Stop after this many records.
    #[arg(long)]
    max: Option<u64>,
    /// Stop after this many seconds without a new record.
    #[arg(long)]
    idle_timeout: Option<f64>,
    /// Print one JSON object per record.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: ConnArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Broker(_)) { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_new(cli.log_level.as_deref().unwrap_or(default_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mq: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Broker(args) => run_broker(args).await,
            Command::Topic { command } => run_topic(command).await,
            Command::Produce(args) => run_produce(args).await,
            Command::Consume(args) => run_consume(args).await,
            Command::Principal { command } => run_principal(command).await,
            Command::Acl { command } => run_acl(command).await,
            Command::Cluster { command: ClusterCommand::Status { conn } } => run_cluster_status(conn).await,
            Command::Bench(args) => bench::run(args).await,
        }
    })
}

async fn run_broker(args: BrokerArgs) -> ExitCode {
    let mut config = match &args.config {
        Some(path) => match BrokerConfig::from_file(path) {
            Ok(c) => c,
            Err(e) => return usage_error(&e.to_string()),
        },
        None => BrokerConfig::default(),
    };
    if let Some(id) = args.id {
        config.id = id;
    }
    let listen_given = args.listen.is_some();
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(peers) = &args.peers {
        match BrokerConfig::parse_peers(peers) {
            Ok(p) => config.peers = p,
            Err(e) => return usage_error(&e.to_string()),
        }
    }
    if let Some(fsync) = &args.fsync {
        match fsync.parse() {
            Ok(f) => config.fsync = f,
            Err(e) => return usage_error(&format!("--fsync: {e}")),
        }
    }
    if let Some(ms) = args.fsync_interval_ms {
        config.fsync_interval_ms = ms;
    }
    if let Some(voters) = &args.voters {
        match BrokerConfig::parse_voters(voters) {
            Ok(v) => config.voters = v,
            Err(e) => return usage_error(&e.to_string()),
        }
    }
    // Secrets: a file flag, else the environment, else the config file.
    if let Some(path) = &args.cluster_secret_file {
        match mq_net::Secret::from_file(path) {
            Ok(s) => config.cluster_secret = Some(s),
            Err(e) => return usage_error(&e.to_string()),
        }
    } else if let Some(s) = std::env::var("MQ_CLUSTER_SECRET").ok().filter(|s| !s.is_empty()) {
        config.cluster_secret = Some(mq_net::Secret::new(s));
    }
    if let Some(key) = args.admin_app_key {
        let secret = config.auth.take().and_then(|a| a.admin_app_secret);
        config.auth = Some(mq_net::AuthSettings { admin_app_key: key, admin_app_secret: secret });
    }
    if let Some(auth) = config.auth.as_mut() {
        if let Some(path) = &args.admin_secret_file {
            match mq_net::Secret::from_file(path) {
                Ok(s) => auth.admin_app_secret = Some(s),
                Err(e) => return usage_error(&e.to_string()),
            }
        } else if let Some(s) = std::env::var("MQ_ADMIN_SECRET").ok().filter(|s| !s.is_empty()) {
            auth.admin_app_secret = Some(mq_net::Secret::new(s));
        }
    } else if args.admin_secret_file.is_some() {
        return usage_error("--admin-secret-file needs --admin-app-key (or [auth] admin_app_key in the config file)");
    }
    // With --peers and no listen address from a flag or the file, listen where the
    // other brokers will dial.
    if !listen_given && config.listen == BrokerConfig::default().listen {
        if let Some(own) = config.peers.get(&config.id.to_string()) {
            config.listen = own.clone();
        }
    }
    if let Err(e) = config.validate() {
        return usage_error(&e.to_string());
    }
    let mut broker = match Broker::start(config).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("mq broker: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("mq broker {} ready on {}", broker.id(), broker.local_addr());
    let _ = std::io::stdout().flush();
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let early = tokio::select! {
        r = broker.wait() => Some(r),
        _ = &mut signal => None,
    };
    let result = match early {
        Some(r) => r,
        None => {
            broker.shutdown();
            broker.wait().await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mq broker: stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    // madsim simulates Ctrl-C only; the binary is not run under it anyway.
    #[cfg(all(unix, not(madsim)))]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("mq: {msg}");
    ExitCode::from(2)
}

async fn connect(conn: &ConnArgs) -> Result<Client, ExitCode> {
    let mut builder = Client::builder()
        .bootstrap(conn.bootstrap.clone())
        .connect_timeout(Duration::from_secs(conn.connect_timeout.max(1)));
    match (&conn.app_key, &conn.app_secret) {
        (Some(key), Some(secret)) => builder = builder.credentials(key.clone(), secret.clone()),
        (None, None) => {}
        (Some(key), None) => {
            return Err(usage_error(&format!("app key {key:?} has no secret: set --app-secret or MQ_APP_SECRET")))
        }
        (None, Some(_)) => {
            return Err(usage_error("--app-secret (or MQ_APP_SECRET) without --app-key (or MQ_APP_KEY)"))
        }
    }
    builder.connect().await.map_err(|e| client_error(&e))
}

fn client_error(e: &ClientError) -> ExitCode {
    eprintln!("mq: {e}");
    if e.code() == Some(ErrorCode::Unauthenticated) && !e.to_string().contains("refused the credentials") {
        eprintln!(
            "mq: this cluster requires authentication: pass --app-key/--app-secret or set MQ_APP_KEY/MQ_APP_SECRET"
        );
    }
    ExitCode::FAILURE
}

async fn run_principal(command: PrincipalCommand) -> ExitCode {
    let conn = match &command {
        PrincipalCommand::Create { conn, .. }
        | PrincipalCommand::Delete { conn, .. }
        | PrincipalCommand::List { conn } => conn,
    };
    let client = match connect(conn).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    match command {
        PrincipalCommand::Create { principal: app_key, secret, .. } => {
            let secret = match secret {
                Some(s) => s,
                None => {
                    let mut line = String::new();
                    if std::io::stdin().read_line(&mut line).is_err() || line.trim_end_matches(['\n', '\r']).is_empty()
                    {
                        return usage_error("no secret: pass --secret or write it on standard input");
                    }
                    line.trim_end_matches(['\n', '\r']).to_owned()
                }
            };
            match client.create_principal(&app_key, secret.as_bytes()).await {
                Ok(()) => {
                    println!("created principal {app_key}");
                    ExitCode::SUCCESS
                }
                Err(e) => client_error(&e),
            }
        }
        PrincipalCommand::Delete { principal: app_key, .. } => match client.delete_principal(&app_key).await {
            Ok(()) => {
                println!("deleted principal {app_key} and its grants");
                ExitCode::SUCCESS
            }
            Err(e) => client_error(&e),
        },
        PrincipalCommand::List { .. } => match client.describe_security().await {
            Ok((principals, _)) => {
                for p in principals {
                    println!("{p}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => client_error(&e),
        },
    }
}

fn grant_parts(args: &GrantArgs) -> Result<(Operation, Resource), ExitCode> {
    let op = match args.op {
        OpArg::Produce => Operation::Produce,
        OpArg::Consume => Operation::Consume,
        OpArg::Admin => Operation::Admin,
    };
    let resource = match (&args.topic, &args.group, args.cluster) {
        (Some(t), None, false) => Resource::Topic(t.clone()),
        (None, Some(g), false) => Resource::Group(g.clone()),
        (None, None, true) => Resource::Cluster,
        _ => return Err(usage_error("name exactly one of --topic, --group or --cluster")),
    };
    Ok((op, resource))
}

fn describe_grant(principal: &str, op: Operation, resource: &Resource) -> String {
    let op = match op {
        Operation::Produce => "produce",
        Operation::Consume => "consume",
        Operation::Admin => "admin",
    };
    let resource = match resource {
        Resource::Topic(t) => format!("topic {t}"),
        Resource::Group(g) => format!("group {g}"),
        Resource::Cluster => "cluster".to_string(),
    };
    format!("{principal} {op} {resource}")
}

async fn run_acl(command: AclCommand) -> ExitCode {
    let conn = match &command {
        AclCommand::Grant(a) | AclCommand::Revoke(a) => &a.conn,
        AclCommand::List { conn } => conn,
    };
    let client = match connect(conn).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    match command {
        AclCommand::Grant(args) => {
            let (op, resource) = match grant_parts(&args) {
                Ok(p) => p,
                Err(code) => return code,
            };
            match client.grant(&args.principal, op, resource.clone()).await {
                Ok(()) => {
                    println!("granted {}", describe_grant(&args.principal, op, &resource));
                    ExitCode::SUCCESS
                }
                Err(e) => client_error(&e),
            }
        }
        AclCommand::Revoke(args) => {
            let (op, resource) = match grant_parts(&args) {
                Ok(p) => p,
                Err(code) => return code,
            };
            match client.revoke(&args.principal, op, resource.clone()).await {
                Ok(()) => {
                    println!("revoked {}", describe_grant(&args.principal, op, &resource));
                    ExitCode::SUCCESS
                }
                Err(e) => client_error(&e),
            }
        }
        AclCommand::List { .. } => match client.describe_security().await {
            Ok((_, grants)) => {
                for g in grants {
                    println!("{}", describe_grant(&g.principal, g.operation, &g.resource));
                }
                ExitCode::SUCCESS
            }
            Err(e) => client_error(&e),
        },
    }
}

async fn run_topic(command: TopicCommand) -> ExitCode {
    match command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            min_insync_replicas,
            retention_secs,
            retention_bytes,
            conn,
        } => {
            let client = match connect(&conn).await {
                Ok(c) => c,
                Err(code) => return code,
            };
            let min_isr = min_insync_replicas.unwrap_or(1);
            let mut topic = NewTopic::new(name.clone(), partitions)
                .replication_factor(replication_factor)
                .min_insync_replicas(min_isr);
            if let Some(s) = retention_secs {
                topic = topic.retention_time(Duration::from_secs(s));
            }
            if let Some(b) = retention_bytes {
                topic = topic.retention_bytes(b);
            }
            match client.create_topic(topic).await {
                Ok(()) => {
                    println!(
                        "created topic {name}: {partitions} partition(s), replication factor {replication_factor}, \
                         min in-sync replicas {min_isr}"
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => client_error(&e),
            }
        }
        TopicCommand::List { conn } => {
            let client = match connect(&conn).await {
                Ok(c) => c,
                Err(code) => return code,
            };
            match client.list_topics().await {
                Ok(topics) => {
                    for t in topics {
                        println!("{}", t.config.name);
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => client_error(&e),
            }
        }
        TopicCommand::Describe { name, conn } => {
            let client = match connect(&conn).await {
                Ok(c) => c,
                Err(code) => return code,
            };
            match client.describe_topic(&name).await {
                Ok(t) => {
                    let c = &t.config;
                    let retention_time =
                        c.retention_time.map_or("none".to_string(), |d| format!("{}s", d.as_millis() / 1000));
                    let retention_bytes = c.retention_bytes.map_or("none".to_string(), |b| b.to_string());
                    println!(
                        "topic {}  partitions {}  replication-factor {}  min-insync-replicas {}  retention-time {}  retention-bytes {}",
                        c.name, c.partitions, c.replication_factor, c.min_insync_replicas, retention_time, retention_bytes
                    );
                    println!("partition  leader  epoch  replicas   isr        log-start  high-watermark");
                    let ids = |v: &[mq_core::NodeId]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
                    for p in &t.partitions {
                        let leader = p.leader.map_or("none".to_string(), |l| l.to_string());
                        println!(
                            "{:<10} {:<7} {:<6} {:<10} {:<10} {:<10} {}",
                            p.partition,
                            leader,
                            p.leader_epoch,
                            ids(&p.replicas),
                            ids(&p.isr),
                            p.log_start,
                            p.high_watermark
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => client_error(&e),
            }
        }
        TopicCommand::Delete { name, conn } => {
            let client = match connect(&conn).await {
                Ok(c) => c,
                Err(code) => return code,
            };
            match client.delete_topic(&name).await {
                Ok(()) => {
                    println!("deleted topic {name}");
                    ExitCode::SUCCESS
                }
                Err(e) => client_error(&e),
            }
        }
    }
}

/// Largest batch `mq produce` builds from the lines waiting (the broker's
/// `max_batch_bytes` is 1 MiB by default).
const PRODUCE_BATCH_BYTES: usize = 256 * 1024;
/// Lines read ahead of their outcomes.
const PRODUCE_READ_AHEAD: usize = 4096;
/// How long `mq produce` waits for its connections to write what is queued at the end.
const PRODUCE_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Tallies of `mq produce`.
#[derive(Default)]
struct ProduceCounts {
    sent: u64,
    failed: u64,
}

async fn run_produce(args: ProduceArgs) -> ExitCode {
    let client = match connect(&args.conn).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let partitions = match client.describe_topic(&args.topic).await {
        Ok(t) => t.config.partitions,
        Err(e) => return client_error(&e),
    };
    if let Some(p) = args.partition.filter(|p| *p >= partitions) {
        eprintln!("mq: topic {} has partitions 0..{partitions}; partition {p} does not exist", args.topic);
        return ExitCode::from(2);
    }
    let acks = match args.acks {
        AcksArg::Zero => Acks::None,
        AcksArg::One => Acks::Leader,
        AcksArg::All => Acks::All,
    };
    // mq-core's producer partitions (key hash, else round robin from 0), batches the
    // lines waiting, and retries for up to its 30 s delivery timeout.
    let producer = match client
        .producer(args.topic.clone())
        .acks(acks)
        .batch_max_bytes(PRODUCE_BATCH_BYTES)
        .connect_timeout(Duration::from_secs(args.conn.connect_timeout.max(1)))
        .build()
        .await
    {
        Ok(p) => p,
        Err(e) => return client_error(&e),
    };
    // Outcomes are printed in input order by their own task while lines keep going in.
    let (tx, rx) = tokio::sync::mpsc::channel(PRODUCE_READ_AHEAD);
    let what = if acks == Acks::None { "records sent" } else { "records acknowledged" };
    let bar = progress::bar(None, what, args.json);
    let printer = tokio::spawn(print_outcomes(rx, acks, args.json, bar.clone()));
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let record = match &args.key {
            Some(k) => Record::keyed(k.clone(), line.clone()),
            None => Record::from_value(line.clone()),
        };
        let mut request = SendRequest::new(args.topic.clone()).acks(acks).record(record);
        if let Some(p) = args.partition {
            request = request.partition(PartitionId(p));
        }
        match producer.enqueue(request).await {
            Ok(pending) => {
                if tx.send((line, pending)).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                eprintln!("mq: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    drop(tx);
    // The printer ends once every outcome is in.
    let counts = printer.await.unwrap_or_default();
    bar.finish();
    // Writes what is queued and waits until the brokers read it: acks=0 records
    // are on the broker when this returns.
    if let Err(e) = producer.close(PRODUCE_CLOSE_TIMEOUT).await {
        eprintln!("mq: closing the producer: {e}");
        return ExitCode::FAILURE;
    }
    if acks == Acks::None {
        eprintln!("mq: sent {} record(s) with acks=0 (not acknowledged)", counts.sent);
    }
    if counts.failed > 0 {
        eprintln!("mq: {} record(s) failed, {} succeeded", counts.failed, counts.sent);
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Awaits each line's outcome in input order: prints acknowledged ones with
/// `--json`, failed ones on stderr.
async fn print_outcomes(
    mut rx: tokio::sync::mpsc::Receiver<(String, PendingDelivery)>,
    acks: Acks,
    json: bool,
    bar: ProgressBar,
) -> ProduceCounts {
    let mut counts = ProduceCounts::default();
    let stdout = std::io::stdout();
    while let Some((line, pending)) = rx.recv().await {
        match pending.await {
            Ok(d) => {
                counts.sent += 1;
                bar.inc(1);
                if json {
                    let mut out = stdout.lock();
                    let _ = writeln!(
                        out,
                        "{{\"partition\":{},\"offset\":{},\"value\":{}}}",
                        d.partition,
                        d.offset,
                        json_string(&line)
                    );
                    if rx.is_empty() {
                        let _ = out.flush();
                    }
                }
            }
            // An acks=0 send ends "unknown" once written: that is all it promises.
            Err(ClientError::OutcomeUnknown { .. }) if acks == Acks::None => {
                counts.sent += 1;
                bar.inc(1);
            }
            Err(e) if acks == Acks::None => {
                counts.failed += 1;
                bar.suspend(|| eprintln!("mq: not sent: {e}: {line}"));
            }
            Err(e) => {
                counts.failed += 1;
                let what = if e.is_indefinite() { "outcome unknown (may be stored)" } else { "not stored" };
                bar.suspend(|| eprintln!("mq: not acknowledged, {what}: {e}: {line}"));
            }
        }
        if counts.failed > 0 {
            bar.set_message(format!("{} failed", counts.failed));
        }
    }
    let _ = std::io::stdout().flush();
    counts
}

/// Poll interval while no new record is committed (fetch has no long poll yet).
const CONSUME_POLL: Duration = Duration::from_millis(100);

async fn run_consume(args: ConsumeArgs) -> ExitCode {
    let bar = progress::bar(args.max, "records", true);
    let code = consume(args, &bar).await;
    bar.finish();
    code
}

/// How long `mq consume --group` waits at exit for its acks to be confirmed.
const CONSUME_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// `mq consume --group`: a member of the group through the `Consumer`; each record
/// is acked after it is printed; the member leaves the group on exit.
async fn consume_group(args: &ConsumeArgs, group: &str, bar: &ProgressBar) -> ExitCode {
    let client = match connect(&args.conn).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mode = match args.mode.unwrap_or(ModeArg::Exclusive) {
        ModeArg::Exclusive => GroupMode::Exclusive(Default::default()),
        ModeArg::Shared => GroupMode::Shared,
        ModeArg::KeyShared => GroupMode::KeyShared,
    };
    let mut consumer = match client.consumer(group).topic(args.topic.clone()).mode(mode).build().await {
        Ok(c) => c,
        Err(e) => return client_error(&e),
    };
    let idle = args.idle_timeout.map(|s| Duration::from_secs_f64(s.max(0.0)));
    let mut code = ExitCode::SUCCESS;
    let mut count = 0u64;
    let stdout = std::io::stdout();
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    while args.max.is_none_or(|m| count < m) {
        let next = async {
            match idle {
                Some(d) => tokio::time::timeout(d, consumer.next()).await.ok(),
                None => Some(consumer.next().await),
            }
        };
        let next = tokio::select! {
            n = next => n,
            _ = &mut interrupt => None,
        };
        let received = match next {
            // Idle, interrupted, or the consumer stopped.
            None | Some(None) => break,
            Some(Some(Ok(r))) => r,
            Some(Some(Err(e))) => {
                code = client_error(&e);
                break;
            }
        };
        {
            let mut out = stdout.lock();
            if args.json {
                let key = received.key().map_or("null".to_string(), |k| json_string(&String::from_utf8_lossy(k)));
                let _ = writeln!(
                    out,
                    "{{\"partition\":{},\"offset\":{},\"key\":{key},\"value\":{}}}",
                    received.partition(),
                    received.offset(),
                    json_string(&String::from_utf8_lossy(received.value()))
                );
            } else {
                let _ = writeln!(out, "{}", String::from_utf8_lossy(received.value()));
            }
            let _ = out.flush();
        }
        if let Err(e) = received.ack().await {
            code = client_error(&e);
            break;
        }
        count += 1;
        bar.inc(1);
    }
    if let Err(e) = consumer.close(CONSUME_CLOSE_TIMEOUT).await {
        eprintln!("mq: leaving group {group}: {e}");
        code = ExitCode::FAILURE;
    }
    code
}

async fn consume(args: ConsumeArgs, bar: &ProgressBar) -> ExitCode {
    if let Some(group) = &args.group {
        return consume_group(&args, group, bar).await;
    }
    let client = match connect(&args.conn).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let partitions = match client.describe_topic(&args.topic).await {
        Ok(t) => t.config.partitions,
        Err(e) => return client_error(&e),
    };
    let spec = match args.from.unwrap_or(From::Earliest) {
        From::Earliest => OffsetSpec::Earliest,
        From::Latest => OffsetSpec::Latest,
    };
    let mut positions = Vec::with_capacity(partitions as usize);
    for p in 0..partitions {
        match client.list_offsets(&args.topic, p, spec).await {
            Ok(o) => positions.push(o),
            Err(e) => return client_error(&e),
        }
    }
    let idle = args.idle_timeout.map(|s| Duration::from_secs_f64(s.max(0.0)));
    let mut last_record = tokio::time::Instant::now();
    let mut count = 0u64;
    let stdout = std::io::stdout();
    loop {
        let mut progressed = false;
        for p in 0..partitions {
            let pos = positions[p as usize];
            let fetched = match client.fetch(&args.topic, p, pos, 1024 * 1024).await {
                Ok(f) => f,
                Err(e) if e.code() == Some(ErrorCode::OffsetOutOfRange) => {
                    // Retention removed records before we read them: skip to the start.
                    match client.list_offsets(&args.topic, p, OffsetSpec::Earliest).await {
                        Ok(start) => {
                            bar.suspend(|| {
                                eprintln!(
                                    "mq: partition {p}: offset {pos} is gone (retention); continuing from {start}"
                                )
                            });
                            positions[p as usize] = start;
                            continue;
                        }
                        Err(e) => return client_error(&e),
                    }
                }
                Err(e) => return client_error(&e),
            };
            let mut out = stdout.lock();
            for (offset, record) in fetched.records_from(pos) {
                if args.json {
                    let key =
                        record.key.as_ref().map_or("null".to_string(), |k| json_string(&String::from_utf8_lossy(k)));
                    let _ = writeln!(
                        out,
                        "{{\"partition\":{p},\"offset\":{offset},\"key\":{key},\"value\":{}}}",
                        json_string(&String::from_utf8_lossy(&record.value))
                    );
                } else {
                    let _ = writeln!(out, "{}", String::from_utf8_lossy(&record.value));
                }
                positions[p as usize] = Offset(offset.0 + 1);
                progressed = true;
                count += 1;
                bar.inc(1);
                if args.max.is_some_and(|m| count >= m) {
                    let _ = out.flush();
                    return ExitCode::SUCCESS;
                }
            }
            let _ = out.flush();
        }
        if progressed {
            last_record = tokio::time::Instant::now();
        } else {
            if idle.is_some_and(|i| last_record.elapsed() >= i) {
                return ExitCode::SUCCESS;
            }
            tokio::time::sleep(CONSUME_POLL).await;
        }
    }
}

async fn run_cluster_status(conn: ConnArgs) -> ExitCode {
    let client = match connect(&conn).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let views = client.broker_views().await;
    let meta = match client.refresh_metadata().await {
        Ok(m) => m,
        Err(e) => return client_error(&e),
    };
    let controller = meta.controller.map_or("none (no quorum?)".to_string(), |c| format!("broker {c}"));
    println!("controller: {controller}");
    println!("broker  address                state");
    let mut listed = std::collections::BTreeSet::new();
    for (id, addr) in client.broker_addresses() {
        listed.insert(id);
        let answered = views.iter().any(|v| v.addr == addr && v.metadata.is_ok());
        let state = match (meta.brokers.contains(&id), answered) {
            (true, _) => "live",
            (false, true) => "fenced or not registered yet",
            (false, false) => "unreachable (not live)",
        };
        println!("{:<7} {:<22} {state}", id.to_string(), addr);
    }
    for id in meta.brokers.iter().filter(|b| !listed.contains(b)) {
        println!("{:<7} {:<22} live", id.to_string(), "(not in --bootstrap)");
    }
    for v in views.iter().filter(|v| v.id.is_none()) {
        let state = if v.metadata.is_ok() { "answering (id unknown: list it as ID=HOST:PORT)" } else { "unreachable" };
        println!("{:<7} {:<22} {state}", "?", v.addr);
    }
    let mut problems = 0;
    for t in &meta.topics {
        for p in &t.partitions {
            if p.leader.is_none() {
                println!("{}/{}: no leader", t.config.name, p.partition);
                problems += 1;
            } else if p.isr.len() < usize::from(t.config.min_insync_replicas) {
                println!(
                    "{}/{}: under min ISR ({} in sync, {} needed)",
                    t.config.name,
                    p.partition,
                    p.isr.len(),
                    t.config.min_insync_replicas
                );
                problems += 1;
            }
        }
    }
    if problems == 0 {
        println!("every partition has a leader and at least min-insync-replicas in sync");
    }
    ExitCode::SUCCESS
}

/// A JSON string literal for `s`.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
