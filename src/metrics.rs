//! Prometheus metrics, kept in memory and rendered as text at `/metrics`: requests by route and status,
//! latency histograms, login and refresh outcomes, key rotations, throttled requests, and at render time the
//! password-hash queue depth, database pool use and key count.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default, Clone)]
struct RouteStats {
    statuses: BTreeMap<u16, u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Outcomes counted by name (`success`, `failure`, `reused`, …).
#[derive(Default)]
pub struct Outcomes(Mutex<BTreeMap<&'static str, u64>>);

impl Outcomes {
    pub fn add(&self, outcome: &'static str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(outcome).or_default() += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The method label: the standard methods by name, anything else `OTHER`, so a client cannot grow the label set.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN.iter().find(|m| **m == method).copied().unwrap_or("OTHER")
}

#[derive(Default)]
pub struct Metrics {
    /// By (method label, route pattern): both bounded, the route by the patterns registered (plus `unmatched`
    /// and `timeout`).
    routes: Mutex<HashMap<(&'static str, String), RouteStats>>,
    pub logins: Outcomes,
    pub refreshes: Outcomes,
    /// `/oauth/token` answers by grant (`client_credentials`, `password`, `refresh_token`) or `refused`.
    pub oauth_tokens: Outcomes,
    /// Requests refused by a limit, by reason (`hash_queue`, `login`, `register`, `refresh`, …).
    pub throttled: Outcomes,
    /// Second-factor codes by outcome (`accepted`, `recovery`, `wrong`, `replayed`, `locked`): alert on the
    /// rate of `wrong` over a long window.
    pub mfa_codes: Outcomes,
}

/// Values read from other parts of the server when `/metrics` is rendered.
pub struct Gauges {
    pub hash_queue_depth: usize,
    pub db_connections_in_use: u32,
    pub db_connections_idle: u32,
    pub signing_keys: usize,
    /// Signing keys this process created (a counter kept by the key ring).
    pub key_rotations: u64,
    /// Password hashes computed (a counter kept by the hashing threads).
    pub password_hashes: u64,
}

impl Metrics {
    /// Counts one request; `route` is the matched pattern (`/api/admin/users/{id}`), never the raw path.
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let key = (method_label(method), route.to_string());
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let stats = routes.entry(key).or_default();
        *stats.statuses.entry(status).or_default() += 1;
        stats.count += 1;
        stats.sum += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                stats.buckets[i] += 1;
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // A copy, so formatting never holds the lock every request takes.
        let mut routes: Vec<((&'static str, String), RouteStats)> = {
            let live = self.routes.lock().unwrap_or_else(|p| p.into_inner());
            live.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        out.push_str("# HELP tessera_http_requests_total HTTP requests by method, route and status.\n");
        out.push_str("# TYPE tessera_http_requests_total counter\n");
        for (key, stats) in &routes {
            for (status, n) in &stats.statuses {
                let _ = writeln!(
                    out,
                    "tessera_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                    key.0, key.1
                );
            }
        }
        out.push_str("# HELP tessera_http_request_duration_seconds HTTP request latency by method and route.\n");
        out.push_str("# TYPE tessera_http_request_duration_seconds histogram\n");
        for (key, s) in &routes {
            let labels = format!("method=\"{}\",route=\"{}\"", key.0, key.1);
            for (bound, n) in BUCKETS.iter().zip(s.buckets) {
                let _ = writeln!(
                    out,
                    "tessera_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "tessera_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(out, "tessera_http_request_duration_seconds_sum{{{labels}}} {}", s.sum);
            let _ = writeln!(
                out,
                "tessera_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        for (name, help, outcomes) in [
            ("tessera_logins_total", "Logins by outcome.", &self.logins),
            ("tessera_refreshes_total", "Refreshes by outcome.", &self.refreshes),
            (
                "tessera_oauth_tokens_total",
                "OAuth token requests by grant, or refused.",
                &self.oauth_tokens,
            ),
            (
                "tessera_throttled_requests_total",
                "Requests refused by a limit (429) or a full hash queue (503), by reason.",
                &self.throttled,
            ),
            (
                "tessera_mfa_codes_total",
                "Second-factor codes and recovery codes by outcome (accepted, recovery, wrong, replayed, locked).",
                &self.mfa_codes,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let label = if name == "tessera_throttled_requests_total" {
                "reason"
            } else {
                "outcome"
            };
            for (outcome, n) in outcomes.snapshot() {
                let _ = writeln!(out, "{name}{{{label}=\"{outcome}\"}} {n}");
            }
        }
        let counters = [
            (
                "tessera_key_rotations_total",
                "Signing keys created by this process.",
                g.key_rotations,
            ),
            (
                "tessera_password_hashes_total",
                "Password hashes computed: checks, decoys for unknown users and wrong directory passwords, new hashes.",
                g.password_hashes,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        let gauges = [
            (
                "tessera_hash_queue_depth",
                "Password checks queued or running.",
                g.hash_queue_depth as u64,
            ),
            (
                "tessera_db_connections_in_use",
                "Pooled database connections in use.",
                u64::from(g.db_connections_in_use),
            ),
            (
                "tessera_db_connections_idle",
                "Pooled database connections idle.",
                u64::from(g.db_connections_idle),
            ),
            (
                "tessera_signing_keys",
                "Keys in the published key ring.",
                g.signing_keys as u64,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP tessera_build_info The running version.\n# TYPE tessera_build_info gauge\n\
             tessera_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        process::render(&mut out);
        out
    }
}

/// The standard `process_*` series of Prometheus clients, read from `/proc` at render time (Linux; elsewhere
/// none).
mod process {
    use std::fmt::Write as _;

    /// Clock ticks per second in `/proc/<pid>/stat`: `USER_HZ`, which Linux fixes at 100 for user space.
    const USER_HZ: f64 = 100.0;

    pub(super) fn render(out: &mut String) {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // The fields after the parenthesised command name (which may itself hold spaces): state is field 3.
        let fields: Vec<&str> = stat
            .rfind(')')
            .map_or(Vec::new(), |i| stat[i + 1..].split_whitespace().collect());
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        if let (Some(utime), Some(stime)) = (field(14), field(15)) {
            let cpu = (utime + stime) / USER_HZ;
            series(
                out,
                "process_cpu_seconds_total",
                "counter",
                "User and system CPU time spent, in seconds.",
                cpu,
            );
        }
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())
        });
        if let (Some(boot), Some(ticks)) = (boot, field(22)) {
            let start = boot + ticks / USER_HZ;
            series(
                out,
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since the Unix epoch, in seconds.",
                start,
            );
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        for (field, name, help) in [
            (
                "VmRSS:",
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            ),
            (
                "VmSize:",
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            ),
        ] {
            if let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().strip_suffix("kB"))
                .and_then(|v| v.trim().parse::<f64>().ok())
            {
                series(out, name, "gauge", help, kib * 1024.0);
            }
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            series(
                out,
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
                fds.count() as f64,
            );
        }
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        if let Some(max) = limits
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
        {
            series(
                out,
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                max,
            );
        }
    }

    fn series(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    }
}
