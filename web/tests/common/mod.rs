//! `WebTest`: accounts on the web and the pulse API on a real HTTP server
//! on loopback (ingest's server, as `serve` runs it), over a fresh database
//! of the real ClickHouse; `Browser`: a client with its own cookie jar that
//! fills forms the way a browser does (the `_csrf` copied from the page).

#![allow(dead_code)] // each test binary uses part of it

use ingest::{App, AppState, IngestConfig, server::RunningServer};
use reqwest::{StatusCode, header::HeaderMap, redirect::Policy};
use sql::Db;
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};
use web::{SiteChange, Web, WebConfig, WebState};

pub struct WebTest {
    pub db: Db,
    pub app: AppState,
    pub web: WebState,
    pub addr: SocketAddr,
    pub data: tempfile::TempDir,
    pub server: RunningServer,
    /// Every change the site hook was told about.
    pub site_changes: Arc<Mutex<Vec<SiteChange>>>,
}

impl WebTest {
    /// Registration open, no SMTP.
    pub async fn start(db: Db) -> Self {
        Self::with(db, |_| {}).await
    }

    pub async fn with(db: Db, configure: impl FnOnce(&mut WebConfig)) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut ingest_config = IngestConfig::new(data.path());
        ingest_config.block_max_age = Duration::from_millis(20);
        let app = App::start(db.clone(), &ingest_config).await.unwrap();
        let mut config = WebConfig::new("http://127.0.0.1");
        config.registration = web::Registration::Open;
        config.delete_settle = Duration::from_millis(500);
        configure(&mut config);
        let site_changes = Arc::new(Mutex::new(Vec::new()));
        let seen = site_changes.clone();
        let hook: web::SiteHook = Arc::new(move |change| {
            seen.lock().unwrap().push(change);
            Box::pin(async {})
        });
        let web = Web::new(db.clone(), app.clone(), config, None, Some(hook)).unwrap();
        let router = web::router(web.clone()).merge(ingest::router(app.clone()));
        let server = RunningServer::start(
            ([127, 0, 0, 1], 0).into(),
            router,
            ingest::server::ServerLimits::default(),
        )
        .await
        .unwrap();
        Self {
            db,
            app,
            web,
            addr: server.addr,
            data,
            server,
            site_changes,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn browser(&self) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(Policy::none())
                .build()
                .unwrap(),
            base: format!("http://{}", self.addr),
        }
    }

    /// Posts a pulse of `xp` in `language` with `token`; returns the status.
    pub async fn pulse(&self, token: &str, language: &str, xp: u32) -> StatusCode {
        let body = serde_json::json!({
            "coded_at": chrono::Utc::now().to_rfc3339(),
            "xps": [{"language": language, "xp": xp}],
        });
        reqwest::Client::new()
            .post(self.url("/api/my/pulses"))
            .header("X-API-Token", token)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
    }

    pub async fn flush(&self) {
        tokio::time::timeout(Duration::from_secs(60), self.app.flush())
            .await
            .expect("shipped within a minute");
    }

    /// Users (not deleted) whose name folds to `name`.
    pub async fn users_named(&self, name: &str) -> u64 {
        self.db
            .client()
            .query("SELECT count() FROM users FINAL WHERE deleted = 0 AND username_key = ?")
            .bind(sql::names::fold(name))
            .fetch_one()
            .await
            .unwrap()
    }
}

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    /// The `_csrf` of the first form on the page.
    pub fn csrf(&self) -> String {
        field_value(&self.body, "_csrf").unwrap_or_else(|| panic!("no _csrf in {}", self.body))
    }

    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    /// The token shown once after adding a machine or regenerating its token.
    pub fn token(&self) -> String {
        let start = self.body.find("data-token>").expect("a token on the page") + 11;
        let end = start + self.body[start..].find('<').unwrap();
        self.body[start..end].to_owned()
    }

    /// The id of the machine named `name` on the machines page.
    pub fn machine_id(&self, name: &str) -> String {
        let row = self
            .body
            .find(&format!("data-machine=\"{name}\""))
            .unwrap_or_else(|| panic!("no machine {name} on the page"));
        let rest = &self.body[row..];
        let start = rest.find("/my/machines/").unwrap() + "/my/machines/".len();
        let end = start + rest[start..].find('/').unwrap();
        rest[start..end].to_owned()
    }
}

/// The value of the first `name="NAME" value="…"` on the page.
pub fn field_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// A browser: its own cookies, no redirects followed.
pub struct Browser {
    pub client: reqwest::Client,
    pub base: String,
}

async fn page(response: reqwest::Response) -> Page {
    Page {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

impl Browser {
    pub async fn get(&self, path: &str) -> Page {
        page(
            self.client
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Posts `fields` to `path` as a form, exactly as given.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        page(
            self.client
                .post(format!("{}{path}", self.base))
                .form(fields)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Opens `form_page`, then posts `fields` to `action` with the page's
    /// `_csrf`, as submitting the form does.
    pub async fn submit(&self, form_page: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.get(form_page).await.csrf();
        let mut all = vec![("_csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all).await
    }

    pub async fn signup(&self, username: &str, password: &str) -> Page {
        self.submit(
            "/signup",
            "/signup",
            &[
                ("username", username),
                ("email", &format!("{}@example.com", username.to_lowercase())),
                ("password", password),
            ],
        )
        .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Page {
        self.submit(
            "/login",
            "/login",
            &[("username", username), ("password", password)],
        )
        .await
    }

    /// Adds a machine; returns its token.
    pub async fn add_machine(&self, name: &str) -> String {
        let page = self
            .submit("/my/machines", "/my/machines", &[("name", name)])
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        page.token()
    }

    /// Whether this browser is signed in (its machines page shows).
    pub async fn signed_in(&self) -> bool {
        self.get("/my/machines").await.status == StatusCode::OK
    }
}
