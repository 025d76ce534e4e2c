/**
 * The daemon core: kernel batch -> one datagram to the sync group (the kernel channel ACKs it);
 * datagram from the group -> validated -> JOOLD_ADD to the local kernel. Composed from channel
 * interfaces, so tests drive it with fakes that speak the same bytes. It counts only what it owns
 * in the shared {@linkcode Counters} (lib/counters.ts): the channels count their own traffic.
 *
 * @module
 */

import type { KernelChannel, NetworkChannel } from "./channel.ts";
import type { LogFields, Logger } from "./log.ts";
import { checkMeaning, type MeaningCounters } from "./jool/meaning.ts";
import { decodePayload, type PayloadSummary, sessionCsv } from "./jool/session.ts";
import { JOOL_DEFAULT_TIMEOUTS, type SessionTimeouts } from "./jool/timeouts.ts";
import type { SessionFormat } from "./jool/version.ts";
import type { Counters } from "./counters.ts";
import { type Pool6, type RefusalReason, translatePayload } from "./jool/translate.ts";
import { ERRNO } from "../ffi/errno.ts";
import { isEnvelope } from "./secure/envelope.ts";
import { keyIdHex } from "./secure/keyfile.ts";
import { align4, NLA_HDRLEN } from "./netlink/attribute.ts";

/** The key id field of an envelope (bytes 4-7, big-endian; docs/PROTOCOL.md). */
function envelopeKeyId(datagram: Uint8Array): number {
  return new DataView(datagram.buffer, datagram.byteOffset + 4, 4).getUint32(0, false);
}

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
  /**
   * The local kernel's session format, when known: datagrams of another format are dropped, or
   * translated into it when `translate` is on.
   */
  readonly localFormat?: SessionFormat;
  /** Re-encode datagrams of another session format in `localFormat` (`"translate sessions"`). */
  readonly translate?: boolean;
  /** The local instance's pool6, when known: a 36-byte record needs it to become nested/48-byte. */
  readonly pool6?: Pool6;
  /** Clock for rate limiting (ms). */
  readonly now?: () => number;
  /** Whether per-batch debug lines are wanted (builds no strings on the hot path otherwise). */
  readonly debug?: boolean;
  /** The local instance's session timeouts, for the meaning checks (default: Jool's defaults). */
  readonly timeouts?: SessionTimeouts;
  /** Where the meaning checks count (default: `counters`). */
  readonly meaningCounters?: MeaningCounters;
}

/** The counter of each translation refusal reason (lib/counters.ts). */
const REFUSAL_COUNTERS: Record<RefusalReason, keyof Counters> = {
  "no-pool6": "netUntranslatableNoPool6",
  underivable: "netUntranslatableUnderivable",
  range: "netUntranslatableRange",
};

/**
 * Bounds of the retry queue of datagrams whose send failed for want of buffer space (EAGAIN,
 * ENOBUFS): at most this many datagrams and bytes wait; beyond, datagrams are counted lost. 1024
 * kernel batches of at most ~1.4 KB each is about one second of a busy translator's sessions.
 *
 * With several destinations (unicast peers) the queue is per datagram, and each queued datagram
 * names the destinations it still owes: a send that reached A but found no buffer space for B is
 * queued, with its exact bytes (the same envelope under secure sync), for B alone. A destination
 * that fails otherwise (no route to it...) loses that copy, counted, and never holds up the
 * others. The socket's buffer is one for every peer, so while a datagram waits every later one
 * waits behind it (each peer still gets them in the kernel's order). The counters count copies:
 * netSendRetries, netSendLostDatagrams and netSendLostSessions one per destination.
 */
export const RETRY_QUEUE_LIMITS = { datagrams: 1024, bytes: 2 << 20 } as const;

/** How long to wait before retrying when poll cannot tell (no whenWritable, or ENOBUFS), ms. */
export const RETRY_DELAY_MS = 5;

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

/**
 * Logs a kind of event at most once per interval, counting what it held back (the daemon core's
 * warnings, and the secure channel's, lib/secure/channel.ts).
 */
export class RateLimitedLog {
  #last = new Map<string, { at: number; suppressed: number }>();
  constructor(
    private readonly emit: (message: string, fields: LogFields) => void,
    private readonly now: () => number,
    private readonly intervalMs = 10_000,
  ) {}

  /**
   * Emits `message` unless a message of `kind` went out less than the interval ago; the event id
   * is the kind.
   *
   * @param kind what is rate limited together
   * @param message the line
   * @param fields the event's fields (JSON logs)
   */
  log(kind: string, message: string, fields?: LogFields): void {
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
    this.emit(
      held > 0 ? `${message} (and ${held} more like it since the last report)` : message,
      { event: kind, ...fields, suppressed: held },
    );
  }
}

/**
 * A datagram of the retry queue: the kernel's payload (a copy) and, once a send reached some
 * destinations but not others, the exact bytes sent and the destinations still owed.
 */
interface Pending {
  readonly payload: Uint8Array;
  /** The bytes on the wire (sealed, under secure sync), to send again as they are. */
  datagram?: Uint8Array;
  /** The destinations still owed; undefined: every one (not sent yet). */
  to?: readonly string[];
}

/** The error's failures, one per destination; a channel's plain error is one failure. */
function failuresOf(error: unknown): { destination?: string; errno?: number; what?: string }[] {
  const failures = (error as { failures?: unknown }).failures;
  if (Array.isArray(failures) && failures.length > 0) return failures;
  return [{ errno: (error as { errno?: number }).errno }];
}

/** The session-synchronization daemon. */
export class Daemon {
  /** Whether per-batch debug lines are built (from `parts.debug`; a reload may change it). */
  debug: boolean;
  readonly #parts: DaemonParts;
  readonly #warn: RateLimitedLog;
  /** Datagrams waiting to be sent again (copies), oldest first, and their bytes. */
  #queue: Pending[] = [];
  #queuedBytes = 0;
  /** Whether a retry is scheduled (a POLLOUT wait or a timer). */
  #armed = false;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  readonly #meaning: MeaningCounters;
  /**
   * The batches of this burst joined into one payload (a network channel with `coalesceBytes`
   * and a kernel channel that says when a burst ends); null: one datagram per batch.
   */
  #joined: Uint8Array | null = null;
  #joinedLength = 0;

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
    this.#warn = new RateLimitedLog((m, f) => parts.log.warn(m, f), parts.now ?? Date.now);
  }

  /** Starts moving sessions: installs the channel handlers. */
  start(): void {
    const { kernel, network, log } = this.#parts;
    kernel.onBatch((payload) => this.#fromKernel(payload));
    const join = network?.coalesceBytes ?? 0;
    if (join > 0 && kernel.onDrained) {
      this.#joined = new Uint8Array(join);
      kernel.onDrained(() => this.#sendJoined());
    }
    // The kernel channel counts its refusals, overruns and malformed messages itself.
    kernel.onError((error) => this.#warn.log(kernelErrorKind(error), error.message));
    network?.onDatagram((payload, from) => this.#fromNetwork(payload, from));
    // The network channel counts its truncated datagrams; receive errors are only reported.
    network?.onError?.((error) =>
      this.#warn.log(
        `net:${error.name}:${(error as { errno?: number }).errno ?? ""}`,
        `sync group: ${error.message}`,
      )
    );
    log.debug("daemon started");
  }

  /** Datagrams waiting in the retry queue. */
  get queuedDatagrams(): number {
    return this.#queue.length;
  }

  /**
   * Stops retrying: tries the queued datagrams once more, then counts what is left as lost (with
   * a warning). Call before the channels close.
   */
  stop(): void {
    if (this.#stopped) return;
    this.#sendJoined();
    this.#flush();
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    const left = this.#queue;
    this.#queue = [];
    this.#queuedBytes = 0;
    if (left.length === 0) return;
    const sessions = left.reduce((n, p) => n + this.#lose(p.payload, this.#owed(p)), 0);
    this.#parts.log.warn(
      `stopping with ${left.length} datagrams (${sessions} sessions) not yet sent to the sync group: they are lost`,
      { event: "send.lost", datagrams: left.length, sessions },
    );
  }

  /** Asks the kernel to advertise its whole session table. */
  advertise(): void {
    this.#parts.kernel.advertise();
  }

  #fromKernel(payload: Uint8Array): void {
    const { network } = this.#parts;
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
    const joined = this.#joined;
    if (joined !== null) {
      // Joined into the burst's payload (a copy: `payload` is the receive buffer's).
      if (this.#joinedLength + payload.length <= joined.length) {
        joined.set(payload, this.#joinedLength);
        this.#joinedLength += payload.length;
        return;
      }
      // It does not fit: session by session, so that no datagram is larger than the limit (a
      // batch of Jool's default 1452 bytes in an envelope would be fragmented).
      if (this.#joinEntries(payload, joined)) return;
      this.#sendJoined(); // what is held goes first: the kernel's order
    }
    this.#forward(payload);
  }

  /**
   * Joins `payload`'s JNLAL_ENTRY attributes one by one, sending what is held whenever the next
   * does not fit. A payload whose attributes do not add up, or with one larger than the limit,
   * is not touched (false): it goes as it is, and the receiver's checks judge it.
   */
  #joinEntries(payload: Uint8Array, joined: Uint8Array): boolean {
    const length = payload.length;
    for (let at = 0; at < length;) {
      const size = at + NLA_HDRLEN <= length ? payload[at] | payload[at + 1] << 8 : 0;
      const step = Math.min(align4(size), length - at);
      if (size < NLA_HDRLEN || at + size > length || step > joined.length) return false;
      at += step;
    }
    // The longest run of whole entries that fits what is left of the payload, copied at once.
    for (let at = 0; at < length;) {
      const room = joined.length - this.#joinedLength;
      let end = at;
      while (end < length) {
        const next = Math.min(end + align4(payload[end] | payload[end + 1] << 8), length);
        if (next - at > room) break;
        end = next;
      }
      if (end === at) {
        this.#sendJoined(); // nothing more fits: what is held goes (then the entry fits: checked)
        continue;
      }
      joined.set(payload.subarray(at, end), this.#joinedLength);
      this.#joinedLength += end - at;
      at = end;
    }
    return true;
  }

  /** Sends the payload the burst's batches were joined into, if any (the burst is over). */
  #sendJoined(): void {
    if (this.#joinedLength === 0 || this.#joined === null) return;
    const payload = this.#joined.subarray(0, this.#joinedLength);
    this.#joinedLength = 0;
    this.#forward(payload); // copies what it keeps; the buffer is reused from the next batch
  }

  /** Sends one payload to the group, or queues a copy behind the datagrams waiting for a retry. */
  #forward(payload: Uint8Array): void {
    const { log } = this.#parts;
    // Behind datagrams waiting for a retry: sessions go out in the order the kernel gave them.
    if (this.#queue.length > 0) return this.#enqueue({ payload: payload.slice() });
    const pending: Pending = { payload };
    if (this.#send(pending) === "retry") {
      this.#enqueue({ ...pending, payload: payload.slice() });
    } else if (this.debug) log.debug(`sent ${payload.length} bytes to the sync group`);
  }

  /** How many destinations a queued datagram still owes. */
  #owed(pending: Pending): number {
    return pending.to?.length ?? this.#parts.network?.destinations?.length ?? 1;
  }

  /**
   * One send (of a queued datagram: to the destinations it owes); the network channel counts
   * what it sends and each failed attempt. A destination that failed for want of buffer space
   * (EAGAIN/ENOBUFS) stays owed; one that failed otherwise loses its copy (counted lost, warned).
   *
   * @returns "done" when nothing is owed any more; "retry" when some destination is (`pending`
   *   then names them, with the exact bytes when the channel gave them)
   */
  #send(pending: Pending): "done" | "retry" {
    const network = this.#parts.network!;
    try {
      if (pending.to !== undefined && pending.datagram !== undefined && network.sendTo) {
        network.sendTo(pending.datagram, pending.to);
      } else network.send(pending.payload as Uint8Array<ArrayBuffer>);
      return "done";
    } catch (error) {
      const retry: string[] = [];
      let retryAll = false;
      for (const failure of failuresOf(error)) {
        if (!this.#stopped && (failure.errno === ERRNO.EAGAIN || failure.errno === ERRNO.ENOBUFS)) {
          if (failure.destination === undefined) retryAll = true;
          else retry.push(failure.destination);
          continue;
        }
        this.#lose(pending.payload, 1);
        this.#warn.log(
          `send:${failure.destination ?? ""}`,
          `cannot send sessions to ${failure.what ?? "the sync group"}: ${
            (error as Error).message
          }`,
          { event: "send.lost", destination: failure.destination },
        );
      }
      if (retryAll) return "retry"; // a channel that names no destination: send it whole again
      if (retry.length === 0) return "done";
      const datagram = (error as { datagram?: unknown }).datagram;
      if (datagram instanceof Uint8Array && network.sendTo) {
        pending.datagram = datagram;
        pending.to = retry;
      }
      return "retry";
    }
  }

  /** Counts a datagram lost for `copies` destinations, and its sessions; returns how many. */
  #lose(payload: Uint8Array, copies: number): number {
    const { counters } = this.#parts;
    let sessions = 0;
    try {
      sessions = decodePayload(payload).sessions.length;
    } catch {
      // Not decodable: its sessions cannot be counted (the kernel's batches always are).
    }
    counters.netSendLostDatagrams += copies;
    counters.netSendLostSessions += sessions * copies;
    return sessions * copies;
  }

  #enqueue(pending: Pending): void {
    const limits = RETRY_QUEUE_LIMITS;
    const bytes = (pending.datagram ?? pending.payload).length;
    if (
      this.#queue.length >= limits.datagrams ||
      this.#queuedBytes + bytes > limits.bytes
    ) {
      const sessions = this.#lose(pending.payload, this.#owed(pending));
      this.#warn.log(
        "send.queue-full",
        `the sync group's socket has had no buffer space for a while and ${this.#queue.length} datagrams (${this.#queuedBytes} bytes) wait to be sent again: dropped one more (${sessions} sessions lost; see netSendLostDatagrams)`,
        { event: "send.queue-full" },
      );
      return;
    }
    this.#queue.push(pending);
    this.#queuedBytes += bytes;
    this.#parts.counters.netSendRetries += this.#owed(pending);
    this.#arm(false);
  }

  /** Schedules a retry: when the socket is writable, or after a delay (`later`, or no poll). */
  #arm(later: boolean): void {
    if (this.#armed || this.#stopped) return;
    this.#armed = true;
    const { network } = this.#parts;
    const retry = () => {
      this.#armed = false;
      this.#retryTimer = undefined;
      this.#flush();
    };
    if (!later && network?.whenWritable) network.whenWritable(retry);
    else this.#retryTimer = setTimeout(retry, RETRY_DELAY_MS);
  }

  /** Sends the queued datagrams, oldest first, until one needs a retry again. */
  #flush(): void {
    let sent = 0;
    while (this.#queue.length > 0) {
      const pending = this.#queue[0];
      const before = (pending.datagram ?? pending.payload).length;
      const result = this.#send(pending);
      if (result === "retry") {
        // Its bytes may now be the envelope rather than the payload.
        this.#queuedBytes += (pending.datagram ?? pending.payload).length - before;
        // Writable but still failing (ENOBUFS: the device queue, not our buffer): wait a little
        // rather than spin on POLLOUT.
        this.#arm(sent === 0);
        return;
      }
      this.#queue.shift();
      this.#queuedBytes -= before;
      sent++;
    }
  }

  #fromNetwork(payload: Uint8Array, from?: string): void {
    const { kernel, counters, log, localFormat } = this.#parts;
    let summary: PayloadSummary;
    if (isEnvelope(payload)) {
      // A keyed peer: without the key nothing in it can be trusted (and it is encrypted).
      counters.netEnvelopesWithoutKey++;
      this.#warn.log(
        "envelope",
        `dropped a ${payload.length}-byte secure-sync envelope${
          payload.length >= 8 ? ` (key id ${keyIdHex(envelopeKeyId(payload))})` : ""
        } from ${from || "the sync group"}: this daemon has no "key file" (--net.key); ` +
          `every translator of the group needs the same key file, or none`,
      );
      return;
    }
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
    if (localFormat !== undefined && format !== localFormat && this.#parts.translate === true) {
      // Re-encoded first, then held to the same meaning checks as any datagram of our format.
      const translated = this.#translate(payload, localFormat);
      if (translated === null) return;
      payload = translated;
      summary = decodePayload(translated);
    } else if (localFormat !== undefined && format !== localFormat) {
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

  /** A well-formed datagram of another format: re-encoded, refusals counted and warned. */
  #translate(payload: Uint8Array, to: SessionFormat): Uint8Array | null {
    const { counters, pool6 } = this.#parts;
    const t = translatePayload(payload, to, pool6); // decodePayload accepted it: cannot throw
    for (const [reason, n] of t.refused) {
      counters[REFUSAL_COUNTERS[reason]] += n;
      this.#warn.log(
        `translate:${reason}`,
        `could not translate ${n} of ${
          n + t.translated
        } ${t.from} sessions from the sync group into the local ${to} format: ${
          t.details.get(reason)
        }`,
      );
    }
    if (t.payload === null) return null;
    counters.netTranslatedDatagrams++;
    counters.netTranslatedSessions += t.translated;
    return t.payload;
  }
}
