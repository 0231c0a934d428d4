//! Security in the simulator (docs/security.md, docs/simulator.md "Security"):
//! the credentials of the honest clients, what the admin creates for them, and the
//! adversarial clients.
//!
//! In an auth seed two adversarial clients attack the cluster, drawing from their
//! own `adversary` stream (the other streams do not move):
//! - the **anonymous** client never proves a principal: it sends requests before
//!   authenticating, proofs computed with wrong secrets (for its own, a producer's
//!   and the admin's app key), proofs recorded from the intruder's earlier
//!   exchanges (replays for a new challenge) and proofs without a challenge;
//! - the **intruder** logs in as a low-privilege principal (its only grant is
//!   consuming group `x.sandbox`, which no one uses) and then asks for what it may
//!   not do: produce single records and batches to the run's topics, fetch them,
//!   join, ack, seek and heartbeat in the run's groups, create and delete topics,
//!   principals and grants, describe the security settings, and replay its own
//!   proof on its authenticated connection.
//!
//! The simulator's network carries typed `Message`s, not bytes, so garbage and
//! truncated frames are not sent here (the codec's fuzz targets and mq-net's
//! tests cover them); the hostile requests are well-formed. Values the adversaries
//! write are `x<attack>.<i>`, so the checker recognises them anywhere.

use crate::checker::{AuthRules, ADVERSARY_NAME_PREFIX};
use crate::history::{AttackOutcome, History};
use bytes::Bytes;
use mq_core::client::Credentials;
use mq_core::group::GroupMode;
use mq_core::security::acl::{Grant, Operation, Resource};
use mq_core::security::{client_proof, StoredCredential, KEY_BYTES};
use mq_core::wire::{
    AckKind, Acks, ErrorCode, GroupAck, GroupSeek, GroupSettings, JoinGroup, Message, OffsetSpec, Record, RecordBatch,
    Request, RequestBody, ResponseBody, SeekTo, TopicConfig, WireError,
};
use mq_core::{CorrelationId, Duration, GroupGeneration, Instant, MemberId, NodeId, Offset, Rng, Seed, TopicPartition};
use rand::{Rng as _, RngCore as _};
use std::collections::BTreeMap;

/// The bootstrap admin's app key (from every broker's configuration).
pub const ADMIN_APP_KEY: &str = "admin";
/// The intruder's app key: a real, low-privilege principal.
pub const INTRUDER_APP_KEY: &str = "x.intruder";
/// The only group the intruder may consume (no one uses it).
pub const SANDBOX_GROUP: &str = "x.sandbox";
/// Acks and seeks of the adversaries name offsets from here on: no honest member
/// acks them, so a cursor that covers one moved for an adversary.
pub const ADVERSARY_OFFSET: u64 = 1 << 40;

/// The secret of `app_key` in the run of `seed` (honest clients and the intruder).
pub fn secret_of(seed: u64, app_key: &str) -> Vec<u8> {
    format!("secret/{seed}/{app_key}").into_bytes()
}

/// The stored credential of `app_key` (its salt derives from the seed).
pub fn credential_of(seed: u64, app_key: &str) -> StoredCredential {
    let salt_seed = Seed(seed).child("salt", mq_core::rng::fnv1a(app_key.as_bytes())).0;
    let mut salt = [0u8; 16];
    salt[..8].copy_from_slice(&salt_seed.to_le_bytes());
    salt[8..].copy_from_slice(&salt_seed.rotate_left(17).to_le_bytes());
    StoredCredential::new(&secret_of(seed, app_key), salt)
}

/// The credentials an honest client carries.
pub fn credentials(seed: u64, app_key: &str) -> Credentials {
    Credentials::new(app_key, secret_of(seed, app_key))
}

/// App key of producer `i`.
pub fn producer_key(i: u32) -> String {
    format!("producer-{i}")
}

/// App key of the consumer of `tp`.
pub fn consumer_key(tp: &TopicPartition) -> String {
    format!("consumer-{}-{}", tp.topic, tp.partition)
}

/// App key of the members of group `group`.
pub fn member_key(group: &str) -> String {
    format!("member-{group}")
}

/// The principals and grants of an auth seed: one principal per producer (produce
/// on every topic), per consumer (consume on its topic), per group (consume on the
/// group and every topic) and the intruder (consume on `x.sandbox` only).
pub fn honest_rules(producers: u32, consumers: &[TopicPartition], groups: &[String], topics: &[String]) -> AuthRules {
    let mut rules = AuthRules::default();
    let grant = |principal: &str, operation, resource| Grant { principal: principal.to_string(), operation, resource };
    for i in 0..producers {
        let key = producer_key(i);
        for t in topics {
            rules.grants.insert(grant(&key, Operation::Produce, Resource::Topic(t.clone())));
        }
        rules.principals.insert(key);
    }
    for tp in consumers {
        let key = consumer_key(tp);
        rules.grants.insert(grant(&key, Operation::Consume, Resource::Topic(tp.topic.clone())));
        rules.principals.insert(key);
    }
    for g in groups {
        let key = member_key(g);
        rules.grants.insert(grant(&key, Operation::Consume, Resource::Group(g.clone())));
        for t in topics {
            rules.grants.insert(grant(&key, Operation::Consume, Resource::Topic(t.clone())));
        }
        rules.principals.insert(key);
    }
    rules.grants.insert(grant(INTRUDER_APP_KEY, Operation::Consume, Resource::Group(SANDBOX_GROUP.to_string())));
    rules.principals.insert(INTRUDER_APP_KEY.to_string());
    rules
}

/// The admin requests that create `rules`, labelled (the admin retries each until
/// confirmed).
pub fn setup_requests(seed: u64, rules: &AuthRules) -> Vec<(String, RequestBody)> {
    let mut out = Vec::new();
    for p in &rules.principals {
        let body = RequestBody::PutPrincipal { app_key: p.clone(), credential: credential_of(seed, p) };
        out.push((format!("principal {p}"), body));
    }
    for g in &rules.grants {
        out.push((format!("grant {} {:?} {:?}", g.principal, g.operation, g.resource), RequestBody::PutAcl(g.clone())));
    }
    out
}

/// Which of the two adversarial clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdversaryKind {
    /// Never authenticated.
    Anonymous,
    /// Logged in as [`INTRUDER_APP_KEY`].
    Intruder,
    /// Logged in as [`crate::acl_mix::MIXED_APP_KEY`], with mixed grants:
    /// requests inside and outside them, judged by the checker's ACL model.
    Mixed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Login {
    Started { correlation: CorrelationId, nonce: [u8; KEY_BYTES], at: Instant },
    Proving { correlation: CorrelationId, at: Instant },
    Done,
}

#[derive(Clone, Debug)]
enum Pending {
    /// A hostile request: any OK answer is a bypass.
    Attack { id: u64, broker: NodeId },
    /// The `AuthStart` of an attack with a bad proof: the challenge is expected,
    /// the proof then goes out as `Attack`.
    Probe { id: u64, app_key: String, proof: BadProof },
    /// The intruder's own login.
    Login,
    /// A request of the mixed principal, judged by the ACL model.
    Judged(Box<crate::acl_mix::Judged>),
}

#[derive(Clone, Debug)]
enum BadProof {
    WrongSecret(Vec<u8>),
    Replay([u8; KEY_BYTES]),
}

/// What an answer meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A hostile request was refused with this code.
    Refused(ErrorCode),
    /// A hostile request was answered OK: a bypass.
    Accepted { attack: u64, what: String, answer: String },
    /// The mixed principal's request was answered against the ACL model
    /// (`acl_model`), described.
    AclModel(String),
}

/// What the adversary may aim at, from the simulator.
pub struct Targets<'a> {
    /// Brokers `1..=brokers`.
    pub brokers: u32,
    /// The run's partitions.
    pub partitions: &'a [TopicPartition],
    /// The current leader of each partition the simulator sees (for produce
    /// attacks, so a broken check would append).
    pub leaders: &'a BTreeMap<TopicPartition, NodeId>,
    /// The run's groups (may be empty).
    pub groups: &'a [String],
    /// Proofs recorded from the intruder's own exchanges.
    pub recorded_proofs: &'a [[u8; KEY_BYTES]],
    /// An honest grant (deleting it is an attack).
    pub honest_grant: Option<&'a Grant>,
}

/// One adversarial client.
pub struct Adversary {
    /// Which one.
    pub kind: AdversaryKind,
    seed: u64,
    rng: Rng,
    next_correlation: u64,
    login: BTreeMap<NodeId, Login>,
    pending: BTreeMap<CorrelationId, Pending>,
    /// Proofs of the intruder's successful logins (the simulator shares them with
    /// the anonymous client).
    pub new_proofs: Vec<[u8; KEY_BYTES]>,
    /// The mixed principal's grants.
    grants: Vec<Grant>,
}

impl Adversary {
    /// The adversarial client `kind` of the run of `seed`.
    pub fn new(seed: u64, kind: AdversaryKind) -> Adversary {
        let rng = Seed(seed).indexed_stream("adversary", kind as u64);
        Adversary {
            kind,
            seed,
            rng,
            next_correlation: 1,
            login: BTreeMap::new(),
            pending: BTreeMap::new(),
            new_proofs: Vec::new(),
            grants: Vec::new(),
        }
    }

    /// The mixed principal's client, holding `grants`.
    pub fn mixed(seed: u64, grants: Vec<Grant>) -> Adversary {
        Adversary { grants, ..Adversary::new(seed, AdversaryKind::Mixed) }
    }

    /// The app key this client logs in with (the anonymous one never does).
    fn app_key(&self) -> &'static str {
        match self.kind {
            AdversaryKind::Mixed => crate::acl_mix::MIXED_APP_KEY,
            AdversaryKind::Anonymous | AdversaryKind::Intruder => INTRUDER_APP_KEY,
        }
    }

    /// The pause before the next attack (mean `interval_ms`).
    pub fn gap(&mut self, interval_ms: u64) -> Duration {
        let mean = interval_ms as f64 * 1e6;
        Duration::from_nanos(crate::network::exp_sample(&mut self.rng, mean) + 1)
    }

    fn correlation(&mut self) -> CorrelationId {
        let c = CorrelationId(self.next_correlation);
        self.next_correlation += 1;
        c
    }

    fn request(&mut self, body: RequestBody, pending: Pending) -> Message {
        let correlation = self.correlation();
        self.pending.insert(correlation, pending);
        Message::Request(Request { correlation, body })
    }

    /// The connection to `broker` closed: a new one starts unauthenticated.
    pub fn disconnected(&mut self, broker: NodeId) {
        self.login.remove(&broker);
    }

    /// The next attack: requests to send, each recorded in `history` (an intruder
    /// not yet logged in at the broker it picked logs in first).
    pub fn tick(
        &mut self,
        now: Instant,
        client: u64,
        t: &Targets<'_>,
        history: &mut History,
    ) -> Vec<(NodeId, Message)> {
        let tp = t.partitions[self.rng.random_range(0..t.partitions.len())].clone();
        let random_broker = NodeId(self.rng.random_range(1..=t.brokers));
        let group = if t.groups.is_empty() || self.rng.random_bool(0.2) {
            format!("{ADVERSARY_NAME_PREFIX}g")
        } else {
            t.groups[self.rng.random_range(0..t.groups.len())].clone()
        };
        match self.kind {
            AdversaryKind::Anonymous => {
                let broker = if self.rng.random_bool(0.5) {
                    *t.leaders.get(&tp).unwrap_or(&random_broker)
                } else {
                    random_broker
                };
                match self.rng.random_range(0..4) {
                    0 => {
                        // A wrong secret for a real app key (or an unknown one).
                        let app_key = match self.rng.random_range(0..4) {
                            0 => ADMIN_APP_KEY.to_string(),
                            1 => INTRUDER_APP_KEY.to_string(),
                            2 => producer_key(0),
                            _ => format!("{ADVERSARY_NAME_PREFIX}nobody"),
                        };
                        let mut guess = vec![0u8; 12];
                        self.rng.fill_bytes(&mut guess);
                        self.probe(now, client, broker, app_key, BadProof::WrongSecret(guess), "wrong-secret", history)
                    }
                    1 if !t.recorded_proofs.is_empty() => {
                        // A proof the intruder sent earlier, for a new challenge.
                        let proof = t.recorded_proofs[self.rng.random_range(0..t.recorded_proofs.len())];
                        let app_key = INTRUDER_APP_KEY.to_string();
                        self.probe(now, client, broker, app_key, BadProof::Replay(proof), "replay-proof", history)
                    }
                    2 => {
                        // A proof with no challenge pending.
                        let mut proof = [0u8; KEY_BYTES];
                        self.rng.fill_bytes(&mut proof);
                        let body = RequestBody::AuthProof { proof };
                        self.attack(now, client, broker, "proof-without-challenge", body, history)
                    }
                    _ => {
                        // Anything at all before authenticating.
                        let (kind, body) = self.hostile(&tp, &group, t, history);
                        self.attack(now, client, broker, kind, body, history)
                    }
                }
            }
            AdversaryKind::Mixed if self.login.get(&random_broker) == Some(&Login::Done) => {
                let (body, judged) =
                    crate::acl_mix::next_request(&mut self.rng, &self.grants, &tp, client, now, history);
                let broker = match &body {
                    RequestBody::Produce { .. } | RequestBody::Fetch { .. } => *t
                        .leaders
                        .get(&tp)
                        .filter(|b| self.login.get(b) == Some(&Login::Done))
                        .unwrap_or(&random_broker),
                    _ => random_broker,
                };
                vec![(broker, self.request(body, Pending::Judged(Box::new(judged))))]
            }
            AdversaryKind::Intruder | AdversaryKind::Mixed => {
                let (kind, body) = if self.kind == AdversaryKind::Mixed {
                    // Not logged in at `random_broker`: only the login below.
                    ("login", RequestBody::DescribeSecurity)
                } else {
                    self.hostile(&tp, &group, t, history)
                };
                let broker = match &body {
                    RequestBody::Produce { .. } | RequestBody::Fetch { .. } => {
                        *t.leaders.get(&tp).unwrap_or(&random_broker)
                    }
                    _ => random_broker,
                };
                match self.login.get(&broker).copied() {
                    Some(Login::Done) => {
                        if self.rng.random_bool(0.1) && !t.recorded_proofs.is_empty() {
                            // Its own earlier proof, on its authenticated connection.
                            let proof = t.recorded_proofs[self.rng.random_range(0..t.recorded_proofs.len())];
                            let body = RequestBody::AuthProof { proof };
                            return self.attack(now, client, broker, "replay-own-proof", body, history);
                        }
                        // The values of a produce were named by `hostile` after the
                        // attack id it will get.
                        self.attack(now, client, broker, kind, body, history)
                    }
                    Some(Login::Started { at, .. } | Login::Proving { at, .. })
                        if now < at + Duration::from_secs(1) =>
                    {
                        Vec::new()
                    }
                    _ => {
                        let mut nonce = [0u8; KEY_BYTES];
                        self.rng.fill_bytes(&mut nonce);
                        let body = RequestBody::AuthStart { app_key: self.app_key().to_string(), client_nonce: nonce };
                        let msg = self.request(body, Pending::Login);
                        let Message::Request(r) = &msg else { unreachable!("a request") };
                        self.login.insert(broker, Login::Started { correlation: r.correlation, nonce, at: now });
                        vec![(broker, msg)]
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // one attack's description
    fn probe(
        &mut self,
        now: Instant,
        client: u64,
        broker: NodeId,
        app_key: String,
        proof: BadProof,
        kind: &'static str,
        history: &mut History,
    ) -> Vec<(NodeId, Message)> {
        let id = history.attack(client, kind, format!("AuthStart {app_key:?} then a bad proof to n{broker}"), now);
        let mut client_nonce = [0u8; KEY_BYTES];
        self.rng.fill_bytes(&mut client_nonce);
        let body = RequestBody::AuthStart { app_key: app_key.clone(), client_nonce };
        vec![(broker, self.request(body, Pending::Probe { id, app_key, proof }))]
    }

    fn attack(
        &mut self,
        now: Instant,
        client: u64,
        broker: NodeId,
        kind: &'static str,
        body: RequestBody,
        history: &mut History,
    ) -> Vec<(NodeId, Message)> {
        let id = history.attack(client, kind, format!("{} to n{broker}", crate::sim::request_summary(&body)), now);
        vec![(broker, self.request(body, Pending::Attack { id, broker }))]
    }

    /// A request the adversary may not make (values are named after the next
    /// attack id).
    fn hostile(
        &mut self,
        tp: &TopicPartition,
        group: &str,
        t: &Targets<'_>,
        history: &History,
    ) -> (&'static str, RequestBody) {
        let id = history.attacks.len() as u64;
        let r = &mut self.rng;
        let generation = GroupGeneration::default();
        let member = MemberId(r.random_range(0..1 << 40));
        match r.random_range(0..16) {
            // Produce is the most likely: a missed check there loses data integrity.
            0..=3 => {
                let n = r.random_range(2..=6);
                ("produce-batch", produce(tp, id, n, if r.random_bool(0.5) { Acks::All } else { Acks::Leader }))
            }
            4 => ("produce-one", produce(tp, id, 1, Acks::Leader)),
            5 => (
                "fetch",
                RequestBody::Fetch {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset: Offset(0),
                    max_bytes: 1 << 20,
                },
            ),
            6 => (
                "list-offsets",
                RequestBody::ListOffsets { topic: tp.topic.clone(), partition: tp.partition, spec: OffsetSpec::Latest },
            ),
            7 => (
                "join-group",
                RequestBody::JoinGroup(JoinGroup {
                    group: group.to_string(),
                    member: None,
                    topics: t
                        .partitions
                        .iter()
                        .map(|p| p.topic.clone())
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect(),
                    mode: GroupMode::Shared,
                    session_timeout: Duration::from_secs(1),
                    settings: GroupSettings::default(),
                    weight: 1,
                }),
            ),
            8 => {
                let base = ADVERSARY_OFFSET + r.random_range(0..1_000);
                (
                    "group-ack",
                    RequestBody::GroupAck(GroupAck {
                        group: group.to_string(),
                        member,
                        generation,
                        tp: tp.clone(),
                        acks: (0..3).map(|i| (Offset(base + i), AckKind::Ack)).collect(),
                        up_to: Some(Offset(ADVERSARY_OFFSET)),
                    }),
                )
            }
            9 => (
                "group-seek",
                RequestBody::GroupSeek(GroupSeek {
                    group: group.to_string(),
                    member,
                    generation,
                    tp: tp.clone(),
                    to: SeekTo::Offset(Offset(ADVERSARY_OFFSET)),
                }),
            ),
            10 => ("heartbeat", RequestBody::Heartbeat { group: group.to_string(), member, generation }),
            11 => {
                ("create-topic", RequestBody::CreateTopic(TopicConfig::new(format!("{ADVERSARY_NAME_PREFIX}t{id}"), 1)))
            }
            12 => ("delete-topic", RequestBody::DeleteTopic { topic: tp.topic.clone() }),
            13 => {
                let app_key = format!("{ADVERSARY_NAME_PREFIX}p{id}");
                let credential = credential_of(self.seed, &app_key);
                ("put-principal", RequestBody::PutPrincipal { app_key, credential })
            }
            14 => {
                let grant = Grant {
                    principal: INTRUDER_APP_KEY.to_string(),
                    operation: Operation::Produce,
                    resource: Resource::Topic(tp.topic.clone()),
                };
                ("put-acl", RequestBody::PutAcl(grant))
            }
            _ => match (r.random_range(0..3), t.honest_grant) {
                (0, Some(g)) => ("delete-acl", RequestBody::DeleteAcl(g.clone())),
                (1, _) => ("delete-principal", RequestBody::DeletePrincipal { app_key: producer_key(0) }),
                _ => ("describe-security", RequestBody::DescribeSecurity),
            },
        }
    }

    /// An answer from `broker`: follow-up requests (proofs) and the verdict on a
    /// hostile request, recorded in `history`.
    pub fn on_response(
        &mut self,
        broker: NodeId,
        correlation: CorrelationId,
        body: &Result<ResponseBody, WireError>,
        history: &mut History,
    ) -> (Vec<(NodeId, Message)>, Option<Verdict>) {
        let Some(pending) = self.pending.remove(&correlation) else { return (Vec::new(), None) };
        match pending {
            Pending::Attack { id, broker: to } => {
                let attack = &mut history.attacks[id as usize];
                match body {
                    Err(e) => {
                        attack.outcome = AttackOutcome::Refused(e.code);
                        if e.code == ErrorCode::Unauthenticated && self.kind == AdversaryKind::Intruder {
                            // The broker restarted and forgot the login.
                            if attack.kind != "replay-own-proof" {
                                self.login.remove(&to);
                            }
                        }
                        (Vec::new(), Some(Verdict::Refused(e.code)))
                    }
                    Ok(answer) => {
                        attack.outcome = AttackOutcome::Accepted;
                        let answer = format!("{answer:?}").chars().take(200).collect();
                        (Vec::new(), Some(Verdict::Accepted { attack: id, what: attack.what.clone(), answer }))
                    }
                }
            }
            Pending::Probe { id, app_key, proof } => match body {
                Ok(ResponseBody::AuthChallenge { salt, server_nonce }) => {
                    let proof = match proof {
                        BadProof::WrongSecret(secret) => {
                            // The nonce is the client's own: any will do for a wrong secret.
                            client_proof(&secret, salt, &app_key, server_nonce, &[0; KEY_BYTES])
                        }
                        BadProof::Replay(p) => p,
                    };
                    let msg = self.request(RequestBody::AuthProof { proof }, Pending::Attack { id, broker });
                    (vec![(broker, msg)], None)
                }
                Ok(answer) => {
                    let attack = &mut history.attacks[id as usize];
                    attack.outcome = AttackOutcome::Accepted;
                    let answer = format!("{answer:?}").chars().take(200).collect();
                    (Vec::new(), Some(Verdict::Accepted { attack: id, what: attack.what.clone(), answer }))
                }
                Err(e) => {
                    history.attacks[id as usize].outcome = AttackOutcome::Refused(e.code);
                    (Vec::new(), Some(Verdict::Refused(e.code)))
                }
            },
            Pending::Judged(j) => {
                if matches!(body, Err(e) if e.code == ErrorCode::Unauthenticated) {
                    self.login.remove(&broker); // it restarted and forgot the login
                }
                if let Some(what) = crate::acl_mix::judge(&j, body, history) {
                    return (Vec::new(), Some(Verdict::AclModel(what)));
                }
                let Some(id) = j.attack else { return (Vec::new(), None) };
                match body {
                    Err(e) => {
                        history.attacks[id as usize].outcome = AttackOutcome::Refused(e.code);
                        (Vec::new(), Some(Verdict::Refused(e.code)))
                    }
                    Ok(_) => (Vec::new(), None), // judged above
                }
            }
            Pending::Login => {
                let step = self.login.get(&broker).copied();
                match (step, body) {
                    (
                        Some(Login::Started { correlation: c, nonce, at }),
                        Ok(ResponseBody::AuthChallenge { salt, server_nonce }),
                    ) if c == correlation => {
                        let secret = secret_of(self.seed, self.app_key());
                        let proof = client_proof(&secret, salt, self.app_key(), server_nonce, &nonce);
                        if self.kind == AdversaryKind::Intruder {
                            self.new_proofs.push(proof);
                        }
                        let msg = self.request(RequestBody::AuthProof { proof }, Pending::Login);
                        let Message::Request(r) = &msg else { unreachable!("a request") };
                        self.login.insert(broker, Login::Proving { correlation: r.correlation, at });
                        (vec![(broker, msg)], None)
                    }
                    (Some(Login::Proving { correlation: c, .. }), Ok(ResponseBody::Authenticated { .. }))
                        if c == correlation =>
                    {
                        self.login.insert(broker, Login::Done);
                        (Vec::new(), None)
                    }
                    (Some(Login::Started { correlation: c, .. } | Login::Proving { correlation: c, .. }), _)
                        if c == correlation =>
                    {
                        // Refused for a passing reason (not ready, restarted): later.
                        self.login.remove(&broker);
                        (Vec::new(), None)
                    }
                    _ => (Vec::new(), None),
                }
            }
        }
    }
}

/// A produce of `n` adversarial values `x<id>.<i>`.
fn produce(tp: &TopicPartition, id: u64, n: u32, acks: Acks) -> RequestBody {
    let records = (0..n).map(|i| Record::from_value(Bytes::from(format!("x{id}.{i}")))).collect();
    RequestBody::Produce { topic: tp.topic.clone(), partition: tp.partition, acks, batch: RecordBatch::new(records) }
}
