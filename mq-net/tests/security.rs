//! Authentication and ACLs through a real broker on loopback (docs/security.md):
//! the bootstrap admin from `[auth]`, principals and grants made through the
//! client library and the CLI, producers and consumers with right and wrong
//! credentials.

mod common;

use common::{config, mq_with_env, BrokerProcess, WAIT};
use mq_net::{
    AuthSettings, Broker, Client, ClientError, Consumer, ErrorCode, GroupMode, NewTopic, Operation, Producer, Record,
    Resource, Secret,
};
use std::path::Path;
use std::time::Duration;

const ADMIN: &str = "admin";
const ADMIN_SECRET: &str = "admin-secret-1";

async fn start_with_auth(dir: &Path) -> Broker {
    let mut c = config(dir);
    c.auth = Some(AuthSettings { admin_app_key: ADMIN.into(), admin_app_secret: Some(Secret::new(ADMIN_SECRET)) });
    Broker::start(c).await.expect("broker starts")
}

async fn client_as(addr: &str, key: &str, secret: &str) -> Result<Client, ClientError> {
    Client::builder()
        .bootstrap(addr)
        .connect_timeout(Duration::from_secs(5))
        .request_timeout(WAIT)
        .credentials(key, secret)
        .connect()
        .await
}

fn producer(addr: &str, topic: &str, key: &str, secret: &str) -> mq_net::ProducerBuilder {
    Producer::builder().bootstrap(addr).topic(topic).connect_timeout(Duration::from_secs(5)).credentials(key, secret)
}

#[tokio::test]
async fn producers_need_the_right_secret_and_a_grant() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with_auth(dir.path()).await;
    let addr = broker.local_addr().to_string();
    let admin = client_as(&addr, ADMIN, ADMIN_SECRET).await.expect("the bootstrap admin logs in");
    admin.create_topic(NewTopic::new("orders", 2)).await.unwrap();
    admin.create_topic(NewTopic::new("payroll", 1)).await.unwrap();
    admin.create_principal("shop", b"shop-secret").await.unwrap();
    admin.grant("shop", Operation::Produce, Resource::Topic("orders".into())).await.unwrap();
    let (principals, grants) = admin.describe_security().await.unwrap();
    assert_eq!(principals, vec!["shop".to_string()]);
    assert_eq!(grants.len(), 1);

    // The right secret and a grant: acknowledged.
    let p = producer(&addr, "orders", "shop", "shop-secret").build().await.expect("shop logs in");
    let d = p.send(Record::from_value("hello")).await.expect("granted produce succeeds");
    assert!(d.offset.0 == 0);

    // A wrong secret: refused at the startup check, naming the app key.
    let err = producer(&addr, "orders", "shop", "guess").build().await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unauthenticated), "{err}");
    assert!(err.to_string().contains("\"shop\""), "names the app key: {err}");

    // No grant on the topic: an authorization error, nothing stored.
    let p2 = producer(&addr, "payroll", "shop", "shop-secret").build().await.expect("logs in");
    let err = p2.send(Record::from_value("raise")).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unauthorized), "{err}");
    let hw = admin.list_offsets("payroll", 0, mq_net::OffsetSpec::Latest).await.unwrap();
    assert_eq!(hw.0, 0, "the refused produce changed nothing");

    // No credentials at all: refused with a clear error.
    let err = Client::builder().bootstrap(addr.clone()).connect().await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unauthenticated), "{err}");

    // Not an admin: cannot create principals.
    let shop = client_as(&addr, "shop", "shop-secret").await.unwrap();
    let err = shop.create_principal("mallory", b"x").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unauthorized), "{err}");

    p.close(Duration::from_secs(5)).await.unwrap();
    drop(p2);
    broker.stop().await.unwrap();
}

#[tokio::test]
async fn a_consumer_with_grants_on_group_and_topic_consumes_and_one_without_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with_auth(dir.path()).await;
    let addr = broker.local_addr().to_string();
    let admin = client_as(&addr, ADMIN, ADMIN_SECRET).await.unwrap();
    admin.create_topic(NewTopic::new("jobs", 1)).await.unwrap();
    admin.produce("jobs", 0, mq_net::Acks::All, vec![Record::from_value("j1")]).await.unwrap();
    admin.create_principal("worker", b"worker-secret").await.unwrap();
    admin.grant("worker", Operation::Consume, Resource::Topic("jobs".into())).await.unwrap();

    // Consume on the topic but not on the group: the stream reports Unauthorized.
    let mut c = Consumer::builder()
        .bootstrap(addr.clone())
        .credentials("worker", "worker-secret")
        .group("workers")
        .topic("jobs")
        .mode(GroupMode::Shared)
        .build()
        .await
        .unwrap();
    let first = tokio::time::timeout(WAIT, c.next()).await.expect("an answer within the bound").expect("an item");
    let err = first.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unauthorized), "{err}");
    c.close(Duration::from_secs(5)).await.ok();

    admin.grant("worker", Operation::Consume, Resource::Group("work*".into())).await.unwrap();
    let mut c = Consumer::builder()
        .bootstrap(addr.clone())
        .credentials("worker", "worker-secret")
        .group("workers")
        .topic("jobs")
        .mode(GroupMode::Shared)
        .build()
        .await
        .unwrap();
    let r = loop {
        match tokio::time::timeout(WAIT, c.next()).await.expect("a record within the bound") {
            Some(Ok(r)) => break r,
            // An Unauthorized of the previous grant's era may still be in flight.
            Some(Err(e)) if e.code() == Some(ErrorCode::Unauthorized) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(&r.value()[..], b"j1");
    r.ack().await.unwrap();
    c.close(Duration::from_secs(10)).await.expect("the ack is confirmed before leaving");

    // A wrong secret: refused at the startup check.
    let err = Consumer::builder()
        .bootstrap(addr.clone())
        .credentials("worker", "nope")
        .group("workers")
        .topic("jobs")
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unauthenticated), "{err}");
    broker.stop().await.unwrap();
}

#[test]
fn cli_admin_commands_and_a_refused_login() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("admin.secret");
    std::fs::write(&secret_file, format!("{ADMIN_SECRET}\n")).unwrap();
    let data = dir.path().join("data");
    let broker = BrokerProcess::start_with(&[
        "broker",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--admin-app-key",
        ADMIN,
        "--admin-secret-file",
        secret_file.to_str().unwrap(),
    ]);
    let b = broker.addr.as_str();
    let admin = [("MQ_APP_KEY", ADMIN), ("MQ_APP_SECRET", ADMIN_SECRET)];
    let (ok, _, err) = mq_with_env(&["topic", "create", "orders", "--bootstrap", b], &admin, None);
    assert!(ok, "{err}");
    // The secret from stdin.
    let (ok, out, err) = mq_with_env(&["principal", "create", "shop", "--bootstrap", b], &admin, Some("shop-secret\n"));
    assert!(ok && out == "created principal shop\n", "{out} {err}");
    let (ok, out, err) = mq_with_env(
        &["acl", "grant", "--principal", "shop", "--topic", "orders", "--op", "produce", "--bootstrap", b],
        &admin,
        None,
    );
    assert!(ok && out == "granted shop produce topic orders\n", "{out} {err}");
    let (ok, out, _) = mq_with_env(&["acl", "list", "--bootstrap", b], &admin, None);
    assert!(ok && out == "shop produce topic orders\n", "{out}");
    let (ok, out, _) = mq_with_env(&["principal", "list", "--bootstrap", b], &admin, None);
    assert!(ok && out == "shop\n", "{out}");

    // Flags work like the environment.
    let shop = ["--app-key", "shop", "--app-secret", "shop-secret"];
    let mut args = vec!["produce", "orders", "--json", "--bootstrap", b];
    args.extend(shop);
    let (ok, out, err) = mq_with_env(&args, &[], Some("one\n"));
    assert!(ok, "{err}");
    assert_eq!(out, "{\"partition\":0,\"offset\":0,\"value\":\"one\"}\n");

    // A wrong secret: non-zero exit and an error naming the app key.
    let (ok, _, err) = mq_with_env(
        &["produce", "orders", "--bootstrap", b],
        &[("MQ_APP_KEY", "shop"), ("MQ_APP_SECRET", "wrong")],
        Some("two\n"),
    );
    assert!(!ok);
    assert!(err.contains("Unauthenticated") && err.contains("\"shop\""), "{err}");
    // No credentials: told how to pass them.
    let (ok, _, err) = mq_with_env(&["topic", "list", "--bootstrap", b], &[], None);
    assert!(!ok && err.contains("MQ_APP_KEY"), "{err}");
    // Revoked: the next produce is refused.
    let (ok, _, err) = mq_with_env(
        &["acl", "revoke", "--principal", "shop", "--topic", "orders", "--op", "produce", "--bootstrap", b],
        &admin,
        None,
    );
    assert!(ok, "{err}");
    let mut args = vec!["produce", "orders", "--bootstrap", b];
    args.extend(shop);
    let (ok, _, err) = mq_with_env(&args, &[], Some("three\n"));
    assert!(!ok && err.contains("Unauthorized"), "{err}");
    let (ok, out, err) = mq_with_env(&["principal", "delete", "shop", "--bootstrap", b], &admin, None);
    assert!(ok && out.starts_with("deleted principal shop"), "{out} {err}");
}
