//! Aimed faults at protocol moments (issue 18; docs/simulator.md "Aimed faults";
//! the kinds and options are in `crate::aimed`). The run watches what nodes send
//! and report and what group members see; at a moment of a kind that is on, it
//! draws (from that kind's own `aimed-kind` stream, so one kind's draws never
//! move another's, nor any other stream of the seed) whether to fire, and what.
//!
//! A fired fault is queued one nanosecond later as an [`Ev::Aimed`] (so the node
//! finishes the step it is in, and a schedule's replay, which injects it at its
//! recorded instant, meets the same state), applied by [`Sim::apply_fault`] and
//! recorded as [`Fault::Aimed`]. A run replaying a recorded schedule watches for
//! no moment: its aimed faults are in the schedule.

use super::{Ev, Sim};
use crate::aimed::AimedKind;
use crate::network::exp_sample;
use crate::schedule::Fault;
use crate::trace::Actor;
use mq_core::controller::raft::{RaftMessage, RaftRole};
use mq_core::controller::{ControllerRequest, MetadataRecord};
use mq_core::wire::{Message, PeerMessage, Request, RequestBody};
use mq_core::{CorrelationId, Duration, Event, Input, Instant, NodeId, Peer, Rng, Seed, Term, TopicPartition};
use rand::Rng as _;

/// The aimed faults' state of one run.
pub(super) struct Aimed {
    /// One stream per kind.
    rngs: Vec<Rng>,
    /// Per kind, the earliest time the next may fire.
    next: Vec<Instant>,
    /// Whether a member's heartbeat is held back ([`Sim::aimed_heartbeat_delay`]).
    heartbeat: Rng,
    /// Whether an ISR change request is delivered twice ([`Sim::aimed_isr_duplicate`]).
    isr_duplicate: Rng,
    /// Whether an ISR expansion's answer is held ([`Sim::aimed_on_isr_ask`]).
    isr_unanswered: Rng,
    /// Whether an ISR member's fetches are held to make its leader shrink the
    /// ISR and expand it again ([`Sim::aimed_on_replica_fetch`]).
    isr_induce: Rng,
    /// No such hold starts before this.
    next_induce: Instant,
    /// The controller answer held now, if any.
    held: Option<HeldAnswer>,
    /// Followers' fetches of a partition held back meanwhile.
    held_fetches: Vec<HeldFetch>,
    /// Leader tenures (partition, leader, leader epoch) that began with records
    /// past the HW (or with a stalled follower) and whose HW has not moved yet:
    /// the first move is a [`Sim::aimed_on_first_commit`] moment.
    first_hw: Vec<(TopicPartition, NodeId, mq_core::LeaderEpoch)>,
    /// The active controller whose Raft messages with the other voters are
    /// held, and until when ([`Sim::aimed_on_admin_append`]).
    raft_hold: Option<(NodeId, Instant)>,
    /// Whether a topic creation's append is held (`aimed-admin-commit`).
    admin_commit: Rng,
    /// Partitions whose leader an aimed fault crashed so that another takes
    /// over (a stalled follower's leader, or a `first_commit` lead-in).
    stalls: Vec<StallWatch>,
    /// Whether a leader is crashed as a `first_commit` lead-in
    /// (`aimed-first-commit-lead-in`), and not before when.
    lead_in: Rng,
    next_lead_in: Instant,
}

/// The leader of `tp`, `old_leader`, was crashed by an aimed fault while a
/// follower held records another ISR member lacks: with a stalled disk
/// (`follower` is that follower, [`Sim::aimed_after_replica_data`]) or not
/// (`follower` is `None`, [`Sim::aimed_first_commit_lead_in`]). The next
/// leader of `tp` other than `old_leader` to move its HW before `until` is
/// crashed with its ISR, `follower` (or the member durable to the least
/// offset) last and back first ([`Sim::aimed_on_first_commit`]).
struct StallWatch {
    follower: Option<NodeId>,
    old_leader: NodeId,
    tp: TopicPartition,
    until: Instant,
}

/// At most this many leader tenures are watched for their first HW move (the
/// oldest are forgotten): a bound on a list whose tenures may never move one.
const FIRST_HW_WATCHED: usize = 256;

/// A follower's fetches of one partition from one leader, held until `until`.
struct HeldFetch {
    follower: NodeId,
    leader: NodeId,
    tp: TopicPartition,
    until: Instant,
}

/// A controller's answer to an ISR expansion, held until the asking leader gave
/// up on it, with the committed metadata the leader would learn the outcome
/// from meanwhile.
struct HeldAnswer {
    controller: NodeId,
    leader: NodeId,
    correlation: CorrelationId,
    until: Instant,
    /// No other expansion is aimed at before this (the crashes it led to).
    busy_until: Instant,
    /// The partition, and when the leader gives up on the request.
    tp: TopicPartition,
    times_out: Instant,
    /// The leader's and the other committed ISR members' node slots, crashed
    /// for `down_ns` as soon as the leader's HW moves after it gave up (or at
    /// the end of the hold); empty once crashed or when replaying a schedule.
    victims: Vec<usize>,
    down_ns: u64,
}

impl Aimed {
    pub(super) fn new(seed: u64) -> Aimed {
        Aimed {
            rngs: AimedKind::ALL.iter().map(|k| Seed(seed).indexed_stream("aimed-kind", k.index() as u64)).collect(),
            next: vec![Instant::ZERO; AimedKind::ALL.len()],
            heartbeat: Seed(seed).indexed_stream("aimed-heartbeat", 0),
            isr_duplicate: Seed(seed).indexed_stream("aimed-isr-duplicate", 0),
            isr_unanswered: Seed(seed).indexed_stream("aimed-isr-unanswered", 0),
            isr_induce: Seed(seed).indexed_stream("aimed-isr-induce", 0),
            next_induce: Instant::ZERO,
            held: None,
            held_fetches: Vec::new(),
            first_hw: Vec::new(),
            stalls: Vec::new(),
            lead_in: Seed(seed).indexed_stream("aimed-first-commit-lead-in", 0),
            next_lead_in: Instant::ZERO,
            raft_hold: None,
            admin_commit: Seed(seed).indexed_stream("aimed-admin-commit", 0),
        }
    }
}

/// The leader whose fetch answer `input` is, and the partition, when it
/// carries records a follower will append (batches in it).
pub(super) fn carries_replica_data(input: &Input) -> Option<(NodeId, TopicPartition)> {
    match input {
        Input::Message {
            from: Peer::Node(leader),
            msg: Message::Peer(PeerMessage::ReplicaFetchReply { tp, result: Ok(data), .. }),
        } if !data.batches.is_empty() => Some((*leader, tp.clone())),
        _ => None,
    }
}

impl Sim {
    /// Whether a moment of `kind` gets its fault now: the kind is on, the run
    /// draws its own faults (not a schedule's), the safety phase is on, the
    /// kind's cool-down has passed, and its stream says so.
    fn aimed_fires(&mut self, kind: AimedKind) -> bool {
        let p = self.opts.aimed.prob(kind);
        let replaying = self.replaying_schedule();
        let k = kind.index();
        if p <= 0.0 || replaying || self.liveness_start.is_some() || self.now < self.aimed.next[k] {
            return false;
        }
        if !self.aimed.rngs[k].random_bool(p) {
            return false;
        }
        self.aimed.next[k] = self.now + Duration::from_millis(self.opts.aimed.cooldown_ms);
        true
    }

    /// Whether this run replays a recorded schedule's faults (it then watches
    /// for no moment: its aimed faults are in the schedule).
    fn replaying_schedule(&self) -> bool {
        self.cfg.schedule.as_ref().is_some_and(|s| !s.random_faults)
    }

    fn aimed_rng(&mut self, kind: AimedKind) -> &mut Rng {
        &mut self.aimed.rngs[kind.index()]
    }

    /// Queues `fault` of `kind`, `after` from now (at least a nanosecond).
    fn aim(&mut self, kind: AimedKind, after: Duration, fault: Fault) {
        let at = self.now + after.max(Duration::from_nanos(1));
        self.push(at, Ev::Aimed { fault: Box::new(Fault::Aimed { kind, fault: Box::new(fault) }) });
    }

    /// A crash of node slot `n` that keeps it down for `down_ns`.
    fn aimed_crash(n: usize, down_ns: u64) -> Fault {
        Fault::Crash { node: n, disconnect: false, down_ns }
    }

    /// How long a crashed node of an aimed fault stays down: the seed's restart
    /// delay, bounded so the node is back well inside the phase.
    fn aimed_down_ns(&mut self, kind: AimedKind) -> u64 {
        let mean = self.opts.restart_mean_ms as f64 * 1e6;
        exp_sample(self.aimed_rng(kind), mean).min(1_000_000_000) + 1_000_000
    }

    /// One fetch round trip, about: two one-way delays and a fsync.
    fn fetch_round_trip_ns(&self) -> u64 {
        self.opts.replication_round_trip_us() * 1_000
    }

    /// Node `n` is about to send `msg` to `to` (called for every node send).
    pub(super) fn aimed_on_send(&mut self, n: usize, to: Peer, msg: &Message) {
        match msg {
            Message::Peer(PeerMessage::Raft(RaftMessage::VoteReply { term, granted: true })) => {
                self.aimed_on_vote(n, to, *term)
            }
            Message::Peer(PeerMessage::Controller {
                correlation,
                request: ControllerRequest::AlterPartition { tp, isr, .. },
            }) => self.aimed_on_isr_ask(n, to, (*correlation, tp, isr)),
            Message::Peer(PeerMessage::ReplicaFetch(f)) => self.aimed_on_replica_fetch(n, to, &f.tp),
            Message::Peer(PeerMessage::Raft(RaftMessage::Append { entries, .. }))
                if entries.iter().any(|e| matches!(e.record, MetadataRecord::CreateTopic { .. })) =>
            {
                self.aimed_on_admin_append(n)
            }
            _ => {}
        }
    }

    /// Node `n`, a member of the ISR of `tp` that `to` leads, is about to send a
    /// fetch of it, in the safety phase of a seed aiming at ISR commits: the
    /// lead-in of [`Sim::aimed_on_isr_ask`], whose moment (an expansion) is
    /// otherwise rare before the heal. Now and then (its own stream,
    /// `aimed-isr-induce`, drawn in every run as the network's draws are), the
    /// member's fetches of `tp` are held for the replica lag time plus up to half
    /// of it and a round trip, so the leader takes it out of the ISR; when they
    /// arrive it catches up and the leader asks to add it back, early enough
    /// for that ask's controller timeout to end inside the phase.
    fn aimed_on_replica_fetch(&mut self, n: usize, to: Peer, tp: &TopicPartition) {
        let p = self.opts.aimed.isr_commit;
        if p <= 0.0 || self.liveness_start.is_some() || self.now < self.aimed.next_induce {
            return;
        }
        let Peer::Node(leader) = to else { return };
        let follower = self.nodes[n].id;
        // A leader that is the active controller asks itself, with no message
        // to hold: not that one.
        let led = |s: &super::NodeSlot| {
            s.id == leader
                && s.node.as_ref().is_some_and(|node| {
                    node.raft().role() != RaftRole::Leader
                        && node.replica(tp).is_some_and(|r| {
                            // The ISR without it must still hold min_isr.
                            let min_isr = usize::from(self.opts.min_insync_replicas);
                            r.is_leader() && r.isr.contains(&follower) && r.isr.len() > min_isr
                        })
                })
        };
        if !self.nodes.iter().any(led) {
            return;
        }
        let rtt = self.fetch_round_trip_ns();
        let lag_ns = self.opts.knobs.replica_lag_time_ms * 1_000_000;
        let timeout_ns = self.opts.knobs.controller_request_timeout_ms * 1_000_000;
        let safety_end = Instant::ZERO + Duration::from_millis(self.opts.safety_ms);
        let longest = lag_ns + lag_ns / 2 + rtt + 1_000_000;
        // Room for the hold, the catch-up and the unanswered ask after it.
        let ask_ns = timeout_ns + 10 * rtt + 40_000_000;
        if self.now + Duration::from_nanos(longest + ask_ns) >= safety_end {
            return;
        }
        let rng = &mut self.aimed.isr_induce;
        if !rng.random_bool(p) {
            return;
        }
        let hold_ns = lag_ns + rng.random_range(1_000_000..=lag_ns / 2 + rtt + 1_000_000);
        let until = self.now + Duration::from_nanos(hold_ns);
        self.counters.aimed_isr_induced += 1;
        let now = self.now;
        self.trace.event(now, Actor::Sim, "aimed", 0, 0, || {
            format!("n{follower}'s fetches of {tp} from n{leader} are held {} ms (isr lead-in)", hold_ns / 1_000_000)
        });
        self.aimed.held_fetches.retain(|h| h.until > self.now);
        self.aimed.held_fetches.push(HeldFetch { follower, leader, tp: tp.clone(), until });
        // The next lead-in waits for this one's ask and its timeout.
        self.aimed.next_induce = until + Duration::from_nanos(timeout_ns + 6 * rtt);
    }

    /// Node `n`, a partition leader that is not a controller voter, asks the
    /// controller `to` (request `correlation`) for an ISR that adds members to
    /// the committed one, in the safety phase of a seed aiming at ISR commits,
    /// and the ISR without them still holds min_isr. With the `isr_commit`
    /// probability, from its own stream (`aimed-isr-unanswered`, drawn in every
    /// run as the network's draws are), the controller is slow to commit: its
    /// answer, and every committed metadata entry the leader fetches meanwhile,
    /// arrive only after the leader gave up on the request (its timeout on its
    /// own clock) plus 1 ms up to two producer request timeouts, as far as the
    /// phase allows; its other answers, heartbeats included, go on. The added
    /// members' fetches of the partition are held back meanwhile. The leader
    /// must count them for the HW until it learns the outcome. As soon as its HW
    /// moves after it gave up ([`Sim::aimed_on_unanswered_hw`]), or at the
    /// latest within a round trip of the answer, the leader and the other
    /// members of its committed ISR crash for longer than a broker session, so
    /// the controller elects an added member from the committed ISR. A leader
    /// that took the unanswered change for a refusal has moved the HW past that
    /// member, and records it called committed are gone (mutant
    /// `failed_isr_change_forgets_added_members`). The crashes are recorded
    /// faults (not aimed again when a recorded schedule replays); the held
    /// answer, entries and fetches are drawn in every run.
    fn aimed_on_isr_ask(&mut self, n: usize, to: Peer, ask: (CorrelationId, &TopicPartition, &[NodeId])) {
        let (correlation, tp, isr) = ask;
        let p = self.opts.aimed.isr_commit;
        let Peer::Node(controller) = to else { return };
        let holding = self.aimed.held.as_ref().is_some_and(|h| h.busy_until > self.now);
        if p <= 0.0 || self.liveness_start.is_some() || holding {
            return;
        }
        let (rtt, timeout_ns) = (self.fetch_round_trip_ns(), self.opts.knobs.controller_request_timeout_ms * 1_000_000);
        // It all happens in the safety phase (the heal ends clogs).
        let safety_end = Instant::ZERO + Duration::from_millis(self.opts.safety_ms);
        // The hold lasts past the leader's timeout by up to two producer request
        // timeouts (waiting producers send again only then), as far as the
        // safety phase allows, and at least four round trips and 20 ms.
        let least_ns = 4 * rtt + 20_000_000;
        let room_ns = safety_end.as_nanos().saturating_sub((self.now + Duration::from_nanos(timeout_ns)).as_nanos());
        let extra_ns =
            (least_ns + 2 * self.opts.request_timeout_ms * 1_000_000).min(room_ns.saturating_sub(2 * rtt + 2_000_000));
        if extra_ns < least_ns {
            return;
        }
        let Some(replica) = self.nodes[n].node.as_ref().and_then(|node| node.replica(tp)) else { return };
        let added: Vec<NodeId> = isr.iter().copied().filter(|r| !replica.isr.contains(r)).collect();
        let others: Vec<NodeId> = replica.isr.iter().copied().filter(|r| *r != self.nodes[n].id).collect();
        // A leader that is a controller voter learns the outcome through Raft,
        // which is not held (a held Raft follower starts elections: another
        // moment).
        let voter = self.opts.voters.contains(&self.nodes[n].id.0);
        // Without the added members the ISR must still hold min_isr, or no
        // record commits meanwhile either way.
        let enough = replica.isr.len() >= usize::from(self.opts.min_insync_replicas);
        if added.is_empty() || voter || !enough || !self.aimed.isr_unanswered.random_bool(p) {
            return;
        }
        self.counters.aimed_isr_unanswered += 1;
        let now = self.now;
        self.trace.event(now, Actor::Sim, "aimed", 0, 0, || {
            format!(
                "isr expansion of {tp} by n{} adding {added:?}: the answer of n{controller} is held",
                self.nodes[n].id
            )
        });
        let session_ns = self.opts.knobs.broker_session_timeout_ms * 1_000_000;
        let rng = &mut self.aimed.isr_unanswered;
        // The leader times out on its own clock, which drifts and may have been
        // stepped. After that the HW moves only on a write or a fetch, so the
        // hold goes on for records to arrive (`extra_ns`).
        let clock = &mut self.nodes[n].clock;
        let local_deadline = clock.local(now) + Duration::from_nanos(timeout_ns);
        let times_out_ns = clock.global_for(now, local_deadline).as_nanos().saturating_sub(now.as_nanos());
        let hold_ns = times_out_ns + rng.random_range(1_000_000..=extra_ns);
        let crash_after = hold_ns + rng.random_range(0..=rtt);
        let down_ns = session_ns + rng.random_range(1_000_000..=session_ns / 2 + 1_000_000);
        let me = self.nodes[n].id;
        let until = self.now + Duration::from_nanos(hold_ns);
        let busy_until = self.now + Duration::from_nanos(crash_after + rtt);
        let times_out = self.now + Duration::from_nanos(times_out_ns);
        // The leader crashes, and so do the other members of its committed ISR,
        // so that only added members are left to elect.
        let victims: Vec<usize> =
            (0..self.nodes.len()).filter(|m| *m == n || others.contains(&self.nodes[*m].id)).collect();
        let replaying = self.replaying_schedule();
        let held = HeldAnswer {
            controller,
            leader: me,
            correlation,
            until,
            busy_until,
            tp: tp.clone(),
            times_out,
            victims: if replaying { Vec::new() } else { victims.clone() },
            down_ns,
        };
        self.aimed.held = Some(held);
        // Only the added followers' fetches of this partition wait (not their
        // links: an added follower may be the controller, and a leader cut off
        // from it is fenced first, another moment; seed 14 at dd12c35).
        let fetches_until = self.now + Duration::from_nanos(crash_after);
        self.aimed.held_fetches.retain(|h| h.until > self.now);
        for follower in added {
            let tp = tp.clone();
            self.aimed.held_fetches.push(HeldFetch { follower, leader: me, tp, until: fetches_until });
        }
        if replaying {
            return;
        }
        // At the latest at the end of the hold (see `aimed_on_event` for the
        // earlier moment).
        for m in victims {
            self.aim(AimedKind::IsrCommit, Duration::from_nanos(crash_after), Sim::aimed_crash(m, down_ns));
        }
    }

    /// The leader of an unanswered expansion moved its HW after it gave up on
    /// the request: the moment a leader that took the silence for a refusal
    /// commits records its added members lack. The leader and the other
    /// committed ISR members crash now (a correct leader still counts the added
    /// members, whose fetches are held, so its HW stays below what they have).
    fn aimed_on_unanswered_hw(&mut self, n: usize, tp: &TopicPartition) {
        let me = self.nodes[n].id;
        let now = self.now;
        let Some(h) = self.aimed.held.as_mut() else { return };
        if h.leader != me || h.tp != *tp || now < h.times_out || now >= h.until || h.victims.is_empty() {
            return;
        }
        let (victims, down_ns) = (std::mem::take(&mut h.victims), h.down_ns);
        for m in victims {
            self.aim(AimedKind::IsrCommit, Duration::ZERO, Sim::aimed_crash(m, down_ns));
        }
    }

    /// When a message from `from` to `to` sent now, due `at`, arrives: later,
    /// if it is a follower fetch held by [`Sim::aimed_on_replica_fetch`] or
    /// [`Sim::aimed_on_isr_ask`], or the controller answer or a metadata entry
    /// the latter holds.
    pub(super) fn aimed_held_answer(&mut self, from: Peer, to: Peer, msg: &Message, at: Instant) -> Instant {
        if let Message::Peer(PeerMessage::ReplicaFetch(f)) = msg {
            let held = self.aimed.held_fetches.iter().find(|h| {
                from == Peer::Node(h.follower) && to == Peer::Node(h.leader) && f.tp == h.tp && h.until > self.now
            });
            return held.map_or(at, |h| at.max(h.until));
        }
        if let (Some((leader, until)), Message::Peer(PeerMessage::Raft(_))) = (self.aimed.raft_hold, msg) {
            let voter = |p: Peer| matches!(p, Peer::Node(id) if self.opts.voters.contains(&id.0));
            if until > self.now && (from == Peer::Node(leader) || to == Peer::Node(leader)) && voter(from) && voter(to)
            {
                return at.max(until);
            }
        }
        let Some(h) = self.aimed.held.as_ref().filter(|h| h.until > self.now) else { return at };
        match msg {
            // The controller is slow to commit: its answer comes late, and so
            // does every committed metadata entry the leader fetches meanwhile
            // (or the leader would learn the outcome from them in time).
            Message::Peer(PeerMessage::ControllerReply { correlation, .. })
                if from == Peer::Node(h.controller) && *correlation == h.correlation && to == Peer::Node(h.leader) =>
            {
                at.max(h.until)
            }
            Message::Peer(PeerMessage::MetadataEntries { .. }) if to == Peer::Node(h.leader) => at.max(h.until),
            _ => at,
        }
    }

    /// Node `n`, the active controller, is about to send a Raft append that
    /// carries a topic creation, in the safety phase of a seed aiming at admin
    /// commits. With that probability, from its own stream
    /// (`aimed-admin-commit`, drawn in every run as the network's draws are,
    /// replays of schedules included), its Raft messages with the other voters
    /// (both ways) are held for 250 ms, two election timeouts and up to one
    /// more: the admin asks again (every 200 ms) while the creation is
    /// proposed and not committed, and the other voters elect a leader without
    /// it, so the creation is lost with the old term. A controller that answers
    /// the repeated creation from its proposed state (`TopicExists`) before it
    /// commits told the admin of a topic that never existed (seed 1000900;
    /// mutant `controller_answers_from_uncommitted_reads`; the checker's
    /// `client_metadata_monotonic`). One at a time.
    fn aimed_on_admin_append(&mut self, n: usize) {
        let p = self.opts.aimed.admin_commit;
        let busy = self.aimed.raft_hold.is_some_and(|(_, until)| until + Duration::from_secs(1) > self.now);
        if p <= 0.0 || self.liveness_start.is_some() || busy {
            return;
        }
        let election_ns = self.opts.election_timeout_ms * 1_000_000;
        let safety_end = Instant::ZERO + Duration::from_millis(self.opts.safety_ms);
        let longest = 250_000_000 + 3 * election_ns;
        if self.now + Duration::from_nanos(longest + 1_000_000_000) >= safety_end {
            return;
        }
        let rng = &mut self.aimed.admin_commit;
        if !rng.random_bool(p) {
            return;
        }
        let hold_ns = 250_000_000 + 2 * election_ns + rng.random_range(0..=election_ns);
        let until = self.now + Duration::from_nanos(hold_ns);
        let leader = self.nodes[n].id;
        self.aimed.raft_hold = Some((leader, until));
        self.counters.aimed_admin_commit += 1;
        let now = self.now;
        self.trace.event(now, Actor::Sim, "aimed", AimedKind::AdminCommit.index() as u64, 0, || {
            format!("n{leader}'s raft links held {} ms (a topic creation's append)", hold_ns / 1_000_000)
        });
    }

    /// A controller voter just sent a granted vote in `term` to `to`.
    fn aimed_on_vote(&mut self, n: usize, to: Peer, term: Term) {
        if !self.aimed_fires(AimedKind::Vote) {
            return;
        }
        // The voter's term and vote are durable (the reply leaves only then): it
        // crashes now and is back before the term can end by an election timeout.
        let timeout_ns = self.opts.election_timeout_ms * 1_000_000;
        let down_ns = self.aimed_rng(AimedKind::Vote).random_range(1_000_000..=timeout_ns / 2);
        self.aim(AimedKind::Vote, Duration::ZERO, Sim::aimed_crash(n, down_ns));
        // A rival candidate of the same term: its vote request waits until the
        // voter is back, which must then refuse it.
        let voter = Peer::Node(self.nodes[n].id);
        let rivals: Vec<usize> = (0..self.nodes.len())
            .filter(|r| *r != n && Peer::Node(self.nodes[*r].id) != to)
            .filter(|r| {
                self.nodes[*r]
                    .node
                    .as_ref()
                    .is_some_and(|node| node.raft().role() == RaftRole::Candidate && node.raft().term() == term)
            })
            .collect();
        for r in rivals {
            let hold = Fault::Clog { node: r, other: voter, both: false, for_ns: down_ns + 1_000_000 };
            self.aim(AimedKind::Vote, Duration::ZERO, hold);
        }
    }

    /// Node `n` reported `e` (called for every node event).
    pub(super) fn aimed_on_event(&mut self, n: usize, e: &Event) {
        match e {
            Event::HighWatermark { tp, leader_epoch, .. } => {
                self.aimed_on_unanswered_hw(n, tp);
                let me = self.nodes[n].id;
                let tenure = self.aimed.first_hw.iter().position(|(t, l, e)| t == tp && *l == me && e == leader_epoch);
                if let Some(i) = tenure {
                    self.aimed.first_hw.remove(i);
                    self.aimed_on_first_commit(n, tp);
                }
            }
            Event::GroupDelivered { .. } => self.aimed_on_group_delivery(n),
            Event::IsrChanged { shrink: false, .. } => {
                if !self.aimed_fires(AimedKind::IsrCommit) {
                    return;
                }
                let rtt = self.fetch_round_trip_ns();
                let within = self.aimed_rng(AimedKind::IsrCommit).random_range(0..=rtt);
                let down_ns = self.aimed_down_ns(AimedKind::IsrCommit);
                self.aim(AimedKind::IsrCommit, Duration::from_nanos(within), Sim::aimed_crash(n, down_ns));
            }
            Event::BecameLeader { tp, leader_epoch, isr, .. } => {
                let replaying = self.replaying_schedule();
                // Only a leader that starts with records past its HW (an older
                // epoch's tail it must not commit before its followers hold
                // it), or one a stalled follower follows, is watched.
                let tail = self.nodes[n]
                    .node
                    .as_ref()
                    .and_then(|node| node.replica(tp))
                    .is_some_and(|r| r.log.log_end() > r.log.high_watermark());
                let stalled = self.aimed.stalls.iter().any(|w| w.tp == *tp && w.until > self.now);
                if !replaying && self.liveness_start.is_none() && (tail || stalled) {
                    if self.aimed.first_hw.len() >= FIRST_HW_WATCHED {
                        self.aimed.first_hw.remove(0);
                    }
                    self.aimed.first_hw.push((tp.clone(), self.nodes[n].id, *leader_epoch));
                }
                if !self.aimed_fires(AimedKind::FirstFetch) {
                    return;
                }
                let rtt = self.fetch_round_trip_ns();
                let me = self.nodes[n].id;
                let followers: Vec<NodeId> = isr.iter().copied().filter(|f| *f != me).collect();
                let rng = self.aimed_rng(AimedKind::FirstFetch);
                let within = rng.random_range(0..=rtt);
                let how = rng.random_range(0..3);
                let for_ns = rng.random_range(rtt.max(1)..=rtt.max(1) * 20 + 1_000_000);
                let fault = match how {
                    // Leading alone (the followers are out of the ISR and still
                    // fetch): back within milliseconds, it re-registers and is
                    // elected again under a newer epoch while the followers may
                    // still fetch under the old one.
                    _ if followers.is_empty() => {
                        let down_ns = self.aimed_rng(AimedKind::FirstFetch).random_range(1_000_000..=20_000_000);
                        Sim::aimed_crash(n, down_ns)
                    }
                    0 => {
                        let down_ns = self.aimed_down_ns(AimedKind::FirstFetch);
                        Sim::aimed_crash(n, down_ns)
                    }
                    1 => Fault::Pause { node: n, for_ns },
                    _ => {
                        let other = followers[self.aimed_rng(AimedKind::FirstFetch).random_range(0..followers.len())];
                        Fault::Clog { node: n, other: Peer::Node(other), both: true, for_ns }
                    }
                };
                self.aim(AimedKind::FirstFetch, Duration::from_nanos(within), fault);
            }
            _ => {}
        }
    }

    /// Node `n` handled records of `tp` fetched from `leader`; `persisted` says
    /// it issued a persist for them.
    ///
    /// One nanosecond on, the fsync (tens of microseconds at least) is pending.
    /// A third of the time the follower crashes alone. A third of the time the
    /// leader loses power with it (one rack): both stay down past the broker
    /// session, the follower comes back first. If the leader's session ends
    /// first, the controller keeps the follower as the last ISR member and
    /// elects it when it is back; it may lead only with what it had made durable
    /// before it reported it, or records the HW had passed are gone (a follower
    /// that reports unpersisted records). The last third, the follower's disk
    /// stalls instead (no fsync completes for two to three sessions) while the
    /// leader crashes past its session, when another member would be elected
    /// without the leader: the controller elects that one,
    /// which the follower follows with its fetched records still unpersisted.
    /// A follower that reports them to the new leader before they are durable
    /// lets its HW pass them, and at that HW move both crash
    /// ([`Sim::aimed_on_first_commit`]), so the follower comes back without them
    /// as the last ISR member (mutant `follower_fetch_before_fsync`).
    pub(super) fn aimed_after_replica_data(&mut self, n: usize, leader: NodeId, tp: &TopicPartition, persisted: bool) {
        if persisted {
            self.aimed_first_commit_lead_in(n, leader, tp);
        }
        if !persisted || !self.aimed_fires(AimedKind::FollowerFsync) {
            return;
        }
        let kind = AimedKind::FollowerFsync;
        let leader = self.nodes.iter().position(|s| s.id == leader).filter(|l| *l != n);
        let session_ns = self.opts.knobs.broker_session_timeout_ms * 1_000_000;
        let how = if leader.is_some() { self.aimed_rng(kind).random_range(0..3u8) } else { 0 };
        let safety_end = Instant::ZERO + Duration::from_millis(self.opts.safety_ms);
        // The stall needs another member to lead (the follower leading its own
        // records is no moment).
        let other_next = leader.is_some_and(|l| self.next_leader_without(l, tp).is_some_and(|x| x != self.nodes[n].id));
        match leader {
            Some(l) if how == 2 && other_next && self.now + Duration::from_nanos(5 * session_ns) < safety_end => {
                let rng = self.aimed_rng(kind);
                let leader_down_ns = session_ns + rng.random_range(1_000_000..=session_ns / 2 + 1_000_000);
                let stall_ns = 2 * session_ns + rng.random_range(0..=session_ns);
                let until = self.now + Duration::from_nanos(stall_ns);
                self.aimed_leader_change(kind, l, tp, Some(n), until, leader_down_ns);
            }
            Some(l) if how >= 1 => {
                let rng = self.aimed_rng(kind);
                let down_ns = session_ns + rng.random_range(1_000_000..=session_ns / 2 + 1_000_000);
                let leader_down_ns = down_ns + rng.random_range(1_000_000..=session_ns + 1_000_000);
                self.aim(kind, Duration::ZERO, Sim::aimed_crash(n, down_ns));
                self.aim(kind, Duration::ZERO, Sim::aimed_crash(l, leader_down_ns));
            }
            _ => {
                let down_ns = self.aimed_down_ns(kind);
                self.aim(kind, Duration::ZERO, Sim::aimed_crash(n, down_ns));
            }
        }
    }

    /// The broker the controller would elect for `tp` if the leader in slot
    /// `l` went away now, as far as the simulator sees it: the first replica
    /// in assignment order that is in the leader's ISR and up (the controller's
    /// `elect`).
    fn next_leader_without(&self, l: usize, tp: &TopicPartition) -> Option<NodeId> {
        let gone = self.nodes[l].id;
        let r = self.nodes[l].node.as_ref()?.replica(tp)?;
        let up = |id: NodeId| self.nodes.iter().any(|s| s.id == id && s.node.is_some());
        r.replicas.iter().copied().find(|id| *id != gone && r.isr.contains(id) && up(*id))
    }

    /// Follower `n` just appended records of `tp` fetched from `leader`, and
    /// the member the controller would elect without the leader holds records
    /// another member of the ISR does not hold yet (or `n` is an ISR member
    /// that will follow it, with a persist of records it holds pending: then,
    /// or half the time when both hold, `n`'s disk also stalls until the watch
    /// below ends, so that it follows the new leader with them unpersisted),
    /// when the ISR without the leader still holds min_isr, in the safety
    /// phase of a seed aiming at first commits, with four sessions left in it:
    /// now and then (the `first_commit` probability, its own stream
    /// `aimed-first-commit-lead-in`, at most one per two sessions) the leader
    /// crashes past its session (a recorded `first_commit` fault), so the
    /// controller elects a follower, which may lead with records past what
    /// another member holds: the moment [`Sim::aimed_on_first_commit`] aims at
    /// (a new leader that counts its followers as caught up before they
    /// fetched commits records they lack), rare otherwise (few leaders change
    /// with their followers at different ends). That partition's next first
    /// HW move of another leader, within two sessions, is always aimed at.
    fn aimed_first_commit_lead_in(&mut self, n: usize, leader: NodeId, tp: &TopicPartition) {
        let p = self.opts.aimed.first_commit;
        let replaying = self.replaying_schedule();
        if p <= 0.0 || replaying || self.liveness_start.is_some() || self.now < self.aimed.next_lead_in {
            return;
        }
        let session_ns = self.opts.knobs.broker_session_timeout_ms * 1_000_000;
        let safety_end = Instant::ZERO + Duration::from_millis(self.opts.safety_ms);
        if self.now + Duration::from_nanos(4 * session_ns) >= safety_end {
            return;
        }
        let Some(l) = self.nodes.iter().position(|s| s.id == leader).filter(|l| *l != n) else { return };
        // The member the controller will elect without the leader: the first
        // replica, in assignment order, that is in the ISR and up.
        let Some(next) = self.next_leader_without(l, tp) else { return };
        let log_end =
            |slot: &super::NodeSlot| slot.node.as_ref().and_then(|node| node.replica(tp)).map(|r| r.log.log_end());
        let Some(end) = self.nodes.iter().find(|s| s.id == next).and_then(log_end) else { return };
        let Some(isr) = self.nodes[l].node.as_ref().and_then(|node| node.replica(tp)).map(|r| r.isr.clone()) else {
            return;
        };
        // Without the leader, the ISR must still hold min_isr, or no HW moves.
        if isr.len() <= usize::from(self.opts.min_insync_replicas) {
            return;
        }
        let behind = isr
            .iter()
            .filter(|r| **r != leader && **r != next)
            .any(|r| self.nodes.iter().find(|s| s.id == *r).and_then(log_end).is_some_and(|e| e < end));
        // Or `n` itself, an ISR member that will follow `next`, has just
        // appended records `next` holds too, and their persist is pending: its
        // disk may stall so that it follows the new leader with them unpersisted.
        let me = self.nodes[n].id;
        let pending = self.nodes[n].node.as_ref().and_then(|node| node.replica(tp)).map(|r| r.log.persisted_end());
        let stallable = next != me && isr.contains(&me) && pending.is_some_and(|durable| durable < end);
        if !(behind || stallable) || !self.aimed.lead_in.random_bool(p) {
            return;
        }
        let stall = stallable && (!behind || self.aimed.lead_in.random_bool(0.5));
        let down_ns = session_ns + self.aimed.lead_in.random_range(1_000_000..=session_ns / 2 + 1_000_000);
        self.aimed.next_lead_in = self.now + Duration::from_nanos(2 * session_ns);
        let until = self.now + Duration::from_nanos(2 * session_ns + down_ns);
        self.aimed_leader_change(AimedKind::FirstCommit, l, tp, stall.then_some(n), until, down_ns);
    }

    /// The leader of `tp` in slot `l` crashes for `down_ns` (a fault of
    /// `kind`), and the next first HW move of another leader of `tp` before
    /// `until` is aimed at ([`StallWatch`]). With `stalled`, that follower's
    /// disk stalls until `until` (counted in `aimed_fsync_stall`), so that it
    /// follows the new leader with its fetched records unpersisted, and it is
    /// the member crashed last and back first at that HW move.
    fn aimed_leader_change(
        &mut self,
        kind: AimedKind,
        l: usize,
        tp: &TopicPartition,
        stalled: Option<usize>,
        until: Instant,
        down_ns: u64,
    ) {
        let follower = stalled.map(|n| self.nodes[n].id);
        self.aimed.stalls.retain(|w| w.until > self.now);
        self.aimed.stalls.push(StallWatch { follower, old_leader: self.nodes[l].id, tp: tp.clone(), until });
        if let Some(n) = stalled {
            self.counters.aimed_fsync_stall += 1;
            let for_ns = until.as_nanos() - self.now.as_nanos();
            self.aim(kind, Duration::ZERO, Fault::DiskStall { node: n, for_ns });
        }
        self.aim(kind, Duration::ZERO, Sim::aimed_crash(l, down_ns));
    }

    /// Node `n`, the leader of `tp`, moved its HW for the first time in a
    /// tenure it began with records past its HW (an older epoch's tail): in a
    /// correct leader, only once every member of its ISR reported (durably) an
    /// end at or past it. With the `first_commit` probability (its own stream
    /// and cool-down), or always for the partition's next leader after an
    /// aimed leader crash that set a watch ([`StallWatch`]: a stalled follower
    /// or a lead-in), the leader and every other ISR member crash, the member durable to the
    /// least offset last (a heartbeat interval later, so the leader's session
    /// ends first) and back first, past its session (two when the active
    /// controller is among them): the controller keeps it as
    /// the last ISR member and elects it. It must hold every record the HW
    /// passed; a new leader that counted followers as caught up before they
    /// fetched (mutant `new_leader_assumes_followers_caught_up`) or a follower
    /// that reported unpersisted records (mutant `follower_fetch_before_fsync`)
    /// loses them.
    fn aimed_on_first_commit(&mut self, n: usize, tp: &TopicPartition) {
        let me = self.nodes[n].id;
        let Some(replica) = self.nodes[n].node.as_ref().and_then(|node| node.replica(tp)) else { return };
        if !replica.is_leader() || self.liveness_start.is_some() {
            return;
        }
        let others: Vec<NodeId> = replica.isr.iter().copied().filter(|r| *r != me).collect();
        let durable_end = |sim: &Sim, r: NodeId| {
            let slot = sim.nodes.iter().position(|s| s.id == r)?;
            let end = sim.nodes[slot].node.as_ref()?.replica(tp)?.log.persisted_end();
            Some((end, slot))
        };
        let now = self.now;
        self.aimed.stalls.retain(|w| w.until > now);
        let watched = self
            .aimed
            .stalls
            .iter()
            .position(|w| w.tp == *tp && w.old_leader != me && w.follower.is_none_or(|f| others.contains(&f)));
        let weakest = match watched.map(|i| self.aimed.stalls.remove(i)) {
            Some(StallWatch { follower: Some(f), .. }) => durable_end(self, f),
            Some(StallWatch { follower: None, .. }) if !others.is_empty() => {
                others.iter().filter_map(|r| durable_end(self, *r)).min()
            }
            Some(_) => return,
            None => {
                if others.is_empty() || !self.aimed_fires(AimedKind::FirstCommit) {
                    return;
                }
                others.iter().filter_map(|r| durable_end(self, *r)).min()
            }
        };
        let Some((_, weak)) = weakest else { return };
        let kind = AimedKind::FirstCommit;
        let session_ns = self.opts.knobs.broker_session_timeout_ms * 1_000_000;
        let later_ns = self.opts.knobs.broker_heartbeat_interval_ms * 1_000_000 + 1_000_000;
        // A crash of the active controller among them elects another, which
        // gives every broker a new session: the weakest then stays down for
        // two, so that it still comes back after the others were fenced.
        let controller = self.controller_slot();
        let hits_controller = controller.is_some_and(|c| c == n || c == weak || others.contains(&self.nodes[c].id));
        let sessions = if hits_controller { 2 } else { 1 };
        let rng = self.aimed_rng(kind);
        let weak_down_ns = sessions * session_ns + rng.random_range(1_000_000..=session_ns / 2 + 1_000_000);
        let down_ns = later_ns + weak_down_ns + rng.random_range(1_000_000..=session_ns + 1_000_000);
        let trace_tp = tp.clone();
        let weak_id = self.nodes[weak].id;
        self.trace.event(now, Actor::Sim, "aimed", 0, 0, || {
            format!("first HW move of n{me} leading {trace_tp}: its ISR crashes, n{weak_id} last and back first")
        });
        for r in &others {
            let Some(m) = self.nodes.iter().position(|s| s.id == *r) else { continue };
            if m != weak {
                self.aim(kind, Duration::ZERO, Sim::aimed_crash(m, down_ns));
            }
        }
        self.aim(kind, Duration::ZERO, Sim::aimed_crash(n, down_ns));
        // A stalled disk stays stalled until the crash (which drops what waited).
        self.aim(kind, Duration::ZERO, Fault::DiskStall { node: weak, for_ns: later_ns + 1_000_000 });
        self.aim(kind, Duration::from_nanos(later_ns), Sim::aimed_crash(weak, weak_down_ns));
    }

    /// Node `n` just dealt group records as a partition leader: with the
    /// `deposed` probability, its links with every other broker are clogged
    /// (both ways) for the broker session, plus the groups' longest ack
    /// timeout, plus up to half a session more, within the safety phase; its
    /// members' links are not. The controller fences it after the session and
    /// elects another leader of its partitions, members move there and ack,
    /// and the new leader confirms those acks while the old one, which heard
    /// nothing of it, still has members attached and leases expiring. A broker
    /// without a delivery lease deals them again (mutant
    /// `deposed_leader_deals_without_lease`). One at a time: the next waits
    /// for this one's end.
    fn aimed_on_group_delivery(&mut self, n: usize) {
        // Called for every record dealt: the kind's switch first.
        if self.opts.aimed.deposed <= 0.0 {
            return;
        }
        let kind = AimedKind::Deposed;
        let session_ns = self.opts.knobs.broker_session_timeout_ms * 1_000_000;
        let safety_end = Instant::ZERO + Duration::from_millis(self.opts.safety_ms);
        if self.now + Duration::from_nanos(session_ns + 300_000_000) >= safety_end {
            return;
        }
        // The other voters must still be a majority, or no controller fences it
        // and nothing moves while it is cut off.
        let voters = self.opts.voters.len();
        let others = voters - usize::from(self.opts.voters.contains(&self.nodes[n].id.0));
        if others < voters / 2 + 1 {
            return;
        }
        if !self.aimed_fires(kind) {
            return;
        }
        let ack_ns = self.opts.groups.iter().map(|g| g.ack_timeout_ms).max().unwrap_or(0) * 1_000_000;
        let shortest = session_ns + ack_ns + 100_000_000;
        let extra = self.aimed_rng(kind).random_range(0..=session_ns / 2);
        let room = safety_end.saturating_since(self.now).as_nanos();
        let for_ns = (shortest + extra).min(room);
        self.aimed.next[kind.index()] = self.now + Duration::from_nanos(for_ns);
        let me = self.nodes[n].id;
        let others: Vec<NodeId> = self.nodes.iter().map(|s| s.id).filter(|id| *id != me).collect();
        for other in others {
            self.aim(kind, Duration::ZERO, Fault::Clog { node: n, other: Peer::Node(other), both: true, for_ns });
        }
    }

    /// Group member client `c` completed a rebalance; `coordinator` is its
    /// coordinator as it knows it.
    pub(super) fn aimed_on_rebalance(&mut self, c: usize, coordinator: Option<NodeId>) {
        if !self.aimed_fires(AimedKind::Rebalance) {
            return;
        }
        let rng = self.aimed_rng(AimedKind::Rebalance);
        let within = rng.random_range(0..=50_000_000u64);
        let member = rng.random_bool(0.5);
        let fault = match coordinator {
            Some(id) if !member => {
                let n = id.0 as usize - 1;
                let down_ns = self.aimed_down_ns(AimedKind::Rebalance);
                Sim::aimed_crash(n, down_ns)
            }
            _ => Fault::Member { client: c, crash: true },
        };
        self.aim(AimedKind::Rebalance, Duration::from_nanos(within), fault);
    }

    /// How much longer than the network says a message from `from` takes: a
    /// group member's heartbeat, in the safety phase of a seed whose network
    /// reorders and whose `rebalance` kind is on, is held back 1 ms to twice the
    /// request timeout plus 300 ms more, with that kind's probability. Past the
    /// request timeout the member takes it for lost, heartbeats anew, may be
    /// told of a rebalance, join and complete it as its last member; the held
    /// heartbeat then names a generation the coordinator has left
    /// (`group.illegal_generation`), a moment otherwise met only when a network
    /// tail outlasts a request timeout while a rebalance runs. Only where links reorder (elsewhere a later
    /// message may not pass an earlier one). Part of the network, not a recorded
    /// fault: drawn from its own stream in every run, replays of schedules
    /// included, so they meet the same delays.
    pub(super) fn aimed_heartbeat_delay(&mut self, from: Peer, msg: &Message) -> Duration {
        let heartbeat = matches!(msg, Message::Request(Request { body: RequestBody::Heartbeat { .. }, .. }));
        let p = self.opts.aimed.rebalance;
        if !heartbeat || !matches!(from, Peer::Client(_)) || !self.opts.reorder || p <= 0.0 {
            return Duration::ZERO;
        }
        if self.liveness_start.is_some() || !self.aimed.heartbeat.random_bool(p) {
            return Duration::ZERO;
        }
        self.counters.aimed_heartbeat_delays += 1;
        // Past the member's request timeout half the time: the member takes the
        // heartbeat for lost, finds its coordinator again and heartbeats anew,
        // may be told of a rebalance and join, all while this one is on its way.
        let longest = (2 * self.opts.request_timeout_ms + 300) * 1_000_000;
        Duration::from_nanos(self.aimed.heartbeat.random_range(1_000_000..=longest))
    }

    /// In the safety phase of a seed aiming at ISR commits, with that
    /// probability an `AlterPartition` a leader sends to the controller is
    /// delivered a second time, 0 to 2 ms after the first. The copy names the
    /// partition epoch the first one's commit moved on from, so it is refused as
    /// stale, and that refusal usually reaches the leader before the first
    /// one's answer, which waits for the commit: the moment seed 1000940 met,
    /// where a leader that took the refusal for the outcome moved the HW past a
    /// member the committed ISR held (mutant
    /// `failed_isr_change_forgets_added_members`). Part of the network, as the
    /// heartbeat delay: its own stream in every run, not a recorded fault.
    pub(super) fn aimed_isr_duplicate(&mut self, from: Peer, msg: &Message, at: Instant) -> Option<Instant> {
        let alter = matches!(
            msg,
            Message::Peer(PeerMessage::Controller { request: ControllerRequest::AlterPartition { .. }, .. })
        );
        let p = self.opts.aimed.isr_commit;
        if !alter || !matches!(from, Peer::Node(_)) || p <= 0.0 || self.liveness_start.is_some() {
            return None;
        }
        if !self.aimed.isr_duplicate.random_bool(p) {
            return None;
        }
        self.counters.aimed_isr_duplicates += 1;
        Some(at + Duration::from_nanos(self.aimed.isr_duplicate.random_range(0..=2_000_000)))
    }

    /// Applies an aimed fault queued by [`Sim::aim`] or replayed from a schedule:
    /// the fault inside it, counted as aimed when it applied (the caller records
    /// the whole [`Fault::Aimed`]).
    pub(super) fn apply_aimed(&mut self, kind: AimedKind, inner: Fault) -> bool {
        let before = self.fault_log.len();
        let rival = matches!(inner, Fault::Clog { .. });
        self.apply_fault(inner);
        if self.fault_log.len() == before {
            return false;
        }
        self.fault_log.pop();
        let c = &mut self.counters;
        match kind {
            AimedKind::Vote if rival => c.aimed_vote_rivals += 1,
            AimedKind::Vote => c.aimed_vote += 1,
            AimedKind::IsrCommit if rival => {}
            AimedKind::IsrCommit => c.aimed_isr_commit += 1,
            AimedKind::FollowerFsync => c.aimed_follower_fsync += 1,
            AimedKind::FirstFetch => c.aimed_first_fetch += 1,
            AimedKind::Rebalance => c.aimed_rebalance += 1,
            AimedKind::Deposed => c.aimed_deposed += 1,
            AimedKind::FirstCommit => c.aimed_first_commit += 1,
            AimedKind::AdminCommit => {}
        }
        let now = self.now;
        self.trace.event(now, Actor::Sim, "aimed", kind.index() as u64, 0, || kind.name().to_string());
        true
    }
}
