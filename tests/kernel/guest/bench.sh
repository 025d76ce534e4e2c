#!/bin/bash
# Lab benchmark (deno task lab:bench): lossless session-sync rate of our daemon against Jool's C
# daemon, on the same kernel, same boot, alternating. Each step: fresh topology, daemons of one kind
# on both translators, COUNT new UDP sessions at RATE/s through J, let the queue settle, then count
# J's and K's sessions and read the kernel's joold counters. Prints "BENCH ..." lines.
# The kernel's own batching (ss-flush-deadline 2000 ms) is part of what the benchmark measures.
JOOLD_LAB_FLUSH_DEADLINE_MS=2000 LIB_ONLY=1 source /mnt/project/tests/kernel/guest/scenarios.sh
cmdline() { sed -n "s/.*joold\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; } # set by run.ts --bench-*
COUNT=$(cmdline bench_count); COUNT=${COUNT:-2000}
RATES=$(cmdline bench_rates | tr , ' '); RATES=${RATES:-200 400 800 1600 3200}
REPS=$(cmdline bench_reps); REPS=${REPS:-2}

settle() { # waits until K's UDP table holds J's count, or stops growing for 3 s (> ss-flush-deadline)
  local j k last=-1 still=0 end=$((SECONDS + 120))
  j=$(table J udp | grep -c .)
  while [ $SECONDS -lt $end ]; do
    k=$(table K udp | grep -c .)
    [ "$k" -ge "$j" ] && return 0
    if [ "$k" = "$last" ]; then
      still=$((still + 1))
      [ $still -ge 6 ] && return 0 # 6 polls of about 0.5 s
    else
      still=0 last=$k
    fi
    sleep 0.5
  done
}

proc_stat() { # pid -> "cpu_seconds rss_kib"
  local pid=$1 hz ticks rss
  hz=$(getconf CLK_TCK)
  ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
  echo "$(awk -v t="$ticks" -v h="$hz" 'BEGIN { printf "%.2f", t / h }') $rss"
}

jstat() { # ns name
  in_ns "$1" jool stats display --all --csv 2>/dev/null | sed -n "s/^$2,//p" | head -1
}

ack_latency() { # kind: ours logs its kernel->ACK latency when it stops; J's is the one that matters
  [ "$1" = ours ] || return 0
  stop_daemon ours J
  local line
  line=$(sed -n 's/^joold: info: kernel->ACK latency: //p' /tmp/ours-J.log | tail -1)
  [ -n "$line" ] && echo " J_ack_latency=[$line]"
}

step() { # kind rate rep
  local kind=$1 rate=$2 rep=$3
  setup 6
  if [ "$REV" -ge 12 ]; then
    for ns in J K; do in_ns "$ns" jool global update ss-max-sessions-per-packet 1; done
  fi
  if [ "$kind" = ours ]; then ours J && ours K; else c_daemon J && c_daemon K; fi || {
    echo "BENCH kind=$kind rate=$rate rep=$rep error=daemons-did-not-start"
    return
  }
  local gen
  gen=$(in_ns n6 deno run --quiet --no-prompt "--allow-ffi=$LIBC" \
    "$PROJECT/tests/kernel/guest/loadgen.ts" 64:ff9b::192.0.2.8 10000 "$COUNT" "$rate")
  settle
  local j k pidJ pidK
  j=$(table J udp | grep -c .); k=$(table K udp | grep -c .)
  pidJ=$(cat "/tmp/daemon-$kind-J.pid"); pidK=$(cat "/tmp/daemon-$kind-K.pid")
  echo "BENCH kind=$kind rate=$rate rep=$rep created=$j synced=$k loss=$(( (j - k) * 1000 / (j > 0 ? j : 1) ))permille" \
    "J_cpu_rss=$(proc_stat "$pidJ" | tr ' ' ,) K_cpu_rss=$(proc_stat "$pidK" | tr ' ' ,)" \
    "sss_sent=$(jstat J JSTAT_JOOLD_SSS_SENT) sss_rcvd=$(jstat K JSTAT_JOOLD_SSS_RCVD)" \
    "enospc=$(jstat J JSTAT_JOOLD_SSS_ENOSPC) acks=$(jstat J JSTAT_JOOLD_ACKS)" \
    "loadgen=[$gen]$(ack_latency "$kind")"
  teardown >/dev/null 2>&1
}

log "benchmark: Jool $JOOL_VERSION, $COUNT sessions per step, rates $RATES, $REPS repetitions"
for rate in $RATES; do
  for rep in $(seq "$REPS"); do
    step c "$rate" "$rep"
    step ours "$rate" "$rep"
  done
done
result bench PASS
