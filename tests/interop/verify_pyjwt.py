"""Verifies tokens with PyJWT, two ways a Python resource server would.

stdin: JSON [{"jwks": url, "pkeys": url, "token": jwt, "alg": name, "issuer": iss}, ...]
- PyJWKClient on the standard /.well-known/jwks.json;
- a Stoke-style client on /api/pkeys: members decoded with padded base64url (urlsafe_b64decode insists on the
  padding, as Go's base64.URLEncoding does), `exp` read as RFC 3339, keys built from their numbers.
Prints one line per check; exits 1 if any failed.
"""
import base64
import datetime
import json
import sys
import urllib.request

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

CURVES = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}


def strict_b64(value):
    if len(value) % 4:
        raise ValueError(f"not padded: {value!r}")
    return base64.urlsafe_b64decode(value)


def number(value):
    return int.from_bytes(strict_b64(value), "big")


def stoke_keys(url):
    doc = json.load(urllib.request.urlopen(url))
    exp = datetime.datetime.fromisoformat(doc["exp"].replace("Z", "+00:00"))
    assert exp.tzinfo is not None, doc["exp"]
    keys = {}
    for k in doc["keys"]:
        if k["kty"] == "EC":
            size = {"P-256": 32, "P-384": 48, "P-521": 66}[k["crv"]]
            x, y = strict_b64(k["x"]), strict_b64(k["y"])
            assert len(x) == size and len(y) == size, "EC coordinates must be full length"
            key = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"), CURVES[k["crv"]]).public_key()
        elif k["kty"] == "OKP":
            key = ed25519.Ed25519PublicKey.from_public_bytes(strict_b64(k["x"]))
        else:
            key = rsa.RSAPublicNumbers(number(k["e"]), number(k["n"])).public_key()
        keys[k["kid"]] = key
    return keys


failed = 0
for case in json.load(sys.stdin):
    alg, token = case["alg"], case["token"]
    for how in ("jwks", "pkeys"):
        try:
            if how == "jwks":
                key = jwt.PyJWKClient(case["jwks"]).get_signing_key_from_jwt(token).key
            else:
                key = stoke_keys(case["pkeys"])[jwt.get_unverified_header(token)["kid"]]
            claims = jwt.decode(token, key, algorithms=[alg], issuer=case["issuer"], options={"verify_aud": False})
            print(f"ok {how} {alg} {claims.get('u', claims['sub'])}")
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            failed += 1
            print(f"FAIL {how} {alg}: {type(e).__name__}: {e}")
sys.exit(1 if failed else 0)
