//! Accounts against the real ClickHouse.

use sql::{Error, accounts, test_db, token};
use std::time::Duration;

#[tokio::test]
async fn users_are_unique_case_insensitively() {
    let db = test_db!();
    accounts::add_user(&db, "Nicd", "", false).await.unwrap();
    let err = accounts::add_user(&db, "nICD", "", false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    let found = accounts::find_user(&db, "NICD").await.unwrap().unwrap();
    assert_eq!(found.username, "Nicd");
}

#[tokio::test]
async fn bad_names_are_refused_before_anything_is_written() {
    let db = test_db!();
    for bad in [
        "",
        "a/b",
        "a#b",
        "a%b",
        "a?b",
        "a&b",
        "a=b",
        "a+b",
        &"x".repeat(65),
    ] {
        let err = accounts::add_user(&db, bad, "", false).await.unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{bad:?}: {err}");
    }
    assert!(accounts::list_users(&db).await.unwrap().is_empty());
    accounts::add_user(&db, "ok", "", false).await.unwrap();
    let err = accounts::add_machine(&db, "ok", "").await.unwrap_err();
    assert!(matches!(err, Error::Invalid(_)));
    let err = accounts::add_machine(&db, "nobody", "m").await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)));
}

#[tokio::test]
async fn privacy_and_deletion() {
    let db = test_db!();
    accounts::add_user(&db, "anna", "a@example.com", false)
        .await
        .unwrap();
    assert!(
        accounts::set_private(&db, "Anna", true)
            .await
            .unwrap()
            .is_private()
    );
    assert!(accounts::get_user(&db, "anna").await.unwrap().is_private());
    accounts::add_machine(&db, "anna", "box").await.unwrap();
    accounts::delete_user(&db, "anna", Duration::ZERO)
        .await
        .unwrap();
    assert!(accounts::find_user(&db, "anna").await.unwrap().is_none());
    assert!(accounts::active_tokens(&db).await.unwrap().is_empty());
    // The name is free again.
    accounts::add_user(&db, "anna", "", false).await.unwrap();
}

#[tokio::test]
async fn token_lifecycle() {
    let db = test_db!();
    accounts::add_user(&db, "dev", "", true).await.unwrap();
    let (machine, first) = accounts::add_machine(&db, "dev", "laptop").await.unwrap();
    assert_eq!(machine.token_hash, token::hash_hex(&first));
    let err = accounts::add_machine(&db, "dev", "laptop")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)));

    let owners = accounts::active_tokens(&db).await.unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].token_hash, token::hash_hex(&first));
    assert_eq!(owners[0].username, "dev");
    assert_eq!(owners[0].private, 1);

    let (_, second) = accounts::regenerate_token(&db, "dev", "laptop")
        .await
        .unwrap();
    let owners = accounts::active_tokens(&db).await.unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].token_hash, token::hash_hex(&second));

    accounts::rename_machine(&db, "dev", "laptop", "desk")
        .await
        .unwrap();
    assert_eq!(
        accounts::active_tokens(&db).await.unwrap()[0].machine_name,
        "desk"
    );

    accounts::set_machine_active(&db, "dev", "desk", false)
        .await
        .unwrap();
    assert!(accounts::active_tokens(&db).await.unwrap().is_empty());
    accounts::set_machine_active(&db, "dev", "desk", true)
        .await
        .unwrap();
    assert_eq!(accounts::active_tokens(&db).await.unwrap().len(), 1);

    accounts::delete_machine(&db, "dev", "desk", Duration::ZERO)
        .await
        .unwrap();
    assert!(accounts::active_tokens(&db).await.unwrap().is_empty());
}

/// A version far ahead of the clock, as a row written while the clock ran
/// ahead (and then stepped back) has.
fn future_version() -> u64 {
    accounts::fresh_version() * 2
}

#[tokio::test]
async fn changes_win_over_rows_from_a_clock_that_ran_ahead() {
    let db = test_db!();
    let user = accounts::User {
        user_id: accounts::fresh_id(),
        username: "ahead".to_owned(),
        username_key: "ahead".to_owned(),
        email: String::new(),
        private: 0,
        created_at: 0,
        deleted: 0,
        version: future_version(),
    };
    accounts::insert_users(&db, std::slice::from_ref(&user))
        .await
        .unwrap();
    let machine = accounts::Machine {
        machine_id: accounts::fresh_id(),
        user_id: user.user_id,
        name: "box".to_owned(),
        token_hash: token::hash_hex(&token::generate()),
        active: 1,
        created_at: 0,
        deleted: 0,
        version: future_version(),
    };
    accounts::insert_machines(&db, std::slice::from_ref(&machine))
        .await
        .unwrap();
    let pulse = sql::pulses::PulseRow {
        pulse_id: 1,
        batch_id: 1,
        user_id: user.user_id,
        machine_id: machine.machine_id,
        coded_at: 1_700_000_000,
        utc_offset: 0,
        language: "Rust".to_owned(),
        xp: 10,
        received_at: 1_700_000_000,
    };
    sql::blocks::insert_unshipped(&db, &[pulse]).await.unwrap();

    let set = accounts::set_private(&db, "ahead", true).await.unwrap();
    assert!(set.version > user.version);
    assert!(accounts::get_user(&db, "ahead").await.unwrap().is_private());

    accounts::set_machine_active(&db, "ahead", "box", false)
        .await
        .unwrap();
    assert!(accounts::active_tokens(&db).await.unwrap().is_empty());
    accounts::set_machine_active(&db, "ahead", "box", true)
        .await
        .unwrap();
    let (_, fresh) = accounts::regenerate_token(&db, "ahead", "box")
        .await
        .unwrap();
    let owners = accounts::active_tokens(&db).await.unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].token_hash, token::hash_hex(&fresh));

    accounts::delete_user(&db, "ahead", Duration::ZERO)
        .await
        .unwrap();
    assert!(accounts::find_user(&db, "ahead").await.unwrap().is_none());
    assert!(accounts::active_tokens(&db).await.unwrap().is_empty());
    assert!(accounts::machine_names(&db).await.unwrap().is_empty());
    wait_for_no_pulses(&db, user.user_id).await;
}

/// Waits until the deletion of `user_id`'s pulses, a mutation ClickHouse
/// runs in the background, has run.
async fn wait_for_no_pulses(db: &sql::Db, user_id: u64) {
    let started = std::time::Instant::now();
    loop {
        let left: u64 = db
            .client()
            .query("SELECT count() FROM pulses WHERE user_id = ?")
            .bind(user_id)
            .fetch_one()
            .await
            .unwrap();
        if left == 0 {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{left} pulses of a deleted user remain"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[test]
fn versions_increase_whatever_the_clock_does() {
    assert_eq!(accounts::version_after(5, 100), 100);
    assert_eq!(accounts::version_after(100, 5), 101);
    assert_eq!(accounts::version_after(100, 100), 101);
    assert_eq!(accounts::version_after(u64::MAX, 5), u64::MAX);
}

/// Makes every later pulse deletion in `db` fail.
async fn break_pulse_deletion(db: &sql::Db) {
    db.client()
        .query("RENAME TABLE pulses TO pulses_elsewhere")
        .execute()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_deleted_machine_is_refused_before_its_pulses_are_deleted() {
    let db = test_db!();
    accounts::add_user(&db, "dev", "", false).await.unwrap();
    accounts::add_machine(&db, "dev", "box").await.unwrap();
    accounts::add_machine(&db, "dev", "other").await.unwrap();
    break_pulse_deletion(&db).await;

    accounts::delete_machine(&db, "dev", "box", Duration::ZERO)
        .await
        .expect_err("pulses cannot be deleted");
    let owners = accounts::active_tokens(&db).await.unwrap();
    let names: Vec<&str> = owners.iter().map(|o| o.machine_name.as_str()).collect();
    assert_eq!(names, ["other"], "the deleted machine's token still works");

    accounts::delete_user(&db, "dev", Duration::ZERO)
        .await
        .expect_err("pulses cannot be deleted");
    assert!(accounts::find_user(&db, "dev").await.unwrap().is_none());
    assert!(accounts::active_tokens(&db).await.unwrap().is_empty());
}
