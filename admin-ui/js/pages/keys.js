// Signing keys: the public ring, which key signs, when the next one is made, and rotation on demand.

import * as api from '../api.js';
import { may } from '../perm.js';
import { confirmAction, explain, h, mount, notify, table, when } from '../ui.js';

export async function keysPage(main) {
  const ring = await api.get('api/admin/keys');
  const hours = (s) => (s % 3600 === 0 ? `${s / 3600} h` : s % 60 === 0 ? `${s / 60} min` : `${s} s`);
  const rotate = async () => {
    const ok = await confirmAction(
      'Create a new signing key now? It is published at once; tokens already issued stay valid until they expire.',
      'Rotate now',
    );
    if (!ok) return;
    try {
      const r = await api.postJson('api/admin/keys/rotate', {});
      notify(`New key ${r.kid} created.`);
      keysPage(main);
    } catch (err) {
      notify(explain(err), 'error');
    }
  };
  mount(
    main,
    h(
      'div',
      { class: 'title' },
      h('h1', {}, 'Signing keys'),
      may('operations', true)
        ? h('button', { type: 'button', class: 'primary', id: 'rotate', onclick: rotate }, 'Rotate now')
        : null,
    ),
    h(
      'dl',
      { class: 'pairs' },
      h('dt', {}, 'Next rotation'),
      h('dd', { id: 'next-rotation' }, when(ring.next_rotation)),
      h('dt', {}, 'Key lifetime'),
      h('dd', {}, hours(ring.key_duration_seconds)),
      h('dt', {}, 'Token lifetime'),
      h('dd', {}, hours(ring.token_duration_seconds)),
    ),
    table(
      ring.keys,
      [
        ['Key id (kid)', (k) => h('code', {}, k.kid)],
        ['Algorithm', (k) => k.alg],
        ['Published', (k) => when(k.published_at)],
        ['Signs from', (k) => when(k.signs_from)],
        ['Expires', (k) => when(k.expires_at)],
        ['', (k) => (k.signing ? h('span', { class: 'badge' }, 'signing') : '')],
      ],
      'No keys loaded: the server cannot sign tokens. Check its logs.',
    ),
    h(
      'p',
      { class: 'meta' },
      'One key signs per algorithm of tokens.algorithms. Resource servers fetch every public key from ' +
        '/.well-known/jwks.json; /api/pkeys (Stoke\'s clients) lists only those of tokens.algorithm.',
    ),
  );
}
