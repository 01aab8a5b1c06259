//! The audit's progress bar on stderr (indicatif), or nothing when it is off.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// The progress bar on stderr, or nothing.
pub(super) struct Progress(Option<ProgressBar>);

impl Progress {
    pub(super) fn new(enabled: bool) -> Self {
        Self(enabled.then(|| {
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        }))
    }

    /// A step without a known length.
    pub(super) fn step(&self, what: &str) {
        if let Some(bar) = &self.0 {
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(format!("checking {what}"));
        }
    }

    /// Reading `total` Kafka records.
    pub(super) fn records(&self, total: u64) {
        if let Some(bar) = &self.0 {
            bar.set_style(
                ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} records {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message("reading topics");
            bar.set_length(total);
            bar.set_position(0);
        }
    }

    pub(super) fn read(&self, done: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(done);
        }
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
