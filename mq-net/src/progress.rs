//! Progress bars for long CLI commands (`mq produce` reading a large stdin, `mq
//! consume`). A bar draws on stderr only when a person watches: stderr is a
//! terminal, and stdout is not one the command prints records to (a bar redrawn
//! between printed records would garble them). Otherwise it is hidden and the
//! command's output is byte for byte what scripts expect.

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use std::io::IsTerminal as _;
use std::time::Duration;

/// How often a bar redraws on its own (rate and elapsed time move while idle).
const TICK: Duration = Duration::from_millis(200);

/// Whether to draw: a terminal on stderr, and no records printed to a terminal.
pub fn wanted(stderr_is_terminal: bool, stdout_is_terminal: bool, prints_records: bool) -> bool {
    stderr_is_terminal && !(stdout_is_terminal && prints_records)
}

/// A bar counting `what` (for example "records acknowledged"), up to `total` when
/// known; hidden unless [`wanted`] for this process's stdout and stderr.
pub fn bar(total: Option<u64>, what: &str, prints_records: bool) -> ProgressBar {
    if !wanted(std::io::stderr().is_terminal(), std::io::stdout().is_terminal(), prints_records) {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(n) => (ProgressBar::new(n), format!("{{bar:40}} {{pos}}/{{len}} {what} ({{rate}}) {{msg}} [{{elapsed}}]")),
        None => (ProgressBar::new_spinner(), format!("{{spinner}} {{pos}} {what} ({{rate}}) {{msg}} [{{elapsed}}]")),
    };
    let style = ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()).with_key(
        "rate",
        |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0}/s", s.per_sec());
        },
    );
    bar.set_style(style);
    bar.enable_steady_tick(TICK);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_draws_only_for_a_person_and_never_over_printed_records() {
        // (stderr terminal, stdout terminal, prints records) -> draws
        assert!(wanted(true, false, true), "records piped away, bar on the terminal");
        assert!(wanted(true, true, false), "nothing printed to stdout");
        assert!(!wanted(true, true, true), "records on the terminal: no bar between them");
        assert!(!wanted(false, false, false), "stderr captured by a script");
        assert!(!wanted(false, true, false));
    }
}
