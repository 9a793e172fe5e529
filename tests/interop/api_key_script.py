"""A script that logs in with an API key as Keyosk's clients do, and a resource server that verifies the token.

stdin: JSON {"login": url, "jwks": url, "username": name, "key": "tsk_...", "issuer": iss}
- POST /api/login with `Authorization: Basic base64(username:key)` and no body (the standard library only, as a
  shell script with curl would);
- PyJWT's PyJWKClient verifies the token through the JWKS.
Prints one JSON line: {"status": code, "claims": {...}} (claims only on 200).
"""
import base64
import json
import sys
import urllib.error
import urllib.request

import jwt

case = json.load(sys.stdin)
basic = base64.b64encode(f"{case['username']}:{case['key']}".encode()).decode()
request = urllib.request.Request(case["login"], method="POST", headers={"Authorization": f"Basic {basic}"})
try:
    with urllib.request.urlopen(request) as response:
        body = json.load(response)
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode()}))
    sys.exit(0)

token = body["token"]
key = jwt.PyJWKClient(case["jwks"]).get_signing_key_from_jwt(token).key
alg = jwt.get_unverified_header(token)["alg"]
claims = jwt.decode(token, key, algorithms=[alg], issuer=case["issuer"], options={"verify_aud": False})
print(json.dumps({"status": 200, "claims": claims, "refresh": body["refresh"]}))
