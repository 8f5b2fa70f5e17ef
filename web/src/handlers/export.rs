//! `/my/pulses.csv` and `/my/pulses.parquet`: the signed-in user's pulses,
//! streamed (see `crate::export`), one at a time per user and
//! [`MAX_EXPORTS`] at a time in all. The first row is read before the answer
//! starts, so a store that is down gets a proper 503; an error later ends
//! the download early (the client sees a truncated body).

use crate::{
    WebState,
    error::WebError,
    export::{CSV_CHUNK_BYTES, CSV_HEADER, PARQUET_GROUP_ROWS, csv_line, write_parquet},
    pages::private_headers,
    session::Visitor,
};
use axum::{
    body::Body,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use sql::{accounts, export::ExportRow};
use std::collections::HashMap;
use tokio::sync::mpsc;

type Chunk = Result<Bytes, std::io::Error>;

/// Exports running at once on this server.
pub const MAX_EXPORTS: usize = 4;

/// A running export's place: one per user, [`MAX_EXPORTS`] in all; freed
/// when the download ends (the streaming task drops it).
pub struct ExportSlot {
    web: WebState,
    user_id: u64,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for ExportSlot {
    fn drop(&mut self) {
        self.web
            .exports
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.user_id);
    }
}

/// Who is exporting now.
pub struct Exports {
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    running: std::sync::Mutex<std::collections::HashSet<u64>>,
}

impl Default for Exports {
    fn default() -> Self {
        Self {
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_EXPORTS)),
            running: std::sync::Mutex::new(std::collections::HashSet::new()),
        }
    }
}

/// A slot for `user_id`'s export, or 503 (all taken) / 429 (theirs runs).
fn slot(web: &WebState, user_id: u64) -> Result<ExportSlot, WebError> {
    let permit = web
        .exports
        .slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| WebError::Busy)?;
    let mut running = web
        .exports
        .running
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if !running.insert(user_id) {
        return Err(WebError::TooMany(
            "an export of yours is under way; wait for it to finish",
        ));
    }
    drop(running);
    Ok(ExportSlot {
        web: web.clone(),
        user_id,
        _permit: permit,
    })
}

async fn machine_names(
    web: &WebState,
    user: &accounts::User,
) -> Result<HashMap<u64, String>, WebError> {
    Ok(accounts::list_machines(&web.db, user)
        .await?
        .into_iter()
        .map(|m| (m.machine_id, m.name))
        .collect())
}

fn download(rx: mpsc::Receiver<Chunk>, content_type: &'static str, file: &'static str) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let mut response = Body::from_stream(stream).into_response();
    private_headers(&mut response);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static(file));
    response
}

/// The user's rows as the download reads them, the first read before the
/// answer starts.
struct Rows {
    first: Option<ExportRow>,
    cursor: sql::clickhouse::query::RowCursor<ExportRow>,
}

impl Rows {
    async fn open(web: &WebState, user_id: u64) -> Result<Self, WebError> {
        let mut cursor = sql::export::user_pulses(&web.db, user_id)?;
        let first = cursor.next().await.map_err(sql::Error::from)?;
        Ok(Self { first, cursor })
    }

    async fn next(&mut self) -> Result<Option<ExportRow>, sql::clickhouse::error::Error> {
        match self.first.take() {
            Some(row) => Ok(Some(row)),
            None => self.cursor.next().await,
        }
    }
}

fn stream_error(e: impl std::fmt::Display) -> std::io::Error {
    tracing::error!(error = %e, "export ended early");
    std::io::Error::other(e.to_string())
}

pub async fn csv(State(web): State<WebState>, visitor: Visitor) -> Result<Response, WebError> {
    let user = visitor.require()?.user.clone();
    let slot = slot(&web, user.user_id)?;
    let machines = machine_names(&web, &user).await?;
    let mut rows = Rows::open(&web, user.user_id).await?;
    let (tx, rx) = mpsc::channel::<Chunk>(2);
    tokio::spawn(async move {
        let _slot = slot;
        let mut out = String::with_capacity(CSV_CHUNK_BYTES + 1024);
        out.push_str(CSV_HEADER);
        loop {
            let row = match rows.next().await {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(stream_error(e))).await;
                    return;
                }
            };
            csv_line(&mut out, &row, &machines);
            if out.len() >= CSV_CHUNK_BYTES
                && tx
                    .send(Ok(Bytes::from(std::mem::take(&mut out))))
                    .await
                    .is_err()
            {
                return; // the client went away
            }
        }
        if !out.is_empty() {
            let _ = tx.send(Ok(Bytes::from(out))).await;
        }
    });
    Ok(download(
        rx,
        "text/csv; charset=utf-8",
        "attachment; filename=\"codestats-pulses.csv\"",
    ))
}

pub async fn parquet(State(web): State<WebState>, visitor: Visitor) -> Result<Response, WebError> {
    let user = visitor.require()?.user.clone();
    let slot = slot(&web, user.user_id)?;
    let machines = machine_names(&web, &user).await?;
    let mut rows = Rows::open(&web, user.user_id).await?;
    let (tx, rx) = mpsc::channel::<Chunk>(2);
    let (groups_tx, groups_rx) = mpsc::channel::<Vec<ExportRow>>(1);
    let writer_tx = tx.clone();
    tokio::task::spawn_blocking(move || {
        write_parquet(groups_rx, machines, writer_tx, move || drop(slot))
    });
    tokio::spawn(async move {
        let mut group = Vec::with_capacity(PARQUET_GROUP_ROWS);
        loop {
            let row = match rows.next().await {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => {
                    // The writer is left unfinished: the client gets an
                    // error, not a file that looks whole.
                    let _ = tx.send(Err(stream_error(e))).await;
                    return;
                }
            };
            group.push(row);
            if group.len() >= PARQUET_GROUP_ROWS
                && groups_tx.send(std::mem::take(&mut group)).await.is_err()
            {
                return;
            }
        }
        if !group.is_empty() {
            let _ = groups_tx.send(group).await;
        }
    });
    Ok(download(
        rx,
        "application/vnd.apache.parquet",
        "attachment; filename=\"codestats-pulses.parquet\"",
    ))
}
