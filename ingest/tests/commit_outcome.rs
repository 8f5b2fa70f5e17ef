//! A pulse answered with an error is never written: a request that waited
//! too long for the committer is refused *before* its pulse is written, and
//! a request whose batch is being written waits for the real outcome.
//!
//! ClickHouse here is a socket that accepts and never answers, so the first
//! batch's INSERT hangs until `commit::INSERT_TIMEOUT` and goes to the
//! spool, while a second pulse waits behind it past the commit timeout.

use ingest::{
    commit::{CommitError, Committer, Durable},
    spool::Spool,
};
use sql::pulses::PulseRow;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn pulse(pulse_id: u64, xp: u32) -> Vec<PulseRow> {
    vec![PulseRow {
        pulse_id,
        batch_id: 0,
        user_id: 1,
        machine_id: 1,
        coded_at: 1_700_000_000,
        utc_offset: 0,
        language: "Rust".into(),
        xp,
        received_at: 0,
    }]
}

#[tokio::test]
async fn a_pulse_refused_for_waiting_too_long_is_never_written() {
    // A ClickHouse that never answers.
    let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", black_hole.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = black_hole.accept().await {
            held.push(socket);
        }
    });
    let db = sql::Db::new(&url, &sql::ClickHouseConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let stop = CancellationToken::new();
    let commit_timeout = Duration::from_secs(1);
    // One write slot: the second pulse queues behind the hanging INSERT.
    let (committer, _tasks) = Committer::start(
        db,
        spool.clone(),
        Duration::from_secs(3600),
        1,
        commit_timeout,
        stop.clone(),
    );
    let first = tokio::spawn({
        let c = committer.clone();
        async move { c.commit(pulse(1, 10), Vec::new()).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = committer.commit(pulse(2, 20), Vec::new()).await;
    assert_eq!(second, Err(CommitError::Overloaded));
    assert_eq!(first.await.unwrap(), Ok(Durable::Spool));

    // The spool holds the first pulse only.
    let mut spooled = Vec::new();
    for path in spool.pending().unwrap() {
        spooled.extend(
            Spool::read(&path)
                .unwrap()
                .pulses
                .into_iter()
                .map(|p| p.pulse_id),
        );
    }
    assert_eq!(spooled, [1]);
    stop.cancel();
}
