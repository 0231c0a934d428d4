//! The node as a broker of the cluster (DESIGN.md section 4): it registers with
//! the active controller for a new incarnation (broker epoch), heartbeats so that
//! it is not fenced, follows the committed metadata log, and sends the
//! controller its ISR changes and forwarded admin requests.

use super::{Node, PendingReply};
use crate::contract::{Event, Peer};
use crate::controller::ControllerRequest;
use crate::ids::{BrokerEpoch, CorrelationId, NodeId, TopicPartition};
use crate::time::Instant;
use crate::wire::{ControllerReply, ErrorCode, PeerMessage, ResponseBody, WireError};

/// What a broker's session does next ([`Node::session_due`]).
enum SessionDue {
    /// Register with the controller, from this time on.
    Register(Instant),
    /// Send a heartbeat for this broker epoch, from this time on.
    Heartbeat(Instant, BrokerEpoch),
    /// Nothing: a call is out, or a stopping broker without a session.
    Nothing,
}

/// The broker's standing with the controller.
#[derive(Clone, Debug, Default)]
pub(super) struct Session {
    /// The current incarnation, once registered.
    pub(super) epoch: Option<BrokerEpoch>,
    /// Whether the controller still fences this incarnation.
    pub(super) fenced: bool,
    /// When the next heartbeat is due.
    pub(super) next_heartbeat: Instant,
    /// The controller leader as last heard of.
    pub(super) known_controller: Option<NodeId>,
    /// Calls to the current controller target that timed out since it last
    /// answered anything: the target is given up only after a few (a slow answer
    /// is not a dead controller; seed 1003990).
    pub(super) unanswered: u32,
    /// The newest heartbeat whose answer was applied: heartbeats overlap, and an
    /// older answer arriving later says nothing new.
    pub(super) heartbeat_applied: Option<CorrelationId>,
    /// Which voter to try next when no controller is known.
    pub(super) rotate: usize,
    /// When the next metadata fetch is due (non-voters).
    pub(super) next_metadata_fetch: Instant,
    /// Whether a metadata fetch awaits its answer.
    pub(super) metadata_fetch_inflight: bool,
    /// No registration attempt before this time (backoff after a failure).
    pub(super) register_not_before: Instant,
    /// Set once a controlled shutdown began.
    pub(super) stopping: Option<Stopping>,
    /// Until when this incarnation may deal group records: the send time of its
    /// newest heartbeat answered unfenced, plus the delivery lease, counted only
    /// once it applied the metadata that answer read (docs/consumers.md,
    /// "Failover").
    pub(super) lease_until: Instant,
    /// An unfenced answer waiting for metadata: (lease end, metadata index).
    pub(super) lease_pending: Option<(Instant, crate::controller::raft::LogIndex)>,
    /// Whether this incarnation has caught up on metadata once (it was unfenced):
    /// only from then on does it act on partition state. Before, it replays old
    /// committed states in which it may lead an epoch that has long ended.
    pub(super) caught_up: bool,
}

/// Pause before retrying a failed registration.
const REGISTER_BACKOFF: crate::time::Duration = crate::time::Duration::from_millis(100);

/// Calls to one controller that time out in a row before a broker that is not a
/// voter forgets it and tries the next voter. A `NotLeader` answer moves on at
/// once; metadata fetch answers name the new controller.
const GIVE_UP_AFTER_TIMEOUTS: u32 = 3;

/// Heartbeats awaiting their answers at once. A heartbeat is sent every interval
/// whether or not the previous one was answered, as Kafka's broker does: one
/// answer delayed past the session must not cost the session (seed 1000811, a
/// 100 ms session and 410 ms network tails).
const MAX_HEARTBEATS_IN_FLIGHT: usize = 4;

/// Heartbeat interval while registered but still fenced (catching up on
/// metadata): short, so the broker is unfenced soon after it caught up, not a
/// whole heartbeat interval later (Kafka's broker heartbeats every 10 ms while
/// STARTING, `BrokerLifecycleManager`).
const FENCED_HEARTBEAT: crate::time::Duration = crate::time::Duration::from_millis(10);

/// Where a controlled shutdown stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stopping {
    /// The controller is moving this broker's leaderships away.
    MovingLeadership,
    /// Leadership moved (or the controller could not be reached): the node may stop
    /// once its writes are durable.
    Done,
}

/// Why a request to the controller was made.
#[derive(Clone, Debug)]
pub(super) enum Purpose {
    Register,
    /// A heartbeat of this incarnation.
    Heartbeat(BrokerEpoch),
    AlterPartition(TopicPartition, u32),
    /// A block of producer ids for `InitProducer` requests.
    ProducerIds,
    /// A controlled shutdown.
    Shutdown,
    /// Creating `__groups` for the group coordinators.
    CreateGroupsTopic,
    /// Creating the dead-letter topic of this name (docs/consumers.md 6.4).
    CreateDeadLetterTopic(String),
    /// An admin request forwarded for a client; `body` answers it on success.
    Forward(PendingReply),
}

/// A request to the controller awaiting its answer.
#[derive(Clone, Debug)]
pub(super) struct Call {
    /// When it was sent.
    pub(super) sent: Instant,
    pub(super) deadline: Instant,
    /// The node it went to.
    pub(super) to: NodeId,
    pub(super) purpose: Purpose,
}

impl Node {
    /// Where controller requests go: the Raft leader if this node knows it, else the
    /// last announced controller, else the voters in turn. An announced controller
    /// that is not a voter is a peer's nonsense and is ignored.
    fn controller_target(&self) -> NodeId {
        if let Some(l) = self.raft.leader() {
            return l;
        }
        if let Some(c) = self.session.known_controller.filter(|c| self.config.voters.contains(c)) {
            return c;
        }
        let voters = &self.config.voters;
        voters[self.session.rotate % voters.len()]
    }

    pub(super) fn call_controller(&mut self, request: ControllerRequest, purpose: Purpose) {
        let correlation = CorrelationId(self.next_call);
        self.next_call += 1;
        let wait = match purpose {
            // A heartbeat outliving the session proves nothing; the next one
            // is on its way meanwhile.
            Purpose::Heartbeat(_) => self.config.controller_request_timeout.min(self.config.session_timeout),
            // An admin request waits as long as its client is prepared to
            // (Kafka's CreateTopics carries its own `timeout_ms`), not at the
            // pace of the broker's lifecycle calls (seed 1002065).
            Purpose::Forward(_) => self.config.admin_timeout,
            _ => self.config.controller_request_timeout,
        };
        let to = self.controller_target();
        self.calls.insert(correlation, Call { sent: self.now, deadline: self.now + wait, to, purpose });
        self.send_peer(to, PeerMessage::Controller { correlation, request });
    }

    pub(super) fn has_call(&self, f: impl Fn(&Purpose) -> bool) -> bool {
        self.calls.values().any(|c| f(&c.purpose))
    }

    /// Forget the controller we talked to and try the next voter.
    fn rotate_controller(&mut self) {
        self.session.known_controller = None;
        self.session.rotate += 1;
        self.session.unanswered = 0;
    }

    /// A call to `to` failed with `code`: a `NotLeader` answer from the current
    /// target moves on to the next voter at once; timeouts do after
    /// [`GIVE_UP_AFTER_TIMEOUTS`] in a row. Failures of calls that went to an
    /// earlier target change nothing.
    fn controller_failed(&mut self, to: NodeId, code: ErrorCode) {
        if to != self.controller_target() {
            return;
        }
        match code {
            ErrorCode::NotLeader => self.rotate_controller(),
            ErrorCode::Timeout => {
                self.session.unanswered += 1;
                // A guess (no controller known) is given up at once.
                let guessing = self.raft.leader().is_none() && self.session.known_controller.is_none();
                if guessing || self.session.unanswered >= GIVE_UP_AFTER_TIMEOUTS {
                    self.rotate_controller();
                }
            }
            _ => {}
        }
    }

    /// Registration, heartbeats and metadata fetches.
    pub(super) fn session_tick(&mut self) {
        let now = self.now;
        // Expired calls.
        let expired: Vec<CorrelationId> =
            self.calls.iter().filter(|(_, c)| c.deadline <= now).map(|(k, _)| *k).collect();
        for k in expired {
            if let Some(call) = self.calls.remove(&k) {
                let e = WireError::new(ErrorCode::Timeout, "the controller did not answer in time");
                self.call_failed(k, call, e);
            }
        }
        match self.session_due() {
            SessionDue::Register(at) if now >= at => {
                let broker = self.id();
                self.call_controller(ControllerRequest::RegisterBroker { broker }, Purpose::Register);
            }
            SessionDue::Heartbeat(at, broker_epoch) if now >= at => {
                self.session.next_heartbeat = now + self.config.broker_heartbeat_interval;
                let request = ControllerRequest::Heartbeat {
                    broker: self.id(),
                    broker_epoch,
                    metadata_applied: self.image.applied,
                };
                self.call_controller(request, Purpose::Heartbeat(broker_epoch));
            }
            _ => {}
        }
        if !self.raft.is_voter() && now >= self.session.next_metadata_fetch {
            self.session.next_metadata_fetch = now + self.config.metadata_fetch_interval;
            // One outstanding fetch at a time; a lost one is simply re-sent.
            self.session.metadata_fetch_inflight = true;
            let to = self.controller_target();
            let after = self.image.applied;
            self.send_peer(to, PeerMessage::MetadataFetch { after });
        }
    }

    /// What the session will do next and from when: the one answer both
    /// `session_tick` (which acts on it) and `session_timeout` (which wakes for it)
    /// read, so the timer never asks for a tick the tick would not act on (they
    /// drifted apart once: a stopping broker without a session asked to register
    /// at once, forever; simulator seed 1334).
    fn session_due(&self) -> SessionDue {
        match self.session.epoch {
            None if self.session.stopping.is_some() || self.has_call(|p| matches!(p, Purpose::Register)) => {
                SessionDue::Nothing
            }
            None => SessionDue::Register(self.session.register_not_before),
            Some(_)
                if self.calls.values().filter(|c| matches!(c.purpose, Purpose::Heartbeat(_))).count()
                    >= MAX_HEARTBEATS_IN_FLIGHT =>
            {
                SessionDue::Nothing
            }
            Some(epoch) => SessionDue::Heartbeat(self.session.next_heartbeat, epoch),
        }
    }

    /// When the session next needs a tick.
    pub(super) fn session_timeout(&self) -> Option<Instant> {
        let mut t = match self.session_due() {
            SessionDue::Register(at) => at.max(self.now),
            SessionDue::Heartbeat(at, _) => at,
            SessionDue::Nothing => Instant::MAX,
        };
        if !self.raft.is_voter() {
            t = t.min(self.session.next_metadata_fetch);
        }
        Some(t)
    }

    pub(super) fn handle_controller_reply(
        &mut self,
        correlation: CorrelationId,
        result: Result<ControllerReply, WireError>,
    ) {
        let Some(call) = self.calls.remove(&correlation) else { return };
        if call.to == self.controller_target() {
            self.session.unanswered = 0;
        }
        let reply = match result {
            Ok(r) => r,
            Err(e) => return self.call_failed(correlation, call, e),
        };
        if let Purpose::Heartbeat(epoch) = call.purpose {
            if !self.fresh_heartbeat(correlation, epoch) {
                return;
            }
        }
        match (call.purpose, reply) {
            (Purpose::Register, ControllerReply::Registered { broker_epoch, .. }) => {
                self.session.epoch = Some(broker_epoch);
                self.session.fenced = true;
                self.end_lease();
                self.session.next_heartbeat = self.now;
                self.event(Event::Registered { broker_epoch });
            }
            (Purpose::Heartbeat(_), ControllerReply::Heartbeat { fenced, metadata_index }) => {
                let was_fenced = self.session.fenced;
                self.session.fenced = fenced;
                if fenced {
                    self.end_lease();
                    let soon = self.now + FENCED_HEARTBEAT.min(self.config.broker_heartbeat_interval);
                    self.session.next_heartbeat = self.session.next_heartbeat.min(soon);
                } else {
                    let until = call.sent.saturating_add(self.config.delivery_lease());
                    let pending = self
                        .session
                        .lease_pending
                        .map_or((until, metadata_index), |(u, i)| (u.max(until), i.max(metadata_index)));
                    self.session.lease_pending = Some(pending);
                    if metadata_index > self.image.applied && !self.raft.is_voter() {
                        // Behind what the controller read: fetch now, not at
                        // the next interval, so that the lease is not late.
                        self.session.next_metadata_fetch = self.session.next_metadata_fetch.min(self.now);
                    }
                    self.renew_lease();
                    self.mark_caught_up();
                }
                if was_fenced && !fenced {
                    // Unfenced: follow the partitions we hold, and deal what
                    // waited while fenced (leases that expired meanwhile).
                    let tps: Vec<TopicPartition> = self.slots.keys().cloned().collect();
                    for tp in &tps {
                        self.maybe_fetch(tp);
                        self.delivery_on_high_watermark(tp);
                    }
                }
            }
            (Purpose::Shutdown, _) => self.session.stopping = Some(Stopping::Done),
            (Purpose::ProducerIds, ControllerReply::ProducerIds { first, count }) => {
                self.producer_ids = (first.0, first.0.saturating_add(count));
                self.serve_producer_ids();
            }
            (Purpose::AlterPartition(..), ControllerReply::Done { .. }) => {
                // The change shows up when its record is applied.
            }
            (Purpose::Forward(pending), ControllerReply::Done { index }) => {
                let deadline = self.now + self.config.admin_timeout;
                self.admin_waiters.push((index, deadline, pending));
                self.complete_admin_waiters();
            }
            (purpose, reply) => {
                tracing::debug!(?purpose, ?reply, "unexpected controller reply");
            }
        }
    }

    /// Whether this incarnation may deal group records now: its lease runs, so
    /// the controller cannot yet have handed its leaderships to another broker
    /// without this one having applied that change (docs/consumers.md,
    /// "Failover").
    pub(super) fn holds_lease(&self) -> bool {
        self.now < self.session.lease_until
    }

    /// Ends the delivery lease: fenced, registering again, or stopping.
    pub(super) fn end_lease(&mut self) {
        self.session.lease_until = Instant::ZERO;
        self.session.lease_pending = None;
    }

    /// Takes a pending lease renewal once the metadata it needs is applied; a
    /// lease that starts again deals what waited meanwhile.
    pub(super) fn renew_lease(&mut self) {
        let Some((until, index)) = self.session.lease_pending else { return };
        if index > self.image.applied {
            return;
        }
        self.session.lease_pending = None;
        let had = self.holds_lease();
        self.session.lease_until = self.session.lease_until.max(until);
        if !had && self.holds_lease() && self.is_ready() {
            let tps: Vec<TopicPartition> = self.slots.keys().cloned().collect();
            for tp in &tps {
                self.delivery_on_high_watermark(tp);
            }
        }
    }

    /// The controller unfenced this incarnation, so its metadata caught up with its
    /// registration: from now on it acts on partition state, starting with every
    /// partition as it stands now.
    pub(super) fn mark_caught_up(&mut self) {
        if self.session.caught_up {
            return;
        }
        self.session.caught_up = true;
        let tps: Vec<TopicPartition> = self.image.partitions().map(|(tp, _)| tp).collect();
        for tp in &tps {
            self.sync_partition(tp);
        }
    }

    /// Whether the answer to heartbeat `correlation` of incarnation `epoch` is
    /// news: of the current incarnation and newer than any applied (heartbeats
    /// overlap, and the network may reorder their answers).
    fn fresh_heartbeat(&mut self, correlation: CorrelationId, epoch: BrokerEpoch) -> bool {
        if self.session.epoch != Some(epoch) || self.session.heartbeat_applied.is_some_and(|c| c > correlation) {
            return false;
        }
        self.session.heartbeat_applied = Some(correlation);
        true
    }

    fn call_failed(&mut self, correlation: CorrelationId, call: Call, e: WireError) {
        self.controller_failed(call.to, e.code);
        match call.purpose {
            Purpose::Register => {
                self.session.register_not_before = self.now + REGISTER_BACKOFF;
            }
            Purpose::Heartbeat(epoch) => {
                if !self.fresh_heartbeat(correlation, epoch) {
                    return;
                }
                if e.code == ErrorCode::FencedEpoch {
                    // The controller knows a newer incarnation or none: register again.
                    self.coverage.hit(crate::coverage::Mark::BrokerReregisters);
                    self.session.epoch = None;
                    self.session.fenced = true;
                    self.end_lease();
                }
                // Try again after a pause rather than at once, but within the
                // heartbeat interval, which the configuration keeps below the
                // session timeout: a fixed pause as long as the session let every
                // heartbeat that timed out (a controller answering slower than
                // `controller_request_timeout`) cost the session itself.
                let pause = REGISTER_BACKOFF.min(self.config.broker_heartbeat_interval);
                self.session.next_heartbeat = self.session.next_heartbeat.min(self.now + pause);
            }
            Purpose::AlterPartition(tp, partition_epoch) => {
                self.coverage.hit(crate::coverage::Mark::IsrChangeFailed);
                if let Some(slot) = self.slots.get_mut(&tp) {
                    use crate::replication::IsrChangeFailure;
                    // None of these proves that no copy of the ask commits
                    // later: the members it adds stay unsettled until a newer
                    // partition state (`Replica::isr_change_failed`).
                    let outcome = match e.code {
                        ErrorCode::FencedEpoch => IsrChangeFailure::Stale,
                        ErrorCode::InvalidRequest | ErrorCode::UnknownEpoch | ErrorCode::UnknownPartition => {
                            IsrChangeFailure::Refused
                        }
                        _ => IsrChangeFailure::Unanswered,
                    };
                    slot.replica.isr_change_failed(partition_epoch, outcome);
                }
            }
            Purpose::Shutdown => {
                // Best effort: without a controller the session timeout fences us.
                tracing::debug!(error = %e, "controlled shutdown could not reach the controller");
                self.coverage.hit(crate::coverage::Mark::ShutdownWithoutController);
                self.session.stopping = Some(Stopping::Done);
            }
            Purpose::CreateGroupsTopic | Purpose::CreateDeadLetterTopic(_) => {
                // `TopicExists`: another broker won the race. Otherwise the next
                // FindCoordinator asks again.
            }
            Purpose::ProducerIds => {
                for (to, correlation) in std::mem::take(&mut self.producer_id_waiters) {
                    let e = WireError::new(
                        ErrorCode::NotReady,
                        format!("no producer id available right now ({}); retry", e.message),
                    );
                    self.reply(to, correlation, Err(e));
                }
            }
            Purpose::Forward(pending) => {
                let e = if e.code == ErrorCode::NotLeader {
                    WireError::new(
                        ErrorCode::NotReady,
                        format!("no active controller right now ({}); retry", e.message),
                    )
                } else {
                    e
                };
                self.reply(pending.to, pending.correlation, Err(e));
            }
        }
    }

    /// Answers forwarded admin requests whose records this broker has applied.
    pub(super) fn complete_admin_waiters(&mut self) {
        let applied = self.image.applied;
        let (ready, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.admin_waiters).into_iter().partition(|w| w.0 <= applied);
        self.admin_waiters = waiting;
        for (_, _, r) in ready {
            self.send_reply(r);
        }
    }

    pub(super) fn admin_tick(&mut self) {
        let now = self.now;
        let (late, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.admin_waiters).into_iter().partition(|w| w.1 <= now);
        self.admin_waiters = waiting;
        for (_, _, r) in late {
            let e = WireError::new(ErrorCode::Timeout, "committed, but this broker has not applied the change yet");
            self.reply(r.to, r.correlation, Err(e));
        }
    }

    /// An idempotent producer asks for its id: from the broker's block, or once the
    /// controller allocated a new block (blocks never overlap, so ids are unique in
    /// the cluster; a restarted broker abandons the rest of its block).
    pub(super) fn init_producer(&mut self, client: Peer, correlation: CorrelationId) {
        self.producer_id_waiters.push((client, correlation));
        self.serve_producer_ids();
    }

    /// Hands out ids from the block to waiting producers, and asks for another
    /// block while some still wait: a block smaller than the waiters (down to one
    /// id) left the rest waiting until some later `InitProducer` asked again, past
    /// their request timeouts, so their retries queued behind them for good
    /// (seed 1000561, blocks of one id).
    fn serve_producer_ids(&mut self) {
        while self.producer_ids.0 < self.producer_ids.1 && !self.producer_id_waiters.is_empty() {
            let (to, correlation) = self.producer_id_waiters.remove(0);
            let producer_id = crate::ids::ProducerId(self.producer_ids.0);
            self.producer_ids.0 += 1;
            let body = ResponseBody::ProducerId { producer_id, producer_epoch: crate::ids::ProducerEpoch(0) };
            self.reply(to, correlation, Ok(body));
        }
        if !self.producer_id_waiters.is_empty() && !self.has_call(|p| matches!(p, Purpose::ProducerIds)) {
            if let Some(broker_epoch) = self.session.epoch {
                let request = ControllerRequest::AllocateProducerIds { broker: self.id(), broker_epoch };
                self.call_controller(request, Purpose::ProducerIds);
            }
        }
    }

    /// A client admin request goes to the controller; the client is answered once
    /// this broker has applied the resulting records.
    pub(super) fn forward(
        &mut self,
        client: Peer,
        correlation: CorrelationId,
        request: ControllerRequest,
        ok: ResponseBody,
    ) {
        let pending = PendingReply { to: client, correlation, body: ok, event: None };
        self.call_controller(request, Purpose::Forward(pending));
    }
}
