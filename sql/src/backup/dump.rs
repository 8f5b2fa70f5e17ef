//! Taking a dump: per table one `SELECT … FORMAT Native`, its answer piped
//! through gzip into `TABLE.native.gz` while the blocks are counted and
//! the file hashed, then `manifest.json`. Which rows each query takes is
//! explained in the module above (`backup`).

use super::{
    FORMAT, LOG_FED, Progress, TableInfo, XP_HOURLY,
    manifest::{Manifest, TableEntry, table_file, valid_table_name},
    native::{self, NativeError},
    pipe::{self, ChannelReader, Digested, HashWriter, Tee},
};
use crate::{
    blocks::month_of,
    db::{Db, placeholders},
    error::{Error, Result},
};
use chrono::{DateTime, Datelike, SecondsFormat, TimeZone, Utc};
use clickhouse::sql::Identifier;
use flate2::{Compression, write::GzEncoder};
use std::{
    fs::File,
    io::{BufReader, BufWriter, Read},
    path::Path,
    sync::Arc,
    time::Instant,
};
use tokio::sync::mpsc;

/// gzip's level for table files: its default, a fair trade of CPU for size.
const GZIP_LEVEL: u32 = 6;
/// Buffer in front of a table file.
const FILE_BUFFER: usize = 256 << 10;
/// Longest part of an error ClickHouse appended to a stream that is shown.
const MAX_SERVER_ERROR_CHARS: usize = 1_000;

/// What the caller decides about a dump.
#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// Unix seconds: the log-fed tables hold the rows received before.
    pub cut: u32,
    /// When the dump began (the manifest's `created_at`).
    pub started: DateTime<Utc>,
    /// The version of the codestats taking it.
    pub codestats_version: String,
}

/// Dumps every table of `db`'s database into `dir` (existing and empty):
/// the table files, then `manifest.json`, each fsync'd. `progress` counts
/// the rows written.
pub async fn dump(
    db: &Db,
    dir: &Path,
    options: &DumpOptions,
    progress: &Arc<Progress>,
) -> Result<Manifest> {
    let started = Instant::now();
    progress.set_step("listing tables");
    let tables = super::tables(db).await?;
    if let Some(t) = tables.iter().find(|t| !valid_table_name(&t.name)) {
        return Err(Error::Invalid(format!(
            "table {:?}: only ASCII letters, digits and _ can be backed up",
            t.name
        )));
    }
    let stored: Vec<(String, u64)> = db
        .client()
        .query(
            "SELECT table, sum(rows) FROM system.parts \
             WHERE database = currentDatabase() AND active GROUP BY table",
        )
        .fetch_all()
        .await?;
    progress.start(
        stored
            .iter()
            .filter(|(name, _)| tables.iter().any(|t| &t.name == name))
            .map(|(_, rows)| rows)
            .sum(),
    );
    let mut entries = Vec::with_capacity(tables.len());
    for table in &tables {
        progress.set_step(&table.name);
        let entry = dump_table(db, dir, table, options.cut, progress).await?;
        tracing::info!(
            table = %table.name,
            rows = entry.rows,
            bytes = entry.bytes,
            "table dumped"
        );
        entries.push(entry);
    }
    let manifest = Manifest {
        format: FORMAT,
        codestats_version: options.codestats_version.clone(),
        clickhouse_version: db.version().await?,
        database: db.database().to_owned(),
        schema_version: super::schema_version(db).await?,
        cut_ms: u64::from(options.cut) * 1000,
        created_at: options.started.to_rfc3339_opts(SecondsFormat::Secs, true),
        tables: entries,
    };
    manifest.write(dir)?;
    tracing::info!(
        tables = manifest.tables.len(),
        rows = manifest.rows(),
        bytes = manifest.bytes(),
        took_ms = started.elapsed().as_millis() as u64,
        "dump written"
    );
    Ok(manifest)
}

/// Streams one table into `dir/TABLE.native.gz`.
async fn dump_table(
    db: &Db,
    dir: &Path,
    table: &TableInfo,
    cut: u32,
    progress: &Arc<Progress>,
) -> Result<TableEntry> {
    stream_table(select(db, table, cut)?, dir, table, progress).await
}

/// Streams `query`'s answer into `table`'s file in `dir`.
async fn stream_table(
    query: clickhouse::query::Query,
    dir: &Path,
    table: &TableInfo,
    progress: &Arc<Progress>,
) -> Result<TableEntry> {
    let file = table_file(&table.name);
    let mut cursor = query.fetch_bytes("Native")?;
    let (tx, rx) = mpsc::channel(pipe::CHANNEL_CHUNKS);
    let writer = {
        let (path, table, progress) = (dir.join(&file), table.clone(), progress.clone());
        tokio::task::spawn_blocking(move || write_table(rx, &path, &table, &progress))
    };
    let fetched: Result<()> = async {
        while let Some(chunk) = cursor.next().await? {
            if tx.send(chunk).await.is_err() {
                break; // the writer failed: its error says why
            }
        }
        Ok(())
    }
    .await;
    drop(tx);
    let written = writer
        .await
        .map_err(|e| Error::Invalid(format!("table {}: the writer failed: {e}", table.name)))?;
    // A server error cuts the stream short: it explains the writer's.
    fetched.map_err(|e| Error::Invalid(format!("table {}: {e}", table.name)))?;
    let (rows, digest) = written?;
    Ok(TableEntry {
        name: table.name.clone(),
        file,
        rows,
        bytes: digest.bytes,
        sha256: digest.sha256,
        engine: table.engine.clone(),
        columns: table.columns.clone(),
    })
}

/// The blocking side: chunks from `rx` through the Native walker (which
/// counts rows and checks every block's columns) and gzip into `path`,
/// fsync'd.
fn write_table<T: AsRef<[u8]>>(
    rx: mpsc::Receiver<T>,
    path: &Path,
    table: &TableInfo,
    progress: &Progress,
) -> Result<(u64, Digested)> {
    let file = File::create(path).map_err(|e| Error::file(path, e))?;
    let gzip = GzEncoder::new(
        HashWriter::new(BufWriter::with_capacity(FILE_BUFFER, file)),
        Compression::new(GZIP_LEVEL),
    );
    let mut input =
        BufReader::with_capacity(pipe::READ_BUFFER, Tee::new(ChannelReader::new(rx), gzip));
    let walked = native::read_blocks(&mut input, |block| {
        block.check(&table.columns)?;
        progress.add_rows(block.rows);
        Ok(())
    });
    let rows = match walked {
        Ok(rows) => rows,
        Err(NativeError::Io(e)) => return Err(Error::file(path, e)),
        Err(NativeError::Format(msg)) => {
            return Err(Error::Invalid(format!(
                "table {}: {}",
                table.name,
                explain(&mut input, &msg)
            )));
        }
    };
    let (_, gzip) = input.into_inner().into_parts();
    let (buffered, digest) = gzip.finish().map_err(|e| Error::file(path, e))?.finish();
    buffered
        .into_inner()
        .map_err(|e| Error::file(path, e.into_error()))?
        .sync_all()
        .map_err(|e| Error::file(path, e))?;
    Ok((rows, digest))
}

type DumpInput<T> = BufReader<Tee<ChannelReader<T>, GzEncoder<HashWriter<BufWriter<File>>>>>;

/// Why a stream is not Native: usually an error ClickHouse appended to
/// the answer after its first blocks (18.16 cannot change the status by
/// then). Shows that error when the stream's end holds one.
fn explain<T: AsRef<[u8]>>(input: &mut DumpInput<T>, msg: &str) -> String {
    let mut rest = Vec::new();
    let _ = input
        .by_ref()
        .take(pipe::TAIL_BYTES as u64)
        .read_to_end(&mut rest);
    let tail = input.get_ref().inner().tail();
    let text = String::from_utf8_lossy(&tail);
    match text.find("Code: ") {
        Some(at) => format!(
            "clickhouse: {}",
            text[at..]
                .trim()
                .chars()
                .take(MAX_SERVER_ERROR_CHARS)
                .collect::<String>()
        ),
        None => format!("the server's answer is not a Native stream: {msg}"),
    }
}

/// `xp_hourly`'s columns as this code sums them from `pulses`.
const XP_COLUMNS: [(&str, &str); 8] = [
    ("received_month", "UInt32"),
    ("user_id", "UInt64"),
    ("local_date", "Date"),
    ("local_hour", "UInt8"),
    ("machine_id", "UInt64"),
    ("language", "String"),
    ("xp", "UInt64"),
    ("marker", "UInt8"),
];

/// `xp_hourly` as of the cut: the months before the cut's as stored
/// (summed), the cut's month summed from the pulses received before the
/// cut, with the markers of their blocks. Binds: the cut's month
/// (`YYYYMM`), then the month's first second and the cut, twice with the
/// month between. Sums as `sql::blocks::xp_rows` does.
const XP_HOURLY_SQL: &str = "\
SELECT received_month, user_id, local_date, local_hour, machine_id, language, xp, marker \
FROM xp_hourly FINAL WHERE received_month < ? AND (xp > 0 OR marker > 0) \
UNION ALL \
SELECT received_month, user_id, local_date, local_hour, machine_id, language, \
    xp_sum AS xp, materialize(toUInt8(0)) AS marker \
FROM ( \
    SELECT toYYYYMM(received_at, 'UTC') AS received_month, user_id, \
        toDate(coded_at + utc_offset * 60, 'UTC') AS local_date, \
        toUInt8(toHour(coded_at + utc_offset * 60, 'UTC')) AS local_hour, \
        machine_id, language, toUInt64(sum(xp)) AS xp_sum \
    FROM pulses WHERE received_at >= toDateTime(?) AND received_at < toDateTime(?) \
    GROUP BY received_month, user_id, local_date, local_hour, machine_id, language \
) WHERE xp_sum > 0 \
UNION ALL \
SELECT received_month, user_id, local_date, local_hour, machine_id, language, xp, marker \
FROM xp_hourly FINAL WHERE user_id = 0 AND marker > 0 AND received_month = ? \
    AND machine_id IN (SELECT batch_id FROM pulses \
        WHERE received_at >= toDateTime(?) AND received_at < toDateTime(?))";

/// The query that dumps `table` as of `cut`.
fn select(db: &Db, table: &TableInfo, cut: u32) -> Result<clickhouse::query::Query> {
    // A WHERE after FINAL must filter merged rows: never moved before the
    // merge (18.16 does not move it either; later releases decide by
    // setting).
    let settings = |q: clickhouse::query::Query| q.with_setting("optimize_move_to_prewhere", "0");
    if table.name == XP_HOURLY {
        let known = table.columns.len() == XP_COLUMNS.len()
            && table
                .columns
                .iter()
                .zip(XP_COLUMNS)
                .all(|(c, (name, data_type))| c.name == name && c.data_type == data_type);
        if !known || !table.engine.ends_with("SummingMergeTree") {
            return Err(Error::Invalid(format!(
                "{XP_HOURLY} is not the table this codestats sums (columns or engine changed): \
                 its dump must change with it"
            )));
        }
        let (month, from) = (month_of(cut), month_start(cut));
        let query = db
            .client()
            .query(XP_HOURLY_SQL)
            .bind(month)
            .bind(from)
            .bind(cut)
            .bind(month)
            .bind(from)
            .bind(cut);
        return Ok(settings(query));
    }
    let cut_by_time = LOG_FED.contains(&table.name.as_str());
    if cut_by_time && !table.columns.iter().any(|c| c.name == "received_at") {
        return Err(Error::Invalid(format!(
            "table {} has no received_at column to cut by",
            table.name
        )));
    }
    let sql = format!(
        "SELECT {} FROM ?{}{}",
        placeholders(table.columns.len()),
        if table.merges_rows() { " FINAL" } else { "" },
        if cut_by_time {
            " WHERE received_at < toDateTime(?)"
        } else {
            ""
        }
    );
    let mut query = db.client().query(&sql);
    for column in &table.columns {
        query = query.bind(Identifier(&column.name));
    }
    query = query.bind(Identifier(&table.name));
    if cut_by_time {
        query = query.bind(cut);
    }
    Ok(settings(query))
}

/// The first second (UTC) of the month of `secs`.
fn month_start(secs: u32) -> u32 {
    let at = Utc
        .timestamp_opt(i64::from(secs), 0)
        .single()
        .unwrap_or_default();
    Utc.with_ymd_and_hms(at.year(), at.month(), 1, 0, 0, 0)
        .single()
        .map_or(0, |d| d.timestamp() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::ColumnEntry;

    /// An error after the first blocks arrives as text after them, with
    /// status 200 already sent: it is what the dump reports.
    #[tokio::test]
    async fn an_error_in_the_middle_of_a_stream_is_reported_as_the_server_says() {
        let db = crate::test_db!();
        let dir = tempfile::tempdir().unwrap();
        let table = TableInfo {
            name: "numbers".into(),
            engine: "MergeTree".into(),
            columns: vec![
                ColumnEntry {
                    name: "n".into(),
                    data_type: "UInt64".into(),
                },
                ColumnEntry {
                    name: "x".into(),
                    data_type: "UInt8".into(),
                },
            ],
        };
        // Megabytes of rows first, so the server has begun its answer.
        let query = db.client().query(
            "SELECT number AS n, throwIf(number = 500000) AS x FROM system.numbers LIMIT 600000",
        );
        let progress = Arc::new(Progress::default());
        let err = stream_table(query, dir.path(), &table, &progress)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("table numbers: "), "{err}");
        assert!(err.contains("Code: 395"), "{err}");
        assert!(progress.rows() > 0, "no block arrived before the error");
    }

    #[test]
    fn month_start_is_the_first_second_of_the_utc_month() {
        // 2024-02-29 23:59:59 UTC, 2024-03-01 00:00:00, 1970-01-15.
        assert_eq!(month_start(1_709_251_199), 1_706_745_600);
        assert_eq!(month_start(1_709_251_200), 1_709_251_200);
        assert_eq!(month_start(1_209_600), 0);
    }
}
