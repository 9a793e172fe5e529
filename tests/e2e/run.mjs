// Browser test of the admin console: Debian's Chromium (/usr/bin/chromium) driven by playwright-core; no browser
// is ever downloaded. Usage: node run.mjs <base url> <superuser name> <superuser password> [artifacts dir]
//
// Scenario: sign in as the bootstrap superuser; create a claim, a group with that claim and a user in that group;
// register an OAuth 2.0 application (errors next to their field), read its secret once from its dialog and get a
// token with it from /oauth/token, rotate the secret, edit it, register a public one, delete the first; sign out;
// log in as the new user through /api/login and find the claim in the token; a read-only operator (stk=s) sees
// no write controls (applications included), an admin without s or S no Applications page; revoking a session
// makes its refresh fail; keys, audit log (filtered, a detail opened) and metrics pages render; the overview shows
// readiness and the signing key; a user's page previews the next token; a group adds a member found by the
// server's search; a locked name is lifted; the console refreshes its token before it
// expires; a user's API key is listed and revoked on their page, a group's credential limit edited; a user with a
// second factor signs in with a code on the sign-in page, and an admin resets it; a user of the upstream OpenID
// provider signs in through its button (a popup and the provider's form). Every page is screenshotted
// into the artifacts dir.
// Any console error (such as a Content-Security-Policy violation) fails the run.

import { createHmac } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const [base, adminUser, adminPassword, outArg] = process.argv.slice(2);
if (!base || !adminUser || !adminPassword) {
  console.error('usage: node run.mjs <base url> <superuser name> <superuser password> [artifacts dir]');
  process.exit(2);
}
const artifacts = resolve(outArg || join(dirname(fileURLToPath(import.meta.url)), 'artifacts'));
// Fresh each run, so no screenshot of an earlier run is mistaken for this one's.
rmSync(artifacts, { recursive: true, force: true });
mkdirSync(artifacts, { recursive: true });

const stamp = Date.now().toString(36);
const CLAIM = { name: `E2E role ${stamp}`, short_name: 'role', value: `e2e-${stamp}` };
const GROUP = `e2e-testers-${stamp}`;
const READERS = `e2e-readers-${stamp}`;
const USER = { username: `e2e-user-${stamp}`, email: `e2e-${stamp}@example.com`, password: 'correct horse battery' };
const READER = { username: `e2e-reader-${stamp}`, email: `reader-${stamp}@example.com`, password: 'reader password 1' };
// Holds only `u` (read users): an admin for whom the Applications page does not exist.
const USER_ADMIN = {
  username: `e2e-uadmin-${stamp}`,
  email: `uadmin-${stamp}@example.com`,
  password: 'user admin pw 1',
};
const APP = `e2e-app-${stamp}`;
const PUBLIC_APP = `e2e-spa-${stamp}`;

let step = 'start';
const problems = [];
const say = (m) => console.log(`e2e: ${m}`);

function check(cond, message) {
  if (!cond) throw new Error(message);
}

async function api(path, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(new URL(path, base), { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json().catch(() => null) };
}

/** `POST /oauth/token` as `clientId`, authenticated by HTTP Basic with `secret` (or by `client_id` alone). */
async function oauthToken(clientId, secret, params) {
  const headers = { 'Content-Type': 'application/x-www-form-urlencoded' };
  const form = new URLSearchParams(params);
  if (secret === null) form.set('client_id', clientId);
  else headers.Authorization = `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`;
  const res = await fetch(new URL('oauth/token', base), { method: 'POST', headers, body: form });
  return { status: res.status, body: await res.json().catch(() => null) };
}

/** An RFC 6238 code (SHA-1, 6 digits, 30 s) of a base32 secret at `t` (Unix seconds), with node's HMAC. */
function totp(secret, t = Date.now() / 1000) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const bits = [...secret.replace(/=+$/, '')].map((c) => alphabet.indexOf(c).toString(2).padStart(5, '0')).join('');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(t / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[19] & 15;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

function claimsOf(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
}

const profile = mkdtempSync(join(tmpdir(), 'tessera-e2e-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-quic',
    '--no-first-run',
  ],
  viewport: { width: 1280, height: 860 },
});
// The secret dialog's Copy button is checked against the clipboard.
await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(base).origin });
const page = context.pages()[0] || (await context.newPage());
page.setDefaultTimeout(10_000);
page.on('console', (m) => {
  if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) problems.push(`console: ${m.text()}`);
});
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));

const url = (p) => new URL(`admin/${p}`, base).toString();
let shot = 0;
async function screenshot(name) {
  const file = join(artifacts, `${String(++shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
}

async function signIn(username, password) {
  await page.goto(url('login'));
  await page.getByLabel('Username or email').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.locator('#sign-out').waitFor();
}

async function signOut() {
  await page.locator('#sign-out').click();
  await page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
}

async function nav(label) {
  await page.locator('nav.side').getByRole('link', { name: label, exact: true }).click();
  await page
    .locator('main h1')
    .filter({ hasText: label === 'Keys' ? 'Signing keys' : label })
    .waitFor();
  await page.locator('main .loading').waitFor({ state: 'detached' });
}

/** Creates a local user through the dialog and puts it in `group`. */
async function createUser(u, group) {
  await nav('Users');
  await page.locator('#new-user').click();
  const d = page.locator('dialog');
  await d.getByLabel('Username').fill(u.username);
  await d.getByLabel('Email').fill(u.email);
  await d.getByLabel('First name').fill('E2E');
  await d.getByLabel('Password').fill(u.password);
  await d.getByRole('button', { name: 'Create user' }).click();
  await page.locator('main h1', { hasText: u.username }).waitFor();
  await page.getByRole('checkbox', { name: group }).check();
  await page.getByRole('button', { name: 'Save groups' }).click();
  await page.locator('main table').getByRole('link', { name: group }).waitFor();
}

/** Creates a claim group holding the claim named `claim`. */
async function createGroup(name, claim) {
  await nav('Claim groups');
  await page.locator('#new-group').click();
  await page.locator('dialog').getByLabel('Name').fill(name);
  await page.locator('dialog').getByRole('button', { name: 'Create group' }).click();
  await page.locator('main h1', { hasText: name }).waitFor();
  await page.locator('#group-claims').getByRole('checkbox', { name: claim }).check();
  await page.getByRole('button', { name: 'Save claims' }).click();
  await page.locator('#group-claims table').getByText(claim, { exact: true }).waitFor();
}

/** The admin API with the console's own session token (for setting up what the console is not tested on). */
async function adminApi(method, path, body) {
  const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem('tessera.admin.session')).token);
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(new URL(path, base), { method, headers, body: body && JSON.stringify(body) });
  const json = await res.json().catch(() => null);
  check(res.ok, `${method} ${path} answered ${res.status}: ${JSON.stringify(json)}`);
  return json;
}

/**
 * Reads a client secret from the dialog that shows it once, copies it with the dialog's button, closes the dialog;
 * then neither the page nor the browser's storage may hold it any more.
 */
async function takeSecret(name) {
  const d = page.locator('dialog');
  await d.getByText('you will not see it again').waitFor();
  const secret = await d.locator('#client-secret').inputValue();
  check(/^[A-Za-z0-9_-]{43}$/.test(secret), `a secret of ${secret.length} characters is not 256 bits in base64url`);
  await d.locator('button.copy').click();
  await d.locator('button.copy', { hasText: 'Copied' }).waitFor();
  check((await page.evaluate(() => navigator.clipboard.readText())) === secret, 'Copy did not copy the secret');
  await screenshot(name);
  await d.locator('#secret-done').click();
  await d.waitFor({ state: 'detached' });
  const kept = await page.evaluate(
    (s) =>
      [
        JSON.stringify(localStorage),
        JSON.stringify(sessionStorage),
        document.documentElement.outerHTML,
        ...[...document.querySelectorAll('input, textarea')].map((i) => i.value),
      ].some((x) => x.includes(s)),
    secret,
  );
  check(!kept, 'the secret is still in the page or in browser storage after its dialog closed');
  return secret;
}

try {
  step = 'sign-in page';
  await page.goto(new URL('admin', base).toString());
  await page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
  check(page.url().endsWith('/admin/login'), `expected a redirect to /admin/login, at ${page.url()}`);
  // The providers of /api/available_providers are offered (the server under test lists an LDAP one).
  const providers = await page.getByLabel('Sign in with').locator('option').allTextContents();
  check(providers.join('|') === 'Local account|corp (LDAP)', `provider choice: ${providers.join('|')}`);
  await page.getByLabel('Username or email').fill(adminUser);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByText('Wrong username or password').waitFor();
  await screenshot('sign-in-refused');

  step = 'superuser signs in';
  await signIn(adminUser, adminPassword);
  await page.locator('.cards').waitFor();
  await page.locator('#readiness', { hasText: 'Ready' }).waitFor();
  const status = await page.locator('#status').innerText();
  for (const wanted of ['Version', 'Tessera ', 'sqlite', 'Signing key', 'Next rotation', 'Failed logins, last hour', 'Locked names']) {
    check(status.includes(wanted), `the overview lacks ${wanted}: ${status}`);
  }
  await screenshot('overview');

  step = 'create a claim';
  await nav('Claims');
  await page.locator('#new-claim').click();
  const dialog = page.locator('dialog');
  await dialog.getByLabel('Name').fill(CLAIM.name);
  await dialog.getByRole('button', { name: 'Create claim' }).click();
  // The API's validation message appears next to the field it names.
  const keyField = dialog.locator('[data-field="short_name"] .error');
  await keyField.filter({ hasText: 'short_name must not be empty' }).waitFor();
  await screenshot('claim-validation');
  await dialog.getByLabel('Token key').fill(CLAIM.short_name);
  await dialog.getByLabel('Value').fill(CLAIM.value);
  await dialog.getByRole('button', { name: 'Create claim' }).click();
  await page.locator('main table').getByText(CLAIM.name).waitFor();
  await screenshot('claims');

  step = 'create a group with the claim';
  await createGroup(GROUP, CLAIM.name);
  await screenshot('group');
  await createGroup(READERS, 'Super Read');
  await nav('Claim groups');
  await screenshot('groups');

  step = 'create users in the groups';
  await createUser(READER, READERS);
  await createUser(USER, GROUP);
  // The next token's claims follow the group just joined, with the token's size.
  await page.locator('#token-preview').getByText(CLAIM.value, { exact: true }).waitFor();
  check(/^\d+ bytes$/.test(await page.locator('#token-size').innerText()), 'the preview should give the token size');
  await screenshot('user');
  await nav('Users');
  await page.getByRole('searchbox').fill(stamp);
  // The server searches (`?q=`), after a short pause in typing.
  await page.waitForFunction(() => document.querySelectorAll('main tbody tr').length === 2, null, { timeout: 5000 });
  await page.getByRole('searchbox').fill(`zz-no-such-${stamp}`);
  await page.getByText('No user matches').waitFor();
  await page.getByRole('searchbox').fill('');
  await screenshot('users');

  step = 'a group finds new members through the server\'s search';
  await page.goto(url('groups'));
  await page.getByRole('link', { name: GROUP }).click();
  await page.locator('#member-search').fill(READER.username);
  const candidate = page.locator('#member-results tr', { hasText: READER.username });
  await candidate.getByRole('button', { name: 'Add' }).click();
  await page.locator('#group-members table').getByRole('link', { name: READER.username }).waitFor();
  await page.locator('#member-search').fill(READER.username);
  await page.getByText(`No user outside the group matches “${READER.username}”.`).waitFor();
  await screenshot('group-members');
  await page.locator('#group-members tr', { hasText: READER.username }).getByRole('button', { name: 'Remove' }).click();
  await page.locator('dialog').getByRole('button', { name: 'Remove' }).click();
  await page.locator('#group-members table').getByRole('link', { name: READER.username }).waitFor({ state: 'detached' });

  step = 'delete asks first';
  await page.goto(url('groups'));
  await page.getByRole('link', { name: READERS }).click();
  await page.locator('#delete-group').click();
  await page.locator('dialog').getByText('Are you sure?').waitFor();
  await screenshot('confirm-delete');
  await page.locator('dialog').getByRole('button', { name: 'Cancel' }).click();
  await page.locator('dialog').waitFor({ state: 'detached' });

  step = 'register an application: errors next to the field they name';
  await nav('Applications');
  await page.locator('#new-client').click();
  const ad = page.locator('dialog');
  await ad.getByLabel('Name').fill(APP);
  await ad.getByRole('checkbox', { name: 'client_credentials' }).uncheck();
  await ad.getByRole('button', { name: 'Create application' }).click();
  const grantError = ad.locator('[data-field="grant_types"] .error');
  await grantError.filter({ hasText: 'grant_types must name at least one grant' }).waitFor();
  await ad.getByRole('checkbox', { name: 'client_credentials' }).check();
  await ad.getByLabel('Redirect URIs').fill('http://example.com/callback');
  await ad.getByRole('button', { name: 'Create application' }).click();
  // "redirect_uris: … must be an absolute https URL": the message names its field, so it is shown there.
  await ad.locator('[data-field="redirect_uris"] .error').filter({ hasText: 'must be an absolute https URL' }).waitFor();
  check((await grantError.textContent()) === '', 'the earlier grant_types error should be gone');
  await screenshot('application-validation');
  await ad.getByLabel('Redirect URIs').fill('https://app.example/callback');
  await ad.getByLabel('Scopes').fill('read write');
  await ad.getByRole('checkbox', { name: GROUP }).check();
  await ad.getByLabel('Access token lifetime').fill('20');
  await ad.getByRole('button', { name: 'Create application' }).click();

  step = 'the secret is shown once';
  const secret = await takeSecret('application-secret');
  await page.locator('main h1', { hasText: APP }).waitFor();
  const clientId = (await page.locator('#client-id').textContent()).trim();
  say(`registered application ${clientId}`);

  step = 'the secret gets a token from /oauth/token';
  const first = await oauthToken(clientId, secret, { grant_type: 'client_credentials', scope: 'read' });
  check(
    first.status === 200 && first.body?.access_token,
    `token answered ${first.status}: ${JSON.stringify(first.body)}`,
  );
  check(first.body.scope === 'read', `granted scope ${first.body.scope}`);
  const ct = claimsOf(first.body.access_token);
  check(ct.client_id === clientId, `token client_id ${ct.client_id}`);
  check(
    ct[CLAIM.short_name] === CLAIM.value,
    `the claim group picked in the form is not in the token: ${JSON.stringify(ct)}`,
  );
  check(ct.exp - ct.iat === 20, `access_token_ttl 20 gave a token of ${ct.exp - ct.iat} s`);
  const wrong = await oauthToken(clientId, `${secret}x`, { grant_type: 'client_credentials' });
  check(wrong.status === 401, `a wrong secret answered ${wrong.status}`);
  say(`client_credentials token for ${clientId} carries ${CLAIM.short_name}=${ct[CLAIM.short_name]}`);

  step = 'rotate the secret';
  await page.locator('#rotate-secret').click();
  await page.locator('dialog').getByRole('button', { name: 'Rotate secret' }).click();
  await page.locator('dialog #previous-secret').waitFor();
  const rotated = await takeSecret('application-rotated-secret');
  check(rotated !== secret, 'rotation must make a new secret');
  const second = await oauthToken(clientId, rotated, { grant_type: 'client_credentials' });
  check(second.status === 200, `the new secret answered ${second.status}: ${JSON.stringify(second.body)}`);
  // The previous secret keeps working for oauth.secret_rotation_overlap, and the page says until when.
  const overlap = await oauthToken(clientId, secret, { grant_type: 'client_credentials' });
  check(overlap.status === 200, `the previous secret answered ${overlap.status} within the overlap`);
  await page.getByText('The secret before the last rotation works until').waitFor();

  step = 'edit an application';
  await page.locator('main').getByLabel('Audience').fill('https://api.example');
  // The ring's second algorithm (RS256 by default), offered from the discovery document.
  await page.locator('main').getByLabel('Signing algorithm').selectOption('RS256');
  await page.locator('main').getByRole('button', { name: 'Save', exact: true }).click();
  await page.getByText('Saved.').waitFor();
  await page.reload();
  await page.locator('main h1', { hasText: APP }).waitFor();
  const audience = await page.locator('main').getByLabel('Audience').inputValue();
  check(audience === 'https://api.example', `audience after saving: ${audience}`);
  const edited = claimsOf(
    (await oauthToken(clientId, rotated, { grant_type: 'client_credentials' })).body.access_token,
  );
  check([].concat(edited.aud).includes('https://api.example'), `aud after the edit: ${JSON.stringify(edited.aud)}`);
  const editedToken = (await oauthToken(clientId, rotated, { grant_type: 'client_credentials' })).body.access_token;
  const alg = JSON.parse(Buffer.from(editedToken.split('.')[0], 'base64url').toString()).alg;
  check(alg === 'RS256', `the edited application's tokens are signed with ${alg}`);
  await screenshot('application');

  step = 'register a public application (no secret)';
  await nav('Applications');
  await page.locator('#new-client').click();
  await ad.getByLabel('Name').fill(PUBLIC_APP);
  await ad.getByLabel('Type', { exact: true }).selectOption('public');
  check(await ad.getByRole('checkbox', { name: 'client_credentials' }).isDisabled(), 'public: no client_credentials');
  await ad.getByRole('checkbox', { name: 'password' }).check();
  await ad.getByRole('checkbox', { name: 'refresh_token' }).check();
  await ad.getByRole('button', { name: 'Create application' }).click();
  await page.getByText(`Application ${PUBLIC_APP} created. It is public`).waitFor();
  await page.locator('main h1', { hasText: PUBLIC_APP }).waitFor();
  const publicId = (await page.locator('#client-id').textContent()).trim();
  check((await page.locator('#rotate-secret').count()) === 0, 'a public application has no secret to rotate');
  const pw = await oauthToken(publicId, null, {
    grant_type: 'password',
    username: READER.username,
    password: READER.password,
  });
  check(pw.status === 200 && pw.body.refresh_token, `password grant answered ${pw.status}: ${JSON.stringify(pw.body)}`);
  await nav('Applications');
  for (const id of [clientId, publicId]) await page.locator('main tbody').getByText(id, { exact: true }).waitFor();
  await screenshot('applications');

  step = 'delete an application';
  await page.getByRole('link', { name: APP }).click();
  await page.locator('#delete-client').click();
  await page.locator('dialog').getByRole('button', { name: 'Delete' }).click();
  await page.getByText(`Application ${APP} deleted.`).waitFor();
  await page.locator('main h1', { hasText: 'Applications' }).waitFor();
  check((await page.locator('main tbody').getByText(clientId).count()) === 0, 'the deleted application is listed');
  const gone = await oauthToken(clientId, rotated, { grant_type: 'client_credentials' });
  check(gone.status === 401, `a deleted application's secret answered ${gone.status}`);

  step = 'an admin holding only u';
  const readUsers = (await adminApi('GET', 'api/admin/claims?itemsPerPage=255')).find(
    (c) => c.short_name === 'stk' && c.value === 'u',
  );
  check(readUsers, 'no stk=u claim (Read Users)');
  const uGroup = await adminApi('POST', 'api/admin/claim-groups', { name: `e2e-user-readers-${stamp}` });
  await adminApi('PATCH', `api/admin/claim-groups/${uGroup.id}`, { claims: [readUsers.id] });
  const uAdmin = await adminApi('POST', 'api/admin/localuser', { ...USER_ADMIN, fname: 'E2E', lname: 'Users' });
  await adminApi('PATCH', `api/admin/users/${uAdmin.id}`, { claim_groups: [uGroup.id] });

  step = 'sign out';
  await signOut();
  check(await page.evaluate(() => sessionStorage.length === 0), 'sign-out must clear the session');

  step = 'the new user logs in through /api/login and has the claim';
  const login = await api('api/login', { username: USER.username, password: USER.password });
  check(login.status === 200, `login answered ${login.status}`);
  const claims = claimsOf(login.body.token);
  check(claims[CLAIM.short_name] === CLAIM.value, `token claims ${JSON.stringify(claims)} lack ${CLAIM.short_name}`);
  say(`token of ${USER.username} carries ${CLAIM.short_name}=${claims[CLAIM.short_name]}`);

  step = 'read-only operator sees no write controls';
  await signIn(READER.username, READER.password);
  for (const label of ['Overview', 'Users', 'Claim groups', 'Claims', 'Applications', 'Keys', 'Audit log']) {
    await nav(label);
    // A search form (the audit log's filters) changes nothing.
    const writes = await page.locator('main button.primary, main button.danger, main form:not([role=search])').count();
    check(writes === 0, `${label}: ${writes} write controls shown to a read-only operator`);
  }
  await page.goto(url('users'));
  await page.getByRole('link', { name: USER.username }).click();
  await page.locator('#sessions').waitFor();
  const writes = await page.locator('main button.primary, main button.danger, main form').count();
  check(writes === 0, `user page: ${writes} write controls shown to a read-only operator`);
  await screenshot('read-only-user');
  await page.goto(url('groups'));
  await page.getByRole('link', { name: GROUP }).click();
  await page.locator('#group-links').waitFor();
  const groupWrites = await page.locator('main button, main form').count();
  check(groupWrites === 0, `group page: ${groupWrites} write controls shown to a read-only operator`);
  await nav('Applications');
  check((await page.locator('#new-client').count()) === 0, 'a read-only operator is offered New application');
  await page.getByRole('link', { name: PUBLIC_APP }).click();
  await page.locator('#client-details').waitFor();
  // Only the Copy button of the client ID: nothing that changes anything.
  const appWrites = await page.locator('main button:not(.copy), main form, main input').count();
  check(appWrites === 0, `application page: ${appWrites} write controls shown to a read-only operator`);
  await page.locator('#client-details').getByText('password').waitFor();
  await screenshot('read-only-application');
  await signOut();

  step = 'revoke a session; its refresh fails';
  await signIn(adminUser, adminPassword);
  const tokenAtSignIn = await page.evaluate(() => sessionStorage.getItem('tessera.admin.session'));
  await page.goto(url('users'));
  await page.getByRole('link', { name: USER.username }).click();
  await page.locator('#sessions').waitFor();
  const revoke = page.locator('#sessions button.revoke');
  check((await revoke.count()) === 1, `expected one active session, found ${await revoke.count()}`);
  await revoke.click();
  await page.locator('dialog').getByRole('button', { name: 'Revoke' }).click();
  await page.locator('#sessions').getByText('revoked', { exact: false }).first().waitFor();
  await screenshot('session-revoked');
  const refused = await api('api/refresh', { refresh: login.body.refresh });
  check(refused.status === 401, `refresh after revocation answered ${refused.status}`);
  say('refresh of the revoked session answered 401');

  step = 'a user\'s API key is listed on their page and revoked there; a group\'s credential limit';
  const fresh = await api('api/login', { username: USER.username, password: USER.password });
  const made = await fetch(new URL('api/me/api-keys', base), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${fresh.body.token}` },
    body: JSON.stringify({ name: 'ci job' }),
  }).then((r) => r.json());
  const keyLogin = () =>
    fetch(new URL('api/login', base), {
      method: 'POST',
      headers: { Authorization: `Basic ${Buffer.from(`${USER.username}:${made.key}`).toString('base64')}` },
    }).then((r) => r.status);
  check((await keyLogin()) === 200, 'the new key should log in');
  await page.goto(url('users'));
  await page.getByRole('link', { name: USER.username }).click();
  await page.locator('#api-keys').getByText(made.prefix).waitFor();
  check(!(await page.content()).includes(made.key), 'the console shows a key secret');
  await screenshot('user-api-keys');
  await page.locator('#api-keys button.revoke-key').click();
  await page.locator('dialog').getByRole('button', { name: 'Revoke' }).click();
  await page.locator('#api-keys').getByText('No API keys').waitFor();
  check((await keyLogin()) === 401, 'a revoked key should not log in');
  say('API key listed, revoked in the console, then refused');
  await page.goto(url('groups'));
  await page.getByRole('link', { name: GROUP }).click();
  await page.locator('#group-credentials').getByRole('checkbox', { name: /api_key/ }).uncheck();
  await page.getByRole('button', { name: 'Save credential limit' }).click();
  await page.locator('#group-credentials').getByText('Only logins with').waitFor();
  await screenshot('group-credentials');

  step = 'keys';
  await nav('Keys');
  // One key per algorithm of the ring signs: ES256 (tokens.algorithm) and RS256 (the default second one).
  check((await page.locator('.badge', { hasText: 'signing' }).count()) === 2, 'one key per algorithm should sign');
  await screenshot('keys');
  await page.locator('#rotate').click();
  await page.locator('dialog').getByRole('button', { name: 'Rotate now' }).click();
  await page.getByText(/New key .* created/).waitFor();

  step = 'audit log';
  await nav('Audit log');
  await page.locator('main').getByText('claim.create').first().waitFor();
  await page.locator('main').getByText('sessions.revoke').first().waitFor();
  await screenshot('audit');
  // Filtered by the server: the claim changes only; a change's detail opens in full.
  await page.getByLabel('Action').fill('claim.');
  await page.locator('#audit-filters').getByRole('button', { name: 'Filter' }).click();
  await page.waitForFunction(
    () => {
      const actions = [...document.querySelectorAll('#audit-list tbody td:nth-child(3)')].map((td) => td.textContent);
      return actions.length > 0 && actions.every((a) => a.startsWith('claim.'));
    },
    null,
    { timeout: 5000 },
  );
  const detail = page.locator('#audit-list details').first();
  await detail.locator('summary').click();
  check((await detail.locator('pre').innerText()).includes('"short_name"'), 'the detail should open as JSON');
  await screenshot('audit-filtered');
  await page.getByLabel('Who').fill(`nobody-${stamp}`);
  await page.locator('#audit-filters').getByRole('button', { name: 'Filter' }).click();
  await page.getByText('No entry matches these filters.').waitFor();

  step = 'metrics';
  await nav('Metrics');
  await page.getByText('Rates over the last').waitFor({ timeout: 15_000 });
  // Some traffic to draw: logins (one refused) and a refresh, then the next sample.
  for (let i = 0; i < 3; i++) {
    const ok = await api('api/login', { username: READER.username, password: READER.password });
    await api('api/refresh', { refresh: ok.body.refresh });
  }
  await api('api/login', { username: READER.username, password: 'wrong' });
  await page.waitForFunction(() => document.querySelectorAll('svg.chart polyline').length >= 8, null, {
    timeout: 15_000,
  });
  check((await page.locator('svg.chart').count()) === 4, 'four charts expected');
  await screenshot('metrics');

  step = 'the console refreshes its token before it expires';
  await page.waitForFunction((old) => sessionStorage.getItem('tessera.admin.session') !== old, tokenAtSignIn, {
    timeout: 45_000,
    polling: 500,
  });
  await nav('Overview');
  check(await page.locator('#sign-out').isVisible(), 'still signed in after the refresh');

  step = 'a user without admin letters sees no console';
  await signOut();
  await signIn(USER.username, USER.password);
  await page.getByText('No admin access').waitFor();
  await signOut();

  step = 'an admin without s or S has no Applications page';
  await signIn(USER_ADMIN.username, USER_ADMIN.password);
  await page.locator('nav.side').getByRole('link', { name: 'Users', exact: true }).waitFor();
  const appLinks = await page.locator('nav.side').getByRole('link', { name: 'Applications' }).count();
  check(appLinks === 0, 'an admin with only u is offered the Applications page');
  await page.goto(url('applications'));
  await page.locator('main h1', { hasText: 'Not allowed' }).waitFor();
  await signOut();

  step = 'two-factor sign-in: a code on the sign-in page; the admin resets a lost factor';
  const uadmin = await api('api/login', { username: USER_ADMIN.username, password: USER_ADMIN.password });
  const enrol = await fetch(new URL('api/mfa/totp', base), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${uadmin.body.token}` },
    body: '{}',
  }).then((r) => r.json());
  const confirmed = await api('api/mfa/totp/confirm', { code: totp(enrol.secret) }, uadmin.body.token);
  check(confirmed.status === 200, `confirming the factor answered ${confirmed.status}`);
  await page.goto(url('login'));
  await page.getByLabel('Username or email').fill(USER_ADMIN.username);
  await page.getByLabel('Password').fill(USER_ADMIN.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('heading', { name: 'Two-factor sign-in' }).waitFor();
  await screenshot('signin-code');
  // The code of the next step: the one of this step confirmed the enrolment, and a code works once.
  await page.getByLabel('Code from your authenticator app').fill('000000');
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.getByText('That code is not valid').waitFor();
  await new Promise((r) => setTimeout(r, 1100));
  await page.getByLabel('Code from your authenticator app').fill(totp(enrol.secret, Date.now() / 1000 + 30));
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.locator('#sign-out').waitFor();
  check(claimsOf(JSON.parse(await page.evaluate(() => sessionStorage.getItem('tessera.admin.session'))).token).amr.includes('otp'), 'the session should carry amr otp');
  await signOut();
  await signIn(adminUser, adminPassword);
  await page.goto(url('users'));
  await page.getByRole('link', { name: USER_ADMIN.username }).click();
  await page.locator('#mfa').getByText('recovery codes left').waitFor();
  await page.locator('#reset-mfa').click();
  await page.locator('dialog').getByRole('button', { name: 'Reset' }).click();
  await page.locator('#mfa').getByText('Not set up').waitFor();
  await screenshot('mfa-reset');
  await signOut();
  await signIn(USER_ADMIN.username, USER_ADMIN.password);
  await signOut();
  say('signed in with a code, then with the password alone after the reset');

  step = 'sign in through the upstream OpenID provider (a popup, Stoke\'s window transfer)';
  await page.goto(url('login'));
  await screenshot('signin-providers');
  const [popup] = await Promise.all([
    context.waitForEvent('page'),
    page.getByRole('button', { name: 'Sign in with upstream' }).click(),
  ]);
  // The provider's own login form (oidc-provider's development interactions: any password).
  await popup.locator('input[name=login]').fill('grace');
  await popup.locator('input[name=password]').fill('anything');
  await popup.locator('button[type=submit]').click();
  await page.locator('#sign-out').waitFor();
  check((await page.locator('.who').innerText()).includes('grace@example.test'), 'the console should show grace signed in');
  const upstreamSession = JSON.parse(await page.evaluate(() => sessionStorage.getItem('tessera.admin.session')));
  check(claimsOf(upstreamSession.token).stk === 's', 'grace should hold stk=s through the linked group');
  await screenshot('oidc-signed-in');
  await signOut();
  say('signed in through the upstream provider in a popup');

  step = 'a locked name is listed and lifted';
  let locked = false;
  for (let i = 0; i < 6 && !locked; i++) {
    locked = (await api('api/login', { username: READER.username, password: 'wrong again' })).status === 429;
  }
  check(locked, 'three failures should lock the name');
  await signIn(adminUser, adminPassword);
  await nav('Users');
  const lockRow = page.locator('#locks tr', { hasText: READER.username });
  await lockRow.waitFor();
  await screenshot('locks');
  await lockRow.getByRole('button', { name: 'Lift' }).click();
  await page.getByText(`The lock of ${READER.username} is lifted.`).waitFor();
  await page.locator('#locks').waitFor({ state: 'detached' });
  const after = await api('api/login', { username: READER.username, password: READER.password });
  check(after.status === 200, `a lifted name should log in, got ${after.status}`);
  await signOut();
  say('a locked name listed on the users page and lifted');

  step = 'the dark theme follows the system setting';
  await page.emulateMedia({ colorScheme: 'dark' });
  await signIn(adminUser, adminPassword);
  await page.goto(url('users'));
  await page.getByRole('link', { name: USER.username }).click();
  await page.locator('#api-keys').waitFor();
  const background = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  check(background === 'rgb(18, 22, 29)', `dark background expected, got ${background}`);
  await screenshot('dark-user');
  await signOut();
  await page.emulateMedia({ colorScheme: 'light' });

  check(problems.length === 0, `browser reported problems:\n  ${problems.join('\n  ')}`);
  say(`passed; screenshots in ${artifacts}`);
} catch (err) {
  await screenshot('failure').catch(() => {});
  console.error(`e2e: FAILED at ${step}: ${err.message}`);
  if (problems.length) console.error(`browser problems:\n  ${problems.join('\n  ')}`);
  console.error(`e2e: screenshots in ${artifacts}`);
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
