//! A handle on codestats' ClickHouse database.

use crate::{config::ClickHouseConfig, error::Result, names};
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

impl Db {
    /// A handle on `config.database` at `url` (the configured URL, or the
    /// local server's). Nothing is sent until the first query.
    pub fn new(url: &str, config: &ClickHouseConfig) -> Result<Self> {
        names::validate_database(&config.database)?;
        // 18.16 knows only `RowBinary`: no schema validation on inserts.
        let mut server = Client::default()
            .with_url(url)
            .with_user(&config.user)
            .with_validation(false);
        if !config.password.is_empty() {
            server = server.with_password(config.password.expose());
        }
        Ok(Self {
            client: server.clone().with_database(&config.database),
            server,
            database: config.database.clone(),
            url: url.to_owned(),
        })
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
