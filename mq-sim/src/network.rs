//! The network model. Every message between two endpoints (broker to broker and
//! client to broker) takes one directed *link* and meets, in this order:
//!
//! 1. a cut (partition): a message sent across a cut is dropped;
//! 2. loss with the seed's probability;
//! 3. capacity: a link holds at most `link_capacity` messages in flight; more are
//!    dropped (a full socket buffer);
//! 4. a delay: a minimum, an exponential part and, with a small probability, a long
//!    tail; without reordering the delivery time is pushed back to keep the link FIFO;
//! 5. a clog: a clogged link holds its messages until the clog ends;
//! 6. duplication, which delivers a second copy with its own delay.
//!
//! **One random stream per link.** Each directed link draws its losses, delays and
//! duplicates from its own stream of the seed (`network`, indexed by the link), in
//! the order of the messages sent on it. Traffic on other links does not shift
//! them: a shrunk schedule without a broker, a client or authentication keeps the
//! remaining links' draws, message for message, as long as their own traffic is
//! the same (docs/simulator.md, "Shrinking").
//!
//! **Partitions and messages in flight**: a cut also applies to messages already on
//! the wire. Delivery checks the cut again, so a message that was sent before a
//! partition began and arrives while it lasts is dropped (a cable cut mid-flight).
//!
//! **Duplication and client links**: client connections are TCP in production, which
//! never duplicates a request. A duplicated `Produce` would be a retry the client never
//! decided (that belongs to the idempotent producer of a later step) and would make a
//! definite refusal look like a lie. So requests from clients are never duplicated;
//! broker-to-client responses and broker-to-broker messages are.

use crate::options::Options;
use mq_core::{Duration, Instant, Peer, Rng, Seed};
use rand::Rng as _;
use std::collections::{BTreeMap, BTreeSet};

/// A network partition: endpoints in `side` cannot talk to those outside it. When
/// `one_way`, only messages *from* `side` to the rest are cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// One side of the cut.
    pub side: BTreeSet<Peer>,
    /// Asymmetric: only `side -> rest` is cut.
    pub one_way: bool,
}

impl Cut {
    /// True if a message from `from` to `to` cannot pass.
    pub fn blocks(&self, from: Peer, to: Peer) -> bool {
        let (a, b) = (self.side.contains(&from), self.side.contains(&to));
        a != b && (!self.one_way || a)
    }
}

/// Why a message did not get through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    /// Random loss.
    Loss,
    /// The link was cut.
    Partition,
    /// The link was full.
    Capacity,
}

/// What `send` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Dropped at once.
    Dropped(Drop),
    /// Delivered at `at`, and a second copy at `dup` if duplicated.
    Deliver {
        /// Arrival of the message.
        at: Instant,
        /// Arrival of a duplicate.
        dup: Option<Instant>,
    },
}

#[derive(Clone, Debug)]
struct Link {
    rng: Rng,
    in_flight: u32,
    last_arrival: Instant,
    clogged_until: Instant,
}

/// The network between all endpoints.
pub struct Network {
    seed: u64,
    delay_min: Duration,
    delay_mean_ns: f64,
    tail_prob: f64,
    tail_max_ns: u64,
    loss_prob: f64,
    dup_prob: f64,
    reorder: bool,
    capacity: u32,
    links: BTreeMap<(Peer, Peer), Link>,
    /// The active cut, if any.
    pub cut: Option<Cut>,
}

impl Network {
    /// The network of a run.
    pub fn new(seed: u64, o: &Options) -> Self {
        Network {
            seed,
            delay_min: Duration::from_micros(o.delay_min_us),
            delay_mean_ns: o.delay_mean_us as f64 * 1_000.0,
            tail_prob: o.delay_tail_prob,
            tail_max_ns: o.delay_tail_max_ms * 1_000_000,
            loss_prob: o.loss_prob,
            dup_prob: o.dup_prob,
            reorder: o.reorder,
            capacity: o.link_capacity,
            links: BTreeMap::new(),
            cut: None,
        }
    }

    /// The liveness phase: links stop losing messages at random (delays,
    /// duplication and reordering stay). Under steady loss a healed cluster can
    /// still stall for seconds at a time (a lost follower fetch waits for its
    /// deadline), which says nothing about recovery. Links that keep order also
    /// stop drawing tail delays: there a delayed message holds back every later
    /// one, a clog that recurs every few dozen messages on a busy link (seed
    /// 1002286: 4% tails of up to 498 ms kept the follower links stalled most of
    /// the time, and a partition's HW moved one record a second), and clogs end
    /// at the heal.
    pub fn stop_random_loss(&mut self) {
        self.loss_prob = 0.0;
        if !self.reorder {
            self.tail_prob = 0.0;
        }
    }

    /// Decides the fate of a message sent now.
    pub fn send(&mut self, now: Instant, from: Peer, to: Peer) -> Fate {
        if self.is_cut(from, to) {
            return Fate::Dropped(Drop::Partition);
        }
        let loss_prob = self.loss_prob;
        if loss_prob > 0.0 && self.link(from, to).rng.random_bool(loss_prob) {
            return Fate::Dropped(Drop::Loss);
        }
        let at = self.arrival(now, from, to);
        let Some(at) = at else { return Fate::Dropped(Drop::Capacity) };
        let may_dup = !matches!(from, Peer::Client(_));
        let dup_prob = self.dup_prob;
        let dup = if may_dup && dup_prob > 0.0 && self.link(from, to).rng.random_bool(dup_prob) {
            self.arrival(now, from, to)
        } else {
            None
        };
        Fate::Deliver { at, dup }
    }

    /// The link `from -> to`, with its own stream of the seed.
    fn link(&mut self, from: Peer, to: Peer) -> &mut Link {
        let seed = self.seed;
        self.links.entry((from, to)).or_insert_with(|| Link {
            rng: Seed(seed).indexed_stream("network", link_index(from, to)),
            in_flight: 0,
            last_arrival: Instant::ZERO,
            clogged_until: Instant::ZERO,
        })
    }

    fn arrival(&mut self, now: Instant, from: Peer, to: Peer) -> Option<Instant> {
        let (delay_min, mean, tail_prob, tail_max, capacity, reorder) = (
            self.delay_min.as_nanos(),
            self.delay_mean_ns,
            self.tail_prob,
            self.tail_max_ns,
            self.capacity,
            self.reorder,
        );
        let link = self.link(from, to);
        let mut delay = delay_min + exp_sample(&mut link.rng, mean);
        if tail_prob > 0.0 && link.rng.random_bool(tail_prob) {
            delay += link.rng.random_range(0..=tail_max);
        }
        if link.in_flight >= capacity {
            return None;
        }
        link.in_flight += 1;
        let mut at = now + Duration::from_nanos(delay);
        if !reorder {
            at = at.max(link.last_arrival);
        }
        at = at.max(link.clogged_until);
        link.last_arrival = link.last_arrival.max(at);
        Some(at)
    }

    /// A message on `from -> to` arrived (or was found undeliverable); frees its slot.
    /// Returns false if the link is cut now, so the message must be dropped.
    pub fn arrive(&mut self, from: Peer, to: Peer) -> bool {
        if let Some(link) = self.links.get_mut(&(from, to)) {
            link.in_flight = link.in_flight.saturating_sub(1);
        }
        !self.is_cut(from, to)
    }

    /// True if the active cut blocks `from -> to`.
    pub fn is_cut(&self, from: Peer, to: Peer) -> bool {
        self.cut.as_ref().is_some_and(|c| c.blocks(from, to))
    }

    /// Holds every message sent on `from -> to` until `until`.
    pub fn clog(&mut self, from: Peer, to: Peer, until: Instant) {
        let link = self.link(from, to);
        link.clogged_until = link.clogged_until.max(until);
    }

    /// Whether no link is clogged at `now` (between nodes or with clients).
    pub fn unclogged(&self, now: Instant) -> bool {
        self.links.values().all(|l| l.clogged_until <= now)
    }

    /// Lifts every clog (the liveness phase).
    pub fn unclog_all(&mut self, now: Instant) {
        for link in self.links.values_mut() {
            link.clogged_until = link.clogged_until.min(now);
        }
    }
}

/// A link's index among the seed's `network` streams: the two endpoints, each as
/// its id with a bit for clients.
fn link_index(from: Peer, to: Peer) -> u64 {
    let end = |p: Peer| match p {
        Peer::Node(n) => u64::from(n.0),
        Peer::Client(c) => (1 << 31) | (c.0 & 0x7fff_ffff),
    };
    (end(from) << 32) | end(to)
}

/// An exponential sample with the given mean, in whole nanoseconds.
pub fn exp_sample(rng: &mut Rng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    (-u.ln() * mean) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use mq_core::{ClientId, NodeId};

    #[test]
    fn cuts_block_one_or_both_directions() {
        let (n, c) = (Peer::Node(NodeId(1)), Peer::Client(ClientId(1)));
        let side: BTreeSet<Peer> = [n].into_iter().collect();
        let sym = Cut { side: side.clone(), one_way: false };
        assert!(sym.blocks(n, c) && sym.blocks(c, n));
        let asym = Cut { side, one_way: true };
        assert!(asym.blocks(n, c) && !asym.blocks(c, n));
    }

    #[test]
    fn without_reordering_a_link_is_fifo() {
        let mut o = Options::draw(1);
        o.reorder = false;
        o.loss_prob = 0.0;
        o.link_capacity = 10_000;
        let mut net = Network::new(1, &o);
        let (a, b) = (Peer::Node(NodeId(1)), Peer::Client(ClientId(1)));
        let mut last = Instant::ZERO;
        for i in 0..1_000 {
            if let Fate::Deliver { at, .. } = net.send(Instant::from_nanos(i * 10), a, b) {
                assert!(at >= last);
                last = at;
            }
        }
    }
}
