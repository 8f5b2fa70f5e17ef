//! Restoring a dump into an empty store. Nothing is inserted until the
//! dump is known whole and the store known ready:
//!
//! 1. the manifest is read and checked (format, schema version, names);
//! 2. every file's size and SHA-256 are checked against the manifest;
//! 3. every table and column of the dump must exist in the store with the
//!    same type (a newer schema may have more of both);
//! 4. every table of the store must be empty.
//!
//! Then table by table: the file is gunzip'd into one
//! `INSERT INTO t (columns of the dump) FORMAT Native` while its blocks
//! are walked and counted and its bytes hashed again; the INSERT is ended
//! (committed) only when both match the manifest, and the table must then
//! hold the manifest's rows. ClickHouse writes a large INSERT in parts as
//! it arrives, so a restore that fails half way leaves a partial store:
//! drop the database and restore again.

use super::{
    Progress, TableInfo, latest_schema_version,
    manifest::{Manifest, TableEntry},
    native::{self, NativeError},
    pipe::{self, ChannelWriter, Digested, HashReader, Tee},
};
use crate::{
    db::{Db, placeholders},
    error::{Error, Result},
};
use clickhouse::sql::Identifier;
use flate2::read::MultiGzDecoder;
use std::{
    fs::File,
    io::BufReader,
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};
use tokio::sync::mpsc;

/// Restores the dump in `dir` into `db`'s database, which must be migrated
/// and empty. `progress` counts the rows inserted. Returns the manifest.
pub async fn restore(db: &Db, dir: &Path, progress: &Arc<Progress>) -> Result<Manifest> {
    let started = Instant::now();
    let manifest = Manifest::read(dir, latest_schema_version())?;
    progress.set_step("checking files");
    let (checked, list) = (dir.to_owned(), manifest.tables.clone());
    tokio::task::spawn_blocking(move || verify_files(&checked, &list))
        .await
        .map_err(|e| Error::Invalid(format!("checking the dump failed: {e}")))??;

    let targets = super::tables(db).await?;
    for table in &manifest.tables {
        fits(table, &targets, db.database())?;
    }
    for target in &targets {
        let rows = count(db, &target.name).await?;
        if rows > 0 {
            return Err(Error::Invalid(format!(
                "table {} of database {} holds {rows} rows: a restore needs an empty store \
                 (drop the database, or restore into another CODESTATS_CLICKHOUSE_DATABASE)",
                target.name,
                db.database()
            )));
        }
    }

    progress.start(manifest.rows());
    for table in &manifest.tables {
        progress.set_step(&table.name);
        insert_table(db, dir, table, progress).await?;
        tracing::info!(table = %table.name, rows = table.rows, "table restored");
    }
    tracing::info!(
        tables = manifest.tables.len(),
        rows = manifest.rows(),
        took_ms = started.elapsed().as_millis() as u64,
        "dump restored"
    );
    Ok(manifest)
}

/// Checks each table file's size and SHA-256 against the manifest.
fn verify_files(dir: &Path, tables: &[TableEntry]) -> Result<()> {
    for table in tables {
        let path = dir.join(&table.file);
        let file = File::open(&path).map_err(|e| Error::file(&path, e))?;
        let digest = HashReader::new(file)
            .finish()
            .map_err(|e| Error::file(&path, e))?;
        matches_manifest(&path, table, &digest)?;
    }
    Ok(())
}

fn matches_manifest(path: &Path, table: &TableEntry, digest: &Digested) -> Result<()> {
    if digest.bytes != table.bytes {
        return Err(Error::Invalid(format!(
            "{}: {} bytes, the manifest says {}: the dump is damaged or was changed",
            path.display(),
            digest.bytes,
            table.bytes
        )));
    }
    if digest.sha256 != table.sha256 {
        return Err(Error::Invalid(format!(
            "{}: its SHA-256 is not the manifest's: the dump is damaged or was changed",
            path.display()
        )));
    }
    Ok(())
}

/// Refuses a table of the dump that the store lacks, or whose columns it
/// lacks or types differently.
fn fits(table: &TableEntry, targets: &[TableInfo], database: &str) -> Result<()> {
    let Some(target) = targets.iter().find(|t| t.name == table.name) else {
        return Err(Error::Invalid(format!(
            "table {} of the dump does not exist in database {database}",
            table.name
        )));
    };
    for column in &table.columns {
        match target.columns.iter().find(|c| c.name == column.name) {
            Some(c) if c.data_type == column.data_type => {}
            Some(c) => {
                return Err(Error::Invalid(format!(
                    "table {}: column {} is {} in the dump and {} in database {database}",
                    table.name, column.name, column.data_type, c.data_type
                )));
            }
            None => {
                return Err(Error::Invalid(format!(
                    "table {}: column {} of the dump does not exist in database {database}",
                    table.name, column.name
                )));
            }
        }
    }
    Ok(())
}

async fn count(db: &Db, table: &str) -> Result<u64> {
    Ok(db
        .client()
        .query("SELECT count() FROM ?")
        .bind(Identifier(table))
        .fetch_one()
        .await?)
}

/// Streams one table file into one INSERT, committed only when the file
/// was whole.
async fn insert_table(
    db: &Db,
    dir: &Path,
    table: &TableEntry,
    progress: &Arc<Progress>,
) -> Result<()> {
    let in_table = |e: Error| Error::Invalid(format!("table {}: {e}", table.name));
    if table.rows > 0 {
        // Names checked against the store's tables by `fits`, and quoted.
        let sql = format!(
            "INSERT INTO ? ({}) FORMAT Native",
            placeholders(table.columns.len())
        );
        let mut query = db.client().query(&sql).bind(Identifier(&table.name));
        for column in &table.columns {
            query = query.bind(Identifier(&column.name));
        }
        let mut insert = db
            .client()
            .insert_formatted_with(query.sql_display().to_string());
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(pipe::CHANNEL_CHUNKS);
        let reader = {
            let (path, table, progress) = (dir.join(&table.file), table.clone(), progress.clone());
            tokio::task::spawn_blocking(move || read_table(&path, tx, &table, &progress))
        };
        let mut sent = Ok(());
        while let Some(chunk) = rx.recv().await {
            if let Err(e) = insert.send(chunk.into()).await {
                sent = Err(Error::from(e));
                break;
            }
        }
        drop(rx);
        let read = reader
            .await
            .map_err(|e| Error::Invalid(format!("table {}: the reader failed: {e}", table.name)))?;
        // The INSERT's error explains the reader's (its channel closed).
        sent.map_err(in_table)?;
        let (path, rows, digest) = read?;
        matches_manifest(&path, table, &digest)?;
        if rows != table.rows {
            return Err(Error::Invalid(format!(
                "{}: {rows} rows, the manifest says {}",
                path.display(),
                table.rows
            )));
        }
        insert.end().await.map_err(|e| in_table(e.into()))?;
    }
    let stored = count(db, &table.name).await?;
    if stored != table.rows {
        return Err(Error::Invalid(format!(
            "table {} holds {stored} rows after the restore, the dump {}",
            table.name, table.rows
        )));
    }
    Ok(())
}

/// The blocking side: the file, hashed, gunzip'd, walked block by block
/// (columns checked, rows counted) and sent on to the INSERT.
fn read_table(
    path: &Path,
    tx: mpsc::Sender<Vec<u8>>,
    table: &TableEntry,
    progress: &Progress,
) -> Result<(PathBuf, u64, Digested)> {
    let file = File::open(path).map_err(|e| Error::file(path, e))?;
    let gunzip = MultiGzDecoder::new(HashReader::new(file));
    let mut input =
        BufReader::with_capacity(pipe::READ_BUFFER, Tee::new(gunzip, ChannelWriter::new(tx)));
    let rows = native::read_blocks(&mut input, |block| {
        block.check(&table.columns)?;
        progress.add_rows(block.rows);
        Ok(())
    })
    .map_err(|e| match e {
        NativeError::Io(e) => Error::file(path, e),
        NativeError::Format(msg) => {
            Error::Invalid(format!("{}: not a Native stream: {msg}", path.display()))
        }
    })?;
    let (gunzip, _) = input.into_inner().into_parts();
    let digest = gunzip
        .into_inner()
        .finish()
        .map_err(|e| Error::file(path, e))?;
    Ok((path.to_owned(), rows, digest))
}
