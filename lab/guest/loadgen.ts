// Load generator for the lab benchmark: from the IPv6 client, one UDP datagram to each of COUNT
// destination ports (every one a new NAT64 session) at RATE datagrams/s, with synchronous libc
// sendto (Deno's node:dgram loses datagrams when closed right after a burst; docs/DESIGN.md, "Sync
// rate").
//   deno run --allow-ffi=<libc> loadgen.ts DST BASE_PORT COUNT RATE
//
// A steady rate, never a burst: under emulation this process itself stalls now and then (its own
// start-up JIT and GC took 170-500 ms right after the first datagram), and catching up afterwards
// would offer the translator hundreds of sessions at once: a test of the kernel queue's
// `ss-capacity` (512), not of the daemon's rate. So it first warms up (the same sends to the
// client's own loopback, which creates no session), and when it falls behind by more than
// MAX_LAG datagrams it moves its schedule instead of bursting. It reports the rate it reached
// and how often it slipped.
import { AF_INET6, close, sendto, SOCK_DGRAM, socket } from "../../ffi/libc.ts";
import { sockaddrIn6 } from "../../ffi/sockaddr.ts";
import { parseIPv6 } from "../../lib/config/address.ts";

/** The most datagrams sent at once to catch up with the schedule. */
const MAX_LAG = 16;

const [dst, base, countText, rateText] = Deno.args;
const count = Number(countText);
const rate = Number(rateText);
const address = parseIPv6(dst)!;
const fd = socket(AF_INET6, SOCK_DGRAM, 0);
const payload = new TextEncoder().encode("joold lab load");
const targets = Array.from({ length: count }, (_, i) => sockaddrIn6(address, Number(base) + i));
const sleep = () => new Promise((r) => setTimeout(r, 1));

// Warm-up: the send loop's code paths, against ::1 (no NAT64, no session), for ~300 ms.
const loopback = sockaddrIn6(parseIPv6("::1")!, 9);
for (const end = performance.now() + 300; performance.now() < end;) {
  for (let i = 0; i < 8; i++) sendto(fd, payload, loopback);
  await sleep();
}

const start = performance.now();
let t0 = start;
let sent = 0;
let failed = 0;
let slips = 0;
while (sent < count) {
  let due = Math.min(count, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
  if (due - sent > MAX_LAG) {
    slips++;
    t0 += ((due - sent - MAX_LAG) * 1000) / rate; // the schedule moves; the rate reached drops
    due = sent + MAX_LAG;
  }
  while (sent < due) {
    if (sendto(fd, payload, targets[sent]) < 0) failed++;
    sent++;
  }
  await sleep();
}
close(fd);
const seconds = (performance.now() - start) / 1000;
console.log(
  `sent ${sent} datagrams (${failed} failed) in ${seconds.toFixed(2)}s: ${
    (sent / seconds).toFixed(0)
  }/s, ${slips} slips`,
);
