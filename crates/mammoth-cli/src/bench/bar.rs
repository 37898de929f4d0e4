//! The progress bar `mammoth bench` draws on stderr while a benchmark runs: the phase, the
//! events done and their rate.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use mammoth_bench::Progress;

use crate::output::thousands;

/// The progress bar on stderr; hidden under --json or when stderr is not a terminal.
#[derive(Clone)]
pub struct Bar(ProgressBar);

impl Bar {
    /// A bar drawn on stderr when `visible`, else hidden.
    pub fn new(visible: bool) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self(ProgressBar::with_draw_target(None, target))
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Bar {
    fn phase(&self, label: &str, length: Option<u64>) {
        let template = match length {
            Some(_) => {
                "{spinner} {msg} [{bar:30}] {human_pos}/{human_len} events ({rate}, {eta} left)"
            }
            None => "{spinner} {msg}: {human_pos} events ({rate}, {elapsed})",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            let style = style
                .with_key(
                    "rate",
                    |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                        let _ = write!(out, "{}/s", thousands(state.per_sec() as u64));
                    },
                )
                .progress_chars("=> ");
            self.0.set_style(style);
        }
        self.0.reset();
        self.0.set_length(length.unwrap_or(0));
        if length.is_none() {
            self.0.unset_length();
        }
        self.0.set_message(label.to_owned());
        self.0.enable_steady_tick(Duration::from_millis(120));
    }

    fn advance(&self, units: u64) {
        self.0.inc(units);
    }
}
