//! A real SMTP server for one test: Debian's `python3-aiosmtpd` on a free loopback port, delivering into a
//! Maildir the test reads back. Killed on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tessera::config::{Config, GoDuration};

pub struct Smtp {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// `starttls` or `tls` with a self-signed certificate and required authentication; `None`: plain.
    tls: Option<&'static str>,
}

pub const SMTP_USER: &str = "relay";
pub const SMTP_PASSWORD: &str = "relay-secret";

/// One delivered message.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    /// The whole message with quoted-printable soft breaks and `=3D` undone, so links read whole.
    pub body: String,
}

impl Mail {
    /// The token of the first link in the message.
    pub fn token(&self) -> String {
        self.link()
            .rsplit_once("token=")
            .expect("a token in the link")
            .1
            .to_string()
    }

    /// The first link in the text part.
    pub fn link(&self) -> String {
        let start = self.body.find("http").expect("a link in the message");
        self.body[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "-_.:/?=&".contains(*c))
            .collect()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Smtp {
    /// A server, running.
    pub async fn start() -> Smtp {
        let mut smtp = Smtp::stopped();
        smtp.run().await;
        smtp
    }

    /// A port nobody listens on yet (the SMTP server is "down" until [`Smtp::run`]).
    pub fn stopped() -> Smtp {
        Smtp {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            tls: None,
        }
    }

    /// A server speaking `starttls` or implicit `tls` with a fresh self-signed certificate for `localhost`, and
    /// requiring authentication ([`SMTP_USER`]).
    pub async fn start_tls(mode: &'static str) -> Smtp {
        let mut smtp = Smtp::stopped();
        smtp.tls = Some(mode);
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
            ])
            .args(["-addext", "subjectAltName=DNS:localhost"])
            .arg("-keyout")
            .arg(smtp.dir.path().join("key.pem"))
            .arg("-out")
            .arg(smtp.dir.path().join("cert.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success());
        smtp.run().await;
        smtp
    }

    fn maildir(&self) -> PathBuf {
        self.dir.path().join("Maildir")
    }

    pub async fn run(&mut self) {
        let mut command = Command::new("/usr/bin/python3");
        match self.tls {
            None => command
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{}", self.port))
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(self.maildir()),
            Some(mode) => command
                .arg(crate::helpers::repo_path("tests/fixtures/smtp_tls_server.py"))
                .arg(self.port.to_string())
                .arg(self.maildir())
                .arg(mode)
                .arg(self.dir.path().join("cert.pem"))
                .arg(self.dir.path().join("key.pem"))
                .args([SMTP_USER, SMTP_PASSWORD]),
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3-aiosmtpd (Debian) is needed: apt-get install python3-aiosmtpd");
        self.child = Some(child);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("aiosmtpd did not start on port {}", self.port);
    }

    /// Every message delivered so far, oldest first.
    pub fn messages(&self) -> Vec<Mail> {
        let mut files: Vec<_> = ["new", "cur"]
            .iter()
            .filter_map(|d| std::fs::read_dir(self.maildir().join(d)).ok())
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files
            .iter()
            .map(|p| parse(&std::fs::read_to_string(p).unwrap()))
            .collect()
    }

    /// Waits until at least `n` messages arrived (at most 15 s) and returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Mail> {
        for _ in 0..300 {
            let found = self.messages();
            if found.len() >= n {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} messages, got {:?}", self.messages());
    }

    /// Sets `config` to send through this server, with a fast outbox.
    pub fn configure(&self, c: &mut Config) {
        c.email.smtp_host = "127.0.0.1".into();
        c.email.smtp_port = self.port;
        c.email.smtp_security = "none".into();
        c.email.from = "Tessera <tessera@example.org>".into();
        c.email.public_url = "https://id.example.org".into();
        c.email.outbox_poll_interval = GoDuration(Duration::from_millis(100));
        c.email.smtp_timeout = GoDuration::from_secs(2);
        c.email.send_lease = GoDuration::from_secs(10);
        c.email.retry_base = GoDuration::from_secs(1);
        c.email.retry_max = GoDuration::from_secs(1);
        if let Some(mode) = self.tls {
            c.email.smtp_host = "localhost".into();
            c.email.smtp_security = mode.into();
            c.email.smtp_ca_file = self.dir.path().join("cert.pem").display().to_string();
            c.email.smtp_username = SMTP_USER.into();
            c.email.smtp_password = tessera::config::Secret::new(SMTP_PASSWORD);
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn parse(raw: &str) -> Mail {
    let header = |name: &str| {
        raw.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let body = raw.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
    Mail {
        to: header("To:"),
        subject: header("Subject:"),
        body,
    }
}
