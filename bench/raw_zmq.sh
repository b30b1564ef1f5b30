# shellcheck shell=bash
# Sourced by bench scripts that run raw ZeroMQ beside Herald: builds
# ../shared/bench-peers' ZeroMQ client and control tool, and runs them as
# its run.sh does, one run at a time. Needs WORK (a scratch directory).
#
#   raw_zmq_setup NAME [BUILD_DIR]
#                               for a script comparing herald-bench with
#                               raw ZeroMQ (ROOT set first): sets BUILD, HB,
#                               PEERS_SRC and WORK (removed on exit), checks
#                               herald-bench, jq and the peer harness, builds
#                               the raw clients; exits with a message when
#                               one is missing
#   raw_zmq_build PEERS_SRC     builds into $WORK/peers (needs only libzmq)
#   raw_zmq_run fanout|queue EVENTS RECEIVERS
#                               prints "rate cpu_us_per_event lost"; fails
#                               when a client failed; RAW_ZMQ_RATE=N paces
#                               the publisher at N events/s (0: as fast as
#                               it can, the default); each run's broker
#                               listens on two free ports of its own, so
#                               runs may go side by side
#   herald_run w1|w2 ARGS...    the same line for one herald-bench run of
#                               $HB (ARGS: its flags); fails with the run
#   median                      of the numbers on stdin ("-" lines left out;
#                               of an even count, the mean of the middle two)
#   ratio A B                   A / B to two places, "-" when either is not > 0

raw_zmq_setup() {
    local name=$1
    BUILD=${2:-$ROOT/build}
    [[ $BUILD = /* ]] || BUILD="$PWD/$BUILD"
    HB="$BUILD/bin/herald-bench"
    PEERS_SRC=${PEERS_SRC:-$ROOT/../shared/bench-peers}
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/herald-$name.XXXXXX")
    trap 'rm -rf "$WORK"' EXIT
    [[ -x "$HB" ]] || { echo "no $HB: build first" >&2; exit 1; }
    command -v jq >/dev/null || { echo "$name needs jq" >&2; exit 1; }
    [[ -d "$PEERS_SRC/src" ]] || { echo "no peer harness at $PEERS_SRC" >&2; exit 1; }
    raw_zmq_build "$PEERS_SRC" || { echo "cannot build the raw ZeroMQ clients" >&2; exit 1; }
}

raw_zmq_build() {
    local src=$1 bin="$WORK/peers" flags="-O2 -g -std=gnu11"
    mkdir -p "$bin"
    # shellcheck disable=SC2086,SC2046 # flags and pkg-config's output are words
    gcc $flags -c "$src/src/common.c" -o "$bin/common.o" &&
        gcc $flags "$src/src/benchctl.c" "$bin/common.o" -o "$bin/benchctl" &&
        gcc $flags "$src/src/zmq_bench.c" "$bin/common.o" -o "$bin/zmq_bench" \
            $(pkg-config --cflags --libs libzmq)
}

raw_zmq_port_open() { ss -ltnH "sport = :$1" | grep -q .; }

# raw_zmq_listening PORT PID: PID itself listens on PORT (ss names the owner)
raw_zmq_listening() { ss -ltnpH "sport = :$1" | grep -q "pid=$2,"; }

# raw_zmq_start_broker KIND CTL: starts the raw broker on two free ports
# below the kernel's ephemeral range, so that runs side by side (tests under
# ctest -j) never share a broker, and exports BENCH_FRONT and BENCH_BACK
# for the clients; sets broker (its pid). A port taken between the look and
# the bind makes the broker exit, and two other ports are tried.
raw_zmq_start_broker() {
    local kind=$1 ctl=$2 front back deadline
    for _ in 1 2 3 4 5; do
        front=$((20000 + RANDOM % 12000))
        back=$((front + 1))
        if raw_zmq_port_open "$front" || raw_zmq_port_open "$back"; then
            continue
        fi
        export BENCH_FRONT="tcp://127.0.0.1:$front" BENCH_BACK="tcp://127.0.0.1:$back"
        BENCH_HWM=0 "$WORK/peers/zmq_bench" "broker-$kind" "$ctl" >"$WORK/broker.log" 2>&1 &
        broker=$!
        deadline=$((SECONDS + 10))
        while ((SECONDS < deadline)) && kill -0 "$broker" 2>/dev/null; do
            if raw_zmq_listening "$front" "$broker" && raw_zmq_listening "$back" "$broker"; then
                return 0
            fi
            sleep 0.05
        done
        kill "$broker" 2>/dev/null
        wait "$broker" 2>/dev/null
    done
    echo "the raw ZeroMQ broker did not listen: $(tail -n 2 "$WORK/broker.log")" >&2
    return 1
}

# CPU = user + system time of the raw broker and clients, read with the
# shell's `times` once all are reaped, divided by the events
raw_zmq_run() {
    local kind=$1 events=$2 receivers=$3 ctl="$WORK/zmq.ctl" bin="$WORK/peers"
    (
        "$bin/benchctl" init "$ctl" "$kind" "$events" "$receivers" 0 120 >/dev/null
        raw_zmq_start_broker "$kind" "$ctl" || exit 1
        role=sub-fanout pub=pub-fanout
        [[ $kind = queue ]] && { role="worker-queue"; pub="pub-queue"; }
        # From here to the second `times` only the ZeroMQ processes are
        # reaped: the helpers above (benchctl, ss, sleep) are left out
        times >"$WORK/times.before"
        pids=()
        for ((i = 0; i < receivers; i++)); do
            BENCH_HWM=0 "$bin/zmq_bench" "$role" "$ctl" "$i" >/dev/null 2>&1 &
            pids+=($!)
        done
        BENCH_HWM=0 BENCH_RATE=${RAW_ZMQ_RATE:-0} "$bin/zmq_bench" "$pub" "$ctl" >/dev/null 2>&1 &
        pids+=($!)
        clients_ok=1
        for pid in "${pids[@]}"; do wait "$pid" || clients_ok=0; done
        kill "$broker"
        wait "$broker" || true
        # times: this shell, then its reaped children ("1m2.345s 0m1.000s");
        # redirected, not piped: a pipe would run it in a child of its own
        times >"$WORK/times.after"
        [[ $clients_ok = 1 ]] || exit 1
        key=sub_rate_min
        [[ $kind = queue ]] && key=proc_rate
        read -r rate lost < <("$bin/benchctl" report "$ctl" | tr ' ' '\n' |
            awk -F= -v k=$key '$1 == k { rate = $2 } $1 == "lost" { lost = $2 } END { print rate, lost }')
        cpu=$(awk 'FNR == 2 {
                n = split($1 " " $2, t, " "); s = 0
                for (i = 1; i <= n; i++) { split(t[i], ms, "m"); s += ms[1] * 60 + ms[2] }
                total += (FILENAME ~ /after/ ? s : -s) }
            END { print total }' "$WORK/times.before" "$WORK/times.after")
        echo "$rate $(awk -v c="$cpu" -v n="$events" 'BEGIN { printf "%.3f", c * 1e6 / n }') $lost"
    )
}

herald_run() {
    local wl=$1 json
    shift
    json=$("$HB" --workload "$wl" --quiet --json "$@" 2>/dev/null) || return 1
    jq -r ".$wl | \"\(.sub_rate // .proc_rate) \(.cpu_us_per_event) \(.lost)\"" <<<"$json"
}

median() {
    awk '$1 != "-"' | sort -g | awk '{v[NR] = $1}
        END { if (!NR) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.15g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }
