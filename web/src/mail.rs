//! Mail out through SMTP (lettre): password-reset links.

use crate::config::{SMTP_TIMEOUT, SmtpConfig};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor, message::Mailbox,
    message::header::ContentType,
};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("smtp settings: {0}")]
    Config(String),
    #[error("cannot send mail: {0}")]
    Send(String),
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(config: &SmtpConfig) -> Result<Self, MailError> {
        refuse_clear_credentials(config.url.expose())?;
        // The URL carries the password: errors name the setting, not the value.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(config.url.expose())
            .map_err(|_| {
                MailError::Config(
                    "CODESTATS_SMTP_URL is not a valid smtp:// or smtps:// URL".into(),
                )
            })?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        let from = config
            .from
            .parse()
            .map_err(|e| MailError::Config(format!("CODESTATS_SMTP_FROM: {e}")))?;
        Ok(Self { transport, from })
    }

    /// Sends a plain-text mail to `to`.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), MailError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| MailError::Send(format!("bad address: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| MailError::Send(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map_err(|e| MailError::Send(e.to_string()))?;
        Ok(())
    }
}

/// A password sent over plain `smtp://` (no `tls=required`) would cross the
/// network readable: refused at start.
fn refuse_clear_credentials(url: &str) -> Result<(), MailError> {
    let Some(rest) = url.strip_prefix("smtp://") else {
        return Ok(());
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let has_credentials = authority.contains('@');
    let tls_required = url.contains("tls=required");
    if has_credentials && !tls_required {
        return Err(MailError::Config(
            "CODESTATS_SMTP_URL sends a password over plain smtp://: add ?tls=required or use smtps://"
                .into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_need_tls() {
        assert!(refuse_clear_credentials("smtp://127.0.0.1:25").is_ok());
        assert!(refuse_clear_credentials("smtps://u:p@mail.example").is_ok());
        assert!(refuse_clear_credentials("smtp://u:p@mail.example:587?tls=required").is_ok());
        assert!(refuse_clear_credentials("smtp://u:p@mail.example:587").is_err());
    }
}
