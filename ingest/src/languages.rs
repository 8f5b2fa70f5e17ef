//! Canonical language names: the first spelling seen of a name (compared
//! case-insensitively) is the one stored, so "rust" after "Rust" counts as
//! "Rust". And the operators' aliases ([`ShownNames`]), which change what
//! is shown, never what is stored.

use sql::{
    Db,
    languages::{Aliases, LanguageRow},
    names,
};
use std::{collections::HashMap, sync::Arc};
use tokio::sync::RwLock;

/// The language aliases in force, as the live feed shows names: reloaded
/// with the tokens, the defaults until the first load.
pub struct ShownNames {
    current: std::sync::RwLock<Arc<Aliases>>,
}

impl Default for ShownNames {
    fn default() -> Self {
        Self {
            current: std::sync::RwLock::new(Arc::new(Aliases::defaults())),
        }
    }
}

impl ShownNames {
    pub fn get(&self) -> Arc<Aliases> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub async fn refresh(&self, db: &Db) -> sql::Result<()> {
        let aliases = Arc::new(Aliases::load(db).await?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = aliases;
        Ok(())
    }
}

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
