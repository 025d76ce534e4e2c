/**
 * A netlink connection (like mdlayher/netlink's `Conn`): sequence numbers, request/reply with a
 * timeout, and the names of recent requests so that an error reply can say which request it
 * answers. It knows no family. Underneath is a {@linkcode NetlinkSocket}: a real libc socket
 * ({@linkcode openNetlink}) or the in-memory twin of lib/netlink/twin.ts, which passes the same
 * bytes to a kernel written as a function in a test.
 *
 * @module
 */

import {
  AF_NETLINK,
  bind,
  close,
  getsockname,
  recv,
  sendto,
  setsockoptInt,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SOCK_RAW,
  socket,
  SOL_SOCKET,
  waitReadableAsync,
} from "../../ffi/libc.ts";
import { ERRNO, errnoName, SystemError } from "../../ffi/errno.ts";
import { netlinkPortId, sockaddrNl } from "../../ffi/sockaddr.ts";
import type { Reactor } from "../reactor.ts";
import {
  type Message,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_SEQ,
  parseErrorMessage,
  parseMessages,
} from "./message.ts";

/** linux/netlink.h: a protocol for userspace peers (tests talk to a fake kernel over it). */
export const NETLINK_USERSOCK = 2;
/** linux/netlink.h: Generic Netlink. */
export const NETLINK_GENERIC = 16;
/** linux/socket.h: the netlink socket-option level. */
const SOL_NETLINK = 270;
/** linux/netlink.h: join a multicast group. */
const NETLINK_ADD_MEMBERSHIP = 1;
/** linux/netlink.h: extended ack (readable error messages). */
const NETLINK_EXT_ACK = 11;
/** How many recent requests are remembered by name (a power of two). */
const OPS_RING = 1024;

/** The datagram level under a {@linkcode NetlinkConn}: a real socket or the in-memory twin. */
export interface NetlinkSocket {
  /** Our port id. */
  readonly portId: number;
  /** Sends one datagram to the peer; returns the bytes sent or `-errno`. */
  send(datagram: Uint8Array<ArrayBuffer>): number;
  /** Receives one pending datagram without blocking; returns its length or `-errno` (`-EAGAIN`). */
  receive(buffer: Uint8Array<ArrayBuffer>): number;
  /** Resolves true once a datagram is pending, false after `timeoutMs`; never blocks the loop. */
  readable(timeoutMs: number): Promise<boolean>;
  /** Joins a multicast group (NETLINK_ADD_MEMBERSHIP). */
  joinGroup(group: number): void;
  /** Calls `handler` whenever datagrams are pending (through the reactor for a real socket). */
  watch(reactor: Reactor, handler: () => void): void;
  /** Stops watching and closes. */
  close(): void;
}

/** A netlink error reply to a request: the request's name, the errno and the ext-ack text. */
export class NetlinkError extends Error {
  /** The request that was refused. */
  readonly op: string;
  /** Positive errno. */
  readonly errno: number;
  /** The kernel's extended-ack message ("" when it sent none). */
  readonly extAck: string;

  /**
   * Builds the error.
   *
   * @param op the request
   * @param errno positive errno
   * @param extAck the ext-ack text
   */
  constructor(op: string, errno: number, extAck: string) {
    super(`${op} failed: ${errnoName(errno)}${extAck ? `: "${extAck}"` : ""}`);
    this.name = "NetlinkError";
    this.op = op;
    this.errno = errno;
    this.extAck = extAck;
  }
}

/** What a request got back. */
export type NetlinkReply =
  | {
    /** A message of the family answering it (its body is a copy). */
    readonly kind: "reply";
    /** The message. */
    readonly message: Message;
  }
  | {
    /** NLMSG_ERROR with errno 0. */
    readonly kind: "ack";
  }
  | {
    /** NLMSG_ERROR with an errno. */
    readonly kind: "error";
    /** The refusal. */
    readonly error: NetlinkError;
  };

/** How to open a real netlink socket. */
export interface NetlinkOptions {
  /** Netlink protocol (default NETLINK_GENERIC). */
  readonly protocol?: number;
  /** Port id datagrams go to (default 0: the kernel). */
  readonly peerPortId?: number;
  /** Receive buffer to ask for, bytes (default 8 MiB). */
  readonly receiveBuffer?: number;
}

/** A netlink connection: requests with sequence numbers, replies, and the raw datagram stream. */
export class NetlinkConn {
  readonly #socket: NetlinkSocket;
  #seq: number;
  /** The request each recent sequence number was, to name it in error replies (a ring). */
  readonly #ops: string[] = new Array<string>(OPS_RING).fill("request");
  readonly #buffer = new Uint8Array(65536);

  /**
   * Wraps a socket.
   *
   * @param socket the datagram level
   * @param seq the last sequence number used (the next request gets `seq + 1`); random by default
   */
  constructor(socket: NetlinkSocket, seq: number = Math.floor(Math.random() * 0x7fffffff)) {
    this.#socket = socket;
    this.#seq = seq >>> 0;
  }

  /** Our port id. */
  get portId(): number {
    return this.#socket.portId;
  }

  /**
   * Stamps a fresh sequence number into `message` (in place), remembers it as `op`, and sends it.
   *
   * @param message a complete netlink message
   * @param op its name, for error replies
   * @returns the sequence number
   * @throws {SystemError} when the send fails
   */
  send(message: Uint8Array<ArrayBuffer>, op: string): number {
    const seq = this.#seq = (this.#seq + 1) >>> 0 || 1; // 0 is the kernel's multicast number
    message[NLMSG_SEQ] = seq; // host order (little endian), without a DataView per send
    message[NLMSG_SEQ + 1] = seq >>> 8;
    message[NLMSG_SEQ + 2] = seq >>> 16;
    message[NLMSG_SEQ + 3] = seq >>> 24;
    this.#ops[seq & (OPS_RING - 1)] = op;
    for (;;) {
      const n = this.#socket.send(message);
      if (n >= 0) return seq;
      if (n !== -ERRNO.EINTR) throw new SystemError(`sendto(${op})`, -n);
    }
  }

  /**
   * The name of the request sent with `seq` (recent ones; older ones may be overwritten).
   *
   * @param seq a sequence number from a reply
   * @returns the request's name, or "request"
   */
  opFor(seq: number): string {
    return this.#ops[seq & (OPS_RING - 1)];
  }

  /**
   * Sends a request and waits for its reply, without blocking the event loop. Other messages that
   * arrive meanwhile are dropped (use it before joining groups).
   *
   * @param message the request (its sequence number is stamped in place)
   * @param op its name
   * @param timeoutMs how long to wait
   * @returns the reply, an ack, or the error reply
   * @throws {Error} when nothing answers within `timeoutMs`
   * @throws {SystemError} when a socket call fails
   */
  async request(
    message: Uint8Array<ArrayBuffer>,
    op: string,
    timeoutMs: number,
  ): Promise<NetlinkReply> {
    const seq = this.send(message, op);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0 || !(await this.#socket.readable(left))) {
        throw new Error(`the kernel did not answer ${op} within ${timeoutMs} ms`);
      }
      const n = this.receive(this.#buffer);
      if (n === -ERRNO.EAGAIN) continue;
      if (n < 0) throw new SystemError(`recv(${op})`, -n);
      for (const m of parseMessages(this.#buffer.subarray(0, n))) {
        if (m.seq !== seq || m.type === NLMSG_DONE) continue;
        if (m.type !== NLMSG_ERROR) {
          return { kind: "reply", message: { ...m, body: m.body.slice() } };
        }
        const e = parseErrorMessage(m);
        if (e.errno === 0) return { kind: "ack" };
        return { kind: "error", error: new NetlinkError(op, e.errno, e.extAckMessage ?? "") };
      }
    }
  }

  /**
   * Receives one pending datagram without blocking (the reactor's drain loop).
   *
   * @param buffer where it goes
   * @returns its length, or `-errno` (`-EAGAIN` when none is pending; EINTR is retried)
   */
  receive(buffer: Uint8Array<ArrayBuffer>): number {
    for (;;) {
      const n = this.#socket.receive(buffer);
      if (n !== -ERRNO.EINTR) return n;
    }
  }

  /**
   * Joins a multicast group.
   *
   * @param group the group id (from the controller)
   * @throws {SystemError} when the socket refuses
   */
  joinGroup(group: number): void {
    this.#socket.joinGroup(group);
  }

  /**
   * Calls `handler` whenever datagrams are pending; it must drain them with {@linkcode receive}.
   *
   * @param reactor the reactor that drives the socket
   * @param handler the drain loop
   */
  watch(reactor: Reactor, handler: () => void): void {
    this.#socket.watch(reactor, handler);
  }

  /** Stops watching and closes the socket. */
  close(): void {
    this.#socket.close();
  }
}

/** A libc netlink socket. */
class LibcNetlinkSocket implements NetlinkSocket {
  readonly portId: number;
  readonly #fd: number;
  readonly #peer: Uint8Array<ArrayBuffer>;
  #reactor: Reactor | null = null;
  #closed = false;

  constructor(fd: number, peerPortId: number) {
    this.#fd = fd;
    this.#peer = sockaddrNl(peerPortId);
    this.portId = netlinkPortId(getsockname(fd));
  }

  send(datagram: Uint8Array<ArrayBuffer>): number {
    return sendto(this.#fd, datagram, this.#peer);
  }

  receive(buffer: Uint8Array<ArrayBuffer>): number {
    return recv(this.#fd, buffer);
  }

  readable(timeoutMs: number): Promise<boolean> {
    return waitReadableAsync(this.#fd, timeoutMs);
  }

  joinGroup(group: number): void {
    setsockoptInt(this.#fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group, "NETLINK_ADD_MEMBERSHIP");
  }

  watch(reactor: Reactor, handler: () => void): void {
    // Priority: the kernel holds its next batch until our ACK (lib/reactor.ts, fairness).
    reactor.add(this.#fd, handler, { priority: true });
    this.#reactor = reactor;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reactor?.remove(this.#fd);
    close(this.#fd);
  }
}

/**
 * Opens a netlink socket (non-blocking, bound, with a large receive buffer and extended acks when
 * the kernel has them) and wraps it in a connection.
 *
 * @param options protocol, peer, receive buffer
 * @returns the connection
 * @throws {SystemError} when the socket cannot be opened or bound
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openNetlink } from "./conn.ts";
 *
 * const conn = openNetlink();
 * assert.ok(conn.portId !== 0);
 * conn.close();
 * ```
 */
export function openNetlink(options: NetlinkOptions = {}): NetlinkConn {
  const fd = socket(AF_NETLINK, SOCK_RAW, options.protocol ?? NETLINK_GENERIC);
  try {
    bind(fd, sockaddrNl(0));
    const size = options.receiveBuffer ?? 8 << 20;
    try {
      setsockoptInt(fd, SOL_SOCKET, SO_RCVBUFFORCE, size, "SO_RCVBUFFORCE");
    } catch {
      setsockoptInt(fd, SOL_SOCKET, SO_RCVBUF, size, "SO_RCVBUF"); // without CAP_NET_ADMIN
    }
    try {
      setsockoptInt(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1, "NETLINK_EXT_ACK");
    } catch {
      // older kernels: error replies without the ext-ack text
    }
    return new NetlinkConn(new LibcNetlinkSocket(fd, options.peerPortId ?? 0));
  } catch (error) {
    close(fd);
    throw error;
  }
}
