// History-API routing under `<base>/admin/`: the server answers every such path with index.html.

import { appRoot } from './api.js';

const listeners = new Set();

/** The absolute path of an app-relative route (`users/5` → `/admin/users/5`). */
export function href(route) {
  return new URL(route, appRoot).pathname;
}

/** The current app-relative route (`users/5`), without a trailing slash. */
export function route() {
  const root = appRoot.pathname;
  const p = location.pathname.startsWith(root) ? location.pathname.slice(root.length) : '';
  return p.replace(/\/+$/, '');
}

/** Navigates to an app-relative route without a page load. */
export function go(to, { replace = false } = {}) {
  if (replace) history.replaceState({}, '', href(to));
  else history.pushState({}, '', href(to));
  for (const f of listeners) f();
}

export function onRoute(f) {
  listeners.add(f);
  window.addEventListener('popstate', f);
  // In-app links (`data-route`) navigate without a page load.
  document.addEventListener('click', (ev) => {
    const a = ev.target.closest?.('a[data-route]');
    if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
    ev.preventDefault();
    history.pushState({}, '', a.getAttribute('href'));
    f();
  });
}
