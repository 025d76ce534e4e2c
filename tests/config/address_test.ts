import assert from "node:assert/strict";
import { addressFamily, isMulticast, parseIPv4, parseIPv6 } from "../../lib/config/address.ts";

const bytes = (...b: number[]) => Uint8Array.from(b);

Deno.test("parseIPv4 reads dotted quads and rejects everything else", () => {
  assert.deepEqual(parseIPv4("233.252.0.64"), bytes(233, 252, 0, 64));
  assert.deepEqual(parseIPv4("0.0.0.0"), bytes(0, 0, 0, 0));
  for (const bad of ["256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "a.b.c.d", "", "1.2.3.4 "]) {
    assert.deepEqual(parseIPv4(bad), null, bad);
  }
});

Deno.test("parseIPv6 handles compression, full form and embedded IPv4", () => {
  const cases: [string, number[]][] = [
    ["::", new Array(16).fill(0)],
    ["::1", [...new Array(15).fill(0), 1]],
    ["ff08::db8:64:64", [0xff, 0x08, ...new Array(8).fill(0), 0x0d, 0xb8, 0, 0x64, 0, 0x64]],
    ["64:ff9b::192.0.2.8", [0, 0x64, 0xff, 0x9b, ...new Array(8).fill(0), 192, 0, 2, 8]],
    ["1:2:3:4:5:6:7:8", [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]],
  ];
  for (const [text, expected] of cases) {
    assert.deepEqual(parseIPv6(text), Uint8Array.from(expected));
  }
  for (
    const bad of ["1::2::3", ":::", "1:2:3:4:5:6:7:8:9", "12345::", "fe80::1%eth0", "g::", "1"]
  ) {
    assert.deepEqual(parseIPv6(bad), null, bad);
  }
});

Deno.test("isMulticast knows 224.0.0.0/4 and ff00::/8", () => {
  assert(isMulticast("224.0.0.1"));
  assert(isMulticast("239.255.255.255"));
  assert(!isMulticast("240.0.0.1"));
  assert(!isMulticast("192.0.2.1"));
  assert(isMulticast("ff02::1"));
  assert(!isMulticast("fe80::1"));
  assert(!isMulticast("not an address"));
  assert.deepEqual(addressFamily("::ffff:1.2.3.4"), 6);
  assert.deepEqual(addressFamily("eth0"), null);
});
