#!/usr/bin/env bash
# Thunderbird's own account-setup code for tests/it/thunderbird.rs, taken from Debian's
# `thunderbird` package (its JavaScript modules are MPL-2.0, read out of the package's
# omni.ja; nothing of it is committed), and the harness's npm dependencies.
#
#   bash tests/thunderbird/fetch.sh      (.ci/run calls it; run it by hand before
#                                          `cargo test ... thunderbird::` on a new machine)
#
# Out: target/thunderbird/ with modules/ (the .sys.mjs files the harness loads),
# defaults/pref/mailnews.js and accountCreation.ftl (Thunderbird's default preferences and
# English messages), and version.json: the Debian package version, Thunderbird's version and
# the comm-esr source stamp the modules come from. The version is apt's candidate for
# `thunderbird` (bookworm-security carries the current ESR); THUNDERBIRD_DEB_VERSION picks
# another one still in the archive. The .deb is downloaded once per version.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=target/thunderbird
candidate() { apt-cache policy thunderbird 2>/dev/null | awk '/Candidate:/ {print $2}'; }
version=${THUNDERBIRD_DEB_VERSION:-$(candidate)}
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  # No package lists yet (a new machine where .ci/run installed nothing): read them once.
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  version=${THUNDERBIRD_DEB_VERSION:-$(candidate)}
fi
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  echo "tests/thunderbird/fetch.sh: apt knows no thunderbird package" >&2
  exit 1
fi

# npm dependencies of the harness (a DOM parser), exactly as locked.
if [ ! -d tests/thunderbird/node_modules/@xmldom/xmldom ]; then
  (cd tests/thunderbird && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ -f "$out/version.json" ] && grep -qF "\"debian\": \"$version\"" "$out/version.json"; then
  echo "Thunderbird modules: $(tr -d '\n' < "$out/version.json")"
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/thunderbird-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
# apt-get download writes into the current directory; the _apt sandbox user cannot write
# into a private temporary directory, so it downloads as root (a warning, not an error).
(cd "$work" && apt-get download -q "thunderbird=$version" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
deb=$(ls "$work"/thunderbird_*.deb 2>/dev/null | head -1)
if [ -z "$deb" ]; then
  echo "tests/thunderbird/fetch.sh: could not download thunderbird=$version" >&2
  exit 1
fi
dpkg-deb -x "$deb" "$work/root"

rm -rf "$out"
mkdir -p "$out"
python3 - "$work/root" "$out" "$version" <<'PY'
import configparser, json, pathlib, sys, zipfile

root, out, debian = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
app = root / "usr/lib/thunderbird"
omni = zipfile.ZipFile(app / "omni.ja")
wanted = [
    n for n in omni.namelist()
    if n.startswith("modules/accountcreation/") and n.endswith(".sys.mjs")
] + [
    "modules/JXON.sys.mjs",
    "modules/MailStringUtils.sys.mjs",
    "modules/OAuth2Providers.sys.mjs",
    "modules/hostnameUtils.sys.mjs",
    "defaults/pref/mailnews.js",
    "localization/en-US/messenger/accountcreation/accountCreation.ftl",
]
for name in wanted:
    target = out / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(omni.read(name))  # KeyError: the package no longer has it
ini = configparser.ConfigParser()
ini.read(app / "application.ini")
info = {
    "debian": debian,
    "thunderbird": ini["App"]["Version"],
    "source": ini["App"]["SourceRepository"] + "/rev/" + ini["App"]["SourceStamp"],
}
(out / "version.json").write_text(json.dumps(info) + "\n")
print("Thunderbird modules:", json.dumps(info))
PY
