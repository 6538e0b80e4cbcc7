#!/usr/bin/env python3
"""Runs exchangelib's own SOAP autodiscovery against a running autodiscoverd.

Driven by tests/it/soap.rs. Usage:

    exchangelib_discovery.py --port PORT --ca CA.pem EMAIL:PASSWORD [EMAIL:PASSWORD ...]

For each case it builds ``exchangelib.Account(..., autodiscover=True)`` with Basic
credentials, exactly as an application would, and prints one JSON object per line on
stdout: what exchangelib ended up with (EWS URL, version, primary address) or the exception
it raised, plus every autodiscover URL it tried and every redirect address it received.

The test network is simulated inside this process only:
  * ``autodiscover.contoso.com`` resolves to 127.0.0.1 and its port 443 is the server's
    ephemeral port (socket.getaddrinfo is patched); every other name does not resolve, as
    on an isolated network (so step 1, ``https://contoso.com/...``, fails like it would for
    an organisation that serves Autodiscover only on ``autodiscover.<domain>``);
  * exchangelib's DNS checks (an A record before each URL, SRV in step 4) consult the same
    table instead of dnspython;
  * TLS trusts only the test CA (a requests adapter that verifies against --ca).
Nothing else of exchangelib is changed: discovery steps, auth-type sniffing from the 401,
SOAP request building and response parsing are the library's own.

Exit codes: 0 ran (results on stdout), 3 a module is missing, 2 bad arguments.
"""

import argparse
import json
import socket
import sys
import traceback
from urllib.parse import urlparse

try:
    import requests.adapters
    from exchangelib import DELEGATE, Account, Credentials
    from exchangelib.autodiscover import Autodiscovery, autodiscover_cache, clear_cache
    from exchangelib.errors import TransportError
    from exchangelib.protocol import BaseProtocol
except ImportError as e:  # pragma: no cover - reported to the Rust driver
    print(f"MISSING_MODULE: {e}", file=sys.stderr)
    sys.exit(3)

SERVED_HOSTS = {"autodiscover.contoso.com"}


def install_test_network(port, ca_path):
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, service, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else (host or "")
        name = name.lower().rstrip(".")
        if name in SERVED_HOSTS and str(service) in ("443", "https"):
            return real_getaddrinfo("127.0.0.1", port, family, type, proto, flags)
        raise socket.gaierror(socket.EAI_NONAME, f"{name}: Name or service not known")

    socket.getaddrinfo = getaddrinfo

    def ensure_valid_hostname(self, url):
        host = (urlparse(url).hostname or "").lower()
        if host not in SERVED_HOSTS:
            raise TransportError(f"{host!r} has no DNS entry")

    Autodiscovery._ensure_valid_hostname = ensure_valid_hostname
    Autodiscovery._get_srv_records = lambda self, hostname: []

    class TrustTestCa(requests.adapters.HTTPAdapter):
        def send(self, request, **kwargs):
            kwargs["verify"] = ca_path
            return super().send(request, **kwargs)

    BaseProtocol.HTTP_ADAPTER_CLS = TrustTestCa


CURRENT = {"record": None}


def install_recorder():
    """Wraps two discovery steps to record what exchangelib saw (behaviour unchanged)."""
    real_attempt = Autodiscovery._attempt_response
    real_step_5 = Autodiscovery._step_5

    def attempt_response(self, url):
        ok, ad = real_attempt(self, url)
        CURRENT["record"]["attempts"].append({"url": url, "valid": ok})
        return ok, ad

    def step_5(self, ad):
        CURRENT["record"]["responses"].append(
            {
                "email": self.email,
                "error_code": ad.error_code,
                "redirect_address": ad.redirect_address,
                "ews_url": ad.ews_url,
            }
        )
        return real_step_5(self, ad)

    Autodiscovery._attempt_response = attempt_response
    Autodiscovery._step_5 = step_5


def run_case(email, password, record):
    clear_cache()
    try:
        account = Account(
            primary_smtp_address=email,
            credentials=Credentials(username=email, password=password),
            autodiscover=True,
            access_type=DELEGATE,
        )
        version = account.protocol.config.version
        record["result"] = {
            "ews_url": account.protocol.service_endpoint,
            "api_version": version.api_version if version else None,
            "build": str(version.build) if version and version.build else None,
            "primary_smtp_address": account.primary_smtp_address,
        }
        with autodiscover_cache:
            record["auth_types"] = sorted(
                {str(p.auth_type) for p in autodiscover_cache._protocols.values()}
            )
    except Exception as e:  # the exception is the result for the migrated mailbox
        record["error"] = {
            "type": type(e).__name__,
            "message": str(e),
            "trace": traceback.format_exc(limit=3),
        }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("cases", nargs="+", help="email:password")
    args = parser.parse_args()
    install_test_network(args.port, args.ca)
    install_recorder()
    for case in args.cases:
        email, _, password = case.partition(":")
        record = {"email": email, "attempts": [], "responses": []}
        CURRENT["record"] = record
        run_case(email, password, record)
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
