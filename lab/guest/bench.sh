#!/bin/bash
# Lab benchmark (deno task lab:bench): lossless session-sync rate of our daemon against Jool's C
# daemon, on the same kernel, same boot, alternating. Each step: fresh topology, daemons on both
# translators, COUNT new UDP sessions at RATE/s through J, let the queue settle, then count J's and
# K's sessions and read the kernel's joold counters. J's netlink traffic is captured on an nlmon
# device during the step, and guest/acklat.ts measures from it the kernel->ACK latency of whichever
# daemon runs there (the same yardstick for both). Then interop steps (ours -> C, C -> ours) at a
# fixed rate, and each kind's idle CPU. Prints "BENCH ..." lines.
# The kernel's own batching (ss-flush-deadline, Jool's default 2000 ms unless run.ts
# --bench-flush-ms says otherwise) is part of what the benchmark measures.
BENCH_FLUSH_MS=$(sed -n 's/.*joold\.bench_flush_ms=\([^ ]*\).*/\1/p' /proc/cmdline)
JOOLD_LAB_FLUSH_DEADLINE_MS=${BENCH_FLUSH_MS:-2000} LIB_ONLY=1 source /mnt/project/lab/guest/scenarios.sh
cmdline() { sed -n "s/.*joold\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; } # set by run.ts --bench-*
COUNT=$(cmdline bench_count); COUNT=${COUNT:-2000}
RATES=$(cmdline bench_rates | tr , ' '); RATES=${RATES:-200 400 800 1600 3200}
REPS=$(cmdline bench_reps); REPS=${REPS:-2}
INTEROP_RATE=$(cmdline bench_interop); INTEROP_RATE=${INTEROP_RATE:-400} # 0: no interop steps
IDLE_S=$(cmdline bench_idle); IDLE_S=${IDLE_S:-30}                        # 0: no idle steps
# Sessions synced before each measured load (0: none, a cold daemon): a daemon that has been running
# for a while has compiled its hot path; a just-started one compiles it during the first load.
WARMUP=$(cmdline bench_warmup); WARMUP=${WARMUP:-0}
# Seconds between both daemons being ready and the measured load (run.ts --bench-start-gap S):
# unset, the step first waits until both daemons are idle (start-up over); set, it waits exactly
# that long after "ready", as in a failover right after a (re)start, whatever is still compiling.
START_GAP=$(cmdline bench_start_gap)
# Daemon kinds compared: c, ours, and variants of ours for diagnosis: ours-gctrace (V8 logs its
# garbage collections), ours-st (V8 without its background threads: --single-threaded),
# ours-nolinger (the reactor never waits synchronously: JOOLD_LINGER_MS=0), ours-jittrace (V8 logs
# what it compiles and how long each compilation took), ours-turbofan (V8's default compilers:
# --v8-flags=--turbofan, which keeps the daemon from setting its --no-turbofan), ours-lingerN (the reactor lingers N ms: JOOLD_LINGER_MS=N),
# ours-scraped (ours with --metrics, scraped every 100 ms in its namespace by guest/scrape.ts at a
# lower priority: what serving Prometheus costs the sync path), ours-hostscraped (the same, scraped
# from the host through a user-mode NIC of each namespace: the scraper's CPU is not the guest's),
# ours-keyed (ours with secure sync: a key file, envelopes, loss recovery; what secure sync costs),
# ours-keyed-node (the same, without libcrypto granted: node:crypto seals), ours-keyed-cli (the
# same, its bulk timed as the plain kinds' are: see BULK below), ours-keyed-scalar
# (libcrypto without its SIMD code paths: what the emulation's SIMD costs),
# ours-keyed-prof (ours-keyed under V8's profiler), ours-keyed-cli-prof (ours-keyed-cli under it:
# K's profile without its start-up inside the bulk), ours-noreducer (V8 without its memory reducer),
# ours-alt (ours from another commit, checked out by hand into lab/alt: `git archive REV | tar -x -C
# lab/alt`), ours-prof (V8's CPU profile of each daemon, written when it stops: where its time goes
# under the emulation).
KINDS=$(cmdline bench_kinds | tr , ' '); KINDS=${KINDS:-c ours}
# Bulk resync instead of the rate steps (run.ts --bench-bulk 10000,100000): J holds N sessions,
# K starts empty, `jool joold advertise` on J; how long until K's kernel has them all. Kinds there:
# c, ours, proxy (`jool session proxy`, 4.1.12+) and ackonly (J only receives and ACKs:
# guest/ackloop.ts, the kernel's own ceiling), and ours-keyed (K announces itself when it starts
# and J's daemon advertises: secure sync's own resync, timed from J's JOOLD_ADVERTISE as the
# others are; its polled_ms includes K's start), ours-keyed-cli (a keyed pair timed as the plain
# kinds are: K, then J, both sync-ready and quiet, then `jool joold advertise` on J).
# BULK_BATCHES: "default" (the kernel's ss-max-sessions-per-packet) and/or 1.
BULK=$(cmdline bench_bulk | tr , ' ')
BULK_BATCHES=$(cmdline bench_bulk_batches | tr , ' '); BULK_BATCHES=${BULK_BATCHES:-default 1}
# The Generic Netlink family id of Jool (families are global: any namespace sees the same id).
FAMILY=$(( $(genl ctrl get name Jool 2>/dev/null | sed -n 's/.*ID: \(0x[0-9a-fA-F]*\).*/\1/p' | head -1) + 0 ))

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

HZ=$(getconf CLK_TCK) # clock ticks per second, the unit of /proc/PID/stat's CPU times

rss_kib() { # pid
  awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}

proc_stat() { # pid -> "cpu_seconds rss_kib anon_kib file_kib shmem_kib sys_seconds": VmRSS and its
  # parts (anon: RssAnon, the heap's own pages; file and shmem: Deno's binary and libraries, shared
  # between processes and reclaimable; shmem when they are read from a tmpfs, as the lab's guest
  # does), and the system part of the CPU time (the kernel's work in the daemon's syscalls: on K,
  # Jool inserting what each JOOLD_ADD carries)
  local rss sys
  rss=$(awk '/^RssAnon/ {a=$2} /^RssFile/ {f=$2} /^RssShmem/ {s=$2} END {print a+0, f+0, s+0}' "/proc/$1/status" 2>/dev/null)
  sys=$(awk -v h="$HZ" '{ printf "%.2f", $15 / h }' "/proc/$1/stat" 2>/dev/null)
  echo "$(awk -v t="$(cpu_ticks "$1")" -v h="$HZ" 'BEGIN { printf "%.2f", t / h }') $(rss_kib "$1") ${rss:-0 0 0} ${sys:-0}"
}

jstat() { # ns name
  in_ns "$1" jool stats display --all --csv 2>/dev/null | sed -n "s/^$2,//p" | head -1
}

ack_latency() { # kind: ours logs its kernel->ACK latency when it stops; J's is the one that matters
  [ "${1%%-*}" = ours ] || return 0
  stop_daemon ours J
  local line
  line=$(sed -n 's/^joold: info: kernel->ACK latency: //p' /tmp/ours-J.log | tail -1)
  [ -n "$line" ] && echo " J_ack_latency_own=[$line]"
}

nlmon_up() { # ns: an nlmon device, which shows tcpdump the namespace's netlink traffic
  in_ns "$1" ip link del nlmon0 2>/dev/null
  in_ns "$1" ip link add nlmon0 type nlmon && in_ns "$1" ip link set nlmon0 up
}

tcpdump_start() { # name ns interface [filter...]: records into /tmp/NAME.pcap until tcpdump_stop
  local name=$1 ns=$2 dev=$3; shift 3
  rm -f "/tmp/$name.pcap" "/tmp/tcpdump-$name.log"
  # `ip netns exec` execs tcpdump, so $! is tcpdump itself (in_ns would put a subshell between,
  # one that ignores SIGINT as every background job of a script does). A 16 MiB buffer: smaller
  # ones lost messages under load.
  ip netns exec "$ns" tcpdump -B 16384 -i "$dev" -s 64 -U -w "/tmp/$name.pcap" "$@" >"/tmp/tcpdump-$name.log" 2>&1 &
  echo $! >"/tmp/tcpdump-$name.pid"
  wait_for 30 "tcpdump $name in $ns" grep -q "listening on" "/tmp/tcpdump-$name.log"
}

tcpdump_stop() { # name: once its file stops growing, SIGINT; SIGKILL after 10 s more
  local pid end=$((SECONDS + 10)) size=-1 now; pid=$(cat "/tmp/tcpdump-$1.pid")
  # On SIGINT tcpdump drops what is still in its capture buffer ("60 packets received by filter",
  # 3 captured, seen here): let it catch up first.
  while [ $SECONDS -lt $end ]; do
    now=$(stat -c %s "/tmp/$1.pcap" 2>/dev/null || echo 0)
    [ "$now" = "$size" ] && break
    size=$now
    sleep 0.5
  done
  end=$((SECONDS + 10))
  kill -INT "$pid" 2>/dev/null
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
}

capture_start() { # ns: records the namespace's netlink traffic (nlmon) until capture_stop
  CAPTURE_PID=
  [ "$FAMILY" -gt 0 ] || return 0
  nlmon_up "$1" 2>/dev/null || return 0
  tcpdump_start "nl-$1" "$1" nlmon0 && CAPTURE_PID=$(cat "/tmp/tcpdump-nl-$1.pid")
}

capture_stop() { # ns name -> " J_nl_ack=[...]" (nothing when there is no capture)
  [ -n "$CAPTURE_PID" ] || return 0
  tcpdump_stop "nl-$1"
  mkdir -p /mnt/results/captures && cp "/tmp/nl-$1.pcap" "/mnt/results/captures/$2.pcap"
  local line
  line=$(deno run --quiet --no-prompt --allow-read "$PROJECT/lab/guest/acklat.ts" \
    "/tmp/nl-$1.pcap" "$FAMILY" "$JOOL_VERSION" 2>&1 | tail -1)
  echo " $1_nl_ack=[$line]"
}

cpu_ticks() { # pids... -> their user+system CPU time in clock ticks, summed
  local pid total=0 t
  for pid in "$@"; do
    t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}

quiesce() { # pids...: waits (at most 60 s) until they used no CPU for a second: start-up is over
  local end=$((SECONDS + 60)) prev now
  prev=$(cpu_ticks "$@")
  while [ $SECONDS -lt $end ]; do
    sleep 1
    now=$(cpu_ticks "$@")
    [ "$now" = "$prev" ] && return 0
    prev=$now
  done
}

load() { # base_port count rate: new UDP sessions through J from the client; prints the generator's report
  # The generator runs at a higher priority than the daemons: otherwise the daemon that needs more
  # CPU would also lower the load it is offered (the guest has two vCPUs for everything).
  in_ns n6 nice -n -10 deno run --quiet --no-prompt "--allow-ffi=$LIBC" \
    "$PROJECT/lab/guest/loadgen.ts" 64:ff9b::192.0.2.8 "$1" "$2" "$3"
}

scrape_nic() { # ns: the host scraper's network card (run.ts gives J ...:01, K ...:02) into ns
  local mac nic="" end=$((SECONDS + 30))
  case $1 in J) mac=52:54:00:6a:01:01 ;; K) mac=52:54:00:6a:01:02 ;; *) return 1 ;; esac
  modprobe virtio_net
  # A namespace's teardown hands the card back to the root namespace, not at once.
  while [ -z "$nic" ]; do
    for d in /sys/class/net/*; do
      [ "$(cat "$d/address" 2>/dev/null)" = "$mac" ] && nic=${d##*/}
    done
    [ -n "$nic" ] && break
    [ $SECONDS -ge $end ] && { log "no network card with the scraper's MAC $mac"; return 1; }
    sleep 0.2
  done
  ip link set "$nic" down
  [ "$nic" = "scrape$1" ] || ip link set "$nic" name "scrape$1"
  ip link set "scrape$1" netns "$1" &&
    ip -n "$1" addr add 10.0.2.15/24 dev "scrape$1" && ip -n "$1" link set "scrape$1" up
}

scrapes_of() { # ns: the scrapes of its endpoint so far (ours-scraped, ours-hostscraped), or nothing
  if [ -e "/tmp/scrapes-$1" ]; then cat "/tmp/scrapes-$1"
  elif [ -e "/tmp/hostscraped-$1" ]; then cat "/mnt/results/host-scrapes-$1" 2>/dev/null || echo 0
  fi
}

start() { # kind ns
  case $1 in
    c) c_daemon "$2" ;;
    ours) ours "$2" ;;
    ours-gctrace) OURS_V8_FLAGS=--no-turbofan,--trace-gc ours "$2" ;;
    ours-st) OURS_V8_FLAGS=--no-turbofan,--single-threaded ours "$2" ;;
    ours-jittrace) OURS_V8_FLAGS=--no-turbofan,--trace-opt,--trace-deopt ours "$2" ;;
    ours-turbofan) OURS_V8_FLAGS=--turbofan ours "$2" ;; # V8's default, given: no re-execution
    # The README's command, no V8 flag: the daemon re-executes itself with DENO_V8_FLAGS (lib/tiers.ts).
    ours-noflag) OURS_V8_FLAGS="" ours "$2" ;;
    # Without V8's memory reducer, whose one "Incremental Mark-Compact (reduce)" ~35 s after start
    # paused the main thread 125-356 ms in ours-gctrace's steps (the lab's ~290 ms ACK stalls).
    ours-noreducer) OURS_V8_FLAGS=--no-turbofan,--no-memory-reducer ours "$2" ;;
    # V8's sampling profiler: one .cpuprofile per daemon in the run's results (last-FLAVOUR/prof-NS).
    ours-prof) OURS_DENO_FLAGS="--cpu-prof --cpu-prof-dir=/mnt/results/prof-$2" ours "$2" ;;
    ours-nolinger) JOOLD_LINGER_MS=0 OURS_DENO_FLAGS=--allow-env=JOOLD_LINGER_MS ours "$2" ;;
    ours-scraped)
      OURS_DENO_FLAGS="--allow-net=[::1]:9477" ours "$2" --metrics=[::1]:9477 || return 1
      # teardown kills every /tmp/daemon-*.pid: the scraper goes with the daemons.
      echo 0 >"/tmp/scrapes-$2"
      in_ns "$2" nice -n 10 deno run --quiet --no-prompt "--allow-net=[::1]:9477" "--allow-write=/tmp/scrapes-$2" \
        "$PROJECT/lab/guest/scrape.ts" "http://[::1]:9477/metrics" 100 "/tmp/scrapes-$2" 2>>"/tmp/scraper-$2.log" &
      echo $! >"/tmp/daemon-scraper-$2.pid"
      ;;
    ours-hostscraped)
      # The same, scraped from outside the guest (run.ts, every 100 ms over a user-mode NIC of the
      # namespace's own): the scraper's CPU is not the guest's, as with a real Prometheus.
      scrape_nic "$2" || return 1
      touch "/tmp/hostscraped-$2"
      OURS_DENO_FLAGS="--allow-net=10.0.2.15:9477" ours "$2" --metrics=10.0.2.15:9477
      ;;
    ours-keyed)
      # Secure sync: the same key file on both (written once per step, by J's start).
      [ "$2" = K ] || secure_key || return 1
      keyed "$2"
      ;;
    ours-keyed-cli)
      # ours-keyed measured as every other kind is (bulk_step): K started first, then J, then
      # `jool joold advertise` on J; so K's start writes the key here.
      [ "$2" = J ] || secure_key || return 1
      keyed "$2"
      ;;
    ours-keyed-node)
      # ours-keyed without libcrypto granted: its envelopes sealed by the runtime's node:crypto.
      [ "$2" = K ] || secure_key || return 1
      OURS_LIBCRYPTO="" keyed "$2"
      ;;
    ours-keyed-thread)
      # ours-keyed with its sealing thread (JOOLD_SEAL_THREAD=1, lib/secure/sealer.ts).
      [ "$2" = K ] || secure_key || return 1
      JOOLD_SEAL_THREAD=1 OURS_DENO_FLAGS=--allow-env=JOOLD_SEAL_THREAD keyed "$2"
      ;;
    ours-keyed-scalar)
      # ours-keyed with libcrypto's scalar ChaCha20-Poly1305 (OPENSSL_ia32cap masks AVX, AVX2,
      # AVX-512 and SSSE3): under TCG emulated SIMD costs more than scalar code, on hardware less.
      [ "$2" = K ] || secure_key || return 1
      OPENSSL_ia32cap="~0x1000020000000000:0" keyed "$2"
      ;;
    ours-alt)
      [ -e "$PROJECT/lab/alt/cli.ts" ] || { log "ours-alt: no checkout in lab/alt"; return 1; }
      OURS_PROJECT=$PROJECT/lab/alt ours "$2"
      ;;
    ours-keyed-prof)
      # ours-keyed under V8's sampling profiler (last-FLAVOUR/prof-keyed-NS).
      [ "$2" = K ] || secure_key || return 1
      OURS_DENO_FLAGS="--cpu-prof --cpu-prof-dir=/mnt/results/prof-keyed-$2" keyed "$2"
      ;;
    ours-keyed-cli-prof)
      # ours-keyed-cli under it (last-FLAVOUR/prof-keyed-cli-NS).
      [ "$2" = J ] || secure_key || return 1
      OURS_DENO_FLAGS="--cpu-prof --cpu-prof-dir=/mnt/results/prof-keyed-cli-$2" keyed "$2"
      ;;
    ours-linger[0-9]*) JOOLD_LINGER_MS=${1#ours-linger} OURS_DENO_FLAGS=--allow-env=JOOLD_LINGER_MS ours "$2" ;;
    *) echo "unknown daemon kind $1" >&2; return 1 ;;
  esac
}

step() { # kindJ kindK rate rep
  local kindJ=$1 kindK=$2 rate=$3 rep=$4 kind=$1
  [ "$kindJ" = "$kindK" ] || kind="$kindJ-to-$kindK"
  setup 6
  rm -f /tmp/ours-J.log /tmp/ours-K.log /tmp/scrapes-[JK] /tmp/hostscraped-[JK]
  if [ "$REV" -ge 12 ]; then
    for ns in J K; do in_ns "$ns" jool global update ss-max-sessions-per-packet 1; done
  fi
  start "$kindJ" J && start "$kindK" K || {
    echo "BENCH kind=$kind rate=$rate rep=$rep error=daemons-did-not-start"
    teardown >/dev/null 2>&1
    return
  }
  local pidJ pidK
  pidJ=$(cat "/tmp/daemon-${kindJ%%-*}-J.pid"); pidK=$(cat "/tmp/daemon-${kindK%%-*}-K.pid")
  # A daemon has just started (ours: seconds of JIT and GC under emulation): measure it settled,
  # as it is when a failover comes.
  if [ -n "$START_GAP" ]; then sleep "$START_GAP"; else quiesce "$pidJ" "$pidK"; fi
  local j0=0 k0=0 warm=
  if [ "$WARMUP" -gt 0 ]; then
    # Other ports than the measured load's, at a rate every daemon syncs: different sessions.
    load 40000 "$WARMUP" 200 >/dev/null
    settle
    quiesce "$pidJ" "$pidK" # the compilations the warm-up started are over
    j0=$(table J udp | grep -c .); k0=$(table K udp | grep -c .)
    warm=" warmup=$WARMUP warmup_synced=$k0/$j0"
  fi
  capture_start J
  local gen ticks0 scrapes0 scrapesK0 t0 scraped=
  ticks0=$(cpu_ticks "$pidJ")
  scrapes0=$(scrapes_of J); scrapesK0=$(scrapes_of K); t0=$(date +%s%N)
  gen=$(load 10000 "$COUNT" "$rate")
  settle
  # ours-scraped, ours-hostscraped: how many scrapes J's endpoint answered meanwhile (the in-guest
  # scraper runs at nice 10, and may starve).
  [ -n "$scrapes0" ] && scraped=" J_scrapes=$(( $(scrapes_of J) - scrapes0 ))/$(( ($(date +%s%N) - t0) / 1000000 ))ms K_scrapes=$(( $(scrapes_of K) - ${scrapesK0:-0} ))"
  local step_ms j k nl
  step_ms=$(( ($(cpu_ticks "$pidJ") - ticks0) * 1000 / HZ ))
  nl=$(capture_stop J "$kind-$rate-$rep")
  j=$(( $(table J udp | grep -c .) - j0 )); k=$(( $(table K udp | grep -c .) - k0 ))
  echo "BENCH kind=$kind rate=$rate rep=$rep created=$j synced=$k loss=$(( (j - k) * 1000 / (j > 0 ? j : 1) ))permille$warm" \
    "J_step_cpu_ms=$step_ms$scraped J_cpu_rss=$(proc_stat "$pidJ" | tr ' ' ,) K_cpu_rss=$(proc_stat "$pidK" | tr ' ' ,)" \
    "sss_sent=$(jstat J JSTAT_JOOLD_SSS_SENT) sss_rcvd=$(jstat K JSTAT_JOOLD_SSS_RCVD)" \
    "enospc=$(jstat J JSTAT_JOOLD_SSS_ENOSPC) acks=$(jstat J JSTAT_JOOLD_ACKS)" \
    "loadgen=[$gen]$nl$(ack_latency "$kindJ")"
  cp /tmp/ours-J.log "/mnt/results/captures/$kind-$rate-$rep.J.log" 2>/dev/null
  teardown >/dev/null 2>&1
}

idle() { # kind: CPU a daemon uses with nothing to sync, after its start-up
  local kind=$1
  setup 6
  start "$kind" J && start "$kind" K || {
    echo "BENCH idle kind=$kind error=daemons-did-not-start"
    teardown >/dev/null 2>&1
    return
  }
  local pid t0 t1 t2
  pid=$(cat "/tmp/daemon-${kind%%-*}-J.pid")
  quiesce "$pid" # start-up work (JIT, GC, the first advertise) is not idle time
  # Two halves, reported apart: V8 may still tidy up (a late GC) in the first one.
  t0=$(cpu_ticks "$pid"); sleep $((IDLE_S / 2))
  t1=$(cpu_ticks "$pid"); sleep $((IDLE_S / 2))
  t2=$(cpu_ticks "$pid")
  echo "BENCH idle kind=$kind seconds=$IDLE_S J_cpu_ms=$(( (t2 - t0) * 1000 / HZ ))" \
    "halves_ms=$(( (t1 - t0) * 1000 / HZ )),$(( (t2 - t1) * 1000 / HZ ))" "J_rss_kib=$(rss_kib "$pid")"
  teardown >/dev/null 2>&1
}

bulk_start() { # kind: the daemons of one bulk step, fresh
  case $1 in
    ackonly)
      ip netns exec J deno run --quiet --no-prompt "--allow-ffi=$LIBC" --allow-read=/sys/module \
        "$PROJECT/lab/guest/ackloop.ts" >/tmp/ackloop.log 2>&1 &
      echo $! >/tmp/daemon-ackloop-J.pid
      wait_for 90 "the ACK loop in J" grep -q ready /tmp/ackloop.log
      ;;
    proxy) proxy J && proxy K ;;
    *) start "$1" J && start "$1" K ;;
  esac
}

bulk_pids() { # kind -> the pids of its processes
  local f
  for f in /tmp/daemon-*-J.pid /tmp/daemon-*-K.pid; do [ -e "$f" ] && cat "$f"; done
}

bulk_progress() { # kind -> sessions so far: K's kernel's received ones (J's sent ones for ackonly)
  if [ "$1" = ackonly ]; then jstat J JSTAT_JOOLD_SSS_SENT; else jstat K JSTAT_JOOLD_SSS_RCVD; fi
}

bulk_capture_start() { # ns: its netlink traffic, into /tmp/nl-NS.pcap
  nlmon_up "$1" || log "bulk: no nlmon0 in $1: $(in_ns "$1" ip -br link 2>&1 | tr '\n' ' ')"
  tcpdump_start "nl-$1" "$1" nlmon0
}

bulk_capture_stop() { # ns
  tcpdump_stop "nl-$1"
  in_ns "$1" ip link del nlmon0 2>/dev/null
}

udp_count() { # ns: UDP sessions in the table (one read; long under TCG for 100k)
  in_ns "$1" jool session display --udp --numeric --csv --no-headers 2>/dev/null | grep -c .
}

bulk_fill() { # count: J's UDP table gets COUNT sessions, made while nothing syncs
  local left=$1 host=8 chunk
  while [ "$left" -gt 0 ]; do
    chunk=$((left > 50000 ? 50000 : left))
    # A second destination address when the ports of one run out: a new session per datagram.
    in_ns n6 nice -n -10 deno run --quiet --no-prompt "--allow-ffi=$LIBC" \
      "$PROJECT/lab/guest/loadgen.ts" "64:ff9b::192.0.2.$host" 10000 "$chunk" 4000 >/dev/null
    left=$((left - chunk)); host=$((host + 1))
  done
}

bulk_reset_k() { # K's instance re-created empty, as a standby that restarts
  in_ns K jool instance remove >/dev/null 2>&1
  jool_instance K true
  bulk_tune K
}

bulk_tune() { # ns: long UDP timeouts (the table must outlive the step) and the batch size
  in_ns "$1" jool global update udp-timeout 2:00:00
  [ "$BULK_BATCH" = 1 ] && in_ns "$1" jool global update ss-max-sessions-per-packet 1
  return 0
}

bulk_step() { # kind count rep
  local kind=$1 n=$2 rep=$3 p0 p last still=0 end
  log "bulk $kind $n rep $rep: K reset, starting the daemons"
  bulk_reset_k
  local failed="BENCH bulk kind=$kind count=$n batch=$BULK_BATCH rep=$rep error=daemons-did-not-start"
  # A keyed K that starts announces itself and J's daemon answers with the bulk (secure sync's
  # own resync): that one is measured, from J's JOOLD_ADVERTISE in the capture, K started after
  # J is quiet; so K's start-up is inside the measured window. Any other kind: both daemons
  # started, then `jool joold advertise` on J. ours-keyed-cli measures a keyed pair that way: K
  # first, sync-ready (no peer yet), then J, which K's answer to J's announce makes sync-ready.
  local announced=false ready="secure sync: sync-ready"
  case $kind in
    ours-keyed-cli*)
      start "$kind" K && wait_for 120 "K to be sync-ready" grep -q "$ready" /tmp/ours-K.log &&
        start "$kind" J && wait_for 120 "J to be sync-ready" grep -q "$ready" /tmp/ours-J.log
      ;;
    ours-keyed*) announced=true; start "$kind" J ;;
    *) bulk_start "$kind" ;;
  esac || { echo "$failed"; return; }
  # shellcheck disable=SC2046 # one pid per word
  quiesce $(bulk_pids)
  log "bulk $kind: daemons quiet ($(bulk_pids | tr '\n' ' ')), capturing, advertising"
  # K's sync interface too: when J's datagrams arrive.
  bulk_capture_start J
  [ "$kind" = ackonly ] || { bulk_capture_start K; tcpdump_start udp-K K eth2 udp port 6464; }
  p0=$(bulk_progress "$kind"); p0=${p0:-0}
  local t0; t0=$(ms_now)
  if $announced; then
    start "$kind" K || { echo "$failed"; return; }
  else
    in_ns J jool joold advertise 2>/dev/null || in_ns J jool session advertise
  fi
  # Done when every session arrived, or nothing moved for 10 s (then the step reports the loss).
  end=$((SECONDS + 900)); last=-1
  while [ $SECONDS -lt $end ]; do
    p=$(( $(bulk_progress "$kind") - p0 ))
    [ "$p" -ge "$n" ] && break
    if [ "$p" = "$last" ]; then still=$((still + 1)); [ $still -ge 20 ] && break; else still=0 last=$p; fi
    sleep 0.5
  done
  local polled_ms=$(( $(ms_now) - t0 ))
  log "bulk $kind: progress $p of $n after ${polled_ms} ms"
  bulk_capture_stop J; [ "$kind" = ackonly ] || { bulk_capture_stop K; tcpdump_stop udp-K; }
  local keep="/mnt/results/captures/bulk-$kind-$n-$BULK_BATCH-$rep"
  mkdir -p /mnt/results/captures
  cp /tmp/nl-J.pcap "$keep.J.pcap"
  cat /tmp/tcpdump-*.log >"$keep.tcpdump.log" 2>/dev/null
  if [ "$kind" != ackonly ]; then cp /tmp/nl-K.pcap "$keep.K.pcap"; cp /tmp/udp-K.pcap "$keep.udp-K.pcap"; fi
  log "bulk $kind: captures stopped ($(stat -c %s /tmp/nl-J.pcap) bytes in J's)"
  local cpu; cpu=$(for pid in $(bulk_pids); do proc_stat "$pid" | tr ' ' ,; done | tr '\n' ' ')
  local k=- timeline
  [ "$kind" = ackonly ] || k=$(udp_count K)
  timeline=$(deno run --quiet --no-prompt --allow-read "$PROJECT/lab/guest/bulktime.ts" /tmp/nl-J.pcap \
    "$([ "$kind" = ackonly ] && echo - || echo /tmp/nl-K.pcap)" "$FAMILY" "$JOOL_VERSION" \
    "$([ "$kind" = ackonly ] && echo - || echo /tmp/udp-K.pcap)" 2>&1 | grep -v "^    at " | tr '\n' ' ')
  echo "BENCH bulk kind=$kind count=$n batch=$BULK_BATCH rep=$rep j_table=$BULK_J k_table=$k progress=$p" \
    "polled_ms=$polled_ms [$timeline] cpu_rss=[${cpu% }]"
  local f kind_ns
  for f in /tmp/daemon-*.pid; do # daemon-KIND-NS.pid
    [ -e "$f" ] || continue
    kind_ns=${f#/tmp/daemon-}; kind_ns=${kind_ns%.pid}
    stop_daemon "${kind_ns%-*}" "${kind_ns##*-}"
  done
}

# Host micro-benchmarks run in the guest (run.ts --bench-micro secure_bench.ts,...): what a
# function costs under the lab's emulation, where native code and JavaScript do not scale alike.
MICRO=$(cmdline bench_micro | tr , ' ')
if [ -n "$MICRO" ]; then
  for file in $MICRO; do
    # cipher_bench.ts: also with libcrypto's SIMD paths masked (OPENSSL_ia32cap: ":0" no AVX2 nor
    # AVX-512; then no AVX either; then no SSSE3 either, its scalar code): what the emulation of
    # each costs under TCG, which no hardware pays.
    masks=default
    [ "$file" = cipher_bench.ts ] && masks="default :0 ~0x1000000000000000:0 ~0x1000020000000000:0"
    for mask in $masks; do
      log "micro-benchmark bench/$file (deno bench, --v8-flags=--no-turbofan as the daemon runs; OPENSSL_ia32cap $mask)"
      # --no-check: no type-checking in the guest (its Deno cache is read-only), as the daemon runs.
      if [ "$mask" = default ]; then unset OPENSSL_ia32cap; else export OPENSSL_ia32cap=$mask; fi
      deno bench --quiet --no-check --no-prompt --config "$PROJECT/deno.json" --allow-read \
        "--allow-ffi=$LIBC${LIBCRYPTO:+,$LIBCRYPTO}" --v8-flags=--no-turbofan \
        "$PROJECT/bench/$file" >/tmp/micro.out 2>&1 || log "deno bench failed: $(tail -5 /tmp/micro.out)"
      sed 's/\x1b\[[0-9;]*m//g' /tmp/micro.out | grep '^| [^-]' | sed "s/^/BENCH micro ia32cap=$mask /"
    done
    unset OPENSSL_ia32cap
  done
  result bench PASS
  exit 0
fi

# Jool's own cost of a JOOLD_ADD (run.ts --bench-addcost 36,1,360,72): K's kernel alone, no
# daemon, COUNT sessions in ADDs of each size, three rounds (guest/addcost.ts): how much of a bulk's
# time the standby's kernel takes, and what one ADD costs beside its sessions.
ADDCOST=$(cmdline bench_addcost | tr , ' ')
if [ -n "$ADDCOST" ]; then
  setup 6 true
  in_ns K jool global update udp-timeout 2:00:00
  log "addcost benchmark: Jool $JOOL_VERSION, chunks $ADDCOST"
  block=1
  for round in 1 2 3; do
    for chunk in $ADDCOST; do
      n=20000; [ "$chunk" -lt 10 ] && n=5000
      ip netns exec K deno run --quiet --no-prompt "--allow-ffi=$LIBC" --allow-read --v8-flags=--no-turbofan \
        "$PROJECT/lab/guest/addcost.ts" "$n" "$chunk" "$block" 2>&1 | sed "s/^BENCH addcost /BENCH addcost round=$round /"
      block=$((block + 1))
    done
    log "K holds $(udp_count K) UDP sessions"
  done
  teardown >/dev/null 2>&1
  result bench PASS
  exit 0
fi

if [ -n "$BULK" ]; then
  log "bulk benchmark: Jool $JOOL_VERSION, sizes $BULK, batches $BULK_BATCHES, $REPS repetitions, kinds $KINDS"
  if [ "$REV" -lt 11 ]; then
    log "Jool $JOOL_VERSION ignores JOOLD_ADVERTISE: no bulk resync to measure"
    result bench PASS
    exit 0
  fi
  for n in $BULK; do
    for BULK_BATCH in $BULK_BATCHES; do
      setup 6 false
      bulk_tune J
      bulk_fill "$n"
      BULK_J=$(udp_count J)
      log "J holds $BULK_J UDP sessions (batch $BULK_BATCH)"
      in_ns J jool global update ss-enabled true
      # Rep 0 is a warm-up, not counted: on three boots of 2026-12-03 the first repetition's
      # bulk (the boot's first daemons) was its boot's slowest plain one (K last at 2961, 3744
      # and 2962 ms, the later ones 1868-3297), which favoured whichever kind ran after it.
      for rep in $(seq 0 "$REPS"); do
        for kind in $KINDS; do bulk_step "$kind" "$BULK_J" "$rep"; done
      done
      teardown >/dev/null 2>&1
    done
  done
  result bench PASS
  exit 0
fi

log "benchmark: Jool $JOOL_VERSION, $COUNT sessions per step (after $WARMUP warm-up sessions), rates $RATES, $REPS repetitions," \
  "interop at ${INTEROP_RATE}/s, idle ${IDLE_S}s, kinds $KINDS, Jool family id $FAMILY"
for rate in $RATES; do
  for rep in $(seq "$REPS"); do
    for kind in $KINDS; do step "$kind" "$kind" "$rate" "$rep"; done
  done
done
if [ "$INTEROP_RATE" -gt 0 ]; then
  for rep in $(seq "$REPS"); do
    step ours c "$INTEROP_RATE" "$rep"
    step c ours "$INTEROP_RATE" "$rep"
  done
fi
if [ "$IDLE_S" -gt 0 ]; then
  for kind in $KINDS; do idle "$kind"; done
fi
result bench PASS
