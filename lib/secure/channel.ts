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
import { RateLimitedLog } from "../daemon.ts";
import type { Logger } from "../log.ts";
import {
  decodeHeader,
  type EnvelopeHeader,
  isEnvelope,
  openEnvelope,
  sealEnvelope,
  SENDER_LENGTH,
} from "./envelope.ts";
import { keyIdHex, type SyncKey } from "./keyfile.ts";
import { PeersTable, senderHex } from "./peers.ts";
import { LATE } from "./replay.ts";

/**
 * How far an envelope's time may be from ours, ms. Older envelopes are refused even from a sender
 * this daemon has never heard (a replay recorded before it started); the translators' clocks
 * must agree within this (NTP).
 */
export const MAX_CLOCK_SKEW_MS = 30_000;

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
}

/** The network channel of a daemon with a key file. */
export class SecureChannel implements NetworkChannel {
  /** This daemon's sender identity, drawn at start (32 hex digits). */
  readonly sender: string;
  /** The senders heard from. */
  readonly peers: PeersTable = new PeersTable();
  readonly #inner: NetworkChannel;
  readonly #counters: Counters;
  readonly #warn: RateLimitedLog;
  readonly #now: () => number;
  readonly #senderBytes: Uint8Array;
  #keys: readonly SyncKey[];
  #byId = new Map<number, SyncKey>();
  #sequence = 0;
  #handler: PayloadHandler = () => {};

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
  }

  /**
   * Seals `payload` with the first key and sends it.
   *
   * @param payload a Jool session payload
   * @throws {Error} when the plain channel's send fails
   */
  send(payload: Uint8Array): void {
    const envelope = sealEnvelope(this.#keys[0], {
      time: this.#now(),
      sender: this.#senderBytes,
      sequence: ++this.#sequence,
    }, payload);
    this.#inner.send(envelope);
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
    this.#inner.close();
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
    const heard = this.peers.heard(sender, now);
    const skipped = heard.window.commit(header.sequence);
    if (skipped === LATE) c.netSecureLate++;
    else if (skipped > 0) {
      c.netSecureGaps += skipped;
      this.#warn.log(
        "gap",
        `sender ${sender}${at}: ${skipped} datagram${skipped === 1 ? "" : "s"} missing before ` +
          `sequence ${header.sequence} (lost, or late if they still arrive): the sessions in ` +
          `them come back with the sender's next advertise (SIGUSR1 on the sender)`,
      );
    }
    if (from) heard.address = from;
    c.netSecureAccepted++;
    this.#handler(payload);
  }
}
