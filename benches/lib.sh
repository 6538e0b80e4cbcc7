# Shared by benches/run.sh and benches/soak.sh (sourced, not run).

log() { printf '==> %s\n' "$*" >&2; }

# The Debian packages a benchmark drives are installed by .ci/run (its package table is the one
# place that installs what the project's checks need); here they are only required.
require_command() { # command package
  if command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; then return 0; fi
  log "\`$1\` is missing: run \`bash .ci/run\` once, or apt-get install $2"
  exit 1
}

# Builds the server and bench_client (release or debug) and sets server_bin, client_bin and
# an empty work directory <target>/<name>.
build_and_prepare() { # profile name
  # BENCH_FEATURES (e.g. kerberos, as .ci/run sets it) reuses a build made with those features
  # instead of compiling the crate once more without them.
  local features=()
  if [ -n "${BENCH_FEATURES:-}" ]; then features=(--features "$BENCH_FEATURES"); fi
  if [ "$1" = release ]; then
    log "building (release)"
    cargo build --release --locked "${features[@]}" --bin autodiscoverd --example bench_client
  else
    cargo build --locked "${features[@]}" --bin autodiscoverd --example bench_client
  fi
  local target_dir=${CARGO_TARGET_DIR:-$root/target}
  server_bin=$target_dir/$1/autodiscoverd
  client_bin=$target_dir/$1/examples/bench_client
  work=$target_dir/$2
  rm -rf "$work"; mkdir -p "$work"
}

# Waits (at most 10 s) until `url` answers over HTTPS.
wait_ready() { # url
  for _ in $(seq 1 100); do
    curl -sk -o /dev/null "$1" && return 0
    sleep 0.1
  done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Writes <work>/autodiscoverd.toml from the example configuration: the shipped directory
# (argon2 hashes), a self-signed certificate created in <work>, only the HTTPS listener on
# 127.0.0.1:<port>, and the given idle timeout; `bench` also turns on the benchmark route
# and room for 20 000 connections.
write_bench_config() { # root work port idle_timeout_secs bench|soak
  python3 - "$@" <<'EOF'
import sys
root, work, port, idle_timeout, kind = sys.argv[1:6]
text = open(f"{root}/config/autodiscoverd.example.toml").read()
def sub(old, new):
    global text
    if old not in text:
        raise SystemExit(f"benches/lib.sh: `{old}` is no longer in the example config")
    text = text.replace(old, new, 1)
sub('listen = ["127.0.0.1:8443"]', f'listen = ["127.0.0.1:{port}"]')
sub('header_read_timeout_secs = 10', f'header_read_timeout_secs = {idle_timeout}')
if kind == "bench":
    sub('max_connections = 10000', 'max_connections = 20000')
    sub('benchmark_static_route = false', 'benchmark_static_route = true')
sub('cert = "../certs/autodiscover.pem"', f'cert = "{work}/cert.pem"')
sub('key = "../certs/autodiscover.key"', f'key = "{work}/key.pem"')
sub('path = "directory.example.toml"', f'path = "{root}/config/directory.example.toml"')
# Only the HTTPS listener: no port-80 redirect, no metrics listener.
start = text.index("[redirect]"); end = text.index("# AutodiscoverV2")
text = text[:start] + text[end:]
start = text.index("[metrics]"); end = text.index("# Failed-login throttling")
text = text[:start] + text[end:]
open(f"{work}/autodiscoverd.toml", "w").write(text)
EOF
}
