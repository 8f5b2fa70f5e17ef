//! Logging in to the embedded server: where its passwords and client
//! configs live, and the settings codestats connects with.

use super::{
    LocalServerConfig, PRIVATE_DIR_MODE, USERS_RELOAD_TIMEOUT,
    credentials::{self, Account, Credentials},
    users,
};
use crate::{
    config::{AnalystConfig, ClickHouseConfig},
    error::{Error, Result},
};
use std::{
    fs,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::PathBuf,
    time::{Duration, Instant},
};

impl LocalServerConfig {
    /// `DIR/credentials`: the users' passwords, owner only.
    pub fn credentials_path(&self) -> PathBuf {
        self.dir.join("credentials")
    }

    fn users_path(&self) -> PathBuf {
        self.dir.join("users.xml")
    }

    /// `DIR/client-USER.xml`: a `clickhouse-client --config-file` that logs
    /// in as `user` with its password, owner only.
    pub fn client_config_path(&self, user: &str) -> PathBuf {
        self.dir.join(format!("client-{user}.xml"))
    }

    /// The users' passwords, generated on first use. A new file comes with
    /// a new `users.xml` (a running server rereads it by itself); the client
    /// configs are rewritten. Fails when the file, or a client config beside
    /// it, may be read or written by group or others.
    pub fn credentials(&self) -> Result<Credentials> {
        self.create_dir()?;
        let (credentials, created) = Credentials::load_or_create(&self.credentials_path())?;
        if created {
            self.write_users(&credentials)?;
        }
        for account in [&credentials.writer, &credentials.analyst] {
            let client = self.client_config_path(&account.user);
            if client.exists() {
                credentials::check_private(&client)?;
            }
            credentials::write_private(&client, &users::client_xml(account, self.tcp_port))?;
        }
        Ok(credentials)
    }

    /// The credentials of a server that is already running, once it accepts
    /// them: a server started before they existed takes a few seconds to
    /// reread its `users.xml`.
    pub async fn running_credentials(&self) -> Result<Credentials> {
        let credentials = self.credentials()?;
        let started = Instant::now();
        while !accepts(self.http_port, &credentials.writer).await {
            if started.elapsed() > USERS_RELOAD_TIMEOUT {
                return Err(Error::LocalServer(format!(
                    "the clickhouse at {} refuses the password in {}",
                    self.url(),
                    self.credentials_path().display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(credentials)
    }

    /// How codestats connects to this server: as [`WRITER_USER`](super::WRITER_USER), to `database`.
    pub fn clickhouse_config(&self, database: &str) -> Result<ClickHouseConfig> {
        let writer = self.credentials()?.writer;
        Ok(ClickHouseConfig {
            url: Some(self.url()),
            user: writer.user,
            password: writer.password,
            database: database.to_owned(),
            ..Default::default()
        })
    }

    /// How `codestats sql` connects to this server: as [`ANALYST_USER`](super::ANALYST_USER).
    pub fn analyst_config(&self) -> Result<AnalystConfig> {
        let analyst = self.credentials()?.analyst;
        Ok(AnalystConfig {
            user: analyst.user,
            password: analyst.password,
        })
    }

    /// The server's folder, owner only.
    fn create_dir(&self) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(PRIVATE_DIR_MODE)
            .create(&self.dir)?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(PRIVATE_DIR_MODE))?;
        Ok(())
    }

    /// `users.xml`, owner only.
    pub(super) fn write_users(&self, credentials: &Credentials) -> Result<()> {
        credentials::write_private(&self.users_path(), &users::users_xml(credentials))
    }
}

/// Answers whether the server on loopback `port` runs a query for
/// `account` (a wrong or missing password gets an HTTP error).
async fn accepts(port: u16, account: &Account) -> bool {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        account.user,
        account.password.expose()
    ));
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(
                format!(
                    "GET /?query=SELECT%201 HTTP/1.0\r\nHost: 127.0.0.1\r\n\
                     Authorization: Basic {basic}\r\n\r\n"
                )
                .as_bytes(),
            )
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(
            answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200"),
        )
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Ok(true))
    )
}
