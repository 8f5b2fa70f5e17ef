//! How accounts on the web are set up: typed settings with named defaults.
//! The binary reads the environment once into [`WebConfig`].

use std::time::Duration;

/// How long a session lives from login: 30 days (the cookie's `Max-Age`).
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 86_400);
/// How long a mailed or printed password-reset link works.
pub const RESET_TTL: Duration = Duration::from_secs(3_600);
/// How long an invitation link works unless `--days` says otherwise.
pub const INVITE_TTL: Duration = Duration::from_secs(7 * 86_400);
/// Shortest password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password, in bytes (argon2 takes any length; this bounds the work
/// a request can ask for).
pub const MAX_PASSWORD_BYTES: usize = 1_024;
/// Longest email address, in bytes.
pub const MAX_EMAIL_BYTES: usize = 254;
/// Largest form body accepted.
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// Failed logins per account within [`LOGIN_WINDOW`] before its logins are
/// refused with 429 until the window has passed.
pub const LOGIN_FAILURES_PER_ACCOUNT: usize = 5;
/// Failed logins per client address within [`LOGIN_WINDOW`].
pub const LOGIN_FAILURES_PER_ADDRESS: usize = 20;
/// The window failed logins are counted in.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Longest an account change waits for the site to be rebuilt before it
/// answers (the rebuild goes on in the background after that).
pub const SITE_UPDATE_WAIT: Duration = Duration::from_secs(10);
/// Longest sending a mail may take.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// `CODESTATS_REGISTRATION`: who may create an account on the web.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Registration {
    /// Anyone.
    Open,
    /// Holders of a one-time link from `codestats invites create`.
    Invite,
    /// Nobody: accounts are made with `codestats users add` (the default).
    #[default]
    Closed,
}

impl std::str::FromStr for Registration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "open" => Ok(Self::Open),
            "invite" => Ok(Self::Invite),
            "closed" => Ok(Self::Closed),
            other => Err(format!(
                "registration mode must be open, invite or closed, not {other:?}"
            )),
        }
    }
}

/// Where mail goes out: `CODESTATS_SMTP_URL` (lettre's URL form:
/// `smtp://host:25`, `smtp://user:pass@host:587?tls=required`,
/// `smtps://user:pass@host`) and `CODESTATS_SMTP_FROM`.
#[derive(Clone)]
pub struct SmtpConfig {
    pub url: sql::secret::Secret,
    pub from: String,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("url", &"(secret)")
            .field("from", &self.from)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct WebConfig {
    pub registration: Registration,
    /// `CODESTATS_PUBLIC_URL`: links in mails and set-up snippets; cookies
    /// are `Secure` when it is `https://`.
    pub public_url: String,
    pub site_name: String,
    pub smtp: Option<SmtpConfig>,
    /// `CODESTATS_TRUST_FORWARDED_FOR`: take the client address from the
    /// last `X-Forwarded-For` entry (set it only behind a proxy that
    /// writes that header, such as the nginx in docs/).
    pub trust_forwarded_for: bool,
    pub login_failures_per_account: usize,
    pub login_failures_per_address: usize,
    pub login_window: Duration,
    /// How long a delete waits before its last pass
    /// (`sql::accounts::DELETE_SETTLE`).
    pub delete_settle: Duration,
}

impl WebConfig {
    pub fn new(public_url: impl Into<String>) -> Self {
        Self {
            registration: Registration::default(),
            public_url: public_url.into(),
            site_name: "codestats".to_owned(),
            smtp: None,
            trust_forwarded_for: false,
            login_failures_per_account: LOGIN_FAILURES_PER_ACCOUNT,
            login_failures_per_address: LOGIN_FAILURES_PER_ADDRESS,
            login_window: LOGIN_WINDOW,
            delete_settle: sql::accounts::DELETE_SETTLE,
        }
    }

    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

/// `public_url` + `path`, without a doubled slash: links in mails, on
/// pages and printed by the CLI.
pub fn link(public_url: &str, path: &str) -> String {
    format!("{}{path}", public_url.trim_end_matches('/'))
}
