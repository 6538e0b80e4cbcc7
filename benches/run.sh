#!/usr/bin/env bash
# The end-to-end benchmark, in one command:   bash benches/run.sh
#
# Builds the release server and the load driver, starts the server with a benchmark
# configuration (shipped example directory with argon2 hashes, self-signed certificate,
# the 1 KiB baseline route on), then drives it over real TLS with keep-alive connections
# from separate processes:
#   - wrk (installed from Debian when missing): the static 1 KiB baseline, Basic POX settings,
#     Basic POX redirectAddr, AutodiscoverV2 JSON;
#   - target/release/examples/bench_client: full NTLM handshakes, and 10 000 idle TLS
#     keep-alive connections (each served one authenticated POX request first, like an
#     Outlook client) while the server's RSS is read from /proc/<pid>/status.
# Prints a Markdown table (also written to target/bench/results.md) with each scenario's
# requests/s as a ratio to the baseline of the same run, and checks the targets.
#
# Environment: BENCH_DURATION (s per scenario, 10), BENCH_CONNECTIONS (64), BENCH_THREADS
# (wrk threads, 2), BENCH_IDLE (idle connections, 10000).
# `bash benches/run.sh --smoke`: the debug build and tiny numbers, to check the tooling only
# (figures meaningless; used by .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

profile=release
duration=${BENCH_DURATION:-10}
conns=${BENCH_CONNECTIONS:-64}
threads=${BENCH_THREADS:-2}
idle=${BENCH_IDLE:-10000}
smoke=false
if [ "${1:-}" = "--smoke" ]; then
  smoke=true; profile=debug; duration=1; conns=4; threads=1; idle=50
fi

log() { printf '==> %s\n' "$*" >&2; }

if ! command -v wrk >/dev/null 2>&1; then
  log "installing wrk"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  lock=(-o DPkg::Lock::Timeout=600)   # wait for another install instead of failing
  $sudo apt-get "${lock[@]}" install -y -qq wrk >/dev/null 2>&1 || { $sudo apt-get "${lock[@]}" update -qq && $sudo apt-get "${lock[@]}" install -y -qq wrk; }
fi

if [ "$profile" = release ]; then
  log "building (release)"
  cargo build --release --locked --bin autodiscoverd --example bench_client
else
  cargo build --locked --bin autodiscoverd --example bench_client
fi
target_dir=${CARGO_TARGET_DIR:-$root/target}
server_bin=$target_dir/$profile/autodiscoverd
client_bin=$target_dir/$profile/examples/bench_client

work=$root/target/bench
rm -rf "$work"; mkdir -p "$work"
# 10 000 client sockets in one process and as many in the server.
ulimit -n "$(ulimit -Hn)" || true
if [ "$(ulimit -n)" -lt $((idle + 200)) ]; then
  log "ulimit -n is $(ulimit -n): opening only $(( $(ulimit -n) - 200 )) idle connections"
  idle=$(( $(ulimit -n) - 200 ))
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$root" "$work" "$port" <<'EOF'
import sys
root, work, port = sys.argv[1:4]
text = open(f"{root}/config/autodiscoverd.example.toml").read()
def sub(old, new):
    global text
    if old not in text:
        raise SystemExit(f"benches/run.sh: `{old}` is no longer in the example config")
    text = text.replace(old, new, 1)
sub('listen = ["127.0.0.1:8443"]', f'listen = ["127.0.0.1:{port}"]')
sub('header_read_timeout_secs = 10', 'header_read_timeout_secs = 600')
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

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "starting the server on 127.0.0.1:$port (load average before: $load_before)"
"$server_bin" serve --config "$work/autodiscoverd.toml" >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
client_pid=""
cleanup() {
  [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null || true
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}
trap cleanup EXIT
base=https://127.0.0.1:$port
for _ in $(seq 1 100); do
  curl -sk -o /dev/null "$base/autodiscover/healthcheck.htm" && break
  sleep 0.1
done

auth="Basic $(printf '%s' 'alice@contoso.com:Alice-Demo-2026!' | base64 -w0)"
request() {
  printf '<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>%s</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>' "$1"
}
for who in alice bob; do
  cat >"$work/$who.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/xml"
wrk.headers["Authorization"] = "$auth"
wrk.body = [[$(request "$who@contoso.com")]]
EOF
  # Warm the verification cache and check the answer before measuring.
  answer=$(curl -sk -H "Authorization: $auth" -H 'Content-Type: text/xml' --data-binary "$(request "$who@contoso.com")" "$base/autodiscover/autodiscover.xml")
  case $who in
    alice) grep -q '<Action>settings</Action>' <<<"$answer" || { echo "POX settings check failed: $answer"; exit 1; } ;;
    bob) grep -q '<Action>redirectAddr</Action>' <<<"$answer" || { echo "POX redirectAddr check failed: $answer"; exit 1; } ;;
  esac
done
curl -sk "$base/autodiscover/autodiscover.json/v1.0/alice@contoso.com?Protocol=EWS" | grep -q '"Url"' || { echo "V2 check failed"; exit 1; }

results=$work/results.jsonl
: >"$results"
run_wrk() { # name path [script]
  local name=$1 path=$2 script=${3:-}
  log "wrk: $name ($conns connections, ${duration}s)"
  local args=(-t"$threads" -c"$conns" -d"${duration}s" --latency)
  [ -n "$script" ] && args+=(-s "$script")
  wrk "${args[@]}" "$base$path" >"$work/$name.txt"
  python3 - "$name" "$work/$name.txt" >>"$results" <<'EOF'
import json, re, sys
name, path = sys.argv[1:3]
text = open(path).read()
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    n, unit = float(m.group(1)), m.group(2)
    return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
sock = re.search(r"Socket errors: (.*)", text)
print(json.dumps({"scenario": name, "requests_per_sec": rps, "p50_ms": p50, "p99_ms": p99,
                  "errors": int(non2xx.group(1)) if non2xx else 0,
                  "socket_errors": sock.group(1) if sock else ""}))
EOF
}

run_wrk baseline /benchmark/static
run_wrk pox_settings /autodiscover/autodiscover.xml "$work/alice.lua"
run_wrk pox_redirect_addr /autodiscover/autodiscover.xml "$work/bob.lua"
run_wrk v2_json "/autodiscover/autodiscover.json/v1.0/alice@contoso.com?Protocol=EWS"
log "bench_client: NTLM handshakes ($conns connections, ${duration}s)"
"$client_bin" --addr "127.0.0.1:$port" ntlm --connections "$conns" --duration-secs "$duration" >>"$results"
run_wrk baseline_again /benchmark/static

rss_kb() { awk "/^$1:/ {print \$2}" "/proc/$server_pid/status"; }
rss_before=$(rss_kb VmRSS)
log "bench_client: opening $idle idle keep-alive TLS connections"
fifo=$work/idle.stdin
mkfifo "$fifo"
"$client_bin" --addr "127.0.0.1:$port" idle --pox --connections "$idle" --hold-secs 300 <"$fifo" >"$work/idle.out" &
client_pid=$!
exec {hold}>"$fifo"
for _ in $(seq 1 1200); do
  grep -q '^READY' "$work/idle.out" 2>/dev/null && break
  sleep 0.25
done
# Connections park after 1 s of quiet and the allocator returns freed pages within about a
# second more: read the RSS once it has stopped falling (at most 20 s).
rss_ready=$(rss_kb VmRSS)
prev=$rss_ready
for i in $(seq 1 20); do
  sleep 1
  now=$(rss_kb VmRSS)
  [ "$i" -ge 3 ] && [ "$now" -ge "$prev" ] && break
  prev=$now
done
rss_idle=$now
opened=$(awk '/^READY/ {print $2}' "$work/idle.out")
idle_failed=$(awk '/^READY/ {print $3}' "$work/idle.out")
hwm=$(rss_kb VmHWM)
exec {hold}>&-
wait "$client_pid" || true
client_pid=""
echo "{\"scenario\":\"idle\",\"connections\":${opened:-0},\"failed\":${idle_failed:-0},\"rss_before_kb\":$rss_before,\"rss_ready_kb\":$rss_ready,\"rss_idle_kb\":$rss_idle,\"vm_hwm_kb\":$hwm}" >>"$results"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$results" "$work/results.md" "$conns" "$duration" "$load_before" "$load_after" "$smoke" <<'EOF'
import json, platform, subprocess, sys, datetime
path, out, conns, duration, load_before, load_after, smoke = sys.argv[1:8]
rows = {r["scenario"]: r for r in map(json.loads, open(path))}
base = (rows["baseline"]["requests_per_sec"] + rows["baseline_again"]["requests_per_sec"]) / 2
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
ncpu = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
lines = [
    f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {ncpu} cores ({cpu}), Linux {platform.release()}",
    f"Load average (1/5/15 min) before: {load_before}; after: {load_after}",
    f"{conns} keep-alive TLS connections, {duration} s per scenario, wrk and bench_client on the same machine",
    "",
    "| scenario | requests/s | ratio to baseline | p50 ms | p99 ms | errors |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
]
names = {
    "baseline": "static 1 KiB baseline (first run)",
    "baseline_again": "static 1 KiB baseline (last run)",
    "pox_settings": "POX settings, Basic (warm cache)",
    "pox_redirect_addr": "POX redirectAddr, Basic (warm cache)",
    "v2_json": "AutodiscoverV2 JSON (anonymous)",
    "ntlm": "NTLM full handshakes (2 requests each)",
}
for key in ["baseline", "pox_settings", "pox_redirect_addr", "v2_json", "ntlm", "baseline_again"]:
    r = rows[key]
    rps = r["requests_per_sec"]
    extra = f" ({r['handshakes_per_sec']:.0f} handshakes/s)" if key == "ntlm" else ""
    errors = r.get("errors", 0)
    if r.get("socket_errors"):
        errors = f"{errors}; socket: {r['socket_errors']}"
    lines.append(f"| {names[key]} | {rps:.0f}{extra} | {rps / base:.2f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {errors} |")
idle = rows["idle"]
mb = lambda kb: kb / 1024
lines += [
    "",
    f"Idle keep-alive TLS connections (one POX request each): {idle['connections']} open ({idle['failed']} failed); server RSS {mb(idle['rss_before_kb']):.1f} MiB before, "
    f"{mb(idle['rss_ready_kb']):.1f} MiB when the last one was open, {mb(idle['rss_idle_kb']):.1f} MiB once they idled (parked) "
    f"(peak RSS of the whole run {mb(idle['vm_hwm_kb']):.1f} MiB)",
    "",
]
pox = rows["pox_settings"]
targets = [
    ("authenticated POX (warm cache) >= 70% of the baseline", pox["requests_per_sec"] / base >= 0.70, f"{pox['requests_per_sec'] / base:.2f}"),
    (f"p99 <= 5 ms at {conns} connections (POX settings)", pox["p99_ms"] <= 5.0, f"{pox['p99_ms']:.2f} ms"),
    ("RSS < 50 MB with the idle connections open", idle["rss_idle_kb"] * 1024 < 50e6, f"{idle['rss_idle_kb'] * 1024 / 1e6:.1f} MB"),
]
for what, ok, value in targets:
    lines.append(f"- {'met' if ok else 'NOT met'}: {what} ({value})")
text = "\n".join(lines) + "\n"
if smoke == "true":
    text = "SMOKE RUN (debug build, tiny load): figures are meaningless\n" + text
open(out, "w").write(text)
print(text)
EOF
