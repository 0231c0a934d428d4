//! The node as a host of the metadata quorum: running Raft's outputs through the
//! persist pipeline, applying committed metadata, acting as the active controller,
//! and serving committed metadata to brokers that are not voters.

use super::{Effect, Node};
use crate::contract::Event;
use crate::controller::metadata::MetadataRecord;
use crate::controller::raft::{Entry, LogIndex, RaftOutput, RaftRole};
use crate::controller::{ControllerConfig, ControllerRequest, QuorumController};
use crate::ids::{CorrelationId, NodeId};
use crate::storage::Write;
use crate::wire::{ControllerReply, ErrorCode, PeerMessage, WireError};

/// Most metadata entries in one `MetadataEntries` reply.
const MAX_METADATA_ENTRIES: usize = 512;

/// A controller answer to send once `index` commits and Raft confirmed
/// `round` (a leadership check begun after the request arrived).
#[derive(Clone, Debug)]
pub(super) struct ControllerWaiter {
    index: LogIndex,
    round: u64,
    to: NodeId,
    correlation: CorrelationId,
    result: Result<ControllerReply, WireError>,
}

impl Node {
    /// Moves Raft's outputs into the pipeline. Returns true if there were any.
    pub(super) fn drain_raft(&mut self) -> bool {
        let outs: Vec<RaftOutput> = self.raft.drain_outputs().collect();
        if outs.is_empty() {
            return false;
        }
        let mut wrote = false;
        for o in outs {
            match o {
                RaftOutput::Write(w) => {
                    wrote = true;
                    self.stage(Write::Raft(w), None, 0);
                }
                RaftOutput::Send { to, msg, after_persist: false } => self.send_peer(to, PeerMessage::Raft(msg)),
                RaftOutput::Send { to, msg, after_persist: true } => {
                    self.send_after_persist(to, PeerMessage::Raft(msg))
                }
            }
        }
        if wrote {
            let marker = self.raft.durability_marker();
            self.staged.effects.push(Effect::RaftDurable(marker));
        }
        true
    }

    /// Applies metadata the local Raft log has committed (voters). Returns true if
    /// anything was applied.
    pub(super) fn apply_committed(&mut self) -> bool {
        if !self.raft.is_voter() {
            return false;
        }
        let entries: Vec<Entry> = self.raft.committed_after(self.image.applied).to_vec();
        for e in &entries {
            self.apply_record(e.index, &e.record);
        }
        let commit = self.raft.commit_index();
        let confirmed = self.raft.confirmed_round();
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.controller_waiters)
            .into_iter()
            .partition(|w| w.index <= commit && w.round <= confirmed);
        self.controller_waiters = waiting;
        for w in ready {
            self.send_peer(w.to, PeerMessage::ControllerReply { correlation: w.correlation, result: w.result });
        }
        !entries.is_empty()
    }

    /// Applies one committed record to the image and to this broker.
    pub(super) fn apply_record(&mut self, index: LogIndex, record: &MetadataRecord) {
        self.image.apply(index, record);
        let me = self.id();
        match record {
            MetadataRecord::LeaderChange { leader } => self.session.known_controller = Some(*leader),
            MetadataRecord::PartitionChange { tp, .. } => self.sync_partition(tp),
            MetadataRecord::DeleteTopic { topic } => self.drop_topic(topic),
            MetadataRecord::FenceBroker { broker, broker_epoch }
                if *broker == me && self.session.epoch == Some(*broker_epoch) =>
            {
                self.coverage.hit(crate::coverage::Mark::BrokerFenced);
                self.session.fenced = true;
                self.end_lease();
            }
            MetadataRecord::UnfenceBroker { broker, broker_epoch }
                if *broker == me && self.session.epoch == Some(*broker_epoch) =>
            {
                self.session.fenced = false;
                self.mark_caught_up();
            }
            _ => {}
        }
        self.complete_admin_waiters();
        self.renew_lease();
    }

    /// Starts or stops acting as the controller. Active = Raft leader with an
    /// entry of its own term committed (so the image holds every earlier term).
    pub(super) fn update_controller_role(&mut self) -> bool {
        let should = self.raft.role() == RaftRole::Leader && self.raft.current_term_committed();
        match (&self.controller, should) {
            (None, true) => {
                let cc = ControllerConfig {
                    session_timeout: self.config.session_timeout,
                    max_partitions_per_topic: self.config.max_partitions_per_topic,
                    producer_id_block: self.config.producer_id_block,
                    buggify: self.config.buggify,
                    buggify_stream: (self.config.node_id.0, self.raft.term().0),
                    ..ControllerConfig::default()
                };
                self.controller = Some(QuorumController::activate(cc, &self.image, self.now));
                self.coverage.hit(crate::coverage::Mark::ControllerActivated);
                let term = self.raft.term();
                self.event(Event::ControllerLeader { term });
                true
            }
            (Some(_), false) if self.raft.role() != RaftRole::Leader => {
                if let Some(ctl) = self.controller.take() {
                    self.coverage.add(ctl.coverage());
                }
                self.coverage.hit(crate::coverage::Mark::ControllerResigned);
                for w in std::mem::take(&mut self.controller_waiters) {
                    let err = WireError::new(ErrorCode::NotLeader, "the controller lost its leadership; retry");
                    self.send_peer(w.to, PeerMessage::ControllerReply { correlation: w.correlation, result: Err(err) });
                }
                true
            }
            _ => false,
        }
    }

    pub(super) fn handle_controller_request(
        &mut self,
        from: NodeId,
        correlation: CorrelationId,
        request: ControllerRequest,
    ) {
        let now = self.now;
        let Some(ctl) = self.controller.as_mut() else {
            let hint = self.raft.leader().map_or("unknown".to_string(), |l| format!("broker {l}"));
            let err = WireError::new(
                ErrorCode::NotLeader,
                format!("broker {} is not the active controller; it is {hint}", self.id()),
            );
            self.send_peer(from, PeerMessage::ControllerReply { correlation, result: Err(err) });
            return;
        };
        // The decision reads the speculative image: committed records and those
        // proposed since. Whatever it answers, even a refusal or an answer
        // without records of its own, holds only once those commit (Kafka's
        // controller defers such answers to the highest pending offset): a
        // `TopicExists` read from a proposed creation that a crash then lost
        // told the admin its topic existed (seed 1000900). A heartbeat is the
        // exception: its answer (fenced or not) only paces the broker, whose
        // partition roles follow committed metadata, and holding it back holds
        // back the broker's next heartbeat, which with a short session fences
        // brokers over and over while proposals queue (seed 1000140).
        let read_up_to = match request {
            ControllerRequest::Heartbeat { .. } => self.raft.commit_index(),
            _ => self.raft.last_index(),
        };
        let records = match ctl.handle(now, request.clone()) {
            Ok(r) => r,
            Err(e) => {
                self.answer_controller_request(from, correlation, read_up_to, 0, Err(e));
                return;
            }
        };
        let mut last = read_up_to;
        let mut proposed = false;
        let mut reply = ControllerReply::Done { index: 0 };
        for r in records {
            match self.raft.propose(now, r.clone()) {
                Ok(index) => {
                    last = index;
                    proposed = true;
                    if let Some(ctl) = self.controller.as_mut() {
                        ctl.proposed(index, &r);
                    }
                    match r {
                        MetadataRecord::RegisterBroker { broker_epoch, .. } => {
                            reply = ControllerReply::Registered { broker_epoch, index }
                        }
                        MetadataRecord::AllocateProducerIds { first, count } => {
                            reply = ControllerReply::ProducerIds { first, count }
                        }
                        _ => {}
                    }
                }
                Err(_) => {
                    let err = WireError::new(ErrorCode::NotLeader, "the controller lost its leadership; retry");
                    self.send_peer(from, PeerMessage::ControllerReply { correlation, result: Err(err) });
                    return;
                }
            }
        }
        // A heartbeat answered "unfenced" grants the broker a lease to deal group
        // records (docs/consumers.md, "Failover"). That needs two things. The
        // broker must apply everything this decision read (`metadata_index`,
        // proposed entries included): a leadership it lost before now is in
        // there. And this node must still be the controller after the heartbeat
        // arrived, or a deposed controller could renew a lease that its
        // successor's fencing counts as expired: an answer that proposed
        // nothing waits for a Raft confirmation round begun after now (one that
        // proposed waits for its entries to commit, which proves the same).
        let mut round = 0;
        let reply = match (reply, request) {
            (ControllerReply::Done { .. }, ControllerRequest::Heartbeat { broker, .. }) => {
                let fenced = self.controller.as_ref().is_none_or(|c| !c.image().is_live(broker));
                if !fenced && !proposed {
                    round = self.raft.request_confirmation(now);
                }
                ControllerReply::Heartbeat { fenced, metadata_index: self.raft.last_index() }
            }
            (ControllerReply::Done { .. }, _) => ControllerReply::Done { index: last },
            (other, _) => other,
        };
        self.answer_controller_request(from, correlation, last, round, Ok(reply));
    }

    /// Sends a controller answer now if `index` committed, else once it does.
    fn answer_controller_request(
        &mut self,
        to: NodeId,
        correlation: CorrelationId,
        index: LogIndex,
        round: u64,
        result: Result<ControllerReply, WireError>,
    ) {
        if index <= self.raft.commit_index() && round <= self.raft.confirmed_round() {
            self.send_peer(to, PeerMessage::ControllerReply { correlation, result });
        } else {
            self.controller_waiters.push(ControllerWaiter { index, round, to, correlation, result });
        }
    }

    /// Fences brokers whose sessions expired.
    pub(super) fn controller_tick(&mut self) {
        let now = self.now;
        let Some(ctl) = self.controller.as_mut() else { return };
        if ctl.poll_timeout().is_none_or(|t| t > now) {
            return;
        }
        let records = ctl.tick(now);
        for r in records {
            match self.raft.propose(now, r.clone()) {
                Ok(index) => {
                    if let Some(ctl) = self.controller.as_mut() {
                        ctl.proposed(index, &r);
                    }
                }
                Err(_) => return,
            }
        }
    }

    /// A broker asks this voter for committed metadata.
    pub(super) fn serve_metadata(&mut self, from: NodeId, after: LogIndex) {
        let entries: Vec<Entry> = self.raft.committed_after(after).iter().take(MAX_METADATA_ENTRIES).cloned().collect();
        let msg =
            PeerMessage::MetadataEntries { entries, commit: self.raft.commit_index(), leader: self.raft.leader() };
        self.send_peer(from, msg);
    }

    /// Applies committed metadata fetched from a voter (non-voters).
    pub(super) fn apply_fetched_metadata(&mut self, entries: Vec<Entry>, commit: LogIndex, leader: Option<NodeId>) {
        self.session.metadata_fetch_inflight = false;
        if self.raft.is_voter() {
            return;
        }
        if leader.is_some() {
            self.session.known_controller = leader;
        }
        for e in entries {
            if e.index == self.image.applied + 1 && e.index <= commit {
                self.apply_record(e.index, &e.record);
            }
        }
    }
}
