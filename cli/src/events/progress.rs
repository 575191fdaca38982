//! Progress of a pass over a range of the log, on stderr: a line rewritten in place on a
//! terminal, a plain line per tenth otherwise (logs and CI keep those readable), as
//! `keryu projections rebuild` does.

use std::io::{IsTerminal, Write};

use keryu_infra::event_store::Position;

/// Reports how far a pass over the positions `(first, end]` has come.
pub struct Progress {
    label: &'static str,
    first: Position,
    end: Position,
    terminal: bool,
    last_tenth: Option<u64>,
}

impl Progress {
    /// A report labelled `label` for a pass from after `first` up to `end`.
    pub fn new(label: &'static str, first: Position, end: Position) -> Self {
        Progress {
            label,
            first,
            end,
            terminal: std::io::stderr().is_terminal(),
            last_tenth: None,
        }
    }

    /// The pass has reached `at`, with `events` events so far.
    pub fn update(&mut self, at: Position, events: u64) {
        let done = at.0.saturating_sub(self.first.0);
        let total = self.end.0.saturating_sub(self.first.0);
        let percent = done
            .saturating_mul(100)
            .checked_div(total)
            .unwrap_or(100)
            .min(100);
        let (label, end) = (self.label, self.end);
        if self.terminal {
            eprint!("\r{label}: {percent:>3}% ({events} events, position {at} of {end})");
            let _ = std::io::stderr().flush();
        } else if self.last_tenth != Some(percent / 10) {
            self.last_tenth = Some(percent / 10);
            eprintln!("{label}: {percent}% ({events} events, position {at} of {end})");
        }
    }

    /// Ends the report with a summary line.
    pub fn finish(&self, events: u64, at: Position) {
        if self.terminal {
            eprintln!();
        }
        eprintln!("{}: {events} events, up to position {at}", self.label);
    }
}
