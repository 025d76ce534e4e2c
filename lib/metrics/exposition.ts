/**
 * The Prometheus text exposition format (version 0.0.4) of a daemon's state, written by hand from
 * a snapshot taken at scrape time: every counter of lib/counters.ts as `joold_*_total`, the
 * kernel->ACK latency as a histogram, build and runtime info as an info gauge, each unicast peer's
 * traffic as `joold_peer_*_total{peer="..."}`, and the kernel's own JSTAT_JOOLD_* counters when a
 * source gives them. Pure: no sockets, no clock.
 *
 * Collect-on-scrape: the daemon's counters stay plain fields incremented in place; nothing on the
 * hot path knows metrics exist (docs/DESIGN.md, "Metrics").
 *
 * @module
 */

import type { Counters } from "../counters.ts";

/** The content type of the exposition (Prometheus text format 0.0.4). */
export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** What each counter means, as the scrape's HELP lines say it (one entry per counter). */
export const COUNTER_HELP: Readonly<Record<keyof Counters, string>> = {
  kernelBatchesReceived: "Session batches of our instance received from the kernel.",
  kernelOtherInstanceBatches: "Session batches of other Jool instances in the namespace, ignored.",
  kernelAcksSent: "JOOLD_ACKs sent to the kernel.",
  kernelAddsSent: "JOOLD_ADD requests sent to the kernel (stats reply: KERNEL_SENT_PKTS).",
  kernelAddBytes: "Session bytes in JOOLD_ADD requests (stats reply: KERNEL_SENT_BYTES).",
  kernelAdvertisesSent: "JOOLD_ADVERTISE requests sent to the kernel.",
  kernelRefusals: "Requests the kernel answered with an error.",
  kernelOverruns: "Netlink receive-buffer overruns (ENOBUFS): sessions from the kernel were lost.",
  kernelMalformedMessages: "Netlink messages from the kernel side that could not be decoded.",
  kernelOverrunAdvertisesHeld:
    "Receive overruns whose advertise was held back (at most one advertise per 30 s).",
  kernelFamilyRemovals: "Times Jool's Generic Netlink family went away (module unloaded).",
  kernelFamilyRecoveries: "Times the channel rejoined a reloaded Jool module of the same version.",
  kernelSyncReenabled: "Times --enable-sync turned ss-enabled on again on a re-created instance.",
  kernelAddFailures: "JOOLD_ADD requests that could not be sent (a local socket error).",
  netMalformedDatagrams: "Datagrams from the sync group that were not a session list, dropped.",
  netForeignFormatDatagrams:
    "Datagrams whose session format differs from the local kernel's, dropped (not translated).",
  netTranslatedDatagrams:
    "Datagrams of another session format re-encoded for the local kernel (translate sessions).",
  netTranslatedSessions: "Sessions in translated datagrams handed to the kernel in its own format.",
  netUntranslatableNoPool6:
    "Sessions refused by the translation: the local format needs dst6 and the local pool6 is unknown.",
  netUntranslatableUnderivable:
    "Sessions refused by the translation: the local kernel would derive an omitted field differently.",
  netUntranslatableRange:
    "Sessions refused by the translation: a TCP state or timer too large for a compact record.",
  netSendRetries:
    "Datagrams whose send failed for want of buffer space (EAGAIN, ENOBUFS), queued to be sent again.",
  netSendLostDatagrams:
    "Datagrams to the sync group given up (a failed send, a full retry queue, or queued at stop).",
  netSendLostSessions: "Sessions in the datagrams given up.",
  netSessionsBadProtocol: "Sessions from the sync group of an unknown protocol, dropped.",
  netSessionsBadState: "Sessions from the sync group in a state their protocol lacks, dropped.",
  netSessionsBadTimer: "Sessions from the sync group on a timer their protocol lacks, dropped.",
  netSessionsWrongTimer:
    "TCP sessions from the sync group on a timer that never holds their state, dropped.",
  netSessionsClamped:
    "Sessions from the sync group whose expiration was cut to the local lifetime of their timer.",
  netDatagramsAllDropped:
    "Datagrams from the sync group left with no session by the meaning checks, not handed on.",
  netSendErrors: "Sends to the sync group that failed (each attempt, retried or not).",
  netTruncatedDatagrams: "Datagrams longer than the receive buffer, dropped.",
  netDatagramsReceived: "Datagrams received from the sync group (stats reply: NET_RCVD_PKTS).",
  netBytesReceived:
    "Bytes of datagrams received from the sync group (stats reply: NET_RCVD_BYTES).",
  netDatagramsSent: "Datagrams sent to the sync group (stats reply: NET_SENT_PKTS).",
  netBytesSent: "Bytes of datagrams sent to the sync group (stats reply: NET_SENT_BYTES).",
  netLocalSourceDrops:
    "Datagrams from one of this host's own addresses (multicast loop, a local user), dropped.",
  netWrongInterfaceDrops:
    "Datagrams that arrived on another interface than the in interface, dropped.",
  netUnknownPeerDrops: "Datagrams from a sender outside the peers allowed, dropped.",
  netRateLimitedDrops: "Datagrams of a sender over its rate, dropped.",
  netSecurePlainDatagrams:
    "Datagrams received without the secure envelope (a peer without the key file), dropped.",
  netSecureMalformed: "Envelopes of another version, or too short for a header and a tag.",
  netSecureUnknownKey: "Envelopes sealed under a key id that is not in the key file.",
  netSecureStale: "Envelopes whose time is more than the allowed clock skew from ours.",
  netSecureReplays:
    "Envelopes whose sequence number was already accepted or is older than the replay window.",
  netSecureAuthFailures:
    "Envelopes whose tag did not verify: forged, corrupted, truncated or under another key.",
  netSecureAccepted: "Envelopes that verified and were handed to the daemon core.",
  netSecureGaps: "Sequence numbers skipped over by an accepted envelope: lost, or late.",
  netSecureLate:
    "Accepted envelopes that filled a gap before it was NACKed (reordering, not loss).",
  netSecureRecovered: "Accepted envelopes that filled a gap after it was NACKed (loss, recovered).",
  netSecureControl: "Accepted control messages (NACK, hello, bulk-done), not data.",
  netSecureBadControl:
    "Control messages that verified but did not decode (a broken peer), dropped.",
  netSecureNacksSent: "NACKs sent (first requests, retries, resync requests).",
  netSecureNackedDatagrams: "Sequence numbers NACKed (each once, at its first request).",
  netSecureResyncNacksSent: "NACKs sent with the resync flag (a range given up on).",
  netSecureAbandoned:
    "Sequence numbers given up on (NACKed without an answer, or older than the replay window).",
  netSecureNacksReceived: "NACKs addressed to this daemon that it served.",
  netSecureNacksRefused: "NACKs addressed to this daemon refused (over the rate, or never sent).",
  netSecureRetransmitted: "Datagrams resent from the resend ring.",
  netSecureUnrecoverable:
    "Datagrams a peer missed that could be neither resent nor resynced (Jool before 4.1.11).",
  netSecureResyncsRequested:
    "Advertises asked of the kernel for peers (a gap beyond the ring, an announce).",
  netSecureAnnouncesReceived: "Announces of new peers received.",
  netSecureBulksSent: "Bulk-dones sent (a bulk resync for an announcer is out).",
  netSecureBulksReceived: "Bulk-dones addressed to this daemon received.",
  netEnvelopesWithoutKey: "Secure-sync envelopes received by a daemon without a key file, dropped.",
};

/**
 * The metric name of a counter: `joold_` and its name in snake case, then `_total`.
 *
 * @param field the counter (`kernelBatchesReceived`)
 * @returns the name (`joold_kernel_batches_received_total`)
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { counterName } from "./exposition.ts";
 * assert.equal(counterName("netBytesSent"), "joold_net_bytes_sent_total");
 * ```
 */
export function counterName(field: keyof Counters): string {
  return `joold_${field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}_total`;
}

/**
 * The metric name of one of the kernel's counters: `jool_joold_`, its name without the
 * `JSTAT_JOOLD_` prefix, lower case, anything outside `[a-z0-9_]` as `_`, then `_total`.
 *
 * @param name the kernel's name (`JSTAT_JOOLD_SSS_QUEUED`)
 * @returns the metric name (`jool_joold_sss_queued_total`)
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kernelStatName } from "./exposition.ts";
 * assert.equal(kernelStatName("JSTAT_JOOLD_ACKS"), "jool_joold_acks_total");
 * ```
 */
export function kernelStatName(name: string): string {
  const bare = name.replace(/^JSTAT_JOOLD_/i, "").toLowerCase().replace(/[^a-z0-9_]/g, "_");
  return `jool_joold_${bare}_total`;
}

/** A histogram as the exposition needs it. */
export interface HistogramSnapshot {
  /** Inclusive upper bounds of the buckets, in the histogram's unit. */
  readonly bounds: readonly number[];
  /** Samples per bucket (not cumulative); one more than `bounds`: the open bucket last. */
  readonly counts: readonly number[];
  /** Sum of the samples, in the histogram's unit. */
  readonly sum: number;
}

/** Build and runtime facts, the labels of `joold_build_info`. */
export interface BuildInfo {
  /** joold's version. */
  readonly version: string;
  /** The Jool module's version (`4.1.13`). */
  readonly joolVersion: string;
  /** The session format of that version (`compact36`, `nested`). */
  readonly sessionFormat: string;
  /** The Jool instance served. */
  readonly instance: string;
  /** `plain` (sessions go to the sync group) or `print` (they are printed). */
  readonly mode: "plain" | "print";
}

/** One secure-sync peer, as a scrape shows it. */
export interface SecurePeerSnapshot {
  /** Its sender identity, 32 hex digits. */
  readonly sender: string;
  /** Where its datagrams come from ("" when unknown). */
  readonly address: string;
  /** Seconds since a datagram of it last verified. */
  readonly lastSeenSeconds: number;
  /** Its highest sequence number accepted. */
  readonly sequence: number;
  /** Its sequence numbers still missing. */
  readonly missing: number;
  /** Whether it sent this daemon its bulk (a bulk-done). */
  readonly bulkReceived: boolean;
}

/** Secure sync's state (only with a key file). */
export interface SecureSnapshot {
  /** Whether this daemon is sync-ready. */
  readonly syncReady: boolean;
  /** Bytes held by the resend ring. */
  readonly resendBufferBytes: number;
  /** The peers heard within the live interval. */
  readonly peers: readonly SecurePeerSnapshot[];
}

/**
 * One unicast peer's traffic, as a scrape shows it: a copy of the channel's per-destination
 * counters (lib/net/multicast.ts, `DestinationStats`), taken at scrape time.
 */
export interface PeerTrafficSnapshot {
  /** The peer, as the stop summary names it (`[2001:db8::5]:6464`, `192.0.2.5:6464`). */
  readonly destination: string;
  /** Datagrams sent to it. */
  readonly datagramsSent: number;
  /** Their bytes. */
  readonly bytesSent: number;
  /** Sends to it that failed (each attempt). */
  readonly sendErrors: number;
  /** Datagrams accepted from its address (past the source checks). */
  readonly datagramsReceived: number;
  /** Their bytes. */
  readonly bytesReceived: number;
}

/**
 * The per-peer counters: metric name, HELP text, and the field of a
 * {@linkcode PeerTrafficSnapshot}. Each name is its field's, as {@linkcode counterName} writes it
 * with `peer` for `net`: the peers' `joold_peer_datagrams_sent_total` add up to
 * `joold_net_datagrams_sent_total` (and so the bytes and send errors); the received ones count only
 * what passed the source checks, which `joold_net_datagrams_received_total` counts before them.
 */
export const PEER_COUNTERS: readonly (readonly [
  string,
  string,
  Exclude<keyof PeerTrafficSnapshot, "destination">,
])[] = [
  ["joold_peer_datagrams_sent_total", "Datagrams sent to the unicast peer.", "datagramsSent"],
  ["joold_peer_bytes_sent_total", "Bytes of datagrams sent to the unicast peer.", "bytesSent"],
  [
    "joold_peer_send_errors_total",
    "Sends to the unicast peer that failed (each attempt, retried or not).",
    "sendErrors",
  ],
  [
    "joold_peer_datagrams_received_total",
    "Datagrams from the unicast peer's address accepted by the source checks.",
    "datagramsReceived",
  ],
  [
    "joold_peer_bytes_received_total",
    "Bytes of datagrams from the unicast peer's address accepted by the source checks.",
    "bytesReceived",
  ],
];

/** Everything one scrape shows. */
export interface MetricsSnapshot {
  /** The daemon's counters (read once, as they are). */
  readonly counters: Readonly<Counters>;
  /** The kernel->ACK latency, in microseconds. */
  readonly ackLatencyUs: HistogramSnapshot;
  /** Build and runtime info. */
  readonly info: BuildInfo;
  /** The kernel's JSTAT_JOOLD_* counters, by name; absent when unknown (not zero). */
  readonly kernelStats?: ReadonlyMap<string, bigint | number>;
  /** Secure sync's state; absent without a key file. */
  readonly secure?: SecureSnapshot;
  /** Each unicast peer's traffic, in the configuration's order; absent with a multicast group. */
  readonly peers?: readonly PeerTrafficSnapshot[];
}

/** A label value, escaped as the format says (backslash, double quote, newline). */
function label(value: string): string {
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

/** A HELP text, escaped as the format says (backslash, newline). */
function help(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** A sample value: integers exactly, others as Go's strconv would read them. */
function value(v: number | bigint): string {
  if (typeof v === "bigint") return v.toString();
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/**
 * Writes the exposition of a snapshot.
 *
 * @param s the snapshot
 * @returns the text, every line newline-terminated
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createCounters } from "../counters.ts";
 * import { formatMetrics } from "./exposition.ts";
 *
 * const counters = createCounters();
 * counters.netDatagramsSent = 3;
 * const text = formatMetrics({
 *   counters,
 *   ackLatencyUs: { bounds: [10, 100], counts: [1, 1, 0], sum: 60 },
 *   info: {
 *     version: "0.1.0",
 *     joolVersion: "4.1.13",
 *     sessionFormat: "compact36",
 *     instance: "default",
 *     mode: "plain",
 *   },
 * });
 * assert.match(text, /^joold_net_datagrams_sent_total 3$/m);
 * assert.match(text, /^joold_kernel_ack_latency_seconds_bucket\{le="0.0001"\} 2$/m);
 * assert.match(text, /^joold_kernel_ack_latency_seconds_sum 0.00006$/m);
 * ```
 */
export function formatMetrics(s: MetricsSnapshot): string {
  // The HELP and TYPE lines and the sample names are the same every scrape: written once
  // (COUNTER_LINES, familyHeader's cache), so that a scrape only formats numbers.
  let out = "";
  for (const [field, head] of COUNTER_LINES) out += `${head}${value(s.counters[field])}\n`;

  const h = s.ackLatencyUs;
  out += LATENCY_HEADER;
  let cumulative = 0;
  for (let i = 0; i < h.bounds.length; i++) {
    cumulative += h.counts[i] ?? 0;
    out += `${bucketPrefix(h.bounds[i])}${cumulative}\n`;
  }
  let count = 0;
  for (const n of h.counts) count += n;
  out += `${LATENCY}_bucket{le="+Inf"} ${count}\n${LATENCY}_sum ${value(h.sum / 1e6)}\n` +
    `${LATENCY}_count ${count}\n`;

  const i = s.info;
  out += familyHeader("joold_build_info", "gauge", BUILD_INFO_HELP) +
    `joold_build_info{version=${label(i.version)},jool_version=${label(i.joolVersion)},` +
    `session_format=${label(i.sessionFormat)},instance=${label(i.instance)},` +
    `mode=${label(i.mode)}} 1\n`;

  if (s.peers !== undefined) {
    for (const [name, text, field] of PEER_COUNTERS) {
      out += familyHeader(name, "counter", text);
      for (const p of s.peers) out += `${name}{peer=${label(p.destination)}} ${value(p[field])}\n`;
    }
  }

  if (s.secure !== undefined) {
    const sec = s.secure;
    out += familyHeader("joold_secure_sync_ready", "gauge", SYNC_READY_HELP) +
      `joold_secure_sync_ready ${sec.syncReady ? 1 : 0}\n` +
      familyHeader("joold_secure_resend_buffer_bytes", "gauge", RESEND_BYTES_HELP) +
      `joold_secure_resend_buffer_bytes ${sec.resendBufferBytes}\n`;
    for (const [name, text, get] of SECURE_PEER_GAUGES) {
      out += familyHeader(name, "gauge", text);
      for (const p of sec.peers) {
        out += `${name}{sender=${label(p.sender)},address=${label(p.address)}} ${value(get(p))}\n`;
      }
    }
  }

  if (s.kernelStats !== undefined) {
    const seen = new Set<string>();
    for (const [stat, v] of [...s.kernelStats].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)) {
      const name = kernelStatName(stat);
      if (seen.has(name)) continue; // two spellings of one counter: the first one
      seen.add(name);
      out += familyHeader(
        name,
        "counter",
        `The Jool kernel's ${stat} counter (jool stats display).`,
      );
      out += `${name} ${value(v)}\n`;
    }
  }
  return out;
}

/** Each family's HELP and TYPE lines once written, by name, type and text. */
const HEADERS = new Map<string, string>();

/** The histogram of the kernel->ACK latency: its name, and its HELP and TYPE lines. */
const LATENCY = "joold_kernel_ack_latency_seconds";
const LATENCY_HEADER = familyHeader(
  LATENCY,
  "histogram",
  "Time from reading a session batch off the kernel socket to sending its JOOLD_ACK.",
);
const BUILD_INFO_HELP = "joold's build and runtime facts, as labels; always 1.";
const SYNC_READY_HELP = "1 once this daemon is sync-ready, else 0.";
const RESEND_BYTES_HELP = "Bytes held by the resend ring.";

/** The per-peer gauges of secure sync: name, HELP text, and the value of a peer. */
const SECURE_PEER_GAUGES: readonly (readonly [
  string,
  string,
  (p: SecurePeerSnapshot) => number,
])[] = [
  [
    "joold_secure_peer_last_seen_seconds",
    "Seconds since a datagram of the peer verified.",
    (p) => p.lastSeenSeconds,
  ],
  ["joold_secure_peer_sequence", "The peer's highest sequence number accepted.", (p) => p.sequence],
  ["joold_secure_peer_missing", "The peer's sequence numbers still missing.", (p) => p.missing],
  [
    "joold_secure_peer_bulk_received",
    "1 once the peer sent this daemon its bulk.",
    (p) => p.bulkReceived ? 1 : 0,
  ],
];

/** Each counter of lib/counters.ts with its HELP and TYPE lines and its sample's name and space. */
const COUNTER_LINES: readonly (readonly [keyof Counters, string])[] = (
  Object.keys(COUNTER_HELP) as (keyof Counters)[]
).map((field) => {
  const name = counterName(field);
  return [field, `${familyHeader(name, "counter", COUNTER_HELP[field])}${name} `] as const;
});

/** The HELP and TYPE lines of a metric family, by name, type and text (written once each). */
function familyHeader(name: string, type: string, text: string): string {
  const key = `${name} ${type} ${text}`;
  let header = HEADERS.get(key);
  if (header === undefined) {
    header = `# HELP ${name} ${help(text)}\n# TYPE ${name} ${type}\n`;
    // The kernel's names come from the kernel: a bound keeps a strange one from growing this.
    if (HEADERS.size < 1024) HEADERS.set(key, header);
  }
  return header;
}

/** The start of a latency bucket's sample (`..._bucket{le="0.0001"} `), by bound in µs. */
const BUCKETS = new Map<number, string>();
function bucketPrefix(boundUs: number): string {
  let prefix = BUCKETS.get(boundUs);
  if (prefix === undefined) {
    prefix = `${LATENCY}_bucket{le="${value(boundUs / 1e6)}"} `;
    if (BUCKETS.size < 256) BUCKETS.set(boundUs, prefix);
  }
  return prefix;
}
