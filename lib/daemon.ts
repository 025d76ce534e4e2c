/**
 * The daemon core: kernel batch -> one datagram to the sync group (the kernel channel ACKs it);
 * datagram from the group -> validated -> JOOLD_ADD to the local kernel. Composed from channel
 * interfaces, so tests drive it with fakes that speak the same bytes.
 *
 * @module
 */

import type { KernelChannel, NetworkChannel } from "./channel.ts";
import type { Logger } from "./log.ts";
import { createCounters as createMeaningCounters } from "./counters.ts";
import { checkMeaning, type MeaningCounters } from "./jool/meaning.ts";
import { decodePayload, type PayloadSummary, sessionCsv } from "./jool/session.ts";
import { JOOL_DEFAULT_TIMEOUTS, type SessionTimeouts } from "./jool/timeouts.ts";
import type { SessionFormat } from "./jool/version.ts";
import type { Counters } from "./stats/counters.ts";

/** What the daemon is made of. */
export interface DaemonParts {
  /** The local Jool instance. */
  readonly kernel: KernelChannel;
  /** The sync group; null = print mode (sessions from the kernel are printed, not sent). */
  readonly network: NetworkChannel | null;
  /** Counters the daemon updates. */
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
  /** Where the meaning checks count (lib/counters.ts fields; default: counters of its own). */
  readonly meaningCounters?: MeaningCounters;
}

/** Most kinds of events the rate limiter remembers. */
const MAX_KINDS = 64;

/**
 * The rate limiter's kind of a kernel error: the request and errno for a refusal, the error's
 * class and the message up to its first colon otherwise (messages carry varying details).
 */
function kernelErrorKind(error: Error): string {
  const e = error as Error & { op?: unknown; errno?: unknown };
  return typeof e.op === "string" && typeof e.errno === "number"
    ? `kernel:${e.op}:${e.errno}`
    : `kernel:${error.name}:${error.message.split(":", 1)[0]}`;
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
  readonly #parts: DaemonParts;
  readonly #warn: RateLimitedLog;
  readonly #meaning: MeaningCounters;

  /**
   * Wires the channels together.
   *
   * @param parts the channels, counters and logger
   * @example
   * ```ts
   * new Daemon({ kernel, network, counters, log }).start();
   * ```
   */
  constructor(parts: DaemonParts) {
    this.#parts = parts;
    this.#meaning = parts.meaningCounters ?? createMeaningCounters();
    this.#warn = new RateLimitedLog((m) => parts.log.warn(m), parts.now ?? Date.now);
  }

  /** Starts moving sessions: installs the channel handlers. */
  start(): void {
    const { kernel, network, log } = this.#parts;
    kernel.onBatch((payload) => this.#fromKernel(payload));
    kernel.onError((error) => {
      this.#parts.counters.kernelErrors++;
      this.#warn.log(kernelErrorKind(error), error.message);
    });
    network?.onDatagram((payload) => this.#fromNetwork(payload));
    log.debug("daemon started");
  }

  /** Asks the kernel to advertise its whole session table. */
  advertise(): void {
    this.#parts.kernel.advertise();
  }

  #fromKernel(payload: Uint8Array): void {
    const { network, counters, log } = this.#parts;
    counters.kernelBatches++;
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
    try {
      network.send(payload as Uint8Array<ArrayBuffer>);
      counters.netSentPkts++;
      counters.netSentBytes += BigInt(payload.length);
      if (this.#parts.debug) log.debug(`sent ${payload.length} bytes to the sync group`);
    } catch (error) {
      counters.netSendErrors++;
      this.#warn.log("send", `cannot send sessions to the sync group: ${(error as Error).message}`);
    }
  }

  #fromNetwork(payload: Uint8Array): void {
    const { kernel, counters, log, localFormat } = this.#parts;
    counters.netRcvdPkts++;
    counters.netRcvdBytes += BigInt(payload.length);
    let summary: PayloadSummary;
    try {
      summary = decodePayload(payload);
    } catch (error) {
      counters.malformedDatagrams++;
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
      counters.foreignFormatDatagrams++;
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
    try {
      kernel.add(payload);
      counters.kernelSentPkts++;
      counters.kernelSentBytes += BigInt(payload.length);
      if (this.#parts.debug) {
        log.debug(`handed ${count} sessions (${payload.length} bytes) to the kernel`);
      }
    } catch (error) {
      this.#warn.log("add", `cannot hand sessions to the kernel: ${(error as Error).message}`);
    }
  }
}
