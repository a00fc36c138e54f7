//! A progress bar for long fetches, shown only on an interactive terminal.

use std::io::IsTerminal;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use sluice_source::Progress;

use crate::logging::LogFormat;

struct Bar(ProgressBar);

impl Progress for Bar {
    fn start(&self, what: &str, total: Option<u64>) {
        self.0.reset();
        self.0.set_message(what.to_owned());
        match total {
            Some(n) => {
                self.0.set_length(n);
                self.0.set_style(
                    ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
            }
            None => self.0.set_style(ProgressStyle::default_spinner()),
        }
        self.0
            .enable_steady_tick(std::time::Duration::from_millis(120));
    }

    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// A progress reporter when stderr is a terminal and logs are plain text; otherwise none.
pub fn for_terminal(format: LogFormat) -> Option<Arc<dyn Progress>> {
    (format == LogFormat::Plain && std::io::stderr().is_terminal())
        .then(|| Arc::new(Bar(ProgressBar::new_spinner())) as Arc<dyn Progress>)
}
