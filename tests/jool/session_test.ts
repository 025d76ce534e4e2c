import assert from "node:assert/strict";
import { parseAttributes } from "../../lib/netlink/attribute.ts";
import {
  decodeCompact36,
  decodeCompact48,
  decodePayload,
  encodeCompact36,
  encodeCompact48,
  encodeNested,
  formatTimeout,
  type Session,
  sessionCsv,
} from "../../lib/jool/session.ts";
import { concat } from "../../lib/netlink/attribute.ts";
import { fixture } from "../_fixtures.ts";

Deno.test("4.1.9 nested payloads decode to the sessions of J's table", () => {
  const { format, sessions } = decodePayload(fixture("4.1.9", "d-udp-payload-1session"));
  assert.equal(format, "nested");
  assert.equal(sessions.length, 1);
  // J's table (raw/sessions-J-icmp.csv): ICMP,2001:db8::8,272,64:ff9b::c000:208,272,192.0.2.1,23042,192.0.2.8,23042
  assert.match(
    sessionCsv(sessions[0]),
    /^ICMP,2001:db8::8,272,192\.0\.2\.1,23042,192\.0\.2\.8,23042,0:0\d:\d\d/,
  );
  const four = decodePayload(fixture("4.1.9", "d-udp-payload-4sessions"));
  assert.equal(four.sessions.length, 4);
  assert.ok(four.sessions.every((s) => s.proto === 1));
});

Deno.test("4.1.13 compact payloads decode (36-byte records, network order)", () => {
  const { format, sessions } = decodePayload(fixture("4.1.13", "d-udp-payload-1session"));
  assert.equal(format, "compact36");
  // Bytes: src6 2001:db8::8, src4 192.0.2.1, dst4 192.0.2.8, expiration 0xea60 ms,
  // ports 0x0142 / 0x987b / 0x987b, flags 0x0040 (proto 2 = ICMP).
  assert.equal(
    sessionCsv(sessions[0]),
    "ICMP,2001:db8::8,322,192.0.2.1,39035,192.0.2.8,39035,0:01:00",
  );
  assert.equal(sessions[0].proto, 2);
  assert.equal(decodePayload(fixture("4.1.13", "d-udp-payload-4sessions")).sessions.length, 4);
});

Deno.test("every captured entry re-encodes to the same bytes (both formats)", () => {
  for (
    const [v, enc] of [["4.1.9", encodeNested], ["4.1.13", encodeCompact36]] as const
  ) {
    for (const name of ["d-udp-payload-1session", "d-udp-payload-4sessions"]) {
      const payload = fixture(v, name);
      const { sessions } = decodePayload(payload);
      assert.deepEqual(concat(...sessions.map(enc)), payload, `${v} ${name}`);
    }
  }
});

const SAMPLE: Session = {
  proto: 0,
  src6: Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 8]),
  src6Port: 40000,
  dst6: Uint8Array.from([0, 0x64, 0xff, 0x9b, ...new Array(8).fill(0), 192, 0, 2, 8]),
  dst6Port: 80,
  src4: Uint8Array.of(192, 0, 2, 1),
  src4Port: 61001,
  dst4: Uint8Array.of(192, 0, 2, 8),
  dst4Port: 80,
  expirationMs: 7_439_999,
  state: 0,
  timer: 0,
};

Deno.test("the 48-byte 4.1.12 record round-trips and prints dst4 from dst6", () => {
  const entry = encodeCompact48(SAMPLE);
  assert.equal(entry.length, 52);
  const s = decodeCompact48(parseAttributes(entry)[0].payload);
  assert.equal(sessionCsv(s), "TCP,2001:db8::8,40000,192.0.2.1,61001,192.0.2.8,80,2:03:59.999");
  assert.equal(decodePayload(entry).format, "compact48");
});

Deno.test("the 36-byte record packs proto, state and timer into the flags", () => {
  const entry = encodeCompact36({ ...SAMPLE, proto: 0, state: 4, timer: 1 });
  assert.equal(entry.length, 40);
  const flags = new DataView(entry.buffer).getUint16(4 + 34, false);
  assert.equal(flags, (0 << 5) | (4 << 2) | 1);
  const s = decodeCompact36(parseAttributes(entry)[0].payload);
  assert.deepEqual([s.proto, s.state, s.timer], [0, 4, 1]);
});

Deno.test("formatTimeout prints H:MM:SS and milliseconds like Jool", () => {
  assert.equal(formatTimeout(0), "0:00:00");
  assert.equal(formatTimeout(51_120), "0:00:51.120");
  assert.equal(formatTimeout(7_200_000), "2:00:00");
});

/** Malformed payloads: [description, bytes, expected message]. */
const nested1 = fixture("4.1.9", "d-udp-payload-1session");
const compact1 = fixture("4.1.13", "d-udp-payload-1session");
const BAD: [string, Uint8Array, RegExp][] = [
  ["an empty payload", new Uint8Array(), /no session/],
  ["a truncated entry header", Uint8Array.of(40, 0), /truncated attribute header/],
  ["a length past the buffer", compact1.subarray(0, 30), /overflows its parent/],
  ["a 35-byte record", Uint8Array.of(39, 0, 1, 0, ...new Array(36).fill(0)), /neither nested/],
  ["a wrong entry type", Uint8Array.of(40, 0, 2, 0, ...new Array(36).fill(0)), /type 2/],
  [
    "mixed formats",
    concat(compact1, nested1),
    /mixes session formats/,
  ],
  [
    "an unknown protocol",
    Uint8Array.of(40, 0, 1, 0, ...new Array(34).fill(0), 0x00, 0x60),
    /unknown protocol 3/,
  ],
  ["a nest that overflows its entry", mutate(nested1, 4, 200), /overflows its parent/],
  ["an IPv6 address of the wrong size", mutate(nested1, 8, 19), /./],
];

function mutate(bytes: Uint8Array, offset: number, value: number): Uint8Array {
  const copy = bytes.slice();
  copy[offset] = value;
  return copy;
}

for (const [what, bytes, message] of BAD) {
  Deno.test(`decodePayload rejects ${what}`, () => {
    assert.throws(() => decodePayload(bytes), (e: unknown) => {
      assert.ok(e instanceof RangeError, `expected RangeError, got ${e}`);
      assert.match(e.message, message);
      return true;
    });
  });
}

Deno.test("decodePayload on random and mutated input only ever throws RangeError", () => {
  let seed = 12345;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const seeds = [nested1, compact1, fixture("4.1.9", "d-udp-payload-4sessions")];
  let accepted = 0;
  for (let i = 0; i < 5000; i++) {
    let bytes: Uint8Array;
    if (i % 2 === 0) {
      bytes = seeds[i % seeds.length].slice();
      const flips = 1 + Math.floor(random() * 4);
      for (let f = 0; f < flips; f++) {
        bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      }
      if (random() < 0.3) bytes = bytes.subarray(0, Math.floor(random() * bytes.length));
    } else {
      bytes = Uint8Array.from({ length: Math.floor(random() * 200) }, () => random() * 256);
    }
    try {
      decodePayload(bytes);
      accepted++;
    } catch (e) {
      assert.ok(e instanceof RangeError, `unexpected ${e}`);
    }
  }
  assert.ok(accepted > 0, "some mutations stay valid (e.g. a changed port)");
});
