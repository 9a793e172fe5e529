// What the `stk` letters of the token allow, mirroring the server's matrix (src/services/admin/mod.rs). The
// console hides what the letters do not allow; the server refuses it anyway.

import { claims } from './api.js';

export function letters() {
  const stk = claims().stk;
  return new Set(
    (typeof stk === 'string' ? stk : '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
}

const READ = {
  users: ['s', 'u', 'U'],
  groups: ['s', 'g', 'G', 'U'],
  claims: ['s', 'c', 'C', 'G', 'U'],
  totals: ['s', 'u', 'U', 'g', 'G', 'c', 'C'],
  operations: ['s'],
  // OAuth 2.0 clients: read-all operators read them, only superusers (S) change them.
  clients: ['s'],
  metrics: ['m', 's'],
};
const WRITE = { users: ['U'], groups: ['G'], claims: ['C'], operations: [], clients: [] };

/** Whether the token may read (or, with `write`, change) `area`. */
export function may(area, write = false) {
  const l = letters();
  if (l.has('S')) return true;
  return ((write ? WRITE : READ)[area] || []).some((x) => l.has(x));
}

/** Whether the token opens any page of the console at all. */
export function anyAccess() {
  return Object.keys(READ).some((a) => may(a));
}
