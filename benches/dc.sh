#!/usr/bin/env bash
# The cold-login benchmark against a real Samba AD DC:   bash benches/dc.sh
#
# Runs tests/ad/bench.rs (release build) through tests/ad/run.sh, in the same private
# namespaces as the AD tests: 1,000 mailbox users shaped like alice are created in the lab
# DC, the DC's processes are pinned to CPU 1 and the server and load generators to CPU 0;
# then, for BENCH_DC_SECS (10) each, 16 concurrent workers of
#   - a plain LDAP client (per login: a search for the user as the service account and a
#     bind as the user, on LDAPS connections of its own), and
#   - autodiscoverd, started fresh with the cache off (every Basic POX login is cold),
# and prints both rates and their ratio, over the whole run and over its first second.
# Needs root and what tests/ad/run.sh needs. BENCH_DC_USERS (1000) sets the user count.
# The AD test suite runs the same test as a smoke run (20 users, 1 s, figures meaningless).
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_DC=1
exec bash tests/ad/run.sh --release -- benchmark_cold_logins --nocapture
