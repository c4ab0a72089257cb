#!/usr/bin/env bash
# B12 (BENCHMARKS.md, "HTTPS sync (issue 12)"): B5's bundle imported from the file into a fresh
# home beside the same events pulled over HTTPS on loopback into a fresh home, in one run,
# alternating; the server's peak RSS while serving; a sync with nothing new (median of 20).
#
#   cargo build --release -p rhizome-cli
#   bash scripts/bench-https.sh DIR [EVENTS] [FEEDS] [ROUNDS]     # DIR must not exist
#
# Defaults: 1000000 events, 1000 feeds, 2 rounds. Deletes DIR's big files at the end.
set -euo pipefail
D=$1
EVENTS=${2:-1000000}
FEEDS=${3:-1000}
ROUNDS=${4:-2}
RZ=${RZ:-target/release/rhizome}
export RHIZOME_TRUST_ON_FIRST_USE=1
unset RHIZOME_HOME RHIZOME_STORE RHIZOME_PASSPHRASE

ms() { date +%s%N | awk '{printf "%d", $1 / 1000000}'; }
peak_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(uptime)"
"$RZ" bench bundle --events "$EVENTS" --feeds "$FEEDS" --dir "$D"
# The bundle's events: the manifest's count (the source home holds 100 more, the delta).
N=$("$RZ" bundle inspect "$D/full.bundle" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["event_lines"])')
echo "bundle: $N events, $(du -m "$D/full.bundle" | cut -f1) MiB"

# The server's home: the same file imported.
"$RZ" --home "$D/server" init --name server --no-passphrase --no-profile >/dev/null
"$RZ" --home "$D/server" import "$D/full.bundle" >/dev/null

"$RZ" --home "$D/server" serve --listen 127.0.0.1:0 >"$D/serve.out" 2>"$D/serve.err" &
SERVER=$!
trap 'kill -KILL $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 600); do
    grep -q '^listening on ' "$D/serve.out" 2>/dev/null && break
    sleep 0.1
done
URL=$(sed -n 's/^listening on \(https:[^ ]*\) instance .*/\1/p' "$D/serve.out")
echo "server pid $SERVER at $URL, idle peak RSS $(peak_kib $SERVER) KiB"

for round in $(seq "$ROUNDS"); do
    H=$D/file$round
    "$RZ" --home "$H" init --name file --no-passphrase --no-profile >/dev/null
    t0=$(ms)
    /usr/bin/time -f "  file import: %e s, %P CPU, peak RSS %M KiB" "$RZ" --home "$H" import "$D/full.bundle" >/dev/null
    t1=$(ms)
    echo "round $round: file import $N events in $((t1 - t0)) ms: $((N * 1000 / (t1 - t0))) events/s"
    rm -rf "$H"

    H=$D/pull$round
    "$RZ" --home "$H" init --name pull --no-passphrase --no-profile >/dev/null
    t0=$(ms)
    /usr/bin/time -f "  https pull (client): %e s, %P CPU, peak RSS %M KiB" "$RZ" --home "$H" sync "$URL" --pull-only >/dev/null
    t1=$(ms)
    GOT=$("$RZ" --home "$H" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"])')
    echo "round $round: https pull $GOT events in $((t1 - t0)) ms: $((GOT * 1000 / (t1 - t0))) events/s; server peak RSS so far $(peak_kib $SERVER) KiB"
    [ "$GOT" = "$N" ] || { echo "the pull stored $GOT events, not $N" >&2; exit 1; }
    [ "$round" = "$ROUNDS" ] || rm -rf "$H"
done

# Nothing new: both directions, 20 times, from the last pulled home.
H=$D/pull$ROUNDS
"$RZ" --home "$H" sync "$URL" >/dev/null
for i in $(seq 20); do
    t0=$(date +%s%N)
    "$RZ" --home "$H" sync "$URL" >/dev/null
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000))
done | sort -n | awk '{a[NR]=$1} END {printf "nothing new: median %.1f ms, min %.1f, max %.1f (20 runs)\n", (a[10]+a[11])/2000, a[1]/1000, a[NR]/1000}'
echo "server peak RSS at the end: $(peak_kib $SERVER) KiB"
kill -KILL $SERVER
wait $SERVER 2>/dev/null || true
rm -rf "$D"
