//! A handle on codestats' ClickHouse database.

use crate::{
    config::{AnalystConfig, ClickHouseConfig},
    error::Result,
    names,
    secret::Secret,
};
use clickhouse::{Client, sql::Identifier};

/// A ClickHouse client bound to one database, plus one bound to none for
/// `CREATE DATABASE` and the like. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    client: Client,
    server: Client,
    database: String,
    url: String,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("url", &self.url)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// A client for `url` as `user`, bound to no database.
fn server_client(url: &str, user: &str, password: &Secret) -> Client {
    // 18.16 knows only `RowBinary`: no schema validation on inserts.
    let client = Client::default()
        .with_url(url)
        .with_user(user)
        .with_validation(false);
    if password.is_empty() {
        client
    } else {
        client.with_password(password.expose())
    }
}

impl Db {
    /// A handle on `config.database` at `url` (the configured URL, or the
    /// local server's). Nothing is sent until the first query.
    pub fn new(url: &str, config: &ClickHouseConfig) -> Result<Self> {
        Self::with_client(
            url,
            &config.database,
            server_client(url, &config.user, &config.password),
        )
    }

    fn with_client(url: &str, database: &str, server: Client) -> Result<Self> {
        names::validate_database(database)?;
        Ok(Self {
            client: server.clone().with_database(database),
            server,
            database: database.to_owned(),
            url: url.to_owned(),
        })
    }

    /// A handle on `database` at `url` as the read-only analyst: the server's
    /// profile for that user (`readonly = 1`, result-row and time limits)
    /// decides what it may do; no setting is sent that would try to change it.
    ///
    /// `wait_end_of_query=1` (the crate's `with_setting` puts it in the URL,
    /// where ClickHouse reads it as an HTTP parameter, not a setting, so
    /// `readonly = 1` allows it) makes the server buffer the whole answer: an
    /// error after the first rows, such as the row limit, then arrives as an
    /// HTTP error instead of text appended to a `200 OK` body.
    pub fn analyst(url: &str, database: &str, analyst: &AnalystConfig) -> Result<Self> {
        let server = server_client(url, &analyst.user, &analyst.password)
            .with_setting("wait_end_of_query", "1");
        Self::with_client(url, database, server)
    }

    /// The same server, another database (tests use one database each).
    pub fn with_database(&self, database: &str) -> Result<Self> {
        names::validate_database(database)?;
        Ok(Self {
            client: self.server.clone().with_database(database),
            server: self.server.clone(),
            database: database.to_owned(),
            url: self.url.clone(),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's version string, e.g. `18.16.1`.
    pub async fn version(&self) -> Result<String> {
        Ok(self
            .server
            .query("SELECT version()")
            .fetch_one::<String>()
            .await?)
    }

    pub async fn create_database(&self) -> Result<()> {
        self.server
            .query("CREATE DATABASE IF NOT EXISTS ?")
            .bind(Identifier(&self.database))
            .execute()
            .await?;
        Ok(())
    }

    pub async fn drop_database(&self) -> Result<()> {
        self.server
            .query("DROP DATABASE IF EXISTS ?")
            .bind(Identifier(&self.database))
            .execute()
            .await?;
        Ok(())
    }
}

/// `?, ?, ?` for binding `n` values into an `IN (…)` list (at least one
/// placeholder: bind a value that matches nothing when the list is empty).
pub fn placeholders(n: usize) -> String {
    vec!["?"; n.max(1)].join(", ")
}
