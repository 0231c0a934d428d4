//! Client machines with credentials against a broker with auth on
//! (docs/security.md section 4): the producer and the group consumer log in
//! before their first request, carry on after the broker restarts and forgets
//! them, and stop at once with a clear error when their secret is wrong.

mod support;

use mq_core::client::{
    Credentials, GroupConsumer, GroupConsumerConfig, GroupConsumerOutput, GroupEvent, ProduceOutcome, Producer,
    ProducerConfig, ProducerOutput, SendId,
};
use mq_core::harness::Harness;
use mq_core::node::AuthConfig;
use mq_core::security::acl::{Grant, Operation, Resource};
use mq_core::security::{client_proof, StoredCredential, KEY_BYTES};
use mq_core::wire::{
    AckKind, Acks, ErrorCode, Message, Record, RecordBatch, RequestBody, Response, ResponseBody, TopicConfig,
};
use mq_core::{ClientId, CorrelationId, Duration, Input, NodeId, PartitionId, Peer, TopicPartition};
use std::collections::{BTreeMap, BTreeSet};

const ADMIN: u64 = 1;
const APP: u64 = 2;

/// A one-broker cluster with auth on, topics `orders` (2 partitions) and
/// `payroll`, and principal `billing` (secret `app-secret`) granted `grants`.
fn cluster(grants: &[(Operation, Resource)]) -> Harness {
    let auth =
        AuthConfig { admin_app_key: "root".into(), admin_credential: StoredCredential::new(b"root-secret", [9; 16]) };
    let mut h = Harness::new(1, 7, |c| mq_core::NodeConfig { auth: Some(auth.clone()), ..c });
    h.wait_ready();
    let client_nonce = [1; KEY_BYTES];
    let c = h.request(ADMIN, 1, RequestBody::AuthStart { app_key: "root".into(), client_nonce });
    let ResponseBody::AuthChallenge { salt, server_nonce } = admin_answer(&mut h, c) else { panic!("a challenge") };
    let proof = client_proof(b"root-secret", &salt, "root", &server_nonce, &client_nonce);
    let c = h.request(ADMIN, 1, RequestBody::AuthProof { proof });
    assert!(matches!(admin_answer(&mut h, c), ResponseBody::Authenticated { .. }));
    admin(&mut h, RequestBody::CreateTopic(TopicConfig::new("orders", 2)));
    admin(&mut h, RequestBody::CreateTopic(TopicConfig::new("payroll", 1)));
    let credential = StoredCredential::new(b"app-secret", [4; 16]);
    admin(&mut h, RequestBody::PutPrincipal { app_key: "billing".into(), credential });
    for (operation, resource) in grants {
        let grant = Grant { principal: "billing".into(), operation: *operation, resource: resource.clone() };
        admin(&mut h, RequestBody::PutAcl(grant));
    }
    h
}

fn admin_answer(h: &mut Harness, c: CorrelationId) -> ResponseBody {
    h.advance(Duration::from_millis(300));
    let r = h.take_response(ADMIN, c).expect("an answer");
    r.body.unwrap_or_else(|e| panic!("{e}"))
}

fn admin(h: &mut Harness, body: RequestBody) {
    let c = h.request(ADMIN, 1, body);
    let answer = admin_answer(h, c);
    assert!(matches!(answer, ResponseBody::TopicCreated | ResponseBody::SecurityUpdated), "{answer:?}");
}

fn credentials(secret: &str) -> Credentials {
    Credentials::new("billing", secret)
}

fn kind(body: &RequestBody) -> &'static str {
    match body {
        RequestBody::AuthStart { .. } => "start",
        RequestBody::AuthProof { .. } => "proof",
        RequestBody::Metadata { .. } => "metadata",
        RequestBody::InitProducer => "init",
        RequestBody::Produce { .. } => "produce",
        _ => "other",
    }
}

/// What passed between a client and the cluster.
#[derive(Default)]
struct Wire {
    routes: BTreeMap<CorrelationId, u32>,
    /// Every request's kind, in order.
    requests: Vec<&'static str>,
    /// Error codes of the answers.
    refusals: Vec<ErrorCode>,
}

impl Wire {
    /// Hands `msg` to broker `n` (a stopped broker closes the connection).
    fn send(&mut self, h: &mut Harness, client: u64, n: NodeId, msg: Message) -> Option<Input> {
        if let Message::Request(r) = &msg {
            self.routes.insert(r.correlation, n.0);
            self.requests.push(kind(&r.body));
        }
        if h.is_running(n.0) {
            h.input(n.0, Input::Message { from: Peer::Client(ClientId(client)), msg });
            None
        } else {
            Some(Input::Disconnected { peer: Peer::Node(n) })
        }
    }

    /// The answers `client` received, as inputs.
    fn answers(&mut self, h: &mut Harness, client: u64) -> Vec<Input> {
        let responses: Vec<Response> = h.take_responses(client);
        responses
            .into_iter()
            .map(|resp| {
                if let Err(e) = &resp.body {
                    self.refusals.push(e.code);
                }
                // Push answers share a correlation id: keep the route.
                let from = NodeId(*self.routes.get(&resp.correlation).expect("an answer to a request"));
                Input::Message { from: Peer::Node(from), msg: Message::Response(resp) }
            })
            .collect()
    }
}

/// Moves the producer's requests into the harness and the answers back for `d`,
/// in steps of 5 ms.
fn pump(h: &mut Harness, p: &mut Producer, wire: &mut Wire, done: &mut Vec<(SendId, ProduceOutcome)>, d: Duration) {
    let until = h.now() + d;
    while h.now() < until {
        while let Some(out) = p.poll_output() {
            match out {
                ProducerOutput::Send { to: Peer::Node(n), msg } => {
                    if let Some(closed) = wire.send(h, APP, n, msg) {
                        p.handle(h.now(), closed);
                    }
                }
                ProducerOutput::Send { .. } => {}
                ProducerOutput::Done { id, outcome } => done.push((id, outcome)),
            }
        }
        h.advance(Duration::from_millis(5));
        for input in wire.answers(h, APP) {
            p.handle(h.now(), input);
        }
        if p.poll_timeout().is_some_and(|t| t <= h.now()) {
            p.handle(h.now(), Input::Timeout);
        }
    }
}

fn producer(secret: &str) -> Producer {
    let config = ProducerConfig::new([NodeId(1)])
        .request_timeout(Duration::from_millis(500))
        .max_attempts(50)
        .credentials(credentials(secret));
    Producer::new(config, 11).unwrap()
}

fn send(h: &Harness, p: &mut Producer, topic: &str, value: &str) -> SendId {
    p.send(h.now(), topic, PartitionId(0), Acks::All, vec![Record::from_value(value.to_string())]).unwrap()
}

fn offsets(done: &[(SendId, ProduceOutcome)]) -> Vec<(SendId, u64)> {
    done.iter()
        .map(|(id, o)| match o {
            ProduceOutcome::Ok { base_offset, .. } => (*id, base_offset.0),
            other => panic!("{id:?} did not succeed: {other:?}"),
        })
        .collect()
}

#[test]
fn a_producer_with_the_right_secret_and_a_grant_gets_offsets_and_a_topic_without_one_is_refused() {
    let mut h = cluster(&[(Operation::Produce, Resource::Topic("orders".into()))]);
    let mut p = producer("app-secret");
    let (mut wire, mut done) = (Wire::default(), Vec::new());
    let ids: Vec<SendId> = ["a", "b", "c"].iter().map(|v| send(&h, &mut p, "orders", v)).collect();
    pump(&mut h, &mut p, &mut wire, &mut done, Duration::from_millis(200));
    assert_eq!(offsets(&done), vec![(ids[0], 0), (ids[1], 1), (ids[2], 2)]);
    assert_eq!(wire.requests[..2], ["start", "proof"], "the login comes first");
    assert!(wire.refusals.is_empty(), "nothing was sent before the login: {:?}", wire.refusals);
    let tp = TopicPartition::new("orders", 0);
    assert_eq!(support::log_values(&h, 1, &tp), ["a", "b", "c"]);

    // An ACL refusal fails the send definitely, without retries or a new login.
    done.clear();
    let refused = send(&h, &mut p, "payroll", "x");
    pump(&mut h, &mut p, &mut wire, &mut done, Duration::from_millis(200));
    let [(id, ProduceOutcome::Failed { error })] = done.as_slice() else { panic!("{done:?}") };
    assert_eq!((*id, error.code), (refused, ErrorCode::Unauthorized));
    assert_eq!(wire.requests.iter().filter(|k| **k == "start").count(), 1);
    assert_eq!(p.retries(), 0);
    assert!(support::log_values(&h, 1, &TopicPartition::new("payroll", 0)).is_empty());
}

#[test]
fn a_wrong_secret_fails_every_send_at_once_with_the_app_key_and_no_retry_storm() {
    let mut h = cluster(&[(Operation::Produce, Resource::Topic("orders".into()))]);
    let mut p = producer("guess");
    let (mut wire, mut done) = (Wire::default(), Vec::new());
    let start = h.now();
    let ids: Vec<SendId> = (0..5).map(|i| send(&h, &mut p, "orders", &format!("v{i}"))).collect();
    pump(&mut h, &mut p, &mut wire, &mut done, Duration::from_millis(100));
    assert_eq!(done.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids, "every send ended within 100 ms");
    for (_, outcome) in &done {
        let ProduceOutcome::Failed { error } = outcome else { panic!("definite: {outcome:?}") };
        assert_eq!(error.code, ErrorCode::Unauthenticated);
        assert!(error.message.contains("app key \"billing\""), "{error}");
    }
    let late = send(&h, &mut p, "orders", "late");
    pump(&mut h, &mut p, &mut wire, &mut done, Duration::from_secs(10));
    assert!(matches!(done.last(), Some((id, ProduceOutcome::Failed { .. })) if *id == late), "{done:?}");
    assert_eq!(wire.requests, ["start", "proof"], "one login attempt, nothing after it");
    assert!(p.auth_error().is_some() && p.inflight() == 0);
    assert!(h.now() - start >= Duration::from_secs(10));
    assert!(support::log_values(&h, 1, &TopicPartition::new("orders", 0)).is_empty());
}

#[test]
fn a_producer_whose_broker_restarts_logs_in_again_and_carries_on() {
    let mut h = cluster(&[(Operation::Produce, Resource::Topic("orders".into()))]);
    let mut p = producer("app-secret");
    let (mut wire, mut done) = (Wire::default(), Vec::new());
    let first = send(&h, &mut p, "orders", "before");
    pump(&mut h, &mut p, &mut wire, &mut done, Duration::from_millis(200));
    assert_eq!(offsets(&done), vec![(first, 0)]);

    // The broker restarts between two sends: it forgot the connection's login.
    h.crash(1);
    h.restart(1);
    h.wait_ready();
    done.clear();
    let second = send(&h, &mut p, "orders", "after");
    pump(&mut h, &mut p, &mut wire, &mut done, Duration::from_secs(2));
    assert_eq!(offsets(&done), vec![(second, 1)]);
    assert!(wire.refusals.contains(&ErrorCode::Unauthenticated), "the restarted broker refused the old login");
    assert_eq!(wire.requests.iter().filter(|k| **k == "start").count(), 2, "{:?}", wire.requests);
    assert!(p.auth_error().is_none());
    assert_eq!(support::log_values(&h, 1, &TopicPartition::new("orders", 0)), ["before", "after"]);
}

/// Moves the member's requests into the harness and the answers back for `d`,
/// in steps of 5 ms, acking every record it hands out; returns the records
/// (partition, offset) and the events.
fn pump_member(
    h: &mut Harness,
    c: &mut GroupConsumer,
    wire: &mut Wire,
    d: Duration,
) -> (BTreeSet<(u32, u64)>, Vec<GroupEvent>) {
    let (mut received, mut events) = (BTreeSet::new(), Vec::new());
    let until = h.now() + d;
    while h.now() < until {
        while let Some(r) = c.poll_record() {
            received.insert((r.tp.partition.0, r.offset.0));
            c.ack(h.now(), &r.tp, r.offset).expect("room for the ack");
        }
        while let Some(GroupConsumerOutput::Send { to: Peer::Node(n), msg }) = c.poll_output() {
            if let Some(closed) = wire.send(h, APP, n, msg) {
                c.handle(h.now(), closed);
            }
        }
        events.extend(std::iter::from_fn(|| c.poll_event()));
        h.advance(Duration::from_millis(5));
        for input in wire.answers(h, APP) {
            c.handle(h.now(), input);
        }
        if c.poll_timeout().is_some_and(|t| t <= h.now()) {
            c.handle(h.now(), Input::Timeout);
        }
    }
    (received, events)
}

#[test]
fn a_group_consumer_with_consume_grants_consumes_and_acks_end_to_end() {
    let grants =
        [(Operation::Consume, Resource::Topic("orders".into())), (Operation::Consume, Resource::Group("g".into()))];
    let mut h = cluster(&grants);
    for p in 0..2 {
        let records = (0..5).map(|i| Record::from_value(format!("p{p}-{i}"))).collect();
        let body = RequestBody::Produce {
            topic: "orders".into(),
            partition: PartitionId(p),
            acks: Acks::All,
            batch: RecordBatch::new(records),
        };
        let c = h.request(ADMIN, 1, body);
        assert!(matches!(admin_answer(&mut h, c), ResponseBody::Produced { .. }));
    }
    let config = GroupConsumerConfig::new([NodeId(1)], "g", ["orders"])
        .session_timeout(Duration::from_secs(3))
        .request_timeout(Duration::from_millis(500))
        .join_timeout(Duration::from_secs(5))
        .pull(10, Duration::from_millis(200))
        .credentials(credentials("app-secret"));
    let mut c = GroupConsumer::new(config, APP).unwrap();
    let mut wire = Wire::default();
    let (received, events) = pump_member(&mut h, &mut c, &mut wire, Duration::from_secs(5));
    let all: BTreeSet<(u32, u64)> = (0..2).flat_map(|p| (0..5).map(move |o| (p, o))).collect();
    assert_eq!(received, all, "every record handed out");
    let mut confirmed = BTreeSet::new();
    for e in &events {
        if let GroupEvent::AcksConfirmed { tp, acks, .. } = e {
            confirmed.extend(acks.iter().filter(|(_, k)| *k == AckKind::Ack).map(|(o, _)| (tp.partition.0, o.0)));
        }
        assert!(!matches!(e, GroupEvent::Error { .. }), "{e:?}");
    }
    assert_eq!(confirmed, all, "every ack confirmed by the leader");
    assert_eq!(
        wire.requests[..2],
        ["start", "proof"],
        "the login comes first: {:?} {:?}",
        wire.requests,
        wire.refusals
    );
    assert!(!wire.refusals.contains(&ErrorCode::Unauthenticated) && !wire.refusals.contains(&ErrorCode::Unauthorized));
    assert!(c.is_stable() && c.auth_error().is_none());
}

#[test]
fn a_group_consumer_with_a_wrong_secret_stops_with_a_clear_error() {
    let mut h = cluster(&[
        (Operation::Consume, Resource::Topic("*".into())),
        (Operation::Consume, Resource::Group("*".into())),
    ]);
    let config = GroupConsumerConfig::new([NodeId(1)], "g", ["orders"]).credentials(credentials("guess"));
    let mut c = GroupConsumer::new(config, APP).unwrap();
    let mut wire = Wire::default();
    let (_, events) = pump_member(&mut h, &mut c, &mut wire, Duration::from_secs(10));
    let [GroupEvent::Error { error }, GroupEvent::Closed] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!(error.code, ErrorCode::Unauthenticated);
    assert!(error.message.contains("app key \"billing\""), "{error}");
    assert_eq!(wire.requests, ["start", "proof"], "one login attempt, nothing after it");
    assert!(c.is_closed());
}
