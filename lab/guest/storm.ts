// Sends N malformed datagrams to a multicast group (used by the lab's f-storm scenario):
//   deno run --allow-ffi=<libc> storm.ts GROUP PORT OUT_INTERFACE N
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
import { parseIPv6 } from "../../lib/config/address.ts";

const [group, port, dev, count] = Deno.args;
const fd = socket(AF_INET6, SOCK_DGRAM, 0);
setsockoptInt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, ifNameToIndex(dev), "IPV6_MULTICAST_IF");
const to = sockaddrIn6(parseIPv6(group)!, Number(port));
let seed = 7;
const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
for (let i = 0; i < Number(count); i++) {
  const datagram = Uint8Array.from({ length: 1 + (i * 37) % 1400 }, next);
  while (sendto(fd, datagram, to) < 0) await new Promise((r) => setTimeout(r, 1));
}
console.log(`sent ${count} malformed datagrams`);
