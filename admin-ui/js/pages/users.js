// Users: search, create a local user, and one user's details, password, groups, sessions and API keys.

import * as api from '../api.js';
import { may } from '../perm.js';
import { go } from '../router.js';
import { confirmAction, explain, field, form, h, link, modal, mount, notify, table, when } from '../ui.js';

/** Users per page of the list: searched and paged by the server (`?q=`), so any number of users works. */
const PAGE = 50;

export async function usersPage(main) {
  const list = h('div');
  const pager = h('div', { class: 'actions' });
  const search = h('input', {
    type: 'search',
    placeholder: 'Search by name, username or email',
    'aria-label': 'Search users',
  });
  let page = 1;
  let asked = 0;
  const show = async () => {
    const q = search.value.trim();
    const mine = ++asked;
    const query = { page, itemsPerPage: PAGE };
    if (q) query.q = q;
    const rows = await api.get('api/admin/users', query);
    // A newer search may have answered first.
    if (mine !== asked) return;
    const go = (to) => () => {
      page = to;
      show();
    };
    mount(
      pager,
      page > 1 ? h('button', { type: 'button', id: 'users-previous', onclick: go(page - 1) }, 'Previous') : null,
      rows.length === PAGE ? h('button', { type: 'button', id: 'users-next', onclick: go(page + 1) }, 'Next') : null,
    );
    mount(
      list,
      table(
        rows,
        [
          ['Username', (u) => link(`users/${u.id}`, u.username)],
          ['Name', (u) => `${u.fname} ${u.lname}`.trim()],
          ['Email', (u) => u.email],
          ['Source', (u) => u.source],
          ['Created', (u) => when(u.created_at)],
        ],
        q
          ? `No user matches “${search.value}”.`
          : 'No users yet. Create a local user, or let users sign in through a provider.',
      ),
    );
  };
  let timer;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      page = 1;
      show();
    }, 200);
  });
  const create = may('users', true)
    ? h('button', { type: 'button', class: 'primary', id: 'new-user', onclick: () => createUser() }, 'New local user')
    : null;
  mount(main, h('div', { class: 'title' }, h('h1', {}, 'Users'), create), search, list, pager, await lockedNames(main));
  await show();
  search.focus();
}

/** The names the login limits make wait now, with a button to lift a user's lock. */
async function lockedNames(main) {
  const locks = await api.get('api/admin/locks');
  if (!locks.length) return null;
  const lift = async (l) => {
    try {
      await api.del(`api/admin/locks/${encodeURIComponent(l.username)}`);
      notify(`The lock of ${l.username} is lifted.`);
      usersPage(main);
    } catch (err) {
      notify(explain(err), 'error');
    }
  };
  return h(
    'section',
    { id: 'locks' },
    h('h2', {}, 'Locked names'),
    h('p', { class: 'meta' }, 'Names that failed to log in too often wait until the time shown (security.login_throttle).'),
    table(
      locks,
      [
        ['Name', (l) => l.username || h('span', { class: 'meta' }, `a name no user has (${l.id.slice(0, 12)}…)`)],
        ['Failures', (l) => String(l.failures)],
        ['Until', (l) => when(l.locked_until)],
        [
          '',
          (l) =>
            may('users', true) && l.username
              ? h('button', { type: 'button', class: 'small lift-lock', onclick: () => lift(l) }, 'Lift')
              : '',
        ],
      ],
      '',
    ),
  );
}

function createUser() {
  const m = modal(
    'New local user',
    form(
      [
        field('Username', 'username', { required: true, autocomplete: 'off' }),
        field('Email', 'email', { type: 'email' }),
        field('First name', 'fname'),
        field('Last name', 'lname'),
        field('Password', 'password', { type: 'password', required: true, autocomplete: 'new-password' }),
      ],
      {
        submitLabel: 'Create user',
        submit: (v) => api.postJson('api/admin/localuser', v),
        done: (u) => {
          m.close();
          notify(`User ${u.username} created.`);
          go(`users/${u.id}`);
        },
        cancel: () => m.close(),
      },
    ),
  );
}

export async function userPage(main, id) {
  const canWrite = may('users', true);
  const [user, groups, sessions, keys, factor, preview] = await Promise.all([
    api.get(`api/admin/users/${id}`),
    api.all(`api/admin/users/${id}/claim-groups`),
    api.get(`api/admin/users/${id}/sessions`),
    api.get(`api/admin/users/${id}/api-keys`),
    api.get(`api/admin/users/${id}/mfa`),
    // Users and claims readers only (it shows claim values); others see no preview.
    may('claims') ? api.get(`api/admin/users/${id}/token-preview`) : null,
  ]);
  const reload = () => userPage(main, id);
  const details = form(
    [
      field('Username', 'username', { value: user.username, required: true }),
      field('Email', 'email', { type: 'email', value: user.email }),
      field('First name', 'fname', { value: user.fname }),
      field('Last name', 'lname', { value: user.lname }),
    ],
    {
      submit: (v) => api.patch(`api/admin/users/${id}`, v),
      done: () => {
        notify('Saved.');
        reload();
      },
      extra: h(
        'button',
        { type: 'button', class: 'danger', id: 'delete-user', onclick: () => remove(user) },
        'Delete user',
      ),
    },
  );
  const password =
    user.source.toLowerCase() === 'local'
      ? form(
          [
            field('New password', 'newPassword', {
              type: 'password',
              required: true,
              autocomplete: 'new-password',
              hint: 'Signs the user out everywhere.',
            }),
          ],
          {
            submitLabel: 'Set password',
            submit: (v, f) =>
              api
                .patch('api/admin/localuser', { username: user.username, newPassword: v.newPassword, force: true })
                .then(() => f.reset()),
            done: () => {
              notify('Password set; the user’s sessions were revoked.');
              reload();
            },
          },
        )
      : h('p', { class: 'empty' }, `This user comes from ${user.source}; its password is managed there.`);

  mount(
    main,
    h('p', { class: 'crumbs' }, link('users', 'Users'), ' / ', user.username),
    h('h1', {}, user.username),
    h('p', { class: 'meta' }, `Source: ${user.source} · created ${when(user.created_at)} · id ${user.id}`),
    h('section', {}, h('h2', {}, 'Details'), canWrite ? details : readOnlyDetails(user)),
    h('section', {}, h('h2', {}, 'Claim groups'), await membership(user, groups, canWrite, reload)),
    preview ? h('section', { id: 'token-preview' }, h('h2', {}, 'Next token'), tokenPreview(preview)) : null,
    canWrite ? h('section', {}, h('h2', {}, 'Password'), password) : null,
    h('section', { id: 'sessions' }, h('h2', {}, 'Sessions'), sessionList(user, sessions, canWrite, reload)),
    h('section', { id: 'api-keys' }, h('h2', {}, 'API keys'), keyList(user, keys, canWrite, reload)),
    h('section', { id: 'mfa' }, h('h2', {}, 'Two-factor sign-in'), secondFactor(user, factor, canWrite, reload)),
  );
}

const LOGINS = { password: 'A password login', ldap: 'A directory (LDAP) login', oidc: 'A sign-in through the provider' };

/** The claims the user's next login puts in its token (as the server builds them), and the token's size. */
function tokenPreview(p) {
  const rows = Object.entries(p.claims).map(([name, value]) => ({
    name,
    value: typeof value === 'string' ? value : JSON.stringify(value),
  }));
  return h(
    'div',
    {},
    h(
      'p',
      {},
      `${LOGINS[p.login.replace('+mfa', '')] || 'A login'}${p.login.endsWith('+mfa') ? ' with the second factor' : ''} would get a token of `,
      h('strong', { id: 'token-size' }, `${p.size} bytes`),
      ' with these claims (the ids and times are new for each token):',
    ),
    table(rows, [
      ['Claim', (r) => h('code', {}, r.name)],
      ['Value', (r) => r.value],
    ]),
  );
}

function secondFactor(user, factor, canWrite, reload) {
  if (!factor.totp) return h('p', {}, 'Not set up: this user signs in with a password alone.');
  const reset = async () => {
    if (
      !(await confirmAction(
        `Reset the second factor of ${user.username}? Their sessions end, and they sign in with the password alone until they set it up again.`,
        'Reset',
      ))
    )
      return;
    try {
      await api.del(`api/admin/users/${user.id}/mfa`);
      notify('Second factor reset.');
      reload();
    } catch (err) {
      notify(explain(err), 'error');
    }
  };
  return h(
    'div',
    {},
    h(
      'p',
      {},
      `Authenticator app (TOTP) since ${when(factor.enrolled_at)} · ${factor.recovery_codes_left} recovery codes left.`,
    ),
    canWrite
      ? h(
          'div',
          { class: 'actions' },
          h('button', { type: 'button', class: 'danger', id: 'reset-mfa', onclick: reset }, 'Reset second factor'),
        )
      : null,
  );
}

function keyList(user, keys, canWrite, reload) {
  const revoke = async (k) => {
    if (
      !(await confirmAction(
        `Revoke the API key “${k.name}” of ${user.username}? It stops working at once and its sessions end.`,
        'Revoke',
      ))
    )
      return;
    try {
      await api.del(`api/admin/users/${user.id}/api-keys/${encodeURIComponent(k.id)}`);
      notify('API key revoked.');
      reload();
    } catch (err) {
      notify(explain(err), 'error');
    }
  };
  return table(
    keys,
    [
      ['Name', (k) => k.name],
      ['Prefix', (k) => h('code', {}, k.prefix)],
      ['Created', (k) => when(k.created_at)],
      ['Last used', (k) => (k.last_used_at ? when(k.last_used_at) : 'never')],
      ['Expires', (k) => (k.expires_at ? when(k.expires_at) : 'never')],
      ['Claims', (k) => (k.claim_filter ? k.claim_filter.join(', ') : 'all the user holds')],
      [
        '',
        (k) =>
          canWrite
            ? h('button', { type: 'button', class: 'danger small revoke-key', onclick: () => revoke(k) }, 'Revoke')
            : '',
      ],
    ],
    'No API keys. Users create their own with POST /api/me/api-keys.',
  );
}

function readOnlyDetails(u) {
  return h(
    'dl',
    { class: 'pairs' },
    [
      ['Username', u.username],
      ['Email', u.email],
      ['First name', u.fname],
      ['Last name', u.lname],
    ].map(([k, v]) => [h('dt', {}, k), h('dd', {}, v || '—')]),
  );
}

async function membership(user, groups, canWrite, reload) {
  const current = table(
    groups,
    [
      ['Group', (g) => (may('groups') ? link(`groups/${g.id}`, g.name) : g.name)],
      ['Description', (g) => g.description],
    ],
    'Not in any claim group: this user’s tokens carry no custom claims.',
  );
  if (!canWrite || !may('groups')) return current;
  const all = await api.all('api/admin/claim-groups');
  const member = new Set(groups.map((g) => g.id));
  const boxes = all.map((g) =>
    h(
      'label',
      { class: 'check' },
      h('input', { type: 'checkbox', name: 'group', value: String(g.id), checked: member.has(g.id) }),
      ` ${g.name}`,
    ),
  );
  const f = form(
    [
      boxes.length
        ? h('div', { class: 'checks', dataset: { field: 'claim_groups' } }, boxes, h('small', { class: 'error' }))
        : h('p', { class: 'empty' }, 'No claim groups exist yet.'),
    ],
    {
      submitLabel: 'Save groups',
      submit: (_, el) => {
        const ids = [...el.querySelectorAll('input[name=group]:checked')].map((b) => Number(b.value));
        return api.patch(`api/admin/users/${user.id}`, { claim_groups: ids });
      },
      done: () => {
        notify('Group membership saved.');
        reload();
      },
    },
  );
  return h('div', {}, current, h('h3', {}, 'Change membership'), f);
}

function sessionList(user, sessions, canWrite, reload) {
  const revoke = async (s) => {
    if (
      !(await confirmAction(
        `Revoke this session of ${user.username}? Its refresh token stops working at once.`,
        'Revoke',
      ))
    )
      return;
    try {
      await api.del(`api/admin/users/${user.id}/sessions/${encodeURIComponent(s.id)}`);
      notify('Session revoked.');
      reload();
    } catch (err) {
      notify(explain(err), 'error');
    }
  };
  const revokeAll = async () => {
    if (!(await confirmAction(`Revoke every session of ${user.username}?`, 'Revoke all'))) return;
    try {
      await api.del(`api/admin/users/${user.id}/sessions`);
      notify('All sessions revoked.');
      reload();
    } catch (err) {
      notify(explain(err), 'error');
    }
  };
  const active = sessions.filter((s) => !s.revoked_at);
  return h(
    'div',
    {},
    table(
      sessions,
      [
        ['Started', (s) => when(s.created_at)],
        ['Last used', (s) => when(s.last_used_at)],
        ['Expires', (s) => when(s.expires_at)],
        ['Refreshes', (s) => String(s.refresh_count)],
        [
          'State',
          (s) => (s.revoked_at ? `revoked ${when(s.revoked_at)} (${s.revoked_reason || 'revoked'})` : 'active'),
        ],
        [
          '',
          (s) =>
            canWrite && !s.revoked_at
              ? h('button', { type: 'button', class: 'danger small revoke', onclick: () => revoke(s) }, 'Revoke')
              : '',
        ],
      ],
      'No sessions: this user has not signed in.',
    ),
    canWrite && active.length > 1
      ? h(
          'div',
          { class: 'actions' },
          h('button', { type: 'button', class: 'danger', onclick: revokeAll }, 'Revoke all sessions'),
        )
      : null,
  );
}

async function remove(user) {
  if (!(await confirmAction(`Delete user ${user.username}? Their sessions end and this cannot be undone.`))) return;
  try {
    await api.del(`api/admin/users/${user.id}`);
    notify(`User ${user.username} deleted.`);
    go('users');
  } catch (err) {
    notify(explain(err), 'error');
  }
}
