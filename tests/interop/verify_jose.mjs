// Verifies tokens with node `jose` through a remote JWKS, as a resource server in JavaScript would.
// stdin: JSON [{"jwks": url, "token": jwt, "alg": name, "issuer": iss}, ...]; prints one line per token.
import { createRemoteJWKSet, jwtVerify } from 'jose';

const input = JSON.parse(await new Promise((resolve) => {
  let data = '';
  process.stdin.on('data', (c) => { data += c; });
  process.stdin.on('end', () => resolve(data));
}));
let failed = 0;
for (const { jwks, token, alg, issuer } of input) {
  try {
    const { payload, protectedHeader } = await jwtVerify(token, createRemoteJWKSet(new URL(jwks)), {
      issuer, algorithms: [alg],
    });
    console.log(`ok ${protectedHeader.alg} ${payload.u ?? payload.sub}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${alg}: ${e.code ?? ''} ${e.message}`);
  }
}
process.exit(failed ? 1 : 0);
