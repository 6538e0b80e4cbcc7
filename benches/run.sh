#!/usr/bin/env bash
# The end-to-end benchmark, in one command:   bash benches/run.sh
#
# Builds the release server and the load driver, starts the server with a benchmark
# configuration (shipped example directory with argon2 hashes, self-signed certificate,
# the 1 KiB baseline route on), then drives it over real TLS with keep-alive connections
# from separate processes:
#   - wrk: the static 1 KiB baseline, Basic POX settings (with local counts, and with the
#     failed-login counts in a redis-server the script starts), Basic POX redirectAddr,
#     AutodiscoverV2 JSON;
#   - target/release/examples/bench_client: full NTLM handshakes, and 10 000 idle TLS
#     keep-alive connections (each served one authenticated POX request first, like an
#     Outlook client) while the server's RSS is read from /proc/<pid>/status;
#   - nginx (Debian's, OpenSSL) as an external baseline in the same
#     run: its static 1 KiB answer over TLS with the same certificate under the same wrk
#     load, and the same 10 000 idle TLS keep-alive connections (RSS of all its processes).
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

# shellcheck source=benches/lib.sh
source "$root/benches/lib.sh"

require_command wrk wrk
require_command nginx nginx
require_command redis-server redis-server
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

build_and_prepare "$profile" bench
# 10 000 client sockets in one process and as many in the server.
ulimit -n "$(ulimit -Hn)" || true
if [ "$(ulimit -n)" -lt $((idle + 200)) ]; then
  log "ulimit -n is $(ulimit -n): opening only $(( $(ulimit -n) - 200 )) idle connections"
  idle=$(( $(ulimit -n) - 200 ))
fi

port=$(free_port)
nginx_port=$(free_port)
write_bench_config "$root" "$work" "$port" 600 bench

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "starting the server on 127.0.0.1:$port (load average before: $load_before)"
"$server_bin" serve --config "$work/autodiscoverd.toml" >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
client_pid=""
nginx_pid=""
shared_pid=""
redis_pid=""
cleanup() {
  [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null || true
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
  [ -n "$shared_pid" ] && kill "$shared_pid" 2>/dev/null || true
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}
trap cleanup EXIT
base=https://127.0.0.1:$port
wait_ready "$base/autodiscover/healthcheck.htm"

# A second server, the same configuration with its failed-login counts in a redis-server
# ([throttle.shared], as one of a pool of two), to measure what the shared store costs a
# warm authenticated request.
redis_port=$(free_port)
shared_port=$(free_port)
mkdir -p "$work/shared"
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no --dir "$work/shared" >"$work/shared/redis.log" 2>&1 &
redis_pid=$!
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/shared/throttle-secret"
sed "s/127.0.0.1:$port/127.0.0.1:$shared_port/" "$work/autodiscoverd.toml" >"$work/shared/autodiscoverd.toml"
cat >>"$work/shared/autodiscoverd.toml" <<TOML

[throttle.shared]
url = "redis://127.0.0.1:$redis_port/0"
secret_file = "$work/shared/throttle-secret"
instances = 2
TOML
"$server_bin" serve --config "$work/shared/autodiscoverd.toml" >"$work/shared/server.out" 2>"$work/shared/server.log" &
shared_pid=$!
shared_base=https://127.0.0.1:$shared_port
wait_ready "$shared_base/autodiscover/healthcheck.htm"

# nginx with the certificate the server created, answering every request with 1 KiB (the
# same body as /benchmark/static) and keeping connections as long as ours stay.
mkdir -p "$work/nginx"
body=$(printf 'x%.0s' $(seq 1 1024))
cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes auto;
worker_rlimit_nofile $((idle + 1000));
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections $((idle + 500)); }
http {
  access_log off;
  keepalive_timeout 600s;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nginx_port ssl;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { default_type text/plain; return 200 "$body"; }
  }
}
NGINX
"$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' 2>"$work/nginx/stderr.log" &
nginx_pid=$!
nginx_base=https://127.0.0.1:$nginx_port
wait_ready "$nginx_base/benchmark/static"
[ "$(curl -sk "$nginx_base/benchmark/static" | wc -c)" -eq 1024 ] || { echo "nginx check failed: $(cat "$work/nginx/stderr.log" "$work/nginx/error.log" 2>/dev/null)"; exit 1; }

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
answer=$(curl -sk -H "Authorization: $auth" -H 'Content-Type: text/xml' --data-binary "$(request alice@contoso.com)" "$shared_base/autodiscover/autodiscover.xml")
grep -q '<Action>settings</Action>' <<<"$answer" || { echo "POX settings check (shared store) failed: $answer $(cat "$work/shared/server.log")"; exit 1; }
grep -q 'failed-login counts shared through the store' "$work/shared/server.log" || { echo "the second server does not use the store: $(cat "$work/shared/server.log")"; exit 1; }

results=$work/results.jsonl
: >"$results"
run_wrk() { # name path [script] [base URL]
  local name=$1 path=$2 script=${3:-} url=${4:-$base}
  log "wrk: $name ($conns connections, ${duration}s)"
  local args=(-t"$threads" -c"$conns" -d"${duration}s" --latency)
  [ -n "$script" ] && args+=(-s "$script")
  wrk "${args[@]}" "$url$path" >"$work/$name.txt"
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
run_wrk nginx_static /benchmark/static "" "$nginx_base"
run_wrk pox_settings /autodiscover/autodiscover.xml "$work/alice.lua"
run_wrk pox_settings_shared /autodiscover/autodiscover.xml "$work/alice.lua" "$shared_base"
run_wrk pox_redirect_addr /autodiscover/autodiscover.xml "$work/bob.lua"
run_wrk v2_json "/autodiscover/autodiscover.json/v1.0/alice@contoso.com?Protocol=EWS"
log "bench_client: NTLM handshakes ($conns connections, ${duration}s)"
"$client_bin" --addr "127.0.0.1:$port" --ca "$work/cert.pem" ntlm --connections "$conns" --duration-secs "$duration" >>"$results"
run_wrk baseline_again /benchmark/static

# RSS in KiB of a set of processes (nginx: the master and its workers).
rss_kb() { # field pid...
  local field=$1 total=0 pid; shift
  for pid in "$@"; do
    total=$((total + $(awk "/^$field:/ {print \$2}" "/proc/$pid/status")))
  done
  echo "$total"
}
# Opens $idle idle connections to 127.0.0.1:<port> (one POX request each) and records the
# RSS of the given processes before, when the last one is open, and once it stopped falling.
measure_idle() { # scenario port pid...
  local scenario=$1 target_port=$2; shift 2
  local before ready prev now opened failed hwm i
  before=$(rss_kb VmRSS "$@")
  log "bench_client: opening $idle idle keep-alive TLS connections ($scenario)"
  rm -f "$work/idle.stdin"; mkfifo "$work/idle.stdin"
  "$client_bin" --addr "127.0.0.1:$target_port" --ca "$work/cert.pem" idle --pox --connections "$idle" --hold-secs 300 <"$work/idle.stdin" >"$work/$scenario.out" &
  client_pid=$!
  exec {hold}>"$work/idle.stdin"
  for _ in $(seq 1 1200); do
    grep -q '^READY' "$work/$scenario.out" 2>/dev/null && break
    sleep 0.25
  done
  # Our connections park after 1 s of quiet and the allocator returns freed pages within
  # about a second more: read the RSS once it has stopped falling (at most 20 s).
  ready=$(rss_kb VmRSS "$@")
  prev=$ready
  for i in $(seq 1 20); do
    sleep 1
    now=$(rss_kb VmRSS "$@")
    [ "$i" -ge 3 ] && [ "$now" -ge "$prev" ] && break
    prev=$now
  done
  opened=$(awk '/^READY/ {print $2}' "$work/$scenario.out")
  failed=$(awk '/^READY/ {print $3}' "$work/$scenario.out")
  hwm=$(rss_kb VmHWM "$@")
  exec {hold}>&-
  wait "$client_pid" || true
  client_pid=""
  echo "{\"scenario\":\"$scenario\",\"connections\":${opened:-0},\"failed\":${failed:-0},\"rss_before_kb\":$before,\"rss_ready_kb\":$ready,\"rss_idle_kb\":$now,\"vm_hwm_kb\":$hwm}" >>"$results"
}
measure_idle idle "$port" "$server_pid"
# nginx's workers (started before it answered, which was checked above).
read -r -a nginx_workers <<<"$(pgrep -P "$nginx_pid" | tr '\n' ' ')"
measure_idle nginx_idle "$nginx_port" "$nginx_pid" "${nginx_workers[@]}"
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
    "nginx_static": "nginx static 1 KiB, external baseline (Debian nginx, OpenSSL)",
    "baseline_again": "static 1 KiB baseline (last run)",
    "pox_settings": "POX settings, Basic (warm cache)",
    "pox_settings_shared": "POX settings, Basic (warm cache), counts in a shared redis-server",
    "pox_redirect_addr": "POX redirectAddr, Basic (warm cache)",
    "v2_json": "AutodiscoverV2 JSON (anonymous)",
    "ntlm": "NTLM full handshakes (2 requests each)",
}
for key in ["baseline", "nginx_static", "pox_settings", "pox_settings_shared", "pox_redirect_addr", "v2_json", "ntlm", "baseline_again"]:
    r = rows[key]
    rps = r["requests_per_sec"]
    extra = f" ({r['handshakes_per_sec']:.0f} handshakes/s)" if key == "ntlm" else ""
    errors = r.get("errors", 0)
    if r.get("socket_errors"):
        errors = f"{errors}; socket: {r['socket_errors']}"
    lines.append(f"| {names[key]} | {rps:.0f}{extra} | {rps / base:.2f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {errors} |")
idle = rows["idle"]
nginx_idle = rows["nginx_idle"]
mb = lambda kb: kb / 1024
per_conn = lambda r: (r["rss_idle_kb"] - r["rss_before_kb"]) * 1024 / max(r["connections"], 1)
lines += [
    "",
    f"Idle keep-alive TLS connections (one POX request each): {idle['connections']} open ({idle['failed']} failed); server RSS {mb(idle['rss_before_kb']):.1f} MiB before, "
    f"{mb(idle['rss_ready_kb']):.1f} MiB when the last one was open, {mb(idle['rss_idle_kb']):.1f} MiB once they idled (parked) "
    f"(peak RSS of the whole run {mb(idle['vm_hwm_kb']):.1f} MiB)",
    "",
    f"nginx, the same idle connections: {nginx_idle['connections']} open ({nginx_idle['failed']} failed); RSS of its processes {mb(nginx_idle['rss_before_kb']):.1f} MiB before, "
    f"{mb(nginx_idle['rss_ready_kb']):.1f} MiB when the last one was open, {mb(nginx_idle['rss_idle_kb']):.1f} MiB once idle",
    "",
    "| per idle TLS keep-alive connection (RSS growth / connections) | bytes |",
    "| --- | ---: |",
    f"| autodiscoverd | {per_conn(idle):.0f} |",
    f"| nginx | {per_conn(nginx_idle):.0f} |",
    "",
]
pox = rows["pox_settings"]
shared = rows["pox_settings_shared"]
targets = [
    ("authenticated POX with the shared store >= 95% of local counting (same run)",
     shared["requests_per_sec"] / pox["requests_per_sec"] >= 0.95,
     f"{shared['requests_per_sec'] / pox['requests_per_sec']:.2f}"),
    ("authenticated POX (warm cache) >= 70% of the baseline", pox["requests_per_sec"] / base >= 0.70, f"{pox['requests_per_sec'] / base:.2f}"),
    (f"p99 <= 5 ms at {conns} connections (POX settings)", pox["p99_ms"] <= 5.0, f"{pox['p99_ms']:.2f} ms"),
    ("RSS < 50 MB with the idle connections open", idle["rss_idle_kb"] * 1024 < 50e6, f"{idle['rss_idle_kb'] * 1024 / 1e6:.1f} MB"),
    ("<= 10 KB per idle connection", per_conn(idle) <= 10_000, f"{per_conn(idle):.0f} bytes; nginx {per_conn(nginx_idle):.0f}"),
]
for what, ok, value in targets:
    lines.append(f"- {'met' if ok else 'NOT met'}: {what} ({value})")
text = "\n".join(lines) + "\n"
if smoke == "true":
    text = "SMOKE RUN (debug build, tiny load): figures are meaningless\n" + text
open(out, "w").write(text)
print(text)
EOF
