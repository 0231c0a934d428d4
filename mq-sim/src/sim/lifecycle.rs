//! Security and lifecycle in the run (issue 7; docs/simulator.md "Security" and
//! "Controlled shutdown"): the controlled-shutdown fault with its election-bound
//! watches, the start of an auth seed's honest clients once their principals
//! exist everywhere, and the adversarial clients' ticks.

use super::{Ev, NodeSlot, Role, Sim, Watch};
use crate::adversary::Targets;
use crate::checker::Checker;
use crate::members::group_name;
use crate::trace::Actor;
use mq_core::{Duration, Node, NodeId, Peer, TopicPartition};
use std::collections::BTreeMap;

/// Whether `w`'s partition has a leader again per the committed metadata: another
/// broker, or the stopped one back in a new incarnation.
fn watch_done(w: &Watch, checker: &Checker, nodes: &[NodeSlot]) -> bool {
    let me = nodes[w.node].id;
    match checker.committed_leader(&w.tp) {
        Some(l) if l != me => true,
        Some(_) => nodes[w.node].incarnation != w.incarnation && nodes[w.node].node.is_some(),
        None => false,
    }
}

impl Sim {
    // ----- controlled shutdown -----

    /// The longest a partition may stay leaderless after a controlled shutdown
    /// began (docs/invariants.md, `shutdown_leader_bound`): the shutdown request
    /// may go unanswered (controller request timeout), after which the broker
    /// stops anyway and the controller fences it when its session expires
    /// (session timeout) and elects another ISR member; if the stopped broker led
    /// the metadata quorum, a Raft election comes first (two election timeouts);
    /// one more second covers message delays and the commit of the change.
    pub(super) fn election_bound(&self) -> Duration {
        let c = &self.nodes[0].config;
        c.controller_request_timeout
            + c.session_timeout
            + c.election_timeout
            + c.election_timeout
            + Duration::from_secs(1)
    }

    /// Starts a controlled shutdown of live node `n` under load; watches the
    /// partitions it leads when the cluster is quiet.
    pub(super) fn begin_shutdown(&mut self, n: usize) {
        let now = self.now;
        let quiet = self.liveness_start.is_some()
            || (self.net.cut.is_none()
                && self.net.unclogged(now)
                && self.nodes.iter().all(|s| s.node.is_some() && s.paused_until <= now && s.stopping.is_none()));
        let slot = &mut self.nodes[n];
        let local = slot.clock.local(now);
        let Some(node) = slot.node.as_mut() else { return };
        node.begin_shutdown(local);
        slot.stopping = Some(now);
        let (id, incarnation) = (slot.id, slot.incarnation);
        self.counters.shutdowns_started += 1;
        self.trace.event(now, Actor::Node(id.0), "controlled-shutdown", u64::from(quiet), 0, || {
            format!("begins (quiet={quiet})")
        });
        let bound = self.election_bound();
        if quiet {
            for tp in self.checker.led_by(id) {
                let deadline = now + bound;
                self.watches.push(Watch { tp, node: n, incarnation, since: now, deadline });
                self.push(deadline, Ev::LeaderWatch);
            }
        }
        // The shutdown itself: the controller's answer, or its timeout, and the
        // last persists; then some slack.
        let c = &self.nodes[n].config;
        let deadline = now + c.controller_request_timeout + c.controller_request_timeout;
        self.push(deadline, Ev::ShutdownDeadline { node: n, incarnation });
        self.drain_node(n);
        self.after_node_step(n);
    }

    /// Watches whose partition has a leader again are done; with `deadline`, a
    /// watch past its bound fails `shutdown_leader_bound`, unless another fault
    /// disturbed the cluster meanwhile (then it is dropped).
    pub(super) fn check_watches(&mut self, deadline: bool) {
        let now = self.now;
        let mut failed = None;
        let (checker, nodes, counters) = (&self.checker, &self.nodes, &mut self.counters);
        let disturbed_at = self.disturbed_at;
        let liveness = self.liveness_start;
        self.watches.retain(|w| {
            if watch_done(w, checker, nodes) {
                counters.shutdown_leader_moves += 1;
                return false;
            }
            if !deadline || now < w.deadline {
                return true;
            }
            // Faults stop when the liveness phase starts.
            let disturbed = disturbed_at > w.since && liveness.is_none_or(|l| l > w.since);
            if !disturbed && failed.is_none() {
                failed = Some(format!(
                    "{} had no leader {} ms after n{} began a controlled shutdown at {} (bound {} ms)",
                    w.tp,
                    (now - w.since).as_nanos() / 1_000_000,
                    nodes[w.node].id,
                    w.since,
                    (w.deadline - w.since).as_nanos() / 1_000_000
                ));
            }
            false
        });
        if let Some(what) = failed {
            self.checker.fail("shutdown_leader_bound", what);
        }
    }

    /// After node `n` handled something: a stopping node whose shutdown completed
    /// stops cleanly; watches move on.
    pub(super) fn after_node_step(&mut self, n: usize) {
        let slot = &self.nodes[n];
        if slot.stopping.is_some() && slot.node.as_ref().is_some_and(Node::is_shut_down) {
            self.counters.shutdowns_completed += 1;
            self.stop(n, super::Stop::Clean);
        }
        if !self.watches.is_empty() {
            self.check_watches(false);
        }
    }

    /// Drains node `n`'s outputs and schedules its timer.
    pub(super) fn drain_node(&mut self, n: usize) {
        if self.nodes[n].node.is_none() {
            return;
        }
        self.drain_outputs(n);
        self.schedule_node_timer(n);
    }

    /// Takes every output node `n` has and acts on each, in order.
    pub(super) fn drain_outputs(&mut self, n: usize) {
        let Some(node) = self.nodes[n].node.as_mut() else { return };
        let mut outs = std::mem::take(&mut self.scratch);
        while let Some(o) = node.poll_output() {
            outs.push(o);
        }
        for o in outs.drain(..) {
            self.node_output(n, o);
        }
        self.scratch = outs;
    }

    // ----- security -----

    /// Auth seeds: once the admin confirmed every principal and grant and every
    /// live broker applied them, the honest clients and the adversaries start.
    pub(super) fn check_security_ready(&mut self) {
        if self.security_ready {
            return;
        }
        let Some(Role::Admin(a)) = self.clients.first().map(|c| &c.role) else { return };
        if !a.unconfirmed.is_empty() {
            return;
        }
        let Some(rules) = &self.checker.auth else { return };
        let applied = self.nodes.iter().filter_map(|s| s.node.as_ref()).all(|node| {
            let m = node.metadata();
            rules.principals.iter().all(|p| m.principals.contains_key(p))
                && m.acls.grants().filter(|g| rules.grants.contains(*g)).count() == rules.grants.len()
        });
        if !applied {
            return;
        }
        self.security_ready = true;
        self.security_ready_at = Some(self.now);
        self.counters.security_setups += 1;
        let now = self.now;
        self.trace.event(now, Actor::Sim, "security-ready", 0, 0, || "principals and grants applied everywhere".into());
        for c in 0..self.clients.len() {
            if self.clients[c].started {
                continue;
            }
            self.clients[c].started = true;
            match &mut self.clients[c].role {
                Role::Adversary(adv) => {
                    let at = now + adv.gap(self.opts.attack_interval_ms);
                    self.push(at, Ev::AdversaryTick { client: c });
                }
                Role::Producer { .. } => self.schedule_produce_tick(c),
                _ => {}
            }
            self.schedule_client_timer(c);
        }
    }

    pub(super) fn adversary_tick(&mut self, c: usize) {
        let now = self.now;
        if now >= self.produce_until {
            return;
        }
        let mut leaders: BTreeMap<TopicPartition, (mq_core::LeaderEpoch, NodeId)> = BTreeMap::new();
        for s in &self.nodes {
            let Some(node) = s.node.as_ref() else { continue };
            for tp in &self.topics {
                if let Some(r) = node.replica(tp).filter(|r| r.is_leader()) {
                    let e = leaders.entry(tp.clone()).or_insert((r.leader_epoch, s.id));
                    if r.leader_epoch > e.0 {
                        *e = (r.leader_epoch, s.id);
                    }
                }
            }
        }
        let leaders: BTreeMap<TopicPartition, NodeId> = leaders.into_iter().map(|(tp, (_, n))| (tp, n)).collect();
        let groups: Vec<String> = (0..self.opts.groups.len()).map(group_name).collect();
        let honest_grant = self.checker.auth.as_ref().and_then(|r| r.grants.iter().next().cloned());
        let cid = self.clients[c].id;
        let Role::Adversary(adv) = &mut self.clients[c].role else { return };
        let targets = Targets {
            brokers: self.opts.cluster_size,
            partitions: &self.topics,
            leaders: &leaders,
            groups: &groups,
            recorded_proofs: &self.recorded_proofs,
            honest_grant: honest_grant.as_ref(),
        };
        let before = self.history.attacks.len();
        let sends = adv.tick(now, cid.0, &targets, &mut self.history);
        let next = now + adv.gap(self.opts.attack_interval_ms);
        self.push(next, Ev::AdversaryTick { client: c });
        self.counters.adversary_attempts += (self.history.attacks.len() - before) as u64;
        for a in &self.history.attacks[before..] {
            self.trace
                .event(now, Actor::Client(cid.0), "attack", a.id, 0, || format!("#{} {}: {}", a.id, a.kind, a.what));
        }
        for (to, msg) in sends {
            self.send(Peer::Client(cid), Peer::Node(to), msg);
        }
    }
}
