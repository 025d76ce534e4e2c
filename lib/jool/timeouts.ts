/**
 * The session lifetimes of a Jool instance (its `udp-timeout`, `tcp-est-timeout`,
 * `tcp-trans-timeout` and `icmp-timeout` globals), which bound what a synced session may claim:
 * the meaning checks (lib/jool/meaning.ts) clamp a session's expiration to them.
 *
 * The kernel serves them in its GLOBAL_FOREACH reply as flat attributes after the Jool header,
 * each a u32 of milliseconds in HOST order (`nla_put_u32`), with the ids of
 * `enum joolnl_attr_global` (src/common/config.h), the same from 4.1.0 to 4.2.0-rc3:
 * JNLAG_TTL_TCP_EST 20, JNLAG_TTL_TCP_TRANS 21, JNLAG_TTL_UDP 22, JNLAG_TTL_ICMP 23.
 *
 * @module
 */

import { parseAttributes } from "../netlink/attribute.ts";

/** A Jool instance's session lifetimes, in milliseconds. */
export interface SessionTimeouts {
  /** `udp-timeout`. */
  readonly udp: number;
  /** `tcp-est-timeout`: the established timer's. */
  readonly tcpEst: number;
  /** `tcp-trans-timeout`: the transitory timer's. */
  readonly tcpTrans: number;
  /** `icmp-timeout`. */
  readonly icmp: number;
}

/** src/common/config.h, enum joolnl_attr_global: `tcp-est-timeout` (u32 ms, host order). */
export const JNLAG_TTL_TCP_EST = 20;
/** `tcp-trans-timeout`. */
export const JNLAG_TTL_TCP_TRANS = 21;
/** `udp-timeout`. */
export const JNLAG_TTL_UDP = 22;
/** `icmp-timeout`. */
export const JNLAG_TTL_ICMP = 23;

/**
 * Jool's defaults (src/common/constants.h: UDP_DEFAULT 5 min, TCP_EST 2 h, TCP_TRANS 4 min,
 * ICMP_DEFAULT 1 min), for when the instance's own values are not known.
 */
export const JOOL_DEFAULT_TIMEOUTS: SessionTimeouts = Object.freeze({
  udp: 5 * 60_000,
  tcpEst: 2 * 3_600_000,
  tcpTrans: 4 * 60_000,
  icmp: 60_000,
});

/**
 * The lifetime of the TCP "SYN4" timer (src/common/constants.h TCP_INCOMING_SYN, 6 s), which
 * the user cannot configure.
 */
export const TCP_INCOMING_SYN_MS = 6000;

/**
 * Reads the four timeouts out of the attributes of a GLOBAL_FOREACH reply (what follows the Jool
 * header). A global the reply lacks (a paged reply, another translator type) keeps the value of
 * `fallback`.
 *
 * @param attributes the reply's attributes
 * @param fallback values for the globals the reply does not carry
 * @returns the timeouts
 * @throws {RangeError} when the attributes are malformed or a timeout is not a 4-byte value
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeAttribute } from "../netlink/attribute.ts";
 * import { decodeTimeouts, JNLAG_TTL_UDP, JOOL_DEFAULT_TIMEOUTS } from "./timeouts.ts";
 *
 * const udp = new Uint8Array(4);
 * new DataView(udp.buffer).setUint32(0, 120_000, true);
 * const timeouts = decodeTimeouts(encodeAttribute(JNLAG_TTL_UDP, udp));
 * assert.equal(timeouts.udp, 120_000);
 * assert.equal(timeouts.tcpEst, JOOL_DEFAULT_TIMEOUTS.tcpEst);
 * ```
 */
export function decodeTimeouts(
  attributes: Uint8Array,
  fallback: SessionTimeouts = JOOL_DEFAULT_TIMEOUTS,
): SessionTimeouts {
  const out = { ...fallback };
  const names: Record<number, keyof SessionTimeouts> = {
    [JNLAG_TTL_TCP_EST]: "tcpEst",
    [JNLAG_TTL_TCP_TRANS]: "tcpTrans",
    [JNLAG_TTL_UDP]: "udp",
    [JNLAG_TTL_ICMP]: "icmp",
  };
  for (const a of parseAttributes(attributes)) {
    const name = names[a.type];
    if (name === undefined) continue;
    if (a.payload.length !== 4) {
      throw new RangeError(
        `the ${name} timeout global (${a.type}) has ${a.payload.length} bytes, expected 4`,
      );
    }
    out[name] = new DataView(a.payload.buffer, a.payload.byteOffset, 4).getUint32(0, true);
  }
  return out;
}
