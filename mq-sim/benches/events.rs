//! Simulator speed (DESIGN.md section 11, issue 10): simulated events per second
//! and seeds per minute, for clusters of 1, 3 and 5 nodes, on one core.
//!
//! `cargo bench -p mq-sim`. Seeds draw their cluster size like every other option,
//! so the bench walks seeds from 0 and keeps, for each size, the first
//! `MQ_SIM_BENCH_SEEDS` (default 8) whose drawn cluster has that many nodes: the
//! workloads and faults are the campaign's, not a special bench workload. A plain
//! `harness = false` bench: it times whole seeds with the wall clock, which is fine
//! here because the clock only measures, it never drives a run.

use mq_sim::options::Options;
use mq_sim::{run_seed, SimConfig};

/// CPU seconds this process has used (user + system, from `/proc/self/stat`; Linux
/// only, `None` elsewhere). Reported beside wall time because the machine may be
/// shared: CPU time counts only this bench's own work.
fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th
    // and 13th of them, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

#[allow(clippy::disallowed_methods)] // measuring wall time is this bench's purpose
fn main() {
    let per_size: usize = std::env::var("MQ_SIM_BENCH_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    println!("bench events: {per_size} seeds per cluster size, one core, seeds drawn from 0 upwards");
    for nodes in [1u32, 3, 5] {
        let seeds: Vec<u64> = (0u64..).filter(|&s| Options::draw(s).cluster_size == nodes).take(per_size).collect();
        let started = std::time::Instant::now();
        let cpu_start = cpu_secs();
        let (mut events, mut sim_nanos) = (0u64, 0u64);
        for &seed in &seeds {
            let r = run_seed(&SimConfig::new(seed));
            assert!(r.passed(), "seed {seed} failed: {:?}", r.violation);
            events += r.events;
            sim_nanos += r.sim_nanos;
        }
        let wall = started.elapsed().as_secs_f64();
        let cpu = match (cpu_start, cpu_secs()) {
            (Some(a), Some(b)) if b > a => format!(
                " cpu_secs={:.2} events_per_cpu_sec={:.0} seeds_per_cpu_min={:.1}",
                b - a,
                events as f64 / (b - a),
                seeds.len() as f64 * 60.0 / (b - a)
            ),
            _ => String::new(),
        };
        println!(
            "nodes={nodes} seeds={} first={} last={} events={events} sim_secs={:.1} wall_secs={wall:.2} \
             events_per_sec={:.0} seeds_per_min={:.1}{cpu}",
            seeds.len(),
            seeds[0],
            seeds[seeds.len() - 1],
            sim_nanos as f64 / 1e9,
            events as f64 / wall,
            seeds.len() as f64 * 60.0 / wall,
        );
    }
}
