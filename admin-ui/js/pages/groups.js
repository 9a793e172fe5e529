// Claim groups: list and create; one group's claims, members, credential limit and provider group links.

import * as api from '../api.js';
import { may } from '../perm.js';
import { go } from '../router.js';
import { confirmAction, explain, field, form, h, link, modal, mount, notify, table } from '../ui.js';

export async function groupsPage(main) {
  const groups = await api.all('api/admin/claim-groups');
  const create = may('groups', true)
    ? h('button', { type: 'button', class: 'primary', id: 'new-group', onclick: createGroup }, 'New claim group')
    : null;
  mount(
    main,
    h('div', { class: 'title' }, h('h1', {}, 'Claim groups'), create),
    h('p', { class: 'meta' }, 'A user in a group gets every claim of the group in their tokens.'),
    table(
      groups,
      [
        ['Name', (g) => link(`groups/${g.id}`, g.name)],
        ['Description', (g) => g.description],
        ['Credentials', (g) => (g.credentials ? g.credentials.join(', ') : 'any')],
      ],
      'No claim groups yet. Create one, then add claims and users to it.',
    ),
  );
}

function createGroup() {
  const m = modal(
    'New claim group',
    form([field('Name', 'name', { required: true }), field('Description', 'description', { type: 'textarea' })], {
      submitLabel: 'Create group',
      submit: (v) => api.postJson('api/admin/claim-groups', v),
      done: (g) => {
        m.close();
        notify(`Group ${g.name} created.`);
        go(`groups/${g.id}`);
      },
      cancel: () => m.close(),
    }),
  );
}

export async function groupPage(main, id) {
  const canWrite = may('groups', true);
  const [group, claims, users, links] = await Promise.all([
    api.get(`api/admin/claim-groups/${id}`),
    api.all(`api/admin/claim-groups/${id}/claims`),
    api.all(`api/admin/claim-groups/${id}/users`).catch(() => null),
    api.all(`api/admin/claim-groups/${id}/group-links`),
  ]);
  const reload = () => groupPage(main, id);
  const save = (body, message) =>
    api
      .patch(`api/admin/claim-groups/${id}`, body)
      .then(() => notify(message))
      .then(reload);

  const details = canWrite
    ? form(
        [
          field('Name', 'name', { value: group.name, required: true }),
          field('Description', 'description', { type: 'textarea', value: group.description }),
        ],
        {
          submit: (v) => api.patch(`api/admin/claim-groups/${id}`, v),
          done: () => {
            notify('Saved.');
            reload();
          },
          extra: h(
            'button',
            { type: 'button', class: 'danger', id: 'delete-group', onclick: () => remove(group) },
            'Delete group',
          ),
        },
      )
    : h('p', {}, group.description || 'No description.');

  mount(
    main,
    h('p', { class: 'crumbs' }, link('groups', 'Claim groups'), ' / ', group.name),
    h('h1', {}, group.name),
    h('section', {}, h('h2', {}, 'Details'), details),
    h('section', { id: 'group-credentials' }, h('h2', {}, 'Credentials'), credentialsOf(group, canWrite, save)),
    h('section', { id: 'group-claims' }, h('h2', {}, 'Claims'), await claimsOf(group, claims, canWrite, save)),
    h('section', { id: 'group-members' }, h('h2', {}, 'Members'), await membersOf(group, users, canWrite, save)),
    h('section', { id: 'group-links' }, h('h2', {}, 'Provider group links'), linksOf(group, links, canWrite, reload)),
  );
}

// The kinds of credential a group may be limited to, as the API names them, with what each means.
const KINDS = [
  ['password', 'a password checked by Tessera'],
  ['api_key', 'an API key'],
  ['ldap', 'a password checked by a directory (LDAP)'],
  ['oidc', 'an upstream OpenID provider'],
  ['anonymous', 'an anonymous token'],
  ['client', 'an OAuth client’s own credentials'],
];

function credentialsOf(group, canWrite, save) {
  const factor = (group.credentials || []).includes('mfa');
  const kinds = (group.credentials || []).filter((k) => k !== 'mfa');
  const limit = kinds.length ? kinds : null;
  const said =
    (limit
      ? `Only logins with ${limit.join(', ')} get this group’s claims`
      : 'Logins with any credential get this group’s claims') + (factor ? ', and only with a second factor.' : '.');
  if (!canWrite) return h('p', {}, said);
  const boxes = KINDS.map(([kind, what]) =>
    h(
      'label',
      { class: 'check' },
      h('input', { type: 'checkbox', name: 'kind', value: kind, checked: !limit || limit.includes(kind) }),
      ` ${kind} `,
      h('small', {}, `(${what})`),
    ),
  );
  const second = h(
    'label',
    { class: 'check' },
    h('input', { type: 'checkbox', name: 'mfa', id: 'require-mfa', checked: factor }),
    ' only logins with a second factor (an authenticator app code or a recovery code)',
  );
  const f = form(
    [h('div', { class: 'checks', dataset: { field: 'credentials' } }, boxes, second, h('small', { class: 'error' }))],
    {
      submitLabel: 'Save credential limit',
      submit: (_, el) => {
        let chosen = [...el.querySelectorAll('input[name=kind]:checked')].map((b) => b.value);
        // Every kind ticked is no limit on the kind.
        if (chosen.length === KINDS.length) chosen = [];
        if (el.querySelector('input[name=mfa]').checked) chosen.push('mfa');
        return save({ credentials: chosen.length ? chosen : null }, 'Credential limit saved.');
      },
    },
  );
  return h(
    'div',
    {},
    h('p', {}, said),
    h('p', { class: 'meta' }, 'Typical: limit an admin group to password so that a leaked API key never yields its letters.'),
    f,
  );
}

async function claimsOf(group, claims, canWrite, save) {
  const shown = table(
    claims,
    [
      ['Claim', (c) => c.name],
      ['Token key', (c) => h('code', {}, c.short_name)],
      ['Value', (c) => h('code', {}, c.value)],
    ],
    'No claims in this group yet.',
  );
  if (!canWrite) return shown;
  const all = await api.all('api/admin/claims');
  const has = new Set(claims.map((c) => c.id));
  const boxes = all.map((c) =>
    h(
      'label',
      { class: 'check' },
      h('input', { type: 'checkbox', name: 'claim', value: String(c.id), checked: has.has(c.id) }),
      ` ${c.name} `,
      h('code', {}, `${c.short_name}=${c.value}`),
    ),
  );
  const f = form(
    [
      boxes.length
        ? h('div', { class: 'checks', dataset: { field: 'claims' } }, boxes, h('small', { class: 'error' }))
        : h('p', { class: 'empty' }, 'No claims exist yet: create one on the Claims page.'),
    ],
    {
      submitLabel: 'Save claims',
      submit: (_, el) =>
        save(
          { claims: [...el.querySelectorAll('input[name=claim]:checked')].map((b) => Number(b.value)) },
          'Claims saved.',
        ),
    },
  );
  return h('div', {}, shown, h('h3', {}, 'Change claims'), f);
}

async function membersOf(group, users, canWrite, save) {
  if (users === null) return h('p', { class: 'empty' }, 'Your account cannot list users.');
  const ids = users.map((u) => u.id);
  const removeMember = async (u) => {
    if (
      !(await confirmAction(
        `Remove ${u.username} from ${group.name}? They lose its claims at their next refresh.`,
        'Remove',
      ))
    )
      return;
    save({ users: ids.filter((x) => x !== u.id) }, `${u.username} removed.`).catch((err) =>
      notify(explain(err), 'error'),
    );
  };
  const shown = table(
    users,
    [
      ['Username', (u) => (may('users') ? link(`users/${u.id}`, u.username) : u.username)],
      ['Email', (u) => u.email],
      [
        '',
        (u) =>
          canWrite
            ? h('button', { type: 'button', class: 'danger small', onclick: () => removeMember(u) }, 'Remove')
            : '',
      ],
    ],
    'No members yet.',
  );
  if (!canWrite || !may('users')) return shown;
  // New members are found by the server's search (`?q=`, ten at a time), so any number of users works.
  const results = h('div', { id: 'member-results' });
  const search = h('input', {
    type: 'search',
    id: 'member-search',
    placeholder: 'Find a user by name, username or email',
    'aria-label': 'Find a user to add',
  });
  let asked = 0;
  let timer;
  const add = (u) =>
    save({ users: [...ids, u.id] }, `${u.username} added.`).catch((err) => notify(explain(err), 'error'));
  const find = async () => {
    const q = search.value.trim();
    const mine = ++asked;
    if (!q) return mount(results);
    const found = await api.get('api/admin/users', { q, itemsPerPage: 10 });
    // A newer search may have answered first.
    if (mine !== asked) return;
    const addable = found.filter((u) => !ids.includes(u.id));
    mount(
      results,
      addable.length
        ? table(addable, [
            ['Username', (u) => u.username],
            ['Email', (u) => u.email],
            ['', (u) => h('button', { type: 'button', class: 'small add-member', onclick: () => add(u) }, 'Add')],
          ])
        : h('p', { class: 'empty' }, `No user outside the group matches “${q}”.`),
    );
  };
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(find, 200);
  });
  return h('div', {}, shown, h('h3', {}, 'Add a member'), search, results);
}

function linksOf(group, links, canWrite, reload) {
  const removeLink = async (l) => {
    if (!(await confirmAction(`Delete the link to ${l.type} group ${l.resource_spec}?`))) return;
    try {
      await api.del(`api/admin/group-links/${l.id}`);
      notify('Link deleted.');
      reload();
    } catch (err) {
      notify(explain(err), 'error');
    }
  };
  const shown = table(
    links,
    [
      ['Provider type', (l) => l.type],
      ['Provider group', (l) => h('code', {}, l.resource_spec)],
      [
        '',
        (l) =>
          canWrite
            ? h('button', { type: 'button', class: 'danger small', onclick: () => removeLink(l) }, 'Delete')
            : '',
      ],
    ],
    'No links: members are added by hand only.',
  );
  if (!canWrite) return shown;
  const f = form(
    [
      field('Provider type', 'type', {
        value: 'LDAP',
        required: true,
        hint: 'As in dbinit: LDAP, or the provider type.',
      }),
      field('Provider group', 'resource_spec', {
        required: true,
        hint: 'The directory group whose members join this group, e.g. a DN.',
      }),
    ],
    {
      submitLabel: 'Add link',
      submit: (v) => api.postJson('api/admin/group-links', { ...v, claim_group: group.id }),
      done: () => {
        notify('Link added.');
        reload();
      },
    },
  );
  return h(
    'div',
    {},
    h('p', { class: 'meta' }, 'Users of a linked provider group become members when they sign in.'),
    shown,
    h('h3', {}, 'New link'),
    f,
  );
}

async function remove(group) {
  if (!(await confirmAction(`Delete claim group ${group.name}? Its members lose its claims at their next refresh.`)))
    return;
  try {
    await api.del(`api/admin/claim-groups/${group.id}`);
    notify(`Group ${group.name} deleted.`);
    go('groups');
  } catch (err) {
    notify(explain(err), 'error');
  }
}
