#!/usr/bin/env python3
"""Runs myl-discovery's own mail-settings discovery against running autodiscoverd listeners.

Driven by tests/it/clients.rs. Usage:

    myl_discovery.py --ca CA.pem --map JSON (--autoconfig EMAIL | --exchange EMAIL:PASSWORD) ...

``--map`` is a JSON object ``{"host:port": local_port, ...}``: a connection to ``host`` on
``port`` goes to ``127.0.0.1:local_port``. Prints one JSON object per case on stdout: what
myl-discovery returned (its ``{"imap": {...}, "smtp": {...}}`` dict) or the exception.

``--autoconfig EMAIL`` calls ``myldiscovery.autodiscover(EMAIL)``, the library's entry point:
it reads the domain's ``mailconf=`` TXT record, fetches that URL and parses the Mozilla
autoconfig document. ``--txt URL`` sets the TXT record's URL (https or http).

``--exchange EMAIL:PASSWORD`` calls ``myldiscovery.autodiscover_exchange``: exchangelib's
SOAP Autodiscover finds the mailbox's EWS server, then myl probes that server's IMAP and
SMTP ports (993, 465, 587, 25).

The test network is simulated inside this process only: mapped names resolve to 127.0.0.1
and their mapped ports reach the listeners (socket.getaddrinfo and connect_ex are patched,
every other name or port does not resolve); DNS TXT answers come from ``--txt``; TLS
trusts only the given CA. Nothing of myl-discovery's or exchangelib's logic is changed.

Exit codes: 0 ran, 3 a module is missing, 2 bad arguments.
"""

import argparse
import json
import os
import socket
import sys

try:
    import dns.resolver
    import requests.adapters
    import myldiscovery
    from myldiscovery import discovery
    from exchangelib.autodiscover import Autodiscovery
    from exchangelib.errors import TransportError
    from exchangelib.protocol import BaseProtocol
except ImportError as e:  # pragma: no cover - reported to the Rust driver
    print(f"MISSING_MODULE: {e}", file=sys.stderr)
    sys.exit(3)


def install_test_network(table, ca_path, txt):
    real_getaddrinfo = socket.getaddrinfo
    known = {host for host, _ in table}

    def mapped(host, port):
        name = (host.decode() if isinstance(host, bytes) else (host or "")).lower().rstrip(".")
        return table.get((name, int(port) if str(port).isdigit() else {"https": 443, "http": 80}.get(str(port))))

    def getaddrinfo(host, service, family=0, type=0, proto=0, flags=0):
        local = mapped(host, service)
        if local is not None:
            return real_getaddrinfo("127.0.0.1", local, family, type, proto, flags)
        raise socket.gaierror(socket.EAI_NONAME, f"{host}: Name or service not known")

    socket.getaddrinfo = getaddrinfo
    real_connect_ex = socket.socket.connect_ex

    def connect_ex(self, address):
        host, port = address[0], address[1]
        local = mapped(host, port)
        if local is None:
            return 111  # ECONNREFUSED: nothing listens there on the test network
        return real_connect_ex(self, ("127.0.0.1", local))

    socket.socket.connect_ex = connect_ex

    class Txt:
        def __init__(self, text):
            self.strings = [text.encode()]

    def resolve(name, rdtype, *args, **kwargs):
        if rdtype == "TXT" and txt is not None:
            return [Txt(f"mailconf={txt}")]
        raise dns.resolver.NXDOMAIN()

    discovery.resolve = resolve
    # requests (myl's autoconfig fetch) and exchangelib trust the test CA only.
    os.environ["REQUESTS_CA_BUNDLE"] = ca_path

    def ensure_valid_hostname(self, url):
        from urllib.parse import urlparse

        if (urlparse(url).hostname or "").lower() not in known:
            raise TransportError("no DNS entry")

    Autodiscovery._ensure_valid_hostname = ensure_valid_hostname
    Autodiscovery._get_srv_records = lambda self, hostname: []

    class TrustTestCa(requests.adapters.HTTPAdapter):
        def send(self, request, **kwargs):
            kwargs["verify"] = ca_path
            return super().send(request, **kwargs)

    BaseProtocol.HTTP_ADAPTER_CLS = TrustTestCa


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ca", required=True)
    parser.add_argument("--map", required=True)
    parser.add_argument("--txt")
    parser.add_argument("--autoconfig", action="append", default=[])
    parser.add_argument("--exchange", action="append", default=[])
    args = parser.parse_args()
    table = {}
    for key, local in json.loads(args.map).items():
        host, _, port = key.rpartition(":")
        table[(host.lower(), int(port))] = int(local)
    install_test_network(table, args.ca, args.txt)
    cases = [("autoconfig", e) for e in args.autoconfig] + [("exchange", e) for e in args.exchange]
    for kind, case in cases:
        record = {"kind": kind, "case": case.split(":")[0]}
        try:
            if kind == "autoconfig":
                record["result"] = myldiscovery.autodiscover(case)
            else:
                email, password = case.split(":", 1)
                record["result"] = myldiscovery.autodiscover_exchange(email, password)
        except Exception as e:  # reported, not hidden
            record["error"] = f"{type(e).__name__}: {e}"
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
