//! The ACL model (docs/invariants.md, `acl_model`; docs/simulator.md "Security").
//!
//! In an auth seed one more client, the *mixed* principal, logs in and holds a
//! few grants drawn from the seed: produce or consume, on a topic named exactly
//! or by a prefix pattern (`t*`, `t1*`), or on a group (a decoy of the wrong
//! resource type). It then produces to, fetches from and lists offsets of the
//! run's partitions at random, inside and outside its grants. The checker keeps
//! its own model of the grants (an exact name, or a prefix before a trailing
//! `*`; admin on the cluster is never granted here) and judges every answer and
//! effect by it: a request the model allows must not be refused `Unauthorized`;
//! one it does not allow must not be answered OK, and its records (named
//! `x<attack>.<i>` like every adversarial value) must never reach a log
//! (`auth_not_bypassed` watches those). Allowed produces write ordinary values
//! (`v<op>.<i>`, acks=1, outcome indefinite), so every data check covers them.

use crate::checker::AuthRules;
use crate::history::{History, Outcome};
use bytes::Bytes;
use mq_core::security::acl::{Grant, Operation, Resource};
use mq_core::wire::{Acks, ErrorCode, OffsetSpec, Record, RecordBatch, RequestBody, ResponseBody, WireError};
use mq_core::{Instant, Rng, Seed, TopicPartition};
use rand::Rng as _;

/// The mixed principal's app key.
pub const MIXED_APP_KEY: &str = "mixed";

/// The grants of the mixed principal in the run of `seed`: one to three, each an
/// operation (produce, consume) on a resource pattern (a topic by name, by a
/// prefix, or a group named like a topic).
pub fn mixed_grants(seed: u64, topics: &[String]) -> Vec<Grant> {
    let mut rng = Seed(seed).stream("acl-mix");
    let n = rng.random_range(1..=3);
    (0..n)
        .map(|_| {
            let operation = if rng.random_bool(0.5) { Operation::Produce } else { Operation::Consume };
            let topic = topics[rng.random_range(0..topics.len())].clone();
            let resource = match rng.random_range(0..6) {
                0 | 1 => Resource::Topic(topic),
                // A prefix of one topic's name (`t1*` also matches `t10`).
                2 | 3 => Resource::Topic(format!("{topic}*")),
                4 => Resource::Topic("t*".to_string()),
                // The right name, the wrong resource type.
                _ => Resource::Group(topic),
            };
            Grant { principal: MIXED_APP_KEY.to_string(), operation, resource }
        })
        .collect()
}

/// Adds the mixed principal and its grants to `rules` (the admin creates them).
pub fn add_mixed(seed: u64, rules: &mut AuthRules, topics: &[String]) {
    rules.principals.insert(MIXED_APP_KEY.to_string());
    rules.grants.extend(mixed_grants(seed, topics));
}

/// The mixed principal's grants among `rules`.
pub fn grants_of(rules: &AuthRules) -> Vec<Grant> {
    rules.grants.iter().filter(|g| g.principal == MIXED_APP_KEY).cloned().collect()
}

/// The checker's model: whether `grants` allow `operation` on `resource` (an
/// exact name, or any name starting with the part before a trailing `*`, of the
/// same resource type and operation).
pub fn model_allows<'a>(grants: &'a [Grant], operation: Operation, resource: &Resource) -> Option<&'a Grant> {
    let matches = |pattern: &str, name: &str| match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    };
    grants.iter().find(|g| {
        g.operation == operation
            && match (&g.resource, resource) {
                (Resource::Topic(p), Resource::Topic(n)) | (Resource::Group(p), Resource::Group(n)) => matches(p, n),
                (Resource::Cluster, Resource::Cluster) => true,
                _ => false,
            }
    })
}

/// One request of the mixed client, with what the model says of it.
#[derive(Clone, Debug)]
pub struct Judged {
    /// The request, in one line.
    pub what: String,
    /// The grant that allows it, if any.
    pub allowed_by: Option<Grant>,
    /// An allowed produce: its op in the history.
    pub op: Option<u64>,
    /// A request outside the grants: its attack in the history.
    pub attack: Option<u64>,
    /// When it was sent (an allowed produce's outcome is dated then: the
    /// answer's time is not needed by any check).
    pub at: Instant,
}

/// The mixed client's next request on `tp`.
pub fn next_request(
    rng: &mut Rng,
    grants: &[Grant],
    tp: &TopicPartition,
    client: u64,
    now: Instant,
    history: &mut History,
) -> (RequestBody, Judged) {
    let topic = Resource::Topic(tp.topic.clone());
    let kind = rng.random_range(0..4);
    let operation = if kind < 2 { Operation::Produce } else { Operation::Consume };
    let allowed_by = model_allows(grants, operation, &topic).cloned();
    let (body, op, attack) = match kind {
        0 | 1 => {
            let n = rng.random_range(1..=3);
            let summary = format!("produce {tp} ({n} records) as {MIXED_APP_KEY}");
            let (values, op, attack): (Vec<Bytes>, _, _) = if allowed_by.is_some() {
                let op = history.invoke(client, tp.clone(), Acks::Leader, n, now);
                (history.ops[op as usize].values.clone(), Some(op), None)
            } else {
                let id = history.attack(client, "acl-produce", summary, now);
                ((0..n).map(|i| Bytes::from(format!("x{id}.{i}"))).collect(), None, Some(id))
            };
            // Keys and tags as every workload record has them (groups::key_of).
            let records = values
                .into_iter()
                .map(|v| Record {
                    key: Some(crate::groups::key_of(&v)),
                    tags: crate::groups::tags_of(&v),
                    ..Record::from_value(v)
                })
                .collect();
            let batch = RecordBatch::new(records);
            (
                RequestBody::Produce { topic: tp.topic.clone(), partition: tp.partition, acks: Acks::Leader, batch },
                op,
                attack,
            )
        }
        2 => {
            let body = RequestBody::Fetch {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset: mq_core::Offset(0),
                max_bytes: 1 << 16,
            };
            (body, None, None)
        }
        _ => {
            let spec = OffsetSpec::Latest;
            (RequestBody::ListOffsets { topic: tp.topic.clone(), partition: tp.partition, spec }, None, None)
        }
    };
    let what = format!("{} as {MIXED_APP_KEY}", crate::sim::request_summary(&body));
    let attack = match (attack, &allowed_by) {
        (None, None) => Some(history.attack(client, "acl-consume", what.clone(), now)),
        (a, _) => a,
    };
    (body, Judged { what, allowed_by, op, attack, at: now })
}

/// Judges the answer to `j`: a broken `acl_model`, described, if the model
/// allowed it and it was refused `Unauthorized`, or it did not and it was
/// answered OK. Records the outcome in `history`.
pub fn judge(j: &Judged, body: &Result<ResponseBody, WireError>, history: &mut History) -> Option<String> {
    let now = j.at;
    if let Some(op) = j.op {
        history.ops[op as usize].outcome = match body {
            Err(e) if matches!(e.code, ErrorCode::Unauthorized | ErrorCode::Unauthenticated) => {
                Outcome::Failed { at: now, code: e.code }
            }
            _ => Outcome::Indefinite { at: now },
        };
    }
    match (&j.allowed_by, body) {
        (Some(g), Err(e)) if e.code == ErrorCode::Unauthorized => {
            Some(format!("{} was refused Unauthorized although {g:?} allows it: {e}", j.what))
        }
        (None, Ok(answer)) => {
            let answer: String = format!("{answer:?}").chars().take(120).collect();
            Some(format!("{} was answered OK although no grant of {MIXED_APP_KEY} allows it: {answer}", j.what))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(operation: Operation, resource: Resource) -> Grant {
        Grant { principal: MIXED_APP_KEY.into(), operation, resource }
    }

    #[test]
    fn the_model_matches_operation_type_and_pattern() {
        let grants =
            [g(Operation::Produce, Resource::Topic("t1*".into())), g(Operation::Consume, Resource::Group("t0".into()))];
        let topic = |n: &str| Resource::Topic(n.into());
        assert!(model_allows(&grants, Operation::Produce, &topic("t1")).is_some());
        assert!(model_allows(&grants, Operation::Produce, &topic("t10")).is_some());
        assert!(model_allows(&grants, Operation::Produce, &topic("t0")).is_none());
        assert!(model_allows(&grants, Operation::Consume, &topic("t1")).is_none(), "another operation");
        assert!(model_allows(&grants, Operation::Consume, &topic("t0")).is_none(), "another resource type");
        let exact = [g(Operation::Consume, Resource::Topic("t1".into()))];
        assert!(model_allows(&exact, Operation::Consume, &topic("t10")).is_none(), "an exact name is no prefix");
    }

    #[test]
    fn answers_are_judged_against_the_model() {
        let mut h = History::default();
        let allowed = Judged {
            what: "p".into(),
            allowed_by: Some(g(Operation::Produce, Resource::Cluster)),
            op: None,
            attack: None,
            at: Instant::ZERO,
        };
        let refused = Err(WireError::new(ErrorCode::Unauthorized, "no"));
        assert!(judge(&allowed, &refused, &mut h).is_some());
        assert!(judge(&allowed, &Err(WireError::new(ErrorCode::NotLeader, "moved")), &mut h).is_none());
        let outside = Judged { allowed_by: None, ..allowed };
        assert!(judge(&outside, &refused, &mut h).is_none());
        assert!(judge(&outside, &Ok(ResponseBody::Offset { offset: mq_core::Offset(0) }), &mut h).is_some());
    }
}
