//! Tessera's benchmark: speed and memory against the performance budget (DESIGN.md 5.7), in one command.
//!
//! Run it through `scripts/bench` (which builds the release server first). It starts the real server on a
//! loopback port with a fresh database, seeds users, drives load over real HTTP with its own lean HTTP/1.1
//! client, prints each figure beside its ceiling measured in the same run, writes the same figures as JSON,
//! and stops everything by itself. `--compare OLD.json NEW.json` compares two runs.
//!
//! The load generator is checked in the same run: it drives a minimal actix-web handler serving fixed bytes,
//! and that rate is the ceiling the key endpoints are compared with.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// A benchmark measures real time.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

struct Options {
    smoke: bool,
    /// Only the long session phase (with the ceiling and the sequential tail around it): `--long-only`.
    long_only: bool,
    /// Only the OAuth phases (with the ceiling): `--oauth-only`.
    oauth_only: bool,
    /// Only the refresh and API-key login phases (with the ceiling): `--keys-only`.
    keys_only: bool,
    postgres: Option<String>,
    out: PathBuf,
    server: PathBuf,
    seconds: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if let Some(i) = args.iter().position(|a| a == "--serve-baseline") {
        return serve_baseline(args[i + 1].parse().unwrap());
    }
    if let Some(i) = args.iter().position(|a| a == "--compare") {
        return compare(Path::new(&args[i + 1]), Path::new(&args[i + 2]));
    }
    let value = |flag: &str| args.iter().position(|a| a == flag).map(|i| args[i + 1].clone());
    let smoke = args.iter().any(|a| a == "--smoke");
    let options = Options {
        smoke,
        long_only: args.iter().any(|a| a == "--long-only"),
        oauth_only: args.iter().any(|a| a == "--oauth-only"),
        keys_only: args.iter().any(|a| a == "--keys-only"),
        postgres: value("--postgres"),
        out: value("--out")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("bench-results.json")),
        server: value("--server")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target/release/tessera")),
        seconds: value("--seconds")
            .map(|s| s.parse().unwrap())
            .unwrap_or(if smoke { 1.0 } else { 5.0 }),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(options));
}

// ---------------------------------------------------------------- the run

async fn run(o: Options) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dur = Duration::from_secs_f64(o.seconds);
    let mut report = Report::default();
    let mode = match (o.smoke, o.long_only, o.oauth_only, o.keys_only) {
        (true, ..) => "smoke",
        (_, true, ..) => "long phase only",
        (_, _, true, _) => "OAuth phases only",
        (.., true) => "refresh and API-key phases only",
        _ => "full",
    };
    eprintln!("tessera bench: {} s per phase, {} cores, {mode}", o.seconds, cores);
    let partial = o.long_only || o.oauth_only || o.keys_only;

    // Ceiling for logins: argon2id at the server's default parameters, timed with the same crate.
    let hasher = tessera::crypto::password::Hasher::new(&Default::default()).unwrap();
    let rounds = if o.smoke || partial { 3 } else { 20 };
    // With one reused buffer, as the server's hashing threads work.
    let mut memory = tessera::crypto::password::Memory::default();
    hasher.hash_in("warm-up", &mut memory).unwrap();
    let t = Instant::now();
    for i in 0..rounds {
        hasher.hash_in(&format!("password{i}"), &mut memory).unwrap();
    }
    let hash_secs = t.elapsed().as_secs_f64() / f64::from(rounds);
    report.put("argon2id_hash_ms", hash_secs * 1e3, "ms", None);
    // The same with one hash per core at once, as the server's hashing threads run under a login flood: on
    // machines whose memory bandwidth is shared, a hash is slower then, and that (not Tessera) sets the ceiling.
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..cores {
            s.spawn(|| {
                let mut memory = tessera::crypto::password::Memory::default();
                for i in 0..rounds {
                    hasher.hash_in(&format!("password{i}"), &mut memory).unwrap();
                }
            });
        }
    });
    let parallel_hash_secs = t.elapsed().as_secs_f64() / f64::from(rounds);
    report.put("argon2id_hash_all_cores_ms", parallel_hash_secs * 1e3, "ms", None);
    let login_ceiling = cores as f64 / parallel_hash_secs.max(hash_secs);

    // The load generator against a minimal actix-web handler: the HTTP ceiling of this machine.
    let baseline_port = free_port();
    let mut baseline = Command::new(std::env::current_exe().unwrap())
        .args(["--serve-baseline", &baseline_port.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let baseline_addr = format!("127.0.0.1:{baseline_port}");
    wait_ready(&baseline_addr, "/", Duration::from_secs(10))
        .await
        .expect("baseline server");

    // Tessera: migrate, then time a start to /readyz on the migrated database.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let password = "bench-password-1";
    let phc = hasher.hash(password).unwrap();
    let db_url = match &o.postgres {
        Some(base) => fresh_postgres(base),
        None => format!("sqlite://{}", dir.path().join("bench.db").display()),
    };
    // Many users, so that concurrent logins are of different names and the per-name login limit stays on.
    let dbinit: String = (0..USERS)
        .map(|i| format!("  - username: bench{i}\n    password_hash: \"{phc}\"\n"))
        .collect();
    std::fs::write(
        dir.path().join("dbinit.yaml"),
        format!("users:\n{dbinit}{}", oauth_dbinit()),
    )
    .unwrap();
    let env = server_env(&db_url, port);
    let status = Command::new(&o.server)
        .current_dir(dir.path())
        .args(["migrate", "--dbinit", "dbinit.yaml"])
        .envs(env.clone())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "tessera migrate failed");
    let addr = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let server = Command::new(&o.server)
        .current_dir(dir.path())
        .envs(env)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let ready = wait_ready(&addr, "/readyz", Duration::from_secs(30))
        .await
        .expect("tessera did not become ready");
    report.put(
        "start_to_ready_ms",
        (ready - started).as_secs_f64() * 1e3,
        "ms",
        Some((50.0, Better::Lower)),
    );
    let pid = server.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    report.put("rss_idle_mib", rss_mib(pid), "MiB", Some((15.0, Better::Lower)));

    // Key endpoints against the baseline, in three interleaved rounds, each figure the median of its rounds: a
    // burst of other work on this shared machine then spoils one round, not the comparison.
    // (A partial run measures the ceiling alone, in three rounds.)
    let (mut base, mut pkeys, mut jwks) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        base.push(fixed(&baseline_addr, Method::GET, "/", vec![], 64, dur / 2).await.rps());
        if partial {
            continue;
        }
        pkeys.push(fixed(&addr, Method::GET, "/api/pkeys", vec![], 64, dur / 2).await.rps());
        jwks.push(
            fixed(&addr, Method::GET, "/.well-known/jwks.json", vec![], 64, dur / 2)
                .await
                .rps(),
        );
    }
    kill(&mut baseline);
    let ceiling = median(base);
    report.put("baseline_rps", ceiling, "req/s", None);
    if !partial {
        report.put(
            "pkeys_rps",
            median(pkeys),
            "req/s",
            Some((ceiling * 0.9, Better::Higher)),
        );
        report.put("jwks_rps", median(jwks), "req/s", Some((ceiling * 0.9, Better::Higher)));
    }
    let logins: Vec<Bytes> = (0..USERS)
        .map(|i| Bytes::from(json!({"username": format!("bench{i}"), "password": password}).to_string()))
        .collect();
    if o.oauth_only {
        oauth_phases(&mut report, &addr, &logins, ceiling, dur).await;
        return finish(&o, report, server, cores);
    }
    if o.long_only {
        long_phase_with_tail(&mut report, &addr, &db_url, &logins, ceiling, dur).await;
        return finish(&o, report, server, cores);
    }

    // Refreshes with chained rotation: every request is the first use of its token.
    let chains = login_many(&addr, &logins, 32).await;
    let refresh = refresh_chains(&addr, chains, dur).await;
    report.put("refresh_rps", refresh.rps(), "req/s", Some((8000.0, Better::Higher)));
    report.put(
        "refresh_failures",
        refresh.errors as f64,
        "count",
        Some((0.0, Better::Lower)),
    );
    let (refresh_p50, refresh_p99) = (refresh.percentile(50.0), refresh.percentile(99.0));
    report.put("refresh_p50_ms", refresh_p50, "ms", None);
    report.put("refresh_p99_ms", refresh_p99, "ms", None);
    // API-key logins (a digest, a read, a write and a signature; no hashing), beside the refreshes.
    api_key_phase(&mut report, &addr, &logins, (refresh.rps(), ceiling), dur).await;
    if o.keys_only {
        return finish(&o, report, server, cores);
    }
    let pkeys_alone = fixed(&addr, Method::GET, "/api/pkeys", vec![], 4, dur).await;
    report.put("pkeys_p50_ms", pkeys_alone.percentile(50.0), "ms", None);
    report.put("pkeys_p99_ms", pkeys_alone.percentile(99.0), "ms", None);
    let refresh_alone = refresh_chains_paced(&addr, login_many(&addr, &logins, 4).await, dur, PACE).await;
    report.put("refresh_p99_alone_ms", refresh_alone.percentile(99.0), "ms", None);

    // One client refreshing one session in a chain, as fast as it can: the tail a growing database would show.
    let sequential_before = refresh_chains(&addr, login_many(&addr, &logins, 1).await, dur).await;
    report.put(
        "refresh_seq_p50_before_ms",
        sequential_before.percentile(50.0),
        "ms",
        None,
    );
    report.put(
        "refresh_seq_p99_before_ms",
        sequential_before.percentile(99.0),
        "ms",
        Some((3.0, Better::Lower)),
    );
    if !o.smoke {
        sessions_phase(&mut report, &addr, &db_url, &logins, ceiling).await;
        sequential_after(&mut report, &addr, &logins, dur).await;
    }

    // The OAuth face: client_credentials tokens and introspections.
    oauth_phases(&mut report, &addr, &logins, ceiling, dur).await;

    // Logins alone: the hashing throughput.
    let login_only = fixed(&addr, Method::POST, "/api/login", logins.clone(), 16, dur).await;
    report.put(
        "login_rps",
        login_only.rps(),
        "req/s",
        Some((login_ceiling * 0.95, Better::Higher)),
    );
    report.put("login_ceiling_rps", login_ceiling, "req/s", None);
    report.put("login_errors", login_only.errors as f64, "count", None);
    report.put("login_p50_ms", login_only.percentile(50.0), "ms", None);
    report.put("login_p99_ms", login_only.percentile(99.0), "ms", None);

    // A login flood saturating hashing, with refresh and pkeys latency measured meanwhile (paced, as real
    // clients would be, so they measure the flood's effect rather than compete with it).
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max((rss_mib(pid) * 1024.0) as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let side_chains = login_many(&addr, &logins, 4).await;
    let flood = fixed(&addr, Method::POST, "/api/login", logins.clone(), 64, dur);
    let side_refresh = refresh_chains_paced(&addr, side_chains, dur, PACE);
    let side_pkeys = paced(&addr, Method::GET, "/api/pkeys", vec![], 4, dur, PACE);
    let (flood, side_refresh, side_pkeys) = tokio::join!(flood, side_refresh, side_pkeys);
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    report.put("flood_login_rps", flood.rps(), "req/s", None);
    report.put("flood_login_busy", flood.errors as f64, "count", None);
    let unloaded = refresh_alone.percentile(99.0);
    report.put(
        "refresh_p99_during_flood_ms",
        side_refresh.percentile(99.0),
        "ms",
        Some((3.0 * unloaded, Better::Lower)),
    );
    report.put("pkeys_p99_during_flood_ms", side_pkeys.percentile(99.0), "ms", None);
    report.put(
        "rss_flood_mib",
        peak.load(Ordering::Relaxed) as f64 / 1024.0,
        "MiB",
        Some((64.0, Better::Lower)),
    );

    // Login latency as the user table grows (rows inserted in bulk, straight into the database).
    let (small, large) = if o.smoke { (1_000, 10_000) } else { (1_000, 1_000_000) };
    for (label, total) in [("1k", small), (if o.smoke { "10k" } else { "1m" }, large)] {
        let t = Instant::now();
        seed_users(&db_url, total, &phc);
        eprintln!("seeded {total} users in {:.1} s", t.elapsed().as_secs_f64());
        let body = Bytes::from(json!({"username": format!("seed{}", total / 2), "password": password}).to_string());
        let latency = sequential(&addr, &body, if o.smoke { 5 } else { 30 }).await;
        report.put(
            &format!("login_p50_{label}_users_ms"),
            latency.percentile(50.0),
            "ms",
            None,
        );
    }

    finish(&o, report, server, cores);
}

/// Stops the server, prints the figures and writes them as JSON.
fn finish(o: &Options, report: Report, mut server: Child, cores: usize) {
    kill(&mut server);
    report.print(o);
    let doc = report.json(o, cores);
    std::fs::write(&o.out, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    eprintln!("wrote {}", o.out.display());
}

/// `--long-only`: the sequential tail before the long phase, the long phase, and the tail after it.
async fn long_phase_with_tail(
    report: &mut Report,
    addr: &str,
    db_url: &str,
    logins: &[Bytes],
    ceiling: f64,
    dur: Duration,
) {
    let sequential_before = refresh_chains(addr, login_many(addr, logins, 1).await, dur).await;
    report.put(
        "refresh_seq_p50_before_ms",
        sequential_before.percentile(50.0),
        "ms",
        None,
    );
    report.put(
        "refresh_seq_p99_before_ms",
        sequential_before.percentile(99.0),
        "ms",
        Some((3.0, Better::Lower)),
    );
    sessions_phase(report, addr, db_url, logins, ceiling).await;
    sequential_after(report, addr, logins, dur).await;
}

/// One client refreshing one session in a chain after the long phase.
async fn sequential_after(report: &mut Report, addr: &str, logins: &[Bytes], dur: Duration) {
    let sequential_after = refresh_chains(addr, login_many(addr, logins, 1).await, dur).await;
    report.put(
        "refresh_seq_p50_after_ms",
        sequential_after.percentile(50.0),
        "ms",
        None,
    );
    report.put(
        "refresh_seq_p99_after_ms",
        sequential_after.percentile(99.0),
        "ms",
        Some((3.0, Better::Lower)),
    );
}

/// The OAuth client the bench registers through its dbinit file: confidential, `client_credentials`, allowed
/// to introspect, holding one claim group (so its tokens carry a claim, as a real client's would).
const CLIENT_ID: &str = "bench-client";
const CLIENT_SECRET: &str = "bench-client-secret-0123456789abcdefghijklmnopqrstuvwxyz";

/// The dbinit sections of that client (the secret as its SHA-256 hex, as dbinit takes it).
fn oauth_dbinit() -> String {
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(CLIENT_SECRET.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "claims:\n  - name: Bench Robot\n    short_name: role\n    value: robot\n\
         groups:\n  - name: Bench Robots\n    claims: [Bench Robot]\n\
         clients:\n  - client_id: {CLIENT_ID}\n    name: Bench\n    type: confidential\n\
         \x20   client_secret_sha256: {digest}\n    grant_types: [client_credentials]\n    scopes: [read]\n\
         \x20   groups: [Bench Robots]\n    introspect: \"true\"\n"
    )
}

/// `client_credentials` tokens/s (`client_secret_basic`) and introspections/s (of a user's access token, by
/// the same client), each against the minimal-handler ceiling of the run.
async fn oauth_phases(report: &mut Report, addr: &str, logins: &[Bytes], ceiling: f64, dur: Duration) {
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    let token_body = Bytes::from_static(b"grant_type=client_credentials&scope=read");
    let cc = form_load(addr, "/oauth/token", token_body, &basic, 32, dur).await;
    put_ratio_phase(report, "client_credentials", &cc, ceiling, 0.15);

    // A user's access token of a live session: introspection checks its signature, its jti and its session.
    let mut sender = connect(addr).await;
    let (status, bytes) = send(&mut sender, &Method::POST, "/api/login", Some(&logins[0]))
        .await
        .unwrap();
    assert_eq!(status, 200, "bench login failed");
    let access: Value = serde_json::from_slice(&bytes).unwrap();
    let token = access["token"].as_str().unwrap();
    let body = Bytes::from(format!("token={token}&token_type_hint=access_token"));
    let (status, answer) = send_form(&mut sender, "/oauth/introspect", &body, &basic)
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert!(
        status == 200 && answer["active"] == json!(true),
        "introspection of a fresh token: {status} {answer}"
    );
    let introspect = form_load(addr, "/oauth/introspect", body, &basic, 32, dur).await;
    put_ratio_phase(report, "introspect", &introspect, ceiling, 0.25);
}

/// Keys of this many bench users log in at once in the API-key phase.
const KEY_USERS: usize = 64;

/// API-key logins/s, bound by the refresh rate of the same run (`refresh_rps`), with its ratio to the ceiling.
async fn api_key_phase(
    report: &mut Report,
    addr: &str,
    logins: &[Bytes],
    (refresh_rps, ceiling): (f64, f64),
    dur: Duration,
) {
    let mut sender = connect(addr).await;
    let mut bodies = Vec::with_capacity(KEY_USERS);
    for (i, login) in logins.iter().take(KEY_USERS).enumerate() {
        let (status, bytes) = send(&mut sender, &Method::POST, "/api/login", Some(login))
            .await
            .unwrap();
        assert_eq!(status, 200, "bench login failed");
        let token = serde_json::from_slice::<Value>(&bytes).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string();
        let body = Bytes::from(json!({"name": "bench"}).to_string());
        let (status, bytes) = send_authorized(
            &mut sender,
            "/api/me/api-keys",
            ("application/json", &body),
            &format!("Bearer {token}"),
        )
        .await
        .unwrap();
        assert_eq!(
            status,
            201,
            "bench key creation failed: {}",
            String::from_utf8_lossy(&bytes)
        );
        let key = serde_json::from_slice::<Value>(&bytes).unwrap()["key"]
            .as_str()
            .unwrap()
            .to_string();
        bodies.push(Bytes::from(
            json!({"username": format!("bench{i}"), "password": key}).to_string(),
        ));
    }
    let keys = fixed(addr, Method::POST, "/api/login", bodies, 32, dur).await;
    report.put(
        "api_key_login_rps",
        keys.rps(),
        "req/s",
        Some((refresh_rps, Better::Higher)),
    );
    report.put("api_key_login_ceiling_ratio", keys.rps() / ceiling, "x", None);
    report.put("api_key_login_p99_ms", keys.percentile(99.0), "ms", None);
    report.put(
        "api_key_login_errors",
        keys.errors as f64,
        "count",
        Some((0.0, Better::Lower)),
    );
}

/// A POST of `body` (its content type, its bytes) with an `Authorization` header.
async fn send_authorized(
    sender: &mut SendRequest<Full<Bytes>>,
    path: &str,
    (content_type, body): (&str, &Bytes),
    authorization: &str,
) -> Result<(u16, Bytes), String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", content_type)
        .header("authorization", authorization)
        .body(Full::new(body.clone()))
        .unwrap();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, bytes))
}

/// A phase judged against the ceiling: `<name>_rps` (bound `target` × ceiling), its ratio, p99 and errors (none).
fn put_ratio_phase(report: &mut Report, name: &str, stats: &Stats, ceiling: f64, target: f64) {
    report.put(
        &format!("{name}_rps"),
        stats.rps(),
        "req/s",
        Some((target * ceiling, Better::Higher)),
    );
    report.put(&format!("{name}_ceiling_ratio"), stats.rps() / ceiling, "x", None);
    report.put(&format!("{name}_p99_ms"), stats.percentile(99.0), "ms", None);
    report.put(
        &format!("{name}_errors"),
        stats.errors as f64,
        "count",
        Some((0.0, Better::Lower)),
    );
}

/// `conns` connections posting one form with an `Authorization` header for `dur`, as fast as they can.
async fn form_load(addr: &str, path: &str, body: Bytes, authorization: &str, conns: usize, dur: Duration) -> Stats {
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            let (addr, path, body, authorization) = (
                addr.to_string(),
                path.to_string(),
                body.clone(),
                authorization.to_string(),
            );
            tokio::spawn(async move {
                let mut sender = connect(&addr).await;
                let mut stats = Stats::default();
                let start = Instant::now();
                while start.elapsed() < dur {
                    let t = Instant::now();
                    match send_form(&mut sender, &path, &body, &authorization).await {
                        Ok((200, _)) => stats.latencies_us.push(t.elapsed().as_micros() as u32),
                        Ok(_) => stats.errors += 1,
                        Err(_) => {
                            stats.errors += 1;
                            sender = connect(&addr).await;
                        }
                    }
                }
                stats.elapsed = start.elapsed().as_secs_f64();
                stats
            })
        })
        .collect();
    merge_all(tasks).await
}

/// Users the dbinit file seeds (`bench0`..), and sessions of the long phase.
const USERS: usize = 1_000;
const SESSIONS: usize = 1_000;
/// Refreshes per session in the long phase, and after how many the size is measured the first time.
const ROUNDS: usize = 200;
const FIRST_ROUNDS: usize = 20;

/// The long phase: `SESSIONS` sessions, each refreshed `ROUNDS` times in a chain; the database's bytes per live
/// session after `FIRST_ROUNDS` and after `ROUNDS` (constant storage: the same), and the rate.
async fn sessions_phase(report: &mut Report, addr: &str, db_url: &str, logins: &[Bytes], ceiling: f64) {
    let t = Instant::now();
    let sessions = login_many(addr, logins, SESSIONS).await;
    eprintln!("{SESSIONS} sessions in {:.1} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let (sessions, first) = refresh_rounds(addr, sessions, FIRST_ROUNDS, 32).await;
    let mut elapsed = t.elapsed();
    let (live, bytes, families) = database_size(db_url);
    report.put(
        &format!("session_bytes_after_{FIRST_ROUNDS}"),
        bytes as f64 / live as f64,
        "B",
        Some((2048.0, Better::Lower)),
    );
    let t = Instant::now();
    let (_, rest) = refresh_rounds(addr, sessions, ROUNDS - FIRST_ROUNDS, 32).await;
    elapsed += t.elapsed();
    let (live_after, bytes_after, families_after) = database_size(db_url);
    report.put(
        &format!("session_bytes_after_{ROUNDS}"),
        bytes_after as f64 / live_after as f64,
        "B",
        Some((2048.0, Better::Lower)),
    );
    report.put(
        &format!("family_table_bytes_after_{FIRST_ROUNDS}"),
        families as f64 / live as f64,
        "B",
        None,
    );
    report.put(
        &format!("family_table_bytes_after_{ROUNDS}"),
        families_after as f64 / live_after as f64,
        "B",
        None,
    );
    report.put("live_sessions", live_after as f64, "count", None);
    let stats = first.merge(rest);
    report.put(
        "long_refresh_rps",
        stats.latencies_us.len() as f64 / elapsed.as_secs_f64(),
        "req/s",
        Some((0.15 * ceiling, Better::Higher)),
    );
    report.put("long_refresh_p99_ms", stats.percentile(99.0), "ms", None);
    report.put(
        "long_refresh_failures",
        stats.errors as f64,
        "count",
        Some((0.0, Better::Lower)),
    );
}

/// Every session refreshed `rounds` times in a chain, by `conns` connections each serving a share of them in
/// turn. Returns the sessions' newest tokens.
async fn refresh_rounds(addr: &str, sessions: Vec<String>, rounds: usize, conns: usize) -> (Vec<String>, Stats) {
    let mut shares: Vec<Vec<String>> = vec![Vec::new(); conns];
    for (i, s) in sessions.into_iter().enumerate() {
        shares[i % conns].push(s);
    }
    let tasks: Vec<_> = shares
        .into_iter()
        .map(|mut share| {
            let addr = addr.to_string();
            tokio::spawn(async move {
                let mut sender = connect(&addr).await;
                let mut stats = Stats::default();
                let start = Instant::now();
                for _ in 0..rounds {
                    for refresh in share.iter_mut() {
                        let body = Bytes::from(format!(r#"{{"refresh":"{refresh}"}}"#));
                        let t = Instant::now();
                        match send(&mut sender, &Method::POST, "/api/refresh", Some(&body)).await {
                            Ok((200, bytes)) => {
                                stats.latencies_us.push(t.elapsed().as_micros() as u32);
                                let v: Value = serde_json::from_slice(&bytes).unwrap();
                                *refresh = v["refresh"].as_str().unwrap().to_string();
                            }
                            _ => stats.errors += 1,
                        }
                    }
                }
                stats.elapsed = start.elapsed().as_secs_f64();
                (share, stats)
            })
        })
        .collect();
    let (mut sessions, mut total) = (Vec::new(), Stats::default());
    for t in tasks {
        let (share, stats) = t.await.unwrap();
        sessions.extend(share);
        total = total.merge(stats);
    }
    (sessions, total)
}

/// Live sessions, the database's bytes, and the bytes of the sessions' table with its indexes. SQLite: the file
/// and its WAL after a truncating checkpoint (the table from `dbstat`). PostgreSQL: the database's size and
/// `pg_total_relation_size` of the table (dead row versions included: what autovacuum has not reclaimed yet).
fn database_size(db_url: &str) -> (i64, u64, u64) {
    use diesel::prelude::*;
    use diesel::sql_types::BigInt;
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let one = |c: &mut tessera::db::DbConn, sql: &str| -> Option<i64> {
        diesel::sql_query(sql).get_result::<N>(c).ok().map(|r| r.n)
    };
    let mut config = tessera::config::DatabaseConfig::default();
    config.url = tessera::config::Secret::new(db_url);
    let db = tessera::db::Db::connect(&config).unwrap();
    let mut conn = db.get().unwrap();
    let live = one(
        &mut conn,
        "SELECT COUNT(*) AS n FROM refresh_families WHERE revoked_at IS NULL",
    )
    .unwrap_or(1)
    .max(1);
    match db_url.strip_prefix("sqlite://") {
        Some(path) => {
            use diesel::connection::SimpleConnection;
            conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
            let families = one(
                &mut conn,
                "SELECT SUM(pgsize) AS n FROM dbstat WHERE name IN ('refresh_families', \
                 'sqlite_autoindex_refresh_families_1', 'refresh_families_user', 'refresh_families_grace')",
            )
            .unwrap_or(0);
            let size = |p: &str| std::fs::metadata(p).map_or(0, |m| m.len());
            (live, size(path) + size(&format!("{path}-wal")), families as u64)
        }
        None => {
            let total = one(&mut conn, "SELECT pg_database_size(current_database()) AS n").unwrap_or(0);
            let families = one(&mut conn, "SELECT pg_total_relation_size('refresh_families') AS n").unwrap_or(0);
            (live, total as u64, families as u64)
        }
    }
}

fn server_env(db_url: &str, port: u16) -> Vec<(String, String)> {
    [
        ("TESSERA__DATABASE__URL", db_url.to_string()),
        ("TESSERA__SERVER__PORT", port.to_string()),
        ("TESSERA__LOGGING__WRITE_TO_STDOUT", "false".into()),
        // The bench refreshes one session thousands of times a second; nothing else changes.
        ("TESSERA__TOKENS__REFRESH_REUSE_GRACE", "10s".into()),
        // All load comes from one address: keep the per-address refresh bucket in the path, but far away.
        ("TESSERA__SECURITY__RATE_LIMITS__REFRESH__BURST", "1000000000".into()),
        ("TESSERA__SECURITY__RATE_LIMITS__REFRESH__PERIOD", "300h".into()),
        // Likewise the failed-login bucket of the address, which every login reserves from and gives back to: on
        // PostgreSQL its compare-and-set gives up under dozens of logins at once from one address (a given-back
        // token is then lost), and the bucket runs dry. The per-name limit stays on: the logins rotate over
        // 1,000 users.
        (
            "TESSERA__SECURITY__RATE_LIMITS__LOGIN_FAILURES__BURST",
            "1000000000".into(),
        ),
        ("TESSERA__SECURITY__RATE_LIMITS__LOGIN_FAILURES__PERIOD", "300h".into()),
        // Client authentication reserves a failure before its check and gives it back after: with more requests
        // of one client (and one address) in flight than the limit (10), the rest are refused with 429.
        ("TESSERA__OAUTH__MAX_CLIENT_FAILURES", "1000000000".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn fresh_postgres(base: &str) -> String {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    let name = format!("tessera_bench_{:08x}", rand::random::<u32>());
    let mut conn = diesel::pg::PgConnection::establish(base).unwrap();
    conn.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let (head, _) = base.rsplit_once('/').unwrap();
    format!("{head}/{name}")
}

/// Adds users `seed1..=seedN` not yet present, in one statement per backend.
fn seed_users(db_url: &str, total: usize, phc: &str) {
    use diesel::connection::SimpleConnection;
    let mut config = tessera::config::DatabaseConfig::default();
    config.url = tessera::config::Secret::new(db_url);
    let db = tessera::db::Db::connect(&config).unwrap();
    let mut conn = db.get().unwrap();
    let start = {
        use diesel::prelude::*;
        use tessera::db::schema::users;
        users::table
            .filter(users::username.like("seed%"))
            .count()
            .get_result::<i64>(&mut *conn)
            .unwrap()
            + 1
    };
    let columns = "id, username, email, fname, lname, source, password_hash, created_at, updated_at, version";
    let values = format!(
        "1000000000 + x, 'seed' || x, 'seed' || x || '@bench.invalid', 'Seed', 'User', 'LOCAL', '{phc}', 0, 0, 0"
    );
    let sql = if db_url.starts_with("sqlite") {
        format!(
            "WITH RECURSIVE c(x) AS (SELECT {start} UNION ALL SELECT x + 1 FROM c WHERE x < {total}) \
             INSERT INTO users ({columns}) SELECT {values} FROM c"
        )
    } else {
        format!("INSERT INTO users ({columns}) SELECT {values} FROM generate_series({start}, {total}) AS x")
    };
    conn.batch_execute(&sql).unwrap();
}

// ---------------------------------------------------------------- load generation

/// A lean HTTP/1.1 keep-alive connection.
async fn connect(addr: &str) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &Method,
    path: &str,
    body: Option<&Bytes>,
) -> Result<(u16, Bytes), String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let mut req = Request::builder()
        .method(method.clone())
        .uri(path)
        .header("host", "127.0.0.1");
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(Full::new(body.cloned().unwrap_or_default())).unwrap();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, bytes))
}

/// A form-encoded POST with an `Authorization` header (OAuth endpoints).
async fn send_form(
    sender: &mut SendRequest<Full<Bytes>>,
    path: &str,
    body: &Bytes,
    authorization: &str,
) -> Result<(u16, Bytes), String> {
    send_authorized(sender, path, ("application/x-www-form-urlencoded", body), authorization).await
}

/// The middle value (of an odd count; the upper middle of an even one).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

#[derive(Default)]
struct Stats {
    latencies_us: Vec<u32>,
    errors: u64,
    elapsed: f64,
}

impl Stats {
    fn merge(mut self, other: Stats) -> Stats {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        self.elapsed = self.elapsed.max(other.elapsed);
        self
    }

    fn rps(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.max(1e-9)
    }

    fn percentile(&self, p: f64) -> f64 {
        let mut v = self.latencies_us.clone();
        if v.is_empty() {
            return 0.0;
        }
        v.sort_unstable();
        let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        f64::from(v[i]) / 1e3
    }
}

/// `conns` connections sending one request for `dur`, as fast as they can; with `bodies`, each request takes the
/// next one in turn (logins of different users).
async fn fixed(addr: &str, method: Method, path: &str, bodies: Vec<Bytes>, conns: usize, dur: Duration) -> Stats {
    paced(addr, method, path, bodies, conns, dur, Duration::ZERO).await
}

/// Like [`fixed`], each connection pausing `pace` between requests.
async fn paced(
    addr: &str,
    method: Method,
    path: &str,
    bodies: Vec<Bytes>,
    conns: usize,
    dur: Duration,
    pace: Duration,
) -> Stats {
    let (bodies, turn) = (Arc::new(bodies), Arc::new(AtomicUsize::new(0)));
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            let (addr, method, path) = (addr.to_string(), method.clone(), path.to_string());
            let (bodies, turn) = (bodies.clone(), turn.clone());
            tokio::spawn(async move {
                let mut sender = connect(&addr).await;
                let mut stats = Stats::default();
                let start = Instant::now();
                while start.elapsed() < dur {
                    let body = match bodies.len() {
                        0 => None,
                        n => bodies.get(turn.fetch_add(1, Ordering::Relaxed) % n),
                    };
                    let t = Instant::now();
                    match send(&mut sender, &method, &path, body).await {
                        Ok((200, _)) => stats.latencies_us.push(t.elapsed().as_micros() as u32),
                        Ok(_) => stats.errors += 1,
                        Err(_) => {
                            stats.errors += 1;
                            sender = connect(&addr).await;
                        }
                    }
                    if !pace.is_zero() {
                        tokio::time::sleep(pace).await;
                    }
                }
                stats.elapsed = start.elapsed().as_secs_f64();
                stats
            })
        })
        .collect();
    merge_all(tasks).await
}

/// The merged statistics of every client task.
async fn merge_all(tasks: Vec<tokio::task::JoinHandle<Stats>>) -> Stats {
    let mut total = Stats::default();
    for t in tasks {
        total = total.merge(t.await.unwrap());
    }
    total
}

/// `n` sessions, of the bench users in turn, each as its refresh token; a few logins at once.
async fn login_many(addr: &str, bodies: &[Bytes], n: usize) -> Vec<String> {
    let conns = n.min(8);
    let tasks: Vec<_> = (0..conns)
        .map(|c| {
            let addr = addr.to_string();
            let mine: Vec<Bytes> = (c..n)
                .step_by(conns)
                .map(|i| bodies[i % bodies.len()].clone())
                .collect();
            tokio::spawn(async move {
                let mut sender = connect(&addr).await;
                let mut out = Vec::new();
                for body in mine {
                    let (status, bytes) = send(&mut sender, &Method::POST, "/api/login", Some(&body))
                        .await
                        .unwrap();
                    assert_eq!(status, 200, "bench login failed: {}", String::from_utf8_lossy(&bytes));
                    let v: Value = serde_json::from_slice(&bytes).unwrap();
                    out.push(v["refresh"].as_str().unwrap().to_string());
                }
                out
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.extend(t.await.unwrap());
    }
    out
}

/// Pause between the requests of a paced client.
const PACE: Duration = Duration::from_millis(5);

/// One connection per session, each refreshing with the token the previous refresh returned.
async fn refresh_chains(addr: &str, chains: Vec<String>, dur: Duration) -> Stats {
    refresh_chains_paced(addr, chains, dur, Duration::ZERO).await
}

/// Like [`refresh_chains`], pausing `pace` between requests.
async fn refresh_chains_paced(addr: &str, chains: Vec<String>, dur: Duration, pace: Duration) -> Stats {
    let tasks: Vec<_> = chains
        .into_iter()
        .map(|mut refresh| {
            let addr = addr.to_string();
            tokio::spawn(async move {
                let mut sender = connect(&addr).await;
                let mut stats = Stats::default();
                let start = Instant::now();
                while start.elapsed() < dur {
                    let body = Bytes::from(format!(r#"{{"refresh":"{refresh}"}}"#));
                    let t = Instant::now();
                    match send(&mut sender, &Method::POST, "/api/refresh", Some(&body)).await {
                        Ok((200, bytes)) => {
                            stats.latencies_us.push(t.elapsed().as_micros() as u32);
                            let v: Value = serde_json::from_slice(&bytes).unwrap();
                            refresh = v["refresh"].as_str().unwrap().to_string();
                            if !pace.is_zero() {
                                tokio::time::sleep(pace).await;
                            }
                        }
                        _ => {
                            // A broken chain cannot continue: count it and stop this session.
                            stats.errors += 1;
                            break;
                        }
                    }
                }
                stats.elapsed = start.elapsed().as_secs_f64();
                stats
            })
        })
        .collect();
    merge_all(tasks).await
}

/// `n` logins one after another (latency without contention).
async fn sequential(addr: &str, body: &Bytes, n: usize) -> Stats {
    let mut sender = connect(addr).await;
    let mut stats = Stats::default();
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        match send(&mut sender, &Method::POST, "/api/login", Some(body)).await {
            Ok((200, _)) => stats.latencies_us.push(t.elapsed().as_micros() as u32),
            _ => stats.errors += 1,
        }
    }
    stats.elapsed = start.elapsed().as_secs_f64();
    stats
}

async fn wait_ready(addr: &str, path: &str, limit: Duration) -> Option<Instant> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(stream) = tokio::net::TcpStream::connect(addr).await
            && let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        {
            tokio::spawn(conn);
            if let Ok((200, _)) = send(&mut sender, &Method::GET, path, None).await {
                return Some(Instant::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn kill(child: &mut Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

// ---------------------------------------------------------------- the baseline server

fn serve_baseline(port: u16) {
    const BODY: &[u8] = br#"{"exp":"2026-01-01T00:00:00Z","keys":[{"alg":"ES256","crv":"P-256","kid":"baseline","kty":"EC","use":"sig","x":"JRyhDCxBM60wXU4EuG2OU2T3xp7mFjZ2GOHD9KaBknk=","y":"zBon1UChXOlQd0hgwU1NJu7TS2iLWuKjZRowHOQlZDU="}]}"#;
    actix_web::rt::System::new().block_on(async move {
        actix_web::HttpServer::new(|| {
            actix_web::App::new().route(
                "/",
                actix_web::web::get().to(|| async {
                    actix_web::HttpResponse::Ok()
                        .content_type("application/json")
                        .body(BODY)
                }),
            )
        })
        .bind(("127.0.0.1", port))
        .unwrap()
        .run()
        .await
        .unwrap();
    });
}

// ---------------------------------------------------------------- reporting

#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

/// One figure: name, value, unit, and the bound it is held to (if any).
type Row = (String, f64, String, Option<(f64, Better)>);

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
}

impl Report {
    fn put(&mut self, name: &str, value: f64, unit: &str, bound: Option<(f64, Better)>) {
        eprintln!("  {name}: {value:.2} {unit}");
        self.rows.push((name.to_string(), value, unit.to_string(), bound));
    }

    fn print(&self, o: &Options) {
        println!();
        println!(
            "{:<32} {:>12} {:<6} {:>12} {:>8}  verdict",
            "figure", "value", "unit", "bound", "ratio"
        );
        for (name, value, unit, bound) in &self.rows {
            match bound {
                Some((b, better)) => {
                    let ok = match better {
                        Better::Higher => value >= b,
                        Better::Lower => value <= b,
                    };
                    let ratio = if *b != 0.0 { value / b } else { 0.0 };
                    let sign = if matches!(better, Better::Higher) { ">=" } else { "<=" };
                    println!(
                        "{name:<32} {value:>12.2} {unit:<6} {sign}{b:>10.2} {ratio:>8.2}  {}",
                        if ok { "ok" } else { "MISS" }
                    );
                }
                None => println!("{name:<32} {value:>12.2} {unit:<6}"),
            }
        }
        if o.smoke {
            println!("(smoke mode: figures are not meaningful)");
        }
    }

    fn json(&self, o: &Options, cores: usize) -> Value {
        let metrics: BTreeMap<&str, Value> = self
            .rows
            .iter()
            .map(|(name, value, unit, bound)| {
                let mut m = json!({ "value": value, "unit": unit });
                if let Some((b, better)) = bound {
                    m["bound"] = json!(b);
                    m["better"] = json!(if matches!(better, Better::Higher) {
                        "higher"
                    } else {
                        "lower"
                    });
                }
                (name.as_str(), m)
            })
            .collect();
        json!({
            "smoke": o.smoke,
            "long_only": o.long_only,
            "oauth_only": o.oauth_only,
            "keys_only": o.keys_only,
            "backend": if o.postgres.is_some() { "postgres" } else { "sqlite" },
            "cores": cores,
            "seconds_per_phase": o.seconds,
            "metrics": metrics,
        })
    }
}

fn compare(old: &Path, new: &Path) {
    let read = |p: &Path| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let (old, new) = (read(old), read(new));
    println!("{:<32} {:>12} {:>12} {:>9}", "figure", "old", "new", "change");
    for (name, m) in new["metrics"].as_object().unwrap() {
        let n = m["value"].as_f64().unwrap_or(0.0);
        match old["metrics"][name]["value"].as_f64() {
            Some(o) if o != 0.0 => println!("{name:<32} {o:>12.2} {n:>12.2} {:>+8.1}%", (n - o) / o * 100.0),
            Some(o) => println!("{name:<32} {o:>12.2} {n:>12.2}"),
            None => println!("{name:<32} {:>12} {n:>12.2}", "-"),
        }
    }
}
