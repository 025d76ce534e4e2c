/**
 * The in-memory twin of a netlink socket (like mdlayher's `nltest.Dial`): a {@linkcode NetlinkConn}
 * whose kernel is a function. Every datagram the connection sends reaches that function as the
 * exact bytes a socket would carry; the datagrams it returns, and those pushed with
 * {@linkcode NetlinkTwin.multicast}, are what the connection receives. No socket, no root: tests of
 * the layers above run as any user, while the real-socket fake kernel stays for what is about
 * sockets.
 *
 * @module
 */

import { ERRNO } from "../../ffi/errno.ts";
import type { Reactor } from "../reactor.ts";
import { NetlinkConn, type NetlinkSocket } from "./conn.ts";

/** The kernel side: gets each request datagram (a copy) and returns the datagrams it answers with. */
export type TwinKernel = (request: Uint8Array<ArrayBuffer>) => readonly Uint8Array[] | void;

/** How to dial the twin. */
export interface TwinOptions {
  /** The connection's port id (default 0x7e570001). */
  readonly portId?: number;
  /** The last sequence number used, as {@linkcode NetlinkConn}'s constructor takes it. */
  readonly seq?: number;
}

/** The twin's own side: what was sent, the groups joined, and a way to push datagrams. */
export class NetlinkTwin implements NetlinkSocket {
  /** The connection's port id. */
  readonly portId: number;
  /** Every datagram the connection sent, in order (copies). */
  readonly sent: Uint8Array<ArrayBuffer>[] = [];
  /** The groups the connection joined. */
  readonly groups: Set<number> = new Set();
  readonly #kernel: TwinKernel;
  readonly #pending: (Uint8Array | number)[] = [];
  #waiters: (() => void)[] = [];
  #handler: (() => void) | null = null;
  #scheduled = false;
  #closed = false;

  /**
   * Builds the twin.
   *
   * @param kernel the kernel side
   * @param portId the connection's port id
   */
  constructor(kernel: TwinKernel, portId = 0x7e570001) {
    this.#kernel = kernel;
    this.portId = portId;
  }

  /** Whether the connection was closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Delivers a datagram to the connection as a multicast to `group`: only when it joined the group.
   *
   * @param group the group id
   * @param datagram the bytes (copied)
   * @returns whether it was delivered
   */
  multicast(group: number, datagram: Uint8Array): boolean {
    if (!this.groups.has(group)) return false;
    this.deliver(datagram);
    return true;
  }

  /**
   * Delivers a datagram to the connection (a unicast from the kernel).
   *
   * @param datagram the bytes (copied)
   */
  deliver(datagram: Uint8Array): void {
    this.#push(datagram.slice());
  }

  /** Makes the next receive fail with ENOBUFS, as when the kernel found the receive buffer full. */
  overrun(): void {
    this.#push(-ERRNO.ENOBUFS);
  }

  /** {@inheritDoc NetlinkSocket.send} */
  send(datagram: Uint8Array<ArrayBuffer>): number {
    if (this.#closed) return -ERRNO.EBADF;
    const copy = datagram.slice();
    this.sent.push(copy);
    for (const reply of this.#kernel(copy.slice()) ?? []) this.deliver(reply);
    return datagram.length;
  }

  /** {@inheritDoc NetlinkSocket.receive} */
  receive(buffer: Uint8Array<ArrayBuffer>): number {
    if (this.#closed) return -ERRNO.EBADF;
    const next = this.#pending.shift();
    if (next === undefined) return -ERRNO.EAGAIN;
    if (typeof next === "number") return next;
    const n = Math.min(next.length, buffer.length); // a netlink recv truncates silently
    buffer.set(next.subarray(0, n));
    return n;
  }

  /** {@inheritDoc NetlinkSocket.readable} */
  readable(timeoutMs: number): Promise<boolean> {
    if (this.#pending.length > 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== wake);
        resolve(false);
      }, timeoutMs);
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.#waiters.push(wake);
    });
  }

  /** {@inheritDoc NetlinkSocket.joinGroup} */
  joinGroup(group: number): void {
    this.groups.add(group);
  }

  /** {@inheritDoc NetlinkSocket.watch} */
  watch(_reactor: Reactor, handler: () => void): void {
    this.#handler = handler;
    this.#schedule();
  }

  /** {@inheritDoc NetlinkSocket.close} */
  close(): void {
    this.#closed = true;
    this.#handler = null;
    this.#pending.length = 0;
  }

  #push(item: Uint8Array | number): void {
    if (this.#closed) return;
    this.#pending.push(item);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
    this.#schedule();
  }

  /** Like a reactor: the handler runs later, once for whatever is pending then. */
  #schedule(): void {
    if (this.#scheduled || this.#handler === null || this.#pending.length === 0) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      if (this.#pending.length > 0) this.#handler?.();
    });
  }
}

/**
 * Dials the twin: a connection whose kernel is `kernel`.
 *
 * @param kernel answers each request datagram
 * @param options port id and first sequence number
 * @returns the connection and the twin's own side
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dialTwin } from "./twin.ts";
 *
 * const { conn, twin } = dialTwin(() => {});
 * conn.send(new Uint8Array(16), "NOOP");
 * assert.equal(twin.sent.length, 1);
 * ```
 */
export function dialTwin(
  kernel: TwinKernel,
  options: TwinOptions = {},
): { conn: NetlinkConn; twin: NetlinkTwin } {
  const twin = new NetlinkTwin(kernel, options.portId);
  return { conn: new NetlinkConn(twin, options.seq), twin };
}
