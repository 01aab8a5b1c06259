//! Capturing the in-process service's logs: the service runs on the test's single-threaded
//! runtime, so a subscriber set as that thread's default sees what it logs (the
//! process-wide one other tests use does not).

use std::io;
use std::sync::{Arc, Mutex};

use tracing::subscriber::DefaultGuard;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;

/// Everything written to it, shared with the subscriber's writer.
#[derive(Debug, Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Records everything this thread logs at `level` and above, with each span's fields
    /// when the span closes, while the returned guard lives (hold it across every await of
    /// the test: a thread-local default, not a span guard).
    pub fn start(level: LevelFilter) -> (Self, DefaultGuard) {
        let captured = Self::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_span_events(FmtSpan::CLOSE)
                .with_filter(level),
        );
        let guard = tracing::subscriber::set_default(subscriber);
        (captured, guard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("not poisoned")).into_owned()
    }
}
