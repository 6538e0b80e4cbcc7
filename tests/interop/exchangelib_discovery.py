#!/usr/bin/env python3
"""Runs exchangelib's own SOAP autodiscovery against running autodiscoverd listeners.

Driven by tests/it/soap.rs (one server) and tests/it/journey.rs (the hybrid lab). Usage:

    exchangelib_discovery.py --ca CA.pem (--port PORT | --map JSON) EMAIL:PASSWORD [...]

``--map`` is a JSON object ``{"host:port": local_port, ...}``: a connection to ``host`` on
``port`` goes to ``127.0.0.1:local_port`` (like curl's ``--connect-to``). ``--port PORT``
is short for ``{"autodiscover.contoso.com:443": PORT}``.

For each case it builds ``exchangelib.Account(..., autodiscover=True)`` with the email as
user name, exactly as an application would, and prints one JSON object per line on stdout:
what exchangelib ended up with (EWS URL, version, primary address) or the exception it
raised, every autodiscover URL it tried, every response it checked (redirect addresses),
every HTTP exchange on the wire (method, URL, authentication scheme, status, Location or
the connection/TLS error; never a header value) and exchangelib's own discovery log lines.

The test network is simulated inside this process only:
  * a mapped host name resolves to 127.0.0.1 and its mapped ports reach the listeners
    (socket.getaddrinfo is patched); every other name or port does not resolve, as on an
    isolated network;
  * exchangelib's DNS checks (an A record before each URL, SRV in step 4) consult the same
    table instead of dnspython: a name has an A record when it is mapped on some port;
  * TLS trusts only the given CA (a requests adapter that verifies against --ca), and
    checks the certificate's names as usual.
Nothing else of exchangelib is changed: discovery steps, auth-type sniffing from the 401,
NTLM (preferred when offered), SOAP request building and response parsing are the
library's own.

Exit codes: 0 ran (results on stdout), 3 a module is missing, 2 bad arguments.
"""

import argparse
import json
import logging
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

PORT_NAMES = {"https": 443, "http": 80}


def parse_map(args):
    """{(host, port): local_port} from --map or --port."""
    if args.map is not None:
        raw = json.loads(args.map)
    elif args.port is not None:
        raw = {"autodiscover.contoso.com:443": args.port}
    else:
        sys.exit("either --map or --port is required")
    table = {}
    for key, local in raw.items():
        host, _, port = key.rpartition(":")
        table[(host.lower().rstrip("."), int(port))] = int(local)
    return table


def service_port(service):
    text = service.decode() if isinstance(service, bytes) else str(service)
    if text.isdigit():
        return int(text)
    return PORT_NAMES.get(text.lower())


def auth_scheme(header):
    """The scheme word of an Authorization header (NTLM, Basic, ...), never its value."""
    return header.split(" ", 1)[0] if header else None


def install_test_network(table, ca_path):
    real_getaddrinfo = socket.getaddrinfo
    known = {host for host, _ in table}

    def getaddrinfo(host, service, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else (host or "")
        name = name.lower().rstrip(".")
        local = table.get((name, service_port(service)))
        if local is not None:
            return real_getaddrinfo("127.0.0.1", local, family, type, proto, flags)
        raise socket.gaierror(socket.EAI_NONAME, f"{name}: Name or service not known")

    socket.getaddrinfo = getaddrinfo

    def ensure_valid_hostname(self, url):
        host = (urlparse(url).hostname or "").lower()
        if host not in known:
            raise TransportError(f"{host!r} has no DNS entry")

    Autodiscovery._ensure_valid_hostname = ensure_valid_hostname
    Autodiscovery._get_srv_records = lambda self, hostname: []

    class TrustTestCa(requests.adapters.HTTPAdapter):
        """Verifies against the test CA and records each exchange (no header values)."""

        def send(self, request, **kwargs):
            kwargs["verify"] = ca_path
            entry = {
                "method": request.method,
                "url": request.url,
                "auth": auth_scheme(request.headers.get("Authorization")),
            }
            record = CURRENT["record"]
            if record is not None:
                record["wire"].append(entry)
            try:
                response = super().send(request, **kwargs)
            except Exception as e:
                entry["error"] = type(e).__name__
                entry["detail"] = str(e)[:400]
                raise
            entry["status"] = response.status_code
            if "location" in response.headers:
                entry["location"] = response.headers["location"]
            return response

    BaseProtocol.HTTP_ADAPTER_CLS = TrustTestCa


class DiscoveryLog(logging.Handler):
    """Keeps exchangelib's discovery log lines (Step 1..6, redirects) for the record."""

    def emit(self, log_record):
        record = CURRENT["record"]
        if record is None:
            return
        message = log_record.getMessage()
        if CURRENT["password"]:
            message = message.replace(CURRENT["password"], "********")
        record["log"].append(message)


def install_log_capture():
    logger = logging.getLogger("exchangelib.autodiscover.discovery")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(DiscoveryLog())


CURRENT = {"record": None, "password": None}


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
        settings = account.ad_response.user_settings or {}
        record["user_settings"] = {
            k: v if isinstance(v, (str, int, bool, type(None))) else str(v)
            for k, v in sorted(settings.items())
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
    parser.add_argument("--port", type=int)
    parser.add_argument("--map", help='JSON {"host:port": local_port}')
    parser.add_argument("--ca", required=True)
    parser.add_argument("cases", nargs="+", help="email:password")
    args = parser.parse_args()
    install_test_network(parse_map(args), args.ca)
    install_recorder()
    install_log_capture()
    for case in args.cases:
        email, _, password = case.partition(":")
        record = {"email": email, "attempts": [], "responses": [], "wire": [], "log": []}
        CURRENT["record"] = record
        CURRENT["password"] = password
        run_case(email, password, record)
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
