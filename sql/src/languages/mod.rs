//! Language names: the canonical spelling of each (the first seen, case
//! aside), and the operators' aliases (`aliases`).

pub mod aliases;

pub use aliases::Aliases;

use crate::{db::Db, error::Result};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct LanguageRow {
    /// `names::fold(name)`.
    pub name_key: String,
    pub name: String,
    /// Unix seconds.
    pub first_seen: u32,
}

/// Every known language: (key, canonical name).
pub async fn canonical_names(db: &Db) -> Result<Vec<(String, String)>> {
    Ok(db
        .client()
        .query("SELECT name_key, argMin(name, first_seen) FROM languages GROUP BY name_key")
        .fetch_all()
        .await?)
}

pub async fn insert(db: &Db, rows: &[LanguageRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut insert = db.client().insert::<LanguageRow>("languages").await?;
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await?;
    Ok(())
}
