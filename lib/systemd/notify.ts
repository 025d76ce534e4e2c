/**
 * systemd's notification protocol (sd_notify(3)), spoken without libsystemd: one datagram of
 * `KEY=value` lines per state change, sent to the unix datagram socket named by `$NOTIFY_SOCKET`
 * (a path, or an abstract name when it starts with `@`). joold says `READY=1` once its sockets are
 * open, keeps `STATUS=` current (at most every {@linkcode STATUS_INTERVAL_MS}, at once when the
 * state changes), pings `WATCHDOG=1` at half of `$WATCHDOG_USEC` and says `STOPPING=1` when it
 * stops.
 *
 * The watchdog ping comes from a timerfd dispatched by the daemon's reactor, like a socket: a ping
 * proves that the one loop every session goes through is turning. A stuck handler or a dead loop
 * stops the pings, and systemd restarts the service (Restart=on-failure).
 *
 * Reading the environment needs `--allow-env=NOTIFY_SOCKET,WATCHDOG_USEC,WATCHDOG_PID` (exactly
 * {@linkcode NOTIFY_VARIABLES}); without it joold does not notify, and says so at debug level.
 *
 * @module
 */

import {
  AF_UNIX,
  close,
  granted,
  libc,
  periodicTimerFd,
  sendto,
  SOCK_DGRAM,
  socket,
} from "../../ffi/libc.ts";
import { errnoName } from "../../ffi/errno.ts";
import type { Counters } from "../counters.ts";
import type { Logger } from "../log.ts";
import type { Reactor } from "../reactor.ts";

/** The environment variables joold reads for systemd, and the only ones the unit lets it read. */
export const NOTIFY_VARIABLES = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] as const;

/** `STATUS=` is refreshed at most this often (ms) while only counters change. */
export const STATUS_INTERVAL_MS = 2000;

/** What systemd told joold through its environment. */
export interface NotifyEnvironment {
  /** `$NOTIFY_SOCKET`: a path, or `@name` for the abstract namespace. */
  readonly socket: string;
  /** `$WATCHDOG_USEC` when the watchdog is on and meant for this process, else undefined. */
  readonly watchdogUsec?: number;
}

/**
 * Interprets systemd's variables as sd_notify(3) and sd_watchdog_enabled(3) do: no socket, no
 * notifications; a watchdog only with a positive `WATCHDOG_USEC` and, when `WATCHDOG_PID` is set,
 * only in the process it names.
 *
 * @param get reads one variable (undefined when unset or unreadable)
 * @param pid this process's id
 * @returns the environment, or undefined when there is nothing to notify
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseNotifyEnvironment } from "./notify.ts";
 *
 * const env: Record<string, string> = { NOTIFY_SOCKET: "/run/systemd/notify", WATCHDOG_USEC: "30000000" };
 * assert.deepEqual(parseNotifyEnvironment((n) => env[n], 42), {
 *   socket: "/run/systemd/notify",
 *   watchdogUsec: 30_000_000,
 * });
 * assert.equal(parseNotifyEnvironment(() => undefined, 42), undefined);
 * ```
 */
export function parseNotifyEnvironment(
  get: (name: (typeof NOTIFY_VARIABLES)[number]) => string | undefined,
  pid: number,
): NotifyEnvironment | undefined {
  const path = get("NOTIFY_SOCKET");
  if (!path) return undefined;
  const usec = get("WATCHDOG_USEC");
  const watchPid = get("WATCHDOG_PID");
  const forUs = !watchPid || (/^\d+$/.test(watchPid) && Number(watchPid) === pid);
  const watchdogUsec = usec && /^\d+$/.test(usec) && Number(usec) > 0 && forUs
    ? Number(usec)
    : undefined;
  return watchdogUsec === undefined ? { socket: path } : { socket: path, watchdogUsec };
}

/**
 * Reads systemd's variables from the process environment, each only where Deno's permissions
 * grant it (never prompting).
 *
 * @param log where to say why nothing is notified (debug)
 * @returns the environment, or undefined when joold does not notify
 */
export function readNotifyEnvironment(log: Logger): NotifyEnvironment | undefined {
  const missing = NOTIFY_VARIABLES.filter((name) => !granted({ name: "env", variable: name }));
  if (missing.includes("NOTIFY_SOCKET")) {
    log.debug(
      `systemd notifications off: not granted --allow-env=${NOTIFY_VARIABLES.join(",")}`,
    );
    return undefined;
  }
  if (missing.length > 0) {
    log.debug(`systemd watchdog off: not granted --allow-env=${missing.join(",")}`);
  }
  const env = parseNotifyEnvironment(
    (name) => missing.includes(name) ? undefined : Deno.env.get(name),
    Deno.pid,
  );
  if (env === undefined) log.debug("systemd notifications off: NOTIFY_SOCKET is not set");
  return env;
}

/**
 * Encodes `$NOTIFY_SOCKET` as a `struct sockaddr_un`: the family (host order), then the path and
 * its NUL; for `@name`, a NUL then the name, with no terminator (the length bounds it).
 *
 * @param name an absolute path, or `@` and an abstract name
 * @returns the address bytes, exactly as long as the address
 * @throws {Error} naming the value when it is neither, or longer than sun_path's 108 bytes
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unixAddress } from "./notify.ts";
 *
 * assert.deepEqual(unixAddress("@n"), Uint8Array.of(1, 0, 0, 0x6e));
 * assert.deepEqual(unixAddress("/n"), Uint8Array.of(1, 0, 0x2f, 0x6e, 0));
 * ```
 */
export function unixAddress(name: string): Uint8Array<ArrayBuffer> {
  const abstract = name.startsWith("@");
  if (!abstract && !name.startsWith("/")) {
    throw new Error(
      `NOTIFY_SOCKET=${name}: neither an absolute path nor an abstract socket name (@...)`,
    );
  }
  const bytes = new TextEncoder().encode(abstract ? name.slice(1) : name);
  // sun_path is 108 bytes: a path needs its NUL, an abstract name its leading NUL.
  if (bytes.length + 1 > 108) {
    throw new Error(`NOTIFY_SOCKET=${name}: longer than a unix socket address (107 bytes)`);
  }
  const out = new Uint8Array(2 + 1 + bytes.length);
  new DataView(out.buffer).setUint16(0, AF_UNIX, true);
  out.set(bytes, abstract ? 3 : 2);
  return out;
}

/** What the status line says about the daemon besides its counters. */
export interface StatusContext {
  /** The Jool instance. */
  readonly instance: string;
  /** Whether the instance existed at start-up. */
  readonly instanceAlive: boolean;
  /** The instance's ss-enabled at start-up (undefined: unknown). */
  readonly syncEnabled: boolean | undefined;
  /** Whether there is a sync network (false: print mode). */
  readonly network: boolean;
}

/**
 * The `STATUS=` text: the state (waiting for the instance, ss-enabled off, syncing or printing)
 * and the counters an operator looks at first. A batch from the kernel shows the instance exists
 * and syncs, whatever start-up saw.
 *
 * @param c the counters
 * @param context the daemon's state at start-up
 * @returns one line
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createCounters } from "../counters.ts";
 * import { statusText } from "./notify.ts";
 *
 * const c = createCounters();
 * c.netDatagramsSent = 3;
 * const context = { instance: "default", instanceAlive: true, syncEnabled: true, network: true };
 * assert.equal(statusText(c, context), "syncing: 3 datagrams sent, 0 received");
 * ```
 */
export function statusText(c: Counters, context: StatusContext): string {
  const { state, problems } = syncState(c, context);
  if (state === "waiting") {
    return `waiting for Jool instance "${context.instance}" (jool instance add)`;
  }
  if (state === "sync-off") {
    return `session synchronization is off on instance "${context.instance}" (jool global update ss-enabled true)`;
  }
  const counts = state === "syncing"
    ? `syncing: ${c.netDatagramsSent} datagrams sent, ${c.netDatagramsReceived} received`
    : `printing: ${c.kernelBatchesReceived} batches from the kernel`;
  const listed = problems.map(([n, what]) => `${n} ${what}`).join(", ");
  return problems.length > 0 ? `${counts} (${listed})` : counts;
}

/** The state a status names, and the non-zero problem counters; a new one is a state change. */
function syncState(c: Counters, context: StatusContext) {
  const flowing = c.kernelBatchesReceived > 0;
  const state = !context.instanceAlive && !flowing
    ? "waiting"
    : context.syncEnabled === false && !flowing
    ? "sync-off"
    : context.network
    ? "syncing"
    : "printing";
  const problems = ([
    [c.kernelRefusals, "kernel refusals"],
    [c.kernelOverruns, "receive overruns"],
    [c.netSendErrors, "send errors"],
    [c.netMalformedDatagrams + c.netForeignFormatDatagrams, "datagrams dropped"],
  ] as const).filter(([n]) => n > 0);
  return { state, problems, key: [state, ...problems.map(([, what]) => what)].join(",") };
}

/** What a {@linkcode SystemdNotifier} reports on. */
export interface NotifierParts {
  /** The reactor that dispatches the watchdog's timer. */
  readonly reactor: Reactor;
  /** The daemon's counters. */
  readonly counters: Counters;
  /** The state the status line names. */
  readonly context: StatusContext;
  /** Where failures to notify go. */
  readonly log: Logger;
  /** systemd's environment (default: {@linkcode readNotifyEnvironment}); undefined: no systemd. */
  readonly env?: NotifyEnvironment | undefined;
  /** Clock, ms (status throttling). */
  readonly now?: () => number;
}

/**
 * Tells systemd how the daemon is doing. Without `$NOTIFY_SOCKET` (or the permission to read it)
 * every method does nothing, so callers need no conditionals.
 *
 * @example
 * ```ts ignore
 * const notifier = SystemdNotifier.open({ reactor, counters, context, log });
 * notifier.ready();
 * // ...
 * notifier.close(); // STOPPING=1
 * ```
 */
export class SystemdNotifier {
  readonly #parts: NotifierParts;
  #address: Uint8Array<ArrayBuffer> | null = null;
  readonly #now: () => number;
  #fd = -1;
  #timerFd = -1;
  #watchdog = false;
  #lastStatus = "";
  #lastStatusAt = -Infinity;
  #lastState = "";
  #failures = 0;
  /** Notifications sent (tests). */
  sent = 0;

  private constructor(parts: NotifierParts, env: NotifyEnvironment | undefined) {
    this.#parts = parts;
    this.#now = parts.now ?? Date.now;
    if (env === undefined) return;
    // Half the watchdog's interval, as sd_watchdog_enabled(3) advises; the status needs no more.
    const periodMs = env.watchdogUsec !== undefined
      ? Math.min(env.watchdogUsec / 2000, STATUS_INTERVAL_MS)
      : STATUS_INTERVAL_MS;
    this.#address = unixAddress(env.socket);
    this.#fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    try {
      this.#timerFd = periodicTimerFd(periodMs);
    } catch (error) {
      close(this.#fd);
      this.#fd = -1;
      throw error;
    }
    this.#watchdog = env.watchdogUsec !== undefined;
    parts.reactor.add(this.#timerFd, () => this.#tick());
    parts.log.debug(
      `systemd notifications to ${env.socket}${
        this.#watchdog ? `, watchdog every ${Math.round(periodMs)} ms` : ""
      }`,
    );
  }

  /**
   * Opens the notification socket and the watchdog's timer when systemd asked for them.
   *
   * @param parts the reactor, counters, state and logger
   * @returns the notifier; a silent one without `$NOTIFY_SOCKET`, or when its address is unusable
   *   or the socket or timer cannot be made (logged as a warning: the daemon runs on regardless)
   */
  static open(parts: NotifierParts): SystemdNotifier {
    const env = "env" in parts ? parts.env : readNotifyEnvironment(parts.log);
    try {
      return new SystemdNotifier(parts, env);
    } catch (error) {
      parts.log.warn(
        `systemd notifications off: ${error instanceof Error ? error.message : String(error)}`,
      );
      return new SystemdNotifier(parts, undefined);
    }
  }

  /** Whether notifications go anywhere. */
  get active(): boolean {
    return this.#fd >= 0;
  }

  /** `READY=1` with the first status. */
  ready(): void {
    this.#send(`READY=1\nSTATUS=${this.#status()}`);
  }

  /** `STOPPING=1`; then closes the timer and the socket. Idempotent. */
  close(): void {
    if (this.#fd < 0) return;
    this.#send("STOPPING=1\nSTATUS=stopping");
    this.#parts.reactor.remove(this.#timerFd);
    close(this.#timerFd);
    close(this.#fd);
    this.#fd = this.#timerFd = -1;
  }

  /** The current status, remembered as sent. */
  #status(): string {
    const { counters, context } = this.#parts;
    this.#lastStatus = statusText(counters, context);
    this.#lastStatusAt = this.#now();
    this.#lastState = syncState(counters, context).key;
    return this.#lastStatus;
  }

  /** The timer fired, on the reactor: the loop is alive. */
  #tick(): void {
    const sink = new Uint8Array(8);
    while (Number(libc().read(this.#timerFd, sink, 8n)) > 0) { /* drain the expirations */ }
    const lines: string[] = [];
    if (this.#watchdog) lines.push("WATCHDOG=1");
    const { counters, context } = this.#parts;
    // A new state (or a first problem) at once; new counts at most every STATUS_INTERVAL_MS.
    const changedState = syncState(counters, context).key !== this.#lastState;
    if (
      statusText(counters, context) !== this.#lastStatus &&
      (changedState || this.#now() - this.#lastStatusAt >= STATUS_INTERVAL_MS)
    ) {
      lines.push(`STATUS=${this.#status()}`);
    }
    if (lines.length > 0) this.#send(lines.join("\n"));
  }

  #send(message: string): void {
    if (this.#fd < 0 || this.#address === null) return;
    const n = sendto(this.#fd, new TextEncoder().encode(message), this.#address);
    if (n >= 0) {
      this.sent++;
      return;
    }
    // systemd gone or its queue full: the daemon goes on; say it once, then only at debug.
    const line = `systemd notification failed: sendto: ${errnoName(-n)}`;
    if (this.#failures++ === 0) this.#parts.log.warn(line);
    else this.#parts.log.debug(line);
  }
}
