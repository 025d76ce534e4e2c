/**
 * The daemon's counters and the stats reply (docs/PROTOCOL.md, "Stats reply"). Counters are
 * bigints: exact past 2^53, as a long-lived daemon's byte counters need.
 *
 * @module
 */

/** The six counters the stats socket serves, with their documented meaning. */
export interface StatsCounters {
  /** JOOLD_ADD requests sent to the local kernel. */
  kernelSentPkts: bigint;
  /** Session bytes in those requests. */
  kernelSentBytes: bigint;
  /** Datagrams received from the sync group. */
  netRcvdPkts: bigint;
  /** Bytes of those datagrams. */
  netRcvdBytes: bigint;
  /** Datagrams sent to the sync group. */
  netSentPkts: bigint;
  /** Bytes of those datagrams. */
  netSentBytes: bigint;
}

/** Counters beyond the six, for logs and metrics. */
export interface ExtraCounters {
  /** Session batches received from the kernel for our instance. */
  kernelBatches: bigint;
  /** Datagrams from the group that were not a well-formed session list, dropped. */
  malformedDatagrams: bigint;
  /** Datagrams whose session format differs from the local kernel's, dropped. */
  foreignFormatDatagrams: bigint;
  /** Failed sends to the group. */
  netSendErrors: bigint;
  /** Errors the kernel reported. */
  kernelErrors: bigint;
}

/** All counters. */
export type Counters = StatsCounters & ExtraCounters;

/**
 * Creates zeroed counters.
 *
 * @returns the counters
 * @example
 * ```ts
 * const c = createCounters(); c.netSentPkts++;
 * ```
 */
export function createCounters(): Counters {
  return {
    kernelSentPkts: 0n,
    kernelSentBytes: 0n,
    netRcvdPkts: 0n,
    netRcvdBytes: 0n,
    netSentPkts: 0n,
    netSentBytes: 0n,
    kernelBatches: 0n,
    malformedDatagrams: 0n,
    foreignFormatDatagrams: 0n,
    netSendErrors: 0n,
    kernelErrors: 0n,
  };
}

/**
 * The stats reply, byte for byte what Jool's C daemon sends.
 *
 * @param c the counters
 * @returns the six `NAME,value` lines
 * @example
 * ```ts
 * formatStats(createCounters()).startsWith("KERNEL_SENT_PKTS,0\n"); // true
 * ```
 */
export function formatStats(c: StatsCounters): string {
  return `KERNEL_SENT_PKTS,${c.kernelSentPkts}\nKERNEL_SENT_BYTES,${c.kernelSentBytes}\n` +
    `NET_RCVD_PKTS,${c.netRcvdPkts}\nNET_RCVD_BYTES,${c.netRcvdBytes}\n` +
    `NET_SENT_PKTS,${c.netSentPkts}\nNET_SENT_BYTES,${c.netSentBytes}\n`;
}
