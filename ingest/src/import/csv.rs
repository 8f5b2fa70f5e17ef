//! A Code::Stats pulse export, read row by row: `sent_at` (RFC 3339),
//! `sent_at_local`, `tz_offset` (minutes east of UTC), `language`,
//! `machine`, `amount` (XP). Columns are found by their header, in any
//! order; `sent_at_local` is not needed (it is `sent_at` plus the offset).

use super::{CHUNK_ROWS, Chunk, Parsed};
use crate::limits::{MAX_UTC_OFFSET_MINUTES, MAX_XP_PER_ITEM};
use sql::pulses::PulseRow;
use std::collections::BTreeMap;
use tokio::sync::mpsc;

pub const COLUMNS: [&str; 5] = ["sent_at", "tz_offset", "language", "machine", "amount"];

pub(super) fn parse(reader: impl std::io::Read, tx: &mpsc::Sender<Parsed>) -> Result<(), String> {
    let mut csv = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(reader);
    let headers = csv
        .headers()
        .map_err(|e| format!("not a Code::Stats CSV export: {e}"))?
        .clone();
    let mut at = [0usize; 5];
    for (slot, name) in at.iter_mut().zip(COLUMNS) {
        *slot = headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| format!("not a Code::Stats CSV export: no {name} column"))?;
    }
    let mut rows = Vec::with_capacity(CHUNK_ROWS);
    let mut machines = Vec::with_capacity(CHUNK_ROWS);
    let mut rejected: BTreeMap<String, u64> = BTreeMap::new();
    let mut read = 0u64;
    let mut record = ::csv::StringRecord::new();
    loop {
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                read += 1;
                let field = |i: usize| record.get(at[i]).map(str::trim);
                match row(field(0), field(1), field(2), field(3), field(4)) {
                    Ok((row, machine)) => {
                        rows.push(row);
                        machines.push(machine);
                    }
                    Err(reason) => *rejected.entry(reason.to_owned()).or_default() += 1,
                }
            }
            Err(e) if e.is_io_error() => return Err(format!("cannot read the file: {e}")),
            Err(_) => {
                read += 1;
                *rejected.entry("unreadable CSV row".to_owned()).or_default() += 1;
            }
        }
        if rows.len() >= CHUNK_ROWS {
            let parsed = Parsed {
                chunk: Chunk::Pulses(std::mem::take(&mut rows), std::mem::take(&mut machines)),
                read: std::mem::take(&mut read),
                rejected: std::mem::take(&mut rejected),
            };
            if tx.blocking_send(parsed).is_err() {
                return Ok(());
            }
        }
    }
    let _ = tx.blocking_send(Parsed {
        chunk: Chunk::Pulses(rows, machines),
        read,
        rejected,
    });
    Ok(())
}

/// One row as a pulse row (ids and machine filled in by the writer) and its
/// machine's name.
fn row(
    sent_at: Option<&str>,
    tz_offset: Option<&str>,
    language: Option<&str>,
    machine: Option<&str>,
    amount: Option<&str>,
) -> Result<(PulseRow, String), &'static str> {
    let sent_at = chrono::DateTime::parse_from_rfc3339(sent_at.unwrap_or_default())
        .map_err(|_| "sent_at is not an RFC 3339 time")?;
    let coded_at = u32::try_from(sent_at.timestamp()).map_err(|_| "sent_at out of range")?;
    let utc_offset: i32 = tz_offset
        .unwrap_or_default()
        .parse()
        .map_err(|_| "tz_offset is not whole minutes")?;
    if utc_offset.abs() > MAX_UTC_OFFSET_MINUTES {
        return Err("tz_offset out of range");
    }
    let language = sql::names::normalize_language(language.unwrap_or_default())
        .ok_or("language name too long")?;
    let machine = machine.unwrap_or_default();
    if machine.is_empty() {
        return Err("no machine");
    }
    let xp: u64 = amount
        .unwrap_or_default()
        .parse()
        .map_err(|_| "amount is not a whole number")?;
    if xp == 0 || xp > MAX_XP_PER_ITEM {
        return Err("amount out of range");
    }
    Ok((
        PulseRow {
            pulse_id: 0,
            batch_id: 0,
            user_id: 0,
            machine_id: 0,
            coded_at,
            utc_offset: utc_offset as i16,
            language: language.to_owned(),
            xp: xp as u32,
            received_at: 0,
        },
        machine.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_refusals() {
        let (pulse, machine) = row(
            Some("2024-03-01T12:00:00Z"),
            Some("120"),
            Some("Rust"),
            Some("laptop"),
            Some("42"),
        )
        .unwrap();
        assert_eq!(
            (pulse.coded_at, pulse.utc_offset, pulse.xp),
            (1_709_294_400, 120, 42)
        );
        assert_eq!(machine, "laptop");
        for (args, reason) in [
            (
                ("yesterday", "0", "Go", "m", "1"),
                "sent_at is not an RFC 3339 time",
            ),
            (
                ("2024-03-01T12:00:00Z", "x", "Go", "m", "1"),
                "tz_offset is not whole minutes",
            ),
            (
                ("2024-03-01T12:00:00Z", "9999", "Go", "m", "1"),
                "tz_offset out of range",
            ),
            (("2024-03-01T12:00:00Z", "0", "Go", "", "1"), "no machine"),
            (
                ("2024-03-01T12:00:00Z", "0", "Go", "m", "-1"),
                "amount is not a whole number",
            ),
            (
                ("2024-03-01T12:00:00Z", "0", "Go", "m", "0"),
                "amount out of range",
            ),
        ] {
            assert_eq!(
                row(
                    Some(args.0),
                    Some(args.1),
                    Some(args.2),
                    Some(args.3),
                    Some(args.4)
                )
                .err(),
                Some(reason)
            );
        }
    }
}
