/**
 * Session translation across Jool's three session formats, for a rolling upgrade (the option
 * `"translate sessions"`): a datagram from a peer whose kernel speaks another format is decoded
 * and re-encoded, field by field, in the local kernel's format, as that peer's kernel would have
 * encoded the same session. What the target format cannot carry faithfully is refused, one
 * session at a time, with a reason (docs/PROTOCOL.md, "Session formats"; docs/DESIGN.md).
 *
 * Field semantics, read from Jool's source (src/mod/common/nl/attribute.c, 4.1.9 - 4.1.15):
 * - expiration is the same in every format: milliseconds left until the session expires, as the
 *   sender computed it (`update_time + timeout - jiffies`, capped at 2^32-1); every receiver sets
 *   `update_time = jiffies + expiration - timeout`. It is copied unchanged.
 * - proto, TCP state and timer type are the same enums in every version (TCP 0, UDP 1, ICMP 2;
 *   ESTABLISHED 0 ... TRANS 6; EST 0, TRANS 1, SYN4 2). The compact records carry them in 2, 3 and
 *   2 bits; the nested format in a byte each, so a nested state above 7 or timer above 3 is refused.
 * - the compact formats omit one of the server's two addresses and the receiving kernel derives
 *   it: 4.1.13+ computes dst6 from its pool6 and dst4 (RFC 6052) and sets dst6's port to the
 *   client's ICMP id or else dst4's port; 4.1.12 takes dst4 from dst6's last 4 bytes (right only
 *   for a /96 pool6) and dst4's port from src4's ICMP id or else dst6's port.
 *
 * So: nested and 48-byte records carry dst6 and need nothing to become 36-byte records; a 36-byte
 * record becomes nested or 48-byte only with the local pool6 (the kernel's, read at startup), else
 * it is refused (`no-pool6`). A session whose omitted field the target kernel would derive to
 * something else than what the sender had is refused too (`underivable`): translating it would
 * make a different session than the one the peer's kernel holds.
 *
 * @module
 */

import { formatAddress } from "../../ffi/sockaddr.ts";
import { concat, parseAttributes } from "../netlink/attribute.ts";
import { decodePayload, type Session, SESSION_ENCODERS } from "./session.ts";
import type { SessionFormat } from "./version.ts";

/** An IPv6 prefix (Jool's pool6): 16 address bytes, network order, and a length. */
export interface Pool6 {
  /** The prefix's address. */
  readonly address: Uint8Array;
  /** Its length: 32, 40, 48, 56, 64 or 96 (RFC 6052, section 2.2). */
  readonly length: number;
}

/** Why a session was not translated. */
export type RefusalReason =
  /** The target needs dst6, the source format lacks it, and the local pool6 is unknown. */
  | "no-pool6"
  /** The target kernel would derive an omitted field differently from what the sender had. */
  | "underivable"
  /** A nested field does not fit the compact record's bits (state > 7, timer > 3). */
  | "range";

/** The reasons, in the order counters and messages list them. */
export const REFUSAL_REASONS: readonly RefusalReason[] = ["no-pool6", "underivable", "range"];

/** One session translated, or why not. */
export type SessionTranslation =
  | { readonly ok: true; readonly session: Session }
  | { readonly ok: false; readonly reason: RefusalReason; readonly detail: string };

/** A whole datagram translated. */
export interface PayloadTranslation {
  /** The format the datagram came in. */
  readonly from: SessionFormat;
  /** The re-encoded payload (JNLAL_ENTRY list), or null when no session could be translated. */
  readonly payload: Uint8Array<ArrayBuffer> | null;
  /** How many sessions went into `payload`. */
  readonly translated: number;
  /** The sessions refused, by reason. */
  readonly refused: ReadonlyMap<RefusalReason, number>;
  /** The first refused session's explanation, by reason, for the warnings. */
  readonly details: ReadonlyMap<RefusalReason, string>;
}

/** RFC 6052's prefix lengths. */
const PREFIX_LENGTHS = [32, 40, 48, 56, 64, 96];

/**
 * Embeds an IPv4 address in a pool6 prefix (RFC 6052, section 2.2: bits 64-71 stay zero), as
 * Jool's `__rfc6052_4to6` does.
 *
 * @param pool6 the prefix
 * @param ipv4 4 bytes
 * @returns the 16-byte IPv6 address
 * @throws {RangeError} when the prefix length is not one of RFC 6052's
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { embedIPv4 } from "./translate.ts";
 *
 * const pool6 = { address: new Uint8Array([0, 0x64, 0xff, 0x9b, ...new Array(12).fill(0)]), length: 96 };
 * assert.deepEqual(embedIPv4(pool6, Uint8Array.of(192, 0, 2, 8)).subarray(12), Uint8Array.of(192, 0, 2, 8));
 * ```
 */
export function embedIPv4(pool6: Pool6, ipv4: Uint8Array): Uint8Array {
  if (!PREFIX_LENGTHS.includes(pool6.length)) {
    throw new RangeError(`pool6 length ${pool6.length} is not one of RFC 6052's (32-96)`);
  }
  const out = new Uint8Array(16);
  const bytes = pool6.length / 8;
  out.set(pool6.address.subarray(0, bytes), 0);
  // The IPv4 bytes fill the positions after the prefix, skipping byte 8 (the "u" octet).
  let at = bytes;
  for (const b of ipv4) {
    if (at === 8) at++;
    out[at++] = b;
  }
  return out;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

const ICMP = 2;

/** What the target kernel derives for the fields its format omits. */
function derivedDst6Port(s: Session): number | undefined {
  return s.proto === ICMP ? s.src6Port : s.dst4Port;
}

function derivedDst4Port(s: Session): number | undefined {
  return s.proto === ICMP ? s.src4Port : s.dst6Port;
}

/**
 * Translates one session into the fields the target format carries, refusing what the target
 * kernel would not rebuild as the sender had it.
 *
 * @param s the session, as decoded from the source format
 * @param to the local kernel's format
 * @param pool6 the local kernel's pool6, when known (needed to give a 36-byte record a dst6)
 * @returns the session for the target format, or the reason it cannot be translated
 * @example A 4.1.9 (nested) UDP session for a 4.1.13 kernel
 * ```ts
 * import assert from "node:assert/strict";
 * import { translateSession } from "./translate.ts";
 *
 * const session = {
 *   proto: 1, state: 0, timer: 0, expirationMs: 300_000,
 *   src6: new Uint8Array(16), src6Port: 5002, src4: Uint8Array.of(192, 0, 2, 1), src4Port: 62707,
 *   dst6: new Uint8Array([0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, 8]), dst6Port: 7,
 *   dst4: Uint8Array.of(192, 0, 2, 8), dst4Port: 7,
 * };
 * const t = translateSession(session, "compact36");
 * assert.ok(t.ok && t.session.dst6 === undefined && t.session.dst4Port === 7);
 * ```
 */
export function translateSession(
  s: Session,
  to: SessionFormat,
  pool6?: Pool6,
): SessionTranslation {
  if ((s.state > 7 || s.timer > 3) && to !== "nested") {
    return {
      ok: false,
      reason: "range",
      detail: `state ${s.state} / timer ${s.timer} do not fit a compact record (3 and 2 bits)`,
    };
  }
  // Complete the server's two transport addresses, as the sender's own peers would.
  let dst4 = s.dst4;
  let dst4Port = s.dst4Port;
  let dst6 = s.dst6;
  let dst6Port = s.dst6Port;
  if (dst4 === undefined && dst6 !== undefined) { // from a 48-byte record
    dst4 = dst6.subarray(12, 16);
    dst4Port = derivedDst4Port(s);
  }
  if (dst6 === undefined && dst4 !== undefined && pool6 !== undefined) { // from a 36-byte record
    dst6 = embedIPv4(pool6, dst4);
    dst6Port = derivedDst6Port({ ...s, dst4Port });
  }
  const full: Session = { ...s, dst4, dst4Port, dst6, dst6Port };
  switch (to) {
    case "compact36": {
      if (full.dst4 === undefined) {
        return { ok: false, reason: "underivable", detail: "the session has no IPv4 server" };
      }
      // The 4.1.13+ kernel rebuilds dst6 from its pool6 and dst6's port from the others.
      const port6 = derivedDst6Port(full);
      if (full.dst6Port !== undefined && full.dst6Port !== port6) {
        return {
          ok: false,
          reason: "underivable",
          detail: `dst6 port ${full.dst6Port} is not what a 4.1.13+ kernel derives (${port6})`,
        };
      }
      if (
        pool6 !== undefined && s.dst6 !== undefined && !equal(s.dst6, embedIPv4(pool6, full.dst4))
      ) {
        return {
          ok: false,
          reason: "underivable",
          detail: "dst6 is not the local pool6 with dst4 embedded",
        };
      }
      return {
        ok: true,
        session: { ...full, dst6: undefined, dst6Port: undefined },
      };
    }
    case "compact48":
    case "nested": {
      if (full.dst6 === undefined) {
        return {
          ok: false,
          reason: "no-pool6",
          detail:
            `a ${to} session needs dst6, which a 36-byte record omits, and the local pool6 is unknown`,
        };
      }
      if (to === "compact48") {
        // The 4.1.12 kernel takes dst4 from dst6's last 4 bytes and its port from the others.
        if (!equal(full.dst6.subarray(12, 16), full.dst4!)) {
          return {
            ok: false,
            reason: "underivable",
            detail: "dst4 is not dst6's last 4 bytes (pool6 is not a /96), as 4.1.12 assumes",
          };
        }
        const port4 = derivedDst4Port(full);
        if (full.dst4Port !== port4) {
          return {
            ok: false,
            reason: "underivable",
            detail: `dst4 port ${full.dst4Port} is not what a 4.1.12 kernel derives (${port4})`,
          };
        }
        return { ok: true, session: { ...full, dst4: undefined, dst4Port: undefined } };
      }
      return { ok: true, session: full };
    }
  }
}

/**
 * Translates a datagram from the sync group into the local kernel's session format: every session
 * that can be translated is re-encoded (in the datagram's order); the others are counted by
 * reason.
 *
 * @param payload the datagram (a JNLAL_ENTRY list)
 * @param to the local kernel's format
 * @param pool6 the local kernel's pool6, when known
 * @returns the translated payload (null when every session was refused) and the refusals
 * @throws {RangeError} when the datagram is not a well-formed session list
 * @example A Jool 4.1.13 datagram for a 4.1.9 kernel whose pool6 is 64:ff9b::/96
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodePayload } from "./session.ts";
 * import { translatePayload } from "./translate.ts";
 *
 * const datagram = new Uint8Array([
 *   0x28, 0x00, 0x01, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
 *   0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08,
 *   0xc0, 0x00, 0x02, 0x01, 0xc0, 0x00, 0x02, 0x08, 0x00, 0x00,
 *   0xea, 0x60, 0x01, 0x42, 0x98, 0x7b, 0x98, 0x7b, 0x00, 0x40,
 * ]);
 * const pool6 = { address: new Uint8Array([0, 0x64, 0xff, 0x9b, ...new Array(12).fill(0)]), length: 96 };
 * const t = translatePayload(datagram, "nested", pool6);
 * assert.equal(t.from, "compact36");
 * assert.equal(decodePayload(t.payload!).format, "nested");
 * assert.equal(translatePayload(datagram, "nested").refused.get("no-pool6"), 1);
 * ```
 */
export function translatePayload(
  payload: Uint8Array,
  to: SessionFormat,
  pool6?: Pool6,
): PayloadTranslation {
  const { format: from, sessions } = decodePayload(payload);
  const parts: Uint8Array[] = [];
  const refused = new Map<RefusalReason, number>();
  const details = new Map<RefusalReason, string>();
  for (const s of sessions) {
    const t = translateSession(s, to, pool6);
    if (t.ok) {
      parts.push(SESSION_ENCODERS[to](t.session));
    } else {
      refused.set(t.reason, (refused.get(t.reason) ?? 0) + 1);
      if (!details.has(t.reason)) details.set(t.reason, t.detail);
    }
  }
  return {
    from,
    payload: parts.length === 0 ? null : concat(...parts),
    translated: parts.length,
    refused,
    details,
  };
}

/** enum joolnl_attr_global (common/config.h, 4.1.0 - 4.1.15): pool6. */
export const JNLAG_POOL6 = 2;
/** enum joolnl_attr_prefix: the prefix's address. */
export const JNLAP_ADDR = 1;
/** enum joolnl_attr_prefix: its length, u8. */
export const JNLAP_LEN = 2;

/**
 * Reads pool6 out of a GLOBAL_FOREACH reply's attributes (the kernel sends `JNLAG_POOL6` as a
 * nest of `JNLAP_ADDR` and `JNLAP_LEN`; an unset pool6 is a length 0 without address).
 *
 * @param attributes the reply's attributes, after the Jool header
 * @returns the prefix, or undefined when the reply has none (unset, malformed or absent)
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pool6FromGlobals } from "./translate.ts";
 *
 * assert.equal(pool6FromGlobals(new Uint8Array()), undefined);
 * ```
 */
export function pool6FromGlobals(attributes: Uint8Array): Pool6 | undefined {
  try {
    for (const a of parseAttributes(attributes)) {
      if (a.type !== JNLAG_POOL6) continue;
      let address: Uint8Array | undefined;
      let length: number | undefined;
      for (const c of parseAttributes(a.payload)) {
        if (c.type === JNLAP_ADDR && c.payload.length === 16) address = c.payload.slice();
        else if (c.type === JNLAP_LEN && c.payload.length >= 1) length = c.payload[0];
      }
      if (address === undefined || length === undefined || !PREFIX_LENGTHS.includes(length)) {
        return undefined;
      }
      return { address, length };
    }
  } catch {
    // A reply we cannot read tells no pool6.
  }
  return undefined;
}

/**
 * What the daemon says at startup about `"translate sessions"`: which format it translates into
 * and, when that format needs dst6 and the pool6 is unknown, that 36-byte records will be refused.
 *
 * @param to the local kernel's format
 * @param pool6 the local pool6, when known
 * @returns the log level and the line
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { translationNotice } from "./translate.ts";
 *
 * assert.equal(translationNotice("nested").level, "warn");
 * ```
 */
export function translationNotice(
  to: SessionFormat,
  pool6?: Pool6,
): { level: "info" | "warn"; message: string } {
  const prefix = pool6 === undefined
    ? "pool6 unknown"
    : `pool6 ${formatAddress(pool6.address)}/${pool6.length}`;
  if (to !== "compact36" && pool6 === undefined) {
    return {
      level: "warn",
      message: `translate sessions: this kernel's ${to} sessions need dst6, and the instance's ` +
        `pool6 is unknown (no instance yet, or no pool6): 36-byte records from Jool 4.1.13+ ` +
        `peers will be refused (restart joold once the instance exists)`,
    };
  }
  return {
    level: "info",
    message:
      `translate sessions: datagrams of other Jool session formats become ${to} sessions for ` +
      `this kernel (${prefix})`,
  };
}
