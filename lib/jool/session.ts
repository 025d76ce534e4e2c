/**
 * The three session record formats inside a joold payload (a list of JNLAL_ENTRY attributes):
 * nested (Jool 4.1.0-4.1.11, host-order integers), compact 48-byte (4.1.12) and compact 36-byte
 * (4.1.13+, network order). Decode, encode, validate a whole payload, and print sessions as CSV.
 * The daemon forwards payloads unchanged; these are for validation, counting and printing.
 *
 * @module
 */

import { formatAddress } from "../../ffi/sockaddr.ts";
import {
  type Attribute,
  concat,
  encodeAttribute,
  NLA_F_NESTED,
  parseAttributes,
  walkAttributes,
} from "../netlink/attribute.ts";
import type { SessionFormat } from "./version.ts";

/** common/config.h: list entries inside a root attribute. */
export const JNLAL_ENTRY = 1;
/** enum joolnl_attr_session (nested format). */
export const JNLASE_SRC6 = 1;
/** Destination IPv6 transport address. */
export const JNLASE_DST6 = 2;
/** Source IPv4 transport address (pool4). */
export const JNLASE_SRC4 = 3;
/** Destination IPv4 transport address. */
export const JNLASE_DST4 = 4;
/** Layer-4 protocol, u8. */
export const JNLASE_PROTO = 5;
/** TCP state, u8. */
export const JNLASE_STATE = 6;
/** Timer type, u8. */
export const JNLASE_TIMER = 7;
/** Milliseconds to expiration, u32. */
export const JNLASE_EXPIRATION = 8;
/** enum joolnl_attr_taddr: address. */
export const JNLATA_ADDR = 1;
/** enum joolnl_attr_taddr: port (or ICMP id), u16. */
export const JNLATA_PORT = 2;

/** Layer-4 protocols: TCP=0 UDP=1 ICMP=2. */
export const PROTOCOLS = ["TCP", "UDP", "ICMP"] as const;

/** One session, whatever format it came in. Addresses are network-order bytes. */
export interface Session {
  /** 0 TCP, 1 UDP, 2 ICMP. */
  readonly proto: number;
  /** The IPv6 client. */
  readonly src6: Uint8Array;
  /** The client's port (ICMP: identifier). */
  readonly src6Port: number;
  /** IPv6 side of the server (pool6 prefix + IPv4); absent in the 36-byte format. */
  readonly dst6?: Uint8Array;
  /** The server's port as seen from IPv6. */
  readonly dst6Port?: number;
  /** The NAT64's pool4 address. */
  readonly src4: Uint8Array;
  /** The NAT64's pool4 port (ICMP: identifier). */
  readonly src4Port: number;
  /** The IPv4 server; absent in the 48-byte format. */
  readonly dst4?: Uint8Array;
  /** The server's port. */
  readonly dst4Port?: number;
  /** Milliseconds until the session expires. */
  readonly expirationMs: number;
  /** TCP state (0 otherwise). */
  readonly state: number;
  /** Timer type. */
  readonly timer: number;
}

// decodeNested walks the entry in place: every received 4.1.9 session goes through it, and an
// array of attribute objects, a Map and a tuple per session cost more than the walk under the
// lab's emulation. These scratch arrays hold, per top-level type (1-8), where the LAST attribute
// of that type starts (its payload; -1: none), its payload's length and its NESTED flag, as a
// Map filled in order would. Synchronous use only.
const FOUND_START = new Int32Array(JNLASE_EXPIRATION + 1);
const FOUND_LENGTH = new Int32Array(JNLASE_EXPIRATION + 1);
const FOUND_NESTED = new Uint8Array(JNLASE_EXPIRATION + 1);
/** taddr's results (no tuple per call). */
let taddrAddress: Uint8Array = new Uint8Array(0);
let taddrPort = 0;

function ignoreAttribute(): void {}

function recordTopLevel(type: number, start: number, length: number, nested: boolean): void {
  if (type < 1 || type > JNLASE_EXPIRATION) return;
  FOUND_START[type] = start;
  FOUND_LENGTH[type] = length;
  FOUND_NESTED[type] = nested ? 1 : 0;
}

let taddrLength = 0;
let taddrWhat = "";
let taddrBytes: Uint8Array = new Uint8Array(0);
let taddrHasAddress = false;
let taddrHasPort = false;

function recordTaddr(type: number, start: number, length: number): void {
  if (type === JNLATA_ADDR) {
    if (length !== taddrLength) {
      throw new RangeError(`${taddrWhat} address has ${length} bytes, expected ${taddrLength}`);
    }
    taddrAddress = taddrBytes.subarray(start, start + length);
    taddrHasAddress = true;
  } else if (type === JNLATA_PORT) {
    if (length < 2) throw new RangeError(`${taddrWhat} port is truncated`);
    taddrPort = taddrBytes[start] | (taddrBytes[start + 1] << 8); // host order (little endian)
    taddrHasPort = true;
  }
}

/** The entry's attribute of `type`: its payload's start (throws when there is none). */
function need(type: number, what: string): number {
  const start = FOUND_START[type];
  if (start < 0) throw new RangeError(`session entry lacks ${what}`);
  return start;
}

/** A nested transport address of the entry: sets taddrAddress and taddrPort. */
function taddr(b: Uint8Array, type: number, length: number, what: string): void {
  const start = need(type, what);
  if (FOUND_NESTED[type] === 0) throw new RangeError(`${what} is not a nested attribute`);
  taddrLength = length;
  taddrWhat = what;
  taddrBytes = b;
  taddrHasAddress = false;
  taddrHasPort = false;
  // Structure first, then the values, in that order as a parsed list would report them.
  walkAttributes(b, start, start + FOUND_LENGTH[type], ignoreAttribute);
  walkAttributes(b, start, start + FOUND_LENGTH[type], recordTaddr);
  if (!taddrHasAddress || !taddrHasPort) {
    throw new RangeError(`${what} lacks its address or port`);
  }
}

function u8(b: Uint8Array, type: number, what: string): number {
  const start = need(type, what);
  if (FOUND_LENGTH[type] < 1) throw new RangeError(`${what} is empty`);
  return b[start];
}

/**
 * Decodes a nested-format entry (the payload of one JNLAL_ENTRY).
 *
 * @param payload the entry's payload
 * @returns the session
 * @throws {RangeError} when an attribute is missing, truncated or of the wrong size
 */
export function decodeNested(payload: Uint8Array): Session {
  const b = payload;
  FOUND_START.fill(-1);
  walkAttributes(b, 0, b.length, recordTopLevel);
  taddr(b, JNLASE_SRC6, 16, "SRC6");
  const src6 = taddrAddress;
  const src6Port = taddrPort;
  taddr(b, JNLASE_DST6, 16, "DST6");
  const dst6 = taddrAddress;
  const dst6Port = taddrPort;
  taddr(b, JNLASE_SRC4, 4, "SRC4");
  const src4 = taddrAddress;
  const src4Port = taddrPort;
  taddr(b, JNLASE_DST4, 4, "DST4");
  const dst4 = taddrAddress;
  const dst4Port = taddrPort;
  const proto = u8(b, JNLASE_PROTO, "PROTO");
  if (proto > 2) throw new RangeError(`session entry has an unknown protocol ${proto}`);
  const exp = need(JNLASE_EXPIRATION, "EXPIRATION");
  if (FOUND_LENGTH[JNLASE_EXPIRATION] < 4) throw new RangeError("EXPIRATION is truncated");
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
    state: u8(b, JNLASE_STATE, "STATE"),
    timer: u8(b, JNLASE_TIMER, "TIMER"),
    // Host order (little endian), as the kernel writes it.
    expirationMs: (b[exp] | (b[exp + 1] << 8) | (b[exp + 2] << 16)) + b[exp + 3] * 0x1000000,
  };
}

function taddrAttribute(type: number, address: Uint8Array, port: number): Uint8Array {
  const p = new Uint8Array(2);
  new DataView(p.buffer).setUint16(0, port, true);
  return encodeAttribute(
    type | NLA_F_NESTED,
    concat(encodeAttribute(JNLATA_ADDR, address), encodeAttribute(JNLATA_PORT, p)),
  );
}

/**
 * Encodes a session in the nested format (a whole JNLAL_ENTRY attribute).
 *
 * @param s the session (dst6 and dst4 required)
 * @returns the entry attribute
 * @throws {RangeError} when dst6 or dst4 is missing
 */
export function encodeNested(s: Session): Uint8Array<ArrayBuffer> {
  if (s.dst6 === undefined || s.dst4 === undefined) {
    throw new RangeError("the nested format needs dst6 and dst4");
  }
  const exp = new Uint8Array(4);
  new DataView(exp.buffer).setUint32(0, s.expirationMs, true);
  return encodeAttribute(
    JNLAL_ENTRY | NLA_F_NESTED,
    concat(
      taddrAttribute(JNLASE_SRC6, s.src6, s.src6Port),
      taddrAttribute(JNLASE_DST6, s.dst6, s.dst6Port ?? 0),
      taddrAttribute(JNLASE_SRC4, s.src4, s.src4Port),
      taddrAttribute(JNLASE_DST4, s.dst4, s.dst4Port ?? 0),
      encodeAttribute(JNLASE_PROTO, Uint8Array.of(s.proto)),
      encodeAttribute(JNLASE_STATE, Uint8Array.of(s.state)),
      encodeAttribute(JNLASE_TIMER, Uint8Array.of(s.timer)),
      encodeAttribute(JNLASE_EXPIRATION, exp),
    ),
  );
}

function flagsOf(s: Session): number {
  return (s.proto << 5) | (s.state << 2) | s.timer;
}

function checkFlags(flags: number): void {
  if ((flags >> 5) > 2) {
    throw new RangeError(`session record has an unknown protocol ${flags >> 5}`);
  }
}

/**
 * Where each field of a compact record sits: byte offsets, every field in network order. The two
 * formats hold the same fields but one: the 36-byte record (Jool >= 4.1.13) carries the IPv4
 * server (dst4), the 48-byte one (Jool 4.1.12) the IPv6 one (dst6); `dstPort` is that address's port.
 */
interface CompactLayout {
  readonly size: 36 | 48;
  readonly src6: number;
  readonly src4: number;
  /** Offset of the 4-byte dst4 (36-byte record) or of the 16-byte dst6 (48-byte record). */
  readonly dst: number;
  readonly expiration: number;
  readonly src6Port: number;
  readonly src4Port: number;
  readonly dstPort: number;
  /** proto << 5 | state << 2 | timer, 16 bits. */
  readonly flags: number;
}

/** The 36-byte record of Jool >= 4.1.13 (docs/PROTOCOL.md). */
const COMPACT36: CompactLayout = {
  size: 36,
  src6: 0,
  src4: 16,
  dst: 20,
  expiration: 24,
  src6Port: 28,
  src4Port: 30,
  dstPort: 32,
  flags: 34,
};

/** The 48-byte record of Jool 4.1.12 (docs/PROTOCOL.md). */
const COMPACT48: CompactLayout = {
  size: 48,
  src6: 0,
  dst: 16,
  src4: 32,
  expiration: 36,
  src6Port: 40,
  dstPort: 42,
  src4Port: 44,
  flags: 46,
};

/** A big-endian u16 at `at` (no DataView per record: this runs for every received session). */
function be16(b: Uint8Array, at: number): number {
  return (b[at] << 8) | b[at + 1];
}

/** A big-endian u32 at `at`. */
function be32(b: Uint8Array, at: number): number {
  return b[at] * 0x1000000 + ((b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]);
}

function decodeCompact(b: Uint8Array, l: CompactLayout): Session {
  if (b.length !== l.size) {
    throw new RangeError(`compact session record has ${b.length} bytes, not ${l.size}`);
  }
  const flags = be16(b, l.flags);
  checkFlags(flags);
  // One object, its address fields set after (the same two shapes every time): an object spread
  // per record cost more than the decoding itself under the lab's emulation (BENCHMARKS.md).
  const session: { -readonly [K in keyof Session]: Session[K] } = {
    src6: b.subarray(l.src6, l.src6 + 16),
    src4: b.subarray(l.src4, l.src4 + 4),
    expirationMs: be32(b, l.expiration),
    src6Port: be16(b, l.src6Port),
    src4Port: be16(b, l.src4Port),
    proto: flags >> 5,
    state: (flags >> 2) & 7,
    timer: flags & 3,
  };
  if (l.size === 36) {
    session.dst4 = b.subarray(l.dst, l.dst + 4);
    session.dst4Port = be16(b, l.dstPort);
  } else {
    session.dst6 = b.subarray(l.dst, l.dst + 16);
    session.dst6Port = be16(b, l.dstPort);
  }
  return session;
}

function encodeCompact(s: Session, l: CompactLayout): Uint8Array<ArrayBuffer> {
  const dst = l.size === 36 ? s.dst4 : s.dst6;
  if (dst === undefined) {
    throw new RangeError(`the ${l.size}-byte format needs ${l.size === 36 ? "dst4" : "dst6"}`);
  }
  const b = new Uint8Array(l.size);
  const v = new DataView(b.buffer);
  b.set(s.src6, l.src6);
  b.set(s.src4, l.src4);
  b.set(dst, l.dst);
  v.setUint32(l.expiration, s.expirationMs, false);
  v.setUint16(l.src6Port, s.src6Port, false);
  v.setUint16(l.src4Port, s.src4Port, false);
  v.setUint16(l.dstPort, (l.size === 36 ? s.dst4Port : s.dst6Port) ?? 0, false);
  v.setUint16(l.flags, flagsOf(s), false);
  return encodeAttribute(JNLAL_ENTRY, b);
}

/**
 * Decodes a 36-byte compact record (Jool >= 4.1.13, network order).
 *
 * @param b the record
 * @returns the session
 * @throws {RangeError} when it is not 36 bytes or the protocol is unknown
 */
export function decodeCompact36(b: Uint8Array): Session {
  return decodeCompact(b, COMPACT36);
}

/**
 * Encodes a session as a 36-byte compact record inside a JNLAL_ENTRY attribute.
 *
 * @param s the session (dst4 required)
 * @returns the entry attribute (40 bytes)
 * @throws {RangeError} when dst4 is missing
 */
export function encodeCompact36(s: Session): Uint8Array<ArrayBuffer> {
  return encodeCompact(s, COMPACT36);
}

/**
 * Decodes a 48-byte compact record (Jool 4.1.12, network order).
 *
 * @param b the record
 * @returns the session
 * @throws {RangeError} when it is not 48 bytes or the protocol is unknown
 */
export function decodeCompact48(b: Uint8Array): Session {
  return decodeCompact(b, COMPACT48);
}

/**
 * Encodes a session as a 48-byte compact record inside a JNLAL_ENTRY attribute.
 *
 * @param s the session (dst6 required)
 * @returns the entry attribute (52 bytes)
 * @throws {RangeError} when dst6 is missing
 */
export function encodeCompact48(s: Session): Uint8Array<ArrayBuffer> {
  return encodeCompact(s, COMPACT48);
}

/** The encoder of each session format: a session as one entry attribute of that format. */
export const SESSION_ENCODERS: Readonly<
  Record<SessionFormat, (s: Session) => Uint8Array<ArrayBuffer>>
> = {
  nested: encodeNested,
  compact48: encodeCompact48,
  compact36: encodeCompact36,
};

/** What a payload holds. */
export interface PayloadSummary {
  /** The record format of every entry. */
  readonly format: SessionFormat;
  /** The sessions, decoded. */
  readonly sessions: Session[];
}

function formatOf(entry: Attribute): SessionFormat {
  if (entry.nested) return "nested";
  if (entry.payload.length === 36) return "compact36";
  if (entry.payload.length === 48) return "compact48";
  throw new RangeError(
    `session entry of ${entry.payload.length} bytes is neither nested nor a 36/48-byte record`,
  );
}

/**
 * Validates and decodes a whole payload: a non-empty list of JNLAL_ENTRY attributes, all in one
 * format, each well formed.
 *
 * @param payload a SESSION_ENTRIES payload (a UDP datagram on the sync network)
 * @returns the format and the sessions
 * @throws {RangeError} saying what is malformed
 * @example A datagram a Jool 4.1.13 translator sent (one ICMP session, 36-byte record)
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodePayload } from "./session.ts";
 *
 * const datagram = new Uint8Array([
 *   0x28, 0x00, 0x01, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
 *   0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08,
 *   0xc0, 0x00, 0x02, 0x01, 0xc0, 0x00, 0x02, 0x08, 0x00, 0x00,
 *   0xea, 0x60, 0x01, 0x42, 0x98, 0x7b, 0x98, 0x7b, 0x00, 0x40,
 * ]);
 * const { format, sessions } = decodePayload(datagram);
 * assert.equal(format, "compact36");
 * assert.equal(sessions.length, 1);
 * ```
 */
export function decodePayload(payload: Uint8Array): PayloadSummary {
  const entries = parseAttributes(payload);
  if (entries.length === 0) throw new RangeError("the payload holds no session");
  let format: SessionFormat | undefined;
  const sessions: Session[] = [];
  for (const entry of entries) {
    if (entry.type !== JNLAL_ENTRY) {
      throw new RangeError(`attribute of type ${entry.type} where a session entry (1) belongs`);
    }
    const f = formatOf(entry);
    if (format !== undefined && f !== format) {
      throw new RangeError(`the payload mixes session formats (${format} and ${f})`);
    }
    format = f;
    sessions.push(
      f === "nested"
        ? decodeNested(entry.payload)
        : f === "compact36"
        ? decodeCompact36(entry.payload)
        : decodeCompact48(entry.payload),
    );
  }
  return { format: format!, sessions };
}

/**
 * Formats milliseconds like Jool's timeout2str: `H:MM:SS` plus `.mmm` when not whole seconds.
 *
 * @param ms milliseconds
 * @returns the text
 * @example
 * ```ts
 * formatTimeout(61_500); // "0:01:01.500"
 * ```
 */
export function formatTimeout(ms: number): string {
  const hours = Math.floor(ms / 3_600_000);
  const minutes = Math.floor((ms % 3_600_000) / 60_000);
  const seconds = Math.floor((ms % 60_000) / 1000);
  const millis = ms % 1000;
  const base = `${hours}:${String(minutes).padStart(2, "0")}:${String(seconds).padStart(2, "0")}`;
  return millis === 0 ? base : `${base}.${String(millis).padStart(3, "0")}`;
}

/**
 * One CSV line per session, as the C daemon prints them when its network socket is disabled:
 * `PROTO,src6,src6 port,src4,src4 port,dst4,dst4 port,expiration`. For the 48-byte format the IPv4
 * server is taken from the last 4 bytes of dst6 (a /96 pool6).
 *
 * @param s the session
 * @returns the line, without newline
 * @example The session of a datagram from a Jool 4.1.13 translator
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodePayload, sessionCsv } from "./session.ts";
 *
 * const datagram = new Uint8Array([
 *   0x28, 0x00, 0x01, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
 *   0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08,
 *   0xc0, 0x00, 0x02, 0x01, 0xc0, 0x00, 0x02, 0x08, 0x00, 0x00,
 *   0xea, 0x60, 0x01, 0x42, 0x98, 0x7b, 0x98, 0x7b, 0x00, 0x40,
 * ]);
 * const [session] = decodePayload(datagram).sessions;
 * assert.equal(sessionCsv(session), "ICMP,2001:db8::8,322,192.0.2.1,39035,192.0.2.8,39035,0:01:00");
 * ```
 */
export function sessionCsv(s: Session): string {
  const dst4 = s.dst4 ?? s.dst6?.subarray(12, 16) ?? new Uint8Array(4);
  const dst4Port = s.dst4Port ?? s.dst6Port ?? 0;
  return [
    PROTOCOLS[s.proto] ?? String(s.proto),
    formatAddress(s.src6),
    s.src6Port,
    formatAddress(s.src4),
    s.src4Port,
    formatAddress(dst4),
    dst4Port,
    formatTimeout(s.expirationMs),
  ].join(",");
}
