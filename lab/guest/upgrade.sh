#!/bin/bash
# The two-guest lab (run by init.sh when the kernel command line has joold.role=J|K): a rolling
# upgrade across Jool's session formats. Translator J is a bookworm guest (Jool 4.1.9, nested
# sessions), translator K a trixie guest (Jool 4.1.13, 36-byte records), each in its own QEMU with
# its own n6 and n4 namespaces; their only link is the sync NIC, a virtio card whose Ethernet frames
# QEMU carries as UDP datagrams over the host's loopback (lab/run.ts). The guests coordinate through
# files: each writes words to its results share's out/, and run.ts copies them into the peer's in/.
#
# Prints one line per verdict this guest judges, "RESULT <name> PASS|FAIL <detail>":
#   K: k-translate-9-to-13, k-failover-across-versions, k-no-translate-9-to-13
#   J: k-translate-13-to-9, k-no-translate-13-to-9
set -u
# The helpers of scenarios.sh (topology, daemons, tables, polling), without its runner at the end.
# shellcheck source=/dev/null
source <(sed '/^wanted=\${1:-all}$/,$d' /mnt/project/lab/guest/scenarios.sh)

ROLE=$(cmdline_param role)
PEER=K; [ "$ROLE" = K ] && PEER=J
N=4; [ "$ROLE" = K ] && N=5
MAC=$(cmdline_param sync_mac)
# Two TCG guests at once on a shared host each run at about half speed: a longer sync deadline.
PAIR_DEADLINE=$(cmdline_param pair_deadline)
PAIR_DEADLINE=${PAIR_DEADLINE:-10}
# How long to wait for a word from the peer: it may boot a minute later, or start its daemon slowly.
WORD_WAIT=300
OUT=/mnt/results/out
IN=/mnt/results/in
mkdir -p "$OUT" "$IN"

# ---- words between the guests ---------------------------------------------------------------
tell() { # word [file]: written whole (rename), so the relay never copies half a word
  local tmp="$OUT/.$1.tmp"
  if [ -n "${2:-}" ]; then cp "$2" "$tmp"; else echo "$(date +%T)" >"$tmp"; fi
  mv "$tmp" "$OUT/$1"
}

hear() { # word: waits for it (the peer's own failure ends the wait at once)
  local end=$((SECONDS + WORD_WAIT))
  while [ ! -e "$IN/$1" ]; do
    [ -e "$IN/abort" ] && fail "$PEER gave up: $(cat "$IN/abort")"
    [ $SECONDS -ge $end ] && fail "no word \"$1\" from $PEER within ${WORD_WAIT}s"
    sleep 0.3
  done
  log "heard \"$1\" from $PEER"
}

# ---- topology: n6 - ROLE - n4, and the sync NIC as ROLE's eth2 ------------------------------------
pair_setup() {
  modprobe virtio_net
  local nic="" end=$((SECONDS + 30))
  while [ -z "$nic" ]; do
    for d in /sys/class/net/*; do
      [ "$(cat "$d/address" 2>/dev/null)" = "$MAC" ] && nic=${d##*/}
    done
    [ -n "$nic" ] && break
    [ $SECONDS -ge $end ] && fail "no network card with the sync link's MAC $MAC"
    sleep 0.2
  done
  # The kernel calls it eth0, a name the namespaces' veths take below: give it one of its own.
  ip link set "$nic" down
  ip link set "$nic" name sync0
  for ns in n6 "$ROLE" n4; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    in_ns "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  done
  for br in br6 br4; do
    ip link add "$br" type bridge
    echo 0 >"/sys/class/net/$br/bridge/multicast_snooping"
    ip link set "$br" up
  done
  veth_to_bridge n6 eth0 br6; veth_to_bridge "$ROLE" eth0 br6
  veth_to_bridge n4 eth0 br4; veth_to_bridge "$ROLE" eth1 br4
  ip link set sync0 netns "$ROLE"
  ip -n "$ROLE" link set sync0 name eth2
  ip -n "$ROLE" link set eth2 up
  ip -n "$ROLE" addr add "2001:db8:ff08::$N/96" dev eth2 nodad
  ip -n "$ROLE" addr add "198.51.100.$N/24" dev eth2
  ip -n n6 addr add 2001:db8::8/96 dev eth0 nodad
  ip -n n6 route add 64:ff9b::/96 via 2001:db8::1
  ip -n n4 addr add 192.0.2.8/24 dev eth0
  ip -n "$ROLE" addr add "2001:db8::$N/96" dev eth0 nodad
  ip -n "$ROLE" addr add "192.0.2.$N/24" dev eth1
  # Each guest is its own world: both translators hold the virtual addresses of their own clients.
  ip -n "$ROLE" addr add 2001:db8::1/96 dev eth0 nodad
  ip -n "$ROLE" addr add 192.0.2.1/24 dev eth1
  in_ns "$ROLE" sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv6.conf.all.forwarding=1
  jool_instance "$ROLE"
  mkdir -p "$CFG"
  echo '{ "instance": "default" }' >"$CFG/modsocket.json"
  net_file true
  log "$ROLE: Jool $JOOL_VERSION, sync link $nic ($MAC) as eth2, 2001:db8:ff08::$N"
}

net_file() { # translate (true|false): the C daemon's file, with "translate sessions" or without it
  {
    printf '{\n "multicast address": "ff08::db8:64:64",\n "multicast port": "6464",\n'
    printf ' "in interface": "eth2",\n "out interface": "eth2",\n "reuseaddr": 1,\n "ttl": 3'
    [ "$1" = true ] && printf ',\n "translate sessions": true'
    printf '\n}\n'
  } >"$CFG/net-$ROLE.json"
}

has_all() { # ns file: the table of ns holds every session of the file (and the file has one)
  [ -s "$2" ] || return 1
  all_tables "$1" >"/tmp/has-$1" || return 1
  [ -z "$(comm -23 "$2" "/tmp/has-$1")" ]
}

has_none() { # ns file: the table of ns holds no session of the file
  all_tables "$1" >"/tmp/has-$1" || return 1
  [ -z "$(comm -12 "$2" "/tmp/has-$1")" ]
}

new_flows() { # tag file: flows from n6 through ROLE; the sessions they made (or changed) go to file
  all_tables "$ROLE" >/tmp/before-flows
  flows "$1"
  all_tables "$ROLE" | comm -13 /tmp/before-flows - >"$2"
  [ -s "$2" ] || fail "$ROLE made no session for the $1 flows"
  log "$ROLE's $(wc -l <"$2") new sessions ($1):"; cat "$2"
}

peer_synced() { # ns file what: polls until ns holds the file's sessions (from hearing them)
  local t0; t0=$(ms_now)
  check_within "$PAIR_DEADLINE" "$t0" "$3" has_all "$1" "$2" && return 0
  log "$1's sessions:"; all_tables "$1"
  return 1
}

restart_plain() { # ROLE's daemon again, without "translate sessions"
  stop_daemon ours "$ROLE"
  net_file false
  ours "$ROLE" || fail "$ROLE's daemon did not start again without translate sessions"
}

dropped_warning() { # the warning that names both formats: a datagram arrived and was dropped
  local mine=nested theirs=compact36
  [ "$ROLE" = K ] && mine=compact36 theirs=nested
  wait_for 60 "$ROLE's daemon to drop $PEER's $theirs datagrams" \
    grep -q "dropped a datagram of $theirs sessions: the local Jool uses $mine sessions" \
    "/tmp/ours-$ROLE.log" || fail "$ROLE's daemon did not warn about $PEER's $theirs datagrams"
  log "$(grep -m1 "dropped a datagram of" "/tmp/ours-$ROLE.log")"
}

verdict() { # name function: one judged step, its RESULT line; a failure ends this guest's part
  local name=$1 fn=$2 detail rc=0
  log "=== $name"
  detail=$($fn 2>&1) || rc=$?
  echo "$detail"
  if [ $rc = 0 ]; then
    result "$name" PASS
    return 0
  fi
  result "$name" FAIL "$(echo "$detail" | grep -E '^(FAIL|\[)' | tail -1)"
  return 1
}

step() { # function: a step whose failure is the scenario's failure, not a verdict of its own
  local detail rc=0
  detail=$($1 2>&1) || rc=$?
  echo "$detail"
  [ $rc = 0 ] && return 0
  log "step $1 failed: $(echo "$detail" | grep -E '^FAIL' | tail -1)"
  return 1
}

# ---- J: the 4.1.9 side ----------------------------------------------------------------------
j_start() {
  pair_setup
  ours J || fail "J's daemon did not start"
  grep "translate sessions" /tmp/ours-J.log
  tell up; hear up
  new_flows 9to13 /tmp/j-new
  tell j-table /tmp/j-new
  hear k-got-j
}
j_translate_13_to_9() { # K's 36-byte records in J's nested kernel, dst6 from J's pool6
  hear k-table
  peer_synced J "$IN/k-table" "K's $(wc -l <"$IN/k-table") sessions" ||
    fail "J lacks K's sessions ${PAIR_DEADLINE}s after hearing them"
  tell j-got-k
}
j_failover() { # J's half: the flow, then J's instance goes away; K judges
  in_ns n4 nc -u -l 7000 >/tmp/n4-udp.out 2>/dev/null &
  echo "before" | in_ns n6 nc -u -w 1 -p 40000 64:ff9b::192.0.2.8 7000
  wait_for 10 "the flow to reach n4 through J" grep -q before /tmp/n4-udp.out ||
    fail "the UDP flow did not reach n4 through J"
  table J udp | grep ',40000,' >/tmp/j-flow
  log "J's session of the flow: $(cat /tmp/j-flow)"
  tell fo-session /tmp/j-flow
  hear fo-synced
  in_ns J jool instance remove
  log "J's instance removed"
  tell j-gone
  hear fo-done
}
j_plain() {
  jool_instance J
  restart_plain
  tell plain-up; hear plain-up
  new_flows plain9 /tmp/j-plain
  tell j-plain /tmp/j-plain
}
j_no_translate_13_to_9() {
  hear k-plain
  dropped_warning
  has_none J "$IN/k-plain" || fail "J's kernel got K's 36-byte sessions without translate sessions"
  log "J's table has none of K's $(wc -l <"$IN/k-plain") new sessions"
  tell j-plain-done
}

# ---- K: the 4.1.13 side ---------------------------------------------------------------------
k_start() {
  pair_setup
  ours K || fail "K's daemon did not start"
  grep "translate sessions" /tmp/ours-K.log
  tell up; hear up
}
k_translate_9_to_13() { # J's nested sessions in K's 36-byte kernel, field by field
  hear j-table
  peer_synced K "$IN/j-table" "J's $(wc -l <"$IN/j-table") sessions" ||
    fail "K lacks J's sessions ${PAIR_DEADLINE}s after hearing them"
  tell k-got-j
}
k_flows() { # K's half of 13-to-9: its flows; J judges
  new_flows 13to9 /tmp/k-new
  tell k-table /tmp/k-new
  hear j-got-k
}
k_failover() { # the flow J carried reaches n4 through K on the synced session: no new session
  in_ns n4 nc -u -l 7000 >/tmp/n4-udp.out 2>/dev/null &
  hear fo-session
  peer_synced K "$IN/fo-session" "J's session of the flow" || fail "K lacks J's session of the flow"
  local before after
  before=$(table K udp | grep ',40000,')
  tell fo-synced
  hear j-gone
  echo "after" | in_ns n6 nc -u -w 1 -p 40000 64:ff9b::192.0.2.8 7000
  wait_for 10 "the flow to continue through K" grep -q after /tmp/n4-udp.out ||
    fail "the flow did not reach n4 through K"
  after=$(table K udp | grep ',40000,')
  [ "$before" = "$after" ] || fail "K made a session of its own: before [$before] after [$after]"
  [ "$after" = "$(cat "$IN/fo-session")" ] ||
    fail "K's session [$after] is not J's [$(cat "$IN/fo-session")]"
  log "the flow continued through K (4.1.13) on J's (4.1.9) session: $after"
  tell fo-done
}
k_plain() {
  restart_plain
  tell plain-up; hear plain-up
}
k_no_translate_9_to_13() {
  hear j-plain
  dropped_warning
  has_none K "$IN/j-plain" || fail "K's kernel got J's nested sessions without translate sessions"
  log "K's table has none of J's $(wc -l <"$IN/j-plain") new sessions"
  new_flows plain13 /tmp/k-plain
  tell k-plain /tmp/k-plain
  hear j-plain-done
}

# ---- the run --------------------------------------------------------------------------------
log "upgrade pair: $ROLE (Jool $JOOL_VERSION), peer $PEER, pair deadline ${PAIR_DEADLINE}s"
if [ "$ROLE" = J ]; then
  step j_start && verdict k-translate-13-to-9 j_translate_13_to_9 && step j_failover &&
    step j_plain && verdict k-no-translate-13-to-9 j_no_translate_13_to_9
else
  step k_start && verdict k-translate-9-to-13 k_translate_9_to_13 && step k_flows &&
    verdict k-failover-across-versions k_failover && step k_plain &&
    verdict k-no-translate-9-to-13 k_no_translate_9_to_13
fi
rc=$?
if [ $rc != 0 ]; then
  echo "$ROLE stopped at a failed step (its scenarios.log says which)" >/tmp/abort
  tell abort /tmp/abort
fi
dump_logs
tell finished
# Power off only once the peer is through too: it may still wait for one of this guest's words.
hear finished >/dev/null 2>&1
exit 0
