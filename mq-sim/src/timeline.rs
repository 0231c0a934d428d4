//! The HTML timeline of one run (`mq-sim replay --seed S --timeline FILE.html`,
//! docs/simulator.md "Timeline"): a self-contained page (inline CSS, JS and SVG; it
//! loads nothing from the network) that draws the trace as a space-time diagram.
//! Time flows downwards; there is one lane per node and per client; messages are
//! arrows from the sender's lane at send time to the receiver's lane at arrival;
//! faults, cuts and leader changes are marks; the violation and the operations it
//! names are highlighted.
//!
//! [`Timeline::build`] turns the kept trace events (see `trace.rs`: the events and
//! the `send` notes the simulator adds for each message it schedules) into lanes,
//! arrows, marks and operations; [`Timeline::html`] writes the page, whose script
//! draws only a window of time at a time (long runs have hundreds of thousands of
//! messages).

use crate::trace::{Actor, TraceEvent};
use crate::Report;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;

/// A page embeds at most this many arrows, the latest ones (marks and operations
/// are always all there); the page says how many it left out.
pub const MAX_ARROWS: usize = 400_000;

/// Arrow and mark labels are cut to this many characters.
const MAX_LABEL: usize = 160;

/// What became of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// It arrived (at a live node or a client).
    Delivered,
    /// The network dropped it when it was sent (loss, partition or a full link).
    Lost,
    /// A partition cut it while in flight.
    Cut,
    /// It reached a crashed node.
    Down,
    /// The run ended before it arrived.
    InFlight,
}

/// Which protocol a message belongs to (a filter of the page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A client request or its answer (produce, fetch, metadata, admin).
    Client,
    /// Replica fetches and their data.
    Replication,
    /// Raft and the controller (metadata fetches, controller requests).
    Controller,
    /// Group requests and dead letters.
    Group,
}

/// One message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrow {
    /// Sent, in microseconds of simulated time.
    pub sent_us: u64,
    /// Arrived (or was dropped at arrival); equal to `sent_us` when lost at send.
    pub arrived_us: u64,
    /// Sender lane.
    pub from: usize,
    /// Receiver lane.
    pub to: usize,
    /// What became of it.
    pub fate: Fate,
    /// Its protocol.
    pub class: Class,
    /// The topic-partition it is about, an index into [`Timeline::tps`].
    pub tp: Option<usize>,
    /// The trace's summary of the message.
    pub label: String,
}

/// A kind of mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkKind {
    /// A node crashed; the mark lasts until it restarted (or the run ended).
    Crash,
    /// A node restarted from its durable state.
    Restart,
    /// A node paused until the mark's end.
    Pause,
    /// A link between the lane and `lanes[0]` clogged until the mark's end.
    Clog,
    /// A node's clock stepped.
    ClockStep,
    /// A network partition cut `lanes` off (one way or both) until it healed.
    Partition,
    /// A node became leader of a partition.
    Leader,
    /// A node became the controller (Raft) leader.
    Controller,
    /// A leader's ISR changed.
    Isr,
    /// A follower truncated a diverging tail.
    Truncate,
    /// A group member crashed, left or replaced another.
    Member,
    /// The liveness phase started (faults stop, the cluster heals).
    Liveness,
    /// The last event: the end of the run or the violation.
    End,
    /// Where the stall a liveness violation names began (see [`Focus`]).
    Stall,
}

impl MarkKind {
    fn name(self) -> &'static str {
        match self {
            MarkKind::Crash => "crash",
            MarkKind::Restart => "restart",
            MarkKind::Pause => "pause",
            MarkKind::Clog => "clog",
            MarkKind::ClockStep => "clock-step",
            MarkKind::Partition => "partition",
            MarkKind::Leader => "leader",
            MarkKind::Controller => "controller",
            MarkKind::Isr => "isr",
            MarkKind::Truncate => "truncate",
            MarkKind::Member => "member",
            MarkKind::Liveness => "liveness",
            MarkKind::End => "end",
            MarkKind::Stall => "stall",
        }
    }
}

/// A fault, a leader change or a phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    /// What it is.
    pub kind: MarkKind,
    /// When it started, in microseconds.
    pub start_us: u64,
    /// When it ended (equal to `start_us` for an instant).
    pub end_us: u64,
    /// The lane it happened on (`None` for the whole cluster).
    pub lane: Option<usize>,
    /// Other lanes involved: the far end of a clog, the cut-off side of a partition.
    pub lanes: Vec<usize>,
    /// The topic-partition it is about.
    pub tp: Option<usize>,
    /// The trace's words for it.
    pub label: String,
    /// Named by the violation.
    pub highlight: bool,
}

/// How a produce operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpOutcome {
    /// Still open at the end.
    Open,
    /// Acknowledged.
    Ok,
    /// Failed definitely.
    Failed,
    /// Unknown outcome.
    Indefinite,
}

/// One produce operation of the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// Its id (`op N` in the trace and in violations).
    pub id: u64,
    /// Its client's lane.
    pub lane: usize,
    /// Invoked, in microseconds.
    pub invoked_us: u64,
    /// Ended (or the end of the run when open).
    pub done_us: u64,
    /// How.
    pub outcome: OpOutcome,
    /// Its topic-partition.
    pub tp: Option<usize>,
    /// The invoke line and the outcome line.
    pub label: String,
    /// Named by the violation.
    pub highlight: bool,
}

/// The window a liveness violation's page opens on: from where the stall began
/// (the last progress of the stuck record, consumer or partition) on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Focus {
    /// Where the stall began, in microseconds.
    pub stall_us: u64,
    /// The window the page opens on.
    pub from_us: u64,
    /// Its end.
    pub to_us: u64,
    /// The stuck member's or consumer's lane, if the violation names one.
    pub lane: Option<usize>,
    /// What the stall is, in words.
    pub label: String,
}

/// How much of the run after the stall began the page shows first.
const FOCUS_AFTER_US: u64 = 2_000_000;
/// And before it.
const FOCUS_BEFORE_US: u64 = 200_000;

/// A run as lanes, arrows, marks and operations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeline {
    /// The seed.
    pub seed: u64,
    /// `PASS seed=S` or the report's FAIL line.
    pub verdict: String,
    /// The broken invariant, if any.
    pub invariant: Option<String>,
    /// Lane names: `n1`.. then `c1`.., each client with the role its first request
    /// or operation shows (`c3 producer`).
    pub lanes: Vec<String>,
    /// Every topic-partition seen, sorted.
    pub tps: Vec<String>,
    /// The messages (at most [`MAX_ARROWS`], the latest).
    pub arrows: Vec<Arrow>,
    /// Messages left out by [`MAX_ARROWS`].
    pub arrows_left_out: usize,
    /// Faults, leader changes and phases.
    pub marks: Vec<Mark>,
    /// Produce operations.
    pub ops: Vec<Op>,
    /// The time of the last event, in microseconds.
    pub end_us: u64,
    /// Operations the violation names.
    pub highlight_ops: Vec<u64>,
    /// Topic-partitions the violation names (indexes into `tps`).
    pub highlight_tps: Vec<usize>,
    /// Lanes the violation names.
    pub highlight_lanes: Vec<usize>,
    /// Trace events read.
    pub events: usize,
    /// Group member ids and the client lane that held each (a member id is the
    /// coordinator's, `epoch << 32 | n`; the client learns it when it joins).
    pub members: Vec<(u64, usize)>,
    /// For a liveness violation: where its stall began and the window to open on.
    pub focus: Option<Focus>,
}

/// Trace kinds whose `a` is the peer's code.
const PEER_IN_A: [&str; 6] = ["recv", "drop", "drop-cut", "drop-down", "clog", "close"];

fn us(e: &TraceEvent) -> u64 {
    e.at.as_nanos() / 1_000
}

/// The actor a `peer_code` of the simulator names (`1 << 32 | node`, `2 << 32 | client`).
fn actor_of_code(code: u64) -> Option<Actor> {
    match code >> 32 {
        1 => Some(Actor::Node(code as u32)),
        2 => Some(Actor::Client(code & 0xffff_ffff)),
        _ => None,
    }
}

fn lane_key(a: Actor) -> (u8, u64) {
    match a {
        Actor::Sim => (0, 0),
        Actor::Node(n) => (1, u64::from(n)),
        Actor::Client(c) => (2, c),
    }
}

fn cut(s: &str) -> String {
    if s.chars().count() <= MAX_LABEL {
        s.to_owned()
    } else {
        s.chars().take(MAX_LABEL).chain("…".chars()).collect()
    }
}

/// Topic-partitions a trace text names: `t1/2` (Display) or
/// `TopicPartition { topic: "t1", partition: PartitionId(2) }` (Debug).
pub fn tps_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("topic: \"") {
        rest = &rest[i + 8..];
        let Some(end) = rest.find('"') else { break };
        let topic = &rest[..end];
        let after = &rest[end..];
        if let Some(p) = after.find("partition: PartitionId(") {
            let digits: String = after[p + 23..].chars().take_while(char::is_ascii_digit).collect();
            if !digits.is_empty() && p < 8 {
                out.push(format!("{topic}/{digits}"));
            }
        }
    }
    let bytes = text.as_bytes();
    let name_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-';
    for (i, &c) in bytes.iter().enumerate() {
        if c != b'/' || i == 0 {
            continue;
        }
        let mut s = i;
        while s > 0 && name_char(bytes[s - 1]) {
            s -= 1;
        }
        let mut e = i + 1;
        while e < bytes.len() && bytes[e].is_ascii_digit() {
            e += 1;
        }
        let starts_well = s < i && (bytes[s].is_ascii_alphabetic() || bytes[s] == b'_');
        if starts_well && e > i + 1 && (e == bytes.len() || !name_char(bytes[e]) || bytes[e] == b'.') {
            out.push(text[s..e].to_owned());
        }
    }
    out
}

/// Numbers following `word ` in `text` (`op 12` gives 12 for `op`).
fn numbers_after(text: &str, word: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices(word) {
        // A word that starts like an identifier must start one (`n1`, not `in1`).
        let word_start = !word.starts_with(|c: char| c.is_ascii_alphanumeric());
        let before_ok = word_start || i == 0 || !text.as_bytes()[i - 1].is_ascii_alphanumeric();
        let digits: String = text[i + word.len()..].chars().take_while(char::is_ascii_digit).collect();
        if before_ok && !digits.is_empty() {
            if let Ok(n) = digits.parse() {
                out.push(n);
            }
        }
    }
    out
}

fn class_of(summary: &str) -> Class {
    let first = summary.split_whitespace().next().unwrap_or("");
    if first.starts_with("raft") || first.starts_with("metadata-") || first.starts_with("controller") {
        Class::Controller
    } else if first.starts_with("replica-") {
        Class::Replication
    } else if first.starts_with("dead-letter") {
        Class::Group
    } else if first.starts_with("req#") {
        // Requests the trace summarises by their Debug form are the group ones.
        let what = summary.split_whitespace().nth(1).unwrap_or("");
        if what.starts_with(|c: char| c.is_ascii_uppercase()) {
            Class::Group
        } else {
            Class::Client
        }
    } else {
        Class::Client
    }
}

/// The role a client's first request shows.
fn role_of(summary: &str) -> Option<&'static str> {
    let what = summary.split_whitespace().nth(1)?;
    Some(match what {
        "produce" | "init-producer" => "producer",
        "fetch" | "list-offsets" => "consumer",
        "create-topic" | "delete-topic" | "list-topics" => "admin",
        w if w.starts_with(|c: char| c.is_ascii_uppercase()) => "member",
        _ => return None,
    })
}

struct Builder {
    lanes: BTreeMap<(u8, u64), usize>,
    tps: BTreeMap<String, usize>,
}

impl Builder {
    fn lane(&self, a: Actor) -> Option<usize> {
        self.lanes.get(&lane_key(a)).copied()
    }

    fn tp(&self, text: &str) -> Option<usize> {
        tps_in(text).first().and_then(|t| self.tps.get(t).copied())
    }
}

impl Timeline {
    /// The timeline of `report`'s run from its kept trace `events` (in trace order).
    pub fn build(report: &Report, events: &[TraceEvent]) -> Timeline {
        // Lanes and topic-partitions first, so indexes follow a sorted order.
        let mut lane_keys: BTreeSet<(u8, u64)> = BTreeSet::new();
        let mut tp_names: BTreeSet<String> = BTreeSet::new();
        for e in events {
            if e.actor != Actor::Sim {
                lane_keys.insert(lane_key(e.actor));
            }
            if e.note || PEER_IN_A.contains(&e.kind) {
                if let Some(peer) = actor_of_code(e.a) {
                    lane_keys.insert(lane_key(peer));
                }
            }
            tp_names.extend(tps_in(&e.detail));
        }
        // Member ids by the client that was told it (its Joined answer, its own
        // group requests and group events name it first).
        let mut member_keys: BTreeMap<u64, (u8, u64)> = BTreeMap::new();
        for e in events.iter().filter(|e| !e.note && matches!(e.actor, Actor::Client(_))) {
            if matches!(e.kind, "recv" | "group-event") {
                if let Some(&m) = numbers_after(&e.detail, "member: MemberId(").first() {
                    member_keys.entry(m).or_insert(lane_key(e.actor));
                }
            }
        }
        let violation_text = report.violation.as_ref().map(|v| v.what.clone()).unwrap_or_default();
        tp_names.extend(tps_in(&violation_text));
        let b = Builder {
            lanes: lane_keys.iter().enumerate().map(|(i, k)| (*k, i)).collect(),
            tps: tp_names.iter().enumerate().map(|(i, t)| (t.clone(), i)).collect(),
        };
        let members: BTreeMap<u64, usize> =
            member_keys.iter().filter_map(|(m, k)| b.lanes.get(k).map(|l| (*m, *l))).collect();
        let lane_names: Vec<String> =
            lane_keys.iter().map(|&(kind, n)| if kind == 1 { format!("n{n}") } else { format!("c{n}") }).collect();
        let name = |text: &str| name_members(text, &members, &lane_names);
        let mut roles: Vec<Option<&'static str>> = vec![None; lane_keys.len()];
        let end_us = events.last().map_or(0, us);

        let mut arrows: Vec<Arrow> = Vec::new();
        // Sends waiting for their arrival: (from, to, arrival time) -> arrow indexes.
        let mut pending: HashMap<(usize, usize, u64), VecDeque<usize>> = HashMap::new();
        // Client requests by (client lane, node lane, correlation), for the answer's
        // partition and class.
        let mut requests: HashMap<(usize, usize, u64), (Option<usize>, Class)> = HashMap::new();
        let mut marks: Vec<Mark> = Vec::new();
        let mut ops: Vec<Op> = Vec::new();
        let mut op_index: HashMap<u64, usize> = HashMap::new();
        let mut down: HashMap<usize, usize> = HashMap::new(); // node lane -> open crash mark
        let mut open_cut: Option<(u64, usize)> = None; // (cut id, mark)

        for e in events {
            let t = us(e);
            // The lane of a node's or client's event (`None` for the simulator's),
            // and of the peer its `a` names, for the kinds that name one.
            let here = b.lane(e.actor);
            let peer = actor_of_code(e.a).and_then(|p| b.lane(p));
            let mark = |kind: MarkKind, lane: Option<usize>, label: String| Mark {
                kind,
                start_us: t,
                end_us: t,
                lane,
                lanes: Vec::new(),
                tp: None,
                label: cut(&name(&label)),
                highlight: false,
            };
            match (e.note, e.kind, here) {
                (true, "send", Some(from)) => {
                    let Some(to) = peer else { continue };
                    let arrival = e.b / 1_000;
                    pending.entry((from, to, e.b)).or_default().push_back(arrows.len());
                    arrows.push(Arrow {
                        sent_us: t,
                        arrived_us: arrival,
                        from,
                        to,
                        fate: Fate::InFlight,
                        class: Class::Client,
                        tp: None,
                        label: String::new(),
                    });
                }
                (true, _, _) => {}
                (false, "recv" | "drop-cut" | "drop-down" | "drop", Some(me)) => {
                    let Some(peer) = peer else { continue };
                    let at_send = e.kind == "drop";
                    let (from, to) = if at_send { (me, peer) } else { (peer, me) };
                    // "from n2 <summary>" / "to n2 <summary> (Loss)"
                    let summary = e.detail.split_once(' ').map_or("", |(_, rest)| rest);
                    let summary = summary.split_once(' ').map_or("", |(_, rest)| rest);
                    let found = if at_send {
                        None
                    } else {
                        pending.get_mut(&(from, to, e.at.as_nanos())).and_then(VecDeque::pop_front)
                    };
                    let i = found.unwrap_or_else(|| {
                        arrows.push(Arrow {
                            sent_us: t,
                            arrived_us: t,
                            from,
                            to,
                            fate: Fate::Lost,
                            class: Class::Client,
                            tp: None,
                            label: String::new(),
                        });
                        arrows.len() - 1
                    });
                    let correlation = e.b & !(1 << 63);
                    let response = e.b >> 63 == 1;
                    let (mut tp, mut class) = (b.tp(summary), class_of(summary));
                    if e.b != 0 && !response {
                        requests.insert((from, to, correlation), (tp, class));
                        if roles[from].is_none() {
                            roles[from] = role_of(summary);
                        }
                    } else if response {
                        if let Some((req_tp, req_class)) = requests.get(&(to, from, correlation)) {
                            tp = tp.or(*req_tp);
                            class = *req_class;
                        }
                    }
                    let a = &mut arrows[i];
                    a.fate = match e.kind {
                        "recv" => Fate::Delivered,
                        "drop-cut" => Fate::Cut,
                        "drop-down" => Fate::Down,
                        _ => Fate::Lost,
                    };
                    a.tp = tp;
                    a.class = class;
                    a.label = cut(&name(summary));
                }
                (false, "crash", Some(lane)) => {
                    down.insert(lane, marks.len());
                    let mut m = mark(MarkKind::Crash, Some(lane), format!("crash: {}", e.detail));
                    m.end_us = end_us;
                    marks.push(m);
                }
                (false, "restart", Some(lane)) => {
                    if let Some(m) = down.remove(&lane) {
                        marks[m].end_us = t;
                    }
                    marks.push(mark(MarkKind::Restart, Some(lane), format!("restart: {}", e.detail)));
                }
                (false, "pause", Some(_)) => {
                    let mut m = mark(MarkKind::Pause, here, format!("pause {}", e.detail));
                    m.end_us = e.a / 1_000;
                    marks.push(m);
                }
                (false, "clog", Some(_)) => {
                    let mut m = mark(MarkKind::Clog, here, format!("clog {}", e.detail));
                    m.end_us = e.b / 1_000;
                    m.lanes = peer.into_iter().collect();
                    marks.push(m);
                }
                (false, "clock-step", Some(_)) => {
                    marks.push(mark(MarkKind::ClockStep, here, format!("clock step {}", e.detail)))
                }
                (false, "partition" | "isolate-new-controller", None) => {
                    close_cut(&mut marks, &mut open_cut, t);
                    let mut m = mark(MarkKind::Partition, None, format!("{} #{}: {}", e.kind, e.a, e.detail));
                    m.end_us = end_us;
                    m.lanes = side_lanes(&e.detail, &b);
                    open_cut = Some((e.a, marks.len()));
                    marks.push(m);
                }
                (false, "heal-cut", None) if open_cut.is_some_and(|(id, _)| id == e.a) => {
                    close_cut(&mut marks, &mut open_cut, t);
                }
                (false, "liveness", None) => {
                    close_cut(&mut marks, &mut open_cut, t);
                    marks.push(mark(MarkKind::Liveness, None, format!("liveness phase: {}", e.detail)));
                }
                (false, "event", Some(lane)) => {
                    let kind = match e.detail.split([' ', '{']).next().unwrap_or("") {
                        "BecameLeader" => MarkKind::Leader,
                        "ControllerLeader" => MarkKind::Controller,
                        "IsrChanged" => MarkKind::Isr,
                        "Truncated" => MarkKind::Truncate,
                        _ => continue,
                    };
                    let mut m = mark(kind, Some(lane), e.detail.clone());
                    m.tp = b.tp(&e.detail);
                    m.highlight = kind == MarkKind::Leader && e.detail.contains("unclean: true");
                    marks.push(m);
                }
                (false, "member-crash" | "member-leave" | "member-replaces", Some(_)) => {
                    let label = if e.kind == "member-replaces" {
                        format!("member-replaces c{}", e.a)
                    } else {
                        e.kind.to_owned()
                    };
                    marks.push(mark(MarkKind::Member, here, label));
                }
                (false, "invoke", Some(lane)) => {
                    roles[lane].get_or_insert("producer");
                    op_index.insert(e.a, ops.len());
                    ops.push(Op {
                        id: e.a,
                        lane,
                        invoked_us: t,
                        done_us: end_us,
                        outcome: OpOutcome::Open,
                        tp: b.tp(&e.detail),
                        label: cut(&format!("{} invoke {}", e.at, e.detail)),
                        highlight: false,
                    });
                }
                (false, "ok" | "fail" | "indefinite", Some(_)) => {
                    if let Some(&i) = op_index.get(&e.a) {
                        let op = &mut ops[i];
                        op.done_us = t;
                        op.outcome = match e.kind {
                            "ok" => OpOutcome::Ok,
                            "fail" => OpOutcome::Failed,
                            _ => OpOutcome::Indefinite,
                        };
                        op.label = cut(&format!("{}; {} {} {}", op.label, e.at, e.kind, e.detail));
                    }
                }
                _ => {}
            }
        }
        for a in arrows.iter_mut().filter(|a| a.fate == Fate::InFlight) {
            a.arrived_us = a.arrived_us.min(end_us);
        }

        // What the violation names: operations (`op 12`, or the value `v12.0` of
        // record 0 of op 12), topic-partitions, nodes and clients.
        let mut highlight_ops: BTreeSet<u64> = numbers_after(&violation_text, "op ").into_iter().collect();
        highlight_ops.extend(numbers_after(&violation_text, "\"v"));
        let highlight_tps: Vec<usize> = tps_in(&violation_text)
            .iter()
            .filter_map(|t| b.tps.get(t).copied())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut highlight_lanes: BTreeSet<usize> = BTreeSet::new();
        for n in numbers_after(&violation_text, "n") {
            if let Some(&l) = b.lanes.get(&(1, n)) {
                highlight_lanes.insert(l);
            }
        }
        for c in numbers_after(&violation_text, "c") {
            if let Some(&l) = b.lanes.get(&(2, c)) {
                highlight_lanes.insert(l);
            }
        }
        for m in
            numbers_after(&violation_text, "member ").into_iter().chain(numbers_after(&violation_text, "MemberId("))
        {
            if let Some(&l) = members.get(&m) {
                highlight_lanes.insert(l);
            }
        }
        let focus = report
            .violation
            .as_ref()
            .filter(|v| v.liveness)
            .map(|v| focus_of(v.invariant, &violation_text, events, &marks, &b, &members, end_us));
        if let Some(l) = focus.as_ref().and_then(|f| f.lane) {
            highlight_lanes.insert(l);
        }
        // Marks about a named partition, on a named lane if the violation names any.
        for m in marks.iter_mut() {
            let tp = m.tp.is_some_and(|tp| highlight_tps.contains(&tp));
            let lane = highlight_lanes.is_empty() || m.lane.is_some_and(|l| highlight_lanes.contains(&l));
            m.highlight |= tp && lane;
        }
        for op in ops.iter_mut().filter(|o| highlight_ops.contains(&o.id)) {
            op.highlight = true;
            highlight_lanes.insert(op.lane);
        }
        let verdict = report.fail_line().map_or_else(|| format!("PASS seed={}", report.seed), |l| name(&l));
        if let Some(f) = &focus {
            marks.push(Mark {
                kind: MarkKind::Stall,
                start_us: f.stall_us,
                end_us: f.stall_us,
                lane: f.lane,
                lanes: Vec::new(),
                tp: highlight_tps.first().copied(),
                label: cut(&name(&f.label)),
                highlight: true,
            });
        }
        marks.push(Mark {
            kind: MarkKind::End,
            start_us: end_us,
            end_us,
            lane: None,
            lanes: highlight_lanes.iter().copied().collect(),
            tp: None,
            label: cut(&verdict),
            highlight: report.violation.is_some(),
        });

        let arrows_left_out = arrows.len().saturating_sub(MAX_ARROWS);
        if arrows_left_out > 0 {
            // Keep the latest sends: a violation is at the end.
            arrows.sort_by_key(|a| a.sent_us);
            arrows.drain(..arrows_left_out);
        }
        let focus = focus.map(|f| Focus { label: name(&f.label), ..f });
        let mut lanes = lane_names.clone();
        for ((name, role), (kind, _)) in lanes.iter_mut().zip(&roles).zip(&lane_keys) {
            if let (Some(role), 2) = (role, kind) {
                name.push(' ');
                name.push_str(role);
            }
        }
        Timeline {
            seed: report.seed,
            verdict,
            invariant: report.violation.as_ref().map(|v| v.invariant.to_owned()),
            lanes,
            tps: tp_names.into_iter().collect(),
            arrows,
            arrows_left_out,
            marks,
            ops,
            end_us,
            highlight_ops: highlight_ops.into_iter().collect(),
            highlight_tps,
            highlight_lanes: highlight_lanes.into_iter().collect(),
            events: events.len(),
            members: members.iter().map(|(m, l)| (*m, *l)).collect(),
            focus,
        }
    }

    /// The page: the template with this timeline's data as one JS object literal.
    pub fn html(&self) -> String {
        let mut d = String::with_capacity(64 * (self.arrows.len() + self.marks.len() + self.ops.len()) + 4096);
        d.push('{');
        let _ = write!(d, "\"seed\":{},\"verdict\":{},", self.seed, js_str(&self.verdict));
        let _ = write!(d, "\"invariant\":{},", self.invariant.as_deref().map_or("null".to_owned(), js_str));
        let _ = write!(d, "\"end\":{},\"events\":{},\"leftOut\":{},", self.end_us, self.events, self.arrows_left_out);
        d.push_str("\"lanes\":");
        push_strs(&mut d, self.lanes.iter().map(String::as_str));
        d.push_str(",\"tps\":");
        push_strs(&mut d, self.tps.iter().map(String::as_str));
        let _ = write!(
            d,
            ",\"hlOps\":{:?},\"hlTps\":{:?},\"hlLanes\":{:?}",
            self.highlight_ops, self.highlight_tps, self.highlight_lanes
        );
        match &self.focus {
            Some(f) => {
                let _ = write!(
                    d,
                    ",\"focus\":{{\"stall\":{},\"from\":{},\"to\":{},\"lane\":{},\"label\":{}}}",
                    f.stall_us,
                    f.from_us,
                    f.to_us,
                    f.lane.map_or(-1, |l| l as i64),
                    js_str(&f.label)
                );
            }
            None => d.push_str(",\"focus\":null"),
        }
        // Arrows: sent, arrived, from, to, fate, class, tp (-1 for none), flat.
        d.push_str(",\"a\":[");
        for (i, a) in self.arrows.iter().enumerate() {
            if i > 0 {
                d.push(',');
            }
            let _ = write!(
                d,
                "{},{},{},{},{},{},{}",
                a.sent_us,
                a.arrived_us,
                a.from,
                a.to,
                a.fate as u8,
                a.class as u8,
                a.tp.map_or(-1, |t| t as i64)
            );
        }
        d.push_str("],\"al\":");
        push_strs(&mut d, self.arrows.iter().map(|a| a.label.as_str()));
        // Marks: [kind, start, end, lane (-1), [lanes], tp (-1), label, highlight].
        d.push_str(",\"k\":[");
        for (i, m) in self.marks.iter().enumerate() {
            if i > 0 {
                d.push(',');
            }
            let _ = write!(
                d,
                "[{},{},{},{},{:?},{},{},{}]",
                js_str(m.kind.name()),
                m.start_us,
                m.end_us,
                m.lane.map_or(-1, |l| l as i64),
                m.lanes,
                m.tp.map_or(-1, |t| t as i64),
                js_str(&m.label),
                u8::from(m.highlight)
            );
        }
        // Operations: invoked, done, lane, outcome, tp (-1), id, highlight, flat.
        d.push_str("],\"o\":[");
        for (i, o) in self.ops.iter().enumerate() {
            if i > 0 {
                d.push(',');
            }
            let _ = write!(
                d,
                "{},{},{},{},{},{},{}",
                o.invoked_us,
                o.done_us,
                o.lane,
                o.outcome as u8,
                o.tp.map_or(-1, |t| t as i64),
                o.id,
                u8::from(o.highlight)
            );
        }
        d.push_str("],\"ol\":");
        push_strs(&mut d, self.ops.iter().map(|o| o.label.as_str()));
        d.push('}');
        let title = html_escape(&format!("mq-sim seed {}: {}", self.seed, self.verdict));
        TEMPLATE.replace("__TITLE__", &title).replace("/*__DATA__*/null", &d)
    }
}

/// `text` with each group member id it names followed by the lane of the client
/// that held it: `member 4294967297 (c7)`, `MemberId(4294967297 c7)`.
fn name_members(text: &str, members: &BTreeMap<u64, usize>, lanes: &[String]) -> String {
    if members.is_empty() || !(text.contains("member ") || text.contains("MemberId(")) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    loop {
        let next = [("member ", false), ("MemberId(", true), ("owner is ", false)]
            .iter()
            .filter_map(|(w, paren)| rest.find(w).map(|i| (i, w.len(), *paren)))
            .min();
        let Some((i, len, paren)) = next else { break };
        let start = i + len;
        let digits: String = rest[start..].chars().take_while(char::is_ascii_digit).collect();
        out.push_str(&rest[..start + digits.len()]);
        rest = &rest[start + digits.len()..];
        let lane = digits.parse::<u64>().ok().and_then(|m| members.get(&m)).and_then(|l| lanes.get(*l));
        if let Some(lane) = lane {
            if paren {
                let _ = write!(out, " {lane}");
            } else {
                let _ = write!(out, " ({lane})");
            }
        }
    }
    out.push_str(rest);
    out
}

/// Where the stall of liveness violation `invariant` (saying `what`) began, and
/// the window to open on: for `group_completion`, the last delivery of the
/// first record left unacknowledged (its member is the stuck lane), or when it
/// was never delivered, when it was committed; for a consumer that did not catch
/// up, when its partition's high watermark first passed where it stopped; for a
/// partition without a leader, its last leader election; otherwise the start of
/// the liveness phase (the heal).
fn focus_of(
    invariant: &str,
    what: &str,
    events: &[TraceEvent],
    marks: &[Mark],
    b: &Builder,
    members: &BTreeMap<u64, usize>,
    end_us: u64,
) -> Focus {
    let tp = tps_in(what).into_iter().next();
    // The first trace event at which `tp`'s high watermark passed `offset`.
    let committed_past = |tp: &str, offset: u64| {
        let prefix = format!("hw {tp} -> ");
        events.iter().find(|e| {
            e.kind == "event"
                && e.detail
                    .strip_prefix(&prefix)
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|hw| hw > offset)
        })
    };
    let found: Option<(u64, Option<usize>, String)> = match (invariant, &tp) {
        ("group_completion", Some(tp)) => {
            let group = what.strip_prefix("group ").and_then(|r| r.split(':').next()).unwrap_or("");
            let first = numbers_after(what, "first ").first().copied();
            first.and_then(|offset| {
                let (topic, partition) = tp.rsplit_once('/')?;
                let needle = format!(
                    "group: \"{group}\", member: MemberId("
                );
                let at = format!(
                    "tp: TopicPartition {{ topic: \"{topic}\", partition: PartitionId({partition}) }}, offset: Offset({offset}),"
                );
                let last = events.iter().rev().find(|e| {
                    e.kind == "event"
                        && e.detail.starts_with("GroupDelivered")
                        && e.detail.contains(&needle)
                        && e.detail.contains(&at)
                });
                match last {
                    Some(e) => {
                        let member = numbers_after(&e.detail, "member: MemberId(").first().copied();
                        let delivery = numbers_after(&e.detail, "delivery: ").first().copied().unwrap_or(0);
                        let node = match e.actor {
                            Actor::Node(n) => format!("n{n}"),
                            _ => "a node".to_owned(),
                        };
                        let lane = member.and_then(|m| members.get(&m).copied());
                        let whom = member.map_or(String::new(), |m| format!(" to member {m}"));
                        let label = format!(
                            "stall: {tp}@{offset} (first record of {group} never acked) last delivered (delivery {delivery}) by {node}{whom} at {:.6} s",
                            us(e) as f64 / 1e6
                        );
                        Some((us(e), lane, label))
                    }
                    None => committed_past(tp, offset).map(|e| {
                        let label = format!(
                            "stall: {tp}@{offset} (first record of {group} never acked) committed at {:.6} s and never delivered",
                            us(e) as f64 / 1e6
                        );
                        (us(e), None, label)
                    }),
                }
            })
        }
        ("liveness_consumers_caught_up", Some(tp)) => {
            let client = numbers_after(what, "c").first().copied();
            let upto = numbers_after(what, "up to ").first().copied();
            upto.and_then(|p| committed_past(tp, p)).map(|e| {
                let lane = client.and_then(|c| b.lanes.get(&(2, c)).copied());
                let who = client.map_or("the consumer".to_owned(), |c| format!("c{c}"));
                let label = format!(
                    "stall: {tp} committed past {} at {:.6} s; {who} never read on",
                    upto.unwrap_or(0),
                    us(e) as f64 / 1e6
                );
                (us(e), lane, label)
            })
        }
        ("liveness_leaders", Some(tp)) => {
            let tpi = b.tps.get(tp).copied();
            marks.iter().rev().find(|m| m.kind == MarkKind::Leader && m.tp.is_some() && m.tp == tpi).map(|m| {
                let label = format!("stall: the last leader election of {tp}, {:.6} s", m.start_us as f64 / 1e6);
                (m.start_us, m.lane, label)
            })
        }
        _ => None,
    };
    let (stall_us, lane, label) = found.unwrap_or_else(|| {
        let heal = marks.iter().find(|m| m.kind == MarkKind::Liveness).map_or(0, |m| m.start_us);
        (heal, None, format!("stall: from the heal (the liveness phase), {:.6} s", heal as f64 / 1e6))
    });
    Focus {
        stall_us,
        from_us: stall_us.saturating_sub(FOCUS_BEFORE_US),
        to_us: end_us.min(stall_us + FOCUS_AFTER_US).max(stall_us + 1),
        lane,
        label,
    }
}

/// Ends the open cut, if any, at `at`.
fn close_cut(marks: &mut [Mark], open: &mut Option<(u64, usize)>, at: u64) {
    if let Some((_, m)) = open.take() {
        marks[m].end_us = at;
    }
}

/// The lanes a cut's Debug text (`Cut { side: {Node(NodeId(1)), ..} ..}`) or an
/// isolated node's name (`n3`) puts on the cut-off side.
fn side_lanes(detail: &str, b: &Builder) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    for n in numbers_after(detail, "Node(NodeId(") {
        out.extend(b.lanes.get(&(1, n)));
    }
    for c in numbers_after(detail, "Client(ClientId(") {
        out.extend(b.lanes.get(&(2, c)));
    }
    if out.is_empty() {
        for n in numbers_after(detail, "n") {
            out.extend(b.lanes.get(&(1, n)));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// A JS string literal that is also safe inside `<script>`: `<`, `>` and `&` are
/// escaped, so no `</script>` can close the element early.
fn js_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn push_strs<'a>(d: &mut String, items: impl Iterator<Item = &'a str>) {
    d.push('[');
    for (i, s) in items.enumerate() {
        if i > 0 {
            d.push(',');
        }
        d.push_str(&js_str(s));
    }
    d.push(']');
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The page; `timeline.html` documents its controls.
const TEMPLATE: &str = include_str!("timeline.html");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_partitions_are_found_in_display_and_debug_forms() {
        assert_eq!(tps_in("req#3 produce t1/2 acks=All records=2"), vec!["t1/2"]);
        assert_eq!(tps_in("fetch t0/0@17"), vec!["t0/0"]);
        assert_eq!(tps_in("dead-letter#4 to t0.dlq/1"), vec!["t0.dlq/1"]);
        assert_eq!(
            tps_in("BecameLeader { tp: TopicPartition { topic: \"__groups\", partition: PartitionId(5) }, x }"),
            vec!["__groups/5"]
        );
        assert!(tps_in("torn at cursor.rs:558 after 1/2 of 3").is_empty());
    }

    #[test]
    fn violations_name_ops_by_id_and_by_value() {
        let what = "op 1166 was acked with b\"v1166.0\" at t0/0@2877 but the committed record is b\"v1179.0\"";
        assert_eq!(numbers_after(what, "op "), vec![1166]);
        assert_eq!(numbers_after(what, "\"v"), vec![1166, 1179]);
    }

    #[test]
    fn script_text_cannot_close_the_script_element() {
        assert_eq!(js_str("</script>\"x\""), "\"\\u003c/script\\u003e\\\"x\\\"\"");
    }
}
