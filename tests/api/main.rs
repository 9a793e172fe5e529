//! The one integration-test binary. Modules mirror the URL tree and the CLI; `helpers` boots the real server
//! on a loopback port with a fresh database per test, on SQLite always and on PostgreSQL/MariaDB when
//! `TESSERA_TEST_POSTGRES_URL` / `TESSERA_TEST_MYSQL_URL` are set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Tests time real things (a server's restart, a deadline to poll against); the server's code may not.
#![allow(clippy::disallowed_methods)]

mod helpers;

mod accounts;
mod admin;
mod admin_ui;
mod api_keys;

mod cli;
mod config_files;
mod dbinit;
mod deploy;
mod health;
mod import;
mod interop;
mod keys;
mod layout;
mod ldap;
mod login;
mod metrics;
mod mfa;
mod migrations;
mod oauth;
mod oidc;
mod openapi;
mod otlp;
mod outage;
mod process;
mod refresh;
mod replicas;
mod security;
mod throttle;
mod tls;
