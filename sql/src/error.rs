use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    /// Not marked as the source: the message already carries it, and a
    /// source would print it twice in `{:#}` chains.
    #[error("clickhouse: {0}")]
    ClickHouse(clickhouse::error::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("local clickhouse: {0}")]
    LocalServer(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A file or directory (of a dump) could not be read or written.
    #[error("{}: {error}", path.display())]
    File {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
}

impl From<clickhouse::error::Error> for Error {
    fn from(e: clickhouse::error::Error) -> Self {
        Error::ClickHouse(e)
    }
}

impl Error {
    /// An I/O error on `path`.
    pub fn file(path: &std::path::Path, error: std::io::Error) -> Self {
        Error::File {
            path: path.to_owned(),
            error,
        }
    }

    /// True when ClickHouse could not be reached or did not answer in time:
    /// the request may succeed if tried again later.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::ClickHouse(e) => is_transient(e),
            Error::Io(_) | Error::LocalServer(_) => true,
            _ => false,
        }
    }
}

/// Network trouble and server-side overload are worth a retry; data and
/// schema errors (a bad row, an unknown column) are not.
pub fn is_transient(e: &clickhouse::error::Error) -> bool {
    use clickhouse::error::Error as E;
    match e {
        E::Network(_) | E::TimedOut => true,
        // Code 202: too many simultaneous queries; 252: too many parts;
        // 241: memory limit; 159: timeout; 209/210: socket timeout / network error.
        E::BadResponse(msg) => [
            "Code: 202",
            "Code: 252",
            "Code: 241",
            "Code: 159",
            "Code: 209",
            "Code: 210",
        ]
        .iter()
        .any(|code| msg.contains(code)),
        _ => false,
    }
}
