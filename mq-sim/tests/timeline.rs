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
