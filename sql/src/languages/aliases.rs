//! Language aliases: an operator maps a name as plugins send it (`js`,
//! `TypeScript React`) to the name shown (`JavaScript`, `TypeScript`).
//!
//! Aliases apply where numbers are read for people — the rollups' reads
//! (profiles, language pages, leaderboards, badges, the read API's
//! documents) and the live feed — never where pulses are written: `pulses`
//! and `xp_hourly` keep the name as sent, for analysts. So a change applies
//! to all history at the next full rollup.
//!
//! A name matches an alias case-insensitively (Unicode lowercase, as
//! [`names::fold`]; ClickHouse's `lowerUTF8` on the SQL side, which agrees
//! for every letter whose cases have the same UTF-8 length). The target's
//! own spelling wins too: with `js → JavaScript`, pulses stored as
//! `javascript` show as `JavaScript`.
//!
//! [`DEFAULT_ALIASES`] hold unless a row of `language_aliases` overrides
//! one (another target, or `deleted` to drop it). Aliases never chain:
//! [`set`] refuses a target that is itself an alias, and a name that others
//! point to.

use crate::{
    db::Db,
    error::{Error, Result},
    names,
};
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The aliases every installation starts with (from, to): the names editor
/// plugins send for the same language under another name — short names,
/// VS Code language ids, React flavours.
pub const DEFAULT_ALIASES: &[(&str, &str)] = &[
    ("js", "JavaScript"),
    ("jsx", "JavaScript"),
    ("javascriptreact", "JavaScript"),
    ("JavaScript React", "JavaScript"),
    ("ts", "TypeScript"),
    ("tsx", "TypeScript"),
    ("typescriptreact", "TypeScript"),
    ("TypeScript React", "TypeScript"),
    ("py", "Python"),
    ("python3", "Python"),
    ("rb", "Ruby"),
    ("rs", "Rust"),
    ("golang", "Go"),
    ("cpp", "C++"),
    ("csharp", "C#"),
    ("fsharp", "F#"),
    ("objc", "Objective-C"),
    ("objective-cpp", "Objective-C++"),
    ("shellscript", "Shell"),
    ("Shell Script", "Shell"),
    ("md", "Markdown"),
    ("yml", "YAML"),
    ("kt", "Kotlin"),
    ("hs", "Haskell"),
    ("ex", "Elixir"),
    ("exs", "Elixir"),
    ("plaintext", "Plain text"),
];

/// A row of `language_aliases`.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct AliasRow {
    /// `names::fold(from_name)`.
    pub from_key: String,
    pub from_name: String,
    pub to_name: String,
    pub deleted: u8,
    pub version: u64,
}

/// One alias in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub from: String,
    pub to: String,
    /// From [`DEFAULT_ALIASES`], not changed by the operator.
    pub default: bool,
}

/// The aliases in force: the defaults, overridden by `language_aliases`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aliases {
    /// By `names::fold(from)`.
    by_key: BTreeMap<String, Alias>,
    /// Every name shown, by its fold: the targets, so their own spelling
    /// wins over the stored one.
    targets: BTreeMap<String, String>,
}

impl Aliases {
    /// [`DEFAULT_ALIASES`] alone.
    pub fn defaults() -> Self {
        Self::from_rows(&[])
    }

    /// The defaults with `rows` (newest version per key) over them.
    pub fn from_rows(rows: &[AliasRow]) -> Self {
        let mut by_key: BTreeMap<String, Alias> = DEFAULT_ALIASES
            .iter()
            .map(|(from, to)| {
                (
                    names::fold(from),
                    Alias {
                        from: (*from).to_owned(),
                        to: (*to).to_owned(),
                        default: true,
                    },
                )
            })
            .collect();
        for row in rows {
            if row.deleted != 0 {
                by_key.remove(&row.from_key);
            } else {
                by_key.insert(
                    row.from_key.clone(),
                    Alias {
                        from: row.from_name.clone(),
                        to: row.to_name.clone(),
                        default: false,
                    },
                );
            }
        }
        // A chain (only concurrent changes can make one) ends at its first
        // hop: an alias's target is shown as written.
        let targets = by_key
            .values()
            .map(|a| (names::fold(&a.to), a.to.clone()))
            .collect();
        Self { by_key, targets }
    }

    /// The aliases in force now.
    pub async fn load(db: &Db) -> Result<Self> {
        let rows: Vec<AliasRow> = db
            .client()
            .query(
                "SELECT from_key, from_name, to_name, deleted, version \
                 FROM language_aliases FINAL ORDER BY from_key",
            )
            .fetch_all()
            .await?;
        Ok(Self::from_rows(&rows))
    }

    /// The name `name` is shown as.
    pub fn canonical<'a>(&'a self, name: &'a str) -> &'a str {
        let key = names::fold(name);
        if let Some(alias) = self.by_key.get(&key) {
            return &alias.to;
        }
        self.targets.get(&key).map_or(name, String::as_str)
    }

    /// Replaces `name` with the name it is shown as, if that differs.
    pub fn show(&self, name: &mut String) {
        let shown = self.canonical(name);
        if shown != name.as_str() {
            *name = shown.to_owned();
        }
    }

    /// Every alias in force, by the name it maps (folded).
    pub fn iter(&self) -> impl Iterator<Item = &Alias> {
        self.by_key.values()
    }

    /// `transform(lowerUTF8(column), keys, names, column)`'s two arrays:
    /// every folded name that is shown otherwise, and what it is shown as.
    fn arrays(&self) -> (Vec<String>, Vec<String>) {
        let mut map: BTreeMap<&str, &str> = self
            .targets
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (key, alias) in &self.by_key {
            map.insert(key, &alias.to);
        }
        map.into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .unzip()
    }

    /// A SQL expression of `column` (a language name of a table) that
    /// gives its shown name, and binds its values to `query`: put it where
    /// the expression's `?`s come first among the query's placeholders.
    /// `column` is code's, never a user's.
    pub fn sql(&self, column: &str) -> AliasSql {
        let (keys, names) = self.arrays();
        if keys.is_empty() {
            AliasSql {
                expr: column.to_owned(),
                values: None,
            }
        } else {
            AliasSql {
                expr: format!("transform(lowerUTF8({column}), ?, ?, {column})"),
                values: Some((keys, names)),
            }
        }
    }
}

/// [`Aliases::sql`]: an expression and the values its `?`s take.
#[derive(Debug, Clone)]
pub struct AliasSql {
    pub expr: String,
    values: Option<(Vec<String>, Vec<String>)>,
}

impl AliasSql {
    /// Binds the expression's values; call before binding anything that
    /// comes after it in the query text.
    pub fn bind(&self, mut query: clickhouse::query::Query) -> clickhouse::query::Query {
        if let Some((keys, names)) = &self.values {
            query = query.bind(keys).bind(names);
        }
        query
    }
}

/// A name as an alias takes it: trimmed, not empty, not too long.
fn checked(name: &str, what: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::Invalid(format!("the {what} name is empty")));
    }
    names::normalize_language(name)
        .map(str::to_owned)
        .ok_or_else(|| Error::Invalid(format!("the {what} name is too long")))
}

/// Writes the alias row of `from` (as typed) above its newest version.
async fn write(db: &Db, from: &str, to: &str, deleted: bool) -> Result<()> {
    let from_key = names::fold(from);
    let current: u64 = db
        .client()
        .query("SELECT max(version) FROM language_aliases WHERE from_key = ?")
        .bind(&from_key)
        .fetch_one()
        .await?;
    let row = AliasRow {
        from_key,
        from_name: from.to_owned(),
        to_name: to.to_owned(),
        deleted: deleted.into(),
        version: crate::accounts::bump(current),
    };
    let mut insert = db.client().insert::<AliasRow>("language_aliases").await?;
    insert.write(&row).await?;
    insert.end().await?;
    Ok(())
}

/// Makes `from` (any case) show as `to`, in place of whatever alias `from`
/// had. Refused when `to` is itself an alias, or other aliases point to
/// `from`: aliases do not chain.
pub async fn set(db: &Db, from: &str, to: &str) -> Result<Alias> {
    let (from, to) = (checked(from, "alias")?, checked(to, "target")?);
    let (key, to_key) = (names::fold(&from), names::fold(&to));
    let aliases = Aliases::load(db).await?;
    if to_key != key
        && let Some(hop) = aliases.by_key.get(&to_key)
    {
        return Err(Error::Invalid(format!(
            "{to:?} is itself an alias of {:?}: alias {from:?} to {:?}",
            hop.to, hop.to
        )));
    }
    let pointing: Vec<&str> = aliases
        .iter()
        .filter(|a| names::fold(&a.to) == key && names::fold(&a.from) != key)
        .map(|a| a.from.as_str())
        .collect();
    if !pointing.is_empty() {
        return Err(Error::Invalid(format!(
            "{pointing:?} are aliases of {from:?}: alias them to {to:?} first, or unalias them"
        )));
    }
    write(db, &from, &to, false).await?;
    Ok(Alias {
        from,
        to,
        default: false,
    })
}

/// Removes the alias of `from` (a default one too); returns it.
pub async fn remove(db: &Db, from: &str) -> Result<Alias> {
    let from = checked(from, "alias")?;
    let key = names::fold(&from);
    let aliases = Aliases::load(db).await?;
    let Some(alias) = aliases.by_key.get(&key).cloned() else {
        return Err(Error::NotFound(format!("alias {from:?}")));
    };
    write(db, &alias.from, &alias.to, true).await?;
    Ok(alias)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(from: &str, to: &str, deleted: u8) -> AliasRow {
        AliasRow {
            from_key: names::fold(from),
            from_name: from.into(),
            to_name: to.into(),
            deleted,
            version: 1,
        }
    }

    #[test]
    fn defaults_rows_and_target_spelling() {
        let a = Aliases::defaults();
        assert_eq!(a.canonical("js"), "JavaScript");
        assert_eq!(a.canonical("JS"), "JavaScript");
        assert_eq!(a.canonical("TypeScript React"), "TypeScript");
        // The target's own spelling wins over a stored one.
        assert_eq!(a.canonical("javascript"), "JavaScript");
        assert_eq!(a.canonical("Zig"), "Zig");

        let a = Aliases::from_rows(&[row("js", "ECMAScript", 0), row("rs", "", 1)]);
        assert_eq!(a.canonical("js"), "ECMAScript");
        assert_eq!(a.canonical("rs"), "rs");
        assert!(a.iter().any(|x| x.from == "js" && !x.default));
    }

    #[test]
    fn sql_arrays_cover_aliases_and_targets() {
        let a = Aliases::from_rows(&[]);
        let (keys, names) = a.arrays();
        assert_eq!(keys.len(), names.len());
        let pos = |k: &str| keys.iter().position(|x| x == k).unwrap();
        assert_eq!(names[pos("js")], "JavaScript");
        assert_eq!(names[pos("javascript")], "JavaScript");
        assert_eq!(names[pos("typescript react")], "TypeScript");
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn no_aliases_is_the_column_itself() {
        let a = Aliases::from_rows(
            &DEFAULT_ALIASES
                .iter()
                .map(|(f, t)| row(f, t, 1))
                .collect::<Vec<_>>(),
        );
        assert_eq!(a.sql("language").expr, "language");
        assert_eq!(a.canonical("js"), "js");
    }
}
