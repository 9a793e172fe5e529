import { href } from './router.js';

// Small DOM helpers: elements, forms that show the API's validation messages next to the field, confirmation
// dialogs, notices, tables with empty states. Text always goes in as text nodes, never as HTML.

/** `h('button', {class: 'x', onclick: f}, 'Save')`. `null`/`false` children are skipped. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'checked') el[k] = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the content of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** A labelled input; `name` is the API's field name, so errors naming it land here. */
export function field(label, name, opts = {}) {
  const { type = 'text', value = '', required = false, hint, autocomplete, options, placeholder } = opts;
  const id = `f-${name}-${Math.random().toString(36).slice(2, 8)}`;
  let input;
  if (options) {
    input = h(
      'select',
      { id, name },
      options.map(([v, t]) => h('option', { value: v }, t)),
    );
    // A value matching no option would leave the select blank; keep the first option then.
    if (options.some(([v]) => v === value)) input.value = value;
  } else if (type === 'textarea') {
    input = h('textarea', { id, name, rows: 3, value });
  } else {
    input = h('input', { id, name, type, value, required, autocomplete, placeholder });
  }
  return h(
    'div',
    { class: 'field', dataset: { field: name } },
    h('label', { for: id }, label),
    input,
    hint ? h('small', { class: 'hint' }, hint) : null,
    h('small', { class: 'error', role: 'alert' }),
  );
}

/** Which form field an API error is about: by code, else by the field name starting the message. */
function fieldOf(form, err) {
  const byCode = { weak_password: 'password', password_too_long: 'password', wrong_password: 'oldPassword' };
  const names = [...form.querySelectorAll('[data-field]')].map((f) => f.dataset.field);
  const code = byCode[err.code];
  if (code) {
    const hit = names.find((n) => n === code || n === 'newPassword');
    if (hit) return hit;
  }
  const first = (err.message || '').split(/[\s:]/)[0];
  return names.find((n) => n === first);
}

/** Clears the errors of a form. */
export function clearErrors(form) {
  for (const e of form.querySelectorAll('.error')) e.textContent = '';
  for (const e of form.querySelectorAll('.invalid')) e.classList.remove('invalid');
}

/** Shows an API error next to its field, or at the top of the form. */
export function showError(form, err) {
  clearErrors(form);
  const name = fieldOf(form, err);
  const slot = name && form.querySelector(`[data-field="${name}"]`);
  if (slot) {
    slot.classList.add('invalid');
    slot.querySelector('.error').textContent = err.message;
    slot.querySelector('input, select, textarea')?.focus();
    return;
  }
  let top = form.querySelector(':scope > .form-error');
  if (!top) {
    top = h('p', { class: 'form-error', role: 'alert' });
    form.prepend(top);
  }
  top.textContent = explain(err);
  // A long form (in a scrolled dialog) was submitted from its bottom: bring the message into sight.
  top.scrollIntoView({ block: 'nearest' });
}

/** A message that says what to do next. */
export function explain(err) {
  const hints = {
    conflict: ' Choose another value.',
    protected: ' Change users.policy_config.protected_* in the server configuration to allow it.',
    read_only: ' Turn off users.policy_config.read_only_mode to make changes.',
    forbidden: ' Ask a superuser for the permission (stk letter) this needs.',
    last_superuser: ' Make another user a superuser first.',
  };
  return (err.message || 'Something went wrong.') + (hints[err.code] || '');
}

/**
 * A form: `fields` are elements from `field()`; `submit(values)` returns a promise. Errors from it are shown next
 * to the field they name. Resolves nothing; `done(result)` runs on success.
 */
export function form(fields, { submitLabel = 'Save', submit, done, cancel, extra } = {}) {
  const button = h('button', { type: 'submit', class: 'primary' }, submitLabel);
  const el = h(
    'form',
    { class: 'form', novalidate: true },
    fields,
    h(
      'div',
      { class: 'actions' },
      button,
      cancel ? h('button', { type: 'button', onclick: cancel }, 'Cancel') : null,
      extra,
    ),
  );
  el.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(el);
    const values = Object.fromEntries(new FormData(el).entries());
    button.disabled = true;
    try {
      const result = await submit(values, el);
      done?.(result);
    } catch (err) {
      showError(el, err);
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

/** A modal dialog holding `content`; returns `{close}`. Escape or the close button closes it. */
export function modal(title, content) {
  const dialog = h(
    'dialog',
    { class: 'modal' },
    h(
      'header',
      {},
      h('h2', {}, title),
      h('button', { type: 'button', class: 'icon', 'aria-label': 'Close', onclick: () => close() }, '×'),
    ),
    content,
  );
  const close = () => {
    dialog.close();
    dialog.remove();
  };
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  // Straight to the first field rather than the close button.
  dialog.querySelector('input, select, textarea')?.focus();
  return { close, dialog };
}

/** Asks before a destructive action; resolves true when confirmed. */
export function confirmAction(message, action = 'Delete') {
  return new Promise((resolve) => {
    let answered = false;
    const answer = (yes) => {
      answered = true;
      m.close();
      resolve(yes);
    };
    const m = modal(
      'Are you sure?',
      h(
        'div',
        {},
        h('p', {}, message),
        h(
          'div',
          { class: 'actions' },
          h('button', { type: 'button', class: 'danger', onclick: () => answer(true) }, action),
          h('button', { type: 'button', onclick: () => answer(false) }, 'Cancel'),
        ),
      ),
    );
    m.dialog.addEventListener('close', () => answered || resolve(false));
  });
}

/** A short notice at the top of the page (`kind`: ok, error). */
export function notify(message, kind = 'ok') {
  const area = document.getElementById('notices');
  if (!area) return;
  const n = h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
  area.append(n);
  setTimeout(() => n.remove(), kind === 'error' ? 8000 : 4000);
}

/** A table of `rows` with `columns` `[heading, row => cell]`, or `empty` when there are none. */
export function table(rows, columns, empty = 'Nothing here yet.') {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h(
    'table',
    {},
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        columns.map(([t]) => h('th', {}, t)),
      ),
    ),
    h(
      'tbody',
      {},
      rows.map((r) =>
        h(
          'tr',
          {},
          columns.map(([, f]) => h('td', {}, f(r))),
        ),
      ),
    ),
  );
}

/** An error box for a page that could not load. */
export function failed(err) {
  return h('div', { class: 'notice error', role: 'alert' }, `Could not load this page: ${explain(err)}`);
}

/** A link to an app route (`users/5`), followed without a page load. */
export function link(to, ...children) {
  return h('a', { href: href(to), dataset: { route: '' } }, children);
}

/** `2026-01-02T03:04:05Z` → local date and time. */
export function when(s) {
  if (!s) return '';
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? s : d.toLocaleString();
}
