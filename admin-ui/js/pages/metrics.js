// Metrics: samples /metrics (Prometheus text) while the page is open and charts the rates between samples:
// requests, latency, logins and refreshes. Charts are SVG drawn here; nothing is loaded from elsewhere.

import * as api from '../api.js';
import { explain, h, mount, table } from '../ui.js';

const EVERY_MS = 5000;
const KEEP = 72; // six minutes of samples
const SVG = 'http://www.w3.org/2000/svg';
const GOOD = new Set(['success', 'ok', 'replayed']);

/** Prometheus text → [{name, labels, value}]. */
export function parse(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const [, k, v] of (m[2] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** The totals one chart point needs, summed over routes (the scrape itself left out). */
function summarize(samples) {
  const s = {
    requests: 0,
    errors: 0,
    sum: 0,
    count: 0,
    buckets: {},
    logins: {},
    refreshes: {},
    gauges: {},
    routes: {},
  };
  for (const { name, labels, value } of samples) {
    if (labels.route === '/metrics') continue;
    if (name === 'tessera_http_requests_total') {
      s.requests += value;
      if (Number(labels.status) >= 500) s.errors += value;
      const key = `${labels.method} ${labels.route}`;
      s.routes[key] = (s.routes[key] || 0) + value;
    } else if (name === 'tessera_http_request_duration_seconds_sum') s.sum += value;
    else if (name === 'tessera_http_request_duration_seconds_count') s.count += value;
    else if (name === 'tessera_http_request_duration_seconds_bucket')
      s.buckets[labels.le] = (s.buckets[labels.le] || 0) + value;
    else if (name === 'tessera_logins_total') s.logins[labels.outcome] = value;
    else if (name === 'tessera_refreshes_total') s.refreshes[labels.outcome] = value;
    else if (!Object.keys(labels).length) s.gauges[name] = value;
  }
  return s;
}

/** The 95th percentile from the difference of two cumulative histograms (upper bucket bound), in ms. */
function p95(a, b) {
  const bounds = Object.keys(b.buckets)
    .filter((le) => le !== '+Inf')
    .map(Number)
    .sort((x, y) => x - y);
  const total = (b.buckets['+Inf'] || 0) - (a.buckets['+Inf'] || 0);
  if (total <= 0) return 0;
  for (const le of bounds) {
    const n = (b.buckets[String(le)] || 0) - (a.buckets[String(le)] || 0);
    if (n >= 0.95 * total) return le * 1000;
  }
  return (bounds.at(-1) || 0) * 1000;
}

/** Rates between consecutive samples. */
function points(history) {
  const out = [];
  for (let i = 1; i < history.length; i++) {
    const [a, b] = [history[i - 1], history[i]];
    const dt = (b.t - a.t) / 1000;
    if (dt <= 0) continue;
    const d = (f) => Math.max(0, f(b.s) - f(a.s));
    // Outcome labels: logins count `success`, refreshes `ok` (and `replayed`, a racing tab's successful retry).
    const perMin = (kind, good) =>
      d((s) => Object.entries(s[kind]).reduce((x, [k, v]) => x + (GOOD.has(k) === good ? v : 0), 0)) * (60 / dt);
    const n = d((s) => s.count);
    out.push({
      t: b.t,
      rate: d((s) => s.requests) / dt,
      errors: d((s) => s.errors) / dt,
      avg: n ? (d((s) => s.sum) / n) * 1000 : 0,
      p95: p95(a.s, b.s),
      loginOk: perMin('logins', true),
      loginBad: perMin('logins', false),
      refreshOk: perMin('refreshes', true),
      refreshBad: perMin('refreshes', false),
    });
  }
  return out;
}

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

/** A line chart of `series` ([label, key, cssClass]) over `pts`. */
function chart(title, unit, pts, series) {
  const [W, H, L, B] = [480, 180, 48, 22];
  const max = Math.max(0, ...pts.flatMap((p) => series.map(([, k]) => p[k])));
  const nice = max > 0 ? niceCeil(max) : 1;
  const t0 = pts.length ? pts[0].t : 0;
  const span = Math.max(1, (pts.at(-1)?.t ?? 1) - t0);
  const x = (t) => L + ((t - t0) / span) * (W - L - 8);
  const y = (v) => H - B - (v / nice) * (H - B - 10);
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title });
  for (const f of [0, 0.5, 1]) {
    root.append(svg('line', { x1: L, x2: W - 8, y1: y(nice * f), y2: y(nice * f), class: 'grid' }));
    root.append(svg('text', { x: L - 6, y: y(nice * f) + 4, class: 'axis', 'text-anchor': 'end' }, fmt(nice * f)));
  }
  root.append(
    svg('text', { x: L, y: H - 4, class: 'axis' }, `${Math.round(span / 1000)} s`),
    svg('text', { x: W - 8, y: H - 4, class: 'axis', 'text-anchor': 'end' }, 'now'),
  );
  for (const [, key, cls] of series) {
    if (pts.length === 1)
      root.append(svg('circle', { cx: x(pts[0].t), cy: y(pts[0][key]), r: 3, class: `dot ${cls}` }));
    else
      root.append(
        svg('polyline', {
          points: pts.map((p) => `${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' '),
          class: `line ${cls}`,
        }),
      );
  }
  const last = pts.at(-1);
  return h(
    'figure',
    { class: 'chart-box' },
    h('figcaption', {}, title, h('span', { class: 'unit' }, ` (${unit})`)),
    root,
    h(
      'div',
      { class: 'legend' },
      series.map(([label, key, cls]) => h('span', { class: `key ${cls}` }, `${label}: ${last ? fmt(last[key]) : '–'}`)),
    ),
  );
}

function niceCeil(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((n) => n >= v) || v;
}

function fmt(v) {
  if (v === 0) return '0';
  if (v >= 100) return String(Math.round(v));
  if (v >= 1) return v.toFixed(1).replace(/\.0$/, '');
  return v.toPrecision(2);
}

export async function metricsPage(main) {
  const history = [];
  const charts = h('div', { class: 'charts' });
  const status = h('p', { class: 'meta', id: 'metrics-status' }, 'Sampling /metrics…');
  const extra = h('div');
  mount(main, h('h1', {}, 'Metrics'), status, charts, extra);
  let timer = null;
  let stopped = false;

  const sample = async () => {
    try {
      const text = await api.request('GET', 'metrics');
      history.push({ t: Date.now(), s: summarize(parse(text)) });
      if (history.length > KEEP) history.shift();
      draw();
    } catch (err) {
      const why =
        err.status === 404
          ? 'Monitoring is disabled on this server (telemetry.disable_monitoring).'
          : err.status === 403
            ? '/metrics needs a token with stk m or S (telemetry.require_prometheus_authentication is on).'
            : explain(err);
      mount(status, why);
      status.className = 'notice error';
      return;
    }
    if (!stopped) timer = setTimeout(sample, history.length < 2 ? 1500 : EVERY_MS);
  };

  const draw = () => {
    const pts = points(history);
    mount(
      status,
      pts.length
        ? `Rates over the last ${Math.round((history.at(-1).t - history[0].t) / 1000)} s, sampled every ${EVERY_MS / 1000} s while this page is open.`
        : 'Collecting a second sample to compute rates…',
    );
    mount(
      charts,
      chart('Request rate', 'requests/s', pts, [
        ['all', 'rate', 's1'],
        ['5xx', 'errors', 's3'],
      ]),
      chart('Latency', 'ms', pts, [
        ['average', 'avg', 's1'],
        ['p95 (bucket bound)', 'p95', 's2'],
      ]),
      chart('Logins', 'per minute', pts, [
        ['success', 'loginOk', 's1'],
        ['refused', 'loginBad', 's3'],
      ]),
      chart('Refreshes', 'per minute', pts, [
        ['success', 'refreshOk', 's1'],
        ['refused', 'refreshBad', 's3'],
      ]),
    );
    const s = history.at(-1).s;
    const routes = Object.entries(s.routes)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 10);
    const gauges = Object.entries(s.gauges).filter(([k]) => !k.endsWith('_total'));
    mount(
      extra,
      h(
        'div',
        { class: 'two' },
        h(
          'section',
          {},
          h('h2', {}, 'Busiest routes (since start)'),
          table(
            routes,
            [
              ['Route', ([r]) => h('code', {}, r)],
              ['Requests', ([, n]) => String(n)],
            ],
            'No requests yet.',
          ),
        ),
        h(
          'section',
          {},
          h('h2', {}, 'Now'),
          table(
            gauges,
            [
              ['Gauge', ([k]) => k.replace(/^tessera_/, '').replace(/_/g, ' ')],
              ['Value', ([, v]) => String(v)],
            ],
            'No gauges.',
          ),
        ),
      ),
    );
  };

  await sample();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
