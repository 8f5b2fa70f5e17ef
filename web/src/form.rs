//! Form bodies, with the CSRF check before anything else is looked at.

use crate::{
    WebState,
    config::MAX_FORM_BYTES,
    error::WebError,
    session::{CSRF_FIELD, Visitor},
};
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

/// A `application/x-www-form-urlencoded` body of at most
/// [`MAX_FORM_BYTES`], sent by `visitor`, whose `_csrf` field is theirs
/// (403 otherwise, whatever else the form holds).
pub struct CsrfForm<T> {
    pub visitor: Visitor,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<WebState> for CsrfForm<T> {
    type Rejection = WebError;

    async fn from_request(request: Request, web: &WebState) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let visitor = Visitor::from_headers(web, &parts.headers).await?;
        let read = axum::body::to_bytes(body, MAX_FORM_BYTES);
        let bytes = match tokio::time::timeout(web.ingest.body_read_timeout, read).await {
            Err(_) => return Err(WebError::RequestTimeout),
            Ok(Err(_)) => {
                return Err(WebError::PayloadTooLarge {
                    limit: MAX_FORM_BYTES,
                });
            }
            Ok(Ok(bytes)) => bytes,
        };
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| WebError::BadRequest("the body is not a form".into()))?;
        let sent = pairs
            .iter()
            .find(|(k, _)| k == CSRF_FIELD)
            .map(|(_, v)| v.as_str());
        visitor.check_csrf(sent)?;
        let form = serde_urlencoded::from_bytes::<T>(&bytes)
            .map_err(|e| WebError::BadRequest(format!("bad form: {e}")))?;
        Ok(Self { visitor, form })
    }
}
