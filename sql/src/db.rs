//! A handle on codestats' ClickHouse database.

use crate::{
    cluster::{Cluster, LOCAL_SUFFIX},
    config::{AnalystConfig, ClickHouseConfig},
    error::Result,
    names,
    secret::Secret,
};
use clickhouse::{Client, sql::Identifier};
use std::{borrow::Cow, sync::Arc};

/// A ClickHouse client bound to one database, plus one bound to none for
/// `CREATE DATABASE` and the like. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    client: Client,
    server: Client,
    database: String,
    url: String,
    user: String,
    password: Secret,
    /// In cluster mode: the cluster's servers, each reached directly.
    cluster: Option<Arc<Cluster>>,
    /// A handle on one server of a cluster: table names are its local
    /// tables' (`pulses` is `pulses_local`).
    local: bool,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("url", &self.url)
            .field("database", &self.database)
            .field(
                "cluster",
                &self.cluster.as_ref().map(|c| c.name().to_owned()),
            )
            .field("local", &self.local)
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
            &config.user,
            &config.password,
        )
    }

    fn with_client(
        url: &str,
        database: &str,
        server: Client,
        user: &str,
        password: &Secret,
    ) -> Result<Self> {
        names::validate_database(database)?;
        Ok(Self {
            client: server.clone().with_database(database),
            server,
            database: database.to_owned(),
            url: url.to_owned(),
            user: user.to_owned(),
            password: password.clone(),
            cluster: None,
            local: false,
        })
    }

    /// This handle in cluster mode over cluster `name` (see
    /// [`crate::cluster`]): every query sent with the settings cluster
    /// mode needs, the cluster's servers reached directly (at `urls`, or
    /// found from `system.clusters`).
    pub async fn with_cluster(self, name: &str, urls: &[String]) -> Result<Self> {
        let cluster = Cluster::connect(&self, name, urls).await?;
        let cluster_settings = |c: Client| {
            c.with_setting("insert_distributed_sync", "1")
                .with_setting("distributed_product_mode", "local")
        };
        Ok(Self {
            client: cluster_settings(self.client),
            server: cluster_settings(self.server),
            cluster: Some(Arc::new(cluster)),
            ..self
        })
    }

    /// The same login and database on the server at `url`.
    pub(crate) fn on_server(&self, url: &str) -> Result<Self> {
        Self::with_client(
            url,
            &self.database,
            server_client(url, &self.user, &self.password),
            &self.user,
            &self.password,
        )
    }

    /// This handle, its table names made the server's local tables'.
    pub(crate) fn into_local(self) -> Self {
        Self {
            local: true,
            ..self
        }
    }

    /// The cluster, in cluster mode.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_deref()
    }

    /// The name to give table `table` in SQL sent through this handle:
    /// `table`, or on one server of a cluster its local table.
    pub fn table<'a>(&self, table: &'a str) -> Cow<'a, str> {
        if self.local {
            Cow::Owned(format!("{table}{LOCAL_SUFFIX}"))
        } else {
            Cow::Borrowed(table)
        }
    }

    /// Where a statement that a Distributed table cannot run (a mutation,
    /// `KILL QUERY`) is sent: every server of the cluster, or this one.
    /// Name tables with [`Db::table`] of each.
    pub fn each_server(&self) -> Vec<Db> {
        match &self.cluster {
            Some(c) => c.servers().to_vec(),
            None => vec![self.clone()],
        }
    }

    /// `ALTER TABLE table DELETE WHERE condition` (a mutation: the rows go
    /// within moments) on every server: `table` and `condition` come from
    /// code, the condition's one `?` is `value`.
    pub async fn delete_where(
        &self,
        table: &str,
        condition: &str,
        value: impl clickhouse::sql::Bind + Clone,
    ) -> Result<()> {
        let sql = format!("ALTER TABLE ? DELETE WHERE {condition}");
        for server in self.each_server() {
            server
                .client()
                .query(&sql)
                .bind(Identifier(&server.table(table)))
                .bind(value.clone())
                .execute()
                .await?;
        }
        Ok(())
    }

    /// The shard (an index into [`Db::shards`]) a row whose sharding key
    /// is `user_id` lives on: 0 outside cluster mode.
    pub fn shard_of(&self, user_id: u64) -> usize {
        self.cluster.as_ref().map_or(0, |c| c.shard_of(user_id))
    }

    /// Every shard's handle, by index (one, this, outside cluster mode).
    pub fn shards(&self) -> Vec<Db> {
        match &self.cluster {
            Some(c) => c.shards().to_vec(),
            None => vec![self.clone()],
        }
    }

    /// The client bound to no database.
    pub fn server_client(&self) -> &Client {
        &self.server
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
        Self::with_client(url, database, server, &analyst.user, &analyst.password)
    }

    /// The same server, another database (tests use one database each).
    pub fn with_database(&self, database: &str) -> Result<Self> {
        names::validate_database(database)?;
        Ok(Self {
            client: self.server.clone().with_database(database),
            server: self.server.clone(),
            database: database.to_owned(),
            url: self.url.clone(),
            user: self.user.clone(),
            password: self.password.clone(),
            cluster: None,
            local: self.local,
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
