/**
 * decodeNested walks a 4.1.9 entry in place (lib/jool/session.ts). This holds it to the plain
 * decoder it replaced, written here as the reference: over the captured entries and many
 * mutations of them (bytes changed, lengths changed, truncations), both give the same session or
 * throw the same message.
 */
import assert from "node:assert/strict";
import { type Attribute, parseAttributes } from "../../lib/netlink/attribute.ts";
import {
  decodeNested,
  JNLAL_ENTRY,
  JNLASE_DST4,
  JNLASE_DST6,
  JNLASE_EXPIRATION,
  JNLASE_PROTO,
  JNLASE_SRC4,
  JNLASE_SRC6,
  JNLASE_STATE,
  JNLASE_TIMER,
  JNLATA_ADDR,
  JNLATA_PORT,
  type Session,
} from "../../lib/jool/session.ts";
import { fixture } from "../_fixtures.ts";

function taddr(a: Attribute, length: number, what: string): [Uint8Array, number] {
  if (!a.nested) throw new RangeError(`${what} is not a nested attribute`);
  let address: Uint8Array | undefined;
  let port: number | undefined;
  for (const c of parseAttributes(a.payload)) {
    if (c.type === JNLATA_ADDR) {
      if (c.payload.length !== length) {
        throw new RangeError(`${what} address has ${c.payload.length} bytes, expected ${length}`);
      }
      address = c.payload;
    } else if (c.type === JNLATA_PORT) {
      if (c.payload.length < 2) throw new RangeError(`${what} port is truncated`);
      port = c.payload[0] | (c.payload[1] << 8);
    }
  }
  if (address === undefined || port === undefined) {
    throw new RangeError(`${what} lacks its address or port`);
  }
  return [address, port];
}

/** The reference: a Map of the entry's attributes, the last of each type. */
function reference(payload: Uint8Array): Session {
  const found = new Map<number, Attribute>();
  for (const a of parseAttributes(payload)) found.set(a.type, a);
  const need = (type: number, what: string): Attribute => {
    const a = found.get(type);
    if (a === undefined) throw new RangeError(`session entry lacks ${what}`);
    return a;
  };
  const u8 = (a: Attribute, what: string) => {
    if (a.payload.length < 1) throw new RangeError(`${what} is empty`);
    return a.payload[0];
  };
  const [src6, src6Port] = taddr(need(JNLASE_SRC6, "SRC6"), 16, "SRC6");
  const [dst6, dst6Port] = taddr(need(JNLASE_DST6, "DST6"), 16, "DST6");
  const [src4, src4Port] = taddr(need(JNLASE_SRC4, "SRC4"), 4, "SRC4");
  const [dst4, dst4Port] = taddr(need(JNLASE_DST4, "DST4"), 4, "DST4");
  const proto = u8(need(JNLASE_PROTO, "PROTO"), "PROTO");
  if (proto > 2) throw new RangeError(`session entry has an unknown protocol ${proto}`);
  const exp = need(JNLASE_EXPIRATION, "EXPIRATION");
  if (exp.payload.length < 4) throw new RangeError("EXPIRATION is truncated");
  return {
    proto,
    src6,
    src6Port,
    dst6,
    dst6Port,
    src4,
    src4Port,
    dst4,
    dst4Port,
    state: u8(need(JNLASE_STATE, "STATE"), "STATE"),
    timer: u8(need(JNLASE_TIMER, "TIMER"), "TIMER"),
    expirationMs: new DataView(exp.payload.buffer, exp.payload.byteOffset, 4).getUint32(0, true),
  };
}

function outcome(decode: (b: Uint8Array) => Session, bytes: Uint8Array): unknown {
  try {
    const s = decode(bytes);
    return { ...s, src6: [...s.src6], dst6: [...s.dst6!], src4: [...s.src4], dst4: [...s.dst4!] };
  } catch (error) {
    return `${(error as Error).name}: ${(error as Error).message}`;
  }
}

Deno.test("decodeNested agrees with the reference decoder on captured entries and 200k mutations", () => {
  const entries = parseAttributes(fixture("4.1.9", "d-udp-payload-4sessions"))
    .filter((a) => a.type === JNLAL_ENTRY).map((a) => a.payload);
  assert.equal(entries.length, 4);
  let seed = 7;
  // The high bits of an LCG: its low bits repeat with a short period.
  const random = (n: number): number =>
    Math.floor((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32 * n);
  let valid = 0;
  for (const entry of entries) {
    assert.deepEqual(outcome(decodeNested, entry), outcome(reference, entry));
  }
  for (let i = 0; i < 200_000; i++) {
    const base: Uint8Array = entries[random(entries.length)];
    let bytes: Uint8Array = base.slice();
    for (let k = random(3); k > 0; k--) {
      const at = random(bytes.length);
      // Mostly the bytes that matter: lengths and types (the first 4 of an attribute).
      bytes[at] = random(4) === 0 ? random(256) : bytes[at] ^ (1 << random(8));
    }
    if (random(4) === 0) {
      // A second attribute of a type already there, with other contents: the last one counts.
      const attributes = parseAttributes(base);
      const copy = attributes[random(attributes.length)];
      const extra = new Uint8Array(4 + ((copy.payload.length + 3) & ~3));
      extra[0] = 4 + copy.payload.length;
      extra[2] = copy.type;
      extra[3] = copy.nested ? 0x80 : 0;
      extra.set(copy.payload, 4);
      if (extra.length > 4) extra[4 + random(extra.length - 4)] ^= 1 << random(8);
      const longer = new Uint8Array(bytes.length + extra.length);
      longer.set(bytes);
      longer.set(extra, bytes.length);
      bytes = longer;
    }
    if (random(8) === 0) bytes = bytes.subarray(0, random(bytes.length + 1));
    const ours = outcome(decodeNested, bytes);
    assert.deepEqual(ours, outcome(reference, bytes), `mutation ${i}`);
    if (typeof ours !== "string") valid++;
  }
  // Both outcomes occur: a test of only errors (or only successes) would prove little.
  assert.ok(valid > 1000 && valid < 199_000, `${valid} mutations decoded`);
});
