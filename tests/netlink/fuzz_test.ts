import assert from "node:assert/strict";
import {
  CTRL_CMD_NEWFAMILY,
  GENL_ID_CTRL,
  parseFamilyReply,
} from "../../lib/genetlink/controller.ts";
import { JNLAG_JOOLD_ENABLED } from "../../lib/jool/message.ts";
import { batchPayload, decodeJoolMessage, errorReport, globalU8 } from "../../lib/jool/message.ts";
import { decodePayload } from "../../lib/jool/session.ts";
import { NLMSG_ERROR, parseErrorMessage, parseMessages } from "../../lib/netlink/message.ts";
import { fixture, VERSIONS } from "../_fixtures.ts";

// Everything the kernel channel and the daemon decode from a received datagram, in the same order.
function decodeLikeTheChannel(bytes: Uint8Array): number {
  let decoded = 0;
  for (const m of parseMessages(bytes)) {
    if (m.type === NLMSG_ERROR) {
      parseErrorMessage(m);
    } else if (m.type === GENL_ID_CTRL) {
      // Replies only (the channel never receives the request).
      if (m.body[0] === CTRL_CMD_NEWFAMILY) parseFamilyReply(m.body);
    } else {
      const jm = decodeJoolMessage(m);
      errorReport(jm);
      globalU8(jm, JNLAG_JOOLD_ENABLED);
      const payload = batchPayload(jm);
      if (payload !== null) decodePayload(payload);
    }
    decoded++;
  }
  return decoded;
}

const NAMES = [
  "a-kernel-multicast-1session",
  "a-kernel-multicast-4sessions",
  "b-joold-ack",
  "c-joold-add-1session",
  "c-joold-add-4sessions",
  "e-ctrl-getfamily-request",
  "e-ctrl-getfamily-response",
];
const SEEDS = VERSIONS.flatMap((v) => NAMES.map((n) => fixture(v, n)));

Deno.test("every captured netlink message decodes along the channel's path", () => {
  for (const seed of SEEDS) assert.equal(decodeLikeTheChannel(seed), 1);
});

Deno.test("netlink, genetlink and Jool decoders on 20000 mutated captures and random bytes only throw RangeError, and finish", () => {
  let seed = 4242;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const pick = (n: number) => Math.floor(random() * n);
  let accepted = 0;
  let rejected = 0;
  const started = performance.now();
  for (let i = 0; i < 20000; i++) {
    let bytes: Uint8Array;
    const kind = i % 4;
    if (kind === 3) {
      bytes = Uint8Array.from({ length: pick(300) }, () => pick(256));
    } else {
      bytes = SEEDS[pick(SEEDS.length)].slice();
      // Aim at the length fields (nlmsg_len at 0, the first attributes around 48) half the time.
      const hot = [0, 1, 2, 3, 4, 5, 20, 21, 48, 49, 50, 51, 52, 53];
      for (let f = 1 + pick(3); f > 0; f--) {
        const at = random() < 0.5 ? hot[pick(hot.length)] : pick(bytes.length);
        if (at < bytes.length) bytes[at] = kind === 1 ? 0 : pick(256);
      }
      if (kind === 2) bytes = bytes.subarray(0, pick(bytes.length + 1));
    }
    try {
      decodeLikeTheChannel(bytes);
      accepted++;
    } catch (e) {
      assert.ok(e instanceof RangeError, `unexpected ${e} for ${Array.from(bytes).join(",")}`);
      rejected++;
    }
  }
  const elapsed = performance.now() - started;
  assert.ok(accepted > 1000 && rejected > 1000, `accepted ${accepted}, rejected ${rejected}`);
  assert.ok(elapsed < 20_000, `20000 decodes took ${elapsed.toFixed(0)} ms`);
});

Deno.test("error rows: truncated headers, lengths past the buffer, nests overflowing their parent, wrong magic", () => {
  const batch = fixture("4.1.13", "a-kernel-multicast-1session");
  const rows: [string, Uint8Array, RegExp][] = [
    ["a truncated netlink header", batch.subarray(0, 15), /truncated netlink header: 15 bytes/],
    [
      "nlmsg_len past the buffer",
      with32(batch, 0, batch.length + 4),
      new RegExp(`netlink message length ${batch.length + 4} does not fit`),
    ],
    [
      "nlmsg_len below the header size",
      with32(batch, 0, 8),
      /netlink message length 8 does not fit/,
    ],
    [
      "a truncated Jool header",
      truncateMessage(batch, 16 + 4 + 27),
      /truncated Jool header: 27 of 28/,
    ],
    ["a wrong magic", withByte(batch, 16 + 4, "J".charCodeAt(0)), /bad Jool header magic/],
    [
      "SESSION_ENTRIES overflowing the message",
      with16(batch, 48, batch.length),
      /overflows its parent/,
    ],
  ];
  for (const [what, bytes, message] of rows) {
    assert.throws(() => decodeLikeTheChannel(bytes), (e: unknown) => {
      assert.ok(e instanceof RangeError, `${what}: ${e}`);
      assert.match(e.message, message, what);
      return true;
    });
  }
});

function withByte(bytes: Uint8Array, at: number, value: number): Uint8Array {
  const copy = bytes.slice();
  copy[at] = value;
  return copy;
}

function with16(bytes: Uint8Array, at: number, value: number): Uint8Array {
  const copy = bytes.slice();
  new DataView(copy.buffer).setUint16(at, value, true);
  return copy;
}

function with32(bytes: Uint8Array, at: number, value: number): Uint8Array {
  const copy = bytes.slice();
  new DataView(copy.buffer).setUint32(at, value, true);
  return copy;
}

/** Cuts a message to `length` bytes and fixes nlmsg_len, so only the inner headers are short. */
function truncateMessage(bytes: Uint8Array, length: number): Uint8Array {
  return with32(bytes.slice(0, length), 0, length);
}
