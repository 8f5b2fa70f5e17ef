//! Schema migrations: `sql/migrations/NNNN_name.sql`, embedded in the binary,
//! applied in order and recorded in `schema_migrations`.
//!
//! A file holds one or more statements, each ending with `;` at the end of a
//! line (ClickHouse's HTTP interface takes one statement per request).
//! Statements use `IF NOT EXISTS` and the like, so a file interrupted half
//! way can simply be applied again.
//!
//! In cluster mode every server is migrated in turn, with each statement in
//! its cluster form (`cluster::cluster_statements`: a local table and a
//! Distributed one), and keeps its own `schema_migrations`. A migration
//! whose statements have no cluster form names a file of its own for
//! clusters (`migrations/cluster/`).

use crate::{cluster, db::Db, error::Result};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
    /// What the migration is in cluster mode, when `sql` has statements
    /// with no cluster form; `None`: `sql`'s statements in cluster form.
    pub cluster: Option<&'static str>,
}

/// Every migration, in order. A new file is added here too.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/0001_initial.sql"),
        cluster: None,
    },
    Migration {
        version: 2,
        name: "languages",
        sql: include_str!("../migrations/0002_languages.sql"),
        cluster: None,
    },
    Migration {
        version: 3,
        name: "rollups",
        sql: include_str!("../migrations/0003_rollups.sql"),
        cluster: Some(include_str!("../migrations/cluster/0003_rollups.sql")),
    },
    Migration {
        version: 4,
        name: "xp_blocks",
        sql: include_str!("../migrations/0004_xp_blocks.sql"),
        cluster: Some(include_str!("../migrations/cluster/0004_xp_blocks.sql")),
    },
    Migration {
        version: 5,
        name: "web_accounts",
        sql: include_str!("../migrations/0005_web_accounts.sql"),
        cluster: None,
    },
    Migration {
        version: 6,
        name: "heartbeats",
        sql: include_str!("../migrations/0006_heartbeats.sql"),
        cluster: None,
    },
    Migration {
        version: 7,
        name: "live_events",
        sql: include_str!("../migrations/0007_live_events.sql"),
        cluster: None,
    },
    Migration {
        version: 8,
        name: "nodes",
        sql: include_str!("../migrations/0008_nodes.sql"),
        cluster: None,
    },
    Migration {
        version: 9,
        name: "community",
        sql: include_str!("../migrations/0009_community.sql"),
        cluster: None,
    },
];

#[derive(Row, Serialize, Deserialize)]
struct Applied {
    version: u32,
    name: String,
    applied_at: u32,
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations \
     (version UInt32, name String, applied_at DateTime) \
     ENGINE = MergeTree ORDER BY version";

/// The statements of a migration file, comments and blank lines dropped.
pub fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let code = line.trim_end();
        if code.trim_start().starts_with("--") || code.trim().is_empty() {
            continue;
        }
        current.push_str(code);
        current.push('\n');
        if code.ends_with(';') {
            let stmt = current.trim().trim_end_matches(';').trim().to_owned();
            if !stmt.is_empty() {
                out.push(stmt);
            }
            current.clear();
        }
    }
    let rest = current.trim();
    if !rest.is_empty() {
        out.push(rest.to_owned());
    }
    out
}

/// Creates the database if needed and applies every migration not yet
/// recorded. Returns the versions it applied.
pub async fn migrate(db: &Db) -> Result<Vec<u32>> {
    let Some(cluster) = db.cluster() else {
        return migrate_server(db, None).await;
    };
    let mut applied = Vec::new();
    for server in cluster.servers() {
        for version in migrate_server(server, Some(cluster.name())).await? {
            if !applied.contains(&version) {
                applied.push(version);
            }
        }
    }
    Ok(applied)
}

/// The statements of migration `m`, in cluster form for `cluster`.
pub fn statements_for(m: &Migration, cluster: Option<&str>, database: &str) -> Result<Vec<String>> {
    let Some(cluster) = cluster else {
        return Ok(statements(m.sql));
    };
    let mut out = Vec::new();
    for stmt in statements(m.cluster.unwrap_or(m.sql)) {
        out.extend(cluster::cluster_statements(&stmt, cluster, database)?);
    }
    Ok(out)
}

/// Migrates one server: `db` itself, or one server of `cluster`.
async fn migrate_server(db: &Db, cluster: Option<&str>) -> Result<Vec<u32>> {
    db.create_database().await?;
    db.client().query(CREATE_TABLE).execute().await?;
    let done: Vec<u32> = db
        .client()
        .query("SELECT DISTINCT version FROM schema_migrations")
        .fetch_all()
        .await?;
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
        for stmt in statements_for(m, cluster, db.database())? {
            db.client().query(&stmt).execute().await?;
        }
        let mut insert = db.client().insert::<Applied>("schema_migrations").await?;
        insert
            .write(&Applied {
                version: m.version,
                name: m.name.to_owned(),
                applied_at: now_secs(),
            })
            .await?;
        insert.end().await?;
        tracing::info!(version = m.version, name = m.name, "migration applied");
        applied.push(m.version);
    }
    Ok(applied)
}

/// Unix nanoseconds now: the stamp of versions, claims and secrets.
pub(crate) fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub(crate) fn now_secs() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_increasing_and_match_file_names() {
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].version < pair[1].version);
        }
        for m in MIGRATIONS {
            assert!(!statements(m.sql).is_empty(), "{} is empty", m.name);
            // Every migration has a cluster form.
            statements_for(m, Some("demo"), "codestats").unwrap();
        }
    }

    #[test]
    fn splits_statements() {
        let sql = "-- comment\nCREATE TABLE a\n(x UInt8)\nENGINE = Memory;\n\nCREATE TABLE b (y UInt8) ENGINE = Memory;\n";
        assert_eq!(
            statements(sql),
            vec![
                "CREATE TABLE a\n(x UInt8)\nENGINE = Memory",
                "CREATE TABLE b (y UInt8) ENGINE = Memory"
            ]
        );
    }
}
