/**
 * The peers table: per sender identity (16 bytes from the envelope), its replay window and when
 * it was last heard. Only senders whose datagram verified are added, so its size is bounded by
 * the translators holding the key; it is bounded again by {@linkcode MAX_PEERS} (the least
 * recently heard is forgotten). Pure: the caller passes the time.
 *
 * @module
 */

import { GapTracker } from "./recovery.ts";
import { ReplayWindow } from "./replay.ts";

/** Most senders remembered (a restart is a new sender: old ones age out). */
export const MAX_PEERS = 256;

/** What is known of one sender. */
export interface Peer {
  /** The sender identity, 32 hex digits. */
  readonly sender: string;
  /** The same, its 16 bytes (what NACKs and bulk-dones name). */
  readonly id: Uint8Array;
  /** Its replay window. */
  readonly window: ReplayWindow;
  /** When a datagram of it last verified (the caller's clock, ms). */
  lastHeard: number;
  /** Where its datagrams come from, when the network channel says. */
  address?: string;
  /** Its sequence numbers skipped over and not arrived yet (loss recovery). */
  readonly gaps: GapTracker;
  /** When a datagram of it first verified (the caller's clock, ms). */
  readonly firstHeard: number;
  /** Whether it sent this daemon a bulk-done (the table it advertised for our announce is out). */
  bulkReceived: boolean;
  /** The flags of its last hello (lib/secure/control.ts), 0 before one. */
  helloFlags: number;
}

/**
 * A sender identity as 32 hex digits (the table's key, and how logs name a sender).
 *
 * @param sender the 16 bytes
 * @returns the hex digits
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { senderHex } from "./peers.ts";
 * assert.equal(senderHex(new Uint8Array(16).fill(0xab)), "ab".repeat(16));
 * ```
 */
export function senderHex(sender: Uint8Array): string {
  let hex = "";
  for (let i = 0; i < sender.length; i++) hex += HEX[sender[i]];
  return hex;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** The senders heard from, least recently heard first. */
export class PeersTable {
  readonly #peers = new Map<string, Peer>();

  /** How many senders are remembered. */
  get size(): number {
    return this.#peers.size;
  }

  /**
   * The sender's entry, if known.
   *
   * @param sender the sender, 32 hex digits
   * @returns its entry, or undefined
   */
  get(sender: string): Peer | undefined {
    return this.#peers.get(sender);
  }

  /**
   * Records that a datagram of `sender` verified now: creates its entry if new (forgetting the
   * least recently heard sender beyond {@linkcode MAX_PEERS}) and moves it to the end.
   *
   * @param sender the sender, 32 hex digits
   * @param now the time, ms
   * @param id the sender's 16 bytes (copied when the entry is new; default: from `sender`)
   * @returns its entry
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { PeersTable } from "./peers.ts";
   *
   * const peers = new PeersTable();
   * peers.heard("00".repeat(16), 1).window.commit(1);
   * assert.equal(peers.get("00".repeat(16))?.window.check(1), "duplicate");
   * ```
   */
  heard(sender: string, now: number, id?: Uint8Array): Peer {
    let peer = this.#peers.get(sender);
    if (peer === undefined) {
      if (this.#peers.size >= MAX_PEERS) this.#peers.delete(this.#peers.keys().next().value!);
      peer = {
        sender,
        id: id?.slice() ?? Uint8Array.from(sender.match(/../g)!, (h) => parseInt(h, 16)),
        window: new ReplayWindow(),
        lastHeard: now,
        gaps: new GapTracker(),
        firstHeard: now,
        bulkReceived: false,
        helloFlags: 0,
      };
    } else this.#peers.delete(sender);
    peer.lastHeard = now;
    this.#peers.set(sender, peer);
    return peer;
  }

  /** Every sender, least recently heard first. */
  [Symbol.iterator](): IterableIterator<Peer> {
    return this.#peers.values();
  }
}
