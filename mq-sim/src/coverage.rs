//! The campaign's coverage report (issue 9; docs/simulator.md "Coverage marks"):
//! for every mark of [`mq_core::Mark`], how many seeds hit it and how often in
//! all, so a campaign shows which rare protocol branches it reached and which it
//! never did.

use mq_core::{Coverage, Mark};

/// Coverage marks summed over the seeds of a campaign.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoverageTally {
    seeds: u64,
    /// Per mark (in [`Mark::ALL`] order), the seeds that hit it.
    seeds_hit: Vec<u64>,
    hits: Coverage,
}

impl CoverageTally {
    /// Adds one seed's marks.
    pub fn add_seed(&mut self, seed: &Coverage) {
        if self.seeds_hit.is_empty() {
            self.seeds_hit = vec![0; Mark::ALL.len()];
        }
        self.seeds += 1;
        for (i, (_, n)) in seed.iter().enumerate() {
            self.seeds_hit[i] += u64::from(n > 0);
        }
        self.hits.add(seed);
    }

    /// Seeds added.
    pub fn seeds(&self) -> u64 {
        self.seeds
    }

    /// Seeds that hit `mark`.
    pub fn seeds_hitting(&self, mark: Mark) -> u64 {
        let i = Mark::ALL.iter().position(|m| *m == mark).expect("every mark is in Mark::ALL");
        self.seeds_hit.get(i).copied().unwrap_or(0)
    }

    /// Hits of `mark` over all seeds.
    pub fn hits(&self, mark: Mark) -> u64 {
        self.hits.get(mark)
    }

    /// Marks no seed hit, in report order.
    pub fn not_reached(&self) -> Vec<Mark> {
        Mark::ALL.iter().copied().filter(|m| self.hits(*m) == 0).collect()
    }

    /// The report's lines: a header, one line per mark, and the marks not
    /// reached (`none` when every mark was).
    pub fn lines(&self) -> Vec<String> {
        let missing = self.not_reached();
        let mut lines = vec![format!(
            "coverage: seeds={} marks={} reached={}",
            self.seeds,
            Mark::ALL.len(),
            Mark::ALL.len() - missing.len()
        )];
        let width = Mark::ALL.iter().map(|m| m.name().len()).max().unwrap_or(0);
        for m in Mark::ALL {
            lines.push(format!(
                "coverage: {:<width$} seeds={} hits={}",
                m.name(),
                self.seeds_hitting(*m),
                self.hits(*m)
            ));
        }
        let names: Vec<&str> = missing.iter().map(|m| m.name()).collect();
        let list = if names.is_empty() { "none".to_string() } else { names.join(" ") };
        lines.push(format!("coverage: not reached: {list}"));
        lines
    }
}

/// The line `replay` prints: every mark one seed hit, `name=count`.
pub fn seed_line(seed: &Coverage) -> String {
    if seed.is_empty() {
        "coverage: none".to_string()
    } else {
        format!("coverage: {seed}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_counts_seeds_and_hits_and_lists_what_no_seed_reached() {
        let mut a = Coverage::default();
        a.hit(Mark::IsrShrink);
        a.hit(Mark::IsrShrink);
        let mut b = Coverage::default();
        b.hit(Mark::IsrShrink);
        b.hit(Mark::DeadLettered);
        let mut t = CoverageTally::default();
        t.add_seed(&a);
        t.add_seed(&b);
        t.add_seed(&Coverage::default());
        assert_eq!(t.seeds(), 3);
        assert_eq!((t.seeds_hitting(Mark::IsrShrink), t.hits(Mark::IsrShrink)), (2, 3));
        assert_eq!((t.seeds_hitting(Mark::DeadLettered), t.hits(Mark::DeadLettered)), (1, 1));
        assert!(!t.not_reached().contains(&Mark::IsrShrink));
        assert!(t.not_reached().contains(&Mark::IsrExpand));
        let lines = t.lines();
        assert_eq!(lines[0], format!("coverage: seeds=3 marks={} reached=2", Mark::ALL.len()));
        assert_eq!(lines.len(), Mark::ALL.len() + 2);
        let last = lines.last().expect("lines");
        assert!(last.starts_with("coverage: not reached: ") && last.contains("isr.expand"), "{last}");
        assert!(!last.contains("isr.shrink"), "{last}");
        assert!(lines.iter().any(|l| l.contains("isr.shrink") && l.ends_with("seeds=2 hits=3")), "{lines:?}");
        assert_eq!(seed_line(&b), "coverage: isr.shrink=1 delivery.dead_lettered=1");
        assert_eq!(seed_line(&Coverage::default()), "coverage: none");
    }
}
