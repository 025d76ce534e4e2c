/**
 * The reactor: ONE `poll()` over every socket of the daemon plus an eventfd used to wake it for
 * shutdown (docs/DESIGN.md, "One FFI reactor for every socket"). The wait runs off-thread
 * (`nonblocking: true`); when it returns, each ready fd's handler reads its socket with synchronous
 * non-blocking reads, on the main thread, where errno is reliable.
 *
 * Fairness: one poll wake-up is one round, and a round reads at most {@linkcode ROUND_BUDGET}
 * datagrams per socket (the handler gets the budget and says whether it stopped for it), so one
 * flooded socket cannot starve the others nor the event loop: what it left waits for the next
 * round, which the next poll starts at once. Sockets added with `priority` (the kernel socket,
 * whose batch the kernel holds its next one for until the ACK) are served first in every round,
 * that is before and between the rounds of the others, and drain without a budget (the kernel
 * sends one batch at a time). While a socket is flooded (a handler stopped for its budget), the
 * linger window shrinks to {@linkcode FLOOD_LINGER_MS}, so signals are handled within that and a
 * round under any flood, and within `lingerMs` otherwise.
 *
 * A reactor made with `lingerMs` (the daemon's: {@linkcode LINGER_MS}) lingers: after each
 * off-thread wake-up it keeps waiting in a SYNCHRONOUS `poll()` on the main thread, for `lingerMs`
 * in all, so that the next messages wake the main thread directly (one kernel wake-up, as in a C
 * daemon) instead of through the off-thread call (two thread hand-offs, a promise and an event-loop
 * turn: tens of microseconds of CPU per message on the host, and milliseconds of delay when the CPUs
 * are busy, BENCHMARKS.md). Then it waits off-thread once, which gives the event loop its turn:
 * timers, signals and promise continuations wait at most `lingerMs`. A synchronous wait sleeps in the
 * kernel like the off-thread one, so lingering costs no CPU; an idle daemon ends up in the off-thread
 * wait. In-process peers (tests, benchmarks with a fake kernel) cannot answer during a synchronous
 * wait, so lingering is off by default.
 *
 * @module
 */

import {
  check,
  close,
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  errno,
  libc,
  POLLERR,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  POLLOUT,
} from "../ffi/libc.ts";
import { ERRNO, SystemError } from "../ffi/errno.ts";

/**
 * The daemon's linger, ms: how long it waits synchronously after an off-thread wake-up, which is
 * also how long a signal (SIGTERM, SIGUSR1) may wait for the event loop while sessions flow.
 */
export const LINGER_MS = 250;

/**
 * The datagrams a socket's handler may read per round (wake-up). Small enough that a round of a
 * few flooded sockets stays far below a millisecond of work; large enough that a busy sync
 * socket needs few polls (each costs a system call).
 */
export const ROUND_BUDGET = 64;

/**
 * The linger window while a socket is flooded (a handler stopped for its budget): the event loop
 * gets its turn at least this often, so signals wait at most this plus a round under a flood.
 */
export const FLOOD_LINGER_MS = 50;

/**
 * Called when an fd is readable (or in error). It reads at most `budget` messages (a priority fd's
 * handler gets `Infinity`: it drains until EAGAIN) and returns true when it stopped for the budget,
 * with more perhaps waiting; false or nothing when the fd is drained.
 */
export type ReadableHandler = (budget: number) => boolean | void;

/** How an fd is served. */
export interface WatchOptions {
  /** Served first in every round, and drained whole (the kernel socket). */
  readonly priority?: boolean;
}

/**
 * Waits on many fds at once and dispatches readiness to handlers.
 *
 * Sockets are added with `add(fd, handler, { priority })`: the handler reads at most `budget`
 * datagrams and returns whether it left some (the kernel socket is added with `priority: true`).
 *
 * @example Run and stop
 * ```ts
 * import { Reactor } from "./reactor.ts";
 *
 * const reactor = new Reactor();
 * const done = reactor.run();
 * setTimeout(() => reactor.stop(), 10);
 * await done; // resolves once stopped
 * ```
 */
export class Reactor {
  readonly #handlers = new Map<number, ReadableHandler>();
  /** One-shot handlers of watched fds waiting to be writable (POLLOUT). */
  readonly #writers = new Map<number, () => void>();
  readonly #priority = new Set<number>();
  readonly #wakeFd: number;
  #running = false;
  #stopping = false;
  #closed = false;
  #fds: number[] | null = null;
  #onError: (error: unknown) => void = (error) => {
    throw error;
  };
  /** Wake-ups of the poll loop (for benchmarks and tests). */
  wakeups = 0;
  /** Of those, the wake-ups of a synchronous (lingering) wait. */
  syncWakeups = 0;
  /** Handler calls that stopped for the budget (a socket had more than a round's worth). */
  budgetStops = 0;

  readonly #lingerMs: number;

  /**
   * Creates the reactor and its eventfd.
   *
   * @param options `lingerMs`: how long to wait synchronously after an off-thread wake-up (0,
   *   the default: always wait off-thread; the daemon uses {@linkcode LINGER_MS})
   * @throws {SystemError} when the eventfd cannot be created
   */
  constructor(options: { lingerMs?: number } = {}) {
    this.#lingerMs = Math.max(0, Math.floor(options.lingerMs ?? 0));
    this.#wakeFd = check("eventfd", libc().eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  }

  /**
   * Sets the handler of exceptions thrown by fd handlers (the loop goes on).
   *
   * @param handler receives the exception
   */
  onError(handler: (error: unknown) => void): void {
    this.#onError = handler;
  }

  /**
   * Watches `fd` for readability.
   *
   * @param fd a non-blocking fd
   * @param handler reads it, at most the budget it is given
   * @param options `priority`: serve it first in every round, without a budget
   */
  add(fd: number, handler: ReadableHandler, options: WatchOptions = {}): void {
    this.#handlers.set(fd, handler);
    if (options.priority) this.#priority.add(fd);
    else this.#priority.delete(fd);
    this.#fds = null;
    if (this.#running) this.#wake();
  }

  /**
   * Stops watching `fd` (the caller closes it).
   *
   * @param fd the fd
   */
  remove(fd: number): void {
    this.#handlers.delete(fd);
    this.#writers.delete(fd);
    this.#priority.delete(fd);
    this.#fds = null;
    if (this.#running) this.#wake();
  }

  /**
   * Calls `handler` once, the next time `fd` (watched with {@linkcode Reactor.add}) is writable or
   * in error; `null` cancels. For a send that failed with EAGAIN: poll says when to retry.
   *
   * @param fd a watched fd
   * @param handler called once, on the main thread; null to cancel
   */
  whenWritable(fd: number, handler: (() => void) | null): void {
    if (handler === null) this.#writers.delete(fd);
    else this.#writers.set(fd, handler);
    this.#fds = null;
    if (this.#running) this.#wake();
  }

  /** Whether {@linkcode Reactor.run} is looping. */
  get running(): boolean {
    return this.#running;
  }

  #wake(): void {
    const one = new BigUint64Array([1n]);
    libc().write(this.#wakeFd, new Uint8Array(one.buffer), 8n);
  }

  #drainWake(): void {
    const sink = new Uint8Array(8);
    while (Number(libc().read(this.#wakeFd, sink, 8n)) > 0) { /* drain */ }
  }

  /**
   * Loops until {@linkcode Reactor.stop}: poll, then run the handlers of the ready fds.
   *
   * @returns resolves once stopped, after the eventfd is closed
   * @throws {SystemError} when poll itself fails
   */
  async run(): Promise<void> {
    if (this.#running) throw new Error("the reactor is already running");
    if (this.#closed) return;
    this.#running = true;
    const lib = libc();
    try {
      let fds: number[] = [];
      let nfds = 0n;
      let pollfds = new Uint8Array(0);
      let view = new DataView(pollfds.buffer);
      // Until performance.now() reaches this, wait synchronously (see the module comment).
      let lingerUntil = 0;
      // When the last off-thread wait returned: a flood shortens the window from there.
      let windowStart = 0;
      // When the loop last gave the event loop a whole turn (a timer).
      let yieldedAt = 0;
      while (!this.#stopping) {
        // The pollfd array is rebuilt only when the set of fds changed (no allocation per wake-up).
        // Its order is the order of service: priority fds first.
        if (this.#fds === null) {
          const all = [...this.#handlers.keys()];
          fds = this.#fds = [
            this.#wakeFd,
            ...all.filter((fd) => this.#priority.has(fd)),
            ...all.filter((fd) => !this.#priority.has(fd)),
          ];
          nfds = BigInt(fds.length);
          pollfds = new Uint8Array(8 * fds.length);
          view = new DataView(pollfds.buffer);
          fds.forEach((fd, i) => {
            view.setInt32(8 * i, fd, true);
            view.setInt16(8 * i + 4, POLLIN | (this.#writers.has(fd) ? POLLOUT : 0), true);
          });
        }
        const left = lingerUntil - performance.now();
        const lingering = left >= 1;
        let n: number;
        if (lingering) {
          n = Number(lib.poll(pollfds, nfds, Math.floor(left)));
          if (n === 0) continue; // the linger is over: next, the off-thread wait
        } else {
          n = await lib.poll_wait(pollfds, nfds, -1);
          // errno of the off-thread call is not ours to read: retry once synchronously to learn it.
          if (n < 0) n = Number(lib.poll(pollfds, nfds, 0));
          // Under load the wait above returns at once, and its promise can resolve before the
          // signal and timer callbacks that are due: without a whole event-loop turn here, a
          // lingering loop could hold them for another window. One timer per window is free.
          // At most every FLOOD_LINGER_MS: the timer turn delays what arrives meanwhile (~1 ms).
          if (this.#lingerMs > 0 && performance.now() - yieldedAt >= FLOOD_LINGER_MS) {
            await new Promise((resolve) => setTimeout(resolve, 0));
            yieldedAt = performance.now();
          }
        }
        if (n < 0) {
          const e = errno();
          if (e === ERRNO.EINTR) continue;
          throw new SystemError("poll", e);
        }
        if (lingering) this.syncWakeups++;
        else if (this.#lingerMs > 0) {
          windowStart = performance.now();
          lingerUntil = windowStart + this.#lingerMs;
        }
        this.wakeups++;
        for (let i = 0; i < fds.length; i++) {
          const revents = view.getInt16(8 * i + 6, true);
          if (revents === 0) continue;
          const fd = fds[i];
          if (fd === this.#wakeFd) {
            this.#drainWake();
            continue;
          }
          const handler = this.#handlers.get(fd);
          if (handler === undefined) continue;
          if (revents & POLLNVAL) {
            this.#handlers.delete(fd);
            this.#fds = null;
            this.#onError(new Error(`fd ${fd} was closed while watched; no longer watching it`));
            continue;
          }
          if (revents & (POLLIN | POLLERR | POLLHUP)) {
            try {
              if (handler(this.#priority.has(fd) ? Infinity : ROUND_BUDGET) === true) {
                this.budgetStops++;
                // A flood: the loop is busy anyway, so an event-loop turn costs nothing next to
                // it, while signals and timers would wait the whole window.
                lingerUntil = Math.min(lingerUntil, windowStart + FLOOD_LINGER_MS);
              }
            } catch (error) {
              this.#onError(error);
            }
          }
          const writer = this.#writers.get(fd);
          if (writer !== undefined && revents & (POLLOUT | POLLERR | POLLHUP)) {
            this.#writers.delete(fd);
            this.#fds = null;
            try {
              writer();
            } catch (error) {
              this.#onError(error);
            }
          }
        }
      }
    } finally {
      this.#running = false;
      this.#closed = true;
      close(this.#wakeFd);
    }
  }

  /** Asks the loop to end: the pending poll returns at once and `run()` resolves. */
  stop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    if (this.#running) this.#wake();
    else if (!this.#closed) {
      this.#closed = true;
      close(this.#wakeFd);
    }
  }
}
