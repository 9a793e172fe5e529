// The audit log: every admin change and security event, newest first, a page at a time, filtered by the server
// (who, what, on what, when). Targets that are ids show the name they stand for; each detail opens in full.

import * as api from '../api.js';
import { h, mount, table, when } from '../ui.js';

const PER_PAGE = 50;

/** `datetime-local` input value (local time) → RFC 3339 (UTC), or nothing. */
function instant(value) {
  if (!value) return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** The target as people know it: the name when the server resolved the id, with the id beside it. */
function target(r) {
  if (!r.target) return '';
  if (!r.target_name) return h('code', {}, r.target);
  return h('span', {}, r.target_name, ' ', h('span', { class: 'muted' }, `(${r.target})`));
}

/** The detail, one line when short; longer ones (the JSON of a change) open in full, pretty-printed. */
function detail(r) {
  if (!r.detail) return '';
  let full = r.detail;
  try {
    full = JSON.stringify(JSON.parse(r.detail), null, 2);
  } catch {
    // Not JSON: shown as it is.
  }
  if (full.length <= 60 && !full.includes('\n')) return h('span', { class: 'detail' }, full);
  return h(
    'details',
    { class: 'detail-full' },
    h('summary', {}, `${r.detail.slice(0, 48)}…`),
    h('pre', {}, full),
  );
}

export async function auditPage(main) {
  const input = (name, label, attrs = {}) =>
    h('label', {}, label, h('input', { name, 'aria-label': label, autocomplete: 'off', ...attrs }));
  const filters = h(
    'form',
    { class: 'filters', id: 'audit-filters', role: 'search' },
    input('actor', 'Who', { placeholder: 'username' }),
    input('action', 'Action', { placeholder: 'login. or user.delete' }),
    input('target', 'Target', { placeholder: 'id, key id or username' }),
    input('since', 'From', { type: 'datetime-local' }),
    input('until', 'Until', { type: 'datetime-local' }),
    h('button', { type: 'submit' }, 'Filter'),
    h('button', { type: 'reset' }, 'Clear'),
  );
  const list = h('div', { id: 'audit-list' });
  const pager = h('div', { class: 'actions pager' });
  let page = 1;
  let asked = 0;
  const show = async () => {
    const data = new FormData(filters);
    const query = { page, itemsPerPage: PER_PAGE };
    for (const key of ['actor', 'action', 'target']) {
      const v = String(data.get(key) || '').trim();
      if (v) query[key] = v;
    }
    const since = instant(data.get('since'));
    const until = instant(data.get('until'));
    if (since) query.since = since;
    if (until) query.until = until;
    const filtered = Object.keys(query).length > 2;
    const mine = ++asked;
    const rows = await api.get('api/admin/audit', query);
    if (mine !== asked) return;
    const go = (to) => () => {
      page = to;
      show();
    };
    mount(
      pager,
      h('button', { type: 'button', disabled: page <= 1, onclick: go(page - 1) }, '← Newer'),
      h('span', {}, `Page ${page}`),
      h('button', { type: 'button', disabled: rows.length < PER_PAGE, onclick: go(page + 1) }, 'Older →'),
    );
    mount(
      list,
      table(
        rows,
        [
          ['When', (r) => h('span', { class: 'nowrap', title: r.at }, when(r.at))],
          ['Who', (r) => r.actor],
          ['Action', (r) => h('code', { class: 'nowrap' }, r.action)],
          ['Target', target],
          ['Detail', detail],
        ],
        filtered ? 'No entry matches these filters.' : page > 1 ? 'No older entries.' : 'No changes recorded yet.',
      ),
    );
  };
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    page = 1;
    show();
  });
  filters.addEventListener('reset', () => {
    page = 1;
    setTimeout(show);
  });
  mount(
    main,
    h('h1', {}, 'Audit log'),
    h('p', { class: 'muted' }, 'Times are local. Text filters ignore case; an action filter matches by prefix.'),
    filters,
    list,
    pager,
  );
  await show();
}
