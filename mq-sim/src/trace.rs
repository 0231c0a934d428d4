//! The trace: one line per event, with simulated time and the node or client it
//! happened on. The trace hash covers a compact binary form of every line (time,
//! actor, kind and the event's key numbers), so it is the same whether the text is
//! kept or not, and keeping text costs nothing when no one reads it.

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

/// The trace of one run.
pub struct Trace {
    hasher: Xxh3,
    lines: Option<Vec<String>>,
    count: u64,
}

impl Trace {
    /// A trace that keeps its text when `keep_text`.
    pub fn new(keep_text: bool) -> Self {
        Trace { hasher: Xxh3::new(), lines: keep_text.then(Vec::new), count: 0 }
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
        if let Some(lines) = self.lines.as_mut() {
            let d = detail();
            lines.push(if d.is_empty() {
                format!("{now} {actor} {kind}")
            } else {
                format!("{now} {actor} {kind} {d}")
            });
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

    /// The text, when kept.
    pub fn take_lines(&mut self) -> Option<Vec<String>> {
        self.lines.take()
    }
}
