//! Accounts on the web over HTTP: CSRF, sign-up under concurrency and the
//! registration modes, sessions and their revocation, login limits,
//! machines taking effect at once, isolation between accounts, escaping.

mod common;

use common::{WebTest, field_value};
use reqwest::StatusCode;
use web::Registration;

const PASSWORD: &str = "correct horse battery";

/// Every state-changing form refuses a POST without its `_csrf`, with a
/// wrong one, or with another visitor's (403, JSON), and changes nothing.
#[tokio::test]
async fn every_form_refuses_a_missing_or_foreign_csrf_token() {
    let t = WebTest::start(sql::test_db!()).await;
    let alice = t.browser();
    assert_eq!(
        alice.signup("alice", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    alice.add_machine("laptop").await;
    let machine = alice.get("/my/machines").await.machine_id("laptop");
    let mallory = t.browser();
    mallory.signup("mallory", PASSWORD).await;
    let foreign = mallory.get("/my/preferences").await.csrf();
    let forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/signup".into(),
            vec![("username", "eve"), ("password", PASSWORD)],
        ),
        (
            "/login".into(),
            vec![("username", "alice"), ("password", PASSWORD)],
        ),
        ("/logout".into(), vec![]),
        ("/password-reset".into(), vec![("username", "alice")]),
        ("/my/machines".into(), vec![("name", "desk")]),
        (
            format!("/my/machines/{machine}/rename"),
            vec![("name", "renamed")],
        ),
        (format!("/my/machines/{machine}/regenerate"), vec![]),
        (format!("/my/machines/{machine}/deactivate"), vec![]),
        (format!("/my/machines/{machine}/delete"), vec![]),
        ("/my/preferences/privacy".into(), vec![("private", "1")]),
        (
            "/my/preferences/leaderboards".into(),
            vec![("leaderboards", "0")],
        ),
        (
            "/my/preferences/email".into(),
            vec![("email", "x@example.com")],
        ),
        (
            "/my/preferences/password".into(),
            vec![("current", PASSWORD), ("password", "another password")],
        ),
        ("/my/preferences/sessions".into(), vec![]),
        ("/my/preferences/delete".into(), vec![("confirm", "alice")]),
    ];
    for (path, fields) in &forms {
        for csrf in [None, Some("0".repeat(64)), Some(foreign.clone())] {
            let mut all = fields.clone();
            if let Some(csrf) = &csrf {
                all.push(("_csrf", csrf));
            }
            let page = alice.post(path, &all).await;
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{path} with {csrf:?}");
            let body: serde_json::Value = serde_json::from_str(&page.body).unwrap();
            assert!(
                body["error"].as_str().unwrap().contains("security token"),
                "{path}"
            );
        }
    }
    // Nothing changed: the machine is there, active, named as before, and
    // alice is still signed in with her password.
    let machines = alice.get("/my/machines").await;
    assert!(machines.body.contains("data-machine=\"laptop\""));
    assert!(machines.body.contains(">active<"));
    assert_eq!(t.users_named("eve").await, 0);
    assert!(alice.signed_in().await);
    assert_eq!(
        t.browser().login("alice", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
}

/// 50 sign-ups of one name at once (in several cases) make exactly one
/// account; the others are told the name is taken.
#[tokio::test]
async fn concurrent_signups_of_one_name_make_one_account() {
    let t = WebTest::start(sql::test_db!()).await;
    let browsers: Vec<_> = (0..50).map(|_| t.browser()).collect();
    let mut csrfs = Vec::new();
    for b in &browsers {
        csrfs.push(b.get("/signup").await.csrf());
    }
    let names = ["Popular", "popular", "POPULAR", "PoPuLaR", "pOPULAR"];
    let attempts = browsers
        .iter()
        .zip(&csrfs)
        .enumerate()
        .map(|(i, (b, csrf))| async move {
            b.post(
                "/signup",
                &[
                    ("_csrf", csrf.as_str()),
                    ("username", names[i % names.len()]),
                    ("email", ""),
                    ("password", PASSWORD),
                ],
            )
            .await
        });
    let pages = futures::future::join_all(attempts).await;
    let created = pages
        .iter()
        .filter(|p| p.status == StatusCode::SEE_OTHER)
        .count();
    let taken = pages
        .iter()
        .filter(|p| p.status == StatusCode::CONFLICT)
        .count();
    assert_eq!(
        created,
        1,
        "{:?}",
        pages.iter().map(|p| p.status).collect::<Vec<_>>()
    );
    assert_eq!(taken, 49);
    assert!(pages.iter().any(|p| p.body.contains("is taken")));
    assert_eq!(t.users_named("popular").await, 1);
    // A later sign-up of the name is refused too.
    let late = t.browser().signup("POPular", PASSWORD).await;
    assert_eq!(late.status, StatusCode::CONFLICT);
}

/// `closed` refuses every sign-up; `invite` takes a valid link once.
#[tokio::test]
async fn registration_modes_closed_and_invite() {
    let db = sql::test_db!();
    let closed = WebTest::with(db.clone(), |c| c.registration = Registration::Closed).await;
    assert_eq!(
        closed
            .browser()
            .get("/signup?invite=a&invite=b")
            .await
            .status,
        StatusCode::BAD_REQUEST,
        "a malformed query is a JSON error too"
    );
    let b = closed.browser();
    assert!(b.get("/signup").await.body.contains("Sign-up is closed"));
    // The closed page has no form: the token comes from the login page.
    let forged = b
        .submit(
            "/login",
            "/signup",
            &[
                ("username", "closedout"),
                ("email", ""),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(closed.users_named("closedout").await, 0);

    let t = WebTest::with(db.clone(), |c| c.registration = Registration::Invite).await;
    let b = t.browser();
    assert!(b.get("/signup").await.body.contains("by invitation"));
    let uninvited = b
        .submit(
            "/login",
            "/signup",
            &[
                ("username", "noinvite"),
                ("email", ""),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(uninvited.status, StatusCode::FORBIDDEN);
    let link = web::invite_link(&db, "http://x", std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let secret = link.split("invite=").nth(1).unwrap().to_owned();
    let path = format!("/signup?invite={secret}");
    let form = b.get(&path).await;
    assert_eq!(
        field_value(&form.body, "invite").as_deref(),
        Some(secret.as_str())
    );
    let fields = |name: &'static str| {
        vec![
            ("username", name),
            ("email", ""),
            ("password", PASSWORD),
            ("invite", secret.as_str()),
        ]
    };
    // A sign-up that fails (the name is taken) does not spend the invitation.
    sql::accounts::add_user(&db, "taken", "", false)
        .await
        .unwrap();
    let failed = b.submit(&path, "/signup", &fields("taken")).await;
    assert_eq!(failed.status, StatusCode::CONFLICT, "{}", failed.body);
    let done = b.submit(&path, "/signup", &fields("invited")).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    // A spent invitation shows no form any more; its POST is refused.
    let spent = t.browser();
    assert_eq!(spent.get(&path).await.status, StatusCode::FORBIDDEN);
    let again = spent.submit("/login", "/signup", &fields("second")).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);
    assert_eq!(t.users_named("invited").await, 1);
    assert_eq!(t.users_named("second").await, 0);
}

/// The session cookie is HttpOnly and SameSite=Lax (and not Secure over
/// http); logging out ends that session for good, even if the cookie is
/// replayed.
#[tokio::test]
async fn session_cookies_and_logout() {
    let t = WebTest::start(sql::test_db!()).await;
    let b = t.browser();
    let page = b.signup("carol", PASSWORD).await;
    let cookies: Vec<&str> = page
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("codestats_session="))
        .expect("a session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    assert!(!session.contains("Secure"), "{session}");
    let value = session.split(';').next().unwrap().to_owned();
    assert!(b.signed_in().await);
    let out = b.submit("/my/machines", "/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(!b.signed_in().await);
    let replayed = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(t.url("/my/machines"))
        .header("cookie", value)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), StatusCode::SEE_OTHER);
    assert_eq!(replayed.headers()["location"], "/login");
}

/// Over https cookies are `Secure`.
#[tokio::test]
async fn cookies_are_secure_when_the_public_url_is_https() {
    let t = WebTest::with(sql::test_db!(), |c| {
        c.public_url = "https://stats.example".into()
    })
    .await;
    let page = t.browser().signup("dave", PASSWORD).await;
    for c in page.headers.get_all("set-cookie") {
        assert!(c.to_str().unwrap().contains("Secure"), "{c:?}");
    }
}

/// "Log out everywhere" ends every session of the user; a password change
/// ends every other session and keeps the browser that made it signed in.
#[tokio::test]
async fn sessions_are_revoked_everywhere_and_by_a_password_change() {
    let t = WebTest::start(sql::test_db!()).await;
    let (a, b, c) = (t.browser(), t.browser(), t.browser());
    a.signup("erin", PASSWORD).await;
    b.login("erin", PASSWORD).await;
    c.login("erin", PASSWORD).await;
    assert!(a.signed_in().await && b.signed_in().await && c.signed_in().await);

    let changed = a
        .submit(
            "/my/preferences",
            "/my/preferences/password",
            &[("current", PASSWORD), ("password", "a new password")],
        )
        .await;
    assert_eq!(changed.location(), Some("/my/preferences?notice=password"));
    assert!(a.signed_in().await, "the browser that changed it stays in");
    assert!(!b.signed_in().await && !c.signed_in().await);
    assert_eq!(
        b.login("erin", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        b.login("erin", "a new password").await.status,
        StatusCode::SEE_OTHER
    );

    let out = a
        .submit("/my/preferences", "/my/preferences/sessions", &[])
        .await;
    assert_eq!(out.location(), Some("/login"));
    assert!(!a.signed_in().await && !b.signed_in().await);
    assert_eq!(
        c.login("erin", "a new password").await.status,
        StatusCode::SEE_OTHER
    );
    assert!(c.signed_in().await, "a session made afterwards lives");
}

/// Failed logins are limited per account (then even the right password is
/// refused, 429 with Retry-After) and per client address (guessing across
/// many accounts).
#[tokio::test]
async fn failed_logins_are_rate_limited_per_account_and_per_address() {
    let t = WebTest::with(sql::test_db!(), |c| {
        c.login_failures_per_account = 3;
        c.login_failures_per_address = 6;
    })
    .await;
    for name in ["frank", "grace", "heidi"] {
        t.browser().signup(name, PASSWORD).await;
    }
    let b = t.browser();
    for _ in 0..3 {
        assert_eq!(
            b.login("frank", "wrong").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let refused = b.login("frank", PASSWORD).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers.contains_key("retry-after"));
    assert!(refused.body.contains("too many failed logins"));
    assert!(!b.signed_in().await);
    // Another account is not locked by frank's failures…
    assert_eq!(
        t.browser().login("grace", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    // …but this address has three failures left, also for made-up names.
    for name in ["grace", "heidi", "nobody"] {
        assert_eq!(
            t.browser().login(name, "wrong").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        t.browser().login("heidi", PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// Guesses sent all at once are counted as they start: of 12 parallel
/// wrong passwords for one account, only the limit's worth is checked, and
/// an unknown name is answered exactly like a known one.
#[tokio::test]
async fn parallel_guesses_are_counted_as_they_start() {
    let t = WebTest::with(sql::test_db!(), |c| {
        c.login_failures_per_account = 3;
        c.login_failures_per_address = 100;
    })
    .await;
    t.browser().signup("ursula", PASSWORD).await;
    for name in ["ursula", "nobody-at-all"] {
        let browsers: Vec<_> = (0..12).map(|_| t.browser()).collect();
        let mut csrfs = Vec::new();
        for b in &browsers {
            csrfs.push(b.get("/login").await.csrf());
        }
        let guesses = browsers.iter().zip(&csrfs).map(|(b, csrf)| async move {
            b.post(
                "/login",
                &[
                    ("_csrf", csrf.as_str()),
                    ("username", name),
                    ("password", "wrong"),
                ],
            )
            .await
            .status
        });
        let statuses = futures::future::join_all(guesses).await;
        let checked = statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count();
        let refused = statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count();
        assert_eq!((checked, refused), (3, 9), "{name}: {statuses:?}");
    }
}

/// A machine added on the web takes its very next pulse; deactivated, its
/// token is refused at once; activated again it works; a regenerated token
/// replaces the old one at once; renamed, it keeps its token; deleted, its
/// token is refused and its XP is gone.
#[tokio::test]
async fn machine_changes_take_effect_on_the_next_pulse() {
    let t = WebTest::start(sql::test_db!()).await;
    let b = t.browser();
    b.signup("ivan", PASSWORD).await;
    let token = b.add_machine("laptop").await;
    assert_eq!(t.pulse(&token, "Rust", 10).await, StatusCode::CREATED);
    let id = b.get("/my/machines").await.machine_id("laptop");

    let change = |action: &'static str| {
        let path = format!("/my/machines/{id}/{action}");
        let b = &b;
        async move {
            b.submit("/my/machines", &path, &[("name", "work laptop")])
                .await
        }
    };
    assert_eq!(change("deactivate").await.status, StatusCode::SEE_OTHER);
    assert_eq!(t.pulse(&token, "Rust", 1).await, StatusCode::FORBIDDEN);
    assert!(b.get("/my/machines").await.body.contains(">deactivated<"));
    change("activate").await;
    assert_eq!(t.pulse(&token, "Rust", 1).await, StatusCode::CREATED);

    let fresh = change("regenerate").await;
    assert_eq!(fresh.status, StatusCode::OK);
    let new_token = fresh.token();
    assert_ne!(new_token, token);
    assert_eq!(t.pulse(&token, "Rust", 1).await, StatusCode::FORBIDDEN);
    assert_eq!(t.pulse(&new_token, "Rust", 1).await, StatusCode::CREATED);

    assert_eq!(
        change("rename").await.location(),
        Some("/my/machines?notice=renamed")
    );
    assert!(
        b.get("/my/machines")
            .await
            .body
            .contains("data-machine=\"work laptop\"")
    );
    assert_eq!(t.pulse(&new_token, "Rust", 1).await, StatusCode::CREATED);
    t.flush().await;

    assert_eq!(
        change("delete").await.location(),
        Some("/my/machines?notice=deleted")
    );
    assert_eq!(t.pulse(&new_token, "Rust", 1).await, StatusCode::FORBIDDEN);
    let user = sql::accounts::get_user(&t.db, "ivan").await.unwrap();
    wait_for_no_rows(&t, user.user_id).await;
    assert!(
        t.site_changes
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.user_id == user.user_id)
    );
}

/// Mutations run in the background: waits until none of the user's pulses
/// remain (a few seconds at most).
async fn wait_for_no_rows(t: &WebTest, user_id: u64) {
    for _ in 0..100 {
        let rows: u64 =
            t.db.client()
                .query("SELECT count() FROM pulses WHERE user_id = ?")
                .bind(user_id)
                .fetch_one()
                .await
                .unwrap();
        if rows == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the pulses of user {user_id} are still there");
}

/// One account cannot see or change another's machines, and its export
/// holds only its own pulses.
#[tokio::test]
async fn no_session_reaches_another_accounts_data() {
    let t = WebTest::start(sql::test_db!()).await;
    let (judy, mallory) = (t.browser(), t.browser());
    judy.signup("judy", PASSWORD).await;
    mallory.signup("mallory", PASSWORD).await;
    let judys = judy.add_machine("judys-machine").await;
    let mallorys = mallory.add_machine("mallorys-machine").await;
    t.pulse(&judys, "Go", 7).await;
    t.pulse(&mallorys, "Zig", 3).await;
    t.flush().await;
    let id = judy.get("/my/machines").await.machine_id("judys-machine");
    for action in ["rename", "regenerate", "deactivate", "delete"] {
        let page = mallory
            .submit(
                "/my/machines",
                &format!("/my/machines/{id}/{action}"),
                &[("name", "x")],
            )
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{action}");
    }
    assert_eq!(t.pulse(&judys, "Go", 1).await, StatusCode::CREATED);
    let page = mallory.get("/my/machines").await;
    assert!(!page.body.contains("judys-machine"));
    let csv = mallory.get("/my/pulses.csv").await.body;
    assert!(
        csv.contains("Zig") && !csv.contains("Go,") && !csv.contains("judys"),
        "{csv}"
    );
    // Signed out, nothing personal answers.
    let anon = t.browser();
    for path in [
        "/my/machines",
        "/my/preferences",
        "/my/pulses.csv",
        "/my/pulses.parquet",
    ] {
        let page = anon.get(path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.location(), Some("/login"));
    }
}

/// Names people choose are escaped on every page, and a page a user's
/// text is on is never cached or framed.
#[tokio::test]
async fn user_text_is_escaped_on_account_pages() {
    let t = WebTest::start(sql::test_db!()).await;
    let b = t.browser();
    let name = "<script>alert('hi')\"";
    assert_eq!(b.signup(name, PASSWORD).await.status, StatusCode::SEE_OTHER);
    let page = b
        .submit(
            "/my/machines",
            "/my/machines",
            &[("name", "<img src=x onerror=alert(2)>\"'")],
        )
        .await;
    assert!(!page.body.contains("<script>alert") && !page.body.contains("<img src=x"));
    assert!(
        page.body
            .contains("&lt;script&gt;alert(&#x27;hi&#x27;)&quot;")
    );
    assert!(
        page.body
            .contains("&lt;img src=x onerror=alert(2)&gt;&quot;&#x27;")
    );
    assert_eq!(page.headers["cache-control"], "no-store");
    assert_eq!(page.headers["x-frame-options"], "DENY");
    let prefs = b.get("/my/preferences").await;
    assert!(!prefs.body.contains("<script>alert"));
}

/// Going private hides the user from the live feed and the read API at
/// once and tells the site; going public again shows them.
#[tokio::test]
async fn privacy_takes_effect_at_once() {
    let t = WebTest::start(sql::test_db!()).await;
    let b = t.browser();
    b.signup("kim", PASSWORD).await;
    let user = sql::accounts::get_user(&t.db, "kim").await.unwrap();
    assert!(t.app.visibility.is_public(user.user_id));
    let done = b
        .submit(
            "/my/preferences",
            "/my/preferences/privacy",
            &[("private", "1")],
        )
        .await;
    assert_eq!(done.location(), Some("/my/preferences?notice=private"));
    assert!(!t.app.visibility.is_public(user.user_id));
    assert!(
        b.get("/my/preferences")
            .await
            .body
            .contains("<strong>private</strong>")
    );
    {
        let changes = t.site_changes.lock().unwrap();
        let last = changes.last().unwrap();
        assert_eq!((last.user_id, last.public), (user.user_id, false));
    }
    b.submit(
        "/my/preferences",
        "/my/preferences/privacy",
        &[("private", "0")],
    )
    .await;
    assert!(t.app.visibility.is_public(user.user_id));
}

/// Leaving the leaderboards is stored, keeps the profile public, and asks
/// the site for a rollup; joining again undoes it.
#[tokio::test]
async fn leaving_the_leaderboards_keeps_the_profile_public() {
    let t = WebTest::start(sql::test_db!()).await;
    let b = t.browser();
    b.signup("mo", PASSWORD).await;
    let user = sql::accounts::get_user(&t.db, "mo").await.unwrap();
    let listed = || async {
        sql::accounts::preferences::of_user(&t.db, user.user_id)
            .await
            .unwrap()
            .on_leaderboards()
    };
    assert!(listed().await);
    let prefs = b.get("/my/preferences").await;
    assert!(prefs.body.contains("<strong>listed</strong>"));
    let bad = b
        .submit(
            "/my/preferences",
            "/my/preferences/leaderboards",
            &[("leaderboards", "maybe")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(listed().await);
    let done = b
        .submit(
            "/my/preferences",
            "/my/preferences/leaderboards",
            &[("leaderboards", "0")],
        )
        .await;
    assert_eq!(done.location(), Some("/my/preferences?notice=unlisted"));
    assert!(!listed().await);
    assert!(t.app.visibility.is_public(user.user_id));
    {
        let changes = t.site_changes.lock().unwrap();
        let last = changes.last().unwrap();
        assert_eq!((last.user_id, last.public), (user.user_id, true));
    }
    let prefs = b.get("/my/preferences?notice=unlisted").await;
    assert!(prefs.body.contains("<strong>not listed</strong>"));
    assert!(prefs.body.contains("You left the leaderboards"));
    b.submit(
        "/my/preferences",
        "/my/preferences/leaderboards",
        &[("leaderboards", "1")],
    )
    .await;
    assert!(listed().await);
}

/// Deleting needs the exact username typed; then the account, its
/// machines, pulses, password and sessions leave ClickHouse, its token is
/// refused, and the name can be signed up again.
#[tokio::test]
async fn deleting_the_account_removes_it_everywhere() {
    let t = WebTest::start(sql::test_db!()).await;
    let b = t.browser();
    b.signup("Leo", PASSWORD).await;
    let token = b.add_machine("laptop").await;
    t.pulse(&token, "Rust", 5).await;
    t.flush().await;
    let user = sql::accounts::get_user(&t.db, "Leo").await.unwrap();
    let wrong = b
        .submit(
            "/my/preferences",
            "/my/preferences/delete",
            &[("confirm", "leo")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(b.signed_in().await);
    let gone = b
        .submit(
            "/my/preferences",
            "/my/preferences/delete",
            &[("confirm", "Leo")],
        )
        .await;
    assert_eq!(gone.status, StatusCode::OK);
    assert!(gone.body.contains("Account deleted"));
    assert_eq!(t.pulse(&token, "Rust", 1).await, StatusCode::FORBIDDEN);
    assert!(!b.signed_in().await);
    assert!(!t.app.visibility.is_public(user.user_id));
    wait_for_no_rows(&t, user.user_id).await;
    for table in ["users", "user_secrets", "account_tokens", "xp_hourly"] {
        let mut left = u64::MAX;
        for _ in 0..100 {
            left =
                t.db.client()
                    .query("SELECT count() FROM ? WHERE user_id = ?")
                    .bind(sql::clickhouse::sql::Identifier(table))
                    .bind(user.user_id)
                    .fetch_one()
                    .await
                    .unwrap();
            if left == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(left, 0, "{table}");
    }
    assert_eq!(
        t.browser().login("Leo", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        t.browser().signup("leo", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
}

/// The email address (where reset links go) changes only with the current
/// password: a session alone cannot redirect the account's resets.
#[tokio::test]
async fn changing_the_email_needs_the_password() {
    let t = WebTest::start(sql::test_db!()).await;
    let b = t.browser();
    b.signup("vera", PASSWORD).await;
    let wrong = b
        .submit(
            "/my/preferences",
            "/my/preferences/email",
            &[("email", "thief@example.com"), ("current", "guess")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let user = sql::accounts::get_user(&t.db, "vera").await.unwrap();
    assert_eq!(user.email, "vera@example.com");
    let done = b
        .submit(
            "/my/preferences",
            "/my/preferences/email",
            &[("email", "new@example.com"), ("current", PASSWORD)],
        )
        .await;
    assert_eq!(done.location(), Some("/my/preferences?notice=email"));
    let user = sql::accounts::get_user(&t.db, "vera").await.unwrap();
    assert_eq!(user.email, "new@example.com");
}
