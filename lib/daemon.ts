/**
 * The daemon core: kernel batch -> one datagram to the sync group (the kernel channel ACKs it);
 * datagram from the group -> validated -> JOOLD_ADD to the local kernel. Composed from channel
 * interfaces, so tests drive it with fakes that speak the same bytes. It counts only what it owns
 * in the shared {@linkcode Counters} (lib/counters.ts): the channels count their own traffic.
 *
 * @module
 */

import type { KernelChannel, NetworkChannel } from "./channel.ts";
import type { Logger } from "./log.ts";
import { checkMeaning, type MeaningCounters } from "./jool/meaning.ts";
import { decodePayload, type PayloadSummary, sessionCsv } from "./jool/session.ts";
import { JOOL_DEFAULT_TIMEOUTS, type SessionTimeouts } from "./jool/timeouts.ts";
import type { SessionFormat } from "./jool/version.ts";
import type { Counters } from "./counters.ts";

/** What the daemon is made of. */
export interface DaemonParts {
  /** The local Jool instance. */
  readonly kernel: KernelChannel;
  /** The sync group; null = print mode (sessions from the kernel are printed, not sent). */
  readonly network: NetworkChannel | null;
  /** The daemon's counters (the core increments the fields it owns). */
  readonly counters: Counters;
  /** Where events go. */
  readonly log: Logger;
  /** Print mode's output: one line per session (no newline). */
  readonly print?: (line: string) => void;
  /** The local kernel's session format, when known: datagrams of another format are dropped. */
  readonly localFormat?: SessionFormat;
  /** Clock for rate limiting (ms). */
  readonly now?: () => number;
  /** Whether per-batch debug lines are wanted (builds no strings on the hot path otherwise). */
  readonly debug?: boolean;
  /** The local instance's session timeouts, for the meaning checks (default: Jool's defaults). */
  readonly timeouts?: SessionTimeouts;
  /** Where the meaning checks count (default: `counters`). */
  readonly meaningCounters?: MeaningCounters;
}

/** Most kinds of events the rate limiter remembers. */
const MAX_KINDS = 64;

/**
 * The rate limiter's kind of a kernel-side error: its class (`error.name`), and the request and
 * errno when it carries them (a KernelError: each refused request and errno is its own kind).
 * Messages are not looked at: they carry varying details.
 *
 * @param error an error the kernel channel reported
 * @returns the kind, e.g. `kernel:KernelError:JOOLD_ADD:22`
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kernelErrorKind } from "./daemon.ts";
 * import { KernelError } from "./kernel/error.ts";
 *
 * const refused = (text: string) => new KernelError("JOOLD_ADD", 22, text, "default");
 * assert.equal(kernelErrorKind(refused("a")), kernelErrorKind(refused("b")));
 * assert.equal(kernelErrorKind(refused("a")), "kernel:KernelError:JOOLD_ADD:22");
 * ```
 */
export function kernelErrorKind(error: Error): string {
  const { op, errno } = error as Error & { op?: unknown; errno?: unknown };
  return `kernel:${error.name}${typeof op === "string" ? `:${op}` : ""}${
    typeof errno === "number" ? `:${errno}` : ""
  }`;
}

/** Logs a kind of event at most once per interval, counting what it held back. */
class RateLimitedLog {
  #last = new Map<string, { at: number; suppressed: number }>();
  constructor(
    private readonly emit: (message: string) => void,
    private readonly now: () => number,
    private readonly intervalMs = 10_000,
  ) {}

  log(kind: string, message: string): void {
    const t = this.now();
    const entry = this.#last.get(kind);
    if (entry !== undefined && t - entry.at < this.intervalMs) {
      entry.suppressed++;
      return;
    }
    const held = entry?.suppressed ?? 0;
    if (entry === undefined && this.#last.size >= MAX_KINDS) {
      // Bounded memory whatever the kinds: forget the oldest kind.
      this.#last.delete(this.#last.keys().next().value!);
    }
    this.#last.delete(kind); // re-insert: the Map's order is the last report's order
    this.#last.set(kind, { at: t, suppressed: 0 });
    this.emit(held > 0 ? `${message} (and ${held} more like it since the last report)` : message);
  }
}

/** The session-synchronization daemon. */
export class Daemon {
  /** Whether per-batch debug lines are built (from `parts.debug`; a reload may change it). */
  debug: boolean;
  readonly #parts: DaemonParts;
  readonly #warn: RateLimitedLog;
  readonly #meaning: MeaningCounters;

  /**
   * Wires the channels together.
   *
   * @param parts the channels, counters and logger
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import type { KernelChannel, NetworkChannel, PayloadHandler } from "./channel.ts";
   * import { createCounters } from "./counters.ts";
   * import { Daemon } from "./daemon.ts";
   * import { silentLogger } from "./log.ts";
   *
   * let batch: PayloadHandler = () => {};
   * const sent: Uint8Array[] = [];
   * const kernel: KernelChannel = {
   *   onBatch: (handler) => (batch = handler),
   *   onError() {},
   *   add() {},
   *   advertise() {},
   *   close() {},
   * };
   * const network: NetworkChannel = {
   *   onDatagram() {},
   *   send: (payload) => sent.push(payload.slice()),
   *   close() {},
   * };
   * new Daemon({ kernel, network, counters: createCounters(), log: silentLogger }).start();
   * batch(Uint8Array.of(1, 2, 3)); // a batch from the kernel goes to the group unchanged
   * assert.deepEqual(sent, [Uint8Array.of(1, 2, 3)]);
   * ```
   */
  constructor(parts: DaemonParts) {
    this.#parts = parts;
    this.debug = parts.debug ?? false;
    this.#meaning = parts.meaningCounters ?? parts.counters;
    this.#warn = new RateLimitedLog((m) => parts.log.warn(m), parts.now ?? Date.now);
  }

  /** Starts moving sessions: installs the channel handlers. */
  start(): void {
    const { kernel, network, log } = this.#parts;
    kernel.onBatch((payload) => this.#fromKernel(payload));
    // The kernel channel counts its refusals, overruns and malformed messages itself.
    kernel.onError((error) => this.#warn.log(kernelErrorKind(error), error.message));
    network?.onDatagram((payload) => this.#fromNetwork(payload));
    log.debug("daemon started");
  }

  /** Asks the kernel to advertise its whole session table. */
  advertise(): void {
    this.#parts.kernel.advertise();
  }

  #fromKernel(payload: Uint8Array): void {
    const { network, log } = this.#parts;
    if (network === null) {
      try {
        for (const s of decodePayload(payload).sessions) this.#parts.print?.(sessionCsv(s));
      } catch (error) {
        this.#warn.log(
          "print",
          `cannot print a batch from the kernel: ${(error as Error).message}`,
        );
      }
      return;
    }
    // The network channel counts what it sends and what fails.
    try {
      network.send(payload as Uint8Array<ArrayBuffer>);
      if (this.debug) log.debug(`sent ${payload.length} bytes to the sync group`);
    } catch (error) {
      this.#warn.log("send", `cannot send sessions to the sync group: ${(error as Error).message}`);
    }
  }

  #fromNetwork(payload: Uint8Array): void {
    const { kernel, counters, log, localFormat } = this.#parts;
    let summary: PayloadSummary;
    try {
      summary = decodePayload(payload);
    } catch (error) {
      counters.netMalformedDatagrams++;
      this.#warn.log(
        "malformed",
        `dropped a ${payload.length}-byte datagram from the sync group that is not a session list: ${
          (error as Error).message
        }`,
      );
      return;
    }
    const { format } = summary;
    if (localFormat !== undefined && format !== localFormat) {
      counters.netForeignFormatDatagrams++;
      this.#warn.log(
        "format",
        `dropped a datagram of ${format} sessions: the local Jool uses ${localFormat} sessions; peers must run Jool versions with the same session format`,
      );
      return;
    }
    const legal = checkMeaning(
      payload,
      summary,
      this.#parts.timeouts ?? JOOL_DEFAULT_TIMEOUTS,
      this.#meaning,
    );
    if (legal === null) {
      this.#warn.log(
        "meaning",
        `dropped a datagram from the sync group: none of its ${summary.sessions.length} sessions has a protocol, state and timer Jool can hold`,
      );
      return;
    }
    if (legal !== payload) {
      this.#warn.log(
        "meaning",
        "corrected a datagram from the sync group: dropped the sessions Jool cannot hold and cut expirations to the local timeouts (counters netSessions*)",
      );
    }
    const count = summary.sessions.length;
    payload = legal;
    // The kernel channel counts the requests it sends (KERNEL_SENT_*).
    try {
      kernel.add(payload);
      if (this.debug) {
        log.debug(`handed ${count} sessions (${payload.length} bytes) to the kernel`);
      }
    } catch (error) {
      counters.kernelAddFailures++;
      this.#warn.log("add", `cannot hand sessions to the kernel: ${(error as Error).message}`);
    }
  }
}
