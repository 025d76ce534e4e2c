/**
 * The daemon's one counters model. One plain object is created per daemon and handed to every
 * part; each field has one owner (the part that increments it, named below) and every reader (the
 * stats reply, the stop summary, metrics) reads the same object. Counters are JS numbers: exact up
 * to 2^53 (9 PB of session bytes), which no sync channel reaches, and cheap on the hot path.
 *
 * @module
 */

/** Every counter of a running daemon. */
export interface Counters {
  // Owner: the kernel channel (lib/kernel/channel.ts).
  /** Session batches of our instance received from the kernel. */
  kernelBatchesReceived: number;
  /** Session batches of other Jool instances in the namespace, ignored. */
  kernelOtherInstanceBatches: number;
  /** JOOLD_ACKs sent to the kernel. */
  kernelAcksSent: number;
  /** JOOLD_ADD requests sent to the kernel (stats reply: KERNEL_SENT_PKTS). */
  kernelAddsSent: number;
  /** Session bytes in those requests (stats reply: KERNEL_SENT_BYTES). */
  kernelAddBytes: number;
  /** JOOLD_ADVERTISE requests sent to the kernel. */
  kernelAdvertisesSent: number;
  /** Requests the kernel answered with an error (it refused them). */
  kernelRefusals: number;
  /** Netlink receive-buffer overruns (ENOBUFS): sessions from the kernel were lost. */
  kernelOverruns: number;
  /** Netlink messages from the kernel side that could not be decoded. */
  kernelMalformedMessages: number;
  /** Advertises after a receive overrun held back (at most one per 30 s; the last one follows). */
  kernelOverrunAdvertisesHeld: number;
  /** Times Jool's family disappeared (the module was unloaded: CTRL_CMD_DELFAMILY). */
  kernelFamilyRemovals: number;
  /** Times Jool's family came back and the channel rejoined it (CTRL_CMD_NEWFAMILY). */
  kernelFamilyRecoveries: number;
  /** Times `--enable-sync` turned ss-enabled on again on a re-created instance. */
  kernelSyncReenabled: number;

  // Owner: the daemon core (lib/daemon.ts).
  /** JOOLD_ADD requests that could not be sent (a local socket error, not a kernel refusal). */
  kernelAddFailures: number;
  /** Datagrams from the sync group that were not a well-formed session list, dropped. */
  netMalformedDatagrams: number;
  /** Datagrams whose session format differs from the local kernel's, dropped (not translated). */
  netForeignFormatDatagrams: number;
  /** Datagrams of another session format re-encoded for the local kernel (`translate sessions`). */
  netTranslatedDatagrams: number;
  /** Sessions in those datagrams handed to the kernel in its own format. */
  netTranslatedSessions: number;
  /**
   * Sessions refused by the translation: the local kernel's format needs dst6, the peer's 36-byte
   * record lacks it, and the local pool6 is unknown.
   */
  netUntranslatableNoPool6: number;
  /** Sessions refused: the local kernel would derive an omitted field other than the peer had. */
  netUntranslatableUnderivable: number;
  /** Sessions refused: a nested TCP state or timer too large for a compact record's bits. */
  netUntranslatableRange: number;
  /**
   * Datagrams to the sync group whose send failed for want of buffer space (EAGAIN, ENOBUFS) and
   * that were queued to be sent again once the socket is writable (unicast: one per peer owed).
   */
  netSendRetries: number;
  /**
   * Datagrams to the sync group given up: a send failed for good (not EAGAIN/ENOBUFS), the retry
   * queue was full, or they were still queued at stop. Their sessions reached no peer (unicast:
   * one per peer that missed it; the sessions below likewise).
   */
  netSendLostDatagrams: number;
  /** The sessions in those datagrams. */
  netSendLostSessions: number;
  /** Sessions from the sync group of an unknown protocol, dropped (lib/jool/meaning.ts). */
  netSessionsBadProtocol: number;
  /** Sessions from the sync group in a state their protocol lacks (TCP 7, UDP/ICMP not 0), dropped. */
  netSessionsBadState: number;
  /** Sessions from the sync group on a timer their protocol lacks (3; UDP/ICMP not EST), dropped. */
  netSessionsBadTimer: number;
  /** TCP sessions from the sync group on a timer that never holds their state, dropped. */
  netSessionsWrongTimer: number;
  /** Sessions from the sync group whose expiration was cut to the local lifetime of their timer. */
  netSessionsClamped: number;
  /** Datagrams from the sync group left with no session by the meaning checks, not handed on. */
  netDatagramsAllDropped: number;

  // Owner: the network channel (lib/net/multicast.ts).
  /** Sends to the sync group that failed (with unicast peers: one per peer a send failed for). */
  netSendErrors: number;
  /** Datagrams longer than the receive buffer (cut by the kernel), dropped. */
  netTruncatedDatagrams: number;
  /** Datagrams received from the sync group (stats reply: NET_RCVD_PKTS). */
  netDatagramsReceived: number;
  /** Bytes of those datagrams (stats reply: NET_RCVD_BYTES). */
  netBytesReceived: number;
  /**
   * Datagrams sent to the sync group (stats reply: NET_SENT_PKTS); with unicast peers one per peer
   * each datagram was sent to (two peers: a kernel batch counts 2).
   */
  netDatagramsSent: number;
  /** Bytes of those datagrams (stats reply: NET_SENT_BYTES), per peer likewise. */
  netBytesSent: number;
  /** Datagrams from one of this host's own addresses (multicast loop, a local user), dropped. */
  netLocalSourceDrops: number;
  /** Datagrams that arrived on another interface than the in interface, dropped. */
  netWrongInterfaceDrops: number;
  /** Datagrams from a sender outside the "peers allowed" list, dropped. */
  netUnknownPeerDrops: number;
  /** Datagrams of a sender over its rate (lib/net/multicast.ts PEER_RATE), dropped. */
  netRateLimitedDrops: number;

  // Owner: the secure channel (lib/secure/channel.ts), only with a key file. Each datagram it
  // drops is counted once, under the first check it failed, BEFORE any session is decoded.
  /** Datagrams received without the envelope (a peer without the key file, or a C daemon). */
  netSecurePlainDatagrams: number;
  /** Envelopes of another version, or too short for a header and a tag. */
  netSecureMalformed: number;
  /** Envelopes sealed under a key id that is not in the key file. */
  netSecureUnknownKey: number;
  /** Envelopes whose time is more than the allowed clock skew from ours (stale or future). */
  netSecureStale: number;
  /**
   * Envelopes whose sequence number was already accepted, or is older than the replay window
   * (checked before the tag, as IPsec does: a tampered copy of a received datagram counts here).
   */
  netSecureReplays: number;
  /** Envelopes whose tag did not verify: forged, corrupted, truncated or under another key. */
  netSecureAuthFailures: number;
  /** Envelopes that verified and were handed to the daemon core. */
  netSecureAccepted: number;
  /**
   * Sequence numbers skipped over by an accepted envelope (its sender's earlier datagrams that had
   * not arrived yet): lost, or late. Lost so far = this minus {@linkcode netSecureLate}.
   */
  netSecureGaps: number;
  /**
   * Accepted envelopes that filled a gap before it was NACKed (they arrived after a later one:
   * reordering, not loss).
   */
  netSecureLate: number;
  /** Accepted envelopes that filled a gap after it was NACKed: loss, recovered by a resend. */
  netSecureRecovered: number;
  /** Accepted control messages (NACK, hello, bulk-done: lib/secure/control.ts), not data. */
  netSecureControl: number;
  /** Control messages that verified but did not decode (a broken peer), dropped. */
  netSecureBadControl: number;
  /** NACKs this daemon sent (first requests, retries, resync requests). */
  netSecureNacksSent: number;
  /** Sequence numbers this daemon NACKed (each once, at its first request). */
  netSecureNackedDatagrams: number;
  /** NACKs this daemon sent with the resync flag (it gave up on a range). */
  netSecureResyncNacksSent: number;
  /** Sequence numbers given up on (NACKed without an answer, or older than the replay window). */
  netSecureAbandoned: number;
  /** NACKs addressed to this daemon that it served. */
  netSecureNacksReceived: number;
  /** NACKs addressed to this daemon it refused: over the NACK rate, or for numbers never sent. */
  netSecureNacksRefused: number;
  /** Datagrams this daemon resent from its resend ring. */
  netSecureRetransmitted: number;
  /**
   * Datagrams a peer missed that could not be resent (older than the ring) nor resynced (Jool
   * before 4.1.11 cannot advertise): their sessions are lost to that peer until they change.
   */
  netSecureUnrecoverable: number;
  /** Advertises this daemon asked of its kernel for its peers (a gap beyond the ring, an announce). */
  netSecureResyncsRequested: number;
  /** Announces (hellos asking for the table) of new peers received. */
  netSecureAnnouncesReceived: number;
  /** Bulk-dones this daemon sent (a bulk resync for an announcer is out). */
  netSecureBulksSent: number;
  /** Bulk-dones addressed to this daemon received (one per peer). */
  netSecureBulksReceived: number;

  // Owner: the daemon core (lib/daemon.ts), only WITHOUT a key file.
  /** Secure-sync envelopes received by a daemon without a key file, dropped. */
  netEnvelopesWithoutKey: number;
}

/**
 * Creates zeroed counters.
 *
 * @returns the counters, every field 0
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createCounters } from "./counters.ts";
 *
 * const counters = createCounters();
 * counters.netDatagramsSent++;
 * assert.equal(counters.netDatagramsSent, 1);
 * assert.equal(counters.kernelAddsSent, 0);
 * ```
 */
export function createCounters(): Counters {
  return {
    kernelBatchesReceived: 0,
    kernelOtherInstanceBatches: 0,
    kernelAcksSent: 0,
    kernelAddsSent: 0,
    kernelAddBytes: 0,
    kernelAdvertisesSent: 0,
    kernelRefusals: 0,
    kernelOverruns: 0,
    kernelMalformedMessages: 0,
    kernelOverrunAdvertisesHeld: 0,
    kernelFamilyRemovals: 0,
    kernelFamilyRecoveries: 0,
    kernelSyncReenabled: 0,
    kernelAddFailures: 0,
    netMalformedDatagrams: 0,
    netForeignFormatDatagrams: 0,
    netTranslatedDatagrams: 0,
    netTranslatedSessions: 0,
    netUntranslatableNoPool6: 0,
    netUntranslatableUnderivable: 0,
    netUntranslatableRange: 0,
    netSendRetries: 0,
    netSendLostDatagrams: 0,
    netSendLostSessions: 0,
    netSessionsBadProtocol: 0,
    netSessionsBadState: 0,
    netSessionsBadTimer: 0,
    netSessionsWrongTimer: 0,
    netSessionsClamped: 0,
    netDatagramsAllDropped: 0,
    netSendErrors: 0,
    netTruncatedDatagrams: 0,
    netDatagramsReceived: 0,
    netBytesReceived: 0,
    netDatagramsSent: 0,
    netBytesSent: 0,
    netLocalSourceDrops: 0,
    netWrongInterfaceDrops: 0,
    netUnknownPeerDrops: 0,
    netRateLimitedDrops: 0,
    netSecurePlainDatagrams: 0,
    netSecureMalformed: 0,
    netSecureUnknownKey: 0,
    netSecureStale: 0,
    netSecureReplays: 0,
    netSecureAuthFailures: 0,
    netSecureAccepted: 0,
    netSecureGaps: 0,
    netSecureLate: 0,
    netSecureRecovered: 0,
    netSecureControl: 0,
    netSecureBadControl: 0,
    netSecureNacksSent: 0,
    netSecureNackedDatagrams: 0,
    netSecureResyncNacksSent: 0,
    netSecureAbandoned: 0,
    netSecureNacksReceived: 0,
    netSecureNacksRefused: 0,
    netSecureRetransmitted: 0,
    netSecureUnrecoverable: 0,
    netSecureResyncsRequested: 0,
    netSecureAnnouncesReceived: 0,
    netSecureBulksSent: 0,
    netSecureBulksReceived: 0,
    netEnvelopesWithoutKey: 0,
  };
}
