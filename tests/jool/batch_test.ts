/**
 * The batch recognizer (lib/jool/batch.ts): table tests on the captured bytes of both Jool versions
 * and on edited copies, and the differential fuzz against the general decoder (parseMessages,
 * decodeJoolMessage, batchPayload). They agree on an input (batch_fuzz.ts states it in full) when:
 * "batch" means the general path finds exactly one message, of the family, sequence 0, naming our
 * instance, and batchPayload returns the same bytes at the same offsets with the same header
 * version; "other-instance" means one such message naming another instance; and a plain batch (one
 * message filling the datagram, command 0, no error flag, SESSION_ENTRIES first, attributes well
 * formed) is never "not-a-batch". Any other shape may be declined. `deno task fuzz` runs a million.
 */
import assert from "node:assert/strict";
import {
  BATCH_NONE,
  BATCH_OTHER_INSTANCE,
  BATCH_PAYLOAD_START,
  batchVersion,
  classifyBatch,
  instanceName16,
  recognizeBatch,
} from "../../lib/jool/batch.ts";
import { GENL_HDRLEN } from "../../lib/genetlink/controller.ts";
import { JOOLNL_HDRLEN } from "../../lib/jool/header.ts";
import { batchPayload, decodeJoolMessage } from "../../lib/jool/message.ts";
import { packVersion, parseVersion } from "../../lib/jool/version.ts";
import { encodeAttribute, NLA_HDRLEN } from "../../lib/netlink/attribute.ts";
import { NLMSG_HDRLEN, parseMessages } from "../../lib/netlink/message.ts";
import { BATCHES, fixture, fixtureIndex, VERSIONS } from "../_fixtures.ts";
import {
  check,
  fixtureSeeds,
  formatFailure,
  generalOutcome,
  kernelBatch,
  runFuzz,
} from "./batch_fuzz.ts";

const DEFAULT = instanceName16("default");

Deno.test("the payload starts where the headers end: nlmsghdr + genlmsghdr + joolnlhdr + nlattr", () => {
  assert.equal(BATCH_PAYLOAD_START, NLMSG_HDRLEN + GENL_HDRLEN + JOOLNL_HDRLEN + NLA_HDRLEN);
  assert.equal(BATCH_PAYLOAD_START, 52);
});

for (const v of VERSIONS) {
  const index = fixtureIndex(v);
  const version = packVersion(parseVersion(index.jool_version));

  for (const n of BATCHES) {
    Deno.test(`${v}: the kernel's ${n} batch is a batch whose payload is the UDP datagram`, () => {
      const bytes = fixture(v, `a-kernel-multicast-${n}`);
      const r = recognizeBatch(bytes, bytes.length, index.family_id, DEFAULT);
      assert.equal(r.kind, "batch");
      if (r.kind !== "batch") return;
      assert.equal(r.version, version);
      assert.deepEqual(
        bytes.subarray(r.payloadStart, r.payloadEnd),
        fixture(v, `d-udp-payload-${n}`),
      );
      assert.equal(classifyBatch(bytes, bytes.length, index.family_id, DEFAULT), r.payloadEnd);
      assert.equal(batchVersion(bytes), version);
    });

    Deno.test(`${v}: the ${n} batch rebuilt as the kernel builds it is byte-exact`, () => {
      const real = fixture(v, `a-kernel-multicast-${n}`);
      const built = kernelBatch({
        family: index.family_id,
        version,
        iname: "default",
        payload: fixture(v, `d-udp-payload-${n}`),
      });
      assert.deepEqual(built, real);
    });

    Deno.test(`${v}: the ${n} batch of instance "default" is another instance's for "other"`, () => {
      const bytes = fixture(v, `a-kernel-multicast-${n}`);
      const other = instanceName16("other");
      assert.deepEqual(recognizeBatch(bytes, bytes.length, index.family_id, other), {
        kind: "other-instance",
      });
      assert.equal(
        classifyBatch(bytes, bytes.length, index.family_id, other),
        BATCH_OTHER_INSTANCE,
      );
    });
  }

  Deno.test(`${v}: nothing else captured is a batch (ACK, JOOLD_ADD, nlctrl, UDP payloads)`, () => {
    const others = fixtureSeeds().filter((s) => s.name.startsWith(`${v}/`) && !/\/a-/.test(s.name));
    assert.ok(others.length >= 8);
    for (const { name, bytes } of others) {
      assert.equal(
        recognizeBatch(bytes, bytes.length, index.family_id, DEFAULT).kind,
        "not-a-batch",
        name,
      );
    }
  });
}

// Edits of the 4.1.13 one-session batch (92 bytes: 48 of headers, SESSION_ENTRIES of 44).
const V = "4.1.13";
const FAMILY = fixtureIndex(V).family_id;
const BATCH = fixture(V, "a-kernel-multicast-1session");
const PAYLOAD = fixture(V, "d-udp-payload-1session");

const SHORT = kernelBatch({
  family: FAMILY,
  version: 0x04010d00,
  iname: "default",
  payload: Uint8Array.of(1, 2, 3, 4, 5),
});

function edit(f: (b: Uint8Array, view: DataView) => void, from: Uint8Array = BATCH): Uint8Array {
  const copy = from.slice();
  f(copy, new DataView(copy.buffer));
  return copy;
}

function withLength(bytes: Uint8Array): Uint8Array {
  return edit((_, view) => view.setUint32(0, bytes.length, true), bytes);
}

function join(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

type Expected = "batch" | "other-instance" | "not-a-batch";
const ROWS: [string, Uint8Array, Expected, number?][] = [
  ["the captured batch", BATCH, "batch"],
  ["an empty datagram", new Uint8Array(), "not-a-batch"],
  ["51 bytes (one short of a first attribute)", BATCH.subarray(0, 51), "not-a-batch"],
  ["cut short (nlmsg_len past the datagram)", BATCH.subarray(0, 80), "not-a-batch"],
  [
    "cut short with nlmsg_len fixed (the attribute overflows)",
    withLength(BATCH.slice(0, 80)),
    "not-a-batch",
  ],
  [
    "nlmsg_len 89: its padding reaches the datagram, but the attribute overflows it",
    edit((_, w) => w.setUint32(0, 89, true)),
    "not-a-batch",
  ],
  ["a 5-byte payload, nlmsg_len 57 in a 60-byte datagram (the padding)", SHORT, "batch", 5],
  [
    "a 5-byte payload, nlmsg_len 57 in a 57-byte datagram (no padding)",
    SHORT.subarray(0, 57),
    "batch",
    5,
  ],
  ["a 5-byte payload, nlmsg_len 57 in a 58-byte datagram", SHORT.subarray(0, 58), "not-a-batch"],
  ["nlmsg_len 4 short of the datagram", edit((_, w) => w.setUint32(0, 88, true)), "not-a-batch"],
  ["nlmsg_len below the headers", edit((_, w) => w.setUint32(0, 48, true)), "not-a-batch"],
  ["a wrong family id", edit((_, w) => w.setUint16(4, FAMILY + 1, true)), "not-a-batch"],
  ["sequence number 1 (a reply)", edit((_, w) => w.setUint32(8, 1, true)), "not-a-batch"],
  ["genl command 29", edit((b) => (b[16] = 29)), "not-a-batch"],
  ["a bad magic", edit((b) => (b[20] = 0x4a)), "not-a-batch"],
  ["the joolnlhdr error flag", edit((b) => (b[29] = 1)), "not-a-batch"],
  ["the joolnlhdr M flag (not an error)", edit((b) => (b[29] = 8)), "batch"],
  [
    "the attribute overflowing the message",
    edit((_, w) => w.setUint16(48, 45, true)),
    "not-a-batch",
  ],
  ["an attribute length below its header", edit((_, w) => w.setUint16(48, 3, true)), "not-a-batch"],
  ["a first attribute of type 2", edit((_, w) => w.setUint16(50, 0x8002, true)), "not-a-batch"],
  ["SESSION_ENTRIES without NLA_F_NESTED", edit((_, w) => w.setUint16(50, 7, true)), "batch"],
  [
    "SESSION_ENTRIES with NLA_F_NET_BYTEORDER",
    edit((_, w) => w.setUint16(50, 0xc007, true)),
    "batch",
  ],
  ["another instance", edit((b) => b.set(instanceName16("other"), 32)), "other-instance"],
  [
    "another instance whose attribute overflows",
    edit((b, w) => {
      b.set(instanceName16("other"), 32);
      w.setUint16(48, 1000, true);
    }),
    "not-a-batch",
  ],
  ["a name one letter longer", edit((b) => (b[39] = 0x78)), "other-instance"],
  [
    "bytes after the name's NUL (strcmp and the decoder stop there)",
    edit((b) => (b[45] = 0x78)),
    "batch",
  ],
  [
    "a well-formed attribute after SESSION_ENTRIES",
    withLength(join(BATCH, encodeAttribute(9, Uint8Array.of(1)))),
    "batch",
  ],
  [
    "3 stray bytes after SESSION_ENTRIES inside the message",
    withLength(join(BATCH, Uint8Array.of(1, 2, 3))),
    "not-a-batch",
  ],
  [
    "an overflowing attribute after SESSION_ENTRIES",
    withLength(join(BATCH, Uint8Array.of(200, 0, 9, 0))),
    "not-a-batch",
  ],
  [
    "SESSION_ENTRIES shortened, the rest a well-formed attribute",
    edit((_, w) => w.setUint16(48, 4, true)),
    "batch",
    0,
  ],
  [
    "an attribute before SESSION_ENTRIES",
    withLength(
      join(BATCH.subarray(0, 48), encodeAttribute(9, new Uint8Array()), BATCH.subarray(48)),
    ),
    "not-a-batch",
  ],
  ["two batches in one datagram", join(BATCH, BATCH), "not-a-batch"],
  ["a stray byte after the message", join(BATCH, Uint8Array.of(0)), "not-a-batch"],
];

Deno.test("table: each edit of a batch is what it should be, and the general decoder agrees", () => {
  for (const [what, bytes, expected, payloadLength] of ROWS) {
    const r = recognizeBatch(bytes, bytes.length, FAMILY, DEFAULT);
    assert.equal(r.kind, expected, what);
    if (r.kind === "batch") {
      assert.equal(r.payloadStart, BATCH_PAYLOAD_START, what);
      const payload = bytes.subarray(r.payloadStart, r.payloadEnd);
      if (payloadLength === undefined) assert.deepEqual(payload, PAYLOAD, what);
      else assert.equal(payload.length, payloadLength, what);
      // The general decoder finds the same bytes.
      const [m] = parseMessages(bytes);
      assert.deepEqual(batchPayload(decodeJoolMessage(m)), payload, what);
    }
    const verdict = check({ bytes, family: FAMILY, instance: "default", origin: what });
    assert.equal(verdict.disagreement, null, `${what}: ${verdict.disagreement}`);
  }
});

Deno.test("table: the general decoder reads the error rows as the recognizer's comments say", () => {
  const outcome = (bytes: Uint8Array) => generalOutcome(bytes, FAMILY, "default").kind;
  assert.equal(outcome(join(BATCH, BATCH)), "messages"); // two messages: declined, not wrong
  assert.equal(outcome(withLength(join(BATCH, Uint8Array.of(1, 2, 3)))), "malformed");
  assert.equal(outcome(edit((b) => (b[16] = 29))), "batch"); // a command the kernel never sends
  assert.equal(outcome(edit((b) => (b[29] = 1))), "batch"); // the general path reads it anyway
});

Deno.test("the recognizer reads nothing past the datagram: a batch at the start of a larger buffer", () => {
  const buffer = new Uint8Array(65536).fill(0xa5);
  buffer.set(BATCH);
  const r = recognizeBatch(buffer, BATCH.length, FAMILY, DEFAULT);
  assert.equal(r.kind, "batch");
  if (r.kind === "batch") assert.deepEqual(buffer.subarray(r.payloadStart, r.payloadEnd), PAYLOAD);
  // The same buffer with a datagram one byte longer: the stray 0xa5 is not padding.
  assert.equal(recognizeBatch(buffer, BATCH.length + 1, FAMILY, DEFAULT).kind, "not-a-batch");
  // A cut datagram does not borrow the buffer's bytes behind it.
  assert.equal(classifyBatch(buffer, 60, FAMILY, DEFAULT), BATCH_NONE);
});

Deno.test("bad calls throw RangeError: a length outside the buffer, a name that is not 16 NUL-ended bytes", () => {
  assert.throws(() => recognizeBatch(BATCH, BATCH.length + 1, FAMILY, DEFAULT), {
    name: "RangeError",
    message: "datagram length 93 is outside the 92-byte buffer",
  });
  assert.throws(() => recognizeBatch(BATCH, -1, FAMILY, DEFAULT), RangeError);
  assert.throws(() => recognizeBatch(BATCH, 92, FAMILY, new Uint8Array(15)), RangeError);
  assert.throws(() => recognizeBatch(BATCH, 92, FAMILY, new Uint8Array(16).fill(0x61)), {
    name: "RangeError",
    message: "the instance name must be 16 NUL-terminated bytes (instanceName16)",
  });
});

Deno.test("instanceName16: 16 bytes NUL padded; 15 bytes fit, 16 and a NUL do not", () => {
  assert.deepEqual(instanceName16("default"), BATCH.subarray(32, 48));
  assert.equal(instanceName16("abcdefghijklmno")[14], 0x6f);
  assert.equal(instanceName16("").length, 16);
  assert.throws(() => instanceName16("abcdefghijklmnop"), {
    name: "RangeError",
    message: 'instance name "abcdefghijklmnop" is 16 bytes, longer than 15',
  });
  assert.throws(() => instanceName16("a\0b"), {
    name: "RangeError",
    message: 'instance name "a\\u0000b" contains a NUL byte',
  });
});

Deno.test("differential fuzz: the recognizer and the general decoder agree on 20000 mutated captures, synthetic batches and random bytes", () => {
  const seed = 20261201;
  const { stats, failure } = runFuzz(fixtureSeeds(), seed, 20000);
  assert.equal(failure, null, failure === null ? "" : formatFailure(failure));
  // Every verdict was reached often enough for the agreement to mean something.
  assert.ok(stats.batch > 1000, JSON.stringify(stats));
  assert.ok(stats.otherInstance > 500, JSON.stringify(stats));
  assert.ok(stats.declinedBatch > 100, JSON.stringify(stats));
  assert.ok(stats.malformed > 5000, JSON.stringify(stats));
  assert.ok(stats.notABatch > 2000, JSON.stringify(stats));
});
