#!/usr/bin/env python3
"""Independent NTLM / Negotiate clients against a running autodiscoverd (tests/it/ntlm.rs).

Modes:
  requests-ntlm       requests + requests-ntlm (HttpNtlmAuth): raw NTLM, MIC, channel bindings
  spnego-negotiate    pyspnego protocol="negotiate" over http.client: SPNEGO with mechListMIC,
                      the server's final mechListMIC is verified, channel bindings sent
  spnego-ntlm         pyspnego protocol="ntlm" with the NTLM scheme
  spnego-kerberos     pyspnego protocol="kerberos" (python-gssapi): a raw Kerberos token under
                      the Negotiate scheme; with an empty --user the ticket cache
                      (KRB5CCNAME) is used, as in spnego-negotiate

Prints one JSON object: {"status": int, "body": str, "complete": bool, "legs": int}; the
pyspnego modes add "type3": {"lm_len", "nt_len", "flags"} of the AUTHENTICATE they sent.

--lm-compat-level N sets pyspnego's LM_COMPAT_LEVEL (as gss-ntlmssp does): 1 sends NTLMv1
with Extended Session Security, 0 plain NTLMv1 (for auth.ntlm_allow_legacy tests).
The host name given with --host is resolved to 127.0.0.1 (like curl --resolve).
"""
import argparse
import base64
import hashlib
import http.client
import json
import os
import socket
import struct
import ssl
import sys


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/autodiscover/autodiscover.xml")
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--body", required=True)
    p.add_argument("--no-cbt", action="store_true")
    p.add_argument("--lm-compat-level", type=int)
    args = p.parse_args()
    if args.lm_compat_level is not None:
        os.environ["LM_COMPAT_LEVEL"] = str(args.lm_compat_level)

    original = socket.getaddrinfo

    def resolve(host, *rest, **kw):
        if host == args.host:
            host = "127.0.0.1"
        return original(host, *rest, **kw)

    socket.getaddrinfo = resolve
    body = args.body.encode("utf-8")
    if args.mode == "requests-ntlm":
        out = with_requests_ntlm(args, body)
    elif args.mode in ("spnego-negotiate", "spnego-ntlm", "spnego-kerberos"):
        out = with_pyspnego(args, body)
    else:
        sys.exit(f"unknown mode {args.mode}")
    print(json.dumps(out))


def with_requests_ntlm(args, body):
    import requests
    from requests_ntlm import HttpNtlmAuth

    url = f"https://{args.host}:{args.port}{args.path}"
    auth = HttpNtlmAuth(args.user, args.password, send_cbt=not args.no_cbt)
    with requests.Session() as s:
        r = s.post(url, data=body, headers={"Content-Type": "text/xml"}, auth=auth, verify=args.cafile)
        # A second request on the same session reuses the authenticated connection.
        r2 = s.post(url, data=body, headers={"Content-Type": "text/xml"}, verify=args.cafile)
    return {"status": r.status_code, "body": r.text, "complete": True, "legs": len(r.history) + 1,
            "second_status": r2.status_code}


def tokens(response, scheme):
    for value in response.headers.get_all("WWW-Authenticate") or []:
        parts = value.strip().split(None, 1)
        if parts and parts[0].lower() == scheme.lower() and len(parts) == 2:
            return base64.b64decode(parts[1])
    return None


def type3_shape(token):
    """Response lengths and flags of the NTLM AUTHENTICATE inside `token` (raw or SPNEGO)."""
    at = token.find(b"NTLMSSP\x00\x03\x00\x00\x00")
    if at < 0 or len(token) < at + 64:
        return None
    lm_len, = struct.unpack_from("<H", token, at + 12)
    nt_len, = struct.unpack_from("<H", token, at + 20)
    flags, = struct.unpack_from("<I", token, at + 60)
    return {"lm_len": lm_len, "nt_len": nt_len, "flags": flags}


def with_pyspnego(args, body):
    import spnego
    from spnego.channel_bindings import GssChannelBindings

    scheme = "NTLM" if args.mode == "spnego-ntlm" else "Negotiate"
    protocol = {"spnego-negotiate": "negotiate", "spnego-ntlm": "ntlm",
                "spnego-kerberos": "kerberos"}[args.mode]
    ctx = ssl.create_default_context(cafile=args.cafile)
    conn = http.client.HTTPSConnection(args.host, args.port, context=ctx)
    conn.connect()
    bindings = None
    if not args.no_cbt:
        cert = conn.sock.getpeercert(True)
        bindings = GssChannelBindings(
            application_data=b"tls-server-end-point:" + hashlib.sha256(cert).digest())
    client = spnego.client(args.user or None, args.password or None, hostname=args.host,
                           service="HTTP", protocol=protocol, channel_bindings=bindings)
    out_token = client.step()
    legs = 0
    type3 = None
    while True:
        legs += 1
        type3 = type3_shape(out_token) or type3
        headers = {"Content-Type": "text/xml",
                   "Authorization": f"{scheme} {base64.b64encode(out_token).decode()}"}
        conn.request("POST", args.path, body=body, headers=headers)
        r = conn.getresponse()
        text = r.read().decode("utf-8", "replace")
        in_token = tokens(r, scheme)
        if r.status == 401 and in_token and not client.complete:
            out_token = client.step(in_token)
            if out_token is None:
                break
            continue
        if r.status == 200 and in_token and not client.complete:
            # Final SPNEGO token: pyspnego checks the server's mechListMIC here.
            client.step(in_token)
        break
    return {"status": r.status, "body": text, "complete": client.complete, "legs": legs,
            "type3": type3}


if __name__ == "__main__":
    main()
