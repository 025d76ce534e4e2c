// Hostile traffic on the lab's sync link, for the hardening scenarios:
//   deno run --allow-ffi=<libc> forge.ts sessions GROUP PORT OUT_INTERFACE nested|compact36 SRC6PORT
//     one datagram to the group, in the peer kernel's own format, holding two forged sessions: a UDP
//     session that claims 49.7 days to live (SRC6PORT), and a TCP session in a state no timer
//     holds (state 7; SRC6PORT + 1). Both are shaped well: only their meaning is wrong.
//   deno run --allow-ffi=<libc> forge.ts flood ADDRESS PORT OUT_INTERFACE SECONDS RATE
//     empty datagrams to ADDRESS:PORT (a stats server), RATE per second in 10 ms bursts. Paced, not
//     as fast as the socket takes them: an unpaced flood over the veth panicked trixie's guest
//     kernel under TCG (__netif_receive_skb_core), which judges QEMU, not the daemon.
import {
  AF_INET6,
  ifNameToIndex,
  IPPROTO_IPV6,
  IPV6_MULTICAST_IF,
  sendto,
  setsockoptInt,
  SOCK_DGRAM,
  socket,
} from "../../ffi/libc.ts";
import { sockaddrIn6 } from "../../ffi/sockaddr.ts";
import { parseIPv4, parseIPv6 } from "../../lib/config/address.ts";
import { concat } from "../../lib/netlink/attribute.ts";
import { encodeCompact36, encodeNested, type Session } from "../../lib/jool/session.ts";

const [mode, address, port, dev, arg, arg2] = Deno.args;
const fd = socket(AF_INET6, SOCK_DGRAM, 0);
setsockoptInt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, ifNameToIndex(dev), "IPV6_MULTICAST_IF");
const to = sockaddrIn6(parseIPv6(address)!, Number(port));

if (mode === "sessions") {
  const encode = arg === "nested" ? encodeNested : encodeCompact36;
  const base = Number(arg2);
  const session = (proto: number, state: number, src6Port: number): Session => ({
    proto,
    state,
    timer: 0,
    src6: parseIPv6("2001:db8::8")!,
    src6Port,
    dst6: parseIPv6("64:ff9b::c000:208")!,
    dst6Port: 7000,
    src4: parseIPv4("192.0.2.1")!,
    src4Port: src6Port,
    dst4: parseIPv4("192.0.2.8")!,
    dst4Port: 7000,
    expirationMs: 0xffff_fff0,
  });
  const datagram = concat(encode(session(1, 0, base)), encode(session(0, 7, base + 1)));
  if (sendto(fd, datagram, to) < 0) throw new Error("the forged datagram could not be sent");
  console.log(`sent 2 forged sessions (${arg}, ${datagram.length} bytes)`);
} else if (mode === "flood") {
  const perBurst = Math.max(1, Math.round(Number(arg2) / 100));
  const until = performance.now() + 1000 * Number(arg);
  const empty = new Uint8Array(0);
  let sent = 0;
  console.log("flooding"); // the scenario waits for this line, not for a fixed time
  for (let next = performance.now(); next < until; next += 10) {
    for (let i = 0; i < perBurst; i++) if (sendto(fd, empty, to) >= 0) sent++;
    await new Promise((r) => setTimeout(r, Math.max(0, next + 10 - performance.now())));
  }
  console.log(`sent ${sent} empty datagrams in ${arg} s`);
} else {
  throw new Error(`unknown mode ${mode}: sessions or flood`);
}
