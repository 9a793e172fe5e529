// The shell: sign-in, navigation by permission, and the page router.

import * as api from './api.js';
import { anyAccess, letters, may } from './perm.js';
import { go, href, onRoute, route } from './router.js';
import { failed, field, form, h, link, mount, when } from './ui.js';
import { usersPage, userPage } from './pages/users.js';
import { groupsPage, groupPage } from './pages/groups.js';
import { claimsPage } from './pages/claims.js';
import { applicationsPage, applicationPage } from './pages/applications.js';
import { keysPage } from './pages/keys.js';
import { auditPage } from './pages/audit.js';
import { metricsPage } from './pages/metrics.js';

const NAV = [
  ['', 'Overview', 'totals'],
  ['users', 'Users', 'users'],
  ['groups', 'Claim groups', 'groups'],
  ['claims', 'Claims', 'claims'],
  ['applications', 'Applications', 'clients'],
  ['keys', 'Keys', 'operations'],
  ['audit', 'Audit log', 'operations'],
  ['metrics', 'Metrics', 'metrics'],
];

const PAGES = [
  [/^$/, overviewPage, 'totals'],
  [/^users$/, usersPage, 'users'],
  [/^users\/(\d+)$/, userPage, 'users'],
  [/^groups$/, groupsPage, 'groups'],
  [/^groups\/(\d+)$/, groupPage, 'groups'],
  [/^claims$/, claimsPage, 'claims'],
  [/^applications$/, applicationsPage, 'clients'],
  [/^applications\/([^/]+)$/, applicationPage, 'clients'],
  [/^keys$/, keysPage, 'operations'],
  [/^audit$/, auditPage, 'operations'],
  [/^metrics$/, metricsPage, 'metrics'],
];

const app = document.getElementById('app');
let cleanup = null;
let notice = '';

async function render() {
  if (typeof cleanup === 'function') cleanup();
  cleanup = null;
  const r = route();
  if (!api.current()) {
    if (r !== 'login') return go('login', { replace: true });
    return signInPage();
  }
  if (r === 'login') return go('', { replace: true });
  const main = h('main', { id: 'main', tabindex: '-1' });
  // The notices survive the page change: "Group deleted." is said just before going back to the list.
  const notices = document.getElementById('notices') || h('div', { id: 'notices' });
  mount(app, header(), h('div', { class: 'layout' }, nav(r), h('div', { class: 'content' }, notices, main)));
  if (!anyAccess()) {
    mount(
      main,
      h('h1', {}, 'No admin access'),
      h(
        'p',
        { class: 'empty' },
        'This account has no admin permissions (stk letters). Sign in as an operator, or ask a superuser to add you to an admin group.',
      ),
    );
    return;
  }
  const hit = PAGES.find(([re]) => re.test(r));
  if (!hit) {
    mount(main, h('h1', {}, 'Not found'), h('p', {}, 'No such page. ', link('', 'Back to the overview')));
    return;
  }
  const [re, page, area] = hit;
  const section = NAV.find(([to]) => to === r.split('/')[0]);
  document.title = section ? `${section[1]} · Tessera admin` : 'Tessera admin';
  if (!may(area)) {
    const first = NAV.find(([, , a]) => may(a));
    if (r === '' && first) return go(first[0], { replace: true });
    mount(main, h('h1', {}, 'Not allowed'), h('p', { class: 'empty' }, 'Your account cannot open this page.'));
    return;
  }
  mount(main, h('p', { class: 'loading' }, 'Loading…'));
  try {
    cleanup = await page(main, ...re.exec(r).slice(1));
  } catch (err) {
    mount(main, failed(err));
  }
}

function header() {
  const c = api.claims();
  const who = api.current()?.username || c.u || c.sub || '';
  return h(
    'header',
    { class: 'top' },
    h('a', { class: 'brand', href: href(''), dataset: { route: '' } }, 'Tessera'),
    h(
      'span',
      { class: 'who' },
      `Signed in as ${who}`,
      h('span', { class: 'letters', title: 'stk permission letters' }, [...letters()].join(' ')),
    ),
    h('button', { type: 'button', id: 'sign-out', onclick: () => api.signOut() }, 'Sign out'),
  );
}

function nav(r) {
  const top = r.split('/')[0];
  return h(
    'nav',
    { class: 'side', 'aria-label': 'Sections' },
    NAV.filter(([, , area]) => may(area)).map(([to, label]) =>
      h(
        'a',
        {
          href: href(to),
          dataset: { route: '' },
          class: top === to ? 'active' : null,
          'aria-current': top === to ? 'page' : null,
        },
        label,
      ),
    ),
  );
}

async function signInPage() {
  const fields = [
    field('Username or email', 'username', { required: true, autocomplete: 'username' }),
    field('Password', 'password', { type: 'password', required: true, autocomplete: 'current-password' }),
  ];
  let providers = [];
  try {
    providers = (await api.publicJson('api/available_providers')).providers || [];
  } catch {
    // No list: local accounts only.
  }
  // Directories check a password here; OpenID providers sign in on their own page (a button each).
  const directories = providers.filter((p) => p.provider_type !== 'OIDC');
  const upstream = providers.filter((p) => p.provider_type === 'OIDC');
  if (directories.length) {
    fields.push(
      field('Sign in with', 'provider', {
        options: [['', 'Local account'], ...directories.map((p) => [p.name, `${p.name} (${p.provider_type})`])],
      }),
    );
  }
  const f = form(fields, {
    submitLabel: 'Sign in',
    submit: async (v) => {
      if (!v.username || !v.password) {
        const missing = !v.username ? 'username' : 'password';
        throw Object.assign(new Error(`${missing} is required`), { code: 'invalid_field' });
      }
      try {
        await api.signIn(v.username, v.password, v.provider);
      } catch (err) {
        if (err.code === 'mfa_required') return codePage(err.mfaToken, v.username);
        if (err.code === 'mfa_enrollment_required') {
          err.message =
            'This account must set up two-factor sign-in before it signs in here (POST /api/mfa/totp with the enrollment token).';
        } else if (err.status === 401) err.message = 'Wrong username or password. Check them and try again.';
        throw err;
      }
    },
  });
  const failed = h('p', { class: 'notice error', role: 'alert', hidden: true });
  const buttons = upstream.map((p) =>
    h(
      'button',
      {
        type: 'button',
        class: 'provider',
        onclick: async () => {
          failed.hidden = true;
          try {
            await api.signInWithProvider(p.name);
          } catch (err) {
            if (err.code === 'mfa_required') return codePage(err.mfaToken, p.name);
            failed.textContent = err.message;
            failed.hidden = false;
          }
        },
      },
      `Sign in with ${p.name}`,
    ),
  );
  mount(
    app,
    h(
      'div',
      { class: 'signin' },
      h('h1', {}, 'Tessera admin'),
      notice ? h('p', { class: 'notice error', role: 'alert' }, notice) : null,
      f,
      buttons.length ? h('div', { class: 'providers' }, h('p', { class: 'meta' }, 'Or'), ...buttons, failed) : null,
    ),
  );
  notice = '';
  f.querySelector('input')?.focus();
}

/** The second step of a sign-in: a code of the authenticator app, or a recovery code. */
function codePage(mfaToken, username) {
  let recovery = false;
  const input = field('Code from your authenticator app', 'code', { required: true, autocomplete: 'one-time-code' });
  const f = form([input], {
    submitLabel: 'Verify',
    submit: async (v) => {
      const answer = recovery ? { recovery_code: v.code } : { code: v.code };
      try {
        await api.signInWithCode(mfaToken, answer, username);
      } catch (err) {
        if (err.code === 'invalid_code') err.message = 'That code is not valid. Wait for the next one and try again.';
        if (err.code === 'invalid_mfa_token') {
          notice = 'The sign-in expired. Sign in again.';
          return signInPage();
        }
        throw err;
      }
    },
  });
  const toggle = h(
    'button',
    {
      type: 'button',
      class: 'link',
      id: 'use-recovery-code',
      onclick: () => {
        recovery = !recovery;
        f.querySelector('label').textContent = recovery ? 'Recovery code' : 'Code from your authenticator app';
        toggle.textContent = recovery ? 'Use a code from the app instead' : 'Use a recovery code instead';
      },
    },
    'Use a recovery code instead',
  );
  mount(
    app,
    h('div', { class: 'signin' }, h('h1', {}, 'Two-factor sign-in'), h('p', {}, `Signing in as ${username}.`), f, toggle),
  );
  f.querySelector('input')?.focus();
}

async function overviewPage(main) {
  const [t, st] = await Promise.all([api.get('api/admin/totals'), api.get('api/admin/status')]);
  const card = (n, label, to, area) =>
    h('div', { class: 'card' }, h('div', { class: 'big' }, String(n)), may(area) ? link(to, label) : label);
  const capped = (n) => (n >= 1000 ? '1000+' : String(n));
  const facts = [
    ['Status', h('span', { class: st.ready ? 'badge' : 'badge bad', id: 'readiness' }, st.ready ? 'Ready' : 'Not ready')],
    ['Version', `Tessera ${st.version}`],
    ['Database', st.database],
  ];
  if (st.signing_key) {
    const k = st.signing_key;
    facts.push(['Signing key', h('span', {}, h('code', {}, k.kid), ` (${k.alg}), until ${when(k.expires_at)}`)]);
  }
  if (st.next_rotation) facts.push(['Next rotation', when(st.next_rotation)]);
  if (st.failed_logins_last_hour !== undefined) {
    const n = capped(st.failed_logins_last_hour);
    facts.push(['Failed logins, last hour', may('operations') ? link('audit', n) : n]);
  }
  if (st.locks !== undefined) facts.push(['Locked names and addresses', link('users', capped(st.locks))]);
  mount(
    main,
    h('h1', {}, 'Overview'),
    h(
      'div',
      { class: 'cards' },
      card(t.users, 'Users', 'users', 'users'),
      card(t.claim_groups, 'Claim groups', 'groups', 'groups'),
      card(t.claims, 'Claims', 'claims', 'claims'),
    ),
    h('dl', { class: 'pairs', id: 'status' }, facts.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
  );
}

api.onSession((s, reason) => {
  if (reason === 'refresh') return;
  if (reason === 'expired') notice = 'Your session has ended. Sign in again.';
  if (!s) go('login', { replace: true });
  else if (reason === 'signin') go('', { replace: true });
});
onRoute(render);
render();
