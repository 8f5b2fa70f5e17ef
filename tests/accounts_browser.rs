//! Accounts on the web in a real browser: headless Chromium walks the whole
//! life of an account on `codestats serve` through its pages and forms —
//! sign up, add a machine, code (a pulse sent with the machine's token), see
//! the profile, go private, export, delete — with no console message, no
//! exception and no failed request except the refusals the walk expects.
//! Screenshots are left in `target/tmp/screenshots/accounts-*.png`.

use serde_json::json;
use std::time::{Duration, Instant};

mod common;

use common::{
    Serve,
    cdp::{Cdp, Chromium, screenshot_dir},
};

const NAME: &str = "walker";
const PASSWORD: &str = "a long walk home";
const MACHINE: &str = "laptop";
const XP: u64 = 321;

/// The XP total a profile page shows (`data-xp` of `[data-live-total]`),
/// or `None` when it has none.
fn shown_total(cdp: &mut Cdp) -> Option<u64> {
    cdp.eval(
        "(function(){var t=document.querySelector('[data-live-total]');\
         return t ? parseInt(t.getAttribute('data-xp'), 10) : null;})()",
    )
    .as_u64()
}

/// Whether the element matched by `selector` is on the page and shown.
fn visible(cdp: &mut Cdp, selector: &str) -> bool {
    cdp.eval(&format!(
        "(function(){{var e=document.querySelector({});\
         return !!e && !e.closest('[hidden]') && e.getClientRects().length > 0;}})()",
        json!(selector)
    )) == json!(true)
}

fn text(cdp: &mut Cdp, selector: &str) -> String {
    let value = cdp.eval(&format!(
        "(function(){{var e=document.querySelector({});return e ? e.textContent : null;}})()",
        json!(selector)
    ));
    value
        .as_str()
        .unwrap_or_else(|| panic!("no {selector} on the page"))
        .to_owned()
}

/// Signs up, adds a machine, sends a pulse with its token, sees it on the
/// profile (with the owner's links and the account menu), goes private
/// (profile gone at once), exports the pulse as CSV from the page, deletes
/// the account by typing its name, and finds it gone: no profile, no
/// session, no login with the old password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_from_sign_up_to_delete_in_chromium() {
    let db = sql::test_db!();
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        db.database(),
        data.path(),
        &[
            ("CODESTATS_REGISTRATION", "open"),
            ("CODESTATS_ROLLUP_INTERVAL_SECS", "1"),
        ],
    )
    .await;
    serve.wait_for("/signup", |_| true).await;
    let base = serve.base.clone();
    let shots = ["accounts-profile.png", "accounts-deleted.png"].map(|n| screenshot_dir().join(n));
    for shot in &shots {
        let _ = std::fs::remove_file(shot);
    }
    // Whole seconds, so the CSV's sent_at is exactly this.
    let coded_at = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0).unwrap();

    let chromium = Chromium::start();
    let ws = chromium.page_ws().await;
    let runtime = tokio::runtime::Handle::current();
    let problems = tokio::task::spawn_blocking({
        let shots = shots.clone();
        move || {
            let _chromium = chromium;
            let mut cdp = Cdp::connect(&ws);
            walk(&mut cdp, &base, coded_at, &runtime, &shots);
            cdp.problems
        }
    })
    .await
    .unwrap();

    // Chromium's verbose advice (such as its wish for a username field in
    // the change-password form) is shown, not failed on.
    let (advice, problems): (Vec<String>, Vec<String>) = problems
        .into_iter()
        .partition(|p| p.starts_with("log \"verbose\""));
    for line in advice {
        eprintln!("chromium's advice: {line}");
    }
    assert!(
        problems.is_empty(),
        "console messages or failed requests: {problems:#?}"
    );
    for shot in &shots {
        assert!(
            std::fs::metadata(shot)
                .map(|m| m.len() > 5_000)
                .unwrap_or(false),
            "no screenshot {}",
            shot.display()
        );
    }
}

/// The walk itself, in the browser `cdp` drives, on the server at `base`.
fn walk(
    cdp: &mut Cdp,
    base: &str,
    coded_at: chrono::DateTime<chrono::Utc>,
    runtime: &tokio::runtime::Handle,
    shots: &[std::path::PathBuf; 2],
) {
    let url = |path: &str| format!("{base}{path}");
    let profile = url(&format!("/users/{NAME}/"));
    for domain in ["Runtime", "Log", "Network", "Page"] {
        cdp.call(&format!("{domain}.enable"), json!({}));
    }

    // Sign up through the form.
    assert_eq!(cdp.navigate(&url("/signup")), (url("/signup"), 200));
    cdp.set_value("form[action='/signup'] input[name=username]", NAME);
    cdp.set_value(
        "form[action='/signup'] input[name=email]",
        "walker@example.com",
    );
    cdp.set_value("form[action='/signup'] input[name=password]", PASSWORD);
    assert_eq!(
        cdp.click_and_wait("form[action='/signup'] button[type=submit]"),
        (url("/my/machines?notice=welcome"), 200)
    );
    assert_eq!(text(cdp, "h1"), "Machines");

    // Add a machine; its token is shown once.
    cdp.set_value("form[action='/my/machines'] input[name=name]", MACHINE);
    assert_eq!(
        cdp.click_and_wait("form[action='/my/machines'] button[type=submit]"),
        (url("/my/machines"), 200)
    );
    let token = text(cdp, "code.token[data-token]");
    assert!(token.len() >= 20, "token {token:?}");
    assert!(visible(cdp, &format!("tr[data-machine='{MACHINE}']")));

    // Code: a pulse from the editor plugin with that token.
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .post(url("/api/my/pulses"))
            .header("x-api-token", &token)
            .json(&json!({
                "coded_at": coded_at.to_rfc3339(),
                "xps": [{"language": "Rust", "xp": XP}],
            }))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 201);

    // The profile shows the XP after a rollup (until then it may not
    // exist yet), with the owner's links and the account menu.
    let started = Instant::now();
    let mut shown = cdp.expecting(&profile, 404, |cdp| cdp.navigate(&profile));
    loop {
        if shown.1 == 200 && shown_total(cdp) == Some(XP) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the profile never showed {XP} XP: {shown:?}, {:?}",
            shown_total(cdp)
        );
        std::thread::sleep(Duration::from_millis(250));
        shown = cdp.expecting(&profile, 404, |cdp| cdp.reload());
    }
    assert_eq!(shown.0, profile);
    assert!(visible(cdp, "[data-owner]"), "owner links hidden");
    assert_eq!(
        cdp.eval("document.querySelector('[data-owner]').getAttribute('data-owner')"),
        json!(NAME)
    );
    assert!(visible(cdp, "[data-signed-in]"), "no account menu");
    assert!(!visible(cdp, "[data-signed-out]"), "still 'Log in'");
    assert_eq!(text(cdp, "[data-account-name]"), NAME);
    assert!(visible(cdp, "[data-language='Rust']"));
    cdp.screenshot(&shots[0]);

    // Private: the preferences button, and the profile is gone at once.
    assert_eq!(
        cdp.navigate(&url("/my/preferences")),
        (url("/my/preferences"), 200)
    );
    assert_eq!(
        cdp.click_and_wait("form[action='/my/preferences/privacy'] button[type=submit]"),
        (url("/my/preferences?notice=private"), 200)
    );
    assert_eq!(
        cdp.eval(
            "document.querySelector(\
             'form[action=\"/my/preferences/privacy\"] input[name=private]').value"
        ),
        json!("0"),
        "the page offers to go public again"
    );
    assert_eq!(
        cdp.expecting(&profile, 404, |cdp| cdp.navigate(&profile)),
        (profile.clone(), 404),
        "a private profile is still shown"
    );

    // Export from the page: the pulse is in the CSV.
    assert_eq!(
        cdp.navigate(&url("/my/preferences")),
        (url("/my/preferences"), 200)
    );
    let csv = cdp.eval_async(
        "fetch('/my/pulses.csv').then(r => r.text().then(t => \
         ({status: r.status, type: r.headers.get('content-type'), body: t})))",
    );
    assert_eq!(csv["status"], json!(200), "{csv}");
    assert!(
        csv["type"].as_str().unwrap_or("").starts_with("text/csv"),
        "{csv}"
    );
    let body = csv["body"].as_str().unwrap_or("");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines,
        [
            "sent_at,sent_at_local,tz_offset,language,machine,amount".to_owned(),
            format!(
                "{},{},0,Rust,{MACHINE},{XP}",
                coded_at.format("%Y-%m-%dT%H:%M:%SZ"),
                coded_at.format("%Y-%m-%dT%H:%M:%S")
            ),
        ],
        "{body}"
    );

    // Delete: type the username to confirm.
    cdp.set_value(
        "form[action='/my/preferences/delete'] input[name=confirm]",
        NAME,
    );
    assert_eq!(
        cdp.click_and_wait("form[action='/my/preferences/delete'] button[type=submit]"),
        (url("/my/preferences/delete"), 200)
    );
    assert_eq!(text(cdp, "h1"), "Account deleted");
    assert_eq!(
        cdp.eval("document.cookie.includes('codestats_account=')"),
        json!(false),
        "the account cookie outlived the account"
    );
    cdp.screenshot(&shots[1]);

    // Gone: no profile, no session, no login with the old password.
    assert_eq!(
        cdp.expecting(&profile, 404, |cdp| cdp.navigate(&profile)),
        (profile.clone(), 404),
        "a deleted profile is still shown"
    );
    assert!(visible(cdp, "[data-signed-out]"));
    assert_eq!(
        cdp.navigate(&url("/my/machines")),
        (url("/login"), 200),
        "/my/machines without an account"
    );
    cdp.set_value("form[action='/login'] input[name=username]", NAME);
    cdp.set_value("form[action='/login'] input[name=password]", PASSWORD);
    let login = url("/login");
    assert_eq!(
        cdp.expecting(&login, 401, |cdp| {
            cdp.click_and_wait("form[action='/login'] button[type=submit]")
        }),
        (login, 401),
        "logged in with a deleted account"
    );
    assert_eq!(text(cdp, "[role=alert]"), "wrong username or password");
    assert_eq!(
        cdp.eval("document.cookie.includes('codestats_account=')"),
        json!(false)
    );
}
