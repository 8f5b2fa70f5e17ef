//! The store's checks: ClickHouse answers, and its schema is this
//! version's.

use super::{CLICKHOUSE_TIMEOUT, Check};
use crate::config::Config;
use sql::local_server::{self, LocalServerConfig};

pub(super) async fn check_clickhouse(config: &Config, serving: bool) -> Vec<Check> {
    let (db, url) = match &config.clickhouse.url {
        Some(url) => match sql::Db::new(url, &config.clickhouse) {
            Ok(db) => (db, url.clone()),
            Err(e) => {
                return vec![Check::fail(
                    "clickhouse",
                    format!("{e}"),
                    "check CODESTATS_CLICKHOUSE_*",
                )];
            }
        },
        None => {
            let local = LocalServerConfig::for_data_dir(&config.data_dir);
            if !local_server::ping(local.http_port).await {
                return vec![if serving {
                    Check::fail(
                        "clickhouse",
                        format!(
                            "serve's embedded ClickHouse does not answer at {}",
                            local.url()
                        ),
                        format!("see {}/log and restart serve", local.dir.display()),
                    )
                } else {
                    Check::warn(
                        "clickhouse",
                        "the embedded ClickHouse is not running (serve starts it); schema not checked",
                        "start serve, or codestats clickhouse start",
                    )
                }];
            }
            let db = local
                .clickhouse_config(&config.clickhouse.database)
                .map_err(anyhow::Error::from)
                .and_then(|c| Ok(sql::Db::new(&local.url(), &c)?));
            match db {
                Ok(db) => (db, local.url()),
                Err(e) => {
                    return vec![Check::fail(
                        "clickhouse",
                        format!("cannot log in to the embedded ClickHouse: {e:#}"),
                        "see the secret files check",
                    )];
                }
            }
        }
    };
    let version = match tokio::time::timeout(CLICKHOUSE_TIMEOUT, db.version()).await {
        Ok(Ok(version)) => version,
        Ok(Err(e)) => {
            return vec![Check::fail(
                "clickhouse",
                format!("{url} does not answer: {e}"),
                "start ClickHouse, or correct CODESTATS_CLICKHOUSE_URL and its credentials",
            )];
        }
        Err(_) => {
            return vec![Check::fail(
                "clickhouse",
                format!("{url} did not answer within {CLICKHOUSE_TIMEOUT:?}"),
                "check ClickHouse's load and logs",
            )];
        }
    };
    vec![
        Check::ok("clickhouse", format!("{url} answers, version {version}")),
        check_schema(&db).await,
    ]
}

async fn check_schema(db: &sql::Db) -> Check {
    let known: Vec<u32> = sql::migrate::MIGRATIONS.iter().map(|m| m.version).collect();
    let applied: Result<Vec<u32>, _> = db
        .client()
        .query("SELECT DISTINCT version FROM schema_migrations ORDER BY version")
        .fetch_all()
        .await;
    let applied = match applied {
        Ok(applied) => applied,
        Err(e) => {
            return Check::fail(
                "schema",
                format!("database {} has no schema: {e}", db.database()),
                "codestats migrate (serve migrates at start)",
            );
        }
    };
    let missing: Vec<u32> = known
        .iter()
        .copied()
        .filter(|v| !applied.contains(v))
        .collect();
    let unknown: Vec<u32> = applied
        .iter()
        .copied()
        .filter(|v| !known.contains(v))
        .collect();
    if !unknown.is_empty() {
        Check::fail(
            "schema",
            format!("migrations {unknown:?} are newer than this codestats"),
            "run the codestats version that wrote them (downgrades are not supported)",
        )
    } else if !missing.is_empty() {
        Check::fail(
            "schema",
            format!("migrations {missing:?} are not applied"),
            "codestats migrate (serve migrates at start)",
        )
    } else {
        Check::ok(
            "schema",
            format!(
                "database {} at version {}",
                db.database(),
                known.last().unwrap_or(&0)
            ),
        )
    }
}
