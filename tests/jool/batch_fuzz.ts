/**
 * The differential fuzz of the batch recognizer (lib/jool/batch.ts) against the general decoder,
 * as a library for tests/jool/batch_test.ts and as the `deno task fuzz` script:
 *
 * ```sh
 * deno task fuzz                 # 1,000,000 inputs, a random seed (printed)
 * deno task fuzz 5000000 --seed 42
 * deno task fuzz --seed 42 --index 1234   # replay one input, print it
 * deno task fuzz --pcap /path/nlmon.pcap  # more seed messages from an nlmon capture
 * ```
 *
 * ## What "agree" means
 *
 * The general path is what the kernel channel does with a datagram the recognizer declines:
 * `parseMessages` on `[0, length)`, then per message of Jool's family `decodeJoolMessage`, the
 * sequence-0 check, the instance-name compare on the decoded `header.iname`, and `batchPayload`.
 * The recognizer and the general path agree on an input when all of these hold:
 *
 * 1. "batch" ⇒ the general path finds exactly one message, of the family, sequence 0, decodable,
 *    naming our instance, `batchPayload` returns a payload (does not throw, is not null), and that
 *    payload is the same view: `payloadStart`/`payloadEnd` are its offsets in the input; the
 *    recognizer's `version` is the decoded `header.version`.
 * 2. "other-instance" ⇒ exactly one message, of the family, sequence 0, decodable, naming another
 *    instance.
 * 3. A *plain* batch is one the kernel could have sent: the general path finds exactly one message
 *    of the family with sequence 0, its nlmsg_len equal to the datagram's length with or without
 *    the padding, genl command 0, the joolnlhdr error flag clear, and its attributes parse with
 *    SESSION_ENTRIES first. A plain batch of our instance ⇒ "batch"; a plain batch of another
 *    instance ⇒ "other-instance".
 * 4. The recognizer never throws on a valid call, and reads nothing past `length` (inputs sit in
 *    a larger buffer whose tail is random).
 *
 * Everything else may be declined ("not-a-batch"): two messages in one datagram, a non-zero
 * command, the error flag, an attribute before SESSION_ENTRIES, stray bytes after the message.
 * The general path handles those as before; the recognizer is only ever a shortcut.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parsePcap } from "../../lab/guest/pcap.ts";
import { GENL_ID_CTRL } from "../../lib/genetlink/controller.ts";
import {
  BATCH_PAYLOAD_START,
  type BatchRecognition,
  instanceName16,
  recognizeBatch,
} from "../../lib/jool/batch.ts";
import { JOOLNLHDR_FLAGS_ERROR } from "../../lib/jool/header.ts";
import {
  batchPayload,
  decodeJoolMessage,
  JNLAR_SESSION_ENTRIES,
  type JoolMessage,
} from "../../lib/jool/message.ts";
import {
  align4,
  encodeAttribute,
  NLA_F_NESTED,
  NLA_F_NET_BYTEORDER,
  parseAttributes,
} from "../../lib/netlink/attribute.ts";
import { type Message, NLMSG_ERROR, parseMessages } from "../../lib/netlink/message.ts";
import { fixtureIndex, VERSIONS } from "../_fixtures.ts";

/** A message to mutate, and the family id of the kernel it came from. */
export interface SeedInput {
  /** Where it came from (printed on a disagreement). */
  readonly name: string;
  /** The bytes. */
  readonly bytes: Uint8Array;
  /** Jool's family id in that recording. */
  readonly family: number;
}

/** Every `.hex` fixture of both recordings (index.json lists them), with its family id. */
export function fixtureSeeds(): SeedInput[] {
  const out: SeedInput[] = [];
  for (const v of VERSIONS) {
    const index = fixtureIndex(v) as ReturnType<typeof fixtureIndex> & {
      fixtures: { file: string }[];
    };
    const dir = new URL(`../fixtures/${v}/`, import.meta.url);
    for (const { file } of index.fixtures) {
      const text = Deno.readTextFileSync(new URL(file, dir));
      const bytes = Uint8Array.from(text.match(/[0-9a-f]{2}/g)!, (h) => parseInt(h, 16));
      out.push({ name: `${v}/${file}`, bytes, family: index.family_id });
    }
  }
  return out;
}

/**
 * The netlink messages of an nlmon capture (tcpdump on an nlmon device), as seeds.
 *
 * @param path the pcap file
 * @param family Jool's family id in that capture (guessed from the messages when omitted)
 */
export function pcapSeeds(path: string, family?: number): SeedInput[] {
  const capture = parsePcap(Deno.readFileSync(path));
  const out: SeedInput[] = [];
  for (const [i, p] of capture.packets.entries()) {
    // libpcap's cooked header (ARPHRD_NETLINK = 824 at byte 2) sits in front of each message.
    const cooked = p.data.length >= 16 && ((p.data[2] << 8) | p.data[3]) === 824;
    const bytes = p.data.slice(cooked ? 16 : 0);
    if (bytes.length >= 16) out.push({ name: `${path}#${i + 1}`, bytes, family: 0 });
  }
  const types = out.map((s) => s.bytes[4] | (s.bytes[5] << 8)).filter((t) => t > GENL_ID_CTRL);
  const guess = family ?? (types.length > 0 ? mostCommon(types) : 0x23);
  return out.map((s) => ({ ...s, family: guess }));
}

function mostCommon(values: number[]): number {
  const counts = new Map<number, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1])[0][0];
}

/** A small, fast, seedable PRNG (splitmix32): the same seed gives the same inputs everywhere. */
export class Random {
  #state: number;
  /** @param seed any 32-bit integer */
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    this.#state = (this.#state + 0x9e3779b9) >>> 0;
    let z = this.#state;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    return (z ^ (z >>> 15)) >>> 0;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return this.u32() % n;
  }
  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() < p * 0x100000000;
  }
  /** One of the items. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
}

/** The PRNG of input `index` under `seed`: every input replays alone. */
export function inputRandom(seed: number, index: number): Random {
  return new Random((Math.imul(seed, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35)) >>> 0);
}

const NAMES = ["default", "other", "a", "instance-15-byt", "defaulu", "Default"];

/** A printable instance name of 1-15 bytes. */
function randomName(r: Random): string {
  if (r.chance(0.7)) return r.pick(NAMES);
  let s = "";
  for (let n = 1 + r.int(15); n > 0; n--) s += String.fromCharCode(0x21 + r.int(94));
  return s;
}

/**
 * A batch built the way Jool's send_to_userspace() builds one (a zeroed joolnlhdr, one
 * SESSION_ENTRIES nest), with any payload: tests/jool/batch_test.ts checks that it rebuilds the
 * captured batches byte for byte.
 */
export function kernelBatch(
  fields: { family: number; version: number; iname: string; payload: Uint8Array; pad?: boolean },
): Uint8Array {
  const attr = encodeAttribute(JNLAR_SESSION_ENTRIES | NLA_F_NESTED, fields.payload);
  const attrLength = 4 + fields.payload.length;
  const length = 48 + attrLength;
  const out = new Uint8Array(fields.pad === false ? length : align4(length));
  const view = new DataView(out.buffer);
  view.setUint32(0, length, true); // nlmsg_len, without the padding (as nlmsg_end() sets it)
  view.setUint16(4, fields.family, true);
  // flags, seq, pid: 0 on a multicast
  out[16] = 0; // genl cmd
  out[17] = 2; // genl version: the family's (2), not userspace's (1)
  out.set([0x6a, 0x6f, 0x6f, 0x6c], 20); // "jool"
  view.setUint32(24, fields.version >>> 0, false);
  out[28] = 2; // XT_NAT64
  out.set(instanceName16(fields.iname), 32);
  out.set(attr.subarray(0, Math.min(attr.length, out.length - 48)), 48);
  return out;
}

function randomBytes(r: Random, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = r.int(256);
  return out;
}

function syntheticBatch(r: Random): Uint8Array {
  const payload = randomBytes(r, r.chance(0.2) ? r.int(8) : r.int(400));
  return kernelBatch({
    family: r.chance(0.5) ? 0x20 + r.int(4) : r.int(0x10000),
    version: r.chance(0.7) ? r.pick([0x04010900, 0x04010d00]) : r.u32(),
    iname: randomName(r),
    payload,
    pad: r.chance(0.8),
  });
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function set16(b: Uint8Array, at: number, v: number): void {
  if (at + 2 <= b.length) {
    b[at] = v & 0xff;
    b[at + 1] = (v >>> 8) & 0xff;
  }
}

function set32(b: Uint8Array, at: number, v: number): void {
  if (at + 4 <= b.length) {
    for (let i = 0; i < 4; i++) b[at + i] = (v >>> (8 * i)) & 0xff;
  }
}

function get16(b: Uint8Array, at: number): number {
  return at + 2 <= b.length ? b[at] | (b[at + 1] << 8) : 0;
}

/** Offsets the mutations aim at: the headers and the first attribute. */
const HOT = [
  0,
  1,
  2,
  3,
  4,
  5,
  8,
  9,
  10,
  11,
  16,
  17,
  20,
  21,
  22,
  23,
  24,
  29,
  32,
  38,
  39,
  47,
  48,
  49,
  50,
  51,
];

/** One mutation; each keeps the input a datagram (at least 0 bytes). */
function mutateOnce(r: Random, input: Uint8Array, seeds: readonly SeedInput[]): Uint8Array {
  const b = input.slice();
  switch (r.int(17)) {
    case 0: { // bit flip anywhere
      if (b.length > 0) b[r.int(b.length)] ^= 1 << r.int(8);
      return b;
    }
    case 1: { // bit flip in the headers
      const at = r.pick(HOT);
      if (at < b.length) b[at] ^= 1 << r.int(8);
      return b;
    }
    case 2: { // a random byte in the headers
      const at = r.pick(HOT);
      if (at < b.length) b[at] = r.int(256);
      return b;
    }
    case 3: // truncate, nlmsg_len left as it was
      return b.subarray(0, r.int(b.length + 1));
    case 4: { // truncate and fix nlmsg_len
      const cut = b.slice(0, r.int(b.length + 1));
      set32(cut, 0, cut.length);
      return cut;
    }
    case 5: { // nlmsg_len a little off, aligned, or anything
      const len = b.length >= 4 ? (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0 : 0;
      set32(
        b,
        0,
        r.pick([len + r.int(9) - 4, align4(len), len - (len & 3), r.u32(), b.length, r.int(64)]),
      );
      return b;
    }
    case 6: { // the first attribute's length a little off, or anything
      const len = get16(b, 48);
      set16(b, 48, r.pick([len + r.int(9) - 4, r.int(0x10000), r.int(8), b.length - 48]));
      return b;
    }
    case 7: { // the first attribute's type: flags and neighbours
      const type = get16(b, 50);
      set16(
        b,
        50,
        r.pick([
          type ^ NLA_F_NESTED,
          type | NLA_F_NET_BYTEORDER,
          (type & 0xc000) | r.int(16),
          JNLAR_SESSION_ENTRIES,
          r.int(0x10000),
        ]),
      );
      return b;
    }
    case 8: { // another instance name, NUL padded
      if (b.length >= 48) b.set(instanceName16(randomName(r)), 32);
      return b;
    }
    case 9: { // bytes after the name's NUL, or no NUL at all
      if (b.length >= 48) {
        const end = b.subarray(32, 48).indexOf(0);
        const from = r.chance(0.2) || end < 0 ? 32 + r.int(16) : 32 + end + 1;
        for (let i = from; i < 48; i++) b[i] = r.chance(0.5) ? 0 : 0x21 + r.int(94);
      }
      return b;
    }
    case 10: { // family id, sequence number, command, Jool flags
      const what = r.int(4);
      if (what === 0) set16(b, 4, r.pick([0x20, 0x23, GENL_ID_CTRL, NLMSG_ERROR, r.int(0x10000)]));
      else if (what === 1) set32(b, 8, r.pick([0, 1, r.u32()]));
      else if (what === 2 && b.length > 16) b[16] = r.pick([0, 1, 27, 29, r.int(256)]);
      else if (b.length > 29) b[29] = r.pick([0, JOOLNLHDR_FLAGS_ERROR, 8, r.int(256)]);
      return b;
    }
    case 11: // random bytes appended, nlmsg_len unchanged
      return concat(b, randomBytes(r, r.pick([1, 2, 3, 4, r.int(64)])));
    case 12: { // padding appended or removed
      if (r.chance(0.5)) return concat(b, new Uint8Array(1 + r.int(4)));
      return b.subarray(0, Math.max(0, b.length - 1 - r.int(3)));
    }
    case 13: // a second message behind this one
      return concat(b.subarray(0, align4(b.length)), r.pick(seeds).bytes);
    case 14: { // an attribute after the message's attributes (well-formed or not), nlmsg_len fixed
      const base = b.subarray(0, align4(b.length));
      const extra = r.chance(0.6)
        ? encodeAttribute(r.int(16), randomBytes(r, r.int(12)))
        : randomBytes(r, 1 + r.int(7));
      const out = concat(base, extra);
      set32(out, 0, out.length);
      return out;
    }
    case 15: { // an attribute before SESSION_ENTRIES, lengths fixed
      if (b.length < 48) return b;
      const extra = encodeAttribute(r.int(16), randomBytes(r, r.int(9)));
      const out = concat(concat(b.subarray(0, 48), extra), b.subarray(48));
      set32(out, 0, out.length);
      return out;
    }
    default: { // SESSION_ENTRIES shortened inside a message that keeps its length
      const len = get16(b, 48);
      if (len > 8) set16(b, 48, 4 + r.int(len - 4));
      return b;
    }
  }
}

/** One fuzz input: the datagram, and the family and instance the recognizer is asked about. */
export interface FuzzInput {
  /** The datagram. */
  readonly bytes: Uint8Array;
  /** Jool's family id to recognize. */
  readonly family: number;
  /** Our instance. */
  readonly instance: string;
  /** How it was made. */
  readonly origin: string;
}

/**
 * Builds input `index` of a run: a seed (a fixture, a capture, a synthetic kernel batch or random
 * bytes) with zero to three mutations, and the family and instance to ask about.
 */
export function makeInput(seeds: readonly SeedInput[], seed: number, index: number): FuzzInput {
  const r = inputRandom(seed, index);
  let bytes: Uint8Array;
  let family: number;
  let origin: string;
  const source = r.int(10);
  if (source < 6) {
    const s = r.pick(seeds);
    bytes = s.bytes;
    family = s.family;
    origin = s.name;
  } else if (source < 9) {
    bytes = syntheticBatch(r);
    family = get16(bytes, 4);
    origin = "synthetic batch";
  } else {
    bytes = randomBytes(r, r.int(200));
    family = r.pick([0x20, 0x23]);
    origin = "random bytes";
  }
  // The instance usually is the one the input names (so batches of ours are common).
  const named = bytes.length >= 48 ? bytes.subarray(32, 48) : new Uint8Array();
  const end = named.indexOf(0);
  const nameText = new TextDecoder().decode(end < 0 ? named : named.subarray(0, end));
  let instance = /^[\x21-\x7e]{1,15}$/.test(nameText) && r.chance(0.8) ? nameText : randomName(r);
  const rounds = r.pick([0, 1, 1, 1, 2, 2, 3]);
  for (let i = 0; i < rounds; i++) bytes = mutateOnce(r, bytes, seeds);
  if (r.chance(0.1)) family = get16(bytes, 4); // whatever the mutations left there
  else if (r.chance(0.05)) family = r.int(0x10000);
  if (r.chance(0.05)) instance = randomName(r);
  return { bytes, family, instance, origin: `${origin}, ${rounds} mutation(s)` };
}

/** What the general decoder makes of a datagram, for one family and instance. */
export type GeneralOutcome =
  | { readonly kind: "malformed"; readonly error: string }
  | { readonly kind: "messages"; readonly count: number }
  | { readonly kind: "not-ours"; readonly why: string }
  | { readonly kind: "other-instance"; readonly plain: boolean; readonly iname: string }
  | { readonly kind: "no-payload"; readonly plain: boolean }
  | {
    readonly kind: "batch";
    readonly plain: boolean;
    readonly payload: Uint8Array;
    readonly version: number;
  };

/**
 * The general path on `datagram` (exactly the received bytes): the channel's parseMessages,
 * decodeJoolMessage, sequence and instance checks and batchPayload, and whether the message is a
 * plain batch (see the module doc).
 */
export function generalOutcome(
  datagram: Uint8Array,
  family: number,
  instance: string,
): GeneralOutcome {
  let messages: Message[];
  try {
    messages = parseMessages(datagram);
  } catch (e) {
    return { kind: "malformed", error: `parseMessages: ${(e as Error).message}` };
  }
  if (messages.length !== 1) return { kind: "messages", count: messages.length };
  const m = messages[0];
  if (m.type !== family) return { kind: "not-ours", why: `type ${m.type}` };
  let jm: JoolMessage;
  try {
    jm = decodeJoolMessage(m);
  } catch (e) {
    return { kind: "malformed", error: `decodeJoolMessage: ${(e as Error).message}` };
  }
  if (m.seq !== 0) return { kind: "not-ours", why: `seq ${m.seq}` };
  let firstIsEntries = false;
  try {
    firstIsEntries = parseAttributes(jm.attributes)[0]?.type === JNLAR_SESSION_ENTRIES;
  } catch {
    // not plain
  }
  const length = m.length!;
  const plain = (length === datagram.length || align4(length) === datagram.length) &&
    jm.cmd === 0 && (jm.header.flags & JOOLNLHDR_FLAGS_ERROR) === 0 && firstIsEntries;
  if (jm.header.iname !== instance) {
    return { kind: "other-instance", plain, iname: jm.header.iname };
  }
  let payload: Uint8Array | null;
  try {
    payload = batchPayload(jm);
  } catch (e) {
    return { kind: "malformed", error: `batchPayload: ${(e as Error).message}` };
  }
  if (payload === null) return { kind: "no-payload", plain };
  return { kind: "batch", plain, payload, version: jm.header.version };
}

/**
 * Checks one input: the recognizer against the general path.
 *
 * @param input the datagram, family and instance
 * @param tail random bytes placed after the datagram in the buffer the recognizer reads
 * @returns what each side said, and the disagreement (null when they agree)
 */
export function check(
  input: FuzzInput,
  tail: Uint8Array = new Uint8Array(),
): { recognized: BatchRecognition; general: GeneralOutcome; disagreement: string | null } {
  const buffer = new Uint8Array(input.bytes.length + tail.length);
  buffer.set(input.bytes);
  buffer.set(tail, input.bytes.length);
  const datagram = buffer.subarray(0, input.bytes.length);
  const general = generalOutcome(datagram, input.family, input.instance);
  let recognized: BatchRecognition;
  try {
    recognized = recognizeBatch(
      buffer,
      input.bytes.length,
      input.family,
      instanceName16(input.instance),
    );
  } catch (e) {
    return {
      recognized: { kind: "not-a-batch" },
      general,
      disagreement: `the recognizer threw ${e}`,
    };
  }
  return { recognized, general, disagreement: disagreement(recognized, general, datagram) };
}

function disagreement(
  r: BatchRecognition,
  g: GeneralOutcome,
  datagram: Uint8Array,
): string | null {
  const said = `recognizer "${r.kind}", general ${
    JSON.stringify(g, (k, v) => k === "payload" ? `${v.length} bytes` : v)
  }`;
  if (r.kind === "batch") {
    if (g.kind !== "batch") return `${said}: accepted what the general path does not`;
    const start = g.payload.byteOffset - datagram.byteOffset;
    if (r.payloadStart !== start || r.payloadEnd !== start + g.payload.length) {
      return `${said}: payload [${r.payloadStart}, ${r.payloadEnd}) vs [${start}, ${
        start + g.payload.length
      })`;
    }
    if (r.payloadStart !== BATCH_PAYLOAD_START) return `${said}: payload not at 52`;
    if (r.version !== g.version) return `${said}: version ${r.version} vs ${g.version}`;
    return null;
  }
  if (r.kind === "other-instance") {
    return g.kind === "other-instance" ? null : `${said}: another instance, the general path not`;
  }
  if ((g.kind === "batch" || g.kind === "other-instance") && g.plain) {
    return `${said}: declined a plain batch`;
  }
  return null;
}

/** What lies in the buffer after the datagram: nothing, or random bytes. */
function tailOf(r: Random): Uint8Array {
  return r.chance(0.5) ? randomBytes(r, 1 + r.int(64)) : new Uint8Array();
}

/** How often each side said what, over a run. */
export interface FuzzStats {
  /** Inputs checked. */
  inputs: number;
  /** Recognizer "batch". */
  batch: number;
  /** Recognizer "other-instance". */
  otherInstance: number;
  /** Recognizer "not-a-batch" where the general path found a batch of ours (a decline). */
  declinedBatch: number;
  /** Recognizer "not-a-batch" where the general path found the input malformed. */
  malformed: number;
  /** Recognizer "not-a-batch" otherwise. */
  notABatch: number;
}

/** A disagreement, with what it takes to reproduce it. */
export interface FuzzFailure {
  /** The run's seed. */
  readonly seed: number;
  /** The input's index in the run. */
  readonly index: number;
  /** What went wrong. */
  readonly message: string;
  /** The input. */
  readonly input: FuzzInput;
}

/**
 * Runs `count` inputs from `seed`.
 *
 * @returns the counts and the first disagreement (null when none)
 */
export function runFuzz(
  seeds: readonly SeedInput[],
  seed: number,
  count: number,
  first = 0,
): { stats: FuzzStats; failure: FuzzFailure | null } {
  const stats: FuzzStats = {
    inputs: 0,
    batch: 0,
    otherInstance: 0,
    declinedBatch: 0,
    malformed: 0,
    notABatch: 0,
  };
  for (let index = first; index < first + count; index++) {
    const input = makeInput(seeds, seed, index);
    const tail = tailOf(inputRandom(seed ^ 0x5bd1e995, index));
    const { recognized, general, disagreement } = check(input, tail);
    stats.inputs++;
    if (disagreement !== null) {
      return { stats, failure: { seed, index, message: disagreement, input } };
    }
    if (recognized.kind === "batch") stats.batch++;
    else if (recognized.kind === "other-instance") stats.otherInstance++;
    else if (general.kind === "batch") stats.declinedBatch++;
    else if (general.kind === "malformed") stats.malformed++;
    else stats.notABatch++;
  }
  return { stats, failure: null };
}

/** An input as lines to print: where it came from, what it asks, its bytes in hex. */
export function formatInput(input: FuzzInput): string {
  const hex = Array.from(input.bytes, (b) => b.toString(16).padStart(2, "0"))
    .join(" ").replace(/((?:[0-9a-f]{2} ){16})/g, "$1\n");
  return [
    `  input: ${input.origin}; family ${input.family}, instance ${
      JSON.stringify(input.instance)
    }, ${input.bytes.length} bytes:`,
    hex,
  ].join("\n");
}

/**
 * A failure as the lines to print: the seed, the index, how to replay it, the input in hex.
 *
 * @param f the failure
 * @param extraArgs the run's other arguments (its `--pcap` files), for the replay line
 */
export function formatFailure(f: FuzzFailure, extraArgs = ""): string {
  return [
    `disagreement at seed ${f.seed} index ${f.index}`,
    `  replay: deno task fuzz --seed ${f.seed} --index ${f.index}${extraArgs}`,
    `  ${f.message}`,
    formatInput(f.input),
  ].join("\n");
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      seed: { type: "string" },
      index: { type: "string" },
      pcap: { type: "string", multiple: true },
    },
  });
  const count = positionals.length > 0 ? Number(positionals[0]) : 1_000_000;
  if (!Number.isSafeInteger(count) || count < 1) {
    console.error(`fuzz: the count must be a positive integer, got ${positionals[0]}`);
    Deno.exit(2);
  }
  const seed = values.seed !== undefined
    ? Number(values.seed) >>> 0
    : crypto.getRandomValues(new Uint32Array(1))[0];
  const seeds = [...fixtureSeeds(), ...(values.pcap ?? []).flatMap((p) => pcapSeeds(p))];
  const extraArgs = (values.pcap ?? []).map((p) => ` --pcap ${p}`).join("");
  if (values.index !== undefined) {
    const index = Number(values.index);
    const { failure } = runFuzz(seeds, seed, 1, index);
    if (failure !== null) {
      console.error(formatFailure(failure, extraArgs));
      Deno.exit(1);
    }
    const input = makeInput(seeds, seed, index);
    const tail = inputRandom(seed ^ 0x5bd1e995, index);
    const { recognized, general } = check(input, tailOf(tail));
    console.log(
      `seed ${seed} index ${index}: agree (recognizer "${recognized.kind}", general "${general.kind}")`,
    );
    console.log(formatInput(input));
    Deno.exit(0);
  }
  console.log(`fuzz: ${count} inputs from ${seeds.length} seed messages, seed ${seed}`);
  const started = performance.now();
  const { stats, failure } = runFuzz(seeds, seed, count);
  const seconds = (performance.now() - started) / 1000;
  console.log(
    [
      `fuzz: ${stats.inputs} inputs in ${seconds.toFixed(1)} s: ${stats.batch} batches`,
      `${stats.otherInstance} other-instance`,
      `${stats.declinedBatch} batches declined to the general path`,
      `${stats.malformed} malformed`,
      `${stats.notABatch} other not-a-batch`,
    ].join(", "),
  );
  if (failure !== null) {
    console.error(formatFailure(failure, extraArgs));
    Deno.exit(1);
  }
}
