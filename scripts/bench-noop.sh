#!/usr/bin/env bash
# B13 (BENCHMARKS.md, "HTTPS sync (issue 12)"): a sync with nothing new either way, end to end
# (process start included), two builds side by side: each build's server on the same home,
# each build's client syncing with its own server, alternating, N runs each; `whoami` beside it
# is the floor (process start and opening the home).
#
#   D must hold two homes with the same events, e.g. B5's bundle imported into both:
#     rhizome bench bundle --events 1000000 --feeds 1000 --dir D
#     for h in server client; do rhizome --home D/$h init --name $h --no-passphrase --no-profile
#       rhizome --home D/$h import D/full.bundle; done
#   RZ_BEFORE=path/to/old/rhizome RZ_AFTER=target/release/rhizome bash scripts/bench-noop.sh D [N]
set -euo pipefail
D=$1
N=${2:-20}
declare -A RZ=([before]=${RZ_BEFORE:?RZ_BEFORE: the older build} [after]=${RZ_AFTER:-target/release/rhizome})
export RHIZOME_TRUST_ON_FIRST_USE=1
unset RHIZOME_HOME RHIZOME_STORE RHIZOME_PASSPHRASE
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(uptime)"
declare -A URL PID
for v in before after; do
    "${RZ[$v]}" --home "$D/server" serve --listen 127.0.0.1:0 >"$D/serve-$v.out" 2>"$D/serve-$v.err" &
    PID[$v]=$!
    for _ in $(seq 600); do
        grep -q '^listening on ' "$D/serve-$v.out" 2>/dev/null && break
        sleep 0.1
    done
    URL[$v]=$(sed -n 's/^listening on \(https:[^ ]*\) instance .*/\1/p' "$D/serve-$v.out")
    "${RZ[$v]}" --home "$D/client" sync "${URL[$v]}" >/dev/null
done
trap 'kill ${PID[before]} ${PID[after]} 2>/dev/null || true' EXIT
for _ in $(seq "$N"); do
    for v in before after; do
        t0=$(date +%s%N)
        "${RZ[$v]}" --home "$D/client" sync "${URL[$v]}" >/dev/null
        t1=$(date +%s%N)
        echo "$v sync $(((t1 - t0) / 1000))"
        t0=$(date +%s%N)
        "${RZ[$v]}" --home "$D/client" whoami >/dev/null
        t1=$(date +%s%N)
        echo "$v whoami $(((t1 - t0) / 1000))"
    done
done | awk '{k = $1 " " $2; v[k] = v[k] " " $3}
    END {for (k in v) {n = split(v[k], a, " "); asort(a)
        printf "%-14s median %.1f ms  min %.1f  max %.1f  (%d runs)\n", k,
            (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) / 1000, a[1] / 1000, a[n] / 1000, n}}' | sort
echo "$(uptime)"
