#!/usr/bin/env bash
# Runs the lab directory in the foreground until Ctrl-C: OpenLDAP slapd with the Active
# Directory/Exchange lab schema and lab.ldif, on ldap://127.0.0.1:3389 (StartTLS available)
# and ldaps://127.0.0.1:3636, data in a temporary directory removed on exit.
# Needs: slapd (Debian: apt-get install slapd ldap-utils) and openssl.
# Ports: LDAP_PORT / LDAPS_PORT. Serve against it with config/autodiscoverd.ldap-example.toml.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
port=${LDAP_PORT:-3389}
tls_port=${LDAPS_PORT:-3636}
slapd=$(command -v slapd || echo /usr/sbin/slapd)
slapadd=$(command -v slapadd || echo /usr/sbin/slapadd)
schema_dir=${SCHEMA_DIR:-/etc/ldap/schema}
[ -x "$slapd" ] || { echo "slapd not found: apt-get install slapd ldap-utils" >&2; exit 1; }
[ -f "$schema_dir/core.schema" ] || { echo "no OpenLDAP schema in $schema_dir (set SCHEMA_DIR)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A self-signed certificate for ldaps/StartTLS (clients: ca_file = this certificate).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$work/slapd.key" -out "$work/slapd.pem" 2>/dev/null
mkdir "$work/data"
sed -e "s#@DIR@#$work#g" -e "s#@SCHEMA_DIR@#$schema_dir#g" -e "s#@LAB_DIR@#$here#g" \
    -e "s#@CERT@#$work/slapd.pem#g" -e "s#@KEY@#$work/slapd.key#g" \
    "$here/slapd.conf.in" > "$work/slapd.conf"
"$slapadd" -q -f "$work/slapd.conf" -l "$here/lab.ldif"
echo "lab directory: ldap://127.0.0.1:$port (StartTLS) and ldaps://127.0.0.1:$tls_port"
echo "certificate (for ca_file): $work/slapd.pem   service account: cn=svc-autodiscover,ou=Service,dc=contoso,dc=com / svc-pw"
echo "Ctrl-C stops it and deletes $work"
"$slapd" -d 256 -h "ldap://127.0.0.1:$port/ ldaps://127.0.0.1:$tls_port/" -f "$work/slapd.conf"
