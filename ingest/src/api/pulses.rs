//! `POST /api/my/pulses`: the Code::Stats plugin API.

use crate::{
    AppState,
    error::AppError,
    events::{PulseEvent, XpItem},
    limits::MAX_BODY_BYTES,
    log::record::Record,
    pulse,
};
use axum::{
    Json,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, StatusCode, header},
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sql::pulses::PulseRow;

pub const TOKEN_HEADER: &str = "x-api-token";

pub async fn create(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let outcome = accept(app, headers, body).await;
    crate::metrics::pulse_outcome(&outcome);
    outcome
}

async fn accept(
    app: AppState,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), AppError> {
    // A declared length over the limit is refused before a byte of the body
    // is read (and before the token is looked at: nothing is spent on it).
    if declared_length(&headers).is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(AppError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let mut tokens = headers.get_all(TOKEN_HEADER).iter();
    let token = match (tokens.next(), tokens.next()) {
        (Some(t), None) => t.to_str().map_err(|_| AppError::Unauthenticated)?,
        _ => return Err(AppError::Unauthenticated),
    };
    let owner = app
        .tokens
        .owner(token.trim())
        .await
        .ok_or(AppError::Unauthenticated)?;
    app.rate_limit.check(owner.machine_id)?;

    let body = read_body(body, app.body_read_timeout, MAX_BODY_BYTES).await?;
    let now = crate::ship::now_secs();
    let pulse = pulse::parse(&body, i64::from(now)).map_err(AppError::BadRequest)?;

    // Canonical spelling; the same language twice in one pulse is one row.
    let mut items: Vec<(std::sync::Arc<str>, u32)> = Vec::with_capacity(pulse.xps.len());
    let mut new_languages = Vec::new();
    for (name, xp) in &pulse.xps {
        let (canonical, new) = app.languages.canonical(name, now).await;
        new_languages.extend(new);
        match items.iter_mut().find(|(n, _)| *n == canonical) {
            Some((_, total)) => *total = total.saturating_add(*xp),
            None => items.push((canonical, *xp)),
        }
    }
    let pulse_id = rand::random::<u64>();
    let rows = items
        .iter()
        .map(|(language, xp)| PulseRow {
            pulse_id,
            batch_id: 0,
            user_id: owner.user_id,
            machine_id: owner.machine_id,
            coded_at: pulse.coded_at as u32,
            utc_offset: pulse.utc_offset,
            language: language.to_string(),
            xp: *xp,
            received_at: 0,
        })
        .collect();

    // No timeout here: once queued, a pulse is either logged and answered
    // 201, or refused by the appender before it is written (it bounds the
    // wait itself, `limits::APPEND_TIMEOUT`). A 503 never hides a write.
    let record = Record {
        rows,
        languages: new_languages,
        heartbeats: vec![],
    };
    app.log.append(record.encode()).await?;

    let seq = app.stats.next_seq();
    // Nobody listening is fine; send never blocks.
    let _ = app.events.send(std::sync::Arc::new(PulseEvent {
        seq,
        user_id: owner.user_id,
        username: owner.username.clone(),
        private: owner.private != 0,
        machine: owner.machine_name.clone(),
        xps: items
            .into_iter()
            .map(|(language, xp)| XpItem {
                language: language.to_string(),
                xp,
            })
            .collect(),
        coded_at: pulse.coded_at,
        utc_offset: pulse.utc_offset,
    }));
    Ok((StatusCode::CREATED, Json(json!({"ok": "Great success!"}))))
}

/// The `Content-Length` a request declares, if it declares exactly one
/// readable value (hyper itself refuses conflicting ones).
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Reads the whole body: at most `limit` bytes (413 past it), within
/// `timeout` (`server::BODY_READ_TIMEOUT` by default; 408 past it, so a
/// client trickling bytes cannot hold a connection).
pub(crate) async fn read_body(
    body: Body,
    timeout: std::time::Duration,
    limit: usize,
) -> Result<Bytes, AppError> {
    let limited = http_body_util::Limited::new(body, limit);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Err(_) => Err(AppError::RequestTimeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(AppError::PayloadTooLarge { limit })
        }
        // The client went away or broke the framing mid-body.
        Ok(Err(_)) => Err(AppError::BadRequest(pulse::INVALID_XPS)),
    }
}
