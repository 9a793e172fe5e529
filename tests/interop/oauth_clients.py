"""Drives Tessera's OAuth 2.0 face with third-party clients: authlib (metadata validation, OAuth2Client with
client_secret_basic and client_secret_post for each grant, introspect_token, revoke_token), requests-oauthlib
(BackendApplicationClient and LegacyApplicationClient, as Lok's Python clients use them), and PyJWT verifying the
tokens through the JWKS. Reads its cases as JSON on stdin; prints one line per check; exits non-zero on the
first failure."""

import json
import sys

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata
from oauthlib.oauth2 import BackendApplicationClient, LegacyApplicationClient
from requests_oauthlib import OAuth2Session

cfg = json.load(sys.stdin)
base = cfg["base"]
confidential = cfg["confidential"]
public = cfg["public"]
introspector = cfg["introspector"]
user, password = cfg["username"], cfg["password"]


def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    print(f"ok   {name}")


meta = requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=10).json()
AuthorizationServerMetadata(meta).validate()
check("RFC 8414 metadata validates", True)
if cfg.get("oidc"):
    oidc = requests.get(f"{base}/.well-known/openid-configuration", timeout=10).json()
    OpenIDProviderMetadata(oidc).validate()
    check("OpenID provider metadata validates", True)
token_url = meta["token_endpoint"]
jwks = jwt.PyJWKClient(meta["jwks_uri"])


def verify(token, audience=None):
    key = jwks.get_signing_key_from_jwt(token)
    options = {"verify_aud": audience is not None}
    header = jwt.get_unverified_header(token)
    return jwt.decode(
        token, key.key, algorithms=[header["alg"]], issuer=meta["issuer"], audience=audience, options=options
    )


for method in ["client_secret_basic", "client_secret_post"]:
    client = AuthlibSession(
        confidential["client_id"], confidential["client_secret"], token_endpoint_auth_method=method, scope="read"
    )
    t = client.fetch_token(token_url, grant_type="client_credentials")
    claims = verify(t["access_token"])
    check(f"authlib client_credentials ({method})", claims["sub"] == "client:" + confidential["client_id"], claims)
    check(f"scope granted ({method})", t["scope"] == "read" and "refresh_token" not in t, t)

    t = client.fetch_token(token_url, username=user, password=password)
    claims = verify(t["access_token"])
    check(f"authlib password grant ({method})", claims["client_id"] == confidential["client_id"], claims)
    refreshed = client.refresh_token(token_url, refresh_token=t["refresh_token"])
    check(f"authlib refresh_token grant ({method})", refreshed["refresh_token"] != t["refresh_token"], refreshed)
    verify(refreshed["access_token"])

    rs = AuthlibSession(introspector["client_id"], introspector["client_secret"], token_endpoint_auth_method=method)
    answer = rs.introspect_token(meta["introspection_endpoint"], token=refreshed["access_token"]).json()
    check(f"authlib introspect_token ({method})", answer.get("active") is True, answer)
    revoked = client.revoke_token(meta["revocation_endpoint"], token=refreshed["refresh_token"])
    check(f"authlib revoke_token ({method})", revoked.status_code == 200, revoked.text)
    answer = rs.introspect_token(meta["introspection_endpoint"], token=refreshed["access_token"]).json()
    check(f"the session's access token is inactive after revocation ({method})", answer == {"active": False}, answer)

spa = AuthlibSession(public["client_id"], token_endpoint_auth_method="none")
t = spa.fetch_token(token_url, username=user, password=password)
check("authlib public client (none)", verify(t["access_token"])["client_id"] == public["client_id"], t)

# requests-oauthlib sends the client's credentials in Basic and in the body at once.
backend = OAuth2Session(client=BackendApplicationClient(client_id=confidential["client_id"]))
t = backend.fetch_token(
    token_url, client_id=confidential["client_id"], client_secret=confidential["client_secret"], include_client_id=True
)
check("requests-oauthlib BackendApplicationClient", verify(t["access_token"])["sub"].startswith("client:"), t)
backend = OAuth2Session(client=BackendApplicationClient(client_id=confidential["client_id"]))
t = backend.fetch_token(token_url, client_id=confidential["client_id"], client_secret=confidential["client_secret"])
check("requests-oauthlib BackendApplicationClient (Basic only)", "access_token" in t, t)
legacy = OAuth2Session(client=LegacyApplicationClient(client_id=confidential["client_id"]))
t = legacy.fetch_token(
    token_url,
    username=user,
    password=password,
    client_id=confidential["client_id"],
    client_secret=confidential["client_secret"],
)
check("requests-oauthlib LegacyApplicationClient", verify(t["access_token"])["client_id"] == confidential["client_id"], t)
print("all OAuth client checks passed")
