//! The `email` and `registration` sections (self-service accounts).

use serde::{Deserialize, Serialize};

use super::{GoDuration, Secret};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EmailConfig {
    pub smtp_host: String,
    pub smtp_port: u16,
    /// `none`, `starttls` or `tls`.
    pub smtp_security: String,
    /// A PEM file with the CA certificate that signed the SMTP server's (for a private CA); empty: the system's
    /// trusted roots only.
    pub smtp_ca_file: String,
    pub smtp_username: String,
    pub smtp_password: Secret,
    /// A file holding the SMTP password (instead of `smtp_password`).
    pub smtp_password_file: String,
    /// The From address of every message.
    pub from: String,
    /// Base URL used in every link a message carries; never taken from a request.
    pub public_url: String,
    /// Path (under `public_url`) of the page that takes `?token=` from a confirmation link (registration or
    /// a new email address) and posts it to `/api/confirm`.
    pub confirm_path: String,
    /// Path (under `public_url`) of the page that takes `?token=` from a reset link and posts the new password
    /// to `/api/password/reset`.
    pub reset_path: String,
    /// How long a confirmation link (registration, email change) stays valid.
    pub confirm_link_duration: GoDuration,
    /// How long a password reset link stays valid.
    pub reset_link_duration: GoDuration,
    /// A directory whose `<name>.subject`, `<name>.txt` and `<name>.html` files replace the built-in templates
    /// (`confirm_registration`, `confirm_email_change`, `password_reset`, `already_registered`).
    pub templates_dir: String,
    /// How often the outbox is checked for messages due (a new message is picked up at once on this replica).
    pub outbox_poll_interval: GoDuration,
    /// How long a replica owns a message it is sending; another replica may retry it after that.
    pub send_lease: GoDuration,
    /// Connecting to and talking with the SMTP server gives up after this long.
    pub smtp_timeout: GoDuration,
    /// First wait before a failed message is retried; it doubles with each failure, up to `retry_max`.
    pub retry_base: GoDuration,
    pub retry_max: GoDuration,
    /// Sends tried before a message is given up (and its body forgotten).
    pub max_attempts: u32,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            smtp_host: String::new(),
            smtp_port: 587,
            smtp_security: "starttls".into(),
            smtp_ca_file: String::new(),
            smtp_username: String::new(),
            smtp_password: Secret::default(),
            smtp_password_file: String::new(),
            from: String::new(),
            public_url: String::new(),
            confirm_path: "/confirm".into(),
            reset_path: "/reset-password".into(),
            confirm_link_duration: GoDuration::from_secs(24 * 3600),
            reset_link_duration: GoDuration::from_secs(30 * 60),
            templates_dir: String::new(),
            outbox_poll_interval: GoDuration::from_secs(5),
            send_lease: GoDuration::from_secs(60),
            smtp_timeout: GoDuration::from_secs(10),
            retry_base: GoDuration::from_secs(30),
            retry_max: GoDuration::from_secs(3600),
            max_attempts: 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RegistrationConfig {
    /// `closed`, `open` or `confirm` (open, with email confirmation before the first login).
    pub mode: String,
    /// Registration must present an anonymous token from `/api/anonymous`.
    pub require_anonymous_token: bool,
    pub anonymous_token_duration: GoDuration,
    /// `POST /api/anonymous` hands out anonymous tokens (needed by `require_anonymous_token`).
    pub anonymous_tokens: bool,
    /// Extra string claims of every anonymous token (not `stk` nor a registered claim name).
    pub anonymous_claims: std::collections::BTreeMap<String, String>,
    /// TokTok's encrypted forms: `GET /api/public_key` serves an RSA key, and login and register bodies may
    /// come as `{"encrypted": base64(RSA-OAEP-SHA256(body))}`. TLS is the real protection; this adds nothing
    /// to it and is off by default.
    pub rsa_encryption: bool,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        RegistrationConfig {
            mode: "closed".into(),
            require_anonymous_token: false,
            anonymous_token_duration: GoDuration::from_secs(15 * 60),
            anonymous_tokens: false,
            anonymous_claims: std::collections::BTreeMap::new(),
            rsa_encryption: false,
        }
    }
}
