import assert from "node:assert/strict";
import {
  AF_INET,
  AF_INET6,
  AF_NETLINK,
  bind,
  close,
  getsockname,
  SOCK_DGRAM,
  SOCK_RAW,
  socket,
} from "../../ffi/libc.ts";
import {
  decodeSockaddr,
  formatAddress,
  formatSocketAddress,
  netlinkPortId,
  sockaddrIn,
  sockaddrIn6,
  sockaddrNl,
} from "../../ffi/sockaddr.ts";
import { NETLINK_GENERIC } from "../../lib/netlink/conn.ts";

function boundName(family: number, address: Uint8Array<ArrayBuffer>): Uint8Array {
  const fd = socket(family, SOCK_DGRAM, 0);
  try {
    bind(fd, address);
    return getsockname(fd);
  } finally {
    close(fd);
  }
}

Deno.test("sockaddr_in: the kernel accepts our encoding and getsockname decodes to the same address", () => {
  const name = decodeSockaddr(boundName(AF_INET, sockaddrIn(Uint8Array.of(127, 0, 0, 1), 0)))!;
  assert.equal(name.family, 4);
  assert.deepEqual(name.address, Uint8Array.of(127, 0, 0, 1));
  assert.ok(name.port > 0, "the kernel chose a port");
  assert.equal(formatSocketAddress(name), `127.0.0.1#${name.port}`);
});

Deno.test("sockaddr_in6: the kernel accepts our encoding and getsockname decodes to the same address", () => {
  const loopback = new Uint8Array(16);
  loopback[15] = 1;
  const name = decodeSockaddr(boundName(AF_INET6, sockaddrIn6(loopback, 0)))!;
  assert.equal(name.family, 6);
  assert.deepEqual(name.address, loopback);
  assert.ok(name.port > 0);
  assert.equal(name.scopeId, 0);
  assert.equal(formatSocketAddress(name), `::1#${name.port}`);
});

Deno.test("sockaddr_nl: binding port id 0 gets a kernel-assigned port id, read back from getsockname", () => {
  const fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC);
  try {
    bind(fd, sockaddrNl(0));
    const portId = netlinkPortId(getsockname(fd));
    assert.ok(portId > 0);
    assert.deepEqual(getsockname(fd), sockaddrNl(portId));
  } finally {
    close(fd);
  }
  assert.throws(() => netlinkPortId(sockaddrIn(new Uint8Array(4), 1)), RangeError);
});

Deno.test("sockaddr decoding refuses other families and truncated input", () => {
  assert.equal(decodeSockaddr(sockaddrNl(5)), null);
  assert.equal(decodeSockaddr(sockaddrIn6(new Uint8Array(16), 1).subarray(0, 27)), null);
  assert.equal(decodeSockaddr(new Uint8Array(1)), null);
});

Deno.test("formatAddress writes IPv6 the way WHATWG URL canonicalizes it (RFC 5952), on random addresses", () => {
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  for (let i = 0; i < 2000; i++) {
    // Mostly-zero words so that runs of zeros (and ties between runs) are common.
    const bytes = new Uint8Array(16);
    for (let w = 0; w < 8; w++) {
      if (random() < 0.4) {
        const v = Math.floor(random() * 0x10000);
        bytes[2 * w] = v >> 8;
        bytes[2 * w + 1] = v & 0xff;
      }
    }
    const ours = formatAddress(bytes);
    const canonical = new URL(`http://[${ours}]/`).hostname.slice(1, -1);
    assert.equal(ours, canonical);
    // And it parses back to the same bytes: URL of the fully written form agrees too.
    const full = Array.from(
      { length: 8 },
      (_, w) => ((bytes[2 * w] << 8) | bytes[2 * w + 1]).toString(16),
    );
    assert.equal(new URL(`http://[${full.join(":")}]/`).hostname.slice(1, -1), ours);
  }
  assert.equal(formatAddress(Uint8Array.of(192, 0, 2, 1)), "192.0.2.1");
});
