/**
 * Jool's own counters, as `jool stats display` reads them: the STATS_FOREACH request and a pure
 * decoder of its reply. The reply (Jool's mod/common/nl/stats.c) is one Jool message whose
 * attributes are the counters, each a u64 in host order whose attribute type is its
 * `enum jool_stat_id` value (common/stats.h); when they do not fit one message the joolnlhdr has
 * JOOLNLHDR_FLAGS_M and the next request carries the last id in JNLAR_OFFSET_U8. The enum's numbers
 * differ per version: 4.1.12 added the JSTAT_JOOLD_* block (with JSTAT_JOOLD_FLUSH_ASAP), 4.1.13
 * dropped FLUSH_ASAP, so every later id moved down by one. A name is only ever given by the table
 * of the version the reply's own header states.
 *
 * @module
 */

import { parseAttributes, u8Attribute } from "../netlink/attribute.ts";
import { JOOLNLHDR_FLAGS_M } from "./header.ts";
import { JNLAR_OFFSET_U8, type JoolMessage, joolRequest, type RequestTarget } from "./message.ts";
import { isMaptRelease, type JoolVersion, unpackVersion } from "./version.ts";

/** enum joolnl_operation (common/config.h): JNLOP_STATS_FOREACH, the same in 4.1.x and 4.2-rc. */
export const JNLOP_STATS_FOREACH = 7;

/** common/stats.h, ids 1-68: the same from 4.1.9 to 4.1.15. */
const BASE = [
  "JSTAT_RECEIVED6",
  "JSTAT_RECEIVED4",
  "JSTAT_SUCCESS",
  "JSTAT_BIB_ENTRIES",
  "JSTAT_SESSIONS",
  "JSTAT_ENOMEM",
  "JSTAT_XLATOR_DISABLED",
  "JSTAT_POOL6_UNSET",
  "JSTAT_SKB_SHARED",
  "JSTAT_L3HDR_OFFSET",
  "JSTAT_SKB_TRUNCATED",
  "JSTAT_HDR6",
  "JSTAT_HDR4",
  "JSTAT_UNKNOWN_L4_PROTO",
  "JSTAT_UNKNOWN_ICMP6_TYPE",
  "JSTAT_UNKNOWN_ICMP4_TYPE",
  "JSTAT_DOUBLE_ICMP6_ERROR",
  "JSTAT_DOUBLE_ICMP4_ERROR",
  "JSTAT_UNKNOWN_PROTO_INNER",
  "JSTAT_HAIRPIN_LOOP",
  "JSTAT_POOL6_MISMATCH",
  "JSTAT_POOL4_MISMATCH",
  "JSTAT_ICMP6_FILTER",
  "JSTAT_UNTRANSLATABLE_DST6",
  "JSTAT_UNTRANSLATABLE_DST4",
  "JSTAT_6056_F",
  "JSTAT_MASK_DOMAIN_NOT_FOUND",
  "JSTAT_BIB6_NOT_FOUND",
  "JSTAT_BIB4_NOT_FOUND",
  "JSTAT_SESSION_NOT_FOUND",
  "JSTAT_ADF",
  "JSTAT_V4_SYN",
  "JSTAT_SYN6_EXPECTED",
  "JSTAT_SYN4_EXPECTED",
  "JSTAT_TYPE1PKT",
  "JSTAT_TYPE2PKT",
  "JSTAT_SO_EXISTS",
  "JSTAT_SO_FULL",
  "JSTAT64_SRC",
  "JSTAT64_DST",
  "JSTAT64_PSKB_COPY",
  "JSTAT64_6791_ENOENT",
  "JSTAT64_ICMP_CSUM",
  "JSTAT64_UNTRANSLATABLE_PARAM_PROB_PTR",
  "JSTAT64_TTL",
  "JSTAT64_FRAGMENTED_ICMP",
  "JSTAT64_2XFRAG",
  "JSTAT64_FRAG_THEN_EXT",
  "JSTAT64_SEGMENTS_LEFT",
  "JSTAT46_SRC",
  "JSTAT46_DST",
  "JSTAT46_PSKB_COPY",
  "JSTAT46_6791_ENOENT",
  "JSTAT46_ICMP_CSUM",
  "JSTAT46_UNTRANSLATABLE_PARAM_PROBLEM_PTR",
  "JSTAT46_TTL",
  "JSTAT46_FRAGMENTED_ICMP",
  "JSTAT46_SRC_ROUTE",
  "JSTAT46_FRAGMENTED_ZERO_CSUM",
  "JSTAT46_BAD_MTU",
  "JSTAT_FAILED_ROUTES",
  "JSTAT_PKT_TOO_BIG",
  "JSTAT_DST_OUTPUT",
  "JSTAT_ICMP6ERR_SUCCESS",
  "JSTAT_ICMP6ERR_FAILURE",
  "JSTAT_ICMP4ERR_SUCCESS",
  "JSTAT_ICMP4ERR_FAILURE",
  "JSTAT_ICMPEXT_BIG",
] as const;

/** The JSTAT_JOOLD_* block before the sessions counters: 4.1.12 had FLUSH_ASAP in it. */
const JOOLD_FLAGS_4_1_12 = [
  "JSTAT_JOOLD_EMPTY",
  "JSTAT_JOOLD_TIMEOUT",
  "JSTAT_JOOLD_MISSING_ACK",
  "JSTAT_JOOLD_AD_ONGOING",
  "JSTAT_JOOLD_FLUSH_ASAP",
  "JSTAT_JOOLD_PKT_FULL",
  "JSTAT_JOOLD_QUEUING",
] as const;

/** The session, packet, advertise and ACK counters (the same names in 4.1.12 and later). */
const JOOLD_COUNTS = [
  "JSTAT_JOOLD_SSS_QUEUED",
  "JSTAT_JOOLD_SSS_SENT",
  "JSTAT_JOOLD_SSS_RCVD",
  "JSTAT_JOOLD_SSS_ENOSPC",
  "JSTAT_JOOLD_PKT_SENT",
  "JSTAT_JOOLD_PKT_RCVD",
  "JSTAT_JOOLD_ADS",
  "JSTAT_JOOLD_ACKS",
] as const;

/** Ids from 1 on, then JSTAT_UNKNOWN; JSTAT_PADDING follows it (the u64 alignment pad's type). */
const TABLE_4_1_9 = [...BASE, "JSTAT_UNKNOWN"];
const TABLE_4_1_12 = [...BASE, ...JOOLD_FLAGS_4_1_12, ...JOOLD_COUNTS, "JSTAT_UNKNOWN"];
const TABLE_4_1_13 = [
  ...BASE,
  ...JOOLD_FLAGS_4_1_12.filter((n) => n !== "JSTAT_JOOLD_FLUSH_ASAP"),
  ...JOOLD_COUNTS,
  "JSTAT_UNKNOWN",
];

/**
 * The counter names of a Jool version, by id (index 0 is unused: the enum starts at 1).
 *
 * @param v the kernel's version (from the reply's joolnlhdr, or /sys/module/jool/version)
 * @returns the names, or undefined for a version whose numbering is not known (4.2 release
 *   candidates, anything before 4.1.9 or after 4.1.x)
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { statNames } from "./stats.ts";
 * import { parseVersion } from "./version.ts";
 *
 * assert.equal(statNames(parseVersion("4.1.13"))?.[77], "JSTAT_JOOLD_SSS_RCVD");
 * assert.equal(statNames(parseVersion("4.1.12"))?.[77], "JSTAT_JOOLD_SSS_SENT");
 * ```
 */
export function statNames(v: JoolVersion): readonly string[] | undefined {
  if (v.major !== 4 || v.minor !== 1 || isMaptRelease(v) || v.revision < 9) return undefined;
  const table = v.revision <= 11 ? TABLE_4_1_9 : v.revision === 12 ? TABLE_4_1_12 : TABLE_4_1_13;
  return ["", ...table];
}

/**
 * Whether a version has the JSTAT_JOOLD_* counters (4.1.12 on).
 *
 * @param v the kernel's version
 * @returns true when it counts its session synchronization
 */
export function hasJooldStats(v: JoolVersion): boolean {
  return statNames(v)?.includes("JSTAT_JOOLD_ACKS") ?? false;
}

/**
 * The attributes of one STATS_FOREACH page: none for the first, JNLAR_OFFSET_U8 = the last id read
 * for the next ones (Jool's usr/nl/stats.c).
 *
 * @param after the last id already read (0 for the first page)
 * @returns the encoded attributes
 * @throws {RangeError} when `after` is not 0-255
 */
export function statsAttributes(after = 0): Uint8Array<ArrayBuffer> {
  if (!Number.isInteger(after) || after < 0 || after > 255) {
    throw new RangeError(`a stats offset must be 0-255, got ${after}`);
  }
  return after === 0 ? new Uint8Array() : u8Attribute(JNLAR_OFFSET_U8, after);
}

/**
 * Builds STATS_FOREACH (one page: `after` is the last id of the previous page, 0 for the first).
 *
 * @param target family, version, instance, seq, pid
 * @param after the last id already read
 * @returns the netlink message
 * @throws {RangeError} when `after` is not 0-255
 */
export function statsRequest(target: RequestTarget, after = 0): Uint8Array<ArrayBuffer> {
  return joolRequest(target, JNLOP_STATS_FOREACH, statsAttributes(after));
}

/** One decoded page of a STATS_FOREACH reply. */
export interface StatsPage {
  /** The counters by name; ids the version's table does not name are `JSTAT_#<id>`. */
  readonly values: Map<string, bigint>;
  /** The last id in the page (the next request's offset), 0 when it was empty. */
  readonly last: number;
  /** Whether the kernel has more (JOOLNLHDR_FLAGS_M). */
  readonly more: boolean;
  /** The version the reply's header states (its names come from it). */
  readonly version: JoolVersion;
}

/**
 * Decodes one STATS_FOREACH reply (pure: bytes in, values out). The names follow the version in
 * the reply's own joolnlhdr, so a module replaced since start-up is still read right.
 *
 * @param reply the decoded Jool message (not an error report: check that first)
 * @returns the page
 * @throws {RangeError} when an attribute is malformed, not 8 bytes long, or the version's
 *   numbering is unknown
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeStatsReply } from "./stats.ts";
 *
 * const counter = Uint8Array.of(12, 0, 82, 0, 7, 0, 0, 0, 0, 0, 0, 0); // id 82 (4.1.13: ACKS) = 7
 * const header = { version: 0x04010d00, xt: 2, flags: 0, iname: "default" };
 * const page = decodeStatsReply({ cmd: 7, genlVersion: 2, header, attributes: counter });
 * assert.equal(page.values.get("JSTAT_JOOLD_ACKS"), 7n);
 * ```
 */
export function decodeStatsReply(reply: JoolMessage): StatsPage {
  const version = unpackVersion(reply.header.version);
  const names = statNames(version);
  if (names === undefined) {
    throw new RangeError(
      `the kernel's stats are numbered by Jool ${version.major}.${version.minor}.${version.revision}, whose numbering joold does not know`,
    );
  }
  const padding = names.length; // JSTAT_PADDING = JSTAT_UNKNOWN + 1
  const values = new Map<string, bigint>();
  let last = 0;
  for (const a of parseAttributes(reply.attributes)) {
    if (a.type === padding || a.type === 0) continue; // nla_put_u64_64bit's alignment pad
    if (a.payload.length !== 8) {
      throw new RangeError(`stat ${a.type} is ${a.payload.length} bytes long, expected 8`);
    }
    const view = new DataView(a.payload.buffer, a.payload.byteOffset, 8);
    values.set(names[a.type] ?? `JSTAT_#${a.type}`, view.getBigUint64(0, true)); // host order
    last = a.type;
  }
  return { values, last, more: (reply.header.flags & JOOLNLHDR_FLAGS_M) !== 0, version };
}

/**
 * Keeps only the session-synchronization counters.
 *
 * @param values every counter by name
 * @returns the JSTAT_JOOLD_* ones, in the kernel's order
 */
export function jooldOnly(values: ReadonlyMap<string, bigint>): Map<string, bigint> {
  return new Map([...values].filter(([name]) => name.startsWith("JSTAT_JOOLD_")));
}
