import assert from "node:assert/strict";
import { AI_PASSIVE, getAddrInfo } from "../../ffi/addrinfo.ts";
import { AF_INET, AF_INET6 } from "../../ffi/libc.ts";
import { decodeSockaddr, formatAddress } from "../../ffi/sockaddr.ts";

Deno.test("getaddrinfo: a numeric IPv4 host and port decode to that address", () => {
  const [first, ...rest] = getAddrInfo("192.0.2.7", "6464");
  assert.equal(rest.length, 0, "SOCK_DGRAM hints: one result");
  assert.equal(first.family, AF_INET);
  const a = decodeSockaddr(first.address)!;
  assert.equal(formatAddress(a.address), "192.0.2.7");
  assert.equal(a.port, 6464);
});

Deno.test("getaddrinfo: an IPv6 host with a service NAME resolves the port from /etc/services", () => {
  const [first] = getAddrInfo("2001:db8::1", "domain");
  assert.equal(first.family, AF_INET6);
  const a = decodeSockaddr(first.address)!;
  assert.equal(formatAddress(a.address), "2001:db8::1");
  assert.equal(a.port, 53);
});

Deno.test("getaddrinfo: the passive wildcard gives the any-address of some family", () => {
  const all = getAddrInfo(null, "6401", AI_PASSIVE).map((r) => decodeSockaddr(r.address)!);
  assert.ok(all.length >= 1);
  for (const a of all) {
    assert.equal(a.port, 6401);
    assert.ok(a.address.every((b) => b === 0), formatAddress(a.address));
  }
});

Deno.test("getaddrinfo: a host name is refused without a DNS lookup, with gai_strerror's words", () => {
  assert.throws(
    () => getAddrInfo("localhost", "6401"),
    /cannot resolve localhost port "6401": .+/,
  );
  assert.throws(() => getAddrInfo("192.0.2.1", "no-such-service-x"), /cannot resolve 192\.0\.2\.1/);
});
