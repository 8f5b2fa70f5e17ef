//! `GET /metrics` in Prometheus' text format, on its own listener
//! (`CODESTATS_METRICS_LISTEN`), never on the public one. The library
//! crates report through the `metrics` facade; this installs the recorder
//! that collects it (metrics-exporter-prometheus) and serves its rendering.

use anyhow::Context;
use axum::{Router, http::header, routing::get};
use ingest::server::ServerStats;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio_util::sync::CancellationToken;

/// Where `/metrics` is served unless `CODESTATS_METRICS_LISTEN` says
/// otherwise (`off` turns it off): loopback only.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";
/// Connections the metrics listener takes at once (scrapers are few).
const MAX_METRICS_CONNECTIONS: usize = 64;
/// How often histograms are compacted between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// Buckets of every `*_seconds` histogram: 1 ms to 5 min.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// Buckets of the row and record counts (`*_rows`, `*_records`).
const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0, 10_000.0, 50_000.0,
    100_000.0,
];

/// The metrics listen address: `None` when turned off (`off`, `none` or
/// empty). Refused when it is the public address.
pub fn parse_listen(value: &str, public: SocketAddr) -> anyhow::Result<Option<SocketAddr>> {
    let value = value.trim();
    if value.is_empty() || value.eq_ignore_ascii_case("off") || value.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let addr: SocketAddr = value
        .parse()
        .with_context(|| format!("CODESTATS_METRICS_LISTEN: not an address: {value:?}"))?;
    let overlaps =
        addr.ip() == public.ip() || addr.ip().is_unspecified() || public.ip().is_unspecified();
    if addr.port() != 0 && addr.port() == public.port() && overlaps {
        anyhow::bail!(
            "CODESTATS_METRICS_LISTEN ({addr}) is the public address ({public}): metrics are never served on the public port"
        );
    }
    Ok(Some(addr))
}

/// Installs the process-wide recorder. Call once, before the service starts.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("seconds".into()), SECONDS_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("rows".into()), COUNT_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("records".into()), COUNT_BUCKETS)?
        .install_recorder()
        .context("cannot install the metrics recorder")
}

/// Serves `/metrics` on `addr` until `stop`; returns once bound. Each
/// scrape reads the connections of the public server from `public`.
pub async fn serve(
    addr: SocketAddr,
    handle: PrometheusHandle,
    public: Arc<ServerStats>,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for metrics"))?;
    tracing::info!(listen = %listener.local_addr()?, "serving metrics");
    let upkeep = handle.clone();
    let render = handle.clone();
    let router = Router::new()
        .route(
            "/metrics",
            get(move || {
                let handle = render.clone();
                ingest::metrics::report_connections(&public);
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        handle.render(),
                    )
                }
            }),
        )
        // Every other path and method: the API's JSON errors.
        .fallback(ingest::error::not_found)
        .method_not_allowed_fallback(ingest::error::method_not_allowed);
    let limits = ingest::server::ServerLimits {
        max_connections: MAX_METRICS_CONNECTIONS,
        ..Default::default()
    };
    Ok(tokio::spawn(async move {
        let compact = async {
            let mut tick = tokio::time::interval(UPKEEP_EVERY);
            loop {
                tick.tick().await;
                upkeep.run_upkeep();
            }
        };
        let server = ingest::server::serve(
            listener,
            router,
            limits,
            Arc::new(ServerStats::default()),
            stop,
        );
        tokio::select! {
            () = server => {}
            () = compact => {}
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_address_is_never_the_public_one() {
        let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(parse_listen("off", public).unwrap(), None);
        assert_eq!(parse_listen(" ", public).unwrap(), None);
        assert!(parse_listen("127.0.0.1:8080", public).is_err());
        assert!(parse_listen("not an address", public).is_err());
        let ok = parse_listen("127.0.0.1:9464", public).unwrap();
        assert_eq!(ok, Some("127.0.0.1:9464".parse().unwrap()));
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(parse_listen("10.0.0.1:8080", local).is_ok());
        assert!(parse_listen("127.0.0.1:0", local).is_ok());
    }
}
