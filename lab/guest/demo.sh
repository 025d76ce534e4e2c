#!/bin/bash
# The narrated demo (deno task demo): two NAT64 translators with the real Jool module, our daemon on
# both, traffic through J, both session tables side by side, failover to K on the synced sessions,
# and both daemons' stats. Lines starting with "DEMO " are shown to the user as they come.
LIB_ONLY=1 source /mnt/project/lab/guest/scenarios.sh
say() { echo "DEMO $*"; }
show() { while IFS= read -r line; do echo "DEMO     $line"; done; }
side_by_side() {
  say ""
  say "$(printf '%-58s | %s' "J (active): jool session display" "K (standby): jool session display")"
  all_tables J | cut -d, -f1-3,6-9 | sed 's/,/ /g' | awk '{printf "%-58s\n", $0}' >/tmp/demo-J
  all_tables K | cut -d, -f1-3,6-9 | sed 's/,/ /g' >/tmp/demo-K
  paste -d'|' /tmp/demo-J /tmp/demo-K | show
  say ""
}
status=0
say "Jool $JOOL_VERSION in the guest kernel $(uname -r); our daemon: $(deno --version | head -1)"
say "Building the tutorial topology: n6 (2001:db8::8) -> NAT64 J or K -> n4 (192.0.2.8),"
say "J and K syncing over ff08::db8:64:64 port 6464 on their own link (eth2)."
setup 6
say "Starting joold on J and on K (the C daemon's own JSON files, legacy syntax, stats on 6401)..."
ours J 6401 && ours K 6401 || { say "FAILED: a daemon did not start"; dump_logs | show; exit 1; }
say "n6 pings n4 and sends UDP to it through J (64:ff9b::192.0.2.8):"
in_ns n4 nc -u -l 7000 >/tmp/n4-udp.out 2>/dev/null &
in_ns n6 ping -c 3 -i 0.3 64:ff9b::192.0.2.8 | grep -E "bytes from|packets" | show
echo "hello through J" | in_ns n6 nc -u -w 1 -p 40000 64:ff9b::192.0.2.8 7000
if check_synced 10 >/dev/null; then
  say "K received J's sessions from our daemons:"
else
  say "FAILED: K does not have J's sessions"; status=1
fi
side_by_side
say "Failover: J's NAT64 goes away, K takes over 2001:db8::1 and 192.0.2.1."
in_ns J jool instance remove
ip -n J addr del 2001:db8::1/96 dev eth0; ip -n J addr del 192.0.2.1/24 dev eth1
ip -n K addr add 2001:db8::1/96 dev eth0 nodad; ip -n K addr add 192.0.2.1/24 dev eth1
in_ns n6 ip neigh flush all; in_ns n4 ip neigh flush all
before=$(table K udp)
echo "hello through K" | in_ns n6 nc -u -w 1 -p 40000 64:ff9b::192.0.2.8 7000
if wait_for 10 "the flow through K" grep -q "through K" /tmp/n4-udp.out && [ "$before" = "$(table K udp)" ]; then
  say "n4 received, from the same 192.0.2.1 port, both messages:"
  show </tmp/n4-udp.out
  say "The UDP flow continued through K on the synced session (K created no new one)."
else
  say "FAILED: the flow did not continue through K on the synced session"; status=1
fi
for ns in J K; do
  say "joold stats on $ns (echo | nc -u ::1 6401):"
  stats_query "$ns" 6401 | show
done
[ $status = 0 ] && say "Done: the sessions were synchronized by joold on a real Jool $JOOL_VERSION."
[ $status = 0 ] && result demo PASS || result demo FAIL "see above"
teardown >/dev/null 2>&1
exit 0
