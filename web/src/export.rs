//! A user's pulses as a download, streamed: rows are read from ClickHouse
//! as the client takes the body, so memory holds at most one chunk (CSV,
//! [`CSV_CHUNK_BYTES`]) or one row group (Parquet, [`PARQUET_GROUP_ROWS`])
//! whatever the user's history.
//!
//! Columns, as Code::Stats exports them: `sent_at` (UTC, RFC 3339),
//! `sent_at_local` (the plugin's local time, no offset), `tz_offset`
//! (minutes east of UTC), `language`, `machine`, `amount` (XP).

use bytes::Bytes;
use chrono::{DateTime, Duration, NaiveDateTime};
use polars::prelude::{
    DataFrame, DataType, IntoColumn, NamedFrom, ParquetWriter, PlSmallStr, Series, TimeUnit,
};
use sql::export::ExportRow;
use std::collections::HashMap;
use tokio::sync::mpsc;

/// The CSV header line.
pub const CSV_HEADER: &str = "sent_at,sent_at_local,tz_offset,language,machine,amount\n";
/// A CSV body chunk is sent once it holds this much.
pub const CSV_CHUNK_BYTES: usize = 64 * 1024;
/// Rows per Parquet row group (one group is in memory at a time).
pub const PARQUET_GROUP_ROWS: usize = 64 * 1024;

fn utc(secs: u32) -> NaiveDateTime {
    DateTime::from_timestamp(i64::from(secs), 0)
        .unwrap_or_default()
        .naive_utc()
}

fn local(row: &ExportRow) -> NaiveDateTime {
    utc(row.coded_at) + Duration::minutes(i64::from(row.utc_offset))
}

/// A CSV field: quoted when it holds a comma, quote or line break
/// (RFC 4180); a leading `= + - @` is prefixed with `'` so a spreadsheet
/// does not run it as a formula.
fn csv_field(out: &mut String, text: &str) {
    let guarded = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if guarded || text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        if guarded {
            out.push('\'');
        }
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

/// Appends one CSV line for `row`.
pub fn csv_line(out: &mut String, row: &ExportRow, machines: &HashMap<u64, String>) {
    use std::fmt::Write;
    let _ = write!(
        out,
        "{},{},{},",
        utc(row.coded_at).format("%Y-%m-%dT%H:%M:%SZ"),
        local(row).format("%Y-%m-%dT%H:%M:%S"),
        row.utc_offset
    );
    csv_field(out, &row.language);
    out.push(',');
    csv_field(
        out,
        machines
            .get(&row.machine_id)
            .map(String::as_str)
            .unwrap_or(""),
    );
    let _ = writeln!(out, ",{}", row.xp);
}

/// A `Write` that hands what it is given to an async body, chunk by chunk
/// (from a blocking thread).
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CSV_CHUNK_BYTES {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = std::io::Write::flush(self);
    }
}

/// One row group as a frame.
fn frame(
    rows: &[ExportRow],
    machines: &HashMap<u64, String>,
) -> polars::prelude::PolarsResult<DataFrame> {
    let ms = |t: NaiveDateTime| t.and_utc().timestamp_millis();
    let sent_at: Vec<i64> = rows.iter().map(|r| ms(utc(r.coded_at))).collect();
    let sent_local: Vec<i64> = rows.iter().map(|r| ms(local(r))).collect();
    let offset: Vec<i32> = rows.iter().map(|r| i32::from(r.utc_offset)).collect();
    let language: Vec<&str> = rows.iter().map(|r| r.language.as_str()).collect();
    let machine: Vec<&str> = rows
        .iter()
        .map(|r| {
            machines
                .get(&r.machine_id)
                .map(String::as_str)
                .unwrap_or("")
        })
        .collect();
    let amount: Vec<u32> = rows.iter().map(|r| r.xp).collect();
    let stamp = DataType::Datetime(TimeUnit::Milliseconds, None);
    let utc_stamp =
        DataType::Datetime(TimeUnit::Milliseconds, Some(polars::prelude::TimeZone::UTC));
    let columns = vec![
        Series::new(PlSmallStr::from("sent_at"), sent_at)
            .cast(&utc_stamp)?
            .into_column(),
        Series::new(PlSmallStr::from("sent_at_local"), sent_local)
            .cast(&stamp)?
            .into_column(),
        Series::new(PlSmallStr::from("tz_offset"), offset).into_column(),
        Series::new(PlSmallStr::from("language"), language).into_column(),
        Series::new(PlSmallStr::from("machine"), machine).into_column(),
        Series::new(PlSmallStr::from("amount"), amount).into_column(),
    ];
    DataFrame::new(rows.len(), columns)
}

/// Writes the row groups that arrive on `groups` as one Parquet file into
/// `tx`; runs on a blocking thread. Returns once `groups` is closed (or the
/// client went away). `release` runs before the file's last bytes go out,
/// so whatever it frees is free by the time the client has the file.
pub fn write_parquet(
    mut groups: mpsc::Receiver<Vec<ExportRow>>,
    machines: HashMap<u64, String>,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    release: impl FnOnce(),
) {
    let fail = |tx: &mpsc::Sender<Result<Bytes, std::io::Error>>, e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "parquet export failed");
        let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
    };
    let writer = ChannelWriter {
        tx: tx.clone(),
        buf: Vec::new(),
    };
    let schema = match frame(&[], &machines) {
        Ok(empty) => empty.schema().as_ref().clone(),
        Err(e) => return fail(&tx, &e),
    };
    let mut batched = match ParquetWriter::new(writer).batched(&schema) {
        Ok(b) => b,
        Err(e) => return fail(&tx, &e),
    };
    while let Some(rows) = groups.blocking_recv() {
        let written = frame(&rows, &machines).and_then(|df| batched.write_batch(&df));
        if let Err(e) = written {
            return fail(&tx, &e);
        }
    }
    let finished = batched.finish();
    release();
    if let Err(e) = finished {
        fail(&tx, &e);
    }
    // Dropping the writer sends what it still holds: the end of the file.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_quote_and_guard() {
        let machines = HashMap::from([(1, "work, \"main\"".to_owned())]);
        let row = ExportRow {
            coded_at: 1_700_000_000,
            utc_offset: -90,
            language: "=cmd".into(),
            machine_id: 1,
            xp: 12,
        };
        let mut out = String::new();
        csv_line(&mut out, &row, &machines);
        assert_eq!(
            out,
            "2023-11-14T22:13:20Z,2023-11-14T20:43:20,-90,\"'=cmd\",\"work, \"\"main\"\"\",12\n"
        );
    }
}
