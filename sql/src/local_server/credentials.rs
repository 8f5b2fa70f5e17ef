//! The passwords of the embedded server's users, generated at its first
//! start and kept in `DIR/credentials`, readable by the owner only.
//!
//! The file holds one `USER PASSWORD` line per user (`#` starts a comment):
//! the writer codestats connects as ([`WRITER_USER`]) and the read-only
//! analyst ([`ANALYST_USER`]). `users.xml` gets only their SHA-256 hashes.
//! A file that group or others may read or write is refused: whoever could
//! read it could write to the store.

use super::ANALYST_USER;
use crate::{
    error::{Error, Result},
    secret::Secret,
};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::{
    fs,
    io::{ErrorKind, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

/// The user codestats itself connects to the embedded server as (schema,
/// accounts, pulses). The embedded server has no `default` user.
pub const WRITER_USER: &str = "codestats";
/// Random bytes per generated password (shown as 64 hex digits).
pub const PASSWORD_BYTES: usize = 32;
/// Permission bits of the credentials file and `users.xml`: owner only.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// A ClickHouse user and its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user: String,
    /// Never logged.
    pub password: Secret,
}

impl Account {
    fn generate(user: &str) -> Self {
        let mut bytes = [0u8; PASSWORD_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self {
            user: user.to_owned(),
            password: Secret::new(hex::encode(bytes)),
        }
    }

    /// What `users.xml` keeps instead of the password.
    pub fn password_sha256_hex(&self) -> String {
        hex::encode(Sha256::digest(self.password.expose().as_bytes()))
    }
}

/// Every user of the embedded server, each with its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// [`WRITER_USER`]: what `serve` and the admin commands connect as.
    pub writer: Account,
    /// [`ANALYST_USER`]: what `codestats sql` connects as.
    pub analyst: Account,
}

impl Credentials {
    fn generate() -> Self {
        Self {
            writer: Account::generate(WRITER_USER),
            analyst: Account::generate(ANALYST_USER),
        }
    }

    /// Reads `path`, refusing a file that group or others may access.
    pub fn load(path: &Path) -> Result<Self> {
        check_private(path)?;
        let text = fs::read_to_string(path)?;
        Self::parse(&text).map_err(|what| {
            Error::LocalServer(format!(
                "{}: {what}; delete it to generate new passwords",
                path.display()
            ))
        })
    }

    /// Reads `path`, or creates it with new passwords when it does not
    /// exist yet. The answer's `bool` is true when it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool)> {
        match fs::symlink_metadata(path) {
            Ok(_) => return Ok((Self::load(path)?, false)),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let credentials = Self::generate();
        // Written in full to a private file first, then linked into place:
        // the name never shows a partial or world-readable file, and of two
        // processes creating it at once, the first wins and the second reads it.
        let tmp = write_private_tmp(path, &credentials.to_text())?;
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                tracing::info!(path = %path.display(), "generated the local clickhouse passwords");
                Ok((credentials, true))
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok((Self::load(path)?, false)),
            Err(e) => Err(e.into()),
        }
    }

    fn to_text(&self) -> String {
        format!(
            "# Passwords of the local ClickHouse's users, one `USER PASSWORD` per line.\n\
             # Owner only (chmod 600): codestats refuses to start otherwise.\n\
             {} {}\n{} {}\n",
            self.writer.user,
            self.writer.password.expose(),
            self.analyst.user,
            self.analyst.password.expose(),
        )
    }

    fn parse(text: &str) -> Result<Self, String> {
        let mut accounts = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(
                |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                    [user, password] if !password.is_empty() => Ok(Account {
                        user: user.to_owned(),
                        password: Secret::new(password),
                    }),
                    _ => Err("a line is not `USER PASSWORD`".to_owned()),
                },
            )
            .collect::<Result<Vec<_>, _>>()?;
        let mut take = |user: &str| {
            accounts
                .iter()
                .position(|a| a.user == user)
                .map(|i| accounts.swap_remove(i))
                .ok_or_else(|| format!("no password for user {user}"))
        };
        Ok(Self {
            writer: take(WRITER_USER)?,
            analyst: take(ANALYST_USER)?,
        })
    }
}

/// Refuses `path` unless it is a regular file that neither group nor others
/// may read or write.
pub(super) fn check_private(path: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.file_type().is_file() {
        return Err(Error::LocalServer(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::LocalServer(format!(
            "{} is accessible by group or others (mode {mode:03o}); \
             it holds the clickhouse passwords: run `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

/// Writes `contents` to a new owner-only file beside `path` (created with
/// mode 0600, so it is never readable by others) and returns its path.
fn write_private_tmp(path: &Path, contents: &str) -> Result<std::path::PathBuf> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.{:016x}.tmp", rand::rng().next_u64()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE_MODE)
        .open(&tmp)?;
    let written = file
        .write_all(contents.as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e.into());
    }
    Ok(tmp)
}

/// Replaces `path` with `contents` in one rename, as an owner-only file.
pub(super) fn write_private(path: &Path, contents: &str) -> Result<()> {
    let tmp = write_private_tmp(path, contents)?;
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_owner_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        let (created, new) = Credentials::load_or_create(&path).unwrap();
        assert!(new);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(created.writer.user, WRITER_USER);
        assert_eq!(created.analyst.user, ANALYST_USER);
        assert_eq!(created.writer.password.expose().len(), 2 * PASSWORD_BYTES);
        assert_ne!(created.writer.password, created.analyst.password);
        let (again, new) = Credentials::load_or_create(&path).unwrap();
        assert!(!new);
        assert_eq!(again, created);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn refused_when_others_may_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        Credentials::load_or_create(&path).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = Credentials::load_or_create(&path).unwrap_err().to_string();
            assert!(err.contains("chmod 600"), "{mode:o}: {err}");
        }
    }

    #[test]
    fn parse_needs_both_users() {
        let ok = "# c\ncodestats aa\n\nanalyst bb\n";
        let c = Credentials::parse(ok).unwrap();
        assert_eq!(c.writer.password.expose(), "aa");
        assert_eq!(c.analyst.password.expose(), "bb");
        assert!(Credentials::parse("codestats aa\n").is_err());
        assert!(Credentials::parse("codestats\nanalyst bb\n").is_err());
        assert!(Credentials::parse("codestats a b\nanalyst bb\n").is_err());
    }

    #[test]
    fn the_hash_is_sha256_of_the_password() {
        let a = Account {
            user: "u".into(),
            password: Secret::new("abc"),
        };
        assert_eq!(
            a.password_sha256_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
