/**
 * The sync network: one UDP socket bound to the multicast group and port (so only the group's
 * traffic arrives), joined on the configured interface, sending to the group with the configured
 * outgoing interface and TTL / hop limit, multicast loopback off: exactly what Jool's C daemon does.
 *
 * @module
 */

import { getAddrInfo } from "../../ffi/addrinfo.ts";
import {
  AF_INET,
  AF_INET6,
  bind,
  close,
  ifNameToIndex,
  IP_ADD_MEMBERSHIP,
  IP_MULTICAST_IF,
  IP_MULTICAST_LOOP,
  IP_MULTICAST_TTL,
  IPPROTO_IP,
  IPPROTO_IPV6,
  IPV6_ADD_MEMBERSHIP,
  IPV6_MULTICAST_HOPS,
  IPV6_MULTICAST_IF,
  IPV6_MULTICAST_LOOP,
  MSG_TRUNC,
  recv,
  sendto,
  setsockoptBytes,
  setsockoptInt,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_REUSEADDR,
  SOCK_DGRAM,
  socket,
  SOL_SOCKET,
} from "../../ffi/libc.ts";
import { ERRNO, errnoName, SystemError } from "../../ffi/errno.ts";
import type { ErrorHandler, NetworkChannel, PayloadHandler } from "../channel.ts";
import { parseIPv4 } from "../config/address.ts";
import type { NetConfig } from "../config/types.ts";
import type { Reactor } from "../reactor.ts";
import { type Counters, createCounters } from "../counters.ts";

/** The largest datagram the channel receives whole. */
export const MAX_DATAGRAM = 65535;

/** A startup problem of the network socket, naming the option (file key and flag). */
export class NetworkConfigError extends Error {
  /**
   * Builds the error: `option: problem`.
   *
   * @param option the file key and flag, e.g. `"in interface" (--net.dev.in)`
   * @param problem what is wrong
   * @param options error options (`cause`)
   */
  constructor(option: string, problem: string, options?: ErrorOptions) {
    super(`${option}: ${problem}`, options);
    this.name = "NetworkConfigError";
  }
}

const IN = `"in interface" (--net.dev.in)`;
const OUT = `"out interface" (--net.dev.out)`;
const PORT = `"multicast port" (--net.mcast.port)`;
const ADDR = `"multicast address" (--net.mcast.addr)`;

function interfaceIndex(option: string, name: string): number {
  const index = ifNameToIndex(name);
  if (index === 0) {
    throw new NetworkConfigError(
      option,
      `no interface named "${name}" in this network namespace (see ip link)`,
    );
  }
  return index;
}

function ipv4(option: string, text: string): Uint8Array {
  const bytes = parseIPv4(text);
  if (bytes === null) {
    throw new NetworkConfigError(
      option,
      `the group is IPv4, so this must be an IPv4 address of the interface, got "${text}"`,
    );
  }
  return bytes;
}

/** sin6_scope_id of an encoded sockaddr_in6 (offset 24, host byte order). */
function scopeId(address: Uint8Array): number {
  return address.length >= 28
    ? new DataView(address.buffer, address.byteOffset).getUint32(24, true)
    : 0;
}

/** The multicast channel. */
export class MulticastChannel implements NetworkChannel {
  /** The daemon's counters; this channel owns the net* fields it increments (lib/counters.ts). */
  readonly counters: Counters;
  /** The family of the group: 4 or 6. */
  readonly family: 4 | 6;

  readonly #fd: number;
  readonly #group: Uint8Array<ArrayBuffer>;
  readonly #reactor: Reactor;
  readonly #buffer = new Uint8Array(MAX_DATAGRAM + 1);
  #onDatagram: PayloadHandler = () => {};
  #onError: ErrorHandler = () => {};
  #closed = false;

  private constructor(
    fd: number,
    family: 4 | 6,
    group: Uint8Array<ArrayBuffer>,
    reactor: Reactor,
    counters: Counters,
  ) {
    this.counters = counters;
    this.#fd = fd;
    this.family = family;
    this.#group = group;
    this.#reactor = reactor;
  }

  /**
   * Opens the socket as the configuration says and starts receiving.
   *
   * @param reactor the reactor that drives the socket
   * @param config the network configuration
   * @param counters the daemon's counters (default: the channel's own)
   * @returns the channel
   * @throws {NetworkConfigError} naming the option at fault
   * @throws {SystemError} when a socket call fails otherwise
   * @example
   * ```ts
   * const net = MulticastChannel.open(reactor, config.net!);
   * ```
   */
  static open(
    reactor: Reactor,
    config: NetConfig,
    counters: Counters = createCounters(),
  ): MulticastChannel {
    let candidates;
    try {
      candidates = getAddrInfo(config.multicastAddress, config.multicastPort);
    } catch (error) {
      throw new NetworkConfigError(
        /^[0-9]+$/.test(config.multicastPort) ? ADDR : PORT,
        (error as Error).message,
        { cause: error },
      );
    }
    const candidate = candidates.find((c) => c.family === AF_INET || c.family === AF_INET6);
    if (candidate === undefined) {
      throw new NetworkConfigError(ADDR, `${config.multicastAddress} resolves to no IP address`);
    }
    const family = candidate.family === AF_INET ? 4 : 6;
    if (
      family === 6 && config.inInterface !== undefined && scopeId(candidate.address) === 0 &&
      [1, 2].includes(candidate.address[9] & 0x0f) // group scope nibble (address at offset 8)
    ) {
      // Interface- and link-local groups (ff01::/16, ff02::/16) cannot be bound without a scope
      // (the kernel says EINVAL): scope the bind (and the sends) to the in interface.
      // sin6_scope_id: offset 24, host byte order (little-endian here).
      new DataView(candidate.address.buffer, candidate.address.byteOffset).setUint32(
        24,
        interfaceIndex(IN, config.inInterface),
        true,
      );
    }
    const fd = socket(candidate.family, SOCK_DGRAM, 0);
    try {
      if (config.reuseAddress) setsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
      try {
        setsockoptInt(fd, SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20, "SO_RCVBUFFORCE");
      } catch {
        setsockoptInt(fd, SOL_SOCKET, SO_RCVBUF, 4 << 20, "SO_RCVBUF");
      }
      try {
        bind(fd, candidate.address);
      } catch (error) {
        const e = error as SystemError;
        throw new NetworkConfigError(
          `${ADDR} and ${PORT}`,
          `cannot bind ${config.multicastAddress} port ${config.multicastPort}: ${e.code}${
            e.errno === ERRNO.EADDRINUSE
              ? " (another process holds it: run joold with reuseaddr, or stop the other daemon)"
              : e.errno === ERRNO.EINVAL && family === 6 && config.inInterface === undefined
              ? " (a link-local or interface-local group needs the in interface: set --net.dev.in)"
              : ""
          }`,
          { cause: error },
        );
      }
      if (family === 4) MulticastChannel.#setup4(fd, candidate.address, config);
      else MulticastChannel.#setup6(fd, candidate.address, config);
    } catch (error) {
      close(fd);
      throw error;
    }
    const channel = new MulticastChannel(fd, family, candidate.address, reactor, counters);
    reactor.add(fd, () => channel.#drain());
    return channel;
  }

  static #setup4(fd: number, group: Uint8Array, config: NetConfig): void {
    const mreq = new Uint8Array(8);
    mreq.set(group.subarray(4, 8), 0);
    if (config.inInterface !== undefined) mreq.set(ipv4(IN, config.inInterface), 4);
    try {
      setsockoptBytes(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, mreq, "IP_ADD_MEMBERSHIP");
    } catch (error) {
      const e = error as SystemError;
      throw new NetworkConfigError(
        config.inInterface !== undefined ? IN : ADDR,
        config.inInterface !== undefined && e.errno === ERRNO.ENODEV
          ? `${config.inInterface} is not an address of any interface in this network namespace`
          : `cannot join the group: ${e.code}`,
        { cause: error },
      );
    }
    setsockoptInt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, 0, "IP_MULTICAST_LOOP");
    setsockoptInt(fd, IPPROTO_IP, IP_MULTICAST_TTL, config.ttl, "IP_MULTICAST_TTL");
    if (config.outInterface !== undefined) {
      const address = new Uint8Array(ipv4(OUT, config.outInterface));
      try {
        setsockoptBytes(fd, IPPROTO_IP, IP_MULTICAST_IF, address, "IP_MULTICAST_IF");
      } catch (error) {
        throw new NetworkConfigError(
          OUT,
          `${config.outInterface} is not an address of any interface in this network namespace (${
            errnoName((error as SystemError).errno)
          })`,
          { cause: error },
        );
      }
    }
  }

  static #setup6(fd: number, group: Uint8Array, config: NetConfig): void {
    const mreq = new Uint8Array(20);
    mreq.set(group.subarray(8, 24), 0);
    if (config.inInterface !== undefined) {
      new DataView(mreq.buffer).setUint32(16, interfaceIndex(IN, config.inInterface), true);
    }
    try {
      setsockoptBytes(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, mreq, "IPV6_ADD_MEMBERSHIP");
    } catch (error) {
      throw new NetworkConfigError(
        config.inInterface !== undefined ? IN : ADDR,
        `cannot join the group: ${(error as SystemError).code}${
          config.inInterface === undefined
            ? " (no default multicast route: set the in interface)"
            : ""
        }`,
        { cause: error },
      );
    }
    setsockoptInt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0, "IPV6_MULTICAST_LOOP");
    setsockoptInt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, config.ttl, "IPV6_MULTICAST_HOPS");
    if (config.outInterface !== undefined) {
      const index = interfaceIndex(OUT, config.outInterface);
      setsockoptInt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, index, "IPV6_MULTICAST_IF");
    }
  }

  /**
   * Sets the handler of the group's datagrams.
   *
   * @param handler receives each datagram (a view)
   */
  onDatagram(handler: PayloadHandler): void {
    this.#onDatagram = handler;
  }

  /**
   * Sets the handler of receive errors.
   *
   * @param handler receives the error
   */
  onError(handler: ErrorHandler): void {
    this.#onError = handler;
  }

  /**
   * Sends one datagram to the group.
   *
   * @param payload the bytes
   * @throws {SystemError} when the send fails
   */
  send(payload: Uint8Array<ArrayBuffer>): void {
    for (;;) {
      const n = sendto(this.#fd, payload, this.#group);
      if (n >= 0) {
        this.counters.netDatagramsSent++;
        this.counters.netBytesSent += n;
        return;
      }
      if (n === -ERRNO.EINTR) continue;
      this.counters.netSendErrors++;
      throw new SystemError("sendto(sync group)", -n);
    }
  }

  /**
   * Calls `handler` once when the socket can take a datagram again (after a send failed with
   * EAGAIN or ENOBUFS).
   *
   * @param handler called once, from the reactor
   */
  whenWritable(handler: () => void): void {
    if (!this.#closed) this.#reactor.whenWritable(this.#fd, handler);
  }

  /** Stops receiving and closes the socket. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reactor.remove(this.#fd);
    close(this.#fd);
  }

  #drain(): void {
    for (;;) {
      const n = recv(this.#fd, this.#buffer, MSG_TRUNC);
      if (n === -ERRNO.EAGAIN) return;
      if (n === -ERRNO.EINTR) continue;
      if (n < 0) {
        this.#onError(new SystemError("recv(sync group)", -n));
        return;
      }
      if (n > MAX_DATAGRAM) {
        this.counters.netTruncatedDatagrams++;
        this.#onError(new Error(`dropped a ${n}-byte datagram from the sync group: too large`));
        continue;
      }
      this.counters.netDatagramsReceived++;
      this.counters.netBytesReceived += n;
      this.#onDatagram(this.#buffer.subarray(0, n));
    }
  }
}
