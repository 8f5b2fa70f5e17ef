//! Accounts against the real ClickHouse.

use sql::{Error, accounts, test_db, token};

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
    accounts::delete_user(&db, "anna").await.unwrap();
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

    accounts::delete_machine(&db, "dev", "desk").await.unwrap();
    assert!(accounts::active_tokens(&db).await.unwrap().is_empty());
}
