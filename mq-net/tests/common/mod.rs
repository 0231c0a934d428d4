//! Helpers shared by the integration tests: in-process brokers on loopback port 0
//! and `mq broker` child processes that are always killed, even when a test fails.

#![allow(dead_code)]

use mq_net::{Broker, BrokerConfig, Client};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Upper bound for anything a test waits on.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn config(dir: &Path) -> BrokerConfig {
    BrokerConfig { listen: "127.0.0.1:0".into(), data_dir: dir.to_owned(), ..BrokerConfig::default() }
}

pub async fn start(dir: &Path) -> Broker {
    Broker::start(config(dir)).await.expect("broker starts")
}

pub async fn client(addr: impl ToString) -> Client {
    client_with_timeout(addr, WAIT).await
}

/// A client whose calls (retries included) give up after `limit`: for tests that
/// kill the only broker.
pub async fn client_with_timeout(addr: impl ToString, limit: Duration) -> Client {
    Client::builder()
        .bootstrap(addr.to_string())
        .connect_timeout(Duration::from_secs(5))
        .request_timeout(limit)
        .connect()
        .await
        .expect("client connects")
}

/// An `mq broker` child process; killed on drop.
pub struct BrokerProcess {
    pub child: Child,
    pub addr: String,
}

impl BrokerProcess {
    /// Starts `mq broker` on a free loopback port and waits for its readiness line.
    pub fn start(dir: &Path) -> BrokerProcess {
        let dir = dir.to_str().expect("utf-8 temp path");
        BrokerProcess::start_with(&["broker", "--listen", "127.0.0.1:0", "--data-dir", dir])
    }

    /// Starts `mq` with `args` and waits for the readiness line.
    pub fn start_with(args: &[&str]) -> BrokerProcess {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        BrokerProcess::start_many(&[args]).pop().expect("one broker")
    }

    /// Starts one `mq` per argument list at once (cluster members become ready only
    /// together), then waits for every readiness line.
    pub fn start_many(arg_lists: &[Vec<String>]) -> Vec<BrokerProcess> {
        let pending: Vec<_> = arg_lists.iter().map(|args| BrokerProcess::spawn(args)).collect();
        pending
            .into_iter()
            .map(|(mut process, rx)| {
                let line = rx.recv_timeout(WAIT).expect("mq broker prints a readiness line");
                let addr = line.trim().rsplit(' ').next().unwrap_or_default().to_owned();
                assert!(
                    line.starts_with("mq broker ") && line.contains(" ready on "),
                    "unexpected readiness line {line:?}"
                );
                process.addr = addr;
                process
            })
            .collect()
    }

    fn spawn(args: &[String]) -> (BrokerProcess, mpsc::Receiver<String>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mq"))
            .args(args)
            // MQ_TEST_BROKER_LOG raises the brokers' log level to debug a test.
            .env("MQ_LOG", std::env::var("MQ_TEST_BROKER_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn mq broker");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        (BrokerProcess { child, addr: String::new() }, rx)
    }

    /// SIGKILL: no shutdown at all.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("run kill");
        assert!(status.success());
        wait_with_timeout(&mut self.child, WAIT).expect("broker exits after SIGTERM")
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_with_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let step = Duration::from_millis(20);
    let mut waited = Duration::ZERO;
    while waited < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(step);
        waited += step;
    }
    None
}

/// `n` free loopback ports (bound, read, released: another process could take one
/// in between, which is unlikely on a test machine).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> =
        (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port")).collect();
    listeners.iter().map(|l| l.local_addr().expect("bound").port()).collect()
}

/// `1=addr,2=addr,..` for `addrs` in id order.
pub fn peers_list(addrs: &[String]) -> String {
    addrs.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect::<Vec<_>>().join(",")
}

/// Every record of `topic` as `c` can read it, by (partition, offset).
#[allow(dead_code)] // not every test file reads everything back
pub async fn read_everything(
    c: &mq_net::Client,
    topic: &str,
    partitions: u32,
) -> std::collections::BTreeMap<(u32, u64), String> {
    let mut out = std::collections::BTreeMap::new();
    for p in 0..partitions {
        let mut pos = c.list_offsets(topic, p, mq_net::OffsetSpec::Earliest).await.unwrap();
        loop {
            let f = c.fetch(topic, p, pos, 256 * 1024).await.unwrap();
            let before = out.len();
            for (o, r) in f.records_from(pos) {
                out.insert((p, o.0), String::from_utf8_lossy(&r.value).into_owned());
                pos = o.next();
            }
            if out.len() == before {
                break;
            }
        }
    }
    out
}

/// Runs `mq` with `args`, `env` and `stdin`: (success, stdout, stderr).
pub fn mq_with_env(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_mq"))
        .args(args)
        .env_remove("MQ_APP_KEY")
        .env_remove("MQ_APP_SECRET")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mq");
    let mut input = child.stdin.take().expect("piped stdin");
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).expect("write stdin");
    }
    drop(input);
    let out = child.wait_with_output().expect("mq runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
