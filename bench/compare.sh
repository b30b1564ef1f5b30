#!/usr/bin/env bash
# Herald against the peer baselines of ../shared/bench-peers, in one go and
# one system at a time (never concurrently): Herald W1/W2 through
# herald-bench, then the raw-ZeroMQ and peer rows through a private copy of
# bench-peers (its build.sh and run.sh), then Herald's rows again: the
# machine's speed drifts over minutes, and Herald's figures are medians over
# both passes, which surround the peers'. Prints one markdown table with
# Herald's figures and Herald's ratio to each peer, and keeps it in
# bench/results/compare-<stamp>.md (+ latest.md, + the raw figures).
#
#   bench/compare.sh [BUILD_DIR]          (default: build)
#
# Environment:
#   RUNS=3             runs per row and pass; the table shows medians
#   HERALD_PASSES=2    Herald passes: 2 = before and after the peers, 1 = before
#   PEERS="zmq nats redis rabbitmq"   peer systems to run ("" = Herald only)
#   PEERS_SRC=../shared/bench-peers   where the peer harness lives
#   N1=200000 N2=100000               W1 / W2 events per run (both sides)
#   LAT_RATE=5000 LAT_S=6             fixed-rate latency point (both sides)
#   PEER_LAT_MAX_S=2   bench-peers' extra @50% latency point: seconds per run
#                      (not used in the table; kept short)
#   INSTALL=auto       auto: `build.sh --install` (apt, root) when a peer's
#                      server or library is missing; 0: never
#   HERALD_ONLY_ARGS   extra herald-bench flags for every Herald row
#   STALLS=1           watch for machine stalls meanwhile (herald-machine-probe
#                      --watch) and show them for the fixed-rate latency rows;
#                      0: do not
#   RESULTS=bench/results   where the table and the raw figures are kept
#   PAIRS=10           then Herald and raw ZeroMQ in alternating pairs for the
#                      two targets set against raw ZeroMQ (bench/paired.sh:
#                      the ratio within each pair, a median of them); 0: not
#   WAKE_RATE=LAT_RATE the disk alone is run again with this many wake-up
#                      round trips a second between two CPUs beside it
#                      (herald-machine-probe --wakeups); 0: not
#   ONE_CPU=first CPU  the CPU of the latency row run on one CPU (--cpus)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
[[ $BUILD = /* ]] || BUILD="$PWD/$BUILD"
HB="$BUILD/bin/herald-bench"
RUNS=${RUNS:-3}
PEERS=${PEERS-zmq nats redis rabbitmq}
PEERS_SRC=${PEERS_SRC:-$ROOT/../shared/bench-peers}
N1=${N1:-200000}
N2=${N2:-100000}
LAT_RATE=${LAT_RATE:-5000}
DEFAULT_WINDOW=1000 # hd_publisher_new's window (worker/publisher.c)
LAT_S=${LAT_S:-6}
WAKE_RATE=${WAKE_RATE:-$LAT_RATE}
ONE_CPU=${ONE_CPU:-$(awk '/^Cpus_allowed_list/ { split($2, cpus, /[-,]/); print cpus[1] }' /proc/self/status)}
PEER_LAT_MAX_S=${PEER_LAT_MAX_S:-2}
INSTALL=${INSTALL:-auto}
PAIRS=${PAIRS:-10}
RESULTS=${RESULTS:-$ROOT/bench/results}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/herald-compare.XXXXXX")
NOTES=()

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
WATCH_PID=""
cleanup() {
    [[ -n $WATCH_PID ]] && kill "$WATCH_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

[[ -x "$HB" ]] || { echo "no $HB: build first (cmake --build $BUILD)" >&2; exit 1; }
command -v jq >/dev/null || { echo "compare.sh needs jq" >&2; exit 1; }
mkdir -p "$RESULTS"

# ------------------------------------------------------------------ stalls
# A virtual machine held to a CPU quota by its host stops, every CPU at
# once, for milliseconds a quota period; a fixed-rate latency row that runs
# into it has a p99 of the stall's length, whoever is measured. A watcher
# naps 1 ms at a time all through and writes one line a second (time,
# stalls, stalled ms), laid over each latency row's time span below.
STALLS=${STALLS:-1}
STALL_LOG="$WORK/stalls.txt"
SPANS="$WORK/spans.txt"
: >"$SPANS"
if [[ $STALLS = 1 && -x "$BUILD/bin/herald-machine-probe" ]]; then
    "$BUILD/bin/herald-machine-probe" --watch 86400 >"$STALL_LOG" 2>/dev/null &
    WATCH_PID=$!
fi

# ------------------------------------------------------------------ Herald
HERALD_PASSES=${HERALD_PASSES:-2}
# herald NAME herald-bench-flags...: RUNS runs, JSON in $WORK/herald-NAME.PASS.json
herald() {
    local name=$1
    shift
    log "herald $name (pass $PASS): herald-bench $*"
    local started
    started=$(date +%H:%M:%S)
    # shellcheck disable=SC2086 # HERALD_ONLY_ARGS is a list of flags
    if ! "$HB" --runs "$RUNS" --json --quiet "$@" ${HERALD_ONLY_ARGS:-} \
        >"$WORK/herald-$name.$PASS.json" 2>"$WORK/herald-$name.$PASS.log"; then
        NOTES+=("Herald row $name, pass $PASS: herald-bench failed (see below)")
        tail -n 5 "$WORK/herald-$name.$PASS.log" >&2
    fi
    echo "herald $name $started $(date +%H:%M:%S)" >>"$SPANS"
    grep '^|' "$WORK/herald-$name.$PASS.log" | tail -n 1 >&2 || true
}
# Every system starts on a quiet disk: what the one before left in the page
# cache (Herald's logs, the peers' streams, queues and AOF) would otherwise
# be written back under the next one's fsyncs
quiet_disk() {
    sync
}
herald_rows() {
    quiet_disk
herald w1-never --workload w1 --events "$N1" --fsync never
# The raw-ZeroMQ and NATS core publishers keep no window at all; these rows
# give Herald's publisher its library default window (1000) instead of 256
herald w1-default --workload w1 --events "$N1" --fsync never --window "$DEFAULT_WINDOW"
herald w1-always --workload w1 --events "$N1" --fsync always
herald w2-always --workload w2 --events "$N2" --fsync always
herald w2-never --workload w2 --events "$N2" --fsync never
herald w2-default --workload w2 --events "$N2" --fsync never --window "$DEFAULT_WINDOW"
# The same W2 rows with handler threads (hd_worker_set_inline false): the
# workers hand each batch to a handler thread instead of calling the handler
# on their I/O thread, as the library does by default at concurrency 1
herald w2-always-threaded --workload w2 --events "$N2" --fsync always --threaded
herald w2-never-threaded --workload w2 --events "$N2" --fsync never --threaded
herald w2-default-threaded --workload w2 --events "$N2" --fsync never --window "$DEFAULT_WINDOW" --threaded
herald lat-always --workload w2 --fsync always --rate "$LAT_RATE" --duration "$LAT_S"
herald lat-always-threaded --workload w2 --fsync always --rate "$LAT_RATE" --duration "$LAT_S" --threaded
herald lat-never --workload w2 --fsync never --rate "$LAT_RATE" --duration "$LAT_S"
# The --fsync always latency row with every process on one CPU: on a host
# that stops the machine while both CPUs wake often and syncs run, this row
# shows the latency without the stops
herald lat-always-one-cpu --workload w2 --fsync always --rate "$LAT_RATE" --duration "$LAT_S" --cpus "$ONE_CPU"
sync_floor
}
# The disk's share of the --fsync always latency row: commits that cost
# nothing but their write and fdatasync, at the row's rate (herald-machine-probe
# --sync-floor), RUNS times a pass; "event p99 N" lines in $WORK/floor.txt
sync_floor() {
    [[ -x "$BUILD/bin/herald-machine-probe" ]] || return 0
    if [[ ! $LAT_RATE =~ ^[0-9]+$ || ! $LAT_S =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
        NOTES+=("no sync floor: it takes LAT_RATE and LAT_S as plain numbers (seconds), not $LAT_RATE and $LAT_S")
        return 0
    fi
    floor_runs floor.txt "floor plain"
    if [[ $WAKE_RATE =~ ^[0-9]+$ && $WAKE_RATE -gt 0 ]]; then
        floor_runs floor-wake.txt "floor wake" --wakeups "$WAKE_RATE"
    elif [[ $WAKE_RATE != 0 ]]; then
        NOTES+=("no sync floor with wake-ups: WAKE_RATE must be a whole number, not $WAKE_RATE")
    fi
}
# floor_runs FILE SPAN [--wakeups N]: RUNS sync-floor runs appended to
# $WORK/FILE, their time span recorded for the stall table
floor_runs() {
    local file=$1 span=$2 run started
    shift 2
    for ((run = 1; run <= RUNS; run++)); do
        log "sync floor (pass $PASS, run $run): herald-machine-probe --sync-floor $LAT_RATE $LAT_S $*"
        started=$(date +%H:%M:%S)
        if ! "$BUILD/bin/herald-machine-probe" --sync-floor "$LAT_RATE" "$LAT_S" "$@" --dir "$WORK" \
            >>"$WORK/$file" 2>"$WORK/floor.err"; then
            NOTES+=("herald-machine-probe --sync-floor $* failed (pass $PASS): $(grep -v '^ ' "$WORK/floor.err" | head -n 1)")
            return 0
        fi
        echo "$span $started $(date +%H:%M:%S)" >>"$SPANS"
    done
}
PASS=1
herald_rows

# hj NAME WL FIELD: a Herald row's figure over the runs of every pass ("" when
# none): the median of a rate, percentile or CPU figure; the sum of lost and
# dupes; failed_runs counts runs that did not complete. FIELD is a per-run
# key of herald-bench's JSON (pub_rate, recv_rate, p50_us, ...).
hj() {
    local files=("$WORK/herald-$1".*.json)
    [[ -f ${files[0]} ]] || return 0
    jq -rs --arg wl "$2" --arg f "$3" '
        [.[] | .[$wl].runs // [] | .[]] as $all | [$all[] | select(.ok)] as $ok |
        if $f == "failed_runs" then ($all | map(select(.ok | not)) | length)
        elif $f == "lost" or $f == "dupes" then ($ok | map(.[$f]) | add // empty)
        else ($ok | map(.[$f]) | sort |
              if length == 0 then empty
              elif length % 2 == 1 then .[(length - 1) / 2]
              else (.[length / 2 - 1] + .[length / 2]) / 2 end)
        end' "${files[@]}" 2>/dev/null || true
}

# median: the median of the numbers on stdin, one a line ("" when none)
median() {
    sort -g | awk '{ v[n++] = $1 }
        END { if (n) printf "%.1f", (n % 2) ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2 }'
}

# floor FIELD [FILE]: the median over the sync-floor runs in FILE (default
# floor.txt) of the event FIELD (p50, p99, p99.9) from lines "...; event p50
# N p99 N p99.9 N us", or of the wake-up round trips a second made beside
# them (FIELD "beside")
floor() {
    local file="$WORK/${2:-floor.txt}"
    [[ -s "$file" ]] || return 0
    awk -v f="$1" '{ for (i = 1; i < NF; i++) if ($i == "event") { event = i; break }
                     for (i = event; i < NF; i++) if ($i == f) { print $(i + 1); break } }' "$file" |
        median
}

# ------------------------------------------------------------------ peers
RAW=""
if [[ -n "${PEERS// /}" ]]; then
    if [[ ! -d "$PEERS_SRC" ]]; then
        NOTES+=("no peer harness at $PEERS_SRC: peer rows skipped")
        PEERS=""
    fi
fi
if [[ -n "${PEERS// /}" ]]; then
    P="$WORK/bench-peers"
    cp -r "$PEERS_SRC" "$P"
    rm -rf "$P/build" "$P/results"
    has_server() {
        case $1 in
            zmq) return 0 ;;
            nats) command -v nats-server >/dev/null ;;
            redis) command -v redis-server >/dev/null ;;
            rabbitmq) [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] ;;
            *) return 1 ;;
        esac
    }
    need_install=0
    for s in $PEERS; do has_server "$s" || need_install=1; done
    log "building bench-peers in $P"
    if ! (cd "$P" && ./build.sh) >"$WORK/peers-build.log" 2>&1; then need_install=1; fi
    if [[ $need_install = 1 && $INSTALL = auto ]]; then
        if [[ $(id -u) = 0 ]]; then
            log "installing the peers' libraries and servers (apt-get, takes a while)"
            (cd "$P" && ./build.sh --install) >"$WORK/peers-build.log" 2>&1 ||
                NOTES+=("bench-peers ./build.sh --install failed: $(tail -n 1 "$WORK/peers-build.log")")
        else
            NOTES+=("peer servers/libraries missing and not root: run ../shared/bench-peers/build.sh --install as root")
        fi
    fi
    systems=()
    for s in $PEERS; do
        bin=""
        case $s in zmq) bin=zmq_bench ;; nats) bin=nats_bench ;; redis) bin=redis_bench ;; rabbitmq) bin=rmq_bench ;; esac
        if [[ -z $bin ]]; then
            NOTES+=("unknown peer system $s: skipped")
        elif ! has_server "$s" || [[ ! -x "$P/build/$bin" ]]; then
            NOTES+=("$s: server or client not available: its rows are skipped")
        else
            systems+=("$s")
        fi
    done
    if [[ ${#systems[@]} -gt 0 ]]; then
        log "bench-peers run.sh ${systems[*]} (RUNS=$RUNS; one system at a time, ~3-5 min each)"
        quiet_disk
        (cd "$P" && RUNS=$RUNS N1=$N1 N2=$N2 LAT_FIXED_RATE=$LAT_RATE LAT_FIXED_S=$LAT_S \
            LAT_MAX_S=$PEER_LAT_MAX_S NATS_PUSH_ROWS=0 WORK="$WORK/peers-work" \
            ./run.sh "${systems[@]}") >"$WORK/peers-run.log" 2>&1 ||
            NOTES+=("bench-peers run.sh exited non-zero (see $RESULTS/compare-$STAMP-raw.txt)")
        RAW=$(find "$P/results" -name "raw-*.txt" 2>/dev/null | head -n 1)
    fi
fi

if [[ $HERALD_PASSES -ge 2 ]]; then
    PASS=2
    herald_rows
fi

# The targets set against raw ZeroMQ once more, in pairs: the rows above
# take each side's median over runs minutes apart, and this host's slow
# and fast phases last that long
PAIRED=""
if [[ $PAIRS != 0 && " $PEERS " == *" zmq "* ]]; then
    log "paired with raw ZeroMQ: bench/paired.sh (PAIRS=$PAIRS)"
    quiet_disk
    if PAIRS=$PAIRS N1=$N1 N2=$N2 WINDOW=$DEFAULT_WINDOW PEERS_SRC=$PEERS_SRC \
        "$ROOT/bench/paired.sh" "$BUILD" >"$WORK/paired.md" 2>"$WORK/paired.log"; then
        PAIRED="$WORK/paired.md"
    else
        NOTES+=("bench/paired.sh failed: $(tail -n 1 "$WORK/paired.log")")
    fi
fi
# The watcher writes a second's line once it is over: wait (at most 3 s)
# for the line of the second the last row ended in before stopping it
if [[ -n $WATCH_PID ]]; then
    last_end=$(awk 'END { print $NF }' "$SPANS")
    for ((tries = 0; tries < 30; tries++)); do
        [[ -z $last_end || ! "$(awk 'END { print $1 }' "$STALL_LOG")" < "$last_end" ]] && break
        sleep 0.1
    done
    kill "$WATCH_PID" 2>/dev/null
fi
WATCH_PID=""

# The peers' runs as spans too: run.sh logs "[HH:MM:SS] SYS CASE PHASE #N: ..."
# as each run ends, so a run spans from the line before it to its own
if [[ -f "$WORK/peers-run.log" ]]; then
    awk 'match($0, /^\[[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\]/) {
             at = substr($0, 2, 8)
             if ($3 != "" && $4 ~ /^(tp|lat|fix)$/ && $5 ~ /^#/ && prev != "")
                 print "peer", $2 "/" $3 "/" $4, prev, at
             prev = at }' "$WORK/peers-run.log" >>"$SPANS"
fi

# stalls WHO NAME: "stalled ms a second / stalls a second" over the spans of
# that row ("" when no span or no watch): the watcher's seconds that end
# inside a span; a span may cross midnight
stalls() {
    [[ -s "$STALL_LOG" ]] || return 0
    awk -v who="$1" -v name="$2" '
        function sec(hms) { split(hms, p, ":"); return p[1] * 3600 + p[2] * 60 + p[3] }
        BEGIN { n = 0 }
        FNR == NR { if ($1 == who && $2 == name) { from[n] = sec($3); to[n] = sec($4); n++ } next }
        { t = sec($1)
          for (i = 0; i < n; i++) {
              lo = from[i]; hi = to[i]; tt = t
              if (hi < lo) { hi += 86400; if (tt < lo) tt += 86400 }
              if (tt > lo && tt <= hi) { secs++; count += $3; ms += $5; break } } }
        END { if (secs) printf "%.1f ms / %.1f", ms / secs, count / secs }' "$SPANS" "$STALL_LOG"
}

# peer SYS CASE PHASE KEY: median over runs ("" when absent)
peer() {
    [[ -n "$RAW" && -f "$RAW" ]] || return 0
    awk -v s="$1" -v c="$2" -v p="$3" -v k="$4" '
        index($0, "sys=" s " ") == 1 && index($0, " case=" c " ") && index($0, " phase=" p " ") &&
        index($0, " clients_ok=1 ") {
            for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) printf "%.17g\n", kv[2] } }' "$RAW" |
        median
}

# ------------------------------------------------------------------ table
num() { [[ -z "$1" ]] && { echo "-"; return; }; printf "%'.0f" "$1"; }
dec() { [[ -z "$1" ]] && { echo "-"; return; }; printf "%.3f" "$1"; }
pct() { [[ -z "$1" || "$1" = null ]] && { echo "-"; return; }; awk -v v="$1" 'BEGIN { printf "%.0f %%", v * 100 }'; }
# ratio HERALD PEER: Herald / peer
ratio() {
    [[ -z "$1" || -z "$2" ]] && { echo "-"; return; }
    awk -v h="$1" -v p="$2" 'BEGIN { if (p == 0) print "-"; else printf "%.2f×", h / p }'
}
# verdict HERALD PEER OP FACTOR: does Herald OP FACTOR × peer hold (OP: ge, gt, lt)
verdict() {
    [[ -z "$1" || -z "$2" ]] && { echo "n/a"; return; }
    awk -v h="$1" -v p="$2" -v op="$3" -v f="$4" 'BEGIN {
        ok = (op == "ge") ? h >= f * p : (op == "gt") ? h > f * p : h < f * p
        print ok ? "**met**" : "missed" }'
}

H_W1=$(hj w1-never w1 recv_rate)
H_W2A=$(hj w2-always w2 recv_rate)
H_W2N=$(hj w2-never w2 recv_rate)
H_W1D=$(hj w1-default w1 recv_rate)
H_W2D=$(hj w2-default w2 recv_rate)
H_LATA=$(hj lat-always w2 p99_us)
H_W2AT=$(hj w2-always-threaded w2 recv_rate)
H_W2NT=$(hj w2-never-threaded w2 recv_rate)
H_W2DT=$(hj w2-default-threaded w2 recv_rate)
H_LATAT=$(hj lat-always-threaded w2 p99_us)
H_LATN=$(hj lat-never w2 p99_us)
H_LAT1=$(hj lat-always-one-cpu w2 p99_us)
F_P50=$(floor p50)
F_P99=$(floor p99)
FW_P50=$(floor p50 floor-wake.txt)
FW_P99=$(floor p99 floor-wake.txt)
FW_TRIPS=$(floor beside floor-wake.txt)

Z_W1=$(peer zmq w1-hwm0 tp sub_rate_min)
N_W1=$(peer nats w1-core tp sub_rate_min)
R_W1=$(peer redis w1-pubsub tp sub_rate_min)
Z_W2=$(peer zmq w2-mem tp proc_rate)
RA_W2=$(peer redis w2-aof-always tp proc_rate)
JS_W2=$(peer nats w2-js-file tp proc_rate)
MQ_W2=$(peer rabbitmq w2-durable tp proc_rate)
Z_LAT=$(peer zmq w2-mem fix lat_p99_us)
RA_LAT=$(peer redis w2-aof-always fix lat_p99_us)
JS_LAT=$(peer nats w2-js-file fix lat_p99_us)
MQ_LAT=$(peer rabbitmq w2-durable fix lat_p99_us)

TABLE="$RESULTS/compare-$STAMP.md"
{
    echo "## Herald vs peers — $(date -u +%Y-%m-%d) UTC, run $STAMP; Herald: median of $RUNS runs × $HERALD_PASSES passes (before and after the peers), peers: median of $RUNS runs"
    echo
    echo "- host: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu 2>/dev/null | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}'), kernel $(uname -r)"
    echo "- Herald $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'), libzmq $(dpkg-query -W -f='${Version}' libzmq5 2>/dev/null || echo '?'), czmq $(dpkg-query -W -f='${Version}' libczmq4 2>/dev/null || echo '?'); peers: $(if [[ -n "$RAW" ]]; then echo "bench-peers run.sh ${systems[*]}"; else echo none; fi)"
    echo "- W1: 1 pub → broker → 2 subs, $N1 × 128 B; W2: 1 pub → broker → 4 workers, one ACK per event, $N2 × 128 B; latency: W2 paced at $LAT_RATE/s for $LAT_S s, scheduled send → first receipt"
    echo
    echo "### Herald (herald-bench)"
    echo
    echo "| row | pub msg/s | recv msg/s | lost | dupes | p50 µs | p99 µs | p99.9 µs | CPU µs/event | broker busy | failed runs |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for row in "w1-never|w1|W1 fan-out, --fsync never (recv: slower sub)" \
        "w1-always|w1|W1 fan-out, --fsync always (recv: slower sub)" \
        "w2-always|w2|W2 work queue, --fsync always (processed)" \
        "w2-never|w2|W2 work queue, --fsync never (processed)" \
        "w1-default|w1|W1 fan-out, --fsync never, window $DEFAULT_WINDOW (recv: slower sub)" \
        "w2-default|w2|W2 work queue, --fsync never, window $DEFAULT_WINDOW (processed)" \
        "w2-always-threaded|w2|W2 work queue, --fsync always, handler threads (processed)" \
        "w2-never-threaded|w2|W2 work queue, --fsync never, handler threads (processed)" \
        "w2-default-threaded|w2|W2 work queue, --fsync never, window $DEFAULT_WINDOW, handler threads (processed)" \
        "lat-always|w2|W2 @ $LAT_RATE/s, --fsync always" \
        "lat-always-threaded|w2|W2 @ $LAT_RATE/s, --fsync always, handler threads" \
        "lat-never|w2|W2 @ $LAT_RATE/s, --fsync never" \
        "lat-always-one-cpu|w2|W2 @ $LAT_RATE/s, --fsync always, every process on CPU $ONE_CPU"; do
        IFS='|' read -r name wl label <<<"$row"
        echo "| $label | $(num "$(hj "$name" "$wl" pub_rate)") | $(num "$(hj "$name" "$wl" recv_rate)") | $(hj "$name" "$wl" lost) | $(hj "$name" "$wl" dupes) | $(num "$(hj "$name" "$wl" p50_us)") | $(num "$(hj "$name" "$wl" p99_us)") | $(num "$(hj "$name" "$wl" p999_us)") | $(dec "$(hj "$name" "$wl" cpu_us_per_event)") | $(pct "$(hj "$name" "$wl" broker_busy)") | $(hj "$name" "$wl" failed_runs) |"
    done
    echo
    echo "### Ratios (same session; throughput: higher is better; latency: Herald / peer, lower is better)"
    echo
    echo "| target (issue 4) | Herald | peer row | peer | Herald / peer | verdict |"
    echo "|---|---:|---|---:|---:|---|"
    echo "| W2 --fsync always ≥ 1.5× Redis AOF always | $(num "$H_W2A") | Redis Streams, appendfsync always | $(num "$RA_W2") | $(ratio "$H_W2A" "$RA_W2") | $(verdict "$H_W2A" "$RA_W2" ge 1.5) |"
    echo "| W2 --fsync always ≥ 4× JetStream file | $(num "$H_W2A") | NATS JetStream file, pull | $(num "$JS_W2") | $(ratio "$H_W2A" "$JS_W2") | $(verdict "$H_W2A" "$JS_W2" ge 4) |"
    echo "| same, handler threads | $(num "$H_W2AT") | Redis Streams, appendfsync always | $(num "$RA_W2") | $(ratio "$H_W2AT" "$RA_W2") | $(verdict "$H_W2AT" "$RA_W2" ge 1.5) |"
    echo "| same, handler threads, vs JetStream file (≥ 4×) | $(num "$H_W2AT") | NATS JetStream file, pull | $(num "$JS_W2") | $(ratio "$H_W2AT" "$JS_W2") | $(verdict "$H_W2AT" "$JS_W2" ge 4) |"
    echo "| (no target) W2 --fsync always vs RabbitMQ durable | $(num "$H_W2A") | RabbitMQ durable, confirms | $(num "$MQ_W2") | $(ratio "$H_W2A" "$MQ_W2") | - |"
    echo "| W2 --fsync never ≥ 80 % of raw ZeroMQ | $(num "$H_W2N") | raw ZeroMQ ROUTER/ROUTER | $(num "$Z_W2") | $(ratio "$H_W2N" "$Z_W2") | $(verdict "$H_W2N" "$Z_W2" ge 0.8) |"
    echo "| W2 --fsync never ≥ 80 % of raw ZeroMQ, window $DEFAULT_WINDOW | $(num "$H_W2D") | raw ZeroMQ ROUTER/ROUTER | $(num "$Z_W2") | $(ratio "$H_W2D" "$Z_W2") | $(verdict "$H_W2D" "$Z_W2" ge 0.8) |"
    echo "| W2 --fsync never ≥ 80 % of raw ZeroMQ, handler threads | $(num "$H_W2NT") | raw ZeroMQ ROUTER/ROUTER | $(num "$Z_W2") | $(ratio "$H_W2NT" "$Z_W2") | $(verdict "$H_W2NT" "$Z_W2" ge 0.8) |"
    echo "| W2 --fsync never ≥ 80 % of raw ZeroMQ, window $DEFAULT_WINDOW, handler threads | $(num "$H_W2DT") | raw ZeroMQ ROUTER/ROUTER | $(num "$Z_W2") | $(ratio "$H_W2DT" "$Z_W2") | $(verdict "$H_W2DT" "$Z_W2" ge 0.8) |"
    echo "| W1 per sub ≥ 90 % of raw ZeroMQ HWM 0 | $(num "$H_W1") | raw ZeroMQ XSUB/XPUB, HWM 0 | $(num "$Z_W1") | $(ratio "$H_W1" "$Z_W1") | $(verdict "$H_W1" "$Z_W1" ge 0.9) |"
    echo "| W1 per sub ≥ 90 % of raw ZeroMQ HWM 0, window $DEFAULT_WINDOW | $(num "$H_W1D") | raw ZeroMQ XSUB/XPUB, HWM 0 | $(num "$Z_W1") | $(ratio "$H_W1D" "$Z_W1") | $(verdict "$H_W1D" "$Z_W1" ge 0.9) |"
    echo "| W1 per sub > NATS core | $(num "$H_W1") | NATS core pub/sub | $(num "$N_W1") | $(ratio "$H_W1" "$N_W1") | $(verdict "$H_W1" "$N_W1" gt 1) |"
    echo "| W1 per sub > NATS core, window $DEFAULT_WINDOW | $(num "$H_W1D") | NATS core pub/sub | $(num "$N_W1") | $(ratio "$H_W1D" "$N_W1") | $(verdict "$H_W1D" "$N_W1" gt 1) |"
    echo "| (no target) W1 per sub vs Redis pub/sub | $(num "$H_W1") | Redis PUBLISH/SUBSCRIBE | $(num "$R_W1") | $(ratio "$H_W1" "$R_W1") | - |"
    echo "| latency p99 @ $LAT_RATE/s, --fsync always < 1 500 µs | $(num "$H_LATA") µs | (absolute target) | 1 500 µs | $(ratio "$H_LATA" 1500) | $(verdict "$H_LATA" 1500 lt 1) |"
    echo "| same, handler threads | $(num "$H_LATAT") µs | (absolute target) | 1 500 µs | $(ratio "$H_LATAT" 1500) | $(verdict "$H_LATAT" 1500 lt 1) |"
    echo "| (no target) same, every process on CPU $ONE_CPU | $(num "$H_LAT1") µs | (absolute target) | 1 500 µs | $(ratio "$H_LAT1" 1500) | - |"
    echo "| (no target) the disk alone @ $LAT_RATE/s: commits that cost nothing but write + fdatasync, p99 | $(num "$F_P99") µs | (absolute target) | 1 500 µs | $(ratio "$F_P99" 1500) | - |"
    echo "| (no target) the disk alone @ $LAT_RATE/s, $WAKE_RATE wake-up round trips/s between two CPUs beside it, p99 | $(num "$FW_P99") µs | (absolute target) | 1 500 µs | $(ratio "$FW_P99" 1500) | - |"
    echo "| p99 @ $LAT_RATE/s vs JetStream file | $(num "$H_LATA") µs | NATS JetStream file, pull | $(num "$JS_LAT") µs | $(ratio "$H_LATA" "$JS_LAT") | - |"
    echo "| p99 @ $LAT_RATE/s vs Redis AOF always | $(num "$H_LATA") µs | Redis Streams, appendfsync always | $(num "$RA_LAT") µs | $(ratio "$H_LATA" "$RA_LAT") | - |"
    echo "| p99 @ $LAT_RATE/s vs RabbitMQ durable | $(num "$H_LATA") µs | RabbitMQ durable | $(num "$MQ_LAT") µs | $(ratio "$H_LATA" "$MQ_LAT") | - |"
    echo "| p99 @ $LAT_RATE/s, --fsync never vs raw ZeroMQ | $(num "$H_LATN") µs | raw ZeroMQ ROUTER/ROUTER | $(num "$Z_LAT") µs | $(ratio "$H_LATN" "$Z_LAT") | - |"
    if [[ -n "$PAIRED" ]]; then
        echo
        cat "$PAIRED"
    fi
    if [[ -s "$STALL_LOG" ]]; then
        echo
        echo "### Machine stalls during the fixed-rate latency rows"
        echo
        echo "A watcher slept 1 ms at a time through the whole comparison; a stall is a sleep that ended over"
        echo "3 ms late (herald-machine-probe --watch). Each figure covers the seconds of that row's runs"
        echo "(Herald: both passes; peers: each run from the log line before it)."
        echo
        echo "| row | stalled ms a second / stalls a second | p99 µs |"
        echo "|---|---:|---:|"
        echo "| Herald W2 @ $LAT_RATE/s, --fsync always | $(stalls herald lat-always) | $(num "$H_LATA") |"
        echo "| Herald W2 @ $LAT_RATE/s, --fsync always, handler threads | $(stalls herald lat-always-threaded) | $(num "$H_LATAT") |"
        echo "| Herald W2 @ $LAT_RATE/s, --fsync never | $(stalls herald lat-never) | $(num "$H_LATN") |"
        echo "| Herald W2 @ $LAT_RATE/s, --fsync always, every process on CPU $ONE_CPU | $(stalls herald lat-always-one-cpu) | $(num "$H_LAT1") |"
        echo "| the disk alone @ $LAT_RATE/s (no broker) | $(stalls floor plain) | $(num "$F_P99") |"
        echo "| the disk alone @ $LAT_RATE/s, $WAKE_RATE wake-up round trips/s beside it (no broker) | $(stalls floor wake) | $(num "$FW_P99") |"
        echo "| raw ZeroMQ ROUTER/ROUTER @ $LAT_RATE/s | $(stalls peer zmq/w2-mem/fix) | $(num "$Z_LAT") |"
        echo "| NATS JetStream file, pull @ $LAT_RATE/s | $(stalls peer nats/w2-js-file/fix) | $(num "$JS_LAT") |"
        echo "| Redis Streams, appendfsync always @ $LAT_RATE/s | $(stalls peer redis/w2-aof-always/fix) | $(num "$RA_LAT") |"
        echo "| RabbitMQ durable @ $LAT_RATE/s | $(stalls peer rabbitmq/w2-durable/fix) | $(num "$MQ_LAT") |"
    fi
    echo
    if [[ -n $F_P99 ]]; then
        echo "The disk alone (herald-machine-probe --sync-floor $LAT_RATE $LAT_S after Herald's latency rows,"
        echo "$RUNS per Herald pass, nothing else running): events arrive evenly; commits run back to back,"
        echo "each writing what arrived before it began and calling fdatasync; an event waits from its"
        echo "arrival to the end of its commit. Median over the runs: p50 $(num "$F_P50") µs, p99 $(num "$F_P99") µs:"
        echo "the --fsync always row of a broker that cost nothing but its syncs, before any network hop."
        echo
    fi
    if [[ -n $FW_P99 ]]; then
        echo "The disk alone again with wake-ups beside it (--wakeups $WAKE_RATE: a thread on one CPU wakes a"
        echo "thread on another and waits for its answer, $(num "$FW_TRIPS") round trips/s made; no broker, no"
        echo "network): p50 $(num "$FW_P50") µs, p99 $(num "$FW_P99") µs. Herald's latency row wakes threads on both"
        echo "CPUs several times an event; where this p99 is far above the disk alone's, the host stops the"
        echo "machine under syncs and wake-ups together, and any broker's row with both pays it. The row"
        echo "with every process on CPU $ONE_CPU has no second CPU to wake."
        echo
    fi
    echo "Herald W1 runs with --fsync never because the peers' W1 is non-durable (Herald still writes"
    echo "every event to its log); the --fsync always row is shown above. Herald's W1 pub msg/s counts"
    echo "confirmed publishes (window 256 unless the row says otherwise), the peers' counts sends."
    echo "Window: Redis, JetStream and RabbitMQ publishers keep 256 publishes unconfirmed, so the durable"
    echo "rows give Herald 256; the raw-ZeroMQ and NATS core publishers keep no window at all (nothing is"
    echo "confirmed), so the non-durable targets are shown with 256 and with Herald's library default"
    echo "($DEFAULT_WINDOW). Handlers: at concurrency 1 (the benchmark's workers) the worker library"
    echo "calls the handler on its I/O thread by default, as the peers' workers do on their one"
    echo "thread, and a guard thread heartbeats during long calls; the handler-thread rows hand each"
    echo "batch to a handler thread instead (hd_worker_set_inline false, the default at concurrency > 1)."
    echo "\"-\" = row not run or failed."
    if [[ ${#NOTES[@]} -gt 0 ]]; then
        echo
        echo "Notes:"
        for note in "${NOTES[@]}"; do echo "- $note"; done
    fi
} >"$TABLE"
{
    for f in "$WORK"/herald-*.json; do [[ -f $f ]] && echo "herald $(basename "$f" .json) $(cat "$f")"; done
    [[ -n "$RAW" && -f "$RAW" ]] && cat "$RAW"
    [[ -f "$WORK/paired.log" ]] && sed 's/^/paired /' "$WORK/paired.log"
    [[ -f "$WORK/floor.txt" ]] && sed 's/^/floor /' "$WORK/floor.txt"
    [[ -f "$WORK/floor-wake.txt" ]] && sed 's/^/floor-wake /' "$WORK/floor-wake.txt"
    true
} >"$RESULTS/compare-$STAMP-raw.txt"
cp "$TABLE" "$RESULTS/latest.md"
cat "$TABLE"
echo
echo "table: $TABLE; raw figures: $RESULTS/compare-$STAMP-raw.txt"
