/**
 * The stats server: a UDP datagram it receives is answered with the counters
 * ({@linkcode formatStats}). It binds every address getaddrinfo yields for (address, port); "::"
 * has IPV6_V6ONLY off, so it serves IPv4 too.
 *
 * Unlike the C daemon it does not answer everything (a UDP service that answers anyone is a
 * reflector: a request of 0 bytes gets 105 to 220 back, to whatever source the request claims).
 * {@linkcode replyPolicy} refuses datagrams that cannot be requests: stats replies (so two stats
 * servers never ping-pong, whatever a spoofed datagram starts), datagrams longer than
 * {@linkcode MAX_REQUEST}, datagrams from privileged ports (< 1024: the services other reflectors
 * run) and from the stats port itself (another joold's stats socket). Replies are rate limited as
 * a whole ({@linkcode REPLY_LIMIT}), and a wildcard address comes with a warning for cli.ts.
 *
 * @module
 */

import { AI_PASSIVE, getAddrInfo } from "../../ffi/addrinfo.ts";
import {
  AF_INET6,
  bind,
  close,
  getsockname,
  IPPROTO_IPV6,
  IPV6_V6ONLY,
  recvfrom,
  sendto,
  setsockoptInt,
  SOCK_DGRAM,
  socket,
} from "../../ffi/libc.ts";
import { ERRNO, type SystemError } from "../../ffi/errno.ts";
import { decodeSockaddr } from "../../ffi/sockaddr.ts";
import type { StatsConfig } from "../config/types.ts";
import type { Reactor } from "../reactor.ts";
import { type RateLimit, TokenBucket } from "../token_bucket.ts";
import type { Counters } from "../counters.ts";
import { formatStats } from "./reply.ts";

/**
 * The longest datagram answered. Requests carry nothing (`nc -u`, a newline, a word); a stats
 * reply is at least 105 bytes, so whatever is longer than this is not a request.
 */
export const MAX_REQUEST = 64;

/** Every reply starts so ({@linkcode formatStats}). */
const REPLY_PREFIX = new TextEncoder().encode("KERNEL_SENT_PKTS,");

/** The rate of replies, all sources together: plenty for monitoring, little for a reflector. */
export const REPLY_LIMIT: RateLimit = { ratePerSecond: 100, burst: 20 };

/** Why a datagram is not answered. */
export type StatsDrop = "notRequest" | "privilegedPort" | "statsPort" | "rateLimited";

/**
 * Whether a datagram gets a reply (the rate limit aside): not when it cannot be a request.
 *
 * @param datagram the bytes received (at least the first {@linkcode MAX_REQUEST} + 1)
 * @param length the datagram's real length (recvfrom with MSG_TRUNC)
 * @param fromPort the sender's port
 * @param statsPort the port the stats server listens on
 * @returns null to answer, else why not
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { replyPolicy } from "./server.ts";
 *
 * assert.equal(replyPolicy(new Uint8Array(0), 0, 40000, 6401), null);
 * assert.equal(replyPolicy(new Uint8Array(0), 0, 6401, 6401), "statsPort");
 * assert.equal(replyPolicy(new TextEncoder().encode("KERNEL_SENT_PKTS,0\n"), 19, 40000, 6401), "notRequest");
 * ```
 */
export function replyPolicy(
  datagram: Uint8Array,
  length: number,
  fromPort: number,
  statsPort: number,
): StatsDrop | null {
  if (length > MAX_REQUEST) return "notRequest";
  if (length >= REPLY_PREFIX.length && REPLY_PREFIX.every((b, i) => datagram[i] === b)) {
    return "notRequest";
  }
  if (fromPort < 1024) return "privilegedPort";
  if (fromPort === statsPort) return "statsPort";
  return null;
}

/** Whether a socket address (its bytes, as getaddrinfo yields them) is a wildcard. */
function isWildcard(address: Uint8Array): boolean {
  const decoded = decodeSockaddr(address);
  return decoded !== null && decoded.address.every((b) => b === 0);
}

/** The stats server's sockets. */
export class StatsServer {
  /** Queries answered. */
  queries = 0;
  /** Datagrams not answered, per reason. */
  readonly drops: Record<StatsDrop, number> = {
    notRequest: 0,
    privilegedPort: 0,
    statsPort: 0,
    rateLimited: 0,
  };
  /** Startup warnings for cli.ts to log (the exposure of a wildcard address). */
  readonly warnings: readonly string[];
  readonly #fds: number[];
  readonly #reactor: Reactor;
  readonly #counters: Counters;
  readonly #port: number;
  readonly #now: () => number;
  readonly #bucket: TokenBucket;
  readonly #buffer = new Uint8Array(2048);
  readonly #from = new Uint8Array(128);
  #closed = false;

  private constructor(
    fds: number[],
    reactor: Reactor,
    counters: Counters,
    port: number,
    now: () => number,
    limit: RateLimit,
    warnings: string[],
  ) {
    this.#fds = fds;
    this.#reactor = reactor;
    this.#counters = counters;
    this.#port = port;
    this.#now = now;
    this.#bucket = new TokenBucket(limit, now());
    this.warnings = warnings;
  }

  /**
   * Binds the stats sockets and starts answering.
   *
   * @param reactor the reactor that drives the sockets
   * @param config address and port
   * @param counters the daemon's counters (read at each query)
   * @param options `replyLimit` (default {@linkcode REPLY_LIMIT}) and the clock, ms
   * @returns the server (its `warnings` are for the log)
   * @throws {Error} naming stats.addr / stats.port when an address cannot be bound
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { createCounters } from "../counters.ts";
   * import { Reactor } from "../reactor.ts";
   * import { StatsServer } from "./server.ts";
   *
   * const reactor = new Reactor();
   * const counters = createCounters(); // the daemon's: each query reads them as they are
   * const server = StatsServer.open(reactor, { address: "127.0.0.1", port: 0 }, counters);
   * assert.equal(server.queries, 0);
   * server.close();
   * reactor.stop();
   * ```
   */
  static open(
    reactor: Reactor,
    config: StatsConfig,
    counters: Counters,
    options: { replyLimit?: RateLimit; now?: () => number } = {},
  ): StatsServer {
    const candidates = getAddrInfo(config.address, String(config.port), AI_PASSIVE);
    const fds: number[] = [];
    try {
      for (const c of candidates) {
        const fd = socket(c.family, SOCK_DGRAM, 0);
        fds.push(fd);
        if (c.family === AF_INET6) setsockoptInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0, "IPV6_V6ONLY");
        try {
          bind(fd, c.address);
        } catch (error) {
          throw new Error(
            `stats.addr/stats.port: cannot bind ${config.address} port ${config.port}: ${
              (error as SystemError).code
            }${
              (error as SystemError).errno === ERRNO.EADDRINUSE
                ? " (the port is in use: pick another --stats.port)"
                : ""
            }`,
            { cause: error },
          );
        }
      }
    } catch (error) {
      for (const fd of fds) close(fd);
      throw error;
    }
    const warnings = candidates.some((c) => isWildcard(c.address))
      ? [
        `the stats socket listens on every address (${config.address} port ${config.port}): anyone who can reach this host can read the sync counters; set --stats.addr=::1 (or 127.0.0.1) to keep them local`,
      ]
      : [];
    const server = new StatsServer(
      fds,
      reactor,
      counters,
      fds.length > 0 ? (decodeSockaddr(getsockname(fds[0]))?.port ?? config.port) : config.port,
      options.now ?? (() => performance.now()),
      options.replyLimit ?? REPLY_LIMIT,
      warnings,
    );
    for (const fd of fds) reactor.add(fd, (budget) => server.#drain(fd, budget));
    return server;
  }

  /** Reads at most `budget` datagrams; true when it stopped for the budget (more may wait). */
  #drain(fd: number, budget = Infinity): boolean {
    for (let read = 0; read < budget; read++) {
      const [n, fromLength] = recvfrom(fd, this.#buffer, this.#from);
      if (n === -ERRNO.EAGAIN) return false;
      if (n === -ERRNO.EINTR) continue;
      if (n < 0) continue; // e.g. ICMP errors of earlier replies: nothing to answer
      const from = this.#from.subarray(0, fromLength);
      const drop = replyPolicy(this.#buffer, n, decodeSockaddr(from)?.port ?? 0, this.#port);
      if (drop !== null) {
        this.drops[drop]++;
        continue;
      }
      if (!this.#bucket.take(this.#now())) {
        this.drops.rateLimited++;
        continue;
      }
      const reply = new TextEncoder().encode(formatStats(this.#counters));
      sendto(fd, reply, from.slice());
      this.queries++;
    }
    return true;
  }

  /** Closes the sockets. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const fd of this.#fds) {
      this.#reactor.remove(fd);
      close(fd);
    }
  }
}
