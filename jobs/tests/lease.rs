//! The builder lease against the real ClickHouse: of three nodes
//! contending, never two hold it at once, the holder keeps it, and when it
//! stops another takes over within two terms, in a new tenure.

use jobs::lease::Lease;
use std::time::{Duration, Instant};
use tokio::time::sleep;

const TERM: Duration = Duration::from_secs(4);

/// Which of `leases` hold now.
fn holders(leases: &[Lease]) -> Vec<usize> {
    (0..leases.len())
        .filter(|i| leases[*i].tenure().is_some())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_holder_at_a_time_and_a_successor_within_two_terms() {
    let db = sql::test_db!();
    let (leases, mut tasks): (Vec<Lease>, Vec<_>) =
        (0..3).map(|_| Lease::start(db.clone(), TERM)).unzip();

    // Someone holds it within a term and a settle; from then on exactly one
    // does, always the same, over three terms.
    let started = Instant::now();
    let first = loop {
        let now = holders(&leases);
        assert!(now.len() <= 1, "held by {now:?} at once");
        if let [one] = now[..] {
            break one;
        }
        assert!(started.elapsed() < TERM * 2, "nobody took the lease");
        sleep(Duration::from_millis(50)).await;
    };
    let tenure = leases[first].tenure().unwrap();
    let taken = started.elapsed();
    let watch = Instant::now();
    while watch.elapsed() < TERM * 3 {
        let now = holders(&leases);
        assert!(now.len() <= 1, "held by {now:?} at once");
        assert!(
            now.is_empty() || now == [first],
            "moved from {first} to {now:?} while {first} lived"
        );
        sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(leases[first].tenure(), Some(tenure), "the holder renews");

    // The holder stops (its process dies): another node holds it within
    // two terms, in a tenure of its own, and never alongside it.
    tasks.remove(first).abort();
    let stopped = Instant::now();
    let next = loop {
        let now: Vec<usize> = holders(&leases)
            .into_iter()
            .filter(|i| *i != first)
            .collect();
        assert!(now.len() <= 1, "held by {now:?} at once");
        if leases[first].tenure().is_some() {
            assert!(now.is_empty(), "{now:?} holds beside the stopped {first}");
        }
        if let [one] = now[..] {
            break one;
        }
        assert!(
            stopped.elapsed() < TERM * 2 + Duration::from_secs(2),
            "no successor within two terms"
        );
        sleep(Duration::from_millis(50)).await;
    };
    let failover = stopped.elapsed();
    assert_ne!(leases[next].tenure(), Some(tenure), "a new tenure");
    for task in tasks {
        task.abort();
    }
    eprintln!("lease: taken in {taken:?}, failover in {failover:?} (term {TERM:?})");
}
