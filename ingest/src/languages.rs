//! Canonical language names: the first spelling seen of a name (compared
//! case-insensitively) is the one stored, so "rust" after "Rust" counts as
//! "Rust".

use sql::{Db, languages::LanguageRow, names};
use std::{collections::HashMap, sync::Arc};
use tokio::sync::RwLock;

#[derive(Default)]
pub struct Languages {
    by_key: RwLock<HashMap<String, Arc<str>>>,
}

impl Languages {
    pub async fn load(&self, db: &Db) -> sql::Result<()> {
        let known = sql::languages::canonical_names(db).await?;
        let mut map = self.by_key.write().await;
        for (key, name) in known {
            map.insert(key, name.into());
        }
        Ok(())
    }

    /// The canonical spelling of `name`, and the row to store when the name
    /// is new.
    pub async fn canonical(&self, name: &str, now: u32) -> (Arc<str>, Option<LanguageRow>) {
        let key = names::fold(name);
        if let Some(found) = self.by_key.read().await.get(&key) {
            return (found.clone(), None);
        }
        let mut map = self.by_key.write().await;
        if let Some(found) = map.get(&key) {
            return (found.clone(), None);
        }
        let canonical: Arc<str> = name.into();
        map.insert(key.clone(), canonical.clone());
        let row = LanguageRow {
            name_key: key,
            name: name.to_owned(),
            first_seen: now,
        };
        (canonical, Some(row))
    }
}
