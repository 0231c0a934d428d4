//! The trace: one line per event, with simulated time and the node or client it
//! happened on. The trace hash covers a compact binary form of every line (time,
//! actor, kind and the event's key numbers), so it is the same whether the text is
//! kept or not, and keeping text costs nothing when no one reads it.
//!
//! When kept, the trace holds structured [`TraceEvent`]s (the text is rendered from
//! them) plus *notes*: side information for the HTML timeline (`timeline.rs`), such
//! as a message's send, that is neither hashed, counted nor printed, so adding one
//! never changes a trace hash or the text of `replay --trace`.

use mq_core::Instant;
use xxhash_rust::xxh3::Xxh3;

/// Who an event happened on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    /// The simulator itself (phases, faults on links).
    Sim,
    /// A broker node.
    Node(u32),
    /// A client.
    Client(u64),
}

impl Actor {
    fn code(self) -> u64 {
        match self {
            Actor::Sim => 0,
            Actor::Node(n) => 1 << 32 | u64::from(n),
            Actor::Client(c) => 2 << 32 | c,
        }
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Sim => write!(f, "sim"),
            Actor::Node(n) => write!(f, "n{n}"),
            Actor::Client(c) => write!(f, "c{c}"),
        }
    }
}

/// One kept event: the arguments of [`Trace::event`] (or [`Trace::note`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// Simulated time.
    pub at: Instant,
    /// Where it happened.
    pub actor: Actor,
    /// What happened.
    pub kind: &'static str,
    /// The first key number.
    pub a: u64,
    /// The second key number.
    pub b: u64,
    /// The rest of the line.
    pub detail: String,
    /// A note: not hashed, not counted, not a line of the text.
    pub note: bool,
}

impl std::fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let TraceEvent { at, actor, kind, detail, .. } = self;
        if detail.is_empty() {
            write!(f, "{at} {actor} {kind}")
        } else {
            write!(f, "{at} {actor} {kind} {detail}")
        }
    }
}

/// The trace of one run.
pub struct Trace {
    hasher: Xxh3,
    events: Option<Vec<TraceEvent>>,
    count: u64,
}

impl Trace {
    /// A trace that keeps its text when `keep_text`.
    pub fn new(keep_text: bool) -> Self {
        Trace { hasher: Xxh3::new(), events: keep_text.then(Vec::new), count: 0 }
    }

    /// Records one event: `kind` names it, `a` and `b` are its key numbers (ids,
    /// offsets, tokens), and `detail` renders the rest of the line when text is kept.
    #[inline]
    pub fn event(
        &mut self,
        now: Instant,
        actor: Actor,
        kind: &'static str,
        a: u64,
        b: u64,
        detail: impl FnOnce() -> String,
    ) {
        let mut buf = [0u8; 40];
        buf[0..8].copy_from_slice(&now.as_nanos().to_le_bytes());
        buf[8..16].copy_from_slice(&actor.code().to_le_bytes());
        buf[16..24].copy_from_slice(&mq_core::rng::fnv1a(kind.as_bytes()).to_le_bytes());
        buf[24..32].copy_from_slice(&a.to_le_bytes());
        buf[32..40].copy_from_slice(&b.to_le_bytes());
        self.hasher.update(&buf);
        self.count += 1;
        if let Some(events) = self.events.as_mut() {
            events.push(TraceEvent { at: now, actor, kind, a, b, detail: detail(), note: false });
        }
    }

    /// Records a note for the timeline when text is kept (`kind`, `a`, `b` and
    /// `detail` as in [`Trace::event`]); it changes neither the hash, nor the count,
    /// nor the text.
    #[inline]
    pub fn note(
        &mut self,
        now: Instant,
        actor: Actor,
        kind: &'static str,
        a: u64,
        b: u64,
        detail: impl FnOnce() -> String,
    ) {
        if let Some(events) = self.events.as_mut() {
            events.push(TraceEvent { at: now, actor, kind, a, b, detail: detail(), note: true });
        }
    }

    /// The hash of every line so far.
    pub fn hash(&self) -> u64 {
        self.hasher.digest()
    }

    /// Lines recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The text, when kept: one line per event, notes left out. The events stay
    /// for [`Trace::take_events`].
    pub fn take_lines(&mut self) -> Option<Vec<String>> {
        let events = self.events.as_ref()?;
        Some(events.iter().filter(|e| !e.note).map(|e| e.to_string()).collect())
    }

    /// The events and notes, when kept.
    pub fn take_events(&mut self) -> Option<Vec<TraceEvent>> {
        self.events.take()
    }
}
