//! Simulator speed in simulated events per second (DESIGN.md section 11).
//! `cargo bench -p mq-sim`; `MQ_SIM_BENCH_SEEDS=N` changes the number of seeds.
//! A plain `harness = false` bench: it times whole seeds with the wall clock, which
//! is fine here because the clock only measures, it never drives a run.

use mq_sim::{run_seed, SimConfig};

#[allow(clippy::disallowed_methods)] // measuring wall time is this bench's purpose
fn main() {
    let seeds: u64 = std::env::var("MQ_SIM_BENCH_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let started = std::time::Instant::now();
    let mut events = 0u64;
    let mut sim_nanos = 0u64;
    for seed in 0..seeds {
        let r = run_seed(&SimConfig::new(seed));
        assert!(r.passed(), "seed {seed} failed: {:?}", r.violation);
        events += r.events;
        sim_nanos += r.sim_nanos;
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "bench events: seeds={seeds} events={events} sim_secs={:.1} wall_secs={wall:.3} events_per_sec={:.0} (one core)",
        sim_nanos as f64 / 1e9,
        events as f64 / wall
    );
}
