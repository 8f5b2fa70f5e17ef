//! The export of one's pulses, CSV and Parquet: every row, in time order,
//! with Code::Stats' columns, local times and machine names; many row
//! groups for a long history.

mod common;

use common::WebTest;
use polars::prelude::{AnyValue, ParquetReader, SerReader};
use reqwest::StatusCode;
use sql::pulses::PulseRow;

const PASSWORD: &str = "correct horse battery";
/// More than one Parquet row group and many CSV chunks.
const ROWS: u32 = 150_000;

async fn user_with_history(t: &WebTest) -> common::Browser {
    let b = t.browser();
    b.signup("olga", PASSWORD).await;
    b.add_machine("work, \"main\"").await;
    b.add_machine("home").await;
    let user = sql::accounts::get_user(&t.db, "olga").await.unwrap();
    let mut machines = sql::accounts::list_machines(&t.db, &user).await.unwrap();
    machines.sort_by_key(|m| m.name != "work, \"main\"");
    let start = 1_700_000_000u32;
    let rows: Vec<PulseRow> = (0..ROWS)
        .map(|i| PulseRow {
            pulse_id: u64::from(i) + 1,
            batch_id: 1,
            user_id: user.user_id,
            machine_id: machines[(i % 2) as usize].machine_id,
            coded_at: start + i * 60,
            utc_offset: if i % 3 == 0 { 120 } else { -330 },
            language: if i % 5 == 0 {
                "C++".into()
            } else {
                "Rust".into()
            },
            xp: i % 17 + 1,
            received_at: start + i * 60,
        })
        .collect();
    sql::blocks::insert_unshipped(&t.db, &rows).await.unwrap();
    // Someone else's pulses are not exported.
    let other = t.browser();
    other.signup("pete", PASSWORD).await;
    let token = other.add_machine("x").await;
    assert_eq!(t.pulse(&token, "Go", 9).await, StatusCode::CREATED);
    t.flush().await;
    b
}

fn expected_xp() -> u64 {
    (0..ROWS).map(|i| u64::from(i % 17 + 1)).sum()
}

#[tokio::test]
async fn csv_export_has_every_row_in_order() {
    let t = WebTest::start(sql::test_db!()).await;
    let b = user_with_history(&t).await;
    let page = b.get("/my/pulses.csv").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers["content-type"], "text/csv; charset=utf-8");
    assert!(
        page.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let mut lines = page.body.lines();
    assert_eq!(
        lines.next(),
        Some("sent_at,sent_at_local,tz_offset,language,machine,amount")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len() as u32, ROWS);
    // 1700000000 = 2023-11-14T22:13:20Z; +120 minutes local.
    assert_eq!(
        rows[0],
        "2023-11-14T22:13:20Z,2023-11-15T00:13:20,120,C++,\"work, \"\"main\"\"\",1"
    );
    assert_eq!(
        rows[1],
        "2023-11-14T22:14:20Z,2023-11-14T16:44:20,-330,Rust,home,2"
    );
    let xp: u64 = rows
        .iter()
        .map(|r| r.rsplit(',').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(xp, expected_xp());
    assert!(!page.body.contains(",Go,"));
    let mut previous = "";
    for row in &rows {
        assert!(row[..20] >= *previous, "out of order at {row}");
        previous = &row[..20];
    }
}

#[tokio::test]
async fn parquet_export_has_every_row_with_types() {
    let t = WebTest::start(sql::test_db!()).await;
    let b = user_with_history(&t).await;
    let response = b
        .client
        .get(format!("{}/my/pulses.parquet", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.apache.parquet"
    );
    let bytes = response.bytes().await.unwrap();
    let df = ParquetReader::new(std::io::Cursor::new(bytes.to_vec()))
        .finish()
        .unwrap();
    assert_eq!(df.height() as u32, ROWS);
    let names: Vec<&str> = df.get_column_names().iter().map(|n| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "sent_at",
            "sent_at_local",
            "tz_offset",
            "language",
            "machine",
            "amount"
        ]
    );
    let amount = df.column("amount").unwrap().u32().unwrap();
    assert_eq!(
        amount.iter().map(|v| u64::from(v.unwrap())).sum::<u64>(),
        expected_xp()
    );
    let first_sent = df.column("sent_at").unwrap().get(0).unwrap();
    match first_sent {
        AnyValue::Datetime(ms, _, tz) => {
            assert_eq!(ms, 1_700_000_000_000);
            assert!(tz.is_some(), "sent_at is UTC");
        }
        other => panic!("sent_at is {other:?}"),
    }
    match df.column("sent_at_local").unwrap().get(1).unwrap() {
        AnyValue::Datetime(ms, _, None) => assert_eq!(ms, (1_700_000_060 - 330 * 60) * 1_000),
        other => panic!("sent_at_local is {other:?}"),
    }
    assert_eq!(
        df.column("machine").unwrap().get(0).unwrap(),
        AnyValue::String("work, \"main\"")
    );
}

/// A user without pulses gets a header-only CSV and an empty Parquet file.
#[tokio::test]
async fn empty_exports_are_valid() {
    let t = WebTest::start(sql::test_db!()).await;
    let b = t.browser();
    b.signup("quinn", PASSWORD).await;
    let csv = b.get("/my/pulses.csv").await;
    assert_eq!(
        csv.body,
        "sent_at,sent_at_local,tz_offset,language,machine,amount\n"
    );
    let bytes = b
        .client
        .get(format!("{}/my/pulses.parquet", b.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let df = ParquetReader::new(std::io::Cursor::new(bytes.to_vec()))
        .finish()
        .unwrap();
    assert_eq!((df.height(), df.width()), (0, 6));
}
