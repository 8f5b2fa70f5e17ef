//! Rendering account pages: the site's templates (`templates/account/`)
//! through the builder's [`Renderer`], so escaping, filters and stylesheet
//! are the static site's. Every page answers `Cache-Control: no-store`
//! (it is one person's), may not be framed, and sends no `Referer` at all
//! (a reset link's token is in its URL).

use crate::{WebState, config::WebConfig, error::WebError, session::Visitor};
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use builder::Renderer;
use serde::Serialize;

pub struct Pages {
    renderer: Renderer,
    site_name: String,
    public_url: String,
}

/// One page to render: its template (under `account/`), title, a notice
/// or an error to show above it, and the template's own values.
pub struct Page<T> {
    pub template: &'static str,
    pub title: &'static str,
    pub status: StatusCode,
    pub notice: Option<String>,
    pub error: Option<String>,
    pub body: T,
}

impl<T> Page<T> {
    pub fn new(template: &'static str, title: &'static str, body: T) -> Self {
        Self {
            template,
            title,
            status: StatusCode::OK,
            notice: None,
            error: None,
            body,
        }
    }

    pub fn notice(mut self, text: impl Into<String>) -> Self {
        self.notice = Some(text.into());
        self
    }

    /// Shows `text` as what went wrong, with `status`.
    pub fn error(mut self, status: StatusCode, text: impl Into<String>) -> Self {
        self.status = status;
        self.error = Some(text.into());
        self
    }
}

#[derive(Serialize)]
struct SiteView<'a> {
    name: &'a str,
    public_url: &'a str,
}

#[derive(Serialize)]
struct AccountView<'a> {
    username: &'a str,
}

#[derive(Serialize)]
struct View<'a, T> {
    site: SiteView<'a>,
    account: Option<AccountView<'a>>,
    csrf: String,
    title: &'a str,
    notice: Option<&'a str>,
    error: Option<&'a str>,
    #[serde(flatten)]
    body: &'a T,
}

impl Pages {
    pub fn new(
        theme: Option<&std::path::Path>,
        config: &WebConfig,
    ) -> Result<Self, builder::Error> {
        Ok(Self {
            renderer: Renderer::new(theme)?,
            site_name: config.site_name.clone(),
            public_url: config.public_url.trim_end_matches('/').to_owned(),
        })
    }

    fn render<T: Serialize>(&self, visitor: &Visitor, page: &Page<T>) -> Result<String, WebError> {
        let view = View {
            site: SiteView {
                name: &self.site_name,
                public_url: &self.public_url,
            },
            account: visitor.signed_in.as_ref().map(|s| AccountView {
                username: &s.user.username,
            }),
            csrf: visitor.csrf_token(),
            title: page.title,
            notice: page.notice.as_deref(),
            error: page.error.as_deref(),
            body: &page.body,
        };
        Ok(self.renderer.render(page.template, &view)?)
    }
}

/// The page as a response for `visitor` (with their CSRF cookie if new).
pub fn respond<T: Serialize>(
    web: &WebState,
    visitor: &Visitor,
    page: Page<T>,
) -> Result<Response, WebError> {
    let html = web.pages.render(visitor, &page)?;
    let mut response = (page.status, Html(html)).into_response();
    private_headers(&mut response);
    Ok(visitor.finish(web, response))
}

/// Headers of every answer that belongs to one person.
pub fn private_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// A 303 to `to`, setting `cookies`.
pub fn see_other(to: &str, cookies: &[cookie::Cookie<'_>]) -> Response {
    let mut response = axum::response::Redirect::to(to).into_response();
    for c in cookies {
        crate::session::add_cookie(&mut response, c);
    }
    private_headers(&mut response);
    response
}
