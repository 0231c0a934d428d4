//! Who acks (docs/invariants.md, `ack_owner`): every `GroupAck` and `GroupSeek`
//! a partition leader handles is judged by its effect (a cursor record appended
//! while handling it) against the newest generation the leader had taken for
//! the group; and *zombie* members make stale acks and seeks happen. A crashed
//! group member's slot is replaced at once (`Sim::replace_member`), but its
//! unanswered records and its identity (member id, generation) live on: some
//! seconds later, when its partitions have usually moved to another member in a
//! newer generation, the zombie acks those records or seeks to the first of them
//! at the partition's current leader, naming its old generation, as Kafka's
//! zombie consumers commit after a rebalance (no-auth seeds only: a zombie holds
//! no login).

use super::{Ev, Role, Sim};
use crate::trace::Actor;
use mq_core::wire::{AckKind, GroupAck, GroupSeek, Message, Request, RequestBody, SeekTo};
use mq_core::{
    ClientId, CorrelationId, Duration, GroupGeneration, Input, MemberId, Node, NodeId, Offset, Peer, Seed,
    TopicPartition,
};
use rand::Rng as _;

/// A late request of a crashed member (scheduled as `Ev::Zombie`).
pub(super) struct ZombieRequest {
    client: ClientId,
    group: String,
    member: MemberId,
    generation: GroupGeneration,
    tp: TopicPartition,
    offsets: Vec<Offset>,
    seek: bool,
}

/// A group ack or seek about to be handled by a node, with what the node knew.
pub(super) struct CursorProbe {
    tp: TopicPartition,
    group: String,
    member: MemberId,
    generation: GroupGeneration,
    seek: bool,
    /// The newest generation the node had taken for the group on `tp`.
    known: Option<GroupGeneration>,
    log_end: Offset,
}

impl CursorProbe {
    /// What `node` knows before it handles `input`, if `input` is a client's
    /// group ack or seek.
    pub(super) fn before(node: &Node, input: &Input) -> Option<CursorProbe> {
        let Input::Message { from: Peer::Client(_), msg: Message::Request(Request { body, .. }) } = input else {
            return None;
        };
        let (tp, group, member, generation, seek) = match body {
            RequestBody::GroupAck(a) => (&a.tp, &a.group, a.member, a.generation, false),
            RequestBody::GroupSeek(s) => (&s.tp, &s.group, s.member, s.generation, true),
            _ => return None,
        };
        Some(CursorProbe {
            tp: tp.clone(),
            group: group.clone(),
            member,
            generation,
            seek,
            known: node.group_generation(tp, group),
            log_end: node.log(tp).map_or(Offset(0), |l| l.log_end()),
        })
    }

    /// After `node` handled the request: a broken `ack_owner`, described, when
    /// the request took effect (a cursor record was appended) although it named
    /// a generation older than one the node had taken.
    pub(super) fn judge(&self, node: &Node) -> Option<String> {
        let known = self.known.filter(|k| *k > self.generation)?;
        let log = node.log(&self.tp)?;
        let appended = log
            .batches_from(self.log_end)
            .any(|b| b.kind == mq_core::wire::BatchKind::Control && b.base_offset >= self.log_end);
        appended.then(|| {
            format!(
                "n{} took a {} of member {} of group {} on {} naming generation {} although it had taken generation {known}",
                node.id(),
                if self.seek { "seek" } else { "ack" },
                self.member,
                self.group,
                self.tp,
                self.generation
            )
        })
    }
}

impl Sim {
    /// Group member `c` crashed: schedules its zombie's late request, for the
    /// records it was handed in its last generation and never answered.
    pub(super) fn schedule_zombie(&mut self, c: usize) {
        if self.opts.auth {
            return;
        }
        let Role::Member(m) = &self.clients[c].role else { return };
        let (Some(member), Some(generation)) = (m.gc.member(), m.gc.generation()) else { return };
        let group = crate::members::group_name(m.group);
        let Some(tp) = m.todo.first().map(|(tp, _, _)| tp.clone()) else { return };
        let offsets: Vec<Offset> = m.todo.iter().filter(|(t, _, _)| *t == tp).map(|(_, o, _)| *o).collect();
        let mut rng = Seed(self.cfg.seed).indexed_stream("zombie", self.counters.member_crashes);
        let delay = Duration::from_millis(rng.random_range(500..=6_000));
        let seek = rng.random_bool(0.3);
        let z = ZombieRequest { client: self.clients[c].id, group, member, generation, tp, offsets, seek };
        self.push(self.now + delay, Ev::Zombie(Box::new(z)));
    }

    /// A zombie's late ack or seek, to the partition's current leader.
    pub(super) fn zombie_request(&mut self, z: ZombieRequest) {
        let now = self.now;
        let leader = self
            .nodes
            .iter()
            .filter_map(|s| Some((s.id, s.node.as_ref()?.replica(&z.tp).filter(|r| r.is_leader())?.leader_epoch)))
            .max_by_key(|(_, e)| *e)
            .map(|(id, _)| id);
        let Some(leader): Option<NodeId> = leader else { return };
        let body = if z.seek {
            let to = SeekTo::Offset(*z.offsets.iter().min().expect("a zombie holds records"));
            RequestBody::GroupSeek(GroupSeek {
                group: z.group.clone(),
                member: z.member,
                generation: z.generation,
                tp: z.tp.clone(),
                to,
            })
        } else {
            RequestBody::GroupAck(GroupAck {
                group: z.group.clone(),
                member: z.member,
                generation: z.generation,
                tp: z.tp.clone(),
                acks: z.offsets.iter().map(|o| (*o, AckKind::Ack)).collect(),
                up_to: None,
            })
        };
        self.trace.event(now, Actor::Client(z.client.0), "zombie", 0, 0, || {
            format!(
                "{} to n{leader} (member {} of {}, generation {})",
                super::request_summary(&body),
                z.member,
                z.group,
                z.generation
            )
        });
        let msg = Message::Request(Request { correlation: CorrelationId(1 << 62), body });
        self.send(Peer::Client(z.client), Peer::Node(leader), msg);
    }
}
