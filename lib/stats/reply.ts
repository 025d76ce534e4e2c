/**
 * The stats reply (docs/PROTOCOL.md section 6): six `NAME,value` lines, byte for byte what
 * Jool's C daemon sends, read from the daemon's one {@linkcode Counters} object.
 *
 * @module
 */

import type { Counters } from "../counters.ts";

/**
 * The stats reply. KERNEL_SENT_* are the JOOLD_ADD requests handed to the local kernel and their
 * session bytes (the documented meaning), NET_RCVD_* the datagrams received from the sync group,
 * NET_SENT_* the datagrams sent to it.
 *
 * @param c the counters
 * @returns the six lines, each ending in a newline
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createCounters } from "../counters.ts";
 * import { formatStats } from "./reply.ts";
 *
 * const c = createCounters();
 * c.kernelAddsSent = 2;
 * c.kernelAddBytes = 280;
 * assert.equal(
 *   formatStats(c),
 *   "KERNEL_SENT_PKTS,2\nKERNEL_SENT_BYTES,280\nNET_RCVD_PKTS,0\nNET_RCVD_BYTES,0\n" +
 *     "NET_SENT_PKTS,0\nNET_SENT_BYTES,0\n",
 * );
 * ```
 */
export function formatStats(c: Counters): string {
  return `KERNEL_SENT_PKTS,${c.kernelAddsSent}\nKERNEL_SENT_BYTES,${c.kernelAddBytes}\n` +
    `NET_RCVD_PKTS,${c.netDatagramsReceived}\nNET_RCVD_BYTES,${c.netBytesReceived}\n` +
    `NET_SENT_PKTS,${c.netDatagramsSent}\nNET_SENT_BYTES,${c.netBytesSent}\n`;
}
