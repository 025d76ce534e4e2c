import assert from "node:assert/strict";
import { parseFamilyReply } from "../../lib/genetlink/controller.ts";
import { JNLAG_JOOLD_ENABLED } from "../../lib/jool/message.ts";
import { batchPayload, decodeJoolMessage, errorReport, globalU8 } from "../../lib/jool/message.ts";
import { decodePayload } from "../../lib/jool/session.ts";
import { type Message, parseErrorMessage, parseMessages } from "../../lib/netlink/message.ts";
import { fixture, VERSIONS } from "../_fixtures.ts";

/** The decoders that read received bytes, by name: the functions themselves, nothing copied. */
const DECODERS: Record<string, (m: Message) => unknown> = {
  parseErrorMessage: (m) => parseErrorMessage(m),
  parseFamilyReply: (m) => parseFamilyReply(m.body),
  decodeJoolMessage: (m) => decodeJoolMessage(m),
  errorReport: (m) => errorReport(decodeJoolMessage(m)),
  globalU8: (m) => globalU8(decodeJoolMessage(m), JNLAG_JOOLD_ENABLED),
  batchPayload: (m) => batchPayload(decodeJoolMessage(m)),
  decodePayload: (m) => decodePayload(batchPayload(decodeJoolMessage(m)) ?? new Uint8Array()),
};

/** How many inputs each decoder accepted and rejected. */
type Tally = Record<string, { accepted: number; rejected: number }>;

/**
 * Runs parseMessages, then every decoder on every message it found, whatever the message's type
 * (the channel's dispatch picks one by type; here each decoder meets every input, so a decoder
 * the dispatch would skip is fuzzed too). The contract: a decoder returns or throws RangeError.
 */
function decodeEverything(bytes: Uint8Array, tally: Tally): void {
  const run = (name: string, decode: () => unknown) => {
    tally[name] ??= { accepted: 0, rejected: 0 };
    try {
      decode();
      tally[name].accepted++;
    } catch (e) {
      if (!(e instanceof RangeError)) {
        throw new Error(`${name} threw ${e} for ${Array.from(bytes).join(",")}`);
      }
      tally[name].rejected++;
    }
  };
  let messages: Message[] = [];
  run("parseMessages", () => (messages = parseMessages(bytes)));
  for (const m of messages) {
    for (const [name, decode] of Object.entries(DECODERS)) run(name, () => decode(m));
  }
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

/** Which decoders each captured message is for (the others may reject it). */
const DECODES: [RegExp, string[]][] = [
  [/^a-/, ["decodeJoolMessage", "errorReport", "batchPayload", "decodePayload"]],
  [/^[bc]-/, ["decodeJoolMessage", "errorReport"]],
  [/^e-ctrl-getfamily-response/, ["parseFamilyReply"]],
];

Deno.test("every captured netlink message is one message, and decodes with the decoders meant for it", () => {
  for (const v of VERSIONS) {
    for (const name of NAMES) {
      const messages = parseMessages(fixture(v, name));
      assert.equal(messages.length, 1, name);
      const meant = DECODES.find(([pattern]) => pattern.test(name))?.[1] ?? [];
      for (const decoder of meant) DECODERS[decoder](messages[0]);
    }
    const [batch] = parseMessages(fixture(v, "a-kernel-multicast-4sessions"));
    assert.equal(errorReport(decodeJoolMessage(batch)), null);
    assert.ok(batchPayload(decodeJoolMessage(batch)) !== null);
  }
});

Deno.test("netlink, genetlink and Jool decoders on 20000 mutated captures and random bytes only throw RangeError, and finish", () => {
  let seed = 4242;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const pick = (n: number) => Math.floor(random() * n);
  const tally: Tally = {};
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
    decodeEverything(bytes, tally);
  }
  const elapsed = performance.now() - started;
  // Each decoder met inputs it accepted and inputs it rejected: the loop exercised both sides.
  for (const name of ["parseMessages", ...Object.keys(DECODERS)]) {
    const { accepted, rejected } = tally[name] ?? { accepted: 0, rejected: 0 };
    assert.ok(accepted > 200 && rejected > 200, `${name}: ${JSON.stringify(tally[name])}`);
  }
  assert.ok(elapsed < 20_000, `20000 inputs took ${elapsed.toFixed(0)} ms`);
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
    assert.throws(() => decodeAsBatch(bytes), (e: unknown) => {
      assert.ok(e instanceof RangeError, `${what}: ${e}`);
      assert.match(e.message, message, what);
      return true;
    });
  }
});

/** The decoders a kernel batch goes through on the general path, in order. */
function decodeAsBatch(bytes: Uint8Array): void {
  for (const m of parseMessages(bytes)) {
    const payload = batchPayload(decodeJoolMessage(m));
    if (payload !== null) decodePayload(payload);
  }
}

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
