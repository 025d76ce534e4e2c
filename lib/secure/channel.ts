/**
 * The secure channel: a {@linkcode NetworkChannel} that wraps the plain multicast channel (a
 * decorator, like conntrack-tools' channel_ops under sync-ftfw.c: transport apart from policy).
 * It seals every payload the daemon sends in the envelope of lib/secure/envelope.ts, and opens
 * every datagram it receives, dropping (counted, warned about, rate limited) whatever fails a
 * check BEFORE the daemon core decodes a single session: no envelope, another version, an unknown
 * key id, a time beyond the clock skew, a sequence number the sender's replay window already
 * holds, a tag that does not verify. Everything is synchronous: the reactor's callbacks keep
 * their order (BENCHMARKS.md, "Secure sync", says why the AEAD is a synchronous one).
 *
 * @module
 */

import type { NetworkChannel, PayloadHandler } from "../channel.ts";
import type { Counters } from "../counters.ts";
import type { JoolVersion } from "../jool/version.ts";
import { RateLimitedLog } from "../daemon.ts";
import type { Logger } from "../log.ts";
import { TokenBucket } from "../token_bucket.ts";
import {
  BULK_NO_ADVERTISE,
  decodeBulkDone,
  decodeHello,
  decodeNack,
  encodeBulkDone,
  encodeHello,
  encodeNack,
  HELLO_SYNC_READY,
  HELLO_WANT_BULK,
  type Nack,
  NACK_RESYNC,
} from "./control.ts";
import {
  decodeHeader,
  type EnvelopeHeader,
  HEADER_LENGTH,
  isEnvelope,
  Kind,
  openEnvelope,
  OVERHEAD,
  sealEnvelopeInto,
  SENDER_LENGTH,
  writeHeader,
} from "./envelope.ts";
import { keyIdHex, type SyncKey } from "./keyfile.ts";
import { type Peer, PeersTable, senderHex } from "./peers.ts";
import { DEFAULT_RESEND_BUFFER, ResendRing } from "./recovery.ts";
import { LATE } from "./replay.ts";
import type { Sealer } from "./sealer.ts";

/**
 * How far an envelope's time may be from ours, ms. Older envelopes are refused even from a sender
 * this daemon has never heard (a replay recorded before it started); the translators' clocks
 * must agree within this (NTP).
 */
export const MAX_CLOCK_SKEW_MS = 30_000;

/** How often a keyed daemon says hello (and the control plane's timers run at most this late), ms. */
export const HELLO_INTERVAL_MS = 1000;
/** How often the channel's timer runs while work waits for it (NACKs due, bulk-dones, sync-ready), ms. */
export const TICK_MS = 25;
/**
 * How often it runs when nothing waits (no gap, no bulk to finish, sync-ready): the hellos' pace,
 * so that an idle keyed daemon wakes 4 times a second, not 40; the first gap or bulk makes it
 * {@linkcode TICK_MS} again at once, ms.
 */
export const IDLE_TICK_MS = HELLO_INTERVAL_MS / 4;
/** A peer heard within this is live: sync-ready waits for its bulk, ms (5 hellos). */
export const PEER_LIVE_MS = 5 * HELLO_INTERVAL_MS;
/**
 * How long a starting daemon listens before it may call itself sync-ready: every live peer says
 * hello within it (2.5 hellos), so it knows whose bulk to wait for, ms.
 */
export const ANNOUNCE_WAIT_MS = 2.5 * HELLO_INTERVAL_MS;
/** The default of `"sync-ready timeout"`: sync-ready without every bulk after this, seconds. */
export const DEFAULT_SYNC_READY_TIMEOUT_S = 60;
/**
 * A bulk is complete when the kernel said its advertise is done (Jool 4.1.13+: the JOOLD_ADVERTISE
 * reply) and no session went out for this long: the kernel's queue has drained, ms.
 */
export const BULK_QUIET_MS = 500;
/**
 * A translator whose sessions never stop for {@linkcode BULK_QUIET_MS} sends the bulk-done this
 * long after the kernel said its advertise is done, ms: its queue has had time to drain.
 */
export const BULK_MAX_DRAIN_MS = 10_000;
/** Where the kernel cannot say its advertise is done (4.1.11, 4.1.12): assume it after this, ms. */
export const BULK_FALLBACK_MS = 3000;
/**
 * Envelopes older than this are not resent (the receiver would drop them as stale, {@linkcode
 * MAX_CLOCK_SKEW_MS}): the receiver gets a resync instead, ms.
 */
export const RESEND_MAX_AGE_MS = 20_000;
/** NACKs addressed to this daemon it serves per second (and in a burst); beyond: refused. */
export const NACK_RATE = 50;
/** Most datagrams one NACK makes this daemon resend; a larger range is served by a resync. */
export const MAX_RESEND_PER_NACK = 256;
/** Datagrams resent per second at most (and in a burst): a NACK storm cannot flood the link. */
export const RESEND_RATE = 2000;
/** Most NACKs a receiver sends per timer run (the rest wait for the next). */
export const MAX_NACKS_PER_TICK = 16;

/**
 * How the kernel answers a resync request (lib/start.ts asks it to advertise): `"reports-done"`
 * (Jool 4.1.13+: the channel hears when the advertise is done), `"no-report"` (4.1.11, 4.1.12),
 * `"unavailable"` (before 4.1.11: JOOLD_ADVERTISE does nothing).
 */
export type AdvertiseMode = "reports-done" | "no-report" | "unavailable";

/**
 * Whether the kernel says when an advertise is done (the JOOLD_ADVERTISE reply comes once the
 * table is queued: Jool 4.1.13 and later, lib/kernel/channel.ts onAdvertiseDone).
 *
 * @param v the kernel's version
 * @returns true from 4.1.13 on
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reportsAdvertiseDone } from "./channel.ts";
 * assert.equal(reportsAdvertiseDone({ major: 4, minor: 1, revision: 13, development: 0 }), true);
 * assert.equal(reportsAdvertiseDone({ major: 4, minor: 1, revision: 11, development: 0 }), false);
 * ```
 */
export function reportsAdvertiseDone(v: JoolVersion): boolean {
  return v.major > 4 || (v.major === 4 && (v.minor > 1 || v.revision >= 13));
}

/**
 * The most payload bytes a keyed daemon joins into one envelope from the kernel batches of one
 * burst (the daemon core, {@linkcode NetworkChannel.coalesceBytes}): with its header and tag the
 * envelope stays within 1452 bytes, Jool's default `ss-max-payload` (a 1500-byte MTU's UDP over
 * IPv6). Under load the kernel hands batches back to back (each ACK lets it send the next at
 * once): one seal, one send and one JOOLD_ADD at the peer then carry many sessions.
 */
export const COALESCE_BYTES: number = 1452 - OVERHEAD;

/** Asks the kernel to advertise its table (coalesced by the caller); says how it will end. */
export type Advertiser = (why: string) => AdvertiseMode;

/** Why a daemon is sync-ready. */
export type SyncReadyReason = "bulk from every live peer" | "no peer answered" | "timeout";

/**
 * A received datagram with, when the plain channel knows it, the sender's address (the multicast
 * channel passes the source address recvmsg gave it; an empty or missing one is not named).
 */
export type DatagramHandler = (datagram: Uint8Array, from?: string) => void;

/** What a secure channel is made of. */
export interface SecureParts {
  /** The plain channel it wraps (the multicast group). */
  readonly inner: NetworkChannel;
  /** The key file's keys: the first seals, all open. At least one. */
  readonly keys: readonly SyncKey[];
  /** The daemon's counters (this channel owns the netSecure* fields). */
  readonly counters: Counters;
  /** Where its warnings go (rate limited per cause). */
  readonly log: Logger;
  /** Clock, ms since the Unix epoch (envelope times, rate limits). */
  readonly now?: () => number;
  /** Random source (the sender identity). */
  readonly random?: (bytes: Uint8Array) => Uint8Array;
  /** The resend ring's bound, bytes (default {@linkcode DEFAULT_RESEND_BUFFER}). */
  readonly resendBufferBytes?: number;
  /** Sync-ready without every bulk after this, ms (default {@linkcode DEFAULT_SYNC_READY_TIMEOUT_S}). */
  readonly syncReadyTimeoutMs?: number;
  /**
   * Run the control plane on a timer every {@linkcode TICK_MS} (hellos, NACKs, bulk-dones,
   * sync-ready) once {@linkcode SecureChannel.onDatagram} started it; false (the default: unit
   * tests): the caller calls {@linkcode SecureChannel.tick}.
   */
  readonly timers?: boolean;
}

/** The network channel of a daemon with a key file. */
export class SecureChannel implements NetworkChannel {
  /** This daemon's sender identity, drawn at start (32 hex digits). */
  readonly sender: string;
  /** The senders heard from. */
  readonly peers: PeersTable = new PeersTable();
  /** {@inheritDoc NetworkChannel.coalesceBytes} ({@linkcode COALESCE_BYTES}) */
  readonly coalesceBytes: number = COALESCE_BYTES;
  readonly #inner: NetworkChannel;
  readonly #counters: Counters;
  readonly #warn: RateLimitedLog;
  readonly #now: () => number;
  readonly #senderBytes: Uint8Array;
  #keys: readonly SyncKey[];
  #byId = new Map<number, SyncKey>();
  #sequence = 0;
  #handler: PayloadHandler = () => {};
  readonly #ring: ResendRing;
  readonly #syncReadyTimeoutMs: number;
  readonly #timers: boolean;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** The timer's period now (0: not running). */
  #tickMs = 0;
  #advertiser: Advertiser = () => "unavailable";
  /** When the control plane started (the first tick), ms; null before. */
  #startedAt: number | null = null;
  #lastHello = -Infinity;
  #ready: SyncReadyReason | null = null;
  #lastDataSent = -Infinity;
  /** Announcers whose bulk is being made, by sender hex: their 16 bytes. */
  readonly #bulkPending = new Map<string, Uint8Array>();
  /** Announcers whose bulk was sent (bounded like the peers table). */
  readonly #bulkServed = new Set<string>();
  /** When the pending bulk counts as out (the kernel's advertise done), ms; null: not yet. */
  #bulkDoneAt: number | null = null;
  #nackBucket: TokenBucket;
  #resendBucket: TokenBucket;
  #closed = false;
  /** The sealing thread, when there is one: the ring then holds the envelopes unsealed. */
  #sealer: Sealer | null = null;

  /**
   * Wraps `parts.inner`; nothing is received until {@linkcode onDatagram}.
   *
   * @param parts the plain channel, the keys, counters, logger, clock, random source
   * @throws {RangeError} without a key
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import type { NetworkChannel, PayloadHandler } from "../channel.ts";
   * import { createCounters } from "../counters.ts";
   * import { silentLogger } from "../log.ts";
   * import { SecureChannel } from "./channel.ts";
   * import { parseKeyFile } from "./keyfile.ts";
   *
   * // Two daemons' plain channels, joined back to back.
   * const handlers: PayloadHandler[] = [];
   * const plain = (me: number): NetworkChannel => ({
   *   onDatagram: (handler) => (handlers[me] = handler),
   *   send: (datagram) => handlers[1 - me](datagram),
   *   close() {},
   * });
   * const keys = parseKeyFile("42".repeat(32), "sync.key");
   * const counters = createCounters();
   * const a = new SecureChannel({ inner: plain(0), keys, counters, log: silentLogger });
   * const b = new SecureChannel({ inner: plain(1), keys, counters, log: silentLogger });
   * const got: Uint8Array[] = [];
   * a.onDatagram(() => {});
   * b.onDatagram((payload) => got.push(payload.slice()));
   * a.send(Uint8Array.of(1, 2, 3));
   * assert.deepEqual(got, [Uint8Array.of(1, 2, 3)]);
   * ```
   */
  constructor(parts: SecureParts) {
    this.#inner = parts.inner;
    this.#counters = parts.counters;
    this.#now = parts.now ?? Date.now;
    this.#warn = new RateLimitedLog((m) => parts.log.warn(m), this.#now);
    const random = parts.random ?? ((b: Uint8Array) => crypto.getRandomValues(b));
    this.#senderBytes = random(new Uint8Array(SENDER_LENGTH));
    this.sender = senderHex(this.#senderBytes);
    this.#keys = [];
    this.setKeys(parts.keys);
    this.#ring = new ResendRing(parts.resendBufferBytes ?? DEFAULT_RESEND_BUFFER);
    this.#syncReadyTimeoutMs = parts.syncReadyTimeoutMs ?? DEFAULT_SYNC_READY_TIMEOUT_S * 1000;
    this.#timers = parts.timers ?? false;
    const now = this.#now();
    this.#nackBucket = new TokenBucket({ ratePerSecond: NACK_RATE, burst: NACK_RATE }, now);
    this.#resendBucket = new TokenBucket({ ratePerSecond: RESEND_RATE, burst: RESEND_RATE }, now);
  }

  /** This daemon's sender identity, 16 bytes (a copy). */
  get senderBytes(): Uint8Array {
    return this.#senderBytes.slice();
  }

  /**
   * Hands sealing and sending to a thread (lib/secure/sealer.ts; lib/start.ts starts it for a
   * daemon whose cipher is libcrypto): from now on every envelope, resends too, is staged for it.
   * Should the thread fail, the channel seals on its own again (the ring is emptied then: its
   * envelopes were kept unsealed; a NACK for one of them becomes a resync).
   *
   * @param sealer the running thread (closed with this channel)
   */
  useSealer(sealer: Sealer): void {
    this.#sealer = sealer;
  }

  /** Whether a sealing thread seals and sends this channel's envelopes. */
  get sealingThread(): boolean {
    return this.#sealer !== null && !this.#sealer.failed;
  }

  /** Whether this daemon is sync-ready (see {@linkcode SecureChannel.tick}). */
  get syncReady(): boolean {
    return this.#ready !== null;
  }

  /** Why it is sync-ready; null while it is not. */
  get syncReadyReason(): SyncReadyReason | null {
    return this.#ready;
  }

  /** The control plane timer's period now, ms ({@linkcode TICK_MS} or {@linkcode IDLE_TICK_MS}; 0: none). */
  get timerPeriod(): number {
    return this.#tickMs;
  }

  /** The resend ring's use: envelopes and bytes held. */
  get ring(): { readonly size: number; readonly bytes: number } {
    return { size: this.#ring.size, bytes: this.#ring.bytes };
  }

  /**
   * Sets how a resync is asked of the kernel (lib/start.ts: the daemon's coalesced advertise).
   * Without one, every resync counts as unrecoverable.
   *
   * @param advertiser the request
   */
  setAdvertiser(advertiser: Advertiser): void {
    this.#advertiser = advertiser;
  }

  /**
   * The kernel said its advertise is done (Jool 4.1.13+, lib/kernel/channel.ts onAdvertiseDone):
   * the pending bulk goes out once the sessions stop ({@linkcode BULK_QUIET_MS}).
   */
  advertiseDone(): void {
    if (this.#bulkPending.size > 0) this.#bulkDoneAt = this.#now();
  }

  /** The keys in use: the first seals, all open. */
  get keys(): readonly SyncKey[] {
    return this.#keys;
  }

  /**
   * Replaces the keys (SIGHUP re-read the key file): the sender identity and its sequence go on.
   *
   * @param keys the key file's keys, at least one
   * @throws {RangeError} without a key
   */
  setKeys(keys: readonly SyncKey[]): void {
    if (keys.length === 0) throw new RangeError("a secure channel needs at least one key");
    this.#keys = [...keys];
    this.#byId = new Map(keys.map((k) => [k.id, k]));
  }

  onDatagram(handler: PayloadHandler): void {
    this.#handler = handler;
    const receive: DatagramHandler = (datagram, from) => this.#receive(datagram, from);
    this.#inner.onDatagram(receive);
    if (this.#timer === undefined) this.#arm(TICK_MS);
  }

  /** Runs the control plane's timer every `ms` (with `timers`; a new period restarts it). */
  #arm(ms: number): void {
    if (!this.#timers || this.#closed || this.#tickMs === ms) return;
    clearInterval(this.#timer);
    this.#timer = setInterval(() => this.tick(this.#now()), ms);
    this.#tickMs = ms;
  }

  /** Whether the timer has work soon: not sync-ready yet, a bulk to finish, a peer's gap. */
  #busy(): boolean {
    if (this.#ready === null || this.#bulkPending.size > 0) return true;
    for (const peer of this.peers) if (!peer.gaps.idle) return true;
    return false;
  }

  /**
   * Seals `payload` with the first key, keeps it in the resend ring and sends it.
   *
   * @param payload a Jool session payload
   * @throws {Error} when the plain channel's send fails (it stays in the ring: a NACK resends it)
   */
  send(payload: Uint8Array): void {
    this.#lastDataSent = this.#now();
    this.#seal(Kind.data, payload);
  }

  /** The plain channel's destinations (the group, or each unicast peer). */
  get destinations(): readonly string[] | undefined {
    return this.#inner.destinations;
  }

  /**
   * Sends bytes that are already an envelope (a SendError's, to the destinations that missed
   * it) through the plain channel, unchanged: the same sequence number reaches every peer.
   *
   * @param datagram the sealed bytes
   * @param destinations names among {@linkcode destinations}
   * @throws {Error} when the plain channel cannot, or its send fails
   */
  sendTo(datagram: Uint8Array, destinations: readonly string[]): void {
    if (this.#inner.sendTo === undefined) throw new Error("the plain channel has no sendTo");
    this.#inner.sendTo(datagram, destinations);
  }

  /**
   * The plain channel's wait for buffer space (the daemon's retry queue), when it has one.
   *
   * @param handler called once when the socket can take a datagram again
   */
  whenWritable(handler: () => void): void {
    if (this.#inner.whenWritable) this.#inner.whenWritable(handler);
    else setTimeout(handler, 5);
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#tickMs = 0;
    this.#sealer?.close(); // before the socket it sends on closes
    this.#inner.close();
  }

  /**
   * The control plane, due at `now` (every {@linkcode TICK_MS} with `timers`): the first run
   * announces this daemon (a hello asking for the peers' tables), then a hello every {@linkcode
   * HELLO_INTERVAL_MS} (which also shows the peers a lost last datagram); the NACKs of gaps whose
   * reordering wait is over; the bulk-dones of a finished bulk; and sync-ready: after {@linkcode
   * ANNOUNCE_WAIT_MS}, once every peer heard within {@linkcode PEER_LIVE_MS} sent this daemon a
   * bulk-done (or none is live), or after the sync-ready timeout. Once ready, it stays ready.
   *
   * @param now the time, ms
   */
  tick(now: number): void {
    if (this.#closed) return;
    this.#startedAt ??= now;
    this.#sealer?.fold();
    try {
      if (now - this.#lastHello >= HELLO_INTERVAL_MS) {
        this.#lastHello = now;
        const flags = this.#ready === null ? HELLO_WANT_BULK : HELLO_SYNC_READY;
        this.#seal(Kind.hello, encodeHello(flags));
      }
      this.#sendNacks(now);
      this.#finishBulk(now);
    } catch (error) {
      this.#warn.log("control-send", `secure sync: a control message failed: ${error}`);
    }
    if (this.#ready === null) this.#checkReady(now);
    this.#arm(this.#busy() ? TICK_MS : IDLE_TICK_MS);
  }

  /**
   * The peers heard within {@linkcode PEER_LIVE_MS} of `now`.
   *
   * @param now the time, ms
   * @returns them, least recently heard first
   */
  livePeers(now: number): Peer[] {
    return [...this.peers].filter((p) => now - p.lastHeard <= PEER_LIVE_MS);
  }

  /** Seals and sends one envelope of `kind`; every kind goes into the ring (its number is used). */
  #seal(kind: Kind, payload: Uint8Array): void {
    const time = this.#now();
    const sequence = ++this.#sequence;
    const length = OVERHEAD + payload.length;
    // Sealed straight into the resend ring (sent from there: the plain channel copies what it
    // keeps); an envelope larger than the ring, into bytes of its own.
    const envelope = this.#ring.reserve(sequence, length, time) ?? new Uint8Array(length);
    const sealer = this.#sealer;
    if (sealer !== null) {
      // Kept unsealed (a resend is sealed again, into the same bytes), sealed and sent by the
      // thread, in order.
      const key = this.#keys[0];
      try {
        writeHeader(envelope, kind, key.id, { time, sender: this.#senderBytes, sequence });
      } catch (error) {
        this.#ring.clear();
        throw error;
      }
      envelope.set(payload, HEADER_LENGTH);
      if (sealer.seal(envelope, key)) return;
      this.#sealerFailed();
    }
    try {
      sealEnvelopeInto(envelope, this.#keys[0], {
        kind,
        time,
        sender: this.#senderBytes,
        sequence,
      }, payload);
    } catch (error) {
      this.#ring.clear(); // the reserved bytes hold no envelope: nothing may be resent from them
      throw error;
    }
    this.#inner.send(envelope);
  }

  /** The thread is gone: seal here from now; the ring's unsealed envelopes cannot be resent. */
  #sealerFailed(): void {
    const sealer = this.#sealer!;
    this.#sealer = null;
    sealer.close();
    this.#ring.clear();
    this.#warn.log(
      "sealer",
      "secure sync: the sealing thread stopped (it could not seal, or send for 2 s): " +
        "sealing on the main loop from now",
    );
  }

  #sendNacks(now: number): void {
    const c = this.#counters;
    let sent = 0;
    for (const peer of this.peers) {
      const { nacks, abandoned } = peer.gaps.due(now, peer.window.top);
      if (abandoned > 0) {
        c.netSecureAbandoned += abandoned;
        this.#warn.log(
          "abandoned",
          `sender ${peer.sender}: gave up on ${abandoned} missing datagram${
            abandoned === 1 ? "" : "s"
          } (NACKed without an answer, or older than the replay window): asked it to resync`,
        );
      }
      for (const request of nacks) {
        if (sent >= MAX_NACKS_PER_TICK && !request.resync) continue;
        const nack: Nack = {
          target: peer.id,
          first: request.first,
          count: Math.min(request.count, 0xffffffff),
          flags: request.resync ? NACK_RESYNC : 0,
        };
        this.#seal(Kind.nack, encodeNack(nack));
        sent++;
        c.netSecureNacksSent++;
        if (request.resync) c.netSecureResyncNacksSent++;
        else if (!request.retry) c.netSecureNackedDatagrams += request.count;
      }
    }
  }

  #finishBulk(now: number): void {
    if (this.#bulkPending.size === 0 || this.#bulkDoneAt === null) return;
    if (now < this.#bulkDoneAt) return;
    const draining = now - this.#bulkDoneAt < BULK_MAX_DRAIN_MS;
    if (draining && now - this.#lastDataSent < BULK_QUIET_MS) return;
    for (const [hex, target] of this.#bulkPending) {
      this.#sendBulkDone(hex, target, 0);
    }
    this.#bulkPending.clear();
    this.#bulkDoneAt = null;
  }

  #sendBulkDone(hex: string, target: Uint8Array, flags: number): void {
    this.#seal(Kind.bulkDone, encodeBulkDone({ target, flags }));
    this.#counters.netSecureBulksSent++;
    this.#bulkServed.add(hex);
    if (this.#bulkServed.size > 256) {
      this.#bulkServed.delete(this.#bulkServed.values().next().value!);
    }
  }

  #checkReady(now: number): void {
    const elapsed = now - this.#startedAt!;
    if (elapsed < ANNOUNCE_WAIT_MS) return;
    const live = this.livePeers(now);
    const waiting = live.filter((p) => !p.bulkReceived);
    let reason: SyncReadyReason | null = null;
    if (waiting.length === 0) {
      reason = live.length === 0 ? "no peer answered" : "bulk from every live peer";
    } else if (elapsed >= this.#syncReadyTimeoutMs) reason = "timeout";
    if (reason === null) return;
    this.#ready = reason;
    this.#onReady(reason, waiting.map((p) => p.sender));
  }

  #onReady: (reason: SyncReadyReason, waiting: string[]) => void = () => {};

  /**
   * Sets what is told once this daemon becomes sync-ready (lib/start.ts logs it).
   *
   * @param handler gets the reason and, after a timeout, the live peers that sent no bulk
   */
  onSyncReady(handler: (reason: SyncReadyReason, waiting: string[]) => void): void {
    this.#onReady = handler;
  }

  /** An authenticated control message of `peer`. */
  #control(kind: Kind, payload: Uint8Array, peer: Peer, who: string): void {
    const c = this.#counters;
    try {
      if (kind === Kind.hello) {
        const flags = decodeHello(payload);
        peer.helloFlags = flags;
        if (flags & HELLO_WANT_BULK) this.#announced(peer);
      } else if (kind === Kind.bulkDone) {
        const done = decodeBulkDone(payload);
        if (senderHex(done.target) !== this.sender) return;
        if (!peer.bulkReceived) c.netSecureBulksReceived++;
        peer.bulkReceived = true;
      } else if (kind === Kind.nack) {
        const nack = decodeNack(payload);
        if (senderHex(nack.target) !== this.sender) return;
        this.#nacked(nack, peer, who);
      }
    } catch (error) {
      c.netSecureBadControl++;
      this.#warn.log(
        "bad-control",
        `dropped a control message${who}: ${(error as Error).message} (a broken peer)`,
      );
    }
  }

  /** A peer announced itself: make it a bulk (one advertise per announcer). */
  #announced(peer: Peer): void {
    const c = this.#counters;
    if (this.#bulkPending.has(peer.sender)) return;
    if (this.#bulkServed.has(peer.sender)) {
      // It still asks: our bulk-done did not reach it. Say it again, without another advertise
      // (what of the bulk it missed, its NACKs recover).
      this.#sendBulkDone(peer.sender, peer.id, 0);
      return;
    }
    c.netSecureAnnouncesReceived++;
    const mode = this.#advertiser(`secure sync: peer ${peer.sender} announced itself`);
    if (mode === "unavailable") {
      this.#sendBulkDone(peer.sender, peer.id, BULK_NO_ADVERTISE);
      return;
    }
    c.netSecureResyncsRequested++;
    this.#bulkPending.set(peer.sender, peer.id);
    this.#bulkDoneAt = mode === "no-report" ? this.#now() + BULK_FALLBACK_MS : null;
    this.#arm(TICK_MS);
  }

  /** A NACK addressed to this daemon: resend from the ring, or resync, within the bounds. */
  #nacked(nack: Nack, peer: Peer, who: string): void {
    const c = this.#counters;
    const now = this.#now();
    if (!this.#nackBucket.take(now)) {
      c.netSecureNacksRefused++;
      this.#warn.log(
        "nack-rate",
        `refused a NACK${who}: more than ${NACK_RATE} NACKs a second (a broken or hostile peer)`,
      );
      return;
    }
    c.netSecureNacksReceived++;
    const last = nack.first + nack.count - 1;
    if (nack.first > this.#sequence) {
      c.netSecureNacksRefused++;
      this.#warn.log(
        "nack-future",
        `refused a NACK${who} for sequence ${nack.first}, beyond the last one sent (${this.#sequence})`,
      );
      return;
    }
    const end = Math.min(last, this.#sequence);
    const count = end - nack.first + 1;
    if ((nack.flags & NACK_RESYNC) !== 0) {
      return this.#resync(`peer ${peer.sender} gave up on ${count} datagrams`, count);
    }
    if (count > MAX_RESEND_PER_NACK) {
      return this.#resync(
        `peer ${peer.sender} missed ${count} datagrams (more than ${MAX_RESEND_PER_NACK})`,
        count,
      );
    }
    let gone = 0;
    for (let s = nack.first; s <= end; s++) {
      const entry = this.#ring.get(s);
      if (entry === undefined || now - entry.time > RESEND_MAX_AGE_MS) {
        gone++;
        continue;
      }
      // Over the budget: the rest wait for the peer's next NACK.
      if (!this.#resendBucket.take(now)) break;
      try {
        if (this.#sealer === null) this.#inner.send(entry.bytes);
        else if (!this.#sealer.seal(entry.bytes, this.#keys[0])) {
          this.#sealerFailed();
          break;
        }
        c.netSecureRetransmitted++;
      } catch {
        break;
      }
    }
    if (gone > 0) {
      this.#resync(
        `peer ${peer.sender} missed ${gone} datagrams older than the resend buffer`,
        gone,
      );
    }
  }

  /** Asks the kernel for its table on a peer's behalf; unrecoverable where it cannot. */
  #resync(why: string, datagrams: number): void {
    const c = this.#counters;
    const mode = this.#advertiser(`secure sync: ${why}`);
    if (mode === "unavailable") {
      c.netSecureUnrecoverable += datagrams;
      this.#warn.log(
        "unrecoverable",
        `secure sync: ${why}: they cannot be resent, and this Jool cannot advertise (4.1.11+ can): ` +
          `their sessions reach that peer only when they change`,
      );
      return;
    }
    c.netSecureResyncsRequested++;
  }

  #receive(datagram: Uint8Array, from: string | undefined): void {
    const c = this.#counters;
    const at = from ? ` from ${from}` : "";
    if (!isEnvelope(datagram)) {
      c.netSecurePlainDatagrams++;
      this.#warn.log(
        "plain",
        `dropped a ${datagram.length}-byte datagram without the secure-sync envelope${at}: ` +
          `this daemon has a "key file" (--net.key), the sender has none (or is Jool's C ` +
          `daemon); every translator of the group needs the same key file`,
      );
      return;
    }
    let header: EnvelopeHeader;
    try {
      header = decodeHeader(datagram);
    } catch (error) {
      c.netSecureMalformed++;
      this.#warn.log("malformed", `dropped an envelope${at}: ${(error as Error).message}`);
      return;
    }
    const sender = senderHex(header.sender);
    const who = `${at} (sender ${sender})`;
    if (sender === this.sender) {
      // Our own identity from the network: a reflection (or a replay) of what we sent.
      c.netSecureReplays++;
      this.#warn.log(
        "reflected",
        `dropped an envelope${at} that carries this daemon's own sender identity: a reflected ` +
          `or replayed copy of what it sent`,
      );
      return;
    }
    const key = this.#byId.get(header.keyId);
    if (key === undefined) {
      c.netSecureUnknownKey++;
      this.#warn.log(
        "unknown-key",
        `dropped an envelope${who} sealed under key id ${keyIdHex(header.keyId)}, not in the key ` +
          `file (its key ids: ${this.#keys.map((k) => k.idHex).join(", ")}): the translators' ` +
          `key files differ; give every translator the same key file`,
      );
      return;
    }
    const now = this.#now();
    if (Math.abs(now - header.time) > MAX_CLOCK_SKEW_MS) {
      c.netSecureStale++;
      this.#warn.log(
        "stale",
        `dropped an envelope${who} whose time is ${
          Math.round((now - header.time) / 1000)
        } s from ours (more than ${MAX_CLOCK_SKEW_MS / 1000} s): a replay, or clocks that ` +
          `disagree (run NTP on every translator)`,
      );
      return;
    }
    const peer = this.peers.get(sender);
    // The window is checked before the (costlier) AEAD, and moved only after it verified.
    const verdict = peer?.window.check(header.sequence) ?? "new";
    if (verdict !== "new") {
      c.netSecureReplays++;
      this.#warn.log(
        "replay",
        `dropped an envelope${who}: sequence ${header.sequence} is ${
          verdict === "duplicate" ? "a duplicate" : "older than the replay window"
        } (a replay, or a looping network)`,
      );
      return;
    }
    const payload = openEnvelope(key, datagram);
    if (payload === null) {
      c.netSecureAuthFailures++;
      this.#warn.log(
        "auth",
        `dropped a ${datagram.length}-byte envelope${who}: it does not verify under key id ${key.idHex} ` +
          `(forged, corrupted or truncated)`,
      );
      return;
    }
    const heard = this.peers.heard(sender, now, header.sender);
    const top = heard.window.top;
    const skipped = heard.window.commit(header.sequence);
    if (skipped === LATE) {
      const verdict = heard.gaps.arrived(header.sequence);
      if (verdict === "recovered") c.netSecureRecovered++;
      else c.netSecureLate++;
    } else if (skipped > 0) {
      c.netSecureGaps += skipped;
      heard.gaps.skipped(top + 1, header.sequence - 1, now);
      this.#arm(TICK_MS); // its NACK is due after the reordering wait
    }
    if (from) heard.address = from;
    const kind = header.kind ?? Kind.data;
    if (kind !== Kind.data) {
      c.netSecureControl++;
      return this.#control(kind, payload, heard, who);
    }
    c.netSecureAccepted++;
    this.#handler(payload);
  }
}
