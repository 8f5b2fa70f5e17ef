//! The `codestats` command: serve, migrate, build, sql and the admin commands.

mod cli;
mod cmd;
mod config;
mod exporter;
mod lock;
mod logging;
mod output;
mod store;

use clap::Parser;

/// mimalloc: the request path allocates small, short-lived objects on many
/// threads (BENCHMARKS.md, "Ingest").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    logging::init(
        cli.verbose,
        matches!(cli.command, cli::Command::Serve { .. }),
        cli.log_format,
    );
    if matches!(cli.command, cli::Command::Serve { .. })
        && let Err(e) = cmd::take_passed_socket()
    {
        eprintln!("error: {e:#}");
        return std::process::ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader of stdout has gone: it wanted no more.
        Err(e) if output::is_closed_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
