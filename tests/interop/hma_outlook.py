#!/usr/bin/env python3
"""Hybrid Modern Authentication the way Outlook does it, with Microsoft's own MSAL Python.

Driven by tests/it/hma.rs. Usage:

    hma_outlook.py --ca CA.pem --port PORT --issuer-port IPORT EMAIL:PASSWORD [...]

The lab issuer listens on 127.0.0.1:IPORT; it is reached as login.lab.test:443 (the host of
the challenge's authorization_uri) and as localhost:IPORT (the endpoints its discovery
document names).

For each case, against https://autodiscover.contoso.com (mapped to 127.0.0.1:PORT, see
exchangelib_discovery.py for the simulated network):
  1. an anonymous POX request; the 401's Bearer challenge gives authorization_uri and the
     tenant (trusted_issuers);
  2. MSAL (instance_discovery=False, authority = the origin of authorization_uri + tenant)
     gets a token for the origin of the Autodiscover URL (resource owner password grant);
  3. the POX request again with `Authorization: Bearer` and `X-AnchorMailbox`;
  4. MSAL's refresh-token grant, and the request once more with the new token;
  5. exchangelib 5's SOAP autodiscovery with OAuth2AuthorizationCodeCredentials holding
     the access token.
Prints one JSON object per case on stdout (never a token or password).

Exit codes: 0 ran, 3 a module is missing, 2 bad arguments.
"""

import argparse
import base64
import json
import os
import re
import sys
import time
import traceback
from urllib.parse import urlparse

try:
    import msal
    import requests
    from exchangelib import DELEGATE, Account, OAuth2AuthorizationCodeCredentials
    from oauthlib.oauth2 import OAuth2Token
    from exchangelib.autodiscover import clear_cache

    import exchangelib_discovery as network
except ImportError as e:  # pragma: no cover - reported to the Rust driver
    print(f"MISSING_MODULE: {e}", file=sys.stderr)
    sys.exit(3)

AUTODISCOVER = "https://autodiscover.contoso.com"
POX_PATH = "/autodiscover/autodiscover.xml"
# The client id Microsoft Office apps (Outlook) use with Entra.
OUTLOOK_CLIENT_ID = "d3590ed6-52b3-4102-aeff-aad2292ab01c"
POX_REQUEST = """<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>{email}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>"""


def bearer_challenge(response):
    """The parameters of the Bearer line of a 401 (each challenge is its own header line)."""
    for line in response.raw.headers.getlist("WWW-Authenticate"):
        if line.lower().startswith("bearer"):
            return dict(re.findall(r'(\w+)="([^"]*)"', line))
    return None


def pox(session, email, ca, token=None):
    headers = {"Content-Type": "text/xml", "X-AnchorMailbox": email}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    r = session.post(
        AUTODISCOVER + POX_PATH,
        data=POX_REQUEST.format(email=email).encode(),
        headers=headers,
        verify=ca,
        allow_redirects=False,
    )
    ews = re.search(r"<EwsUrl>([^<]*)</EwsUrl>", r.text)
    return r, {
        "status": r.status_code,
        "ews_url": ews.group(1) if ews else None,
        "diagnostics": r.headers.get("x-ms-diagnostics"),
    }


def claims_of(token):
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


def run_exchangelib(email, token_result, record):
    clear_cache()
    token = OAuth2Token(
        {
            "access_token": token_result["access_token"],
            "token_type": "Bearer",
            "expires_in": int(token_result.get("expires_in", 3600)),
            "expires_at": time.time() + int(token_result.get("expires_in", 3600)),
        }
    )
    network.CURRENT["record"] = {"wire": [], "attempts": [], "responses": [], "log": []}
    try:
        account = Account(
            primary_smtp_address=email,
            credentials=OAuth2AuthorizationCodeCredentials(access_token=token),
            autodiscover=True,
            access_type=DELEGATE,
        )
        record["ews_url"] = account.protocol.service_endpoint
    except Exception as e:  # reported to the driver
        record["error"] = f"{type(e).__name__}: {e}"
        record["trace"] = traceback.format_exc()[-2000:]
    wire = network.CURRENT["record"]["wire"]
    record["wire_auth"] = [w["auth"] for w in wire]
    record["wire_status"] = [w.get("status") for w in wire]
    network.CURRENT["record"] = None


def run_case(email, password, ca, table):
    record = {"email": email}
    session = requests.Session()
    r, answer = pox(session, email, ca)
    record["anonymous"] = answer
    challenge = bearer_challenge(r)
    if challenge is None:
        record["error"] = "no Bearer challenge"
        return record
    authorization_uri = urlparse(challenge["authorization_uri"])
    tenant = challenge["trusted_issuers"].split("@", 1)[1]
    record["challenge"] = {"authorization_uri": challenge["authorization_uri"], "tenant": tenant}
    authority = f"{authorization_uri.scheme}://{authorization_uri.netloc}/{tenant}"
    app = msal.PublicClientApplication(
        OUTLOOK_CLIENT_ID, authority=authority, instance_discovery=False, verify=ca
    )
    # The resource is the origin of the URL Outlook called, as Outlook asks for it.
    scopes = [f"{AUTODISCOVER}/.default"]
    result = app.acquire_token_by_username_password(email, password, scopes=scopes)
    if "access_token" not in result:
        record["token"] = {"error": result.get("error_description", result.get("error"))}
        return record
    claims = claims_of(result["access_token"])
    record["token"] = {"audience": claims.get("aud"), "issuer": claims.get("iss")}
    _, record["pox"] = pox(session, email, ca, result["access_token"])
    refreshed = app.acquire_token_by_refresh_token(result["refresh_token"], scopes=scopes)
    if "access_token" in refreshed:
        _, record["refreshed"] = pox(session, email, ca, refreshed["access_token"])
    else:
        record["refreshed"] = {"error": refreshed.get("error_description")}
    record["exchangelib"] = {}
    run_exchangelib(email, result, record["exchangelib"])
    return record


def main():
    # requests lets these override a session's `verify` (MSAL's): only the test CA is trusted.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        os.environ.pop(name, None)
    parser = argparse.ArgumentParser()
    parser.add_argument("--ca", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--issuer-port", type=int, required=True)
    parser.add_argument("cases", nargs="+")
    args = parser.parse_args()
    table = {
        ("autodiscover.contoso.com", 443): args.port,
        ("login.lab.test", 443): args.issuer_port,
        ("localhost", args.issuer_port): args.issuer_port,
    }
    network.install_test_network(table, args.ca)
    network.install_recorder()
    for case in args.cases:
        email, _, password = case.partition(":")
        print(json.dumps(run_case(email, password, args.ca, table)), flush=True)


if __name__ == "__main__":
    main()
