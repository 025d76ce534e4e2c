/**
 * recvmsg(2) with the sender's address and the arrival interface (IP_PKTINFO / IPV6_RECVPKTINFO
 * control messages), through a `struct msghdr` built once: its buffers are made with
 * `new ArrayBuffer` (never moved) and live as long as the receiver.
 *
 * @module
 */

import { addressOf, IP_PKTINFO, IPPROTO_IP, IPPROTO_IPV6, IPV6_PKTINFO, recvmsg } from "./libc.ts";

/** Size of the control buffer: one in6_pktinfo message (CMSG_SPACE(20) = 40) and room to spare. */
const CONTROL_SIZE = 128;
/** Size of the name buffer: a sockaddr_storage. */
const NAME_SIZE = 128;
const CONTROL_SIZE_BIG = BigInt(CONTROL_SIZE);

/**
 * The arrival interface out of a control buffer: the first IP_PKTINFO or IPV6_PKTINFO message
 * (`struct cmsghdr`: cmsg_len size_t, cmsg_level int, cmsg_type int, data aligned to 8).
 *
 * @param control the control bytes recvmsg filled (msg_controllen of them)
 * @returns the interface index, or null when no such message is present or it is malformed
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { arrivalInterface } from "./recvmsg.ts";
 *
 * const control = new Uint8Array(32); // cmsghdr (16 bytes) + in_pktinfo (12 bytes), padded
 * const view = new DataView(control.buffer);
 * view.setBigUint64(0, 28n, true); // cmsg_len
 * view.setInt32(8, 0, true); // IPPROTO_IP
 * view.setInt32(12, 8, true); // IP_PKTINFO
 * view.setInt32(16, 3, true); // ipi_ifindex
 * assert.equal(arrivalInterface(control), 3);
 * ```
 */
export function arrivalInterface(control: Uint8Array): number | null {
  const view = new DataView(control.buffer, control.byteOffset, control.byteLength);
  let at = 0;
  while (control.length - at >= 16) {
    const length = Number(view.getBigUint64(at, true));
    if (length < 16 || at + length > control.length) return null;
    const level = view.getInt32(at + 8, true);
    const type = view.getInt32(at + 12, true);
    if (level === IPPROTO_IP && type === IP_PKTINFO && length >= 16 + 12) {
      return view.getInt32(at + 16, true); // struct in_pktinfo: ipi_ifindex first
    }
    if (level === IPPROTO_IPV6 && type === IPV6_PKTINFO && length >= 16 + 20) {
      return view.getUint32(at + 16 + 16, true); // struct in6_pktinfo: ipi6_ifindex after the address
    }
    at += (length + 7) & ~7;
  }
  return null;
}

/** Receives datagrams with their sender and arrival interface, allocation-free per datagram. */
export class DatagramReceiver {
  /** The datagram's bytes (after a receive: the first `min(n, length)` of them). */
  readonly data: Uint8Array<ArrayBuffer>;
  readonly #name = new Uint8Array(new ArrayBuffer(NAME_SIZE));
  readonly #control = new Uint8Array(new ArrayBuffer(CONTROL_SIZE));
  readonly #iovec = new Uint8Array(new ArrayBuffer(16));
  readonly #msghdr = new Uint8Array(new ArrayBuffer(56));
  readonly #header = new DataView(this.#msghdr.buffer);

  /**
   * Builds the msghdr.
   *
   * @param size the data buffer's size
   */
  constructor(size: number) {
    this.data = new Uint8Array(new ArrayBuffer(size));
    const iovec = new DataView(this.#iovec.buffer);
    iovec.setBigUint64(0, addressOf(this.data), true);
    iovec.setBigUint64(8, BigInt(size), true);
    // struct msghdr: name@0 namelen@8 iov@16 iovlen@24 control@32 controllen@40 flags@48.
    this.#header.setBigUint64(0, addressOf(this.#name), true);
    this.#header.setBigUint64(16, addressOf(this.#iovec), true);
    this.#header.setBigUint64(24, 1n, true);
    this.#header.setBigUint64(32, addressOf(this.#control), true);
  }

  /**
   * Receives one datagram, non-blocking.
   *
   * @param fd the socket (with IP_PKTINFO or IPV6_RECVPKTINFO on, for the interface)
   * @param flags extra recvmsg flags (MSG_TRUNC)
   * @returns the length (with MSG_TRUNC: the real one), or `-errno`
   */
  receive(fd: number, flags = 0): number {
    this.#header.setUint32(8, NAME_SIZE, true);
    this.#header.setBigUint64(40, CONTROL_SIZE_BIG, true);
    return recvmsg(fd, this.#msghdr, flags);
  }

  /** The last datagram's sender: an encoded sockaddr (a view, valid until the next receive). */
  get from(): Uint8Array {
    return this.#name.subarray(0, Math.min(NAME_SIZE, this.#header.getUint32(8, true)));
  }

  /** The last datagram's arrival interface index, or null when no pktinfo came with it. */
  get interfaceIndex(): number | null {
    const length = Math.min(CONTROL_SIZE, Number(this.#header.getBigUint64(40, true)));
    return arrivalInterface(this.#control.subarray(0, length));
  }
}
