// Claims: what a group puts into tokens (`short_name` is the token's key, `value` its value).

import * as api from '../api.js';
import { may } from '../perm.js';
import { confirmAction, explain, field, form, h, modal, mount, notify, table } from '../ui.js';

export async function claimsPage(main) {
  const claims = await api.all('api/admin/claims');
  const canWrite = may('claims', true);
  const reload = () => claimsPage(main);
  const edit = (c) => editClaim(c, reload);
  const remove = async (c) => {
    if (!(await confirmAction(`Delete claim ${c.name} (${c.short_name}=${c.value})? Groups holding it lose it.`)))
      return;
    try {
      await api.del(`api/admin/claims/${c.id}`);
      notify(`Claim ${c.name} deleted.`);
      reload();
    } catch (err) {
      notify(explain(err), 'error');
    }
  };
  mount(
    main,
    h(
      'div',
      { class: 'title' },
      h('h1', {}, 'Claims'),
      canWrite
        ? h('button', { type: 'button', class: 'primary', id: 'new-claim', onclick: () => edit(null) }, 'New claim')
        : null,
    ),
    h(
      'p',
      { class: 'meta' },
      'A claim adds key=value to the tokens of every member of a group holding it. Values of one key are joined by commas.',
    ),
    table(
      claims,
      [
        ['Name', (c) => c.name],
        ['Token key', (c) => h('code', {}, c.short_name)],
        ['Value', (c) => h('code', {}, c.value)],
        ['Description', (c) => c.description],
        [
          '',
          (c) =>
            canWrite
              ? h(
                  'span',
                  { class: 'row-actions' },
                  h('button', { type: 'button', class: 'small', onclick: () => edit(c) }, 'Edit'),
                  h('button', { type: 'button', class: 'danger small', onclick: () => remove(c) }, 'Delete'),
                )
              : '',
        ],
      ],
      'No claims yet. Create one, then add it to a claim group.',
    ),
  );
}

function editClaim(c, reload) {
  const m = modal(
    c ? `Edit claim ${c.name}` : 'New claim',
    form(
      [
        field('Name', 'name', { value: c?.name ?? '', required: true, hint: 'Unique, for people.' }),
        field('Token key', 'short_name', {
          value: c?.short_name ?? '',
          required: true,
          hint: 'The claim name in the token, e.g. role.',
        }),
        field('Value', 'value', { value: c?.value ?? '' }),
        field('Description', 'description', { type: 'textarea', value: c?.description ?? '' }),
      ],
      {
        submitLabel: c ? 'Save' : 'Create claim',
        submit: (v) => (c ? api.patch(`api/admin/claims/${c.id}`, v) : api.postJson('api/admin/claims', v)),
        done: (saved) => {
          m.close();
          notify(c ? 'Saved.' : `Claim ${saved.name} created.`);
          reload();
        },
        cancel: () => m.close(),
      },
    ),
  );
}
