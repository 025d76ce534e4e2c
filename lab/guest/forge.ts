// Hostile traffic on the lab's sync link, for the hardening scenarios:
//   deno run --allow-ffi=<libc> forge.ts sessions GROUP PORT OUT_INTERFACE nested|compact36 SRC6PORT
//     one datagram to the group, in the peer kernel's own format, holding two forged sessions: a UDP
//     session that claims 49.7 days to live (SRC6PORT), and a TCP session in a state no timer
//     holds (state 7; SRC6PORT + 1). Both are shaped well: only their meaning is wrong.
//   deno run --allow-ffi=<libc> forge.ts flood ADDRESS PORT OUT_INTERFACE SECONDS RATE
//     empty datagrams to ADDRESS:PORT (a stats server), RATE per second in 10 ms bursts. Paced, not
//     as fast as the socket takes them: an unpaced flood over the veth panicked trixie's guest
//     kernel under TCG (__netif_receive_skb_core), which judges QEMU, not the daemon.
//   deno run -A forge.ts capture GROUP PORT IN_INTERFACE FILE
//     joins the group and appends every datagram received to FILE, one hex line each, until killed
//     (a recording of the sync link, for the replay below).
//   deno run -A forge.ts inject GROUP PORT OUT_INTERFACE FILE nested|compact36 SRC6PORT
//     secure sync's attacker without the key: every data envelope of FILE replayed twice, each
//     with a flipped ciphertext byte, each moved to a fresh sequence number (the tag covers it),
//     each cut short, and one forged envelope (a captured header, a fresh sequence, a UDP session
//     on SRC6PORT sealed under a random key). Prints how many of each it sent.
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
import {
  bind,
  IPV6_ADD_MEMBERSHIP,
  recv,
  setsockoptBytes,
  SO_REUSEADDR,
  SOL_SOCKET,
} from "../../ffi/libc.ts";
import { Kind, sealEnvelope } from "../../lib/secure/envelope.ts";
import { parseKeyFile } from "../../lib/secure/keyfile.ts";

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
} else if (mode === "capture") {
  setsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
  bind(fd, sockaddrIn6(new Uint8Array(16), Number(port)), "bind");
  const mreq = new Uint8Array(20);
  mreq.set(parseIPv6(address)!, 0);
  new DataView(mreq.buffer).setUint32(16, ifNameToIndex(dev), true);
  setsockoptBytes(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, mreq, "IPV6_ADD_MEMBERSHIP");
  const file = Deno.openSync(arg, { append: true, create: true });
  const buffer = new Uint8Array(65536);
  console.log(`capturing ${address} port ${port} on ${dev} into ${arg}`);
  while (true) {
    const n = recv(fd, buffer);
    if (n > 0) {
      const hex = Array.from(buffer.subarray(0, n), (b) => b.toString(16).padStart(2, "0")).join(
        "",
      );
      file.writeSync(new TextEncoder().encode(hex + "\n"));
    } else await new Promise((r) => setTimeout(r, 5));
  }
} else if (mode === "inject") {
  const recorded = Deno.readTextFileSync(arg).split("\n").filter((l) => l.length > 0)
    .map((l) => Uint8Array.from(l.match(/../g)!, (h) => parseInt(h, 16)));
  // Data envelopes only (byte 3 = kind 0, version 1): the sessions an attacker wants again.
  const data = recorded.filter((d) =>
    d[0] === 0x4a && d[1] === 0x53 && d[2] === 0x53 && d[3] === 1
  );
  if (data.length === 0) {
    throw new Error(`no data envelope in ${arg} (${recorded.length} datagrams)`);
  }
  const counts = { replayed: 0, flipped: 0, resequenced: 0, truncated: 0, forged: 0 };
  const send = (d: Uint8Array, what: keyof typeof counts) => {
    if (sendto(fd, d as Uint8Array<ArrayBuffer>, to) < 0) {
      throw new Error(`sendto failed (${what})`);
    }
    counts[what]++;
  };
  for (const genuine of data) {
    send(genuine, "replayed");
    send(genuine, "replayed");
    const flipped = genuine.slice();
    flipped[44] ^= 0x01;
    send(flipped, "flipped");
    const moved = genuine.slice();
    moved[39] ^= 0x80; // the sequence's low byte: a number the window has not seen
    moved[36] ^= 0x01;
    send(moved, "resequenced");
    send(genuine.slice(0, genuine.length - 1), "truncated");
  }
  // A fresh session under a random key, with a genuine key id and sender: it fails the tag.
  const encode = arg2 === "nested" ? encodeNested : encodeCompact36;
  const random = Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const [wrong] = parseKeyFile(random, "random.key");
  const base = Number(Deno.args[6]);
  const header = data[0];
  const forged = sealEnvelope(
    wrong,
    {
      kind: Kind.data,
      time: Date.now(),
      sender: header.slice(16, 32),
      sequence: 1_000_000,
    },
    encode({
      proto: 1,
      state: 0,
      timer: 0,
      src6: parseIPv6("2001:db8::8")!,
      src6Port: base,
      dst6: parseIPv6("64:ff9b::c000:208")!,
      dst6Port: 7000,
      src4: parseIPv4("192.0.2.1")!,
      src4Port: base,
      dst4: parseIPv4("192.0.2.8")!,
      dst4Port: 7000,
      expirationMs: 60_000,
    }),
  );
  forged.set(header.subarray(4, 8), 4); // the genuine key id: the tag is what must fail
  send(forged, "forged");
  console.log(`sent ${JSON.stringify(counts)} from ${recorded.length} recorded datagrams`);
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
  throw new Error(`unknown mode ${mode}: sessions, flood, capture, inject`);
}
