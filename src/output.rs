//! Everything a command prints on stdout goes through [`outln!`], which
//! returns the write's error instead of panicking as `println!` does: when
//! the reader has gone (`codestats users list | head`), the command stops
//! at the next line and the process ends quietly ([`is_closed_pipe`]).

use std::io::{self, Write as _};

/// Writes one line to stdout.
pub fn line(args: std::fmt::Arguments<'_>) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")
}

/// `println!` that returns an `io::Result` instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Whether `err` comes from writing to a pipe whose reader is closed: not
/// a failure of the command, so nothing to report.
pub fn is_closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
