#!/usr/bin/env bash
# Browser tests of the admin console against a real server (scripts/test runs this; it also runs alone).
# Builds the dev binary, starts it on a free loopback port with a throwaway SQLite database, cheap argon2
# parameters and 30 s tokens (so the console's refresh-before-expiry is exercised), reads the bootstrap
# superuser's one-time password from its output, runs tests/e2e/run.mjs in Debian's Chromium, stops the server.
#
# Needs: chromium (Debian package), node and npm. Screenshots: tests/e2e/artifacts/ (or $TESSERA_E2E_ARTIFACTS).
set -euo pipefail
cd "$(dirname "$0")/../.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tessera/target}"
artifacts="${TESSERA_E2E_ARTIFACTS:-$PWD/tests/e2e/artifacts}"

cargo build --all-features --quiet --bin tessera
bin="$CARGO_TARGET_DIR/debug/tessera"

if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    echo "e2e: playwright-core needs Node.js 20 or newer (found $(node --version))" >&2
    exit 1
fi
if [ ! -f tests/e2e/node_modules/playwright-core/package.json ]; then
    # playwright-core only: it never downloads a browser (and `npx playwright install` is never run).
    npm ci --prefix tests/e2e --no-audit --no-fund --silent
fi

if [ ! -f tests/interop/node_modules/oidc-provider/package.json ]; then
    npm ci --prefix tests/interop --no-audit --no-fund --silent
fi

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

# The upstream OpenID provider the sign-in page offers (node oidc-provider, as in tests/api/oidc.rs); its user
# grace is in the group linked to an operators' claim group.
cat > "$work/accounts.json" <<JSON
{"grace": {"email": "grace@example.test", "email_verified": true, "given_name": "Grace", "family_name": "Hopper", "groups": ["operators"]}}
JSON
node tests/interop/oidc_provider.mjs "$work/accounts.json" --until-killed > "$work/provider.out" 2> "$work/provider.log" &
provider_pid=$!
pid=""
cleanup() {
    kill $pid "$provider_pid" 2>/dev/null || true
    wait $pid "$provider_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 60); do
    [ -s "$work/provider.out" ] && break
    sleep 0.25
done
issuer="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["issuer"])' "$work/provider.out")"
cat > "$work/dbinit.yaml" <<YAML
claims:
  - {name: Super Read, short_name: stk, value: s, description: Grants read access to all stoke admin}
groups:
  - name: Upstream operators
    description: people the upstream provider puts in operators
    links: [{type: OIDC, provider: upstream, resource: "groups=operators"}]
    claims: [Super Read]
YAML
cat > "$work/config.yaml" <<YAML
server:
  address: 127.0.0.1
  port: $port
  shutdown_timeout: 5s
database:
  url: "sqlite://$work/tessera.db"
logging:
  pretty_stdout: false
tokens:
  token_duration: 30s
security:
  password_hash: { memory_kib: 256, iterations: 1, parallelism: 1 }
  # A name locks after three failures, so the console's locks section can be shown and lifted.
  login_throttle: { delay_after: 3, lockout_after: 3 }
users:
  # corp: listed so the sign-in page offers a directory choice (nothing signs in through it); upstream: a button.
  providers:
    - { name: corp, type: ldap, server_url: "ldap://127.0.0.1:9" }
    - name: upstream
      type: oidc
      discovery_url: "$issuer/.well-known/openid-configuration"
      client_id: tessera
      client_secret: tessera-secret
      redirect_uri: "http://127.0.0.1:$port/oidc/upstream"
      claims_source: endpoint
      scopes: [profile, email, groups]
  user_init_file: "$work/dbinit.yaml"
YAML

"$bin" --config "$work/config.yaml" serve > "$work/server.log" 2>&1 &
pid=$!

base="http://127.0.0.1:$port/"
for _ in $(seq 1 120); do
    curl -fsS "${base}readyz" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/server.log"; echo "e2e: the server exited" >&2; exit 1; }
    sleep 0.5
done
# JSON logs: the one-time password is a JSON line of its own (target tessera::bootstrap).
password="$(python3 -c 'import json, sys
for line in open(sys.argv[1]):
    try:
        v = json.loads(line)
    except ValueError:
        continue
    if v.get("target") == "tessera::bootstrap":
        print(v["fields"]["password"]); break' "$work/server.log")"
[ -n "$password" ] || { cat "$work/server.log"; echo "e2e: no bootstrap password in the server output" >&2; exit 1; }

if ! node tests/e2e/run.mjs "$base" sadmin "$password" "$artifacts"; then
    echo "e2e: server log:" >&2
    tail -n 40 "$work/server.log" >&2
    exit 1
fi
