#!/usr/bin/env bash
# Runs the Active Directory integration tests (the `ad` test binary) against a real Samba AD
# domain controller, inside private namespaces:
#   network: the DC's ports (88, 389, 636, 3268, ...) are fixed, so every run gets its own
#            loopback and several runs (or a DC on the host) never collide;
#   mount:   a private /run/samba for the DC's winbind socket (its clients look only there);
#   pid:     when the run ends, the DC and everything it started end with it.
#
#   bash tests/ad/run.sh                      # every AD test
#   bash tests/ad/run.sh -- basic_            # test-name filter after `--`
#   bash tests/ad/run.sh --release -- --nocapture
# Arguments before `--` go to `cargo test`, after it to the test binary.
#
# Needs root and Debian's samba, samba-ad-provision, samba-dsdb-modules, samba-vfs-modules,
# winbind, krb5-user and ldb-tools, and libkrb5-dev libclang-dev pkg-config to build with the `kerberos`
# feature (.ci/run installs them). Where they are missing the run is skipped with a
# reason; with CI=true that is a failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

skip() {
  if [ "${CI:-}" = "true" ] || [ "${CI:-}" = "1" ]; then
    echo "tests/ad/run.sh: FAILED: $* (required with CI=true)" >&2
    exit 1
  fi
  echo "*** SKIPPED: the Active Directory tests did not run: $* ***" >&2
  exit 0
}

[ "$(id -u)" -eq 0 ] || skip "they need root (a Samba AD DC in private namespaces)"
for cmd in samba samba-tool ldbsearch ldbmodify kinit ntlm_auth unshare ip; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] ||
    skip "\`$cmd\` is missing (bash .ci/run installs it: samba samba-ad-provision samba-dsdb-modules samba-vfs-modules winbind krb5-user ldb-tools)"
done
# Packages samba only recommends have no command to look for; without samba-vfs-modules the
# DC's provisioning fails on acl_xattr.so.
for pkg in samba-ad-provision samba-dsdb-modules samba-vfs-modules; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
    skip "Debian's $pkg is not installed (bash .ci/run installs it)"
done

# Kerberos is part of what these tests prove (and of config/autodiscoverd.ad-example.toml).
cargo_args=(--features kerberos); test_args=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; test_args=("$@"); break; fi
  cargo_args+=("$1"); shift
done

# Build first, in the host namespace (a first build may need the registry).
cargo test "${cargo_args[@]}" --test ad --no-run

# The tests are #[ignore]d in plain `cargo test` runs (they need this namespace); here they run.
exec unshare --net --mount --pid --fork --mount-proc bash -c '
  set -euo pipefail
  ip link set lo up
  mkdir -p /run/samba && mount -t tmpfs -o mode=0755 tmpfs /run/samba
  export AUTODISCOVERD_AD_NAMESPACE=1
  export AUTODISCOVERD_AD_WORK="$(mktemp -d /tmp/autodiscoverd-ad.XXXXXX)"
  finish() { kill -KILL -1 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$AUTODISCOVERD_AD_WORK"; }
  trap finish EXIT
  n=$1; shift
  cargo test --offline "${@:1:$n}" --test ad -- --include-ignored "${@:$((n + 1))}"
' bash "${#cargo_args[@]}" "${cargo_args[@]}" "${test_args[@]}"
