//! One place that sets up `tracing`: lines on stderr, human-readable or one
//! JSON object each (`--log-format json`, `CODESTATS_LOG_FORMAT=json`),
//! filtered by `RUST_LOG` (default `info` for `serve`, `warn` for one-shot
//! commands, `debug` with `-v`). Secrets never reach a log line: they are
//! `sql::secret::Secret`s, whose `Debug` and `Display` print a mask.

use crate::cli::LogFormat;
use tracing_subscriber::EnvFilter;

pub fn init(verbose: bool, long_running: bool, format: LogFormat) {
    let default = match (verbose, long_running) {
        (true, _) => "debug",
        (false, true) => "info",
        (false, false) => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}
