# Shell helpers shared by the bench harnesses (echo.sh, fanout.sh,
# sio_idle.sh). Source it after setting BENCH_NAME (the log prefix).
# It installs the EXIT/INT/TERM traps that stop every process whose pid was
# added to STARTED_PIDS.

log() { printf '[%s %s] %s\n' "$BENCH_NAME" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
# int_in NAME VALUE MIN MAX: exits with status 2 unless VALUE is an integer in MIN..MAX.
int_in() { [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge "$3" ] && [ "$2" -le "$4" ] || { echo "$BENCH_NAME: $1 must be an integer in $3..$4 (got '$2')" >&2; exit 2; }; }

STARTED_PIDS=()
cleanup() {
  local p
  for p in "${STARTED_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null; done
  sleep 0.2
  for p in "${STARTED_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null; done
  return 0
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# raise_nofile NEED: raises the open-file limit (soft, and hard when allowed)
# towards NEED descriptors; child processes inherit it. Sets HARD_FDS and
# SOFT_FDS; fails when the soft limit stays below NEED.
raise_nofile() {
  local need="$1"
  HARD_FDS="$(ulimit -Hn)"
  if [ "$HARD_FDS" != unlimited ] && [ "$HARD_FDS" -lt "$need" ]; then
    ulimit -Hn "$need" 2>/dev/null || true
    HARD_FDS="$(ulimit -Hn)"
  fi
  if [ "$HARD_FDS" = unlimited ]; then ulimit -n "$need" 2>/dev/null || true
  else ulimit -n "$HARD_FDS" 2>/dev/null || true; fi
  SOFT_FDS="$(ulimit -n)"
  [ "$SOFT_FDS" = unlimited ] || [ "$SOFT_FDS" -ge "$need" ]
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
# stop_pid PID: TERM, up to 5 s, then KILL; reaps it.
stop_pid() {
  local pid="$1"
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null; }
hwm_kb() { awk '/^VmHWM:/{print $2}' "/proc/$1/status" 2>/dev/null; }
# cpu_ticks PID: utime+stime of PID (clock ticks, all threads).
cpu_ticks() {
  local stat rest
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || { echo ""; return; }
  rest="${stat##*) }"
  # rest starts at field 3 (state): utime is field 14 -> index 11, stime 15 -> 12
  read -ra f <<<"$rest"
  echo $(( f[11] + f[12] ))
}
