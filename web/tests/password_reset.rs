//! Password reset through a real SMTP server on loopback (Python's
//! aiosmtpd writing every message to a maildir): the mailed link sets a
//! new password once, ends the old sessions, and expires with use.

mod common;

use common::WebTest;
use reqwest::StatusCode;
use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const PASSWORD: &str = "correct horse battery";

/// Debian's Python, where the `python3-aiosmtpd` package installs.
const PYTHON: &str = "/usr/bin/python3";

/// `python3 -m aiosmtpd` on a free loopback port, delivering into a
/// maildir; killed when dropped.
struct SmtpServer {
    child: Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpServer {
    fn start() -> Self {
        let maildir = tempfile::tempdir().unwrap();
        let port = sql::testing::free_port();
        let mut child = Command::new(PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("mail"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd: scripts/install-deps python3-aiosmtpd");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "aiosmtpd exited: scripts/install-deps python3-aiosmtpd"
            );
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "aiosmtpd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            maildir,
        }
    }

    /// Every message delivered so far, as text.
    fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let dir = self.maildir.path().join("mail").join(sub);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                out.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
            }
        }
        out
    }

    /// Waits for the `n`th message (1-based).
    async fn wait_for(&self, n: usize) -> String {
        let started = Instant::now();
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages.into_iter().max_by_key(|m| m.len()).unwrap();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no mail arrived in {}",
                Path::new(self.maildir.path()).display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The reset link in a mail (quoted-printable soft breaks undone).
fn link_in(mail: &str) -> String {
    let text = mail.replace("=\r\n", "").replace("=\n", "");
    let at = text.find("/password-reset/").expect("a link in the mail");
    let start = text[..at].rfind("http://").expect("an absolute link");
    text[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .replace("=3D", "=")
}

#[tokio::test]
async fn a_mailed_link_sets_a_new_password_once() {
    let smtp = SmtpServer::start();
    let t = WebTest::with(sql::test_db!(), |c| {
        c.smtp = Some(web::SmtpConfig {
            url: sql::secret::Secret::new(format!("smtp://127.0.0.1:{}", smtp.port)),
            from: "codestats <noreply@example.com>".into(),
        });
    })
    .await;
    let old = t.browser();
    old.signup("mallory", PASSWORD).await;
    assert!(old.signed_in().await);

    let anon = t.browser();
    assert!(
        anon.get("/password-reset")
            .await
            .body
            .contains("Mail me a link")
    );
    let asked = anon
        .submit(
            "/password-reset",
            "/password-reset",
            &[("username", "Mallory")],
        )
        .await;
    assert_eq!(asked.status, StatusCode::OK);
    assert!(asked.body.contains("is on its way"));
    // An unknown name gets the same answer and no mail.
    let unknown = anon
        .submit(
            "/password-reset",
            "/password-reset",
            &[("username", "nobody")],
        )
        .await;
    assert_eq!(
        unknown.body.replace(&unknown.csrf(), ""),
        asked.body.replace(&asked.csrf(), "")
    );

    let mail = smtp.wait_for(1).await;
    assert!(mail.contains("To: mallory@example.com"), "{mail}");
    let link = link_in(&mail);
    let path = link.split_once("://").unwrap().1;
    let path = &path[path.find('/').unwrap()..];
    assert!(path.starts_with("/password-reset/"), "{link}");

    let b = t.browser();
    let form = b.get(path).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("New password for <bdi>mallory</bdi>"));
    let short = b.submit(path, path, &[("password", "short")]).await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    let done = b
        .submit(path, path, &[("password", "a brand new password")])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert!(b.signed_in().await, "the reset signs this browser in");
    assert!(!old.signed_in().await, "older sessions end");
    assert_eq!(
        t.browser().login("mallory", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        t.browser()
            .login("mallory", "a brand new password")
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    // The link works once.
    assert_eq!(t.browser().get(path).await.status, StatusCode::NOT_FOUND);
    let again = t
        .browser()
        .submit("/password-reset", path, &[("password", "yet another one")])
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(smtp.messages().len(), 1);
}

/// Without SMTP the page says to ask the operator, and the CLI's link
/// (`codestats users reset-password`) works the same way.
#[tokio::test]
async fn without_smtp_the_operator_prints_the_link() {
    let t = WebTest::start(sql::test_db!()).await;
    t.browser().signup("nina", PASSWORD).await;
    let page = t.browser().get("/password-reset").await;
    assert!(page.body.contains("codestats users reset-password NAME"));
    let user = sql::accounts::get_user(&t.db, "nina").await.unwrap();
    let link = web::reset_link(&t.db, "http://example", &user)
        .await
        .unwrap();
    let path = link.strip_prefix("http://example").unwrap();
    let b = t.browser();
    let done = b
        .submit(path, path, &[("password", "operator set this")])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(
        t.browser().login("nina", "operator set this").await.status,
        StatusCode::SEE_OTHER
    );
}
