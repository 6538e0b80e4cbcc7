#!/usr/bin/env bash
# The soak run, in one command (not part of CI):   bash benches/soak.sh [--minutes N]
#
# Starts the release server (example configuration, idle timeout 10 s as shipped) on
# loopback and runs `bench_client soak` against it for N minutes (30 by default): keep-alive
# clients sending POX, SOAP, AutodiscoverV2 and full NTLM handshakes over TLS; clients that
# abort mid-handshake and mid-request; idle connections coming and going. Every 10 s it
# sends SIGHUP (a reload) and samples the server's RSS and open file descriptors.
# Fails when
#   - a request fails (anything but the deliberate aborts) or a reload fails;
#   - RSS or the descriptor count grows: the median of the last half of the samples (after
#     a warm-up of a tenth of the run, at least 60 s; 10 s for runs under 5 minutes) is more than 10 % + 4 MiB (RSS) or
#     10 % + 20 (descriptors) above the median of the first half;
#   - 15 s after the load stops (past the idle timeout) more descriptors are open than
#     before it started.
# Samples: target/soak/samples.csv; summary: target/soak/summary.md.
# `--smoke`: the debug build for 1 minute, to check the tooling only.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=benches/lib.sh
source "$root/benches/lib.sh"

minutes=30
profile=release
while [ $# -gt 0 ]; do
  case $1 in
    --minutes) minutes=$2; shift 2 ;;
    --smoke) minutes=1; profile=debug; shift ;;
    *) echo "usage: bash benches/soak.sh [--minutes N] [--smoke]" >&2; exit 2 ;;
  esac
done
duration=$((minutes * 60))

build_and_prepare "$profile" soak
ulimit -n "$(ulimit -Hn)" || true
port=$(free_port)
write_bench_config "$root" "$work" "$port" 10 soak

log "starting the server on 127.0.0.1:$port for a ${minutes}-minute soak"
"$server_bin" serve --config "$work/autodiscoverd.toml" >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
client_pid=""
cleanup() {
  [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null || true
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}
trap cleanup EXIT
wait_ready "https://127.0.0.1:$port/autodiscover/healthcheck.htm"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status"; }
fds() { find "/proc/$server_pid/fd" -mindepth 1 -maxdepth 1 | wc -l; }
fds_before=$(fds)
started=$(date +%s)
echo "seconds,rss_kb,fds" >"$work/samples.csv"
"$client_bin" --addr "127.0.0.1:$port" --ca "$work/cert.pem" soak --duration-secs "$duration" >"$work/client.out" 2>"$work/client.err" &
client_pid=$!
reloads=0
while kill -0 "$client_pid" 2>/dev/null; do
  sleep 10
  kill -0 "$server_pid" 2>/dev/null || { echo "the server died; see $work/server.log"; exit 1; }
  # Samples are of the server under load only.
  kill -0 "$client_pid" 2>/dev/null || break
  echo "$(( $(date +%s) - started )),$(rss_kb),$(fds)" >>"$work/samples.csv"
  kill -HUP "$server_pid"
  reloads=$((reloads + 1))
done
wait "$client_pid" || { echo "bench_client failed: $(cat "$work/client.err")"; exit 1; }
client_pid=""
sleep 15
fds_after=$(fds)
rss_after=$(rss_kb)

python3 - "$work" "$fds_before" "$fds_after" "$rss_after" "$reloads" "$minutes" <<'EOF'
import csv, json, statistics, sys
work, fds_before, fds_after, rss_after, reloads, minutes = sys.argv[1:7]
fds_before, fds_after, rss_after, reloads = int(fds_before), int(fds_after), int(rss_after), int(reloads)
rows = [(int(r["seconds"]), int(r["rss_kb"]), int(r["fds"])) for r in csv.DictReader(open(f"{work}/samples.csv"))]
counts = json.loads(open(f"{work}/client.out").read().strip().splitlines()[-1])
log = open(f"{work}/server.log").read()
reload_failures = log.count("reload refused") + log.count("reload failed")
reloaded = log.count("reloaded configuration")
total = rows[-1][0] if rows else 0
warm = max(60, total // 10) if int(minutes) >= 5 else 10
steady = [r for r in rows if r[0] > warm]
problems = []
def trend(index, name, slack):
    if len(steady) < 4:
        problems.append(f"too few samples after the warm-up to judge {name}")
        return "n/a"
    half = len(steady) // 2
    first = statistics.median(r[index] for r in steady[:half])
    last = statistics.median(r[index] for r in steady[half:])
    if last > first * 1.10 + slack:
        problems.append(f"{name} grew: median {first:.0f} -> {last:.0f}")
    return f"median {first:.0f} in the first half, {last:.0f} in the last half"
rss_trend = trend(1, "RSS (KiB)", 4096)
fd_trend = trend(2, "open descriptors", 20)
failed = {k: v["failed"] for k, v in counts.items() if isinstance(v, dict)}
ok = {k: v["ok"] for k, v in counts.items() if isinstance(v, dict)}
if any(failed.values()):
    problems.append(f"requests failed: {failed}")
if counts["idle_failed"]:
    problems.append(f"{counts['idle_failed']} idle connections could not be opened")
if reload_failures or reloaded < reloads - 1:
    problems.append(f"{reloads} reloads asked, {reloaded} done, {reload_failures} failed (see server.log)")
if fds_after > fds_before:
    problems.append(f"{fds_after} descriptors open 15 s after the load, {fds_before} before it")
if min(ok.values(), default=0) == 0:
    problems.append(f"a request kind was never served: {ok}")
lines = [
    f"Soak: {total} s of load ({minutes} min asked), {reloads} SIGHUPs (every 10 s), {reloaded} reloads done",
    f"Requests served: {ok}; failed: {failed}",
    f"Deliberate aborts: {counts['handshake_aborts']} mid-handshake, {counts['request_aborts']} mid-request; idle connections opened and dropped: {counts['idle_opened']}",
    f"RSS: {rss_trend} (KiB; {len(rows)} samples, warm-up {warm} s); {rss_after} KiB 15 s after the load",
    f"Open descriptors: {fd_trend}; {fds_before} before the load, {fds_after} 15 s after it",
    "Result: " + ("PASS" if not problems else "FAIL: " + "; ".join(problems)),
]
text = "\n".join(lines) + "\n"
open(f"{work}/summary.md", "w").write(text)
print(text)
sys.exit(1 if problems else 0)
EOF
