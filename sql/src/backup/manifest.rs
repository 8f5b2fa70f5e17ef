//! `manifest.json`: what a dump holds, and what a restore checks before it
//! inserts anything.
//!
//! ```json
//! {
//!   "format": 1,
//!   "codestats_version": "0.1.0",
//!   "clickhouse_version": "18.16.1",
//!   "database": "codestats",
//!   "schema_version": 6,
//!   "cut_ms": 1764130000000,
//!   "created_at": "2026-11-26T04:20:05Z",
//!   "tables": [
//!     {"name": "pulses", "file": "pulses.native.gz", "rows": 1200, "bytes": 9120,
//!      "sha256": "…", "engine": "MergeTree",
//!      "columns": [{"name": "pulse_id", "type": "UInt64"}, …]}
//!   ]
//! }
//! ```
//!
//! `rows` are the rows the file holds (counted block by block as it was
//! written), `bytes` and `sha256` the file's size and SHA-256 as stored
//! (gzip'd), `columns` the order and types of the file's columns.

use super::FORMAT;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

/// The manifest's file name in a dump.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Ending of a table's file name: `TABLE.native.gz`.
pub const TABLE_FILE_SUFFIX: &str = ".native.gz";
/// Longest manifest read: far above any real one, so a stray file is not
/// read whole.
const MAX_MANIFEST_BYTES: u64 = 16 << 20;
/// Longest table name in a dump (a file name holds 255 bytes).
const MAX_TABLE_NAME: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`]: how the dump is laid out.
    pub format: u32,
    pub codestats_version: String,
    pub clickhouse_version: String,
    /// The database the dump was taken of.
    pub database: String,
    /// The highest migration applied to that database.
    pub schema_version: u32,
    /// Unix milliseconds: the log-fed tables hold the rows received before.
    pub cut_ms: u64,
    /// When the dump began, RFC 3339, UTC.
    pub created_at: String,
    pub tables: Vec<TableEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    pub name: String,
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
    pub engine: String,
    pub columns: Vec<ColumnEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnEntry {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
}

/// `TABLE.native.gz`.
pub fn table_file(table: &str) -> String {
    format!("{table}{TABLE_FILE_SUFFIX}")
}

/// Whether `name` may name a table in a dump: ASCII letters, digits and
/// `_`, so its file name is one plain path component.
pub fn valid_table_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TABLE_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl Manifest {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(MANIFEST_FILE)
    }

    /// Reads `dir`'s manifest and checks it ([`Manifest::check`]) against
    /// `latest_schema`, the newest migration this binary knows.
    pub fn read(dir: &Path, latest_schema: u32) -> Result<Self> {
        use std::io::Read;
        let path = Self::path(dir);
        let file = std::fs::File::open(&path).map_err(|e| Error::file(&path, e))?;
        let mut text = Vec::new();
        file.take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(|e| Error::file(&path, e))?;
        if text.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(Error::Invalid(format!(
                "{}: larger than {MAX_MANIFEST_BYTES} bytes: not a codestats manifest",
                path.display()
            )));
        }
        let manifest: Manifest = serde_json::from_slice(&text)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        manifest
            .check(latest_schema)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        Ok(manifest)
    }

    /// Writes the manifest into `dir` and fsyncs it.
    pub fn write(&self, dir: &Path) -> Result<()> {
        use std::io::Write;
        let path = Self::path(dir);
        let mut text = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Invalid(format!("cannot encode the manifest: {e}")))?;
        text.push(b'\n');
        let mut file = std::fs::File::create(&path).map_err(|e| Error::file(&path, e))?;
        file.write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::file(&path, e))
    }

    /// Refuses what a restore cannot trust: another format, a schema newer
    /// than `latest_schema`, a table twice, a name or file that is not one
    /// plain `TABLE.native.gz`, a malformed checksum, a table without
    /// columns.
    pub fn check(&self, latest_schema: u32) -> std::result::Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "dump format {}; this codestats reads format {FORMAT}",
                self.format
            ));
        }
        if self.schema_version > latest_schema {
            return Err(format!(
                "the dump is of schema version {}, newer than this codestats knows ({latest_schema}): \
                 restore it with the codestats that made it, or a newer one",
                self.schema_version
            ));
        }
        let mut seen = HashSet::new();
        for table in &self.tables {
            if !valid_table_name(&table.name) {
                return Err(format!("table name {:?} is not allowed", table.name));
            }
            if !seen.insert(table.name.as_str()) {
                return Err(format!("table {} is listed twice", table.name));
            }
            if table.file != table_file(&table.name) {
                return Err(format!(
                    "table {}: file {:?} should be {:?}",
                    table.name,
                    table.file,
                    table_file(&table.name)
                ));
            }
            if table.sha256.len() != 64
                || !table
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(format!(
                    "table {}: sha256 is not 64 lowercase hex digits",
                    table.name
                ));
            }
            if table.columns.is_empty() || table.columns.iter().any(|c| c.name.is_empty()) {
                return Err(format!(
                    "table {}: no columns, or a nameless one",
                    table.name
                ));
            }
            let mut names = HashSet::new();
            if let Some(c) = table.columns.iter().find(|c| !names.insert(&c.name)) {
                return Err(format!("table {}: column {} twice", table.name, c.name));
            }
        }
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.tables.iter().map(|t| t.bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT,
            codestats_version: "0.1.0".into(),
            clickhouse_version: "18.16.1".into(),
            database: "codestats".into(),
            schema_version: 6,
            cut_ms: 1_764_130_000_000,
            created_at: "2026-11-26T04:20:05Z".into(),
            tables: vec![TableEntry {
                name: "pulses".into(),
                file: "pulses.native.gz".into(),
                rows: 3,
                bytes: 100,
                sha256: "ab".repeat(32),
                engine: "MergeTree".into(),
                columns: vec![
                    ColumnEntry {
                        name: "pulse_id".into(),
                        data_type: "UInt64".into(),
                    },
                    ColumnEntry {
                        name: "language".into(),
                        data_type: "String".into(),
                    },
                ],
            }],
        }
    }

    #[test]
    fn writes_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest();
        m.write(dir.path()).unwrap();
        let text = std::fs::read_to_string(Manifest::path(dir.path())).unwrap();
        assert!(text.contains("\"type\": \"UInt64\""), "{text}");
        assert_eq!(Manifest::read(dir.path(), 6).unwrap(), m);
        assert_eq!((m.rows(), m.bytes()), (3, 100));
    }

    /// Each case: a change to a good manifest, and a part of the refusal.
    #[test]
    fn refuses_what_a_restore_cannot_trust() {
        type Change = fn(&mut Manifest);
        let cases: Vec<(Change, &str)> = vec![
            (|m| m.format = 2, "dump format 2"),
            (|m| m.schema_version = 7, "schema version 7, newer"),
            (|m| m.tables[0].name = "../etc".into(), "not allowed"),
            (|m| m.tables[0].name = String::new(), "not allowed"),
            (
                |m| m.tables[0].file = "../pulses.native.gz".into(),
                "should be",
            ),
            (|m| m.tables[0].sha256 = "AB".repeat(32), "sha256"),
            (|m| m.tables[0].sha256 = "ab".into(), "sha256"),
            (|m| m.tables[0].columns.clear(), "no columns"),
            (
                |m| m.tables[0].columns[1].name = "pulse_id".into(),
                "column pulse_id twice",
            ),
            (
                |m| {
                    let t = m.tables[0].clone();
                    m.tables.push(t)
                },
                "listed twice",
            ),
        ];
        assert_eq!(manifest().check(6), Ok(()));
        for (change, expected) in cases {
            let mut m = manifest();
            change(&mut m);
            let err = m.check(6).unwrap_err();
            assert!(err.contains(expected), "{expected:?} not in {err:?}");
        }
    }

    #[test]
    fn a_broken_manifest_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(Manifest::path(dir.path()), b"{\"format\": 1").unwrap();
        let err = Manifest::read(dir.path(), 6).unwrap_err().to_string();
        assert!(err.contains("manifest.json"), "{err}");
        let missing = tempfile::tempdir().unwrap();
        let err = Manifest::read(missing.path(), 6).unwrap_err().to_string();
        assert!(
            err.contains("manifest.json") && err.contains("No such file"),
            "{err}"
        );
    }

    #[test]
    fn table_names_are_plain() {
        for good in ["pulses", "xp_hourly", "T1"] {
            assert!(valid_table_name(good), "{good}");
        }
        for bad in ["", ".inner.x", "a/b", "a b", "..", "ä"] {
            assert!(!valid_table_name(bad), "{bad}");
        }
    }
}
