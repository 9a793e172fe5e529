// Applications: the OAuth 2.0 clients of `/api/admin/clients`. Superusers (S) register, change and delete them
// and rotate their secrets; read-all operators (s) see them. A secret is shown once, in a dialog, and kept nowhere
// else: not in storage, not in the page once the dialog closes, never logged.

import * as api from '../api.js';
import { may } from '../perm.js';
import { go } from '../router.js';
import { confirmAction, explain, field, form, h, link, modal, mount, notify, table, when } from '../ui.js';

const GRANTS = ['client_credentials', 'password', 'refresh_token'];

/**
 * The app route of a client. An id with a dot (dbinit may register `reports.v2`) gets a trailing slash: the server
 * answers a last path segment with a dot as a file (a 404), not with the console.
 */
export function clientRoute(id) {
  const r = `applications/${encodeURIComponent(id)}`;
  return id.includes('.') ? `${r}/` : r;
}

const apiPath = (id) => `api/admin/clients/${encodeURIComponent(id)}`;

export async function applicationsPage(main) {
  const clients = await api.all('api/admin/clients');
  const canWrite = may('clients', true);
  mount(
    main,
    h(
      'div',
      { class: 'title' },
      h('h1', {}, 'Applications'),
      canWrite
        ? h('button', { type: 'button', class: 'primary', id: 'new-client', onclick: createClient }, 'New application')
        : null,
    ),
    h(
      'p',
      { class: 'meta' },
      'OAuth 2.0 clients: programs that get tokens from /oauth/token, as themselves or for their users.',
      canWrite ? null : ' Only superusers (stk S) can register or change them.',
    ),
    table(
      clients,
      [
        ['Name', (c) => link(clientRoute(c.client_id), c.name)],
        ['Client ID', (c) => h('code', {}, c.client_id)],
        ['Type', (c) => c.type],
        ['Grant types', (c) => codes(c.grant_types)],
      ],
      canWrite ? 'No applications yet. Register one to let a program get tokens.' : 'No applications yet.',
    ),
  );
}

/** The algorithms the server signs with (its discovery document), for the signing_alg choice. */
function algorithms() {
  return api
    .publicJson('.well-known/openid-configuration')
    .then((d) => d.id_token_signing_alg_values_supported || [])
    .catch(() => []);
}

async function createClient() {
  // Claim groups the client's own subject may hold; without them the form still works (none picked).
  const [groups, algs] = await Promise.all([api.all('api/admin/claim-groups').catch(() => []), algorithms()]);
  const m = modal(
    'New application',
    clientForm(null, groups, {
      algs,
      submitLabel: 'Create application',
      submit: (body) => api.postJson('api/admin/clients', body),
      done: (created) => {
        m.close();
        go(clientRoute(created.client_id));
        if (created.client_secret) showSecret(created, created.client_secret, 'Application created');
        else notify(`Application ${created.name} created. It is public: it has no secret.`);
      },
      cancel: () => m.close(),
    }),
  );
}

export async function applicationPage(main, rawId) {
  const id = decodeURIComponent(rawId);
  const canWrite = may('clients', true);
  const [c, groups, algs] = await Promise.all([
    api.get(apiPath(id)),
    may('groups') ? api.all('api/admin/claim-groups') : Promise.resolve([]),
    canWrite ? algorithms() : Promise.resolve([]),
  ]);
  const reload = () => applicationPage(main, rawId);
  const details = canWrite
    ? clientForm(c, groups, {
        algs,
        submit: (body) => api.patch(apiPath(id), body),
        done: () => {
          notify('Saved.');
          reload();
        },
        extra: h(
          'button',
          { type: 'button', class: 'danger', id: 'delete-client', onclick: () => remove(c) },
          'Delete application',
        ),
      })
    : readOnlyDetails(c, groups);

  mount(
    main,
    h('p', { class: 'crumbs' }, link('applications', 'Applications'), ' / ', c.name),
    h('h1', {}, c.name),
    h(
      'dl',
      { class: 'pairs' },
      h('dt', {}, 'Client ID'),
      h(
        'dd',
        {},
        h('code', { id: 'client-id' }, c.client_id),
        ' ',
        copyButton(() => c.client_id, 'client ID'),
      ),
      h('dt', {}, 'Type'),
      h('dd', {}, c.type === 'public' ? 'public (no secret)' : 'confidential'),
      h('dt', {}, 'Registered'),
      h('dd', {}, when(c.created_at)),
      h('dt', {}, 'Changed'),
      h('dd', {}, when(c.updated_at)),
    ),
    h('section', { id: 'client-secret-section' }, h('h2', {}, 'Secret'), secretSection(c, canWrite, reload)),
    h('section', {}, h('h2', {}, 'Settings'), details),
  );
}

function secretSection(c, canWrite, reload) {
  if (c.type === 'public') {
    return h('p', { class: 'empty' }, 'A public application has no secret: it identifies itself by its client ID.');
  }
  return h(
    'div',
    {},
    h(
      'p',
      {},
      'Tessera keeps only a digest of the secret, so it cannot show it again. A lost or leaked secret is replaced by rotating it.',
    ),
    c.previous_secret_valid_until
      ? h(
          'p',
          { class: 'meta' },
          `The secret before the last rotation works until ${when(c.previous_secret_valid_until)}.`,
        )
      : null,
    canWrite
      ? h(
          'div',
          { class: 'actions' },
          h(
            'button',
            { type: 'button', class: 'primary', id: 'rotate-secret', onclick: () => rotate(c, reload) },
            'Rotate secret',
          ),
        )
      : null,
  );
}

/** The form of a new client (`c` null) or of an existing one; `submit(body)` gets the API's JSON body. */
function clientForm(c, groups, { algs = [], submitLabel = 'Save', submit, done, cancel, extra } = {}) {
  const isNew = !c;
  const v = c || {
    name: '',
    type: 'confidential',
    grant_types: ['client_credentials'],
    scopes: [],
    redirect_uris: [],
    audience: null,
    claim_filter: null,
    claim_groups: [],
    access_token_ttl: null,
    refresh_token_ttl: null,
    jwt_profile: null,
    introspect: false,
    signing_alg: null,
  };
  const algChoices = [...new Set([...algs, ...(v.signing_alg ? [v.signing_alg] : [])])];
  const type = field('Type', 'type', {
    value: v.type,
    options: [
      ['confidential', 'Confidential: a server-side program that keeps a secret'],
      ['public', 'Public: a browser or mobile app, no secret'],
    ],
    hint: isNew ? 'Fixed once registered.' : 'Fixed once registered: register a new application to change it.',
  });
  const typeSelect = type.querySelector('select');
  typeSelect.disabled = !isNew;
  const grants = checks(
    'Grant types',
    'grant_types',
    GRANTS.map((g) => [g, h('code', {}, g)]),
    v.grant_types,
    'client_credentials: the program acts as itself (confidential only). password: users sign in through it. refresh_token: its sessions renew without the password.',
  );
  const groupsField = groups.length
    ? checks(
        'Claim groups',
        'claim_groups',
        groups.map((g) => [String(g.id), g.name]),
        v.claim_groups.map(String),
        `What the program itself (subject client:<client_id>) holds in its client_credentials tokens.`,
      )
    : h(
        'div',
        { class: 'field', dataset: { field: 'claim_groups' } },
        h('span', { class: 'label' }, 'Claim groups'),
        h('p', { class: 'empty' }, 'No claim groups exist yet: its client_credentials tokens carry no claims.'),
        h('small', { class: 'error', role: 'alert' }),
      );
  const introspect = h(
    'div',
    { class: 'field', dataset: { field: 'introspect' } },
    h(
      'label',
      { class: 'check' },
      h('input', { type: 'checkbox', name: 'introspect', value: 'yes', checked: v.introspect }),
      ' May introspect tokens',
    ),
    h('small', { class: 'hint' }, 'Lets it call /oauth/introspect (confidential only).'),
    h('small', { class: 'error', role: 'alert' }),
  );
  const ttl = (label, name, fallback) => {
    const f = field(label, name, { type: 'number', value: v[name] ?? '', hint: fallback });
    Object.assign(f.querySelector('input'), { min: 1, step: 1 });
    return f;
  };
  const el = form(
    [
      field('Name', 'name', {
        value: v.name,
        required: true,
        hint: 'For people: the console and the audit log show it.',
      }),
      type,
      grants,
      field('Scopes', 'scopes', {
        value: v.scopes.join(' '),
        hint: 'Separated by spaces, e.g. read write. A token request gets these or a subset.',
      }),
      field('Audience', 'audience', {
        value: v.audience ?? '',
        hint: 'The aud of its tokens; empty: tokens.audience.',
      }),
      field('Claim filter', 'claim_filter', {
        value: (v.claim_filter || []).join(' '),
        hint: 'The claim short names its tokens may carry, separated by spaces; empty: every claim.',
      }),
      groupsField,
      h(
        'div',
        { class: 'two' },
        ttl('Access token lifetime', 'access_token_ttl', 'Seconds; empty: tokens.token_duration, the maximum.'),
        ttl('Refresh token lifetime', 'refresh_token_ttl', 'Seconds; empty: tokens.refresh_max_age.'),
      ),
      field('Token profile', 'jwt_profile', {
        value: v.jwt_profile ?? '',
        options: [
          ['', 'Tessera tokens (typ JWT)'],
          ['rfc9068', 'RFC 9068 access tokens (typ at+jwt)'],
        ],
      }),
      field('Signing algorithm', 'signing_alg', {
        value: v.signing_alg ?? '',
        options: [['', 'Default (tokens.algorithm)'], ...algChoices.map((a) => [a, a])],
        hint: 'RS256 for resource servers that know nothing else; the keys of every choice are in the JWKS.',
      }),
      introspect,
      field('Redirect URIs', 'redirect_uris', {
        type: 'textarea',
        value: v.redirect_uris.join('\n'),
        hint: 'One per line: https, or http on a loopback address. Kept for the authorization-code flow to come.',
      }),
    ],
    { submitLabel, submit: (values, f) => submit(body(values, f, isNew)), done, cancel, extra },
  );
  // A public client has no secret: it can neither use client_credentials nor authenticate to introspect.
  const secretOnly = [el.querySelector('input[value=client_credentials]'), el.querySelector('input[name=introspect]')];
  const sync = () => {
    const pub = typeSelect.value === 'public';
    for (const box of secretOnly) {
      box.disabled = pub;
      if (pub) box.checked = false;
    }
  };
  typeSelect.addEventListener('change', sync);
  sync();
  return el;
}

/** Checkboxes under one legend; `name` is the API's field, so its errors land here. */
function checks(legend, name, items, selected, hint) {
  return h(
    'fieldset',
    { class: 'field', dataset: { field: name } },
    h('legend', {}, legend),
    h(
      'div',
      { class: 'checks' },
      items.map(([value, label]) =>
        h(
          'label',
          { class: 'check' },
          h('input', { type: 'checkbox', name, value, checked: selected.includes(value) }),
          ' ',
          label,
        ),
      ),
    ),
    hint ? h('small', { class: 'hint' }, hint) : null,
    h('small', { class: 'error', role: 'alert' }),
  );
}

/** An error shown next to the field its message starts with, like the server's. */
function fieldError(message) {
  return Object.assign(new Error(message), { code: 'invalid_field' });
}

/** The JSON body of the form: every field, so an edit can also clear one (`null`). */
function body(values, f, isNew) {
  const words = (s, sep = /\s+/) => (s || '').split(sep).filter(Boolean);
  const checked = (name) => [...f.querySelectorAll(`input[name=${name}]:checked`)].map((b) => b.value);
  const seconds = (name) => {
    const input = f.querySelector(`input[name=${name}]`);
    if (input.validity.badInput || (input.value !== '' && !/^\d+$/.test(input.value))) {
      throw fieldError(`${name} must be a whole number of seconds`);
    }
    return input.value === '' ? null : Number(input.value);
  };
  const filter = words(values.claim_filter, /[\s,]+/);
  const out = {
    name: values.name || '',
    grant_types: checked('grant_types'),
    scopes: words(values.scopes),
    redirect_uris: words(values.redirect_uris, /\s*\n\s*/),
    audience: (values.audience || '').trim() || null,
    claim_filter: filter.length ? filter : null,
    claim_groups: checked('claim_groups').map(Number),
    access_token_ttl: seconds('access_token_ttl'),
    refresh_token_ttl: seconds('refresh_token_ttl'),
    jwt_profile: values.jwt_profile || null,
    signing_alg: values.signing_alg || null,
    introspect: f.querySelector('input[name=introspect]').checked,
  };
  if (isNew) out.type = values.type;
  return out;
}

function readOnlyDetails(c, groups) {
  const names = new Map(groups.map((g) => [g.id, g.name]));
  const group = (id) => (names.has(id) ? link(`groups/${id}`, names.get(id)) : `#${id}`);
  const list = (items, none) => (items.length ? items.map((x, i) => [i ? ', ' : '', x]) : none);
  const secs = (s, none) => (s == null ? none : `${s} s`);
  return h(
    'dl',
    { class: 'pairs', id: 'client-details' },
    [
      ['Name', c.name],
      ['Grant types', codes(c.grant_types)],
      ['Scopes', c.scopes.length ? codes(c.scopes) : 'none'],
      ['Audience', c.audience || 'default (tokens.audience)'],
      ['Claim filter', c.claim_filter ? list(codes(c.claim_filter, false), 'no claims') : 'every claim'],
      ['Claim groups', list(c.claim_groups.map(group), 'none')],
      ['Access token lifetime', secs(c.access_token_ttl, 'default (tokens.token_duration)')],
      ['Refresh token lifetime', secs(c.refresh_token_ttl, 'default (tokens.refresh_max_age)')],
      ['Token profile', c.jwt_profile === 'rfc9068' ? 'RFC 9068 (typ at+jwt)' : 'Tessera tokens (typ JWT)'],
      ['Signing algorithm', c.signing_alg || 'default (tokens.algorithm)'],
      ['May introspect', c.introspect ? 'yes' : 'no'],
      [
        'Redirect URIs',
        list(
          c.redirect_uris.map((u) => h('code', {}, u)),
          'none',
        ),
      ],
    ].map(([k, val]) => [h('dt', {}, k), h('dd', {}, val)]),
  );
}

/** Words as code, separated by spaces (or, with `joined` false, as a list of elements). */
function codes(words, joined = true) {
  const els = words.map((w) => h('code', {}, w));
  return joined ? els.map((e, i) => [i ? ' ' : '', e]) : els;
}

function copyButton(value, what) {
  const b = h('button', { type: 'button', class: 'small copy', 'aria-label': `Copy the ${what}` }, 'Copy');
  b.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(value());
      b.textContent = 'Copied';
    } catch {
      b.textContent = 'Copy refused: select it by hand';
    }
    setTimeout(() => (b.textContent = 'Copy'), 2500);
  });
  return b;
}

/** The one showing of a secret. Closing the dialog removes it from the page; nothing else keeps it. */
function showSecret(client, secret, title) {
  const input = h('input', {
    type: 'text',
    id: 'client-secret',
    class: 'secret',
    readonly: true,
    value: secret,
    autocomplete: 'off',
    spellcheck: 'false',
  });
  input.addEventListener('focus', () => input.select());
  const m = modal(
    title,
    h(
      'div',
      { class: 'secret-box' },
      h(
        'p',
        { class: 'warning', role: 'alert' },
        h('strong', {}, 'Copy the secret now: you will not see it again.'),
        ' Tessera stores only its digest. If it is lost, rotate it to get a new one.',
      ),
      h(
        'dl',
        { class: 'pairs' },
        h('dt', {}, 'Application'),
        h('dd', {}, client.name),
        h('dt', {}, 'Client ID'),
        h('dd', {}, h('code', {}, client.client_id)),
      ),
      h(
        'div',
        { class: 'field' },
        h('label', { for: 'client-secret' }, 'Client secret'),
        h(
          'div',
          { class: 'copy-row' },
          input,
          copyButton(() => input.value, 'client secret'),
        ),
        h('small', { class: 'hint' }, 'The program sends it with its client ID to /oauth/token (HTTP Basic).'),
      ),
      client.previous_secret_valid_until
        ? h(
            'p',
            { class: 'meta', id: 'previous-secret' },
            `The previous secret keeps working until ${when(client.previous_secret_valid_until)}: switch the program over before then.`,
          )
        : null,
      h(
        'div',
        { class: 'actions' },
        h(
          'button',
          { type: 'button', class: 'primary', id: 'secret-done', onclick: () => m.close() },
          'I have copied it',
        ),
      ),
    ),
  );
  m.dialog.addEventListener('close', () => {
    input.value = '';
  });
}

async function rotate(c, reload) {
  const ok = await confirmAction(
    `Make a new secret for ${c.name}? The current one keeps working for oauth.secret_rotation_overlap (24 h by default), so the program can switch over.`,
    'Rotate secret',
  );
  if (!ok) return;
  try {
    const r = await api.request('POST', `${apiPath(c.client_id)}/secret`);
    showSecret(r, r.client_secret, 'New client secret');
    reload();
  } catch (err) {
    notify(explain(err), 'error');
  }
}

async function remove(c) {
  if (!(await confirmAction(`Delete application ${c.name}? Its secret stops working and the sessions it started end.`)))
    return;
  try {
    await api.del(apiPath(c.client_id));
    go('applications');
    notify(`Application ${c.name} deleted.`);
  } catch (err) {
    notify(explain(err), 'error');
  }
}
