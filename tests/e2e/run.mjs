// Browser test of the admin console: Debian's Chromium (/usr/bin/chromium) driven by playwright-core; no browser
// is ever downloaded. Usage: node run.mjs <base url> <superuser name> <superuser password> [artifacts dir]
//
// Scenario: sign in as the bootstrap superuser; create a claim, a group with that claim and a user in that group;
// sign out; log in as the new user through /api/login and find the claim in the token; a read-only operator
// (stk=s) sees no write controls; revoking a session makes its refresh fail; keys, audit log and metrics pages
// render; the console refreshes its token before it expires. Every page is screenshotted into the artifacts dir.
// Any console error (such as a Content-Security-Policy violation) fails the run.

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
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#sign-out').waitFor();
}

async function signOut() {
  await page.locator('#sign-out').click();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
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

try {
  step = 'sign-in page';
  await page.goto(new URL('admin', base).toString());
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
  check(page.url().endsWith('/admin/login'), `expected a redirect to /admin/login, at ${page.url()}`);
  // The providers of /api/available_providers are offered (the server under test lists an LDAP one).
  const providers = await page.getByLabel('Sign in with').locator('option').allTextContents();
  check(providers.join('|') === 'Local account|corp (LDAP)', `provider choice: ${providers.join('|')}`);
  await page.getByLabel('Username or email').fill(adminUser);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('Wrong username or password').waitFor();
  await screenshot('sign-in-refused');

  step = 'superuser signs in';
  await signIn(adminUser, adminPassword);
  await page.locator('.cards').waitFor();
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
  await screenshot('user');
  await nav('Users');
  await page.getByRole('searchbox').fill(stamp);
  check((await page.locator('main tbody tr').count()) === 2, 'search should find the two new users');
  await page.getByRole('searchbox').fill(`zz-no-such-${stamp}`);
  await page.getByText('No user matches').waitFor();
  await page.getByRole('searchbox').fill('');
  await screenshot('users');

  step = 'delete asks first';
  await page.goto(url('groups'));
  await page.getByRole('link', { name: READERS }).click();
  await page.locator('#delete-group').click();
  await page.locator('dialog').getByText('Are you sure?').waitFor();
  await screenshot('confirm-delete');
  await page.locator('dialog').getByRole('button', { name: 'Cancel' }).click();
  await page.locator('dialog').waitFor({ state: 'detached' });

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
  for (const label of ['Overview', 'Users', 'Claim groups', 'Claims', 'Keys', 'Audit log']) {
    await nav(label);
    const writes = await page.locator('main button.primary, main button.danger, main form').count();
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

  step = 'keys';
  await nav('Keys');
  check((await page.locator('.badge', { hasText: 'signing' }).count()) === 1, 'exactly one key should sign');
  await screenshot('keys');
  await page.locator('#rotate').click();
  await page.locator('dialog').getByRole('button', { name: 'Rotate now' }).click();
  await page.getByText(/New key .* created/).waitFor();

  step = 'audit log';
  await nav('Audit log');
  await page.locator('main').getByText('claim.create').first().waitFor();
  await page.locator('main').getByText('sessions.revoke').first().waitFor();
  await screenshot('audit');

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
