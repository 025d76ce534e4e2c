/**
 * The stats server: every UDP datagram it receives is answered with the counters
 * ({@linkcode formatStats}). It binds every address getaddrinfo yields for (address, port); "::"
 * has IPV6_V6ONLY off, so it serves IPv4 too.
 *
 * @module
 */

import { AI_PASSIVE, getAddrInfo } from "../../ffi/addrinfo.ts";
import {
  AF_INET6,
  bind,
  close,
  IPPROTO_IPV6,
  IPV6_V6ONLY,
  recvfrom,
  sendto,
  setsockoptInt,
  SOCK_DGRAM,
  socket,
} from "../../ffi/libc.ts";
import { ERRNO, type SystemError } from "../../ffi/errno.ts";
import type { StatsConfig } from "../config/types.ts";
import type { Reactor } from "../reactor.ts";
import type { Counters } from "../counters.ts";
import { formatStats } from "./reply.ts";

/** The stats server's sockets. */
export class StatsServer {
  /** Queries answered. */
  queries = 0;
  readonly #fds: number[];
  readonly #reactor: Reactor;
  readonly #counters: Counters;
  readonly #buffer = new Uint8Array(2048);
  readonly #from = new Uint8Array(128);
  #closed = false;

  private constructor(fds: number[], reactor: Reactor, counters: Counters) {
    this.#fds = fds;
    this.#reactor = reactor;
    this.#counters = counters;
  }

  /**
   * Binds the stats sockets and starts answering.
   *
   * @param reactor the reactor that drives the sockets
   * @param config address and port
   * @param counters the daemon's counters (read at each query)
   * @returns the server
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
  static open(reactor: Reactor, config: StatsConfig, counters: Counters): StatsServer {
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
    const server = new StatsServer(fds, reactor, counters);
    for (const fd of fds) reactor.add(fd, () => server.#drain(fd));
    return server;
  }

  #drain(fd: number): void {
    for (;;) {
      const [n, fromLength] = recvfrom(fd, this.#buffer, this.#from);
      if (n === -ERRNO.EAGAIN) return;
      if (n === -ERRNO.EINTR) continue;
      if (n < 0) return; // e.g. ICMP errors of earlier replies: nothing to answer
      const reply = new TextEncoder().encode(formatStats(this.#counters));
      sendto(fd, reply, this.#from.slice(0, fromLength));
      this.queries++;
    }
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
