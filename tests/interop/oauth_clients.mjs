// Drives Tessera's OAuth 2.0 face with node openid-client (discovery, clientCredentialsGrant, refreshTokenGrant,
// tokenIntrospection, tokenRevocation) and checks RFC 9068 access tokens with oauth4webapi's
// validateJwtAccessToken, as a resource server would. stdin: JSON with the issuer and the clients' credentials.
import * as client from 'openid-client';
import * as oauth from 'oauth4webapi';

const cfg = JSON.parse(await new Promise((resolve) => {
  let data = '';
  process.stdin.on('data', (c) => { data += c; });
  process.stdin.on('end', () => resolve(data));
}));

function check(name, ok, detail) {
  if (!ok) {
    console.log(`FAIL ${name}: ${JSON.stringify(detail)}`);
    process.exit(1);
  }
  console.log(`ok   ${name}`);
}

const issuer = new URL(cfg.issuer);
// The server is on loopback, over http.
const insecure = { execute: [client.allowInsecureRequests] };
const discover = (c, auth) => client.discovery(issuer, c.client_id, c.client_secret, auth, insecure);

for (const [method, auth] of [['client_secret_basic', client.ClientSecretBasic], ['client_secret_post', client.ClientSecretPost]]) {
  const app = await discover(cfg.confidential, auth(cfg.confidential.client_secret));
  check(`openid-client discovery (${method})`, app.serverMetadata().token_endpoint.endsWith('/oauth/token'), app.serverMetadata());
  const cc = await client.clientCredentialsGrant(app, { scope: 'read' });
  check(`openid-client clientCredentialsGrant (${method})`, cc.scope === 'read' && !cc.refresh_token, cc);
  const pw = await client.genericGrantRequest(app, 'password', { username: cfg.username, password: cfg.password });
  const refreshed = await client.refreshTokenGrant(app, pw.refresh_token);
  check(`openid-client refreshTokenGrant (${method})`, refreshed.refresh_token && refreshed.refresh_token !== pw.refresh_token, refreshed);

  const rs = await discover(cfg.introspector, auth(cfg.introspector.client_secret));
  const active = await client.tokenIntrospection(rs, refreshed.access_token);
  check(`openid-client tokenIntrospection (${method})`, active.active === true && active.client_id === cfg.confidential.client_id, active);
  await client.tokenRevocation(app, refreshed.refresh_token);
  const inactive = await client.tokenIntrospection(rs, refreshed.access_token);
  check(`openid-client tokenRevocation ends the session (${method})`, inactive.active === false, inactive);
}

// RFC 9068: a resource server validates the access tokens of a client with jwt_profile rfc9068.
const profiled = await discover(cfg.rfc9068, client.ClientSecretBasic(cfg.rfc9068.client_secret));
const as = profiled.serverMetadata();
for (const [grant, get] of [
  ['client_credentials', () => client.clientCredentialsGrant(profiled)],
  ['password', () => client.genericGrantRequest(profiled, 'password', { username: cfg.username, password: cfg.password })],
]) {
  const t = await get();
  const request = new Request('https://api.example/resource', { headers: { authorization: `Bearer ${t.access_token}` } });
  const claims = await oauth.validateJwtAccessToken(as, request, cfg.rfc9068.audience, { [oauth.allowInsecureRequests]: true });
  check(`oauth4webapi validateJwtAccessToken (${grant})`, claims.client_id === cfg.rfc9068.client_id, claims);
}
console.log('all node OAuth client checks passed');
