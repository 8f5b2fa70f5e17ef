//! `POST /api/v1/users/current/heartbeats` and `…/heartbeats.bulk`: the
//! WakaTime heartbeat API (also under `/api/compat/wakatime/v1/` and
//! `/api/hackatime/v1/`).
//!
//! Every heartbeat of a request is checked on its own and answered in
//! WakaTime's shape, so clients clear their offline queues: 201 for one
//! stored, a copy of one stored, or one too old to keep
//! (`limits::MAX_HEARTBEAT_AGE`); 400 with `{"error"}` for an invalid one.
//! What is kept is appended to the ingest log as one record before the
//! answer, as pulses are: it reaches ClickHouse exactly once.

use crate::{
    AppState,
    error::AppError,
    limits::{MAX_HEARTBEAT_BODY_BYTES, MAX_HEARTBEAT_FIELD_CHARS, MAX_HEARTBEATS_PER_REQUEST},
    log::record::Record,
    wakatime::{
        self, MACHINE_HEADER, auth,
        heartbeat::{self, Checked, Origin, Verdict},
        user_agent,
    },
};
use axum::{
    Json,
    body::Body,
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};
use sql::{accounts::TokenOwner, heartbeats::HeartbeatRow};
use std::sync::Arc;

pub const NOT_A_LIST: &str = "the body must be a heartbeat or a list of heartbeats";

/// `?api_key=` (one of the ways to send the key).
#[derive(Debug, Default, Deserialize)]
pub struct KeyQuery {
    pub api_key: Option<String>,
}

/// The owner of the request's key, or 401 as WakaTime answers.
pub async fn authenticate(
    app: &AppState,
    headers: &HeaderMap,
    query: &Result<Query<KeyQuery>, QueryRejection>,
) -> Result<Arc<TokenOwner>, AppError> {
    let api_key = query.as_ref().ok().and_then(|q| q.api_key.as_deref());
    for key in auth::candidates(headers, api_key) {
        if let Some(owner) = app.tokens.owner(&key).await {
            return Ok(owner);
        }
    }
    Err(AppError::InvalidApiKey)
}

pub async fn single(
    State(app): State<AppState>,
    query: Result<Query<KeyQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    counted(accept(app, query, headers, body, false).await)
}

pub async fn bulk(
    State(app): State<AppState>,
    query: Result<Query<KeyQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    counted(accept(app, query, headers, body, true).await)
}

/// Counts a request refused whole (its items were counted otherwise).
fn counted(outcome: Result<Response, AppError>) -> Result<Response, AppError> {
    if let Err(e) = &outcome {
        crate::metrics::heartbeats(0, &[(e.reason(), 1)]);
    }
    outcome
}

async fn accept(
    app: AppState,
    query: Result<Query<KeyQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
    bulk: bool,
) -> Result<Response, AppError> {
    if super::pulses::declared_length(&headers).is_some_and(|n| n > MAX_HEARTBEAT_BODY_BYTES as u64)
    {
        return Err(AppError::PayloadTooLarge {
            limit: MAX_HEARTBEAT_BODY_BYTES,
        });
    }
    let owner = authenticate(&app, &headers, &query).await?;
    app.rate_limit.check(owner.machine_id)?;
    let body =
        super::pulses::read_body(body, app.body_read_timeout, MAX_HEARTBEAT_BODY_BYTES).await?;
    let (items, bulk) = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => (items, true),
        Ok(item @ Value::Object(_)) => (vec![item], bulk),
        _ => return Err(AppError::BadRequest(NOT_A_LIST)),
    };
    if items.len() > MAX_HEARTBEATS_PER_REQUEST {
        return Err(AppError::BadRequest(TOO_MANY));
    }

    let now_ms = crate::ship::now_millis();
    let now = (now_ms / 1000) as u32;
    let header_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // UTF-8, as clients send a hostname (HeaderValue::to_str takes ASCII only).
    let machine = headers
        .get(MACHINE_HEADER)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .map(str::trim)
        .filter(|m| !m.is_empty() && m.chars().count() <= MAX_HEARTBEAT_FIELD_CHARS)
        .unwrap_or(&owner.machine_name)
        .to_owned();
    let zone = wakatime::time_zone(&headers);

    let mut answers: Vec<(Value, StatusCode)> = Vec::with_capacity(items.len());
    let mut rows: Vec<HeartbeatRow> = Vec::new();
    let mut languages = Vec::new();
    let (mut kept, mut invalid, mut too_old) = (0, 0, 0);
    for item in items {
        match heartbeat::check(item, now_ms) {
            Verdict::Invalid(message) => {
                invalid += 1;
                answers.push((json!({ "error": message }), StatusCode::BAD_REQUEST))
            }
            Verdict::TooOld => {
                too_old += 1;
                answers.push((json!({ "data": null }), StatusCode::CREATED))
            }
            Verdict::Keep(checked) => {
                kept += 1;
                let (language, new) = app.languages.canonical(&checked.language, now).await;
                languages.extend(new);
                let row = row_of(
                    &app,
                    &owner,
                    &checked,
                    &language,
                    &machine,
                    &header_agent,
                    zone,
                );
                answers.push((json!({ "data": data(&row, &checked) }), StatusCode::CREATED));
                let copy = app.recent_heartbeats.contains(row.heartbeat_id)
                    || rows.iter().any(|r| r.heartbeat_id == row.heartbeat_id);
                if !copy {
                    rows.push(row);
                }
            }
        }
    }

    if !rows.is_empty() || !languages.is_empty() {
        let ids: Vec<u64> = rows.iter().map(|r| r.heartbeat_id).collect();
        let record = Record {
            rows: vec![],
            languages,
            heartbeats: rows,
        };
        // As for pulses: once queued, logged and answered, or refused
        // before it is written.
        app.log.append(record.encode()).await?;
        app.recent_heartbeats.remember(ids);
    }
    crate::metrics::heartbeats(kept, &[("invalid", invalid), ("too_old", too_old)]);

    if bulk {
        let responses: Vec<Value> = answers
            .into_iter()
            .map(|(body, status)| json!([body, status.as_u16()]))
            .collect();
        Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "responses": responses })),
        )
            .into_response())
    } else {
        let (body, status) = answers
            .pop()
            .unwrap_or((json!({}), StatusCode::BAD_REQUEST));
        Ok((status, Json(body)).into_response())
    }
}

pub const TOO_MANY: &str = "too many heartbeats in one request (at most 1000)";

fn row_of(
    app: &AppState,
    owner: &TokenOwner,
    checked: &Checked,
    language: &str,
    machine: &str,
    header_agent: &str,
    zone: Option<chrono_tz::Tz>,
) -> HeartbeatRow {
    let client = user_agent::parse(checked.user_agent.as_deref().unwrap_or(header_agent));
    let checked = Checked {
        language: language.to_owned(),
        ..checked.clone()
    };
    let time = (checked.time_ms / 1000) as i64;
    checked.into_row(Origin {
        user_id: owner.user_id,
        machine_id: owner.machine_id,
        editor: client.editor,
        os: client.os,
        machine,
        utc_offset: wakatime::utc_offset(zone, time),
        store_entity: app.store_entities,
    })
}

/// The heartbeat as WakaTime echoes it back (to its sender only).
fn data(row: &HeartbeatRow, checked: &Checked) -> Value {
    json!({
        "id": format!("{:016x}", row.heartbeat_id),
        "time": checked.time_ms as f64 / 1000.0,
        "entity": checked.entity,
        "type": row.kind,
        "category": row.category,
        "project": row.project,
        "branch": row.branch,
        "language": row.language,
        "is_write": checked.is_write,
        "lines": row.lines,
        "lineno": row.lineno,
        "cursorpos": row.cursorpos,
        "editor": row.editor,
        "operating_system": row.os,
        "machine_name_id": row.machine,
    })
}
