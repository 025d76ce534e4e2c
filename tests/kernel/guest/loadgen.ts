// Load generator for the lab benchmark: from the IPv6 client, one UDP datagram to each of COUNT
// destination ports (every one a new NAT64 session) at RATE datagrams/s, with synchronous libc
// sendto (Deno's node:dgram loses datagrams when closed right after a burst; DESIGN.md).
//   deno run --allow-ffi=<libc> loadgen.ts DST BASE_PORT COUNT RATE
import { AF_INET6, close, sendto, SOCK_DGRAM, socket } from "../../../ffi/libc.ts";
import { sockaddrIn6 } from "../../../ffi/sockaddr.ts";
import { parseIPv6 } from "../../../lib/config/address.ts";

const [dst, base, countText, rateText] = Deno.args;
const count = Number(countText);
const rate = Number(rateText);
const address = parseIPv6(dst)!;
const fd = socket(AF_INET6, SOCK_DGRAM, 0);
const payload = new TextEncoder().encode("joold lab load");
const t0 = performance.now();
let sent = 0;
let failed = 0;
while (sent < count) {
  // Send what the schedule says is due, then sleep a little.
  const due = Math.min(count, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
  while (sent < due) {
    if (sendto(fd, payload, sockaddrIn6(address, Number(base) + sent)) < 0) failed++;
    sent++;
  }
  await new Promise((r) => setTimeout(r, 2));
}
close(fd);
const seconds = (performance.now() - t0) / 1000;
console.log(
  `sent ${sent} datagrams (${failed} failed) in ${seconds.toFixed(2)}s: ${
    (sent / seconds).toFixed(0)
  }/s`,
);
