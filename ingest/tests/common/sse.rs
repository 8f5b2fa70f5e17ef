//! Reading `/live` streams: an SSE client (sse-stream over a reqwest byte
//! stream).

use super::TestApp;
use futures::{StreamExt, stream::BoxStream};
use reqwest::StatusCode;
use serde_json::Value;
use sse_stream::{Sse, SseByteStream};
use std::time::Duration;

/// Longest [`Events::next`] waits for an event.
pub const EVENT_WAIT: Duration = Duration::from_secs(10);

/// An open event stream.
pub struct Events {
    pub headers: reqwest::header::HeaderMap,
    blocks: BoxStream<'static, Sse>,
}

impl Events {
    /// The next `pulse` event: its id and its data; `None` if the stream
    /// ends. Fails the test after [`EVENT_WAIT`].
    pub async fn next(&mut self) -> Option<(u64, Value)> {
        self.next_within(EVENT_WAIT)
            .await
            .expect("no event within 10 s")
    }

    /// The same within `wait`: `Err` when nothing came by then.
    pub async fn next_within(
        &mut self,
        wait: Duration,
    ) -> Result<Option<(u64, Value)>, tokio::time::error::Elapsed> {
        tokio::time::timeout(wait, async {
            while let Some(block) = self.blocks.next().await {
                if block.event.as_deref() == Some("pulse") {
                    let id = block.id.expect("pulse without id").parse().unwrap();
                    let data = serde_json::from_str(block.data.as_deref().unwrap()).unwrap();
                    return Some((id, data));
                }
            }
            None
        })
        .await
    }

    /// Whether the stream ends (rather than sending a pulse) within
    /// [`EVENT_WAIT`].
    pub async fn ends(&mut self) -> bool {
        self.next().await.is_none()
    }
}

/// Opens the event stream at `path`, resuming after `last_event_id`.
pub async fn subscribe(app: &TestApp, path: &str, last_event_id: Option<u64>) -> Events {
    let mut request = app
        .client
        .get(app.url(path))
        .header("origin", "http://elsewhere.example");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let headers = response.headers().clone();
    let blocks = SseByteStream::new(response.bytes_stream())
        .filter_map(|block| async move { block.ok() })
        .boxed();
    Events { headers, blocks }
}
