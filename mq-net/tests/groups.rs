//! Group membership through the real TCP broker (docs/consumers.md): the core's
//! coordinator answers over the wire; the client library has no group API yet, so
//! the test sends the raw requests.

mod common;

use common::{client, start};
use mq_core::group::{assign::Assignor, GroupMode};
use mq_core::wire::{JoinGroup, RequestBody, ResponseBody};
use mq_net::{ErrorCode, NewTopic};
use std::time::Duration;

#[tokio::test]
async fn a_member_joins_heartbeats_and_leaves_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let c = client(broker.local_addr()).await;
    c.create_topic(NewTopic::new("orders", 2)).await.unwrap();
    // The first lookup creates __groups (CoordinatorNotAvailable is retried).
    let find = RequestBody::FindCoordinator { group: "billing".into() };
    match c.request(find).await.unwrap() {
        ResponseBody::Coordinator { coordinator, .. } => assert_eq!(coordinator.0, 1),
        other => panic!("{other:?}"),
    }
    let join = JoinGroup {
        group: "billing".into(),
        member: None,
        topics: vec!["orders".into()],
        mode: GroupMode::Exclusive(Assignor::Range),
        session_timeout: Duration::from_secs(10).into(),
        settings: mq_core::wire::GroupSettings::default(),
        weight: 1,
    };
    // The coordinator may still be starting on the new partition's leader.
    let mut joined = None;
    for _ in 0..50 {
        match c.request(RequestBody::JoinGroup(join.clone())).await {
            Ok(ResponseBody::Joined(j)) => {
                joined = Some(j);
                break;
            }
            Err(e) if e.code() == Some(ErrorCode::NotCoordinator) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => panic!("{other:?}"),
        }
    }
    let j = joined.expect("joined within 5 s");
    assert_eq!(j.assignment.len(), 2);
    let hb = RequestBody::Heartbeat { group: "billing".into(), member: j.member, generation: j.generation };
    assert_eq!(c.request(hb).await.unwrap(), ResponseBody::HeartbeatOk);
    let leave = RequestBody::LeaveGroup { group: "billing".into(), member: j.member };
    assert_eq!(c.request(leave).await.unwrap(), ResponseBody::Left);
    broker.stop().await.unwrap();
}
