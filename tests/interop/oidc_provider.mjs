// A real OpenID provider for the tests: node `oidc-provider` (pinned in package-lock.json), on a loopback port.
//
//   node oidc_provider.mjs ACCOUNTS_JSON [--until-killed]
//
// Prints one JSON line {"issuer": "http://127.0.0.1:PORT"} once it listens, then serves until stdin closes (the
// test process ends), or with --until-killed until it is killed (tests/e2e/e2e.sh). Its login page is oidc-provider's devInteractions form (any login name, any password);
// consent is granted without a page. PKCE is required of every client. Accounts come from ACCOUNTS_JSON, read
// at each request, so a test can change a user's claims between two sign-ins:
//   {"<login>": {"email": ..., "email_verified": true, "given_name": ..., "family_name": ..., "groups": [...]}}
// One confidential client: tessera / tessera-secret, whose redirect URIs are http://127.0.0.1:<any port>/oidc/<any
// name> (the tests' servers have ephemeral ports).
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const accountsFile = process.argv[2];
// stdout carries the one line the test reads; oidc-provider's own notices go to stderr.
console.log = console.info = (...args) => process.stderr.write(`${args.join(' ')}\n`);

function account(id) {
  let all = {};
  try {
    all = JSON.parse(readFileSync(accountsFile, 'utf8'));
  } catch {
    all = {};
  }
  return all[id] ?? { email: `${id}@example.test`, email_verified: false, given_name: id, family_name: 'Tester' };
}

const server = createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'tessera',
      client_secret: 'tessera-secret',
      redirect_uris: ['http://127.0.0.1:1/oidc/placeholder'],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  pkce: { required: () => true },
  // Profile claims in the id_token too, so claims_source `token` has them (not only UserInfo).
  conformIdTokenClaims: false,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['given_name', 'family_name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['tessera-test-provider-cookie-key'] },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, ...account(id) };
      },
    };
  },
  // No consent page: the grant covers what the client asked for.
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(ctx.oidc.params.scope ?? 'openid');
    grant.addOIDCClaims(['email', 'email_verified', 'given_name', 'family_name', 'groups']);
    await grant.save();
    return grant;
  },
});

// Any loopback port and provider name, as RFC 8252 allows for loopback redirects.
const allowed = /^http:\/\/127\.0\.0\.1:\d+\/oidc\/[A-Za-z0-9_-]+$/;
provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(value) {
  return allowed.test(value);
};

server.on('request', provider.callback());
process.stdout.write(`${JSON.stringify({ issuer })}\n`);
if (process.argv[3] !== '--until-killed') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}
