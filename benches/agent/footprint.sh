#!/usr/bin/env bash
# Resident memory, binary size and CPU per heartbeat of iamalive-agent
# beside an agent of the origin's shape (node-agent.js), against the same
# local receiver (receiver.py). See BENCHMARKS.md, "The agent".
#
#   benches/agent/footprint.sh AGENT_BINARY [RUNS] [BEATS] [INTERVAL_MS]
#   (defaults: 3 runs, 400 heartbeats, 50 ms apart)
#
# For each agent and run: start it against the receiver with a heartbeat
# every INTERVAL_MS, wait for 5 heartbeats (warm-up), read utime+stime
# from /proc/PID/stat (all threads, living and ended; 10 ms ticks, hence
# the many heartbeats), wait for BEATS more, read them again, and sample
# VmRSS from /proc/PID/status every 10th heartbeat; print the median VmRSS
# of the samples, the maximum (VmHWM) and CPU per heartbeat. CPU time,
# not wall time: other load on the machine moves it little.
set -euo pipefail
agent_bin=${1:?usage: footprint.sh AGENT_BINARY [RUNS] [BEATS] [INTERVAL_MS]}
runs=${2:-3}
beats=${3:-400}
interval_ms=${4:-50}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 "$here/receiver.py" "$port" "$work/beats" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.05
done
clk=$(getconf CLK_TCK)

count() { [ -f "$work/beats" ] && wc -l <"$work/beats" || echo 0; }
wait_beats() { # until N more heartbeats than $1 arrived (bounded)
  local want=$(($1 + $2)) i
  for i in $(seq $((($2 + 5) * interval_ms / 50 + 200))); do
    [ "$(count)" -ge "$want" ] && return 0
    sleep 0.05
  done
  echo "timed out waiting for heartbeats" >&2
  return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

measure() { # name, then the command
  local name=$1; shift
  local run
  for run in $(seq "$runs"); do
    rm -f "$work/beats"
    "$@" >"$work/log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    wait_beats 0 5
    local t0 b0
    t0=$(cpu_ticks "$pid"); b0=$(count)
    : >"$work/rss"
    local i
    for i in $(seq 10 10 "$beats"); do
      wait_beats "$((b0 + i - 10))" 10
      rss_kb "$pid" >>"$work/rss"
    done
    local t1 b1
    t1=$(cpu_ticks "$pid"); b1=$(count)
    local rss hwm
    rss=$(median <"$work/rss"); hwm=$(hwm_kb "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    awk -v n="$name" -v r="$run" -v rss="$rss" -v hwm="$hwm" -v dt="$((t1 - t0))" \
      -v db="$((b1 - b0))" -v clk="$clk" 'BEGIN {
        printf "%-8s run %d: VmRSS median %.1f MiB, VmHWM %.1f MiB, CPU %.2f ms per heartbeat (%d ticks over %d heartbeats)\n",
          n, r, rss / 1024, hwm / 1024, dt * 1000 / clk / db, dt, db }'
  done
}

url="http://127.0.0.1:$port/v1/heartbeat"
ls -l "$agent_bin" | awk '{printf "iamalive-agent binary: %d bytes (%.2f MiB)\n", $5, $5 / 1048576}'
measure agent "$agent_bin" --url "$url" --key bench-key --host bench-01 \
  --interval "${interval_ms}ms" --jitter 0s --log warn
if command -v node >/dev/null; then
  echo "node $(node --version)"
  measure node env URL="$url" KEY=bench-key HOST=bench-01 INTERVAL_MS="$interval_ms" \
    node "$here/node-agent.js"
else
  echo "node not found: the Node.js agent was not measured"
fi
