/**
 * The one wiring of a daemon: {@linkcode startDaemon} opens the kernel channel, the sync group and
 * the stats server on one reactor, with one {@linkcode Counters} object shared by them all, starts
 * the daemon core and returns a {@linkcode DaemonHandle}: what the command line (signals, exit
 * codes), the tests and the benchmarks drive a running daemon through. It logs the start-up and
 * stop lines; `cli.ts` only parses, prints and picks exit codes.
 *
 * @module
 */

import type { Resolved } from "./config/resolve.ts";
import type { Config, LogLevel } from "./config/types.ts";
import { type Counters, createCounters } from "./counters.ts";
import { Daemon } from "./daemon.ts";
import {
  advertiseWorks,
  formatVersion,
  type JoolVersion,
  sessionFormatFor,
} from "./jool/version.ts";
import type { NetlinkKernelChannel } from "./kernel/channel.ts";
import { openKernel } from "./kernel/open.ts";
import { type KernelStartup, MODULE_VERSION_FILE } from "./kernel/startup.ts";
import { formatLatency, LATENCY_BOUNDS_US, type LatencyHistogram } from "./kernel/latency.ts";
import { type Logger, silentLogger } from "./log.ts";
import { MulticastChannel, peerSummary } from "./net/multicast.ts";
import { LINGER_MS, Reactor } from "./reactor.ts";
import { translationNotice } from "./jool/translate.ts";
import { StatsServer } from "./stats/server.ts";
import { formatMetrics, type SecureSnapshot } from "./metrics/exposition.ts";
import { type KernelStatsSource, MetricsServer } from "./metrics/server.ts";
import { reportsAdvertiseDone, SecureChannel } from "./secure/channel.ts";
import { cipherImplementation, libcryptoPath, loadNativeCipher } from "./secure/envelope.ts";
import { Sealer } from "./secure/sealer.ts";
import { LIBCRYPTO_CANDIDATES } from "../ffi/libcrypto.ts";
import { granted, libcPath, usualPath } from "../ffi/libc.ts";
import { loadKeyFile } from "./secure/keyfile.ts";
import { SystemdNotifier } from "./systemd/notify.ts";
import { VERSION } from "./version.ts";
import { warmUp, WARMUP_ROUNDS } from "./warmup.ts";
import { releaseStartupPages } from "./memory.ts";
import { JOOL_DEFAULT_TIMEOUTS } from "./jool/timeouts.ts";

/**
 * Advertise requests (SIGUSR1, `--advertise`) closer together than this are coalesced: the first
 * goes out at once, the rest become one request at the end of the interval. The kernel queues its
 * whole table for each request, so a burst of signals must not become a burst of table dumps.
 */
export const ADVERTISE_INTERVAL_MS = 1000;

/**
 * With `--enable-sync`, how often ss-enabled is checked (and turned on again): a re-created
 * instance starts with it off, and nothing tells joold that an instance was re-created. One
 * GLOBAL_FOREACH per interval is noise next to the sync traffic.
 */
export const SYNC_CHECK_INTERVAL_MS = 2000;

/** How to reach the kernel: tests point the channel at a fake kernel. */
export interface KernelPeer {
  /** Netlink protocol (tests: NETLINK_USERSOCK). */
  readonly protocol?: number;
  /** Port id requests go to (tests: the fake kernel's port). */
  readonly peerPortId?: number;
  /** The module version; read from /sys/module/jool/version when omitted. */
  readonly moduleVersion?: JoolVersion;
}

/** What a daemon may be started with instead of the defaults (tests, benchmarks). */
export interface StartParts {
  /**
   * A reactor the caller runs and stops (tests: one for several daemons). Without it the daemon
   * makes its own, runs it, and stops it when the daemon stops.
   */
  readonly reactor?: Reactor;
  /** The own reactor's linger, ms (default {@linkcode LINGER_MS}; 0 = off). */
  readonly lingerMs?: number;
  /** Where the kernel channel talks to (default: the kernel). */
  readonly kernel?: KernelPeer;
  /** Where events go (default: nowhere). */
  readonly log?: Logger;
  /** Print mode's output, one line per session without newline (default: nowhere). */
  readonly print?: (line: string) => void;
  /**
   * Runs each step that creates sockets (tests: inside a network namespace, as sockets belong to
   * the namespace they are created in). Default: runs it.
   */
  readonly inNamespace?: <T>(open: () => T) => T;
  /** Clock, ms (advertise coalescing, rate limits). */
  readonly now?: () => number;
  /**
   * The kernel's own JSTAT_JOOLD_* counters for the metrics endpoint (absent from the scrape when
   * omitted or when it gives undefined).
   */
  readonly kernelStats?: KernelStatsSource;
}

/** How long a scrape waits for the kernel's counters before it goes without them, ms. */
export const KERNEL_STATS_TIMEOUT_MS = 1000;

/** A running daemon. */
export interface DaemonHandle {
  /** The counters every part of this daemon updates (one object, live). */
  readonly counters: Counters;
  /** What the kernel said at start-up. */
  readonly startup: KernelStartup;
  /** Microseconds from reading each batch off the kernel socket to sending its JOOLD_ACK. */
  readonly ackLatency: LatencyHistogram;
  /**
   * Secure sync's state: whether this daemon is sync-ready and its peers (null without a key
   * file).
   */
  readonly secure: SecureChannel | null;
  /** The kernel channel's netlink port id (where a fake kernel sends batches). */
  readonly portId: number;
  /** Where the metrics endpoint listens (`http://ADDR:PORT/metrics`); null when off. */
  readonly metricsAddress: Deno.NetAddr | null;
  /**
   * Reads the kernel's own JSTAT_JOOLD_* counters over the kernel channel (undefined where Jool has
   * none: before 4.1.12); for the metrics exporter.
   */
  readJooldStats(): Promise<Map<string, bigint> | undefined>;
  /**
   * Resolves once the daemon stopped after {@linkcode DaemonHandle.stop}; rejects with the error
   * that stopped its reactor (everything is closed by then, no stop summary is logged).
   */
  readonly done: Promise<void>;
  /**
   * Asks the kernel to advertise its whole session table, coalescing requests closer together
   * than {@linkcode ADVERTISE_INTERVAL_MS}; logs what it did under `why`.
   */
  advertise(why: string): void;
  /**
   * Re-reads the configuration and applies what can change while running (the log level); logs
   * `<why>: reloaded: ...`, or why it could not, and what needs a restart. Never throws.
   */
  reload(why: string, load: () => Resolved): void;
  /**
   * Logs the stop summary, closes every socket and resolves `done`. Idempotent; resolves (never
   * rejects) once everything is closed.
   */
  stop(): Promise<void>;
}

function errorLine(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The stop summary: every counter, worded for an operator.
 *
 * @param c the counters
 * @returns one line (no `joold:` prefix)
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createCounters } from "./counters.ts";
 * import { stopSummary } from "./start.ts";
 *
 * assert.match(stopSummary(createCounters()), /^counters: 0 batches from the kernel /);
 * ```
 */
export function stopSummary(c: Counters): string {
  return `counters: ${c.kernelBatchesReceived} batches from the kernel (${c.kernelOtherInstanceBatches} of other instances ignored, ${c.kernelAcksSent} ACKs), ` +
    `${c.netDatagramsSent} datagrams sent (${c.netSendErrors} failed, ${c.netSendRetries} retried, ` +
    `${c.netSendLostDatagrams} lost with ${c.netSendLostSessions} sessions), ` +
    `${c.netDatagramsReceived} received (${c.netMalformedDatagrams} malformed, ` +
    `${c.netForeignFormatDatagrams} of another format, ${c.netTruncatedDatagrams} too large), ` +
    `${c.kernelAddsSent} JOOLD_ADD (${c.kernelAddFailures} failed), ${c.kernelAdvertisesSent} JOOLD_ADVERTISE, ` +
    `${c.kernelRefusals} kernel refusals, ${c.kernelOverruns} receive overruns, ` +
    `${c.kernelMalformedMessages} malformed kernel messages`;
}

/** What the secure channel uses, by key id (never a key). */
function secureLine(path: string, secure: SecureChannel): string {
  const [first, ...others] = secure.keys;
  return `secure sync: key file ${path}: sealing with key id ${first.idHex}${
    others.length > 0 ? `, also verifying key ids ${others.map((k) => k.idHex).join(", ")}` : ""
  }; sender ${secure.sender}`;
}

/** Which ChaCha20-Poly1305 seals, and how to get libcrypto's when it is not that one. */
/**
 * The environment variable that starts the sealing thread (`1`), for benchmarks: off by default,
 * as the lab's bulk resync did not measure it faster end to end (BENCHMARKS.md, "The sealing
 * thread"). Read only where `--allow-env` grants it.
 */
export const SEAL_THREAD_ENV = "JOOLD_SEAL_THREAD";

/**
 * Starts the sealing thread of a keyed daemon whose cipher is libcrypto (lib/secure/sealer.ts)
 * when {@linkcode SEAL_THREAD_ENV} is `1`.
 *
 * @returns the start-up log line saying who seals
 */
async function startSealer(
  secure: SecureChannel,
  plain: MulticastChannel,
  counters: Counters,
): Promise<string> {
  const asked = granted({ name: "env", variable: SEAL_THREAD_ENV }) &&
    Deno.env.get(SEAL_THREAD_ENV) === "1";
  if (!asked) return "secure sync: envelopes sealed on the main loop";
  const libcrypto = libcryptoPath();
  if (libcrypto === null) return "secure sync: envelopes sealed on the main loop (no libcrypto)";
  const sealer = await Sealer.start({
    libc: libcPath(),
    libcrypto,
    plan: plain.sendPlan(),
    counters,
    sender: secure.senderBytes,
  });
  if (!(sealer instanceof Sealer)) {
    return `secure sync: envelopes sealed on the main loop (the sealing thread: ${sealer.unavailable})`;
  }
  secure.useSealer(sealer);
  return "secure sync: envelopes sealed and sent by a thread of their own";
}

function cipherLine(loaded: string): string {
  if (cipherImplementation() === "libcrypto") return `secure sync: ChaCha20-Poly1305 by ${loaded}`;
  return `secure sync: ChaCha20-Poly1305 by ${loaded}; add ${
    usualPath(LIBCRYPTO_CANDIDATES)
  } to --allow-ffi for libcrypto's (the same bytes, 2-3x less CPU per envelope)`;
}

/**
 * The secure channel's counters, worded for an operator.
 *
 * @param c the counters
 * @returns one line (no `joold:` prefix)
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createCounters } from "./counters.ts";
 * import { secureSummary } from "./start.ts";
 *
 * assert.match(secureSummary(createCounters()), /^secure sync: 0 envelopes accepted, 0 dropped/);
 * ```
 */
export function secureSummary(c: Counters): string {
  const dropped = c.netSecurePlainDatagrams + c.netSecureMalformed + c.netSecureUnknownKey +
    c.netSecureStale + c.netSecureReplays + c.netSecureAuthFailures;
  return `secure sync: ${c.netSecureAccepted} envelopes accepted, ${dropped} dropped ` +
    `(${c.netSecureAuthFailures} did not verify, ${c.netSecureReplays} replayed, ` +
    `${c.netSecureStale} stale, ${c.netSecureUnknownKey} under an unknown key, ` +
    `${c.netSecureMalformed} malformed, ${c.netSecurePlainDatagrams} plain), ` +
    `${c.netSecureGaps} skipped over (${c.netSecureLate} arrived late, ` +
    `${c.netSecureRecovered} recovered by ${c.netSecureNacksSent} NACKs, ` +
    `${c.netSecureAbandoned} given up), ${c.netSecureRetransmitted} resent for peers ` +
    `(${c.netSecureNacksReceived} NACKs served, ${c.netSecureNacksRefused} refused, ` +
    `${c.netSecureResyncsRequested} resyncs asked, ${c.netSecureUnrecoverable} unrecoverable), ` +
    `${c.netSecureBulksSent} bulks sent, ${c.netSecureBulksReceived} received`;
}

/** The settings a reload cannot apply: they are sockets, opened at start-up. */
function restartNeeded(running: Config, next: Config): string[] {
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const changed: string[] = [];
  if (!same(running.mod, next.mod)) changed.push("the instance");
  if (!same(running.net, next.net)) changed.push("the sync network");
  if (!same(running.stats, next.stats)) changed.push("the stats server");
  if (!same(running.metrics ?? null, next.metrics ?? null)) changed.push("the metrics endpoint");
  if ((running.logFormat ?? "text") !== (next.logFormat ?? "text")) changed.push("the log format");
  return changed;
}

/** Logs what the kernel said at start-up, with what to do about it. */
function logStartup(log: Logger, config: Config, startup: KernelStartup): void {
  log.info(
    `Jool ${formatVersion(startup.version)} (${
      startup.versionSource === "sysfs"
        ? MODULE_VERSION_FILE
        : `assumed: ${MODULE_VERSION_FILE} unreadable`
    }), family id ${startup.familyId}`,
    { event: "kernel", jool: formatVersion(startup.version), familyId: startup.familyId },
  );
  if (!startup.instanceAlive) {
    log.warn(
      `no Jool instance named "${config.mod.instance}" in this network namespace yet: waiting for it (jool instance add)`,
      { event: "instance.missing", instance: config.mod.instance },
    );
  } else if (startup.syncEnabled === false) {
    log.warn(
      `session synchronization is disabled on instance "${config.mod.instance}": run jool global update ss-enabled true, or start joold with --enable-sync`,
      { event: "sync.disabled", instance: config.mod.instance },
    );
  } else if (config.enableSync && startup.syncEnabled === true) {
    log.info(`ss-enabled is on for instance "${config.mod.instance}"`, { event: "sync.enabled" });
  }
}

/**
 * Starts a daemon: logs the start-up lines, opens the kernel channel (resolving the family,
 * checking the instance and its ss-enabled), the sync group (or print mode) and the stats server,
 * starts moving sessions, advertises when configured, and logs `ready`.
 *
 * @param config the validated configuration
 * @param parts test seams: reactor, kernel peer, logger, print sink, namespace, clock
 * @returns the running daemon
 * @throws {JoolNotLoadedError} when Jool's family is missing
 * @throws {KernelError} when the kernel refuses a start-up request
 * @throws {NetworkConfigError} naming the network option at fault
 * @throws {Error} when the stats address cannot be bound, or a socket call fails
 * @example
 * ```ts ignore
 * const daemon = await startDaemon(config, { log });
 * Deno.addSignalListener("SIGTERM", () => daemon.stop());
 * await daemon.done;
 * ```
 */
export async function startDaemon(config: Config, parts: StartParts = {}): Promise<DaemonHandle> {
  const log = parts.log ?? silentLogger;
  const inNamespace = parts.inNamespace ?? (<T>(open: () => T) => open());
  const owned = parts.reactor === undefined;
  const reactor = parts.reactor ?? new Reactor({ lingerMs: parts.lingerMs ?? LINGER_MS });
  const counters = createCounters();
  const closers: (() => void | Promise<void>)[] = [];
  // Settles only when the own reactor's loop fails (poll itself failed).
  let running: Promise<void> = Promise.resolve();
  let reactorFailed: Promise<unknown> = new Promise(() => {});
  if (owned) {
    reactor.onError((error) => log.error(errorLine(error), { event: "reactor" }));
    const loop = reactor.run();
    running = loop.catch(() => {});
    reactorFailed = loop.then(() => new Promise(() => {}), (error) => error);
  }
  const shutDown = async () => {
    for (const close of closers.reverse()) await close();
    closers.length = 0;
    if (owned) {
      reactor.stop();
      await running;
    }
  };
  try {
    log.info(
      `joold ${VERSION} starting: instance "${config.mod.instance}", ${
        config.net?.peers
          ? `unicast sync peers ${config.net.peers.join(", ")}, port ${config.net.multicastPort}`
          : config.net
          ? `sync group ${config.net.multicastAddress} port ${config.net.multicastPort}`
          : "sync network disabled (printing the kernel's sessions)"
      }${config.stats ? `, stats on ${config.stats.address} port ${config.stats.port}` : ""}${
        config.metrics ? `, metrics on http://${config.metrics.permission}/metrics` : ""
      }`,
      { event: "starting", version: VERSION, instance: config.mod.instance },
    );
    // Before anything opens: a missing --allow-net is a one-line error, not a half-started daemon.
    if (config.metrics) MetricsServer.checkPermission(config.metrics);
    const { channel: kernel, startup } = await inNamespace(() =>
      openKernel(reactor, {
        instance: config.mod.instance,
        counters,
        enableSync: config.enableSync,
        ...parts.kernel,
      })
    );
    closers.push(() => kernel.close());
    logStartup(log, config, startup);
    if (config.net?.translateSessions === true && startup.versionSource !== "fallback") {
      const notice = translationNotice(sessionFormatFor(startup.version), startup.pool6);
      log[notice.level](notice.message);
    }
    kernel.onNotice((level, text) => log[level](text));
    // A module the channel cannot serve: exit non-zero, the supervisor restarts joold for it.
    const kernelFailed = new Promise<unknown>((resolve) => kernel.onFatal(resolve));
    if (config.enableSync) {
      kernel.keepSyncEnabled(SYNC_CHECK_INTERVAL_MS);
      kernel.onFamilyBack(() => void kernel.checkSyncEnabled());
    }
    const net = config.net;
    // Read before any socket opens: a bad key file stops the start-up, nothing half-open.
    const keys = net?.keyFile === undefined ? null : loadKeyFile(net.keyFile);
    if (net && keys === null) {
      const unused = [
        net.resendBuffer !== undefined ? `"resend buffer"` : "",
        net.syncReadyTimeout !== undefined ? `"sync-ready timeout"` : "",
      ].filter((k) => k !== "");
      if (unused.length > 0) {
        log.warn(
          `${unused.join(" and ")} ${unused.length === 1 ? "applies" : "apply"} to secure ` +
            `sync only: ignored without a "key file" (--net.key)`,
        );
      }
    }
    const plain = net
      ? inNamespace(() =>
        MulticastChannel.open(reactor, net, counters, { peers: net.peersAllowed })
      )
      : null;
    if (plain) closers.push(() => plain.close());
    // A native cipher, loaded only by a keyed daemon: libcrypto when granted, else node:crypto
    // (seconds under emulation).
    const cipher = plain && keys ? await loadNativeCipher() : "";
    const secure = plain && keys
      ? new SecureChannel({
        inner: plain,
        keys,
        counters,
        log,
        now: parts.now,
        resendBufferBytes: net!.resendBuffer,
        syncReadyTimeoutMs: net!.syncReadyTimeout === undefined
          ? undefined
          : net!.syncReadyTimeout * 1000,
        timers: true,
      })
      : null;
    // Secure sync's control plane asks the kernel for resyncs through the handle's coalesced
    // advertise (set once the handle exists: nothing asks before the first datagram arrives).
    let resync: (why: string) => void = () => {};
    if (secure) {
      // Its control plane's timer stops with it (it also closes the plain channel: idempotent).
      closers.push(() => secure.close());
      log.info(secureLine(net!.keyFile!, secure));
      log.info(cipherLine(cipher));
      log.info(await startSealer(secure, plain!, counters));
      secure.setAdvertiser((why) => {
        if (!advertiseWorks(startup.version)) return "unavailable";
        resync(why);
        return reportsAdvertiseDone(startup.version) ? "reports-done" : "no-report";
      });
      secure.onSyncReady((reason, waiting) =>
        log[reason === "timeout" ? "warn" : "info"](
          `secure sync: sync-ready (${reason}${
            waiting.length > 0 ? `: no bulk from ${waiting.join(", ")}` : ""
          })`,
          { event: "sync-ready", reason },
        )
      );
    }
    const network = secure ?? plain;
    const statsConfig = config.stats;
    const stats = statsConfig
      ? inNamespace(() => StatsServer.open(reactor, statsConfig, counters))
      : null;
    if (stats) closers.push(() => stats.close());
    // The exposure of the sync and stats sockets (no in interface, a wildcard stats address).
    for (const warning of [...plain?.warnings ?? [], ...stats?.warnings ?? []]) log.warn(warning);
    // Start-up's pages of Deno's executable leave the resident set; the warm-up, next, brings the
    // hot path's back (lib/memory.ts).
    const released = releaseStartupPages();
    log.debug(
      "unavailable" in released
        ? `start-up pages not released: ${released.unavailable}`
        : `released ${
          (released.kb / 1024).toFixed(1)
        } MB of start-up pages (${released.mappings} mappings)`,
    );
    if (startup.versionSource !== "fallback") {
      // The hot path compiled before the first batch: a restarted standby gets its peers' whole
      // table at once (lib/warmup.ts). Runs before READY, touches nothing outside itself.
      const began = performance.now();
      const warm = await inNamespace(() =>
        warmUp({
          ...startup,
          instance: config.mod.instance,
          timeouts: startup.timeouts ?? JOOL_DEFAULT_TIMEOUTS,
          reactor,
          family: plain?.family,
          keyed: secure !== null,
        })
      );
      log.debug(
        `warm-up: ${WARMUP_ROUNDS} rounds in ${Math.round(performance.now() - began)} ms ` +
          `(network: ${warm.network}${
            warm.opened ? `; ${warm.opened} envelopes sealed and opened` : ""
          })`,
      );
    }
    const daemon = new Daemon({
      kernel,
      network,
      counters,
      log,
      print: parts.print,
      now: parts.now,
      debug: config.logLevel === "debug",
      // An assumed version must not decide which datagrams are dropped.
      localFormat: startup.versionSource === "fallback"
        ? undefined
        : sessionFormatFor(startup.version),
      translate: config.net?.translateSessions === true,
      // The peers' expirations are clamped to the local instance's own timeouts.
      timeouts: startup.timeouts,
      pool6: startup.pool6,
    });
    daemon.start();
    kernel.onAdvertiseDone(() => {
      log.debug("the kernel accepted JOOLD_ADVERTISE", { event: "advertise.done" });
      secure?.advertiseDone();
    });
    const metricsConfig = config.metrics;
    const metrics = metricsConfig
      ? MetricsServer.open(
        metricsConfig,
        scraper(
          config,
          counters,
          kernel.ackLatency,
          startup,
          parts.kernelStats ?? (() => kernel.readJooldStats()),
          secure,
          plain,
          parts.now ?? Date.now,
        ),
        (error) => log.warn(`metrics: a scrape failed: ${errorLine(error)}`, { event: "metrics" }),
        () => secure?.syncReady ?? null,
      )
      : null;
    if (metrics) closers.push(() => metrics.close());
    const handle = new RunningDaemon({
      config,
      log,
      counters,
      kernel,
      startup,
      daemon,
      secure,
      plain,
      shutDown,
      reactorFailed: Promise.race([reactorFailed, kernelFailed]),
      now: parts.now ?? Date.now,
      metricsAddress: metrics?.address ?? null,
    });
    resync = (why) => handle.advertise(why);
    if (config.advertiseOnStart) handle.advertise("--advertise");
    // Outside inNamespace: systemd's socket is the host's. Closed first: STOPPING=1 (closers.reverse).
    const { instance } = config.mod;
    const context = { instance, ...startup, network: network !== null };
    const notifier = SystemdNotifier.open({ reactor, counters, context, log, now: parts.now });
    closers.push(() => notifier.close());
    log.info("ready", { event: "ready" });
    notifier.ready();
    return handle;
  } catch (error) {
    await shutDown();
    throw error;
  }
}

/** What a {@linkcode RunningDaemon} is made of. */
interface Running {
  readonly config: Config;
  readonly log: Logger;
  readonly counters: Counters;
  readonly kernel: NetlinkKernelChannel;
  readonly startup: KernelStartup;
  readonly daemon: Daemon;
  /** The secure channel, when a key file is configured. */
  readonly secure: SecureChannel | null;
  /** The sync socket (its per-peer counters, with unicast peers). */
  readonly plain: MulticastChannel | null;
  /** Closes every socket (and stops the own reactor). */
  readonly shutDown: () => Promise<void>;
  /** Resolves with the error that stopped the own reactor or the kernel channel, if ever. */
  readonly reactorFailed: Promise<unknown>;
  readonly now: () => number;
  readonly metricsAddress: Deno.NetAddr | null;
}

/**
 * The metrics endpoint's collector: a snapshot of the live counters, the ACK latency, the build
 * facts, each unicast peer's counters (none with a group) and, when a source is given, the
 * kernel's counters (absent when it fails, gives nothing or takes longer than
 * {@linkcode KERNEL_STATS_TIMEOUT_MS}).
 */
function scraper(
  config: Config,
  counters: Counters,
  ackLatency: LatencyHistogram,
  startup: KernelStartup,
  kernelStats: StartParts["kernelStats"],
  secure: SecureChannel | null,
  plain: MulticastChannel | null,
  now: () => number,
): () => Promise<string> {
  const info = {
    version: VERSION,
    joolVersion: formatVersion(startup.version),
    sessionFormat: sessionFormatFor(startup.version),
    instance: config.mod.instance,
    mode: config.net ? "plain" as const : "print" as const,
  };
  return async () => {
    let stats: ReadonlyMap<string, bigint | number> | undefined;
    if (kernelStats) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        stats = await Promise.race([
          kernelStats(),
          new Promise<undefined>((resolve) => {
            timer = setTimeout(() => resolve(undefined), KERNEL_STATS_TIMEOUT_MS);
          }),
        ]);
      } catch {
        stats = undefined;
      } finally {
        clearTimeout(timer);
      }
    }
    return formatMetrics({
      counters,
      ackLatencyUs: { bounds: LATENCY_BOUNDS_US, counts: ackLatency.counts(), sum: ackLatency.sum },
      info,
      kernelStats: stats,
      secure: secure === null ? undefined : secureSnapshot(secure, now()),
      // Copied in the same turn as the counters are read, so the peers add up to their totals.
      peers: plain?.unicast ? plain.destinationStats().map((d) => ({ ...d })) : undefined,
    });
  };
}

/** Secure sync's state for a scrape: sync-ready, the ring, the live peers. */
function secureSnapshot(secure: SecureChannel, now: number): SecureSnapshot {
  return {
    syncReady: secure.syncReady,
    resendBufferBytes: secure.ring.bytes,
    peers: secure.livePeers(now).map((p) => ({
      sender: p.sender,
      address: p.address ?? "",
      lastSeenSeconds: Math.max(0, now - p.lastHeard) / 1000,
      sequence: p.window.top,
      missing: p.gaps.missing,
      bulkReceived: p.bulkReceived,
    })),
  };
}

/** The handle of a started daemon: stop, advertise (coalesced), reload. */
class RunningDaemon implements DaemonHandle {
  readonly counters: Counters;
  readonly startup: KernelStartup;
  readonly ackLatency: LatencyHistogram;
  readonly portId: number;
  readonly metricsAddress: Deno.NetAddr | null;
  readonly secure: SecureChannel | null;
  readonly done: Promise<void>;
  readonly #parts: Running;
  #config: Config;
  #stopping: Promise<void> | null = null;
  #resolveDone: () => void = () => {};
  #lastAdvertise = -Infinity;
  /** Advertise requests held for the end of the interval, and its timer. */
  #held = 0;
  #heldTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(parts: Running) {
    this.#parts = parts;
    this.#config = parts.config;
    this.counters = parts.counters;
    this.startup = parts.startup;
    this.ackLatency = parts.kernel.ackLatency;
    this.portId = parts.kernel.portId;
    this.metricsAddress = parts.metricsAddress;
    this.secure = parts.secure;
    let rejectDone: (error: unknown) => void = () => {};
    this.done = new Promise<void>((resolve, reject) => {
      this.#resolveDone = resolve;
      rejectDone = reject;
    });
    // Callers that only ever call stop() must not see a failure as an unhandled rejection.
    this.done.catch(() => {});
    // A failed reactor: everything closed, `done` rejects, no stop summary (nothing stopped).
    parts.reactorFailed.then(async (error) => {
      if (this.#stopping !== null) return;
      clearTimeout(this.#heldTimer);
      this.#stopping = parts.shutDown();
      await this.#stopping;
      rejectDone(error);
    });
  }

  readJooldStats(): Promise<Map<string, bigint> | undefined> {
    return this.#parts.kernel.readJooldStats();
  }

  advertise(why: string): void {
    if (this.#stopping !== null) return;
    if (this.#heldTimer !== undefined) {
      this.#held++;
      return;
    }
    const wait = this.#lastAdvertise + ADVERTISE_INTERVAL_MS - this.#parts.now();
    if (wait <= 0) return this.#sendAdvertise(why, 0);
    this.#held = 1;
    this.#parts.log.debug(
      `${why}: an advertise request went out less than ${ADVERTISE_INTERVAL_MS} ms ago: this one follows in ${wait} ms`,
    );
    this.#heldTimer = setTimeout(() => {
      this.#heldTimer = undefined;
      const held = this.#held;
      this.#held = 0;
      this.#sendAdvertise(why, held);
    }, wait);
  }

  #sendAdvertise(why: string, coalesced: number): void {
    const { log, startup, daemon } = this.#parts;
    if (!advertiseWorks(startup.version)) {
      log.warn(
        `${why}: Jool ${
          formatVersion(startup.version)
        } ignores JOOLD_ADVERTISE (it works from 4.1.11 on); nothing will be sent`,
      );
    }
    this.#lastAdvertise = this.#parts.now();
    try {
      daemon.advertise();
      log.info(
        `${why}: asked the kernel to advertise its session table${
          coalesced > 0
            ? ` (${coalesced} requests within ${ADVERTISE_INTERVAL_MS} ms of the previous one, coalesced into this one)`
            : ""
        }`,
        { event: "advertise", why, coalesced },
      );
    } catch (error) {
      log.error(`${why}: ${errorLine(error)}`, { event: "advertise.failed" });
    }
  }

  reload(why: string, load: () => Resolved): void {
    if (this.#stopping !== null) return;
    const { log, daemon } = this.#parts;
    let next: Config;
    try {
      const resolved = load();
      for (const warning of resolved.warnings) {
        log.warn(`${why}: ${warning}`, { event: "config.warning" });
      }
      next = resolved.config;
    } catch (error) {
      log.error(`${why}: cannot reload, the running configuration stays: ${errorLine(error)}`, {
        event: "reload.failed",
      });
      return;
    }
    this.#reloadKeys(why);
    const was: LogLevel = this.#config.logLevel;
    if (log.level !== undefined) log.level = next.logLevel;
    daemon.debug = next.logLevel === "debug";
    log.info(
      `${why}: reloaded: log level ${next.logLevel}${
        next.logLevel === was ? " (unchanged)" : ` (was ${was})`
      }`,
    );
    const changed = restartNeeded(this.#config, next);
    if (changed.length > 0) {
      log.warn(
        `${why}: ${
          changed.join(", ")
        } changed in the configuration: restart joold to apply (a reload applies the log level only)`,
      );
    }
    this.#config = { ...this.#config, logLevel: next.logLevel };
  }

  /** Re-reads the running key file (a changed path needs a restart, as every net setting). */
  #reloadKeys(why: string): void {
    const { log, secure } = this.#parts;
    const path = this.#config.net?.keyFile;
    if (secure === null || path === undefined) return;
    try {
      secure.setKeys(loadKeyFile(path));
      log.info(`${why}: ${secureLine(path, secure)}`);
    } catch (error) {
      log.error(`${why}: the running keys stay: ${errorLine(error)}`);
    }
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      clearTimeout(this.#heldTimer);
      const { log, counters, kernel, shutDown } = this.#parts;
      log.info("stopping", { event: "stopping" });
      this.#parts.daemon.stop();
      log.info(stopSummary(counters), { event: "counters", ...counters });
      if (this.#parts.secure !== null) log.info(secureSummary(counters), { event: "secure" });
      const plain = this.#parts.plain;
      if (plain?.unicast) log.info(peerSummary(plain.destinationStats()), { event: "peers" });
      const latency = kernel.ackLatency.summary();
      if (latency.count > 0) {
        log.info(`kernel->ACK latency: ${formatLatency(latency)}`, {
          event: "latency",
          ...latency,
        });
      }
      await shutDown();
      this.#resolveDone();
    })();
    return this.#stopping;
  }
}
