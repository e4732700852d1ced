//! Mail over SMTP (`lettre`): one transport per deployment, its settings validated at start-up
//! (`--smtp-url`, `--mail-from`), and a send that tells a permanent refusal (5xx: the job is
//! discarded into the dead letters) from a passing one (4xx, the server unreachable: the job
//! retries with back-off).

use std::time::Duration;

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
    transport::smtp::client::{Certificate, Tls, TlsParameters},
};

/// Why the mail settings were refused at start-up.
#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    #[error(
        "--smtp-url `{url}`: {why} (for example smtp://127.0.0.1:25, \
         smtp://user:password@mail.example:587?tls=required for STARTTLS, \
         smtps://user:password@mail.example:465)"
    )]
    Url { url: String, why: String },
    #[error("--mail-from `{0}`: not a mail address such as `rollcall <alerts@example.com>`")]
    From(String),
    #[error("--smtp-ca-file: {0}")]
    Ca(String),
}

/// Why a mail did not go.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// The server refused it for good (5xx), or the message cannot be made: trying again
    /// cannot help.
    #[error("refused for good: {0}")]
    Permanent(String),
    /// The server is unreachable or asked to try later (4xx).
    #[error("not sent this time: {0}")]
    Transient(String),
}

/// A mail ready to send: both parts rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The deployment's SMTP transport and sender.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The URL without its password, for logs.
    pub server: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .finish()
    }
}

/// The URL as logs may show it: the password replaced.
fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(at)) if at > scheme.len() + 3 => {
            let user = rest[..at - scheme.len() - 3]
                .split(':')
                .next()
                .unwrap_or("");
            format!("{scheme}://{user}:***@{}", &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

impl Mailer {
    /// A transport for `url`, sending as `from`; nothing is connected yet (a server that is
    /// down at start-up is retried by the mail jobs). Called on the Tokio runtime (the
    /// connection pool lives there).
    /// `ca_pem`: a private CA the server's certificate is signed by, trusted beside the
    /// system's (with `smtps://` or `?tls=required|opportunistic`).
    pub fn new(url: &str, from: &str, ca_pem: Option<&[u8]>) -> Result<Self, MailConfigError> {
        let refuse = |why: String| MailConfigError::Url {
            url: redacted(url),
            why,
        };
        if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
            return Err(refuse("the scheme is smtp:// or smtps://".into()));
        }
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| refuse(e.to_string()))?
            .timeout(Some(Duration::from_secs(30)));
        if let Some(pem) = ca_pem {
            let ca = |e: lettre::transport::smtp::Error| MailConfigError::Ca(e.to_string());
            if !String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(MailConfigError::Ca(
                    "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
                ));
            }
            let host = host_of(url).ok_or_else(|| refuse("no host".into()))?;
            let params = TlsParameters::builder(host)
                .add_root_certificate(Certificate::from_pem(pem).map_err(ca)?)
                .build_rustls()
                .map_err(ca)?;
            let tls = if url.starts_with("smtps://") {
                Tls::Wrapper(params)
            } else if url.contains("tls=required") {
                Tls::Required(params)
            } else if url.contains("tls=opportunistic") {
                Tls::Opportunistic(params)
            } else {
                return Err(MailConfigError::Ca(
                    "a CA is for TLS: use smtps:// or add ?tls=required to --smtp-url".into(),
                ));
            };
            builder = builder.tls(tls);
        }
        let transport = builder.build();
        let from: Mailbox = from
            .parse()
            .map_err(|_| MailConfigError::From(from.to_owned()))?;
        Ok(Self {
            transport,
            from,
            server: redacted(url),
        })
    }

    /// Sends `mail` to `to` under `message_id` (the same id on every attempt, so a receiver
    /// that saw it once can drop a repeat).
    pub async fn send(&self, to: &str, mail: &Rendered, message_id: &str) -> Result<(), SendError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| SendError::Permanent(format!("recipient `{to}`: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(one_line(&mail.subject))
            .message_id(Some(format!("<{message_id}@rollcall>")))
            .multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                mail.html.clone(),
            ))
            .map_err(|e| SendError::Permanent(format!("the message: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Err(e) => Err(SendError::Transient(e.to_string())),
        }
    }
}

/// The host of an SMTP URL (without user, port, path or query).
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host_port.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// A subject on one line, without control characters, at most 200 characters.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settings_are_checked_with_a_precise_message() {
        let new = |url: &str, from: &str| Mailer::new(url, from, None);
        assert!(new("smtp://127.0.0.1:2525", "rollcall <alerts@example.com>").is_ok());
        assert!(new("smtp://u:p@mail.example:587?tls=required", "a@example.com").is_ok());
        let e = new("http://mail.example", "a@example.com").expect_err("scheme");
        assert!(e.to_string().contains("smtp:// or smtps://"), "{e}");
        let e = new("smtp://127.0.0.1:2525", "not an address").expect_err("from");
        assert!(e.to_string().contains("--mail-from"), "{e}");
        let e = new("smtp://u:secret@[::1", "a@example.com").expect_err("url");
        assert!(!e.to_string().contains("secret"), "{e}");
        // A CA file that holds no certificate, or a CA without TLS, is refused.
        let e = Mailer::new("smtp://h:587?tls=required", "a@example.com", Some(b"nope"))
            .expect_err("not a certificate");
        assert!(e.to_string().contains("--smtp-ca-file"), "{e}");
        assert_eq!(
            host_of("smtp://u:p@mail.example:587?tls=required").as_deref(),
            Some("mail.example")
        );
        assert_eq!(host_of("smtps://[::1]:465").as_deref(), Some("::1"));
        assert_eq!(host_of("smtp://localhost").as_deref(), Some("localhost"));
    }

    #[test]
    fn passwords_stay_out_of_logs_and_subjects_stay_on_one_line() {
        assert_eq!(redacted("smtp://u:pw@h:587"), "smtp://u:***@h:587");
        assert_eq!(redacted("smtp://h:25"), "smtp://h:25");
        assert_eq!(one_line("a\r\nBcc: x@y\tz"), "a  Bcc: x@y z");
    }
}
