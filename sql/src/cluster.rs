//! Cluster mode: codestats' tables spread over the shards of a ClickHouse
//! cluster (`CODESTATS_CLICKHOUSE_CLUSTER`, a cluster of the servers'
//! `remote_servers`).
//!
//! Every table `T` of the schema is, on every server of the cluster, a
//! local table `T_local` (the engine the migration names) and a
//! `Distributed` table `T` over them, sharded by [`sharding_key`] (the user
//! for everything a user owns, so a user's rows, and every version of a
//! merging row, live on one shard). Everything reads and writes `T` as in
//! single-server mode, with two settings on every query:
//! `insert_distributed_sync = 1` (an INSERT is answered once the shard
//! holds its rows) and `distributed_product_mode = 'local'` (an `IN` or a
//! join over two Distributed tables runs on each shard against its local
//! tables: right because what is joined is placed by the same user — a
//! pulse's machine is its user's). 18.16 sends a `GLOBAL` join's table
//! to the shards without its database, so `'global'` fails there.
//!
//! What a Distributed table cannot do, codestats does on each server
//! itself, through a connection of its own to each ([`Cluster::servers`]):
//! the schema (`ON CLUSTER` needs ZooKeeper; codestats does not), mutations
//! (`ALTER TABLE T_local DELETE`), `KILL QUERY`. And the ingest shipper
//! writes each block's rows straight into each shard's local table
//! ([`Cluster::shards`], [`Cluster::shard_of`]): one INSERT per shard,
//! each one part, whole or absent, with a query id that `KILL QUERY` on
//! that server finds — an INSERT through a Distributed table is neither
//! (it lands on some shards and not others, and 18.16 runs its remote part
//! under a query id of its own).
//!
//! Servers are reached over HTTP at `CODESTATS_CLICKHOUSE_CLUSTER_URLS`, or
//! else at each host of `system.clusters` on the port of
//! `CODESTATS_CLICKHOUSE_URL`; each URL is checked to be the server it
//! claims ([`Cluster::connect`]).

use crate::{
    db::Db,
    error::{Error, Result},
};
use clickhouse::Row;
use serde::Deserialize;

/// What a local table's name ends with.
pub const LOCAL_SUFFIX: &str = "_local";

/// The shard a table's rows go to, as the `Distributed` engine's sharding
/// key. `None`: not a table of the schema (a migration creating one must
/// add it here).
pub fn sharding_key(table: &str) -> Option<&'static str> {
    Some(match table {
        "users" | "machines" | "pulses" | "xp_hourly" | "heartbeats" | "user_secrets"
        | "user_preferences" => "user_id",
        "languages" => "cityHash64(name_key)",
        "account_tokens" => "cityHash64(token_hash)",
        "claims" => "cityHash64(claim_key)",
        "live_events" => "user_id",
        "nodes" => "node_id",
        "language_aliases" => "cityHash64(from_key)",
        _ => return None,
    })
}

/// The servers of one cluster, each reached directly.
#[derive(Debug)]
pub struct Cluster {
    name: String,
    /// Every server (each replica of each shard), bound to its local tables.
    servers: Vec<Db>,
    /// Per shard, in `shard_num` order: the server that shard's inserts go to.
    shards: Vec<Db>,
    /// Slot → shard index, as the Distributed engine maps a sharding key:
    /// a row goes to `slots[key % slots.len()]` (each shard has as many
    /// slots as its weight).
    slots: Vec<usize>,
}

#[derive(Debug, Row, Deserialize)]
struct Replica {
    shard_num: u32,
    shard_weight: u32,
    replica_num: u32,
    host_name: String,
}

#[derive(Debug, Row, Deserialize)]
struct Me {
    shard_num: u32,
    replica_num: u32,
}

impl Cluster {
    /// Reads cluster `name` from `entry`'s `system.clusters` and connects
    /// to each of its servers: at `urls` when given (in any order),
    /// otherwise at each replica's host on the port of `entry`'s URL.
    /// Every server must answer and know itself as exactly one replica of
    /// `name`, and every replica must be reached once.
    pub async fn connect(entry: &Db, name: &str, urls: &[String]) -> Result<Self> {
        validate_name(name)?;
        let replicas: Vec<Replica> = entry
            .server_client()
            .query(
                "SELECT shard_num, shard_weight, replica_num, host_name FROM system.clusters \
                 WHERE cluster = ? ORDER BY shard_num, replica_num",
            )
            .bind(name)
            .fetch_all()
            .await?;
        if replicas.is_empty() {
            return Err(Error::Invalid(format!(
                "cluster {name:?} is not in the remote_servers of the server at {}",
                entry.url()
            )));
        }
        let urls: Vec<String> = if urls.is_empty() {
            replicas
                .iter()
                .map(|r| url_with_host(entry.url(), &r.host_name))
                .collect::<Result<_>>()?
        } else {
            urls.to_vec()
        };
        let mut found: Vec<(u32, u32, Db)> = Vec::new();
        for url in &urls {
            let server = entry.on_server(url)?.into_local();
            let me: Vec<Me> = server
                .server_client()
                .query(
                    "SELECT shard_num, replica_num FROM system.clusters \
                     WHERE cluster = ? AND is_local = 1",
                )
                .bind(name)
                .fetch_all()
                .await
                .map_err(|e| {
                    Error::Invalid(format!(
                        "server {url} of cluster {name:?} does not answer: {e}"
                    ))
                })?;
            let [me] = me.as_slice() else {
                return Err(Error::Invalid(format!(
                    "server {url} is {} replicas of cluster {name:?}, not one: \
                     check CODESTATS_CLICKHOUSE_CLUSTER_URLS and its remote_servers",
                    me.len()
                )));
            };
            if found
                .iter()
                .any(|(s, r, _)| (*s, *r) == (me.shard_num, me.replica_num))
            {
                return Err(Error::Invalid(format!(
                    "two URLs reach shard {} replica {} of cluster {name:?}",
                    me.shard_num, me.replica_num
                )));
            }
            found.push((me.shard_num, me.replica_num, server));
        }
        for r in &replicas {
            if !found
                .iter()
                .any(|(s, n, _)| (*s, *n) == (r.shard_num, r.replica_num))
            {
                return Err(Error::Invalid(format!(
                    "no URL reaches shard {} replica {} ({}) of cluster {name:?}: \
                     set CODESTATS_CLICKHOUSE_CLUSTER_URLS",
                    r.shard_num, r.replica_num, r.host_name
                )));
            }
        }
        found.sort_by_key(|(s, r, _)| (*s, *r));
        let mut shards = Vec::new();
        let mut slots = Vec::new();
        for r in replicas.iter().filter(|r| r.replica_num == 1) {
            let (_, _, db) = found
                .iter()
                .find(|(s, n, _)| (*s, *n) == (r.shard_num, 1))
                .expect("every replica was found above");
            slots.extend(std::iter::repeat_n(shards.len(), r.shard_weight as usize));
            shards.push(db.clone());
        }
        if slots.is_empty() {
            return Err(Error::Invalid(format!(
                "cluster {name:?} has no shard with a weight above 0"
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            servers: found.into_iter().map(|(_, _, db)| db).collect(),
            shards,
            slots,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every server of the cluster, bound to its local tables.
    pub fn servers(&self) -> &[Db] {
        &self.servers
    }

    /// Per shard, the server its inserts go to, bound to its local tables.
    pub fn shards(&self) -> &[Db] {
        &self.shards
    }

    /// The shard (an index into [`Cluster::shards`]) of a row whose
    /// sharding key is `user_id`, as the Distributed tables place it.
    pub fn shard_of(&self, user_id: u64) -> usize {
        self.slots[(user_id % self.slots.len() as u64) as usize]
    }
}

/// A cluster name is formatted into the Distributed tables' definitions:
/// the database name's rules.
pub fn validate_name(name: &str) -> Result<()> {
    crate::names::validate_database(name).map_err(|_| {
        Error::Invalid(format!(
            "cluster name {name:?} must be letters, digits and _"
        ))
    })
}

/// `url` with its host replaced by `host` (scheme, port and path kept).
fn url_with_host(url: &str, host: &str) -> Result<String> {
    let bad = || Error::Invalid(format!("cannot tell the host of clickhouse URL {url:?}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let port = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split_once("]:").map(|(_, p)| p)
    } else {
        authority.rsplit_once(':').map(|(_, p)| p)
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    Ok(match port {
        Some(p) => format!("{scheme}://{host}:{p}{path}"),
        None => format!("{scheme}://{host}{path}"),
    })
}

/// The statements that make migration statement `stmt` in cluster mode,
/// each to run on every server: a `CREATE TABLE IF NOT EXISTS T …` becomes
/// `T_local` with the statement's engine plus `T`, a `Distributed` table
/// over it; an `ALTER TABLE T …` alters `T_local`. Anything else has no
/// cluster form and is refused (the migration then names its own
/// statements for clusters).
pub fn cluster_statements(stmt: &str, cluster: &str, database: &str) -> Result<Vec<String>> {
    validate_name(cluster)?;
    crate::names::validate_database(database)?;
    let refuse = || {
        Error::Invalid(format!(
            "migration statement has no cluster form: {}",
            stmt.lines().next().unwrap_or_default()
        ))
    };
    for prefix in ["CREATE TABLE IF NOT EXISTS ", "ALTER TABLE "] {
        let Some(rest) = stmt.strip_prefix(prefix) else {
            continue;
        };
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let (table, tail) = rest.split_at(end);
        let key = sharding_key(table).ok_or_else(refuse)?;
        let local = format!("{table}{LOCAL_SUFFIX}");
        let mut out = vec![format!("{prefix}{local}{tail}")];
        if prefix.starts_with("CREATE") {
            out.push(format!(
                "CREATE TABLE IF NOT EXISTS {table} AS {local} \
                 ENGINE = Distributed({cluster}, {database}, {local}, {key})"
            ));
        }
        return Ok(out);
    }
    Err(refuse())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_become_local_and_distributed() {
        let out = cluster_statements(
            "CREATE TABLE IF NOT EXISTS pulses\n(\n    user_id UInt64\n)\nENGINE = MergeTree\nORDER BY user_id",
            "demo",
            "codestats",
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                "CREATE TABLE IF NOT EXISTS pulses_local\n(\n    user_id UInt64\n)\nENGINE = MergeTree\nORDER BY user_id",
                "CREATE TABLE IF NOT EXISTS pulses AS pulses_local ENGINE = Distributed(demo, codestats, pulses_local, user_id)",
            ]
        );
        assert_eq!(
            cluster_statements("ALTER TABLE users ADD COLUMN x UInt8", "demo", "db").unwrap(),
            vec!["ALTER TABLE users_local ADD COLUMN x UInt8"]
        );
    }

    #[test]
    fn refuses_what_it_cannot_place() {
        for stmt in [
            "CREATE TABLE IF NOT EXISTS mystery (x UInt8) ENGINE = Memory",
            "DROP TABLE pulses",
            "INSERT INTO pulses SELECT 1",
        ] {
            assert!(cluster_statements(stmt, "demo", "db").is_err(), "{stmt}");
        }
        assert!(cluster_statements("ALTER TABLE users DELETE", "a;b", "db").is_err());
    }

    #[test]
    fn urls_take_each_host() {
        assert_eq!(
            url_with_host("http://10.0.0.1:8123", "ch2").unwrap(),
            "http://ch2:8123"
        );
        assert_eq!(
            url_with_host("https://a.example/ch/", "b.example").unwrap(),
            "https://b.example/ch/"
        );
        assert_eq!(
            url_with_host("http://[::1]:8123", "::2").unwrap(),
            "http://[::2]:8123"
        );
    }
}
