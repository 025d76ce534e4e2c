/**
 * Reads a libpcap capture of netlink traffic (tcpdump on an nlmon device) and measures a joold
 * daemon's kernel->ACK latency from it: the time from the kernel queueing a session batch
 * (kernel -> daemon) to the daemon's JOOLD_ACK reaching the kernel. The lab benchmark
 * runs it for the C daemon and for ours alike.
 *
 * @module
 */

/** LINKTYPE_NETLINK: what tcpdump records on an nlmon device. */
export const LINKTYPE_NETLINK = 253;
/** ARPHRD_NETLINK, in the cooked (SLL) header libpcap puts in front of each netlink message. */
const ARPHRD_NETLINK = 824;

/** One captured packet. */
export interface CapturedPacket {
  /** Capture time in microseconds since the epoch (fractional when the file has nanoseconds). */
  readonly us: number;
  /** The captured bytes (possibly cut at the snap length). */
  readonly data: Uint8Array;
}

/** A parsed capture file. */
export interface Capture {
  readonly linktype: number;
  readonly packets: CapturedPacket[];
}

/**
 * Parses a libpcap file (either byte order, micro- or nanosecond timestamps).
 *
 * @param bytes the whole file
 * @returns its link type and packets
 * @throws Error when the file is not a libpcap capture or is cut inside a record header
 */
export function parsePcap(bytes: Uint8Array): Capture {
  if (bytes.length < 24) throw new Error(`pcap: ${bytes.length} bytes, shorter than a file header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magicLE = view.getUint32(0, true);
  let little: boolean;
  let nano: boolean;
  if (magicLE === 0xa1b2c3d4 || magicLE === 0xa1b23c4d) {
    little = true;
    nano = magicLE === 0xa1b23c4d;
  } else {
    const magicBE = view.getUint32(0, false);
    if (magicBE !== 0xa1b2c3d4 && magicBE !== 0xa1b23c4d) {
      throw new Error(`pcap: bad magic 0x${magicLE.toString(16)}: not a libpcap capture`);
    }
    little = false;
    nano = magicBE === 0xa1b23c4d;
  }
  const linktype = view.getUint32(20, little) & 0x0fffffff;
  const packets: CapturedPacket[] = [];
  let offset = 24;
  while (offset < bytes.length) {
    if (offset + 16 > bytes.length) {
      throw new Error(`pcap: record header cut at byte ${offset}`);
    }
    const seconds = view.getUint32(offset, little);
    const fraction = view.getUint32(offset + 4, little);
    const length = view.getUint32(offset + 8, little);
    const start = offset + 16;
    // A capture killed mid-write may end inside the last record: keep what is whole.
    if (start + length > bytes.length) break;
    packets.push({
      us: seconds * 1e6 + (nano ? fraction / 1000 : fraction),
      data: bytes.subarray(start, start + length),
    });
    offset = start + length;
  }
  return { linktype, packets };
}

/** The part of a captured netlink message the latency measurement needs. */
export interface NetlinkHead {
  /** The SLL packet type, or -1 without a cooked header (nlmon marks both directions 4). */
  readonly pkttype: number;
  /** nlmsg_type: the Generic Netlink family id. */
  readonly type: number;
  /** nlmsg_seq: 0 on what the kernel multicasts, the request's number on everything else. */
  readonly seq: number;
  /** The Generic Netlink command, or -1 when the capture cut it off. */
  readonly cmd: number;
}

/**
 * Decodes the headers of one captured netlink message.
 *
 * @param linktype the capture's link type
 * @param data the captured bytes
 * @returns the headers, or undefined when the packet is not netlink or too short
 */
export function netlinkHead(linktype: number, data: Uint8Array): NetlinkHead | undefined {
  if (linktype !== LINKTYPE_NETLINK) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let pkttype = -1;
  let at = 0;
  if (data.length >= 16 && view.getUint16(2, false) === ARPHRD_NETLINK) {
    pkttype = view.getUint16(0, false);
    at = 16;
  }
  if (data.length < at + 16) return undefined;
  const type = view.getUint16(at + 4, true); // nlmsghdr is in host order (little-endian here)
  const seq = view.getUint32(at + 8, true);
  const cmd = data.length > at + 16 ? data[at + 16] : -1;
  return { pkttype, type, seq, cmd };
}

/** Which messages are the batches and which the ACKs. */
export interface AckLatencyOptions {
  /** The Jool Generic Netlink family id. */
  readonly family: number;
  /** The JOOLD_ACK command number of the module's version. */
  readonly ack: number;
}

/** The kernel->ACK latency of one capture. */
export interface AckLatency {
  /** Session batches the kernel sent to user space. */
  readonly batches: number;
  /** Batches paired with a later ACK. */
  readonly acked: number;
  /** Seconds from the first batch to the last. */
  readonly spanS: number;
  /** Every paired latency, µs, sorted ascending. */
  readonly latenciesUs: number[];
}

/**
 * Pairs every kernel batch with the next ACK, first in first out (the kernel sends the next batch
 * only after the ACK or its flush deadline, so batches never overtake ACKs).
 *
 * What is what (docs/PROTOCOL.md, "Session batch", and the recordings in tests/fixtures): the
 * kernel multicasts a batch as a Jool-family message with sequence number 0 and command 0; the
 * daemon's JOOLD_ACK carries the ACK command; its own requests (JOOLD_ADD of peer sessions, table
 * dumps) carry a non-zero sequence number and are ignored. The packet type cannot tell directions
 * apart: nlmon marks both PACKET_OUTGOING.
 *
 * @param bytes a libpcap capture of the translator's netlink traffic
 * @param options the family id and the ACK's command number
 * @returns the latencies
 */
export function analyzeCapture(bytes: Uint8Array, options: AckLatencyOptions): AckLatency {
  const { linktype, packets } = parsePcap(bytes);
  const pending: number[] = [];
  let next = 0;
  const latencies: number[] = [];
  let batches = 0;
  let first = NaN;
  let last = NaN;
  for (const { us, data } of packets) {
    const head = netlinkHead(linktype, data);
    if (head === undefined || head.type !== options.family) continue;
    if (head.cmd === options.ack) {
      if (next < pending.length) latencies.push(us - pending[next++]);
    } else if (head.seq === 0 && head.cmd === 0) {
      batches++;
      pending.push(us);
      if (Number.isNaN(first)) first = us;
      last = us;
    }
  }
  latencies.sort((a, b) => a - b);
  return {
    batches,
    acked: latencies.length,
    spanS: batches > 1 ? (last - first) / 1e6 : 0,
    latenciesUs: latencies,
  };
}

/**
 * The nearest-rank percentile of sorted samples.
 *
 * @param sorted ascending samples
 * @param p the fraction (0.5 for the median)
 * @returns the sample, or NaN without samples
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

/**
 * One line for the benchmark log.
 *
 * @param r the analysis
 * @returns `batches=N acked=N span_s=S rate=R/s p50=..us p90=..us p99=..us max=..us mean=..us`
 */
export function formatAckLatency(r: AckLatency): string {
  const l = r.latenciesUs;
  const us = (v: number) => Number.isNaN(v) ? "-" : `${Math.round(v)}us`;
  const mean = l.length ? l.reduce((a, b) => a + b, 0) / l.length : NaN;
  const rate = r.spanS > 0 ? `${Math.round(r.batches / r.spanS)}/s` : "-";
  return `batches=${r.batches} acked=${r.acked} span_s=${r.spanS.toFixed(2)} rate=${rate} ` +
    `p50=${us(percentile(l, 0.5))} p90=${us(percentile(l, 0.9))} p99=${
      us(percentile(l, 0.99))
    } max=${us(l.length ? l[l.length - 1] : NaN)} mean=${us(mean)}`;
}

/** Which messages mark the phases of a bulk resync. */
export interface BulkOptions {
  /** The Jool Generic Netlink family id. */
  readonly family: number;
  /** The JOOLD_ADVERTISE command number of the module's version. */
  readonly advertise: number;
  /** The JOOLD_ADD command number of the module's version. */
  readonly add: number;
}

/** The phases of one bulk resync, in ms after the advertise request (NaN: never seen). */
export interface BulkTimeline {
  /** Session batches J's kernel sent to user space after the advertise request. */
  readonly batches: number;
  /** JOOLD_ADD requests K's daemon sent to its kernel after the advertise request. */
  readonly adds: number;
  readonly firstBatchMs: number;
  readonly lastBatchMs: number;
  readonly firstAddMs: number;
  readonly lastAddMs: number;
  /** Of those, the ones after J's kernel's last batch: the standby's work still left then. */
  readonly addsAfterJLast: number;
  /** Sync datagrams K's interface received after the request (0 without that capture). */
  readonly datagrams: number;
  readonly firstDatagramMs: number;
  readonly lastDatagramMs: number;
}

/**
 * The timeline of a bulk resync from two captures on the same clock (two namespaces of one guest):
 * J's, where `jool joold advertise` asks J's kernel for its table and the kernel sends it in
 * batches, and K's, where the receiving daemon hands the sessions to K's kernel with JOOLD_ADD.
 * The kernel time-stamps each message when it is queued (the netlink tap), so the same yardstick
 * holds for every daemon.
 *
 * @param j J's capture (libpcap, nlmon)
 * @param k K's capture, or undefined when nothing runs on K (the receive+ACK-only ceiling)
 * @param options the family id and command numbers
 * @param sync K's capture of its sync interface (tcpdump filtered to the sync port), if taken
 * @returns the phases; throws when J's capture holds no advertise request
 */
export function bulkTimeline(
  j: Uint8Array,
  k: Uint8Array | undefined,
  options: BulkOptions,
  sync?: Uint8Array,
): BulkTimeline {
  const jCapture = parsePcap(j);
  let t0 = NaN;
  let batches = 0;
  let firstBatch = NaN;
  let lastBatch = NaN;
  for (const { us, data } of jCapture.packets) {
    const head = netlinkHead(jCapture.linktype, data);
    if (head === undefined || head.type !== options.family) continue;
    if (Number.isNaN(t0)) {
      if (head.cmd === options.advertise && head.seq !== 0) t0 = us;
      continue;
    }
    if (head.seq === 0 && head.cmd === 0) {
      batches++;
      if (Number.isNaN(firstBatch)) firstBatch = us;
      lastBatch = us;
    }
  }
  if (Number.isNaN(t0)) throw new Error("bulk: J's capture holds no JOOLD_ADVERTISE request");
  let adds = 0;
  let addsAfterJLast = 0;
  let firstAdd = NaN;
  let lastAdd = NaN;
  if (k !== undefined) {
    const kCapture = parsePcap(k);
    for (const { us, data } of kCapture.packets) {
      const head = netlinkHead(kCapture.linktype, data);
      if (head === undefined || head.type !== options.family || us < t0) continue;
      if (head.cmd === options.add && head.seq !== 0) {
        adds++;
        if (us > lastBatch) addsAfterJLast++;
        if (Number.isNaN(firstAdd)) firstAdd = us;
        lastAdd = us;
      }
    }
  }
  // K's sync interface, filtered by tcpdump to the sync port: every record is a datagram.
  const arrivals = sync === undefined ? [] : parsePcap(sync).packets.filter((p) => p.us >= t0);
  const ms = (us: number) => (us - t0) / 1000;
  return {
    datagrams: arrivals.length,
    firstDatagramMs: ms(arrivals.at(0)?.us ?? NaN),
    lastDatagramMs: ms(arrivals.at(-1)?.us ?? NaN),
    batches,
    adds,
    firstBatchMs: ms(firstBatch),
    lastBatchMs: ms(lastBatch),
    firstAddMs: ms(firstAdd),
    lastAddMs: ms(lastAdd),
    addsAfterJLast,
  };
}
