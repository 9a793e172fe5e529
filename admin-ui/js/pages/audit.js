// The audit log: every admin change, newest first, a page at a time.

import * as api from '../api.js';
import { h, mount, table, when } from '../ui.js';

const PER_PAGE = 50;

export async function auditPage(main, page = 1) {
  const rows = await api.get('api/admin/audit', { page, itemsPerPage: PER_PAGE });
  const pager = h(
    'div',
    { class: 'actions pager' },
    h('button', { type: 'button', disabled: page <= 1, onclick: () => auditPage(main, page - 1) }, '← Newer'),
    h('span', {}, `Page ${page}`),
    h(
      'button',
      { type: 'button', disabled: rows.length < PER_PAGE, onclick: () => auditPage(main, page + 1) },
      'Older →',
    ),
  );
  mount(
    main,
    h('h1', {}, 'Audit log'),
    table(
      rows,
      [
        ['When', (r) => h('span', { class: 'nowrap' }, when(r.at))],
        ['Who', (r) => r.actor],
        ['Action', (r) => h('code', { class: 'nowrap' }, r.action)],
        ['Target', (r) => r.target],
        ['Detail', (r) => h('span', { class: 'detail', title: r.detail }, r.detail)],
      ],
      page > 1 ? 'No older entries.' : 'No changes recorded yet.',
    ),
    pager,
  );
}
