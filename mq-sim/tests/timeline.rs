//! The HTML timeline (`mq-sim replay --timeline`, src/timeline.rs) of a small seed,
//! checked without a browser: the page is well-formed, self-contained (nothing to
//! fetch), and carries the run's lanes, arrows and marks. `scripts/timeline_check.sh`
//! renders it in headless Chromium.
//!
//! `MQ_SIM_TIMELINE_SEED=S` checks seed `S` instead (use `--release` for big ones).

use mq_sim::timeline::{Fate, MarkKind, Timeline};
use mq_sim::{run_seed, SimConfig};

/// A two-node seed with a crash, clogs and about 30 000 events: a few seconds in a
/// debug build.
const SMALL_SEED: u64 = 17;

fn timeline_of(seed: u64) -> (Timeline, String, mq_sim::Report) {
    let mut report = run_seed(&SimConfig { keep_trace: true, ..SimConfig::new(seed) });
    let events = report.trace_events.take().expect("kept with keep_trace");
    let lines = report.trace.as_ref().expect("kept with keep_trace");
    assert_eq!(
        events.iter().filter(|e| !e.note).count(),
        lines.len(),
        "the text has one line per event; notes are left out"
    );
    let t = Timeline::build(&report, &events);
    let html = t.html();
    (t, html, report)
}

/// Element names the page may leave open (HTML void elements).
const VOID: [&str; 6] = ["meta", "input", "br", "img", "link", "hr"];

/// Checks that tags nest properly outside `<script>` and `<style>` (whose text is
/// not markup) and returns the element names opened, in order.
fn check_nesting(html: &str) -> Vec<String> {
    let mut stack: Vec<String> = Vec::new();
    let mut opened = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i..];
        if rest.starts_with("<!--") {
            let end = rest.find("-->").expect("a comment is closed");
            rest = &rest[end + 3..];
            continue;
        }
        if rest.starts_with("<!") {
            let end = rest.find('>').expect("the doctype is closed");
            rest = &rest[end + 1..];
            continue;
        }
        let end = rest.find('>').expect("every tag is closed");
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(open, name.trim(), "</{name}> closes <{open}>");
            continue;
        }
        let name: String = tag.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        assert!(!name.is_empty(), "a tag without a name: <{tag}>");
        opened.push(name.clone());
        if tag.ends_with('/') || VOID.contains(&name.as_str()) {
            continue;
        }
        if name == "script" || name == "style" {
            let close = format!("</{name}>");
            let end = rest.find(&close).unwrap_or_else(|| panic!("<{name}> is closed"));
            rest = &rest[end + close.len()..];
            continue;
        }
        stack.push(name);
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    opened
}

#[test]
fn the_timeline_page_is_well_formed_self_contained_and_draws_the_run() {
    let seed = std::env::var("MQ_SIM_TIMELINE_SEED").map_or(SMALL_SEED, |s| s.parse().expect("a seed"));
    let (t, html, report) = timeline_of(seed);

    // Self-contained: no URL to fetch, no external script, style or font.
    for needle in ["http://", "https://", "src=", "href=", "@import", "url("] {
        assert!(!html.contains(needle), "the page refers to something outside it: {needle}");
    }
    assert!(html.starts_with("<!DOCTYPE html>"));
    let opened = check_nesting(&html);
    for element in ["html", "head", "title", "style", "body", "svg", "select", "script"] {
        assert!(opened.iter().any(|o| o == element), "no <{element}>");
    }
    assert_eq!(html.matches("<script>").count(), 1, "one inline script");
    assert!(html.contains("id=\"status\""), "the element the script reports to");

    // One lane per node and per client, nodes first.
    let nodes = report.options.cluster_size as usize;
    for n in 1..=nodes {
        assert_eq!(t.lanes[n - 1].split(' ').next(), Some(format!("n{n}").as_str()), "lanes: {:?}", t.lanes);
    }
    assert!(t.lanes.len() > nodes && t.lanes[nodes].starts_with('c'), "client lanes: {:?}", t.lanes);
    assert!(t.lanes.iter().any(|l| l.ends_with("producer")), "a producer lane: {:?}", t.lanes);
    for lane in &t.lanes {
        assert!(html.contains(&format!("\"{lane}\"")), "lane {lane} is in the page's data");
    }

    // Every message the run sent is an arrow from its sender to its receiver,
    // forward in time; delivered ones match the trace's arrivals one to one.
    assert_eq!(t.arrows_left_out, 0);
    let delivered = t.arrows.iter().filter(|a| a.fate == Fate::Delivered).count() as u64;
    let recvs = report.trace.as_ref().map_or(0, |l| l.iter().filter(|l| l.split(' ').nth(2) == Some("recv")).count());
    assert_eq!(delivered, recvs as u64, "one delivered arrow per recv line");
    assert!(delivered > 100, "a run with messages");
    assert_eq!(
        t.arrows.len() as u64,
        report.counters.messages + report.counters.duplicated,
        "every send (and every duplicate) is an arrow"
    );
    for a in &t.arrows {
        assert!(a.sent_us <= a.arrived_us && a.from != a.to, "{a:?}");
        assert!(a.fate == Fate::InFlight || !a.label.is_empty(), "{a:?}");
    }
    assert!(t.arrows.iter().any(|a| a.tp.is_some()), "arrows carry their partition");
    assert!(!t.tps.is_empty());
    for tp in &t.tps {
        assert!(html.contains(&format!("\"{tp}\"")), "partition {tp} is in the filter's data");
    }

    // Marks: as many crashes as the counters say, leader changes, the end.
    let count = |k: MarkKind| t.marks.iter().filter(|m| m.kind == k).count() as u64;
    assert_eq!(count(MarkKind::Crash), report.counters.crashes);
    assert_eq!(count(MarkKind::Restart), report.counters.restarts);
    assert_eq!(count(MarkKind::Clog), report.counters.clogs);
    assert_eq!(count(MarkKind::Leader), report.counters.leader_elections);
    assert_eq!(count(MarkKind::Liveness), 1);
    assert_eq!(count(MarkKind::End), 1);
    assert_eq!(t.ops.len() as u64, report.counters.ops_invoked);
}

#[test]
fn a_violation_is_the_banner_and_its_operations_are_highlighted() {
    // A made-up violation over a real run: the page names it and marks the op.
    let mut report = run_seed(&SimConfig { keep_trace: true, ..SimConfig::new(SMALL_SEED) });
    let events = report.trace_events.take().expect("kept");
    let t = Timeline::build(&report, &events);
    let (op, tp) = (t.ops[3].id, t.tps[t.ops[3].tp.expect("an op has a partition")].clone());
    report.violation = Some(mq_sim::Violation {
        invariant: "acked_at_offset",
        what: format!("op {op} was acked with b\"v{op}.0\" at {tp}@7 but the committed record is b\"v1.0\""),
        liveness: false,
    });
    let t = Timeline::build(&report, &events);
    assert!(t.verdict.starts_with(&format!("FAIL seed={SMALL_SEED} invariant=acked_at_offset: op {op}")));
    assert!(t.highlight_ops.contains(&op));
    assert!(t.ops.iter().any(|o| o.id == op && o.highlight));
    assert_eq!(t.highlight_tps.len(), 1);
    assert_eq!(t.tps[t.highlight_tps[0]], tp);
    let end = t.marks.iter().find(|m| m.kind == MarkKind::End).expect("an end mark");
    assert!(end.highlight && end.start_us == t.end_us);
    let html = t.html();
    assert!(html.contains("acked_at_offset"));
    // Both ops the violation names: `op N` and the writer of the committed `v1.0`.
    let list = html.split("\"hlOps\":[").nth(1).and_then(|r| r.split(']').next()).expect("hlOps in the data");
    let ids: Vec<u64> = list.split(',').map(|n| n.trim().parse().expect("an op id")).collect();
    assert!(ids.contains(&op) && ids.contains(&1), "{ids:?}");
}

/// A seed with a consumer group (about 39 000 events).
const GROUP_SEED: u64 = 9;

/// The number after `word` in `text`.
fn number_after(text: &str, word: &str) -> u64 {
    let i = text.find(word).unwrap_or_else(|| panic!("{word} in {text}")) + word.len();
    text[i..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().expect("a number")
}

#[test]
fn a_group_stall_opens_where_its_record_was_last_delivered_and_names_the_member_by_lane() {
    let mut report = run_seed(&SimConfig { keep_trace: true, ..SimConfig::new(GROUP_SEED) });
    let events = report.trace_events.take().expect("kept");
    assert!(Timeline::build(&report, &events).focus.is_none(), "a passing run opens on its last second");
    // The last delivery of the run: made up to be the first record a group never
    // acknowledged.
    let last = events
        .iter()
        .rev()
        .find(|e| e.kind == "event" && e.detail.starts_with("GroupDelivered"))
        .expect("the seed has a group that delivers");
    let group = last.detail.split('"').nth(1).expect("the group's name").to_owned();
    let member = number_after(&last.detail, "member: MemberId(");
    let offset = number_after(&last.detail, "offset: Offset(");
    let tp = mq_sim::timeline::tps_in(&last.detail)[0].clone();
    let stall_us = last.at.as_nanos() / 1_000;
    report.violation = Some(mq_sim::Violation {
        invariant: "group_completion",
        what: format!("group {group}: 1 committed records of {tp} matching its filter are neither acked nor dead-lettered after healing (first {offset}; acked prefix 0)"),
        liveness: true,
    });
    let t = Timeline::build(&report, &events);

    // Member ids are decoded into the lane of the client that held them.
    let lane = t.members.iter().find(|(m, _)| *m == member).map(|(_, l)| *l).expect("the member's client lane");
    let lane_name = t.lanes[lane].split(' ').next().expect("a name").to_owned();
    assert!(t.lanes[lane].ends_with("member"), "{:?}", t.lanes);
    assert!(
        t.arrows.iter().any(|a| a.label.contains(&format!("MemberId({member} {lane_name})"))),
        "labels name the member's lane"
    );

    // The stall: where the record was last delivered, on the member's lane.
    let focus = t.focus.clone().expect("a liveness violation has a focus");
    assert_eq!(focus.stall_us, stall_us);
    assert_eq!(focus.lane, Some(lane));
    assert!(
        focus.label.contains(&format!("{tp}@{offset}")) && focus.label.contains(&format!("({lane_name})")),
        "{}",
        focus.label
    );
    assert!(focus.from_us < focus.stall_us && focus.stall_us < focus.to_us && focus.to_us <= t.end_us);
    assert!(t.highlight_lanes.contains(&lane));
    let stall = t.marks.iter().find(|m| m.kind == MarkKind::Stall).expect("a stall mark");
    assert!(stall.highlight && stall.start_us == stall_us && stall.lane == Some(lane));
    let html = t.html();
    assert!(
        html.contains(&format!("\"focus\":{{\"stall\":{stall_us},\"from\":{},", focus.from_us)),
        "the page opens there"
    );
    assert!(html.contains("show the stall"));

    // A safety violation naming the member: its lane is red and the banner names it.
    report.violation = Some(mq_sim::Violation {
        invariant: "group_ack_final",
        what: format!("n1 handed {tp}@{offset} to member {member} of group {group} at 1s (delivery 2); its ack was confirmed earlier"),
        liveness: false,
    });
    let t = Timeline::build(&report, &events);
    assert!(t.focus.is_none());
    assert!(t.highlight_lanes.contains(&lane));
    assert!(t.verdict.contains(&format!("member {member} ({lane_name})")), "{}", t.verdict);

    // Another liveness violation opens from the heal.
    report.violation = Some(mq_sim::Violation {
        invariant: "liveness_progress",
        what: "no produce with acks=all succeeded in the 1000 ms after the core was healed (0 with acks=1)".into(),
        liveness: true,
    });
    let t = Timeline::build(&report, &events);
    let heal = t.marks.iter().find(|m| m.kind == MarkKind::Liveness).expect("the heal").start_us;
    assert_eq!(t.focus.expect("a focus").stall_us, heal);
}
