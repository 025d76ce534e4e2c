/**
 * The sync network: one UDP socket bound to the multicast group and port (so only the group's
 * traffic arrives), joined on the configured interface, sending to the group with the configured
 * outgoing interface and TTL / hop limit, multicast loopback off: exactly what Jool's C daemon does.
 *
 * What it receives it checks first (the C daemon does not): a datagram is read with recvmsg, so its
 * sender and arrival interface are known, and it is dropped, counted per reason, when it comes
 * from one of this host's own addresses (multicast loop: our own sends, or any local user; the
 * addresses are read at start), when it arrived on another interface than the in interface (when
 * one is set), when its sender is not in the `peers` allow-list (when one is given), or when its
 * sender is over its rate ({@linkcode PEER_RATE}, in bytes: every datagram becomes a JOOLD_ADD).
 * IP_MULTICAST_ALL / IPV6_MULTICAST_ALL are off, so only the groups this socket joined arrive.
 * Without an in interface the group is joined on the default multicast route's interface, perhaps
 * the uplink: the channel's `warnings` say so, for cli.ts to log.
 *
 * @module
 */

import { getAddrInfo } from "../../ffi/addrinfo.ts";
import { getInterfaceAddresses } from "../../ffi/ifaddrs.ts";
import { DatagramReceiver } from "../../ffi/recvmsg.ts";
import { decodeSockaddr, formatAddress } from "../../ffi/sockaddr.ts";
import {
  AF_INET,
  AF_INET6,
  bind,
  close,
  ifNameToIndex,
  IP_ADD_MEMBERSHIP,
  IP_MULTICAST_ALL,
  IP_MULTICAST_IF,
  IP_MULTICAST_LOOP,
  IP_MULTICAST_TTL,
  IP_PKTINFO,
  IPPROTO_IP,
  IPPROTO_IPV6,
  IPV6_ADD_MEMBERSHIP,
  IPV6_MULTICAST_ALL,
  IPV6_MULTICAST_HOPS,
  IPV6_MULTICAST_IF,
  IPV6_MULTICAST_LOOP,
  IPV6_RECVPKTINFO,
  MSG_TRUNC,
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
import { parseIPv4, parseIPv6 } from "../config/address.ts";
import type { NetConfig } from "../config/types.ts";
import { type Counters, createCounters } from "../counters.ts";
import type { Reactor } from "../reactor.ts";
import { KeyedTokenBuckets, type RateLimit } from "../token_bucket.ts";

/**
 * The default rate per sender, in datagram bytes (each datagram becomes one JOOLD_ADD): 4 MB/s,
 * about 100,000 sessions a second in 36-byte records (28,000 nested), and a burst of 4 MB, what
 * the socket's receive buffer holds (a sender may fill it once). A Jool peer
 * sends far less (the lab's fastest sync: 2,600 sessions/s); the audit's forged flood, 1,600
 * sessions a datagram 3,300 times a second, is cut to a twentieth.
 */
export const PEER_RATE: RateLimit = { ratePerSecond: 4 << 20, burst: 4 << 20 };

/** Most senders the rate limiter remembers at once (spoofed sources cost bounded memory). */
export const MAX_SOURCES = 1024;

/** The drops the source checks count: these fields of lib/counters.ts (owner: this channel). */
export interface SourceCheckCounters {
  /** Datagrams from one of this host's own addresses, dropped. */
  netLocalSourceDrops: number;
  /** Datagrams that arrived on another interface than the in interface, dropped. */
  netWrongInterfaceDrops: number;
  /** Datagrams from a sender outside the "peers allowed" list, dropped. */
  netUnknownPeerDrops: number;
  /** Datagrams of a sender over its rate, dropped. */
  netRateLimitedDrops: number;
}

/** How the channel checks what it receives, beyond the configuration file's settings. */
export interface ChannelOptions {
  /**
   * The only senders accepted (IP addresses of the group's family), when given: the net file's
   * "peers allowed" (its key belongs to the configuration).
   */
  readonly peers?: readonly string[];
  /** The rate per sender, in bytes ({@linkcode PEER_RATE}). */
  readonly peerRate?: RateLimit;
  /** The clock of the rate limiter, ms. */
  readonly now?: () => number;
}

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
const PEERS = `"peers allowed"`;

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

  /** Startup warnings for cli.ts to log. */
  readonly warnings: readonly string[];
  /** Where the source checks count their drops (the daemon's counters). */
  readonly drops: SourceCheckCounters;

  readonly #fd: number;
  readonly #group: Uint8Array<ArrayBuffer>;
  readonly #reactor: Reactor;
  readonly #receiver = new DatagramReceiver(MAX_DATAGRAM + 1);
  readonly #local: ReadonlySet<string>;
  readonly #inIndex: number;
  readonly #peers: ReadonlySet<string> | null;
  readonly #buckets: KeyedTokenBuckets;
  readonly #now: () => number;
  #onDatagram: PayloadHandler = () => {};
  #onError: ErrorHandler = () => {};
  #closed = false;

  private constructor(
    fd: number,
    family: 4 | 6,
    group: Uint8Array<ArrayBuffer>,
    reactor: Reactor,
    counters: Counters,
    checks: { local: Set<string>; inIndex: number; peers: Set<string> | null; warnings: string[] },
    options: ChannelOptions,
  ) {
    this.counters = counters;
    this.#fd = fd;
    this.family = family;
    this.#group = group;
    this.#reactor = reactor;
    this.#local = checks.local;
    this.#inIndex = checks.inIndex;
    this.#peers = checks.peers;
    this.warnings = checks.warnings;
    this.drops = counters;
    this.#buckets = new KeyedTokenBuckets(options.peerRate ?? PEER_RATE, MAX_SOURCES);
    this.#now = options.now ?? (() => performance.now());
  }

  /**
   * Opens the socket as the configuration says and starts receiving.
   *
   * @param reactor the reactor that drives the socket
   * @param config the network configuration
   * @param counters the daemon's counters (default: the channel's own)
   * @param options the source checks' allow-list and rate
   * @returns the channel (its `warnings` are for the log)
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
    options: ChannelOptions = {},
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
    const peers = MulticastChannel.#peerSet(family, options.peers);
    const fd = socket(candidate.family, SOCK_DGRAM, 0);
    let checks;
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
      checks = { ...MulticastChannel.#receiveChecks(fd, family, config), peers };
    } catch (error) {
      close(fd);
      throw error;
    }
    const channel = new MulticastChannel(
      fd,
      family,
      candidate.address,
      reactor,
      counters,
      checks,
      options,
    );
    reactor.add(fd, (budget) => channel.#drain(budget));
    return channel;
  }

  static #peerSet(family: 4 | 6, peers: readonly string[] | undefined): Set<string> | null {
    if (peers === undefined) return null;
    return new Set(peers.map((text) => {
      const bytes = family === 4 ? parseIPv4(text) : parseIPv6(text);
      if (bytes === null) {
        throw new NetworkConfigError(
          PEERS,
          `the group is IPv${family}, so every peer must be an IPv${family} address, got "${text}"`,
        );
      }
      return formatAddress(bytes);
    }));
  }

  /**
   * Turns on what the receive checks need (the arrival interface of each datagram; only the
   * groups of this socket) and gathers what they compare with: this host's addresses and the in
   * interface's index.
   */
  static #receiveChecks(
    fd: number,
    family: 4 | 6,
    config: NetConfig,
  ): { local: Set<string>; inIndex: number; warnings: string[] } {
    const warnings: string[] = [];
    if (family === 4) {
      setsockoptInt(fd, IPPROTO_IP, IP_PKTINFO, 1, "IP_PKTINFO");
      setsockoptInt(fd, IPPROTO_IP, IP_MULTICAST_ALL, 0, "IP_MULTICAST_ALL");
    } else {
      setsockoptInt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO");
      try {
        setsockoptInt(fd, IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0, "IPV6_MULTICAST_ALL");
      } catch (error) {
        // Linux < 4.20 lacks it; the socket is bound to the group, which is what matters most.
        warnings.push(`cannot turn IPV6_MULTICAST_ALL off: ${(error as SystemError).code}`);
      }
    }
    const addresses = getInterfaceAddresses();
    const local = new Set(
      addresses.filter((a) => a.family === family).map((a) => formatAddress(a.address)),
    );
    let inIndex = 0;
    if (config.inInterface === undefined) {
      warnings.push(
        `no in interface (--net.dev.in) is set: the group is joined on the interface of the default multicast route, perhaps the uplink, where anyone can send sessions to it; set the sync interface`,
      );
    } else if (family === 6) {
      inIndex = interfaceIndex(IN, config.inInterface);
    } else {
      const own = ipv4(IN, config.inInterface);
      const holder = addresses.find((a) =>
        a.family === 4 && a.address.every((b, i) => b === own[i])
      );
      // The join above succeeded, so some interface holds the address.
      if (holder !== undefined) inIndex = interfaceIndex(IN, holder.name);
    }
    return { local, inIndex, warnings };
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

  /** Stops receiving and closes the socket. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reactor.remove(this.#fd);
    close(this.#fd);
  }

  /** Reads at most `budget` datagrams; true when it stopped for the budget (more may wait). */
  #drain(budget = Infinity): boolean {
    const receiver = this.#receiver;
    for (let read = 0; read < budget; read++) {
      const n = receiver.receive(this.#fd, MSG_TRUNC);
      if (n === -ERRNO.EAGAIN) return false;
      if (n === -ERRNO.EINTR) continue;
      if (n < 0) {
        this.#onError(new SystemError("recvmsg(sync group)", -n));
        return false;
      }
      if (n > MAX_DATAGRAM) {
        this.counters.netTruncatedDatagrams++;
        this.#onError(new Error(`dropped a ${n}-byte datagram from the sync group: too large`));
        continue;
      }
      this.counters.netDatagramsReceived++;
      this.counters.netBytesReceived += n;
      if (!this.#accepts(n)) continue;
      this.#onDatagram(receiver.data.subarray(0, n));
    }
    return true;
  }

  /** The source checks of the datagram just received (`length` bytes); counts what they drop. */
  #accepts(length: number): boolean {
    const source = decodeSockaddr(this.#receiver.from);
    const key = source === null ? "" : formatAddress(source.address);
    if (this.#local.has(key)) {
      this.drops.netLocalSourceDrops++;
      return false;
    }
    if (this.#inIndex !== 0 && this.#receiver.interfaceIndex !== this.#inIndex) {
      this.drops.netWrongInterfaceDrops++;
      return false;
    }
    if (this.#peers !== null && !this.#peers.has(key)) {
      this.drops.netUnknownPeerDrops++;
      return false;
    }
    if (!this.#buckets.take(key, this.#now(), length)) {
      this.drops.netRateLimitedDrops++;
      return false;
    }
    return true;
  }
}
