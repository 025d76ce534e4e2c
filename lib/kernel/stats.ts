/**
 * The kernel's own session-synchronization counters (JSTAT_JOOLD_*, Jool 4.1.12 on), read page by
 * page over whatever sends a STATS_FOREACH and awaits its reply: the kernel channel's socket in the
 * daemon, a plain connection in a one-off tool. The bytes are lib/jool/stats.ts's.
 *
 * @module
 */

import { errorReport, type JoolMessage } from "../jool/message.ts";
import { decodeStatsReply, hasJooldStats, jooldOnly } from "../jool/stats.ts";
import { type JoolVersion, unpackVersion } from "../jool/version.ts";

/** The most pages one read follows (the kernel's ids fit a u8: a loop beyond that is a bug). */
const MAX_PAGES = 256;

/**
 * Sends one STATS_FOREACH page request and resolves with the kernel's reply.
 *
 * @param after the last id already read (0 for the first page)
 */
export type StatsPageRequester = (after: number) => Promise<JoolMessage>;

/**
 * Reads every counter the kernel has.
 *
 * @param ask sends one page request
 * @returns the counters by name, in the kernel's order
 * @throws {KernelError} when the kernel refuses (from `ask`)
 * @throws {RangeError} when a reply is malformed, an error report, or its paging does not advance
 */
export async function readKernelStatsWith(ask: StatsPageRequester): Promise<Map<string, bigint>> {
  const values = new Map<string, bigint>();
  let after = 0;
  for (let page = 0; page < MAX_PAGES; page++) {
    const reply = await ask(after);
    const report = errorReport(reply);
    if (report !== null) {
      throw new RangeError(`the kernel refused STATS_FOREACH: ${report.message || report.code}`);
    }
    const decoded = decodeStatsReply(reply);
    for (const [name, value] of decoded.values) values.set(name, value);
    if (!decoded.more) return values;
    if (decoded.last <= after) {
      throw new RangeError(`the kernel's stats paging does not advance (offset ${after})`);
    }
    after = decoded.last;
  }
  throw new RangeError(`the kernel's stats reply has more than ${MAX_PAGES} pages`);
}

/**
 * Reads the kernel's JSTAT_JOOLD_* counters: absent (undefined), not zero, where Jool has none.
 *
 * @param ask sends one page request
 * @param version the module's version when known (before 4.1.12 nothing is asked); undefined:
 *   ask, and let the reply's header tell
 * @returns the counters by name, or undefined when this Jool has none
 * @throws {KernelError} when the kernel refuses (the instance is missing)
 * @throws {RangeError} when a reply is malformed
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readJooldStatsWith } from "./stats.ts";
 * import { parseVersion } from "../jool/version.ts";
 *
 * const never = () => Promise.reject(new Error("not asked"));
 * assert.equal(await readJooldStatsWith(never, parseVersion("4.1.9")), undefined);
 * ```
 */
export async function readJooldStatsWith(
  ask: StatsPageRequester,
  version?: JoolVersion,
): Promise<Map<string, bigint> | undefined> {
  if (version !== undefined && !hasJooldStats(version)) return undefined;
  let replyVersion: JoolVersion | undefined;
  const all = await readKernelStatsWith(async (after) => {
    const reply = await ask(after);
    replyVersion ??= unpackVersion(reply.header.version);
    return reply;
  });
  if (replyVersion !== undefined && !hasJooldStats(replyVersion)) return undefined;
  return jooldOnly(all);
}
