/**
 * The sync network: one UDP socket bound to the multicast group and port (so only the group's
 * traffic arrives), joined on the configured interface, sending to the group with the configured
 * outgoing interface and TTL / hop limit, multicast loopback off: exactly what Jool's C daemon does.
 *
 * Or, with `"peers"` (ours, for networks without multicast), one UDP socket of the peers' family
 * bound to the port (IPv4 with an in interface: to that address; else the wildcard, IPv6-only),
 * sending each datagram to every peer (unicast, the same bytes), its egress pinned to the out
 * interface (IP_UNICAST_IF / IPV6_UNICAST_IF) when one is set, and accepting datagrams only from
 * the peers' addresses (and the "peers allowed" ones): the same source checks below. One family
 * per socket: the configuration refuses IPv4 peers beside IPv6 ones (lib/config/validate.ts).
 *
 * Every place a datagram goes is a destination (the group, or each peer), named `ADDR:PORT`
 * (`[IPV6]:PORT`): {@linkcode MulticastChannel.send} sends to all of them and, when any fails,
 * throws a {@linkcode SendError} naming each failed destination with the exact bytes, so that a
 * caller retries only those ({@linkcode MulticastChannel.sendTo}); the others got the datagram.
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

import type { SendPlan } from "../secure/sealer.ts";
import { getAddrInfo } from "../../ffi/addrinfo.ts";
import { getInterfaceAddresses } from "../../ffi/ifaddrs.ts";
import { DatagramReceiver } from "../../ffi/recvmsg.ts";
import { decodeSockaddr, formatAddress } from "../../ffi/sockaddr.ts";
import {
  AF_INET,
  AF_INET6,
  bind,
  close,
  getsockname,
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
  IPV6_V6ONLY,
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
import { parseIPv4, parseIPv6, parsePeer } from "../config/address.ts";
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

/** IP_TTL (linux/in.h): the TTL of unicast datagrams. */
const IP_TTL = 2;
/** IP_UNICAST_IF (linux/in.h): the egress interface of unicast datagrams (index, network order). */
const IP_UNICAST_IF = 50;
/** IPV6_UNICAST_HOPS (linux/in6.h): the hop limit of unicast datagrams. */
const IPV6_UNICAST_HOPS = 16;
/** IPV6_UNICAST_IF (linux/in6.h): the egress interface of unicast datagrams (index, network order). */
const IPV6_UNICAST_IF = 76;

/** One destination's send that failed. */
export interface SendFailure {
  /** The destination (`[2001:db8::5]:6464`, or the group's `[ff08::db8:64:64]:6464`). */
  readonly destination: string;
  /** sendto's errno. */
  readonly errno: number;
  /** How messages name it: `the sync group`, or `peer [2001:db8::5]:6464`. */
  readonly what: string;
}

/**
 * A send that failed for some destinations (the others got the datagram): `errno` is the first
 * failure's (EAGAIN / ENOBUFS: no buffer space, try again later), `failures` names each, and
 * `datagram` holds a copy of the exact bytes, to be sent again with `sendTo(datagram, [...])`.
 */
export class SendError extends SystemError {
  /** The bytes that were to be sent (a copy: valid after the call). */
  readonly datagram: Uint8Array<ArrayBuffer>;
  /** Every destination that did not get them, and why. */
  readonly failures: readonly SendFailure[];

  /**
   * Builds the error; its message is the first failure's, and how many others failed.
   *
   * @param call the first failure's call, e.g. `sendto(sync group)` or `sendto(peer [2001:db8::5]:6464)`
   * @param datagram the bytes (copied)
   * @param failures the failed destinations, at least one
   */
  constructor(call: string, datagram: Uint8Array, failures: readonly SendFailure[]) {
    super(call, failures[0].errno);
    this.name = "SendError";
    this.datagram = datagram.slice();
    this.failures = failures;
    if (failures.length > 1) {
      this.message += ` (and ${failures.length - 1} more destinations: ${
        failures.slice(1).map((f) => `${f.destination} ${errnoName(f.errno)}`).join(", ")
      })`;
    }
  }
}

/** What the channel counts per destination (cheap: a few additions per send). */
export interface DestinationStats {
  /** The destination's name (`[2001:db8::5]:6464`). */
  readonly destination: string;
  /** Datagrams sent to it. */
  datagramsSent: number;
  /** Their bytes. */
  bytesSent: number;
  /** Sends to it that failed. */
  sendErrors: number;
  /** Datagrams accepted from its address (unicast peers only: a group has no one address). */
  datagramsReceived: number;
  /** Their bytes. */
  bytesReceived: number;
}

/**
 * The per-peer counters, worded for an operator (the stop summary of a unicast daemon).
 *
 * @param stats {@linkcode MulticastChannel.destinationStats}
 * @returns one line (no `joold:` prefix)
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { peerSummary } from "./multicast.ts";
 *
 * const peer = {
 *   destination: "[2001:db8::5]:6464",
 *   datagramsSent: 3,
 *   bytesSent: 300,
 *   sendErrors: 1,
 *   datagramsReceived: 2,
 *   bytesReceived: 90,
 * };
 * assert.equal(
 *   peerSummary([peer]),
 *   "peers: [2001:db8::5]:6464 sent 3 (300 bytes, 1 failed), received 2 (90 bytes)",
 * );
 * ```
 */
export function peerSummary(stats: readonly DestinationStats[]): string {
  return `peers: ${
    stats.map((p) =>
      `${p.destination} sent ${p.datagramsSent} (${p.bytesSent} bytes, ${p.sendErrors} failed), ` +
      `received ${p.datagramsReceived} (${p.bytesReceived} bytes)`
    ).join("; ")
  }`;
}

/** A destination: its name, encoded sockaddr, and counters. */
interface Destination {
  readonly name: string;
  /** How messages name it (`the sync group`, `peer [2001:db8::5]:6464`). */
  readonly what: string;
  /** The label of its sendto in errors. */
  readonly call: string;
  readonly sockaddr: Uint8Array<ArrayBuffer>;
  readonly stats: DestinationStats;
}

/** A socket set up for the group or for the unicast peers, which the channel is built around. */
interface OpenedSocket {
  readonly fd: number;
  readonly family: 4 | 6;
  readonly destinations: Destination[];
  /** Unicast peers, not a group. */
  readonly unicast: boolean;
  /** What the source checks compare a sender with, and the set-up's warnings for the log. */
  readonly checks: {
    local: Set<string>;
    inIndex: number;
    peers: Set<string> | null;
    warnings: string[];
  };
}

/** `ADDR:PORT`, IPv6 in brackets. */
function destinationName(family: 4 | 6, address: Uint8Array, port: number): string {
  const text = formatAddress(address);
  return family === 6 ? `[${text}]:${port}` : `${text}:${port}`;
}

/** The port of an encoded sockaddr_in / sockaddr_in6 (offset 2, network order). */
function portOf(sockaddr: Uint8Array): number {
  return (sockaddr[2] << 8) | sockaddr[3];
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
const UNICAST = `"peers" (--net.peer)`;

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

function ipv4(option: string, text: string, what: "group" | "peers" = "group"): Uint8Array {
  const bytes = parseIPv4(text);
  if (bytes === null) {
    throw new NetworkConfigError(
      option,
      `the ${
        what === "group" ? "group is" : "peers are"
      } IPv4, so this must be an IPv4 address of the interface, got "${text}"`,
    );
  }
  return bytes;
}

/** The index of the interface holding the IPv4 address `own`. */
function holderIndex(option: string, own: Uint8Array): number {
  const holder = getInterfaceAddresses().find((a) =>
    a.family === 4 && a.address.every((b, i) => b === own[i])
  );
  if (holder === undefined) {
    throw new NetworkConfigError(
      option,
      `${
        formatAddress(own)
      } is not an address of any interface in this network namespace (see ip address)`,
    );
  }
  return interfaceIndex(option, holder.name);
}

/**
 * Zeroed counters of one destination.
 *
 * @param destination its name
 * @returns the counters
 */
export function newStats(destination: string): DestinationStats {
  return {
    destination,
    datagramsSent: 0,
    bytesSent: 0,
    sendErrors: 0,
    datagramsReceived: 0,
    bytesReceived: 0,
  };
}

/** sin6_scope_id of an encoded sockaddr_in6 (offset 24, host byte order). */
function scopeId(address: Uint8Array): number {
  return address.length >= 28
    ? new DataView(address.buffer, address.byteOffset).getUint32(24, true)
    : 0;
}

/**
 * The sync channel: the multicast group (the C daemon's), or the unicast peers (`"peers"`). Its
 * name is the older of the two.
 */
export class MulticastChannel implements NetworkChannel {
  /** The daemon's counters; this channel owns the net* fields it increments (lib/counters.ts). */
  readonly counters: Counters;
  /** The family of the group (or of the peers): 4 or 6. */
  readonly family: 4 | 6;
  /** Whether it sends to unicast peers rather than to a group. */
  readonly unicast: boolean;

  /** Startup warnings for cli.ts to log. */
  readonly warnings: readonly string[];
  /** Where the source checks count their drops (the daemon's counters). */
  readonly drops: SourceCheckCounters;

  readonly #fd: number;
  readonly #destinations: readonly Destination[];
  /** Unicast: each peer's counters, by address (what the source checks know of a sender). */
  readonly #byAddress: ReadonlyMap<string, DestinationStats>;
  readonly #reactor: Reactor;
  readonly #receiver = new DatagramReceiver(MAX_DATAGRAM + 1);
  readonly #local: ReadonlySet<string>;
  readonly #inIndex: number;
  readonly #peers: ReadonlySet<string> | null;
  readonly #buckets: KeyedTokenBuckets;
  readonly #now: () => number;
  #onDatagram: PayloadHandler = () => {};
  /** The sender's address of the datagram just received (the secure channel names it). */
  #source = "";
  /** The previous datagram's sockaddr (up to a sockaddr_in6), its length (-1: none) and text. */
  readonly #lastFrom = new Uint8Array(28);
  #lastFromLength = -1;
  #lastKey = "";
  #onError: ErrorHandler = () => {};
  #closed = false;

  private constructor(
    opened: OpenedSocket,
    reactor: Reactor,
    counters: Counters,
    options: ChannelOptions,
  ) {
    const { fd, family, destinations, unicast, checks } = opened;
    this.counters = counters;
    this.#fd = fd;
    this.family = family;
    this.unicast = unicast;
    this.#destinations = destinations;
    this.#byAddress = new Map(
      unicast
        ? destinations.map((d) => [formatAddress(decodeSockaddr(d.sockaddr)!.address), d.stats])
        : [],
    );
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
   * Opens the socket as the configuration says (the group, or the unicast peers when
   * `config.peers` is set) and starts receiving.
   *
   * @param reactor the reactor that drives the socket
   * @param config the network configuration
   * @param counters the daemon's counters (default: the channel's own)
   * @param options the source checks' allow-list and rate
   * @returns the channel (its `warnings` are for the log)
   * @throws {NetworkConfigError} naming the option at fault
   * @throws {SystemError} when a socket call fails otherwise
   * @example An interface that does not exist is an error naming the option
   * ```ts
   * import assert from "node:assert/strict";
   * import { Reactor } from "../reactor.ts";
   * import { MulticastChannel, NetworkConfigError } from "./multicast.ts";
   *
   * const reactor = new Reactor();
   * const config = {
   *   multicastAddress: "ff08::db8:64:64",
   *   multicastPort: "6464",
   *   inInterface: "eth9-missing",
   *   outInterface: "eth9-missing",
   *   ttl: 1,
   *   reuseAddress: true,
   * };
   * assert.throws(() => MulticastChannel.open(reactor, config), NetworkConfigError);
   * reactor.stop();
   * ```
   */
  static open(
    reactor: Reactor,
    config: NetConfig,
    counters: Counters = createCounters(),
    options: ChannelOptions = {},
  ): MulticastChannel {
    const opened = config.peers === undefined
      ? MulticastChannel.#openGroup(config, options)
      : MulticastChannel.#openPeers(config, config.peers, options);
    const channel = new MulticastChannel(opened, reactor, counters, options);
    reactor.add(opened.fd, (budget) => channel.#drain(budget));
    return channel;
  }

  /**
   * A throwaway channel over loopback, for the start-up warm-up (lib/warmup.ts): a socket of
   * `family` bound to 127.0.0.1 or ::1 (the kernel picks the port) that sends to itself, with the
   * sync socket's receive path (recvmsg with the arrival interface, the interface check, the
   * rate limit; no local-source check, so that its own datagrams come back as a peer's would).
   * Not watched by the reactor: the warm-up reads it with {@linkcode MulticastChannel.receiveNow}.
   *
   * @param family the real sync socket's family (the same code paths)
   * @param reactor the daemon's reactor (only for close and a send's wait for buffer space)
   * @param counters where it counts (the warm-up's own, never the daemon's)
   * @returns the channel
   * @throws {SystemError} when loopback is not usable (down, or no ::1)
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { createCounters } from "../counters.ts";
   * import { Reactor } from "../reactor.ts";
   * import { MulticastChannel } from "./multicast.ts";
   *
   * const counters = createCounters();
   * const channel = MulticastChannel.loopback(4, new Reactor(), counters);
   * const got: number[][] = [];
   * channel.onDatagram((payload) => got.push([...payload]));
   * channel.send(Uint8Array.of(1, 2, 3));
   * while (got.length === 0) channel.receiveNow();
   * assert.deepEqual(got, [[1, 2, 3]]);
   * assert.equal(counters.netDatagramsSent, 1);
   * channel.close();
   * ```
   */
  static loopback(family: 4 | 6, reactor: Reactor, counters: Counters): MulticastChannel {
    const [{ address }] = getAddrInfo(family === 4 ? "127.0.0.1" : "::1", "0");
    const fd = socket(family === 4 ? AF_INET : AF_INET6, SOCK_DGRAM, 0);
    let self;
    try {
      bind(fd, address);
      MulticastChannel.#pktinfo(fd, family);
      self = getsockname(fd);
    } catch (error) {
      close(fd);
      throw error;
    }
    const name = destinationName(family, decodeSockaddr(self)!.address, portOf(self));
    const destination: Destination = {
      name,
      what: "loopback (warm-up)",
      call: "sendto(loopback)",
      sockaddr: self,
      stats: newStats(name),
    };
    const checks = {
      local: new Set<string>(),
      inIndex: ifNameToIndex("lo"),
      peers: null,
      warnings: [],
    };
    return new MulticastChannel(
      { fd, family, destinations: [destination], unicast: false, checks },
      reactor,
      counters,
      {},
    );
  }

  /**
   * Reads what waits on the socket now, as the reactor would when it is readable (for a channel
   * the reactor does not watch: {@linkcode MulticastChannel.loopback}'s).
   *
   * @param budget at most this many datagrams
   * @returns true when it stopped for the budget
   */
  receiveNow(budget = Infinity): boolean {
    return this.#drain(budget);
  }

  /** The group's socket: bound to the group, sending to it (see the module's comment). */
  static #openGroup(config: NetConfig, options: ChannelOptions): OpenedSocket {
    if (config.multicastAddress === undefined) {
      throw new NetworkConfigError(ADDR, `neither a multicast address nor peers are set`);
    }
    const groupText = config.multicastAddress;
    let candidates;
    try {
      candidates = getAddrInfo(groupText, config.multicastPort);
    } catch (error) {
      throw new NetworkConfigError(
        /^[0-9]+$/.test(config.multicastPort) ? ADDR : PORT,
        (error as Error).message,
        { cause: error },
      );
    }
    const candidate = candidates.find((c) => c.family === AF_INET || c.family === AF_INET6);
    if (candidate === undefined) {
      throw new NetworkConfigError(ADDR, `${groupText} resolves to no IP address`);
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
    const peers = MulticastChannel.#peerSet(family, options.peers, false);
    const fd = socket(candidate.family, SOCK_DGRAM, 0);
    let checks;
    try {
      MulticastChannel.#buffers(fd, config);
      try {
        bind(fd, candidate.address);
      } catch (error) {
        const e = error as SystemError;
        throw new NetworkConfigError(
          `${ADDR} and ${PORT}`,
          `cannot bind ${groupText} port ${config.multicastPort}: ${e.code}${
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
      checks = { ...MulticastChannel.#receiveChecks(fd, family, config, false), peers };
    } catch (error) {
      close(fd);
      throw error;
    }
    const group = decodeSockaddr(candidate.address)!;
    const name = destinationName(family, group.address, group.port);
    const destination: Destination = {
      name,
      what: "the sync group",
      call: "sendto(sync group)",
      sockaddr: candidate.address,
      stats: newStats(name),
    };
    return { fd, family, destinations: [destination], unicast: false, checks };
  }

  /** The unicast socket: bound to the port, sending to each peer (see the module's comment). */
  static #openPeers(
    config: NetConfig,
    list: readonly string[],
    options: ChannelOptions,
  ): OpenedSocket {
    const parsed = list.map((text) => {
      const peer = parsePeer(text);
      if (peer === null) {
        throw new NetworkConfigError(UNICAST, `"${text}" is not an address or ADDR:PORT`);
      }
      return { text, ...peer };
    });
    if (parsed.length === 0) throw new NetworkConfigError(UNICAST, "lists no peer");
    const family = parsed[0].family;
    const odd = parsed.find((p) => p.family !== family);
    if (odd !== undefined) {
      throw new NetworkConfigError(
        UNICAST,
        `"${odd.text}" is IPv${odd.family}, the first peer IPv${family}: the peers share one socket of one family`,
      );
    }
    const outIndex = config.outInterface === undefined
      ? 0
      : family === 6
      ? interfaceIndex(OUT, config.outInterface)
      : holderIndex(OUT, ipv4(OUT, config.outInterface, "peers"));
    const destinations = parsed.map((peer): Destination => {
      let sockaddr: Uint8Array<ArrayBuffer>;
      try {
        [{ address: sockaddr }] = getAddrInfo(peer.address, peer.port ?? config.multicastPort);
      } catch (error) {
        throw new NetworkConfigError(
          peer.port === undefined ? PORT : UNICAST,
          (error as Error).message,
          { cause: error },
        );
      }
      const linkLocal = family === 6 && peer.bytes[0] === 0xfe && (peer.bytes[1] & 0xc0) === 0x80;
      if (linkLocal) {
        if (outIndex === 0) {
          throw new NetworkConfigError(
            UNICAST,
            `"${peer.text}" is link-local: set the out interface (--net.dev.out), its link`,
          );
        }
        new DataView(sockaddr.buffer).setUint32(24, outIndex, true); // sin6_scope_id, host order
      }
      const name = destinationName(family, peer.bytes, portOf(sockaddr));
      return {
        name,
        what: `peer ${name}`,
        call: `sendto(peer ${name})`,
        sockaddr,
        stats: newStats(name),
      };
    });
    const allowed = MulticastChannel.#peerSet(family, [
      ...parsed.map((p) => p.address),
      ...options.peers ?? [],
    ], true);
    const own = family === 4 && config.inInterface !== undefined
      ? ipv4(IN, config.inInterface, "peers")
      : family === 4
      ? new Uint8Array(4)
      : new Uint8Array(16);
    let local: Uint8Array<ArrayBuffer>;
    try {
      [{ address: local }] = getAddrInfo(formatAddress(own), config.multicastPort);
    } catch (error) {
      throw new NetworkConfigError(PORT, (error as Error).message, { cause: error });
    }
    const fd = socket(family === 4 ? AF_INET : AF_INET6, SOCK_DGRAM, 0);
    let checks;
    try {
      // IPv6 only: an IPv4-mapped sender is never a listed peer (the peers are of one family).
      if (family === 6) setsockoptInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY");
      MulticastChannel.#buffers(fd, config);
      try {
        bind(fd, local);
      } catch (error) {
        const e = error as SystemError;
        throw new NetworkConfigError(
          config.inInterface !== undefined && family === 4 ? `${IN} and ${PORT}` : PORT,
          `cannot bind ${formatAddress(own)} port ${config.multicastPort}: ${e.code}${
            e.errno === ERRNO.EADDRINUSE
              ? " (another process holds it: run joold with reuseaddr, or stop the other daemon)"
              : e.errno === ERRNO.EADDRNOTAVAIL
              ? ` (${config.inInterface} is not an address of any interface in this network namespace)`
              : ""
          }`,
          { cause: error },
        );
      }
      // IP_UNICAST_IF and IPV6_UNICAST_IF both take the index in network byte order
      // (net/ipv4/ip_sockglue.c, net/ipv6/ipv6_sockglue.c: ntohl).
      const be = new DataView(new ArrayBuffer(4));
      be.setUint32(0, outIndex, false);
      const index = be.getInt32(0, true);
      if (family === 4) {
        setsockoptInt(fd, IPPROTO_IP, IP_TTL, config.ttl, "IP_TTL");
        if (outIndex !== 0) setsockoptInt(fd, IPPROTO_IP, IP_UNICAST_IF, index, "IP_UNICAST_IF");
      } else {
        setsockoptInt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, config.ttl, "IPV6_UNICAST_HOPS");
        if (outIndex !== 0) {
          setsockoptInt(fd, IPPROTO_IPV6, IPV6_UNICAST_IF, index, "IPV6_UNICAST_IF");
        }
      }
      const found = MulticastChannel.#receiveChecks(fd, family, config, true);
      checks = { ...found, peers: allowed };
      const self = parsed.find((p) => found.local.has(formatAddress(p.bytes)));
      if (self !== undefined) {
        throw new NetworkConfigError(
          UNICAST,
          `"${self.text}" is an address of this host: a translator does not sync with itself; list the OTHER translators' addresses`,
        );
      }
    } catch (error) {
      close(fd);
      throw error;
    }
    return { fd, family, destinations, unicast: true, checks };
  }

  /** SO_REUSEADDR as configured, and a receive buffer that holds a burst. */
  static #buffers(fd: number, config: NetConfig): void {
    if (config.reuseAddress) setsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
    try {
      setsockoptInt(fd, SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20, "SO_RCVBUFFORCE");
    } catch {
      setsockoptInt(fd, SOL_SOCKET, SO_RCVBUF, 4 << 20, "SO_RCVBUF");
    }
  }

  static #peerSet(
    family: 4 | 6,
    peers: readonly string[] | undefined,
    unicast: boolean,
  ): Set<string> | null {
    if (peers === undefined) return null;
    return new Set(peers.map((text) => {
      const bytes = family === 4 ? parseIPv4(text) : parseIPv6(text);
      if (bytes === null) {
        throw new NetworkConfigError(
          PEERS,
          `the ${
            unicast ? "peers are" : "group is"
          } IPv${family}, so every peer must be an IPv${family} address, got "${text}"`,
        );
      }
      return formatAddress(bytes);
    }));
  }

  /** Each datagram's arrival interface, for the receive checks (IP_PKTINFO / IPV6_RECVPKTINFO). */
  static #pktinfo(fd: number, family: 4 | 6): void {
    if (family === 4) setsockoptInt(fd, IPPROTO_IP, IP_PKTINFO, 1, "IP_PKTINFO");
    else setsockoptInt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO");
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
    unicast: boolean,
  ): { local: Set<string>; inIndex: number; warnings: string[] } {
    const warnings: string[] = [];
    MulticastChannel.#pktinfo(fd, family);
    if (family === 4) {
      setsockoptInt(fd, IPPROTO_IP, IP_MULTICAST_ALL, 0, "IP_MULTICAST_ALL");
    } else {
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
    if (config.inInterface === undefined && !unicast) {
      // (Unicast: only the listed peers are accepted, whatever the interface.)
      warnings.push(
        `no in interface (--net.dev.in) is set: the group is joined on the interface of the default multicast route, perhaps the uplink, where anyone can send sessions to it; set the sync interface`,
      );
    } else if (config.inInterface === undefined) {
      // No interface check.
    } else if (family === 6) {
      inIndex = interfaceIndex(IN, config.inInterface);
    } else {
      const own = ipv4(IN, config.inInterface, unicast ? "peers" : "group");
      const holder = addresses.find((a) =>
        a.family === 4 && a.address.every((b, i) => b === own[i])
      );
      // The join (or the bind) above succeeded, so some interface holds the address.
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
   * The destinations every datagram goes to, by name: the group's `[ff08::db8:64:64]:6464`, or
   * each peer's (`[2001:db8::5]:6464`, `192.0.2.5:6464`), in the configuration's order.
   */
  get destinations(): readonly string[] {
    return this.#destinations.map((d) => d.name);
  }

  /**
   * Where to send a reply to the sender of a received datagram (its `from` address, as
   * `onDatagram` passes it): with unicast peers the destination of the peer with that address;
   * with a group the group itself (a member listens on the group, not on its own address).
   *
   * @param from the sender's address (`2001:db8::5`)
   * @returns a name of {@linkcode destinations}, or undefined for an address that is no peer
   */
  destinationOf(from: string): string | undefined {
    if (!this.unicast) return this.#destinations[0].name;
    return this.#byAddress.has(from)
      ? this.#destinations.find((d) => d.stats === this.#byAddress.get(from))?.name
      : undefined;
  }

  /**
   * What was sent to (and, unicast, received from) each destination. The network counters of
   * lib/counters.ts are the sums: netDatagramsSent counts one per destination a datagram reached.
   *
   * @returns one live entry per destination
   */
  destinationStats(): readonly DestinationStats[] {
    return this.#destinations.map((d) => d.stats);
  }

  /**
   * Sends one datagram to every destination (the group, or each peer). A destination that fails
   * does not keep the datagram from the others.
   *
   * @param payload the bytes
   * @throws {SendError} naming the destinations that did not get it (the others did), with the
   *   bytes to send them again
   */
  send(payload: Uint8Array<ArrayBuffer>): void {
    this.sendTo(payload, null);
  }

  /**
   * Sends the bytes as they are to some destinations: a {@linkcode SendError}'s `datagram` to its
   * failed destinations (a retry), or a reply meant for some peers only.
   *
   * @param datagram the bytes
   * @param to names of {@linkcode destinations} (null: every one)
   * @throws {RangeError} for a name that is not a destination
   * @throws {SendError} naming those that did not get it
   */
  sendTo(datagram: Uint8Array, to: readonly string[] | null): void {
    if (to !== null) {
      const unknown = to.find((name) => !this.#destinations.some((d) => d.name === name));
      if (unknown !== undefined) throw new RangeError(`${unknown} is not a sync destination`);
    }
    let failures: SendFailure[] | undefined;
    let call = "";
    for (const d of this.#destinations) {
      if (to !== null && !to.includes(d.name)) continue;
      const errno = this.#sendOne(datagram as Uint8Array<ArrayBuffer>, d);
      if (errno === 0) continue;
      if (failures === undefined) {
        failures = [];
        call = d.call;
      }
      failures.push({ destination: d.name, errno, what: d.what });
    }
    if (failures !== undefined) throw new SendError(call, datagram, failures);
  }

  /**
   * The socket and each destination's address and counters: what a sealing thread
   * (lib/secure/sealer.ts) sends to, from this socket. Its sends are added to these counters by
   * that thread's owner.
   *
   * @returns the socket and destinations
   */
  sendPlan(): SendPlan {
    return {
      fd: this.#fd,
      targets: this.#destinations.map((d) => ({ sockaddr: d.sockaddr, stats: d.stats })),
    };
  }

  /** One sendto; 0, or its errno (counted). */
  #sendOne(datagram: Uint8Array<ArrayBuffer>, d: Destination): number {
    for (;;) {
      const n = sendto(this.#fd, datagram, d.sockaddr);
      if (n >= 0) {
        this.counters.netDatagramsSent++;
        this.counters.netBytesSent += n;
        d.stats.datagramsSent++;
        d.stats.bytesSent += n;
        return 0;
      }
      if (n === -ERRNO.EINTR) continue;
      this.counters.netSendErrors++;
      d.stats.sendErrors++;
      return -n;
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
      this.#onDatagram(receiver.data.subarray(0, n), this.#source);
    }
    return true;
  }

  /**
   * The sender's address as text, for the checks below. A sync socket hears one to a few peers,
   * so the previous datagram's sockaddr and text are kept: the same bytes give the same text
   * without decoding and formatting them again (an IPv6 address's text per datagram was a tenth
   * of a receiving daemon's CPU in the lab's bulk).
   */
  #sourceKey(): string {
    const from = this.#receiver.from;
    const last = this.#lastFrom;
    if (from.length === this.#lastFromLength) {
      let same = true;
      for (let i = 0; i < from.length; i++) {
        if (from[i] !== last[i]) {
          same = false;
          break;
        }
      }
      if (same) return this.#lastKey;
    }
    const source = decodeSockaddr(from);
    const key = source === null ? "" : formatAddress(source.address);
    if (from.length <= last.length) {
      last.set(from);
      this.#lastFromLength = from.length;
      this.#lastKey = key;
    }
    return key;
  }

  /** The source checks of the datagram just received (`length` bytes); counts what they drop. */
  #accepts(length: number): boolean {
    const key = this.#sourceKey();
    this.#source = key;
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
    const peer = this.#byAddress.get(key);
    if (peer !== undefined) {
      peer.datagramsReceived++;
      peer.bytesReceived += length;
    }
    return true;
  }
}
