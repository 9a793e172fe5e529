//! Email: templates, the outbox worker and the SMTP sender.
//!
//! A flow that sends a message renders it ([`Mailer::render`]) and queues it with [`queue`] inside the write
//! transaction of its change, so the message exists exactly when the change does. The worker ([`run`]) sends
//! due messages over SMTP (lettre; plain, STARTTLS or TLS, optional auth): each replica claims a row with a
//! lease before sending, deletes it once the server accepted it, and on failure retries with exponential
//! backoff. Delivery is at least once: a replica that dies after the server accepted a message but before
//! deleting it sends it again when its lease ends.
//!
//! Templates are built in (`templates/email/<name>.{txt,html}`, the first line of the text form being
//! `Subject: …`) and can be replaced file by file from `email.templates_dir`. `{{name}}` placeholders are
//! filled in; in HTML the values are escaped.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::response::Category;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::Notify;

use crate::config::EmailConfig;
use crate::db::{DbConn, DbError, outbox};
use crate::services::AppState;

/// The templates there are, and their built-in text and HTML forms.
const BUILT_IN: [(&str, &str, &str); 4] = [
    (
        "confirm_registration",
        include_str!("../../templates/email/confirm_registration.txt"),
        include_str!("../../templates/email/confirm_registration.html"),
    ),
    (
        "confirm_email_change",
        include_str!("../../templates/email/confirm_email_change.txt"),
        include_str!("../../templates/email/confirm_email_change.html"),
    ),
    (
        "password_reset",
        include_str!("../../templates/email/password_reset.txt"),
        include_str!("../../templates/email/password_reset.html"),
    ),
    (
        "already_registered",
        include_str!("../../templates/email/already_registered.txt"),
        include_str!("../../templates/email/already_registered.html"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("email template {0}: {1}")]
    Template(String, String),
    #[error("email.{0}: {1}")]
    Config(&'static str, String),
}

struct Template {
    subject: String,
    text: String,
    html: String,
}

/// A message ready for the outbox.
// No `Debug`: bodies carry single-use links.
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Templates, links and the SMTP transport; one per process, in the state.
pub struct Mailer {
    templates: HashMap<&'static str, Template>,
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Option<Mailbox>,
    public_url: String,
    confirm_path: String,
    reset_path: String,
    /// Wakes the worker of this replica when a message was queued, so it need not wait for the next poll.
    pub wake: Notify,
}

impl Mailer {
    /// Loads the templates (built in, or from `email.templates_dir`) and prepares the SMTP transport when
    /// `email.smtp_host` is set. Fails on an unreadable or malformed template or an unusable SMTP setting.
    pub fn new(cfg: &EmailConfig) -> Result<Self, MailError> {
        if !cfg.templates_dir.is_empty() && !Path::new(&cfg.templates_dir).is_dir() {
            return Err(MailError::Config(
                "templates_dir",
                format!("{:?} is not a directory", cfg.templates_dir),
            ));
        }
        let mut templates = HashMap::new();
        for (name, text, html) in BUILT_IN {
            let text = read_override(&cfg.templates_dir, name, "txt")?.unwrap_or_else(|| text.to_string());
            let html = read_override(&cfg.templates_dir, name, "html")?.unwrap_or_else(|| html.to_string());
            let (subject, text) = split_subject(&text).ok_or_else(|| {
                MailError::Template(format!("{name}.txt"), "the first line must be \"Subject: …\"".into())
            })?;
            templates.insert(name, Template { subject, text, html });
        }
        let (transport, from) = if cfg.smtp_host.is_empty() {
            (None, None)
        } else {
            let from = cfg
                .from
                .parse::<Mailbox>()
                .map_err(|e| MailError::Config("from", e.to_string()))?;
            (Some(transport(cfg)?), Some(from))
        };
        Ok(Mailer {
            templates,
            transport,
            from,
            public_url: cfg.public_url.trim_end_matches('/').to_string(),
            confirm_path: cfg.confirm_path.clone(),
            reset_path: cfg.reset_path.clone(),
            wake: Notify::new(),
        })
    }

    /// Whether email is configured (`email.smtp_host`); flows that need it are refused otherwise.
    pub fn enabled(&self) -> bool {
        self.transport.is_some()
    }

    /// A confirmation link (registration or new address), built from `email.public_url` only.
    pub fn confirm_link(&self, token: &str) -> String {
        format!("{}{}?token={token}", self.public_url, self.confirm_path)
    }

    /// A password reset link, built from `email.public_url` only.
    pub fn reset_link(&self, token: &str) -> String {
        format!("{}{}?token={token}", self.public_url, self.reset_path)
    }

    /// Fills a template's placeholders. Unknown template names render empty (a bug, caught by tests).
    pub fn render(&self, name: &str, vars: &[(&str, &str)]) -> Rendered {
        let Some(t) = self.templates.get(name) else {
            return Rendered {
                subject: String::new(),
                text: String::new(),
                html: String::new(),
            };
        };
        let fill = |s: &str, escape: bool| {
            let mut out = s.to_string();
            for (k, v) in vars {
                let v = if escape { html_escape(v) } else { v.to_string() };
                out = out.replace(&format!("{{{{{k}}}}}"), &v);
            }
            out
        };
        Rendered {
            // The outbox column holds 255 characters.
            subject: fill(&t.subject, false)
                .replace(['\r', '\n'], " ")
                .chars()
                .take(255)
                .collect(),
            text: fill(&t.text, false),
            html: fill(&t.html, true),
        }
    }
}

fn read_override(dir: &str, name: &str, ext: &str) -> Result<Option<String>, MailError> {
    if dir.is_empty() {
        return Ok(None);
    }
    let path = Path::new(dir).join(format!("{name}.{ext}"));
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(MailError::Template(path.display().to_string(), e.to_string())),
    }
}

/// `Subject: …` on the first line, then the body (one blank line after the subject is dropped).
fn split_subject(text: &str) -> Option<(String, String)> {
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let subject = first
        .trim_end_matches('\r')
        .strip_prefix("Subject:")?
        .trim()
        .to_string();
    let rest = rest
        .strip_prefix("\r\n")
        .or_else(|| rest.strip_prefix('\n'))
        .unwrap_or(rest);
    Some((subject, rest.to_string()))
}

/// `s` with the five HTML metacharacters escaped (safe in text and in quoted attributes).
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn transport(cfg: &EmailConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let host = cfg.smtp_host.as_str();
    let builder = if cfg.smtp_ca_file.is_empty() || cfg.smtp_security == "none" {
        match cfg.smtp_security.as_str() {
            "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
            "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
            _ => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)),
        }
        .map_err(|e| MailError::Config("smtp_host", e.to_string()))?
    } else {
        let pem = std::fs::read(&cfg.smtp_ca_file).map_err(|e| MailError::Config("smtp_ca_file", e.to_string()))?;
        let ca = Certificate::from_pem(&pem).map_err(|e| MailError::Config("smtp_ca_file", e.to_string()))?;
        let params = TlsParameters::builder(host.to_string())
            .add_root_certificate(ca)
            .build()
            .map_err(|e| MailError::Config("smtp_ca_file", e.to_string()))?;
        let tls = match cfg.smtp_security.as_str() {
            "tls" => Tls::Wrapper(params),
            _ => Tls::Required(params),
        };
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).tls(tls)
    };
    let mut builder = builder
        .port(cfg.smtp_port)
        .timeout(Some(cfg.smtp_timeout.as_duration().max(Duration::from_secs(1))));
    if !cfg.smtp_username.is_empty() {
        builder = builder.credentials(Credentials::new(
            cfg.smtp_username.clone(),
            cfg.smtp_password.expose().to_string(),
        ));
    }
    Ok(builder.build())
}

/// Queues `message` for `to` inside the caller's transaction.
pub fn queue(c: &mut DbConn, to: &str, message: &Rendered, now: i64) -> Result<(), DbError> {
    outbox::enqueue(c, to, &message.subject, &message.text, &message.html, now)?;
    Ok(())
}

/// Sends due messages until the process ends. Only started when `email.smtp_host` is set.
pub async fn run(state: Arc<AppState>) {
    let poll = state
        .config
        .email
        .outbox_poll_interval
        .as_duration()
        .max(Duration::from_millis(10));
    // Used and expired link tokens are deleted by the maintenance sweep (services/maintenance.rs), which runs
    // with or without email.
    loop {
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = state.mail.wake.notified() => {}
        }
        if let Err(e) = send_due(&state).await {
            tracing::warn!(error = %e, "email outbox: cannot read due messages; retrying later");
        }
    }
}

/// One pass: claims and sends every message due now, a few at a time.
async fn send_due(state: &AppState) -> Result<(), DbError> {
    let Some(transport) = state.mail.transport.clone() else {
        return Ok(());
    };
    let Some(from) = state.mail.from.clone() else {
        return Ok(());
    };
    let cfg = Arc::new(state.config.email.clone());
    loop {
        let now = state.clock.now();
        let ids = state.db.run(move |c| outbox::due(c, now, 20)).await?;
        if ids.is_empty() {
            return Ok(());
        }
        let mut claimed_any = false;
        for id in ids {
            let now = state.clock.now();
            let until = now + cfg.send_lease.as_secs().max(1) as i64;
            let Some(row) = state.db.write(move |c| outbox::claim(c, id, now, until)).await? else {
                continue;
            };
            claimed_any = true;
            let result = send_one(&transport, &from, &row).await;
            let now = state.clock.now();
            let outcome = match result {
                Ok(()) => state.db.write(move |c| outbox::sent(c, id)).await,
                Err(Failure { error, permanent }) => {
                    let attempts = row.attempts + 1;
                    let give_up = (permanent || attempts >= i64::from(cfg.max_attempts.max(1))).then_some(now);
                    let wait = backoff(&cfg, attempts);
                    if give_up.is_some() {
                        tracing::error!(id, attempts, %error, "email given up");
                    } else {
                        tracing::warn!(id, attempts, retry_in = wait, %error, "email not sent; will retry");
                    }
                    state
                        .db
                        .write(move |c| outbox::failed(c, id, now + wait, &error, give_up))
                        .await
                }
            };
            if let Err(e) = outcome {
                // The lease runs out and the message is tried again: at least once, never lost.
                tracing::warn!(id, error = %e, "email outbox: cannot record the send result");
            }
        }
        if !claimed_any {
            return Ok(());
        }
    }
}

/// Seconds to wait after the `attempts`-th failure: `retry_base` doubling, at most `retry_max`.
fn backoff(cfg: &EmailConfig, attempts: i64) -> i64 {
    let base = cfg.retry_base.as_secs().max(1) as i64;
    let max = (cfg.retry_max.as_secs() as i64).max(base);
    let shift = (attempts - 1).clamp(0, 30) as u32;
    base.saturating_mul(1i64 << shift).min(max)
}

/// Why a send failed; `permanent` when trying again cannot help (a malformed message, a refused recipient).
struct Failure {
    error: String,
    permanent: bool,
}

impl Failure {
    fn permanent(error: String) -> Self {
        Failure { error, permanent: true }
    }
}

async fn send_one(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
    row: &outbox::OutboxRow,
) -> Result<(), Failure> {
    let to = row
        .recipient
        .parse::<Mailbox>()
        .map_err(|e| Failure::permanent(format!("recipient: {e}")))?;
    let message = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(row.subject.clone())
        .multipart(MultiPart::alternative_plain_html(
            row.body_text.clone(),
            row.body_html.clone(),
        ))
        .map_err(|e| Failure::permanent(format!("message: {e}")))?;
    transport.send(message).await.map(|_| ()).map_err(|e| Failure {
        // A 5xx about the message (a refused recipient) will not change; one about authentication (x3x: 530,
        // 535, …) is the operator's to fix, and the message waits for that.
        permanent: e.is_permanent() && !e.status().is_some_and(|c| c.category == Category::Unspecified3),
        error: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_templates_have_subjects_and_fill_placeholders() {
        let cfg = EmailConfig {
            public_url: "https://auth.example/".into(),
            ..Default::default()
        };
        let m = Mailer::new(&cfg).unwrap_or_else(|e| unreachable!("{e}"));
        let link = m.reset_link("abc");
        assert_eq!(link, "https://auth.example/reset-password?token=abc");
        let r = m.render(
            "password_reset",
            &[("username", "<b>x</b>"), ("link", &link), ("expires_in", "30 minutes")],
        );
        assert_eq!(r.subject, "Reset your password");
        assert!(r.text.contains("<b>x</b>") && r.text.contains(&link) && !r.text.contains("{{"));
        assert!(r.html.contains("&lt;b&gt;x&lt;/b&gt;") && !r.html.contains("<b>x"));
        for (name, _, _) in BUILT_IN {
            assert!(!m.render(name, &[]).subject.is_empty(), "{name}");
        }
    }

    /// Subjects are fixed text: nothing a user chose (a self-registered username, an address) reaches a
    /// header line.
    #[test]
    fn built_in_subjects_hold_no_placeholder() {
        let m = Mailer::new(&EmailConfig::default()).unwrap_or_else(|e| unreachable!("{e}"));
        for (name, text, _) in BUILT_IN {
            let first = text.lines().next().unwrap_or_default();
            assert!(
                first.starts_with("Subject: ") && !first.contains("{{"),
                "{name}: {first}"
            );
            let vars = [
                ("username", "x\r\nBcc: a@evil.example"),
                ("link", "L"),
                ("expires_in", "1h"),
            ];
            let subject = m.render(name, &vars).subject;
            assert!(
                !subject.contains("evil") && !subject.contains(['\r', '\n']),
                "{name}: {subject}"
            );
        }
    }

    #[test]
    fn templates_dir_overrides_file_by_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text);
        write(
            "password_reset.txt",
            "Subject: Neues Passwort\n\nHallo {{username}}: {{link}}\n",
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        let cfg = EmailConfig {
            templates_dir: dir.path().display().to_string(),
            ..Default::default()
        };
        let m = Mailer::new(&cfg).unwrap_or_else(|e| unreachable!("{e}"));
        let r = m.render("password_reset", &[("username", "ann"), ("link", "L")]);
        assert_eq!(
            (r.subject.as_str(), r.text.as_str()),
            ("Neues Passwort", "Hallo ann: L\n")
        );
        // The HTML form was not overridden: still the built-in one.
        assert!(r.html.contains("Reset my password"));

        write("confirm_registration.txt", "no subject line\n").unwrap_or_else(|e| unreachable!("{e}"));
        let err = Mailer::new(&cfg).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            err.contains("confirm_registration.txt") && err.contains("Subject"),
            "{err}"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let cfg = EmailConfig {
            retry_base: crate::config::GoDuration::from_secs(30),
            retry_max: crate::config::GoDuration::from_secs(100),
            ..Default::default()
        };
        assert_eq!([1, 2, 3, 4, 40].map(|a| backoff(&cfg, a)), [30, 60, 100, 100, 100]);
    }
}
