//! One place that sets up `tracing`: human-readable lines on stderr,
//! filtered by `RUST_LOG` (default `info` for `serve`, `warn` for one-shot
//! commands, `debug` with `-v`).

use tracing_subscriber::EnvFilter;

pub fn init(verbose: bool, long_running: bool) {
    let default = match (verbose, long_running) {
        (true, _) => "debug",
        (false, true) => "info",
        (false, false) => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
