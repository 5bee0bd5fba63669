# bench_lib.sh: what the bench/ scripts share: process bookkeeping (every
# background process recorded by pid and stopped at exit), free ports,
# Redis, Debian packages, RESULT lines and their medians.
# Sourced after setting BENCH (the script's name, for messages), SRC, BUILD,
# TMP (the run's temp dir) and PY (Debian's python3).
# shellcheck shell=bash

log () { printf '%s\n' "$*" >&2; }

# ---- process bookkeeping ---------------------------------------------------
# Every background process is recorded by pid and stopped by pid at exit.
PIDS=()

alive () {          # alive PID: running or stopped, not gone nor a zombie
    local st
    st=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

stop_pid () {       # stop_pid PID [TENTHS]: TERM, grace (default 5 s), then KILL
    local pid=$1 i
    [ "${pid:-0}" -gt 0 ] || return 0  # never "kill 0": that is the whole group
    if alive "$pid"; then
        kill -CONT "$pid" 2>/dev/null  # a SIGSTOPped process would not act on TERM
        kill -TERM "$pid" 2>/dev/null
        for i in $(seq "${2:-50}"); do
            alive "$pid" || break
            sleep 0.1
        done
    fi
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

stop_all () {
    local i
    touch "$TMP/stopping"
    for (( i = ${#PIDS[@]} - 1; i >= 0; i-- )); do
        stop_pid "${PIDS[i]}"
    done
    PIDS=()
    rm -f "$TMP/stopping"
}

cleanup () {
    stop_all
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        log "$BENCH: logs kept in $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_bg () {       # start_bg NAME CMD...: output to $TMP/NAME.log
    local name=$1; shift
    "$@" >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
    echo $! >"$TMP/$name.pid"
}

cpu_ticks () {      # cpu_ticks NAME...: user+system clock ticks of those processes now
    local name pid total=0 t
    for name in "$@"; do
        pid=$(cat "$TMP/$name.pid" 2>/dev/null) || continue
        # fields 14 and 15 of /proc/PID/stat, counted after the ")" ending comm
        t=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null) || continue
        total=$(( total + ${t:-0} ))
    done
    echo $total
}

ctx_switches () {   # ctx_switches NAME...: context switches of those processes' threads so far
    local name pid total=0 t
    for name in "$@"; do
        pid=$(cat "$TMP/$name.pid" 2>/dev/null) || continue
        t=$(cat /proc/"$pid"/task/*/status 2>/dev/null \
            | awk '/ctxt_switches/ { s += $2 } END { print s + 0 }')
        total=$(( total + ${t:-0} ))
    done
    echo $total
}

# supervise NAME CMD...: runs CMD again whenever it dies (the recovery mode
# kills workers on purpose), until stop_all. The loop's own pid is recorded;
# on TERM it stops the current child by its pid.
supervise () {
    local name=$1; shift
    # The loop's own stderr goes to the log too: bash reports there each
    # child that died of a signal ("Killed"), which is the point here.
    (
        child=0
        # A shorter grace than stop_all's, so the child is gone before this is.
        trap 'stop_pid $child 20; exit 0' TERM
        while [ ! -e "$TMP/stopping" ]; do
            "$@" &
            child=$!
            echo $child >"$TMP/$name.pid"
            wait $child
            child=0     # reaped: its pid may belong to someone else now
            sleep 0.05
        done
    ) >>"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
}

free_ports () {     # free_ports K: K distinct free loopback ports
    "$PY" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

wait_port () {      # wait_port PORT: until something listens (10 s at most)
    local i
    for i in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    log "$BENCH: nothing listens on 127.0.0.1:$1"
    return 1
}

start_redis () {    # start_redis NAME PORT: AOF on, fsync every second
    mkdir -p "$TMP/$1"
    start_bg "$1" redis-server --port "$2" --bind 127.0.0.1 --dir "$TMP/$1" \
        --appendonly yes --appendfsync everysec --save "" --daemonize no
    wait_port "$2"
}

# ---- packages -----------------------------------------------------------------
have_pkg () { dpkg -s "$1" >/dev/null 2>&1; }

ensure_pkgs () {    # ensure_pkgs PKG...: 0 if all installed (installing if root)
    local missing=() p
    for p in "$@"; do have_pkg "$p" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        log "$BENCH: missing ${missing[*]} (not root: not installing)"
        return 1
    fi
    log "$BENCH: installing ${missing[*]}"
    # With stale package lists the install fails: then update them once and retry.
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}")
    "${apt[@]}" >"$TMP/apt.log" 2>&1 \
    || { apt-get update >>"$TMP/apt.log" 2>&1 && "${apt[@]}" >>"$TMP/apt.log" 2>&1; } \
    || { log "$BENCH: apt-get failed:"; tail -n 3 "$TMP/apt.log" >&2; return 1; }
}

# A bench binary from the build dir; the peers have no dependency on the
# rest of the tree, so when the build has none (e.g. libgearman-dev was
# installed after configuring) they are compiled here, into $TMP.
bench_bin () {      # bench_bin NAME SOURCE LIBS...
    local name=$1 src=$2; shift 2
    if [ -x "$BUILD/bench/bench_$name" ]; then
        echo "$BUILD/bench/bench_$name"
        return 0
    fi
    cc -std=c11 -D_GNU_SOURCE -O2 -o "$TMP/$name" "$SRC/bench/$src" \
        "$SRC/bench/bench_util.c" "$@" -lpthread 2>"$TMP/cc-$name.log" || return 1
    echo "$TMP/$name"
}

# ---- results ----------------------------------------------------------------
# Each program prints "RESULT system=S mode=M key=value ..." lines; they are
# collected in $TMP/results and reduced to medians at the end.
RESULTS=$TMP/results
: >"$RESULTS"

run () {            # run CMD...: keep its RESULT lines, show its errors
    local out rc
    out=$("$@" 2>"$TMP/last.err"); rc=$?
    printf '%s\n' "$out" | grep '^RESULT ' | tee -a "$RESULTS" >&2
    if [ $rc -ne 0 ]; then
        log "$BENCH: failed ($rc): $*"
        sed 's/^/    /' "$TMP/last.err" | tail -5 >&2
    fi
    return $rc
}

# values SYSTEM MODE KEY [KIND]: the KEY of every matching RESULT line
values () {
    awk -v sys="$1" -v mode="$2" -v key="$3" -v kind="${4:-}" '
        { split("", f); for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] } }
        f["system"] == sys && f["mode"] == mode && (kind == "" || f["kind"] == kind) \
            && (key in f) { print f[key] }' "$RESULTS"
}

median () {         # median SYSTEM MODE KEY [KIND]: median over the reps, or "-"
    values "$@" | sort -g | awk '
        { v[++n] = $1 }
        END {
            if (n == 0) { print "-"; exit }
            m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
            if (m >= 100 || m == int(m)) printf "%.0f\n", m; else if (m < 10) printf "%.2f\n", m; else printf "%.1f\n", m
        }'
}

count () {          # count SYSTEM MODE [KIND]: how many runs succeeded
    values "$1" "$2" system "${3:-}" | wc -l
}

declare -A SKIPPED=()
skip () { SKIPPED[$1]=$2; log "$BENCH: $1 skipped: $2"; }
