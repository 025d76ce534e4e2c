/**
 * joold's command line: the composition root. It parses the arguments, loads and validates the
 * configuration, starts the daemon, handles signals, prints errors and picks the exit code
 * (0 clean stop, 1 runtime failure, 2 bad configuration).
 *
 * @example
 * ```sh
 * deno run --allow-ffi=/lib/x86_64-linux-gnu/libc.so.6 --allow-read --v8-flags=--no-turbofan cli.ts netsocket.json modsocket.json
 * ```
 *
 * @module
 */

import { parseCommandLine } from "./lib/config/args.ts";
import { ConfigError } from "./lib/config/error.ts";
import { checkHost, formatHostReport } from "./lib/config/host.ts";
import { formatConfig } from "./lib/config/print.ts";
import { resolveConfig } from "./lib/config/resolve.ts";
import type { Config } from "./lib/config/types.ts";
import { helpText } from "./lib/help.ts";
import { createLogger, type Logger } from "./lib/log.ts";
import { VERSION } from "./lib/version.ts";
import { Daemon } from "./lib/daemon.ts";
import {
  MODULE_VERSION_FILE,
  NETLINK_USERSOCK,
  NetlinkKernelChannel,
} from "./lib/kernel/channel.ts";
import { granted } from "./ffi/libc.ts";
import { advertiseWorks, formatVersion, sessionFormatFor } from "./lib/jool/version.ts";
import { formatLatency } from "./lib/kernel/latency.ts";
import { MulticastChannel } from "./lib/net/multicast.ts";
import { LINGER_MS, Reactor } from "./lib/reactor.ts";
import { createCounters } from "./lib/stats/counters.ts";
import { StatsServer } from "./lib/stats/server.ts";

/** Exit codes of joold. */
export const EXIT = { ok: 0, failure: 1, badConfig: 2 } as const;

const encoder = new TextEncoder();

function writeAll(stream: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  let done = 0;
  while (done < bytes.length) done += stream.writeSync(bytes.subarray(done));
}

function errorLine(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Test seam: `JOOLD_TEST_NETLINK_PEER=<port id>` makes the kernel channel talk NETLINK_USERSOCK to a
 * fake kernel at that port. Read only when `--allow-env=JOOLD_TEST_NETLINK_PEER` is granted, which
 * the production permission flags never do.
 *
 * @returns the channel options to override, if any
 */
function testKernelPeer(): { protocol: number; peerPortId: number } | Record<never, never> {
  const name = "JOOLD_TEST_NETLINK_PEER";
  if (!granted({ name: "env", variable: name })) return {};
  const value = Deno.env.get(name);
  return value ? { protocol: NETLINK_USERSOCK, peerPortId: Number(value) } : {};
}

/**
 * The reactor's synchronous linger: {@linkcode LINGER_MS}, or, as a benchmark knob,
 * `JOOLD_LINGER_MS=<ms>` (lib/reactor.ts; 0 turns it off). The knob is read only when
 * `--allow-env=JOOLD_LINGER_MS` is granted, which the production permission flags never do.
 *
 * @returns the reactor options
 */
function reactorTuning(): { lingerMs: number } {
  const name = "JOOLD_LINGER_MS";
  const value = granted({ name: "env", variable: name }) ? Deno.env.get(name) : undefined;
  return { lingerMs: value && /^\d+$/.test(value) ? Number(value) : LINGER_MS };
}

/**
 * Runs the daemon with a validated configuration until SIGTERM or SIGINT.
 *
 * @param config the effective configuration
 * @param log where events are reported
 * @returns the exit code: 0 after a clean stop, 1 when startup or the loop fails
 */
async function serve(config: Config, log: Logger): Promise<number> {
  const reactor = new Reactor(reactorTuning());
  const counters = createCounters();
  const closers: (() => void)[] = [];
  let failure: unknown = null;
  reactor.onError((error) => log.error(errorLine(error)));
  const running = reactor.run().catch((error) => {
    failure = error;
  });
  let stop: () => void = () => {};
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const signals: [Deno.Signal, () => void][] = [];
  try {
    log.info(
      `joold ${VERSION} starting: instance "${config.mod.instance}", ${
        config.net
          ? `sync group ${config.net.multicastAddress} port ${config.net.multicastPort}`
          : "sync network disabled (printing the kernel's sessions)"
      }${config.stats ? `, stats on ${config.stats.address} port ${config.stats.port}` : ""}`,
    );
    const { channel: kernel, status } = await NetlinkKernelChannel.open(
      reactor,
      { instance: config.mod.instance, ...testKernelPeer() },
      config.enableSync,
    );
    closers.push(() => kernel.close());
    log.info(
      `Jool ${formatVersion(status.version)} (${
        status.versionSource === "sysfs"
          ? MODULE_VERSION_FILE
          : `assumed: ${MODULE_VERSION_FILE} unreadable`
      }), family id ${kernel.family.id}`,
    );
    if (!status.instanceAlive) {
      log.warn(
        `no Jool instance named "${config.mod.instance}" in this network namespace yet: waiting for it (jool instance add)`,
      );
    } else if (status.syncEnabled === false) {
      log.warn(
        `session synchronization is disabled on instance "${config.mod.instance}": run jool global update ss-enabled true, or start joold with --enable-sync`,
      );
    } else if (config.enableSync && status.syncEnabled === true) {
      log.info(`ss-enabled is on for instance "${config.mod.instance}"`);
    }
    const network = config.net ? MulticastChannel.open(reactor, config.net) : null;
    if (network) closers.push(() => network.close());
    const stats = config.stats ? StatsServer.open(reactor, config.stats, () => counters) : null;
    if (stats) closers.push(() => stats.close());
    const daemon = new Daemon({
      kernel,
      network,
      counters,
      log,
      print: (line) => writeAll(Deno.stdout, line + "\n"),
      debug: config.logLevel === "debug",
      // An assumed version must not decide which datagrams are dropped.
      localFormat: status.versionSource === "fallback"
        ? undefined
        : sessionFormatFor(status.version),
    });
    daemon.start();
    const advertise = (why: string) => {
      if (!advertiseWorks(status.version)) {
        log.warn(
          `${why}: Jool ${
            formatVersion(status.version)
          } ignores JOOLD_ADVERTISE (it works from 4.1.11 on); nothing will be sent`,
        );
      }
      try {
        daemon.advertise();
        log.info(`${why}: asked the kernel to advertise its session table`);
      } catch (error) {
        log.error(`${why}: ${errorLine(error)}`);
      }
    };
    kernel.onAdvertiseDone(() => log.debug("the kernel accepted JOOLD_ADVERTISE"));
    if (config.advertiseOnStart) advertise("--advertise");
    signals.push(["SIGTERM", () => stop()], ["SIGINT", () => stop()], [
      "SIGUSR1",
      () => advertise("SIGUSR1"),
    ]);
    for (const [signal, handler] of signals) Deno.addSignalListener(signal, handler);
    log.info("ready");
    await Promise.race([stopped, running]);
    if (failure !== null) throw failure;
    log.info("stopping");
    const k = kernel.counters;
    log.info(
      `counters: ${k.batches} batches from the kernel (${k.otherInstances} of other instances ignored), ` +
        `${counters.netSentPkts} datagrams sent (${counters.netSendErrors} failed), ` +
        `${counters.netRcvdPkts} received (${counters.malformedDatagrams} malformed, ` +
        `${counters.foreignFormatDatagrams} of another format), ${k.adds} JOOLD_ADD, ` +
        `${k.kernelErrors} kernel errors, ${k.overruns} receive overruns`,
    );
    const latency = kernel.ackLatency.summary();
    if (latency.count > 0) log.info(`kernel->ACK latency: ${formatLatency(latency)}`);
    return EXIT.ok;
  } catch (error) {
    log.error(errorLine(error));
    return EXIT.failure;
  } finally {
    for (const [signal, handler] of signals) Deno.removeSignalListener(signal, handler);
    for (const close of closers.reverse()) close();
    reactor.stop();
    await running;
  }
}

/**
 * Runs joold with the given arguments.
 *
 * @param args command-line arguments, without the program name
 * @returns the process exit code
 * @example
 * ```ts
 * const code = await main(["--check", "--net.mcast.addr=ff08::db8:64:64"]);
 * ```
 */
export async function main(args: readonly string[]): Promise<number> {
  const stderr = (line: string) => writeAll(Deno.stderr, line);
  try {
    const parsed = parseCommandLine(args);
    if (parsed.help) {
      writeAll(Deno.stdout, helpText());
      return EXIT.ok;
    }
    if (parsed.version) {
      writeAll(Deno.stdout, `joold ${VERSION}\n`);
      return EXIT.ok;
    }
    const { config, warnings, notes, origins } = resolveConfig(parsed);
    const log = createLogger(config.logLevel, stderr);
    for (const note of notes) log.info(note);
    for (const warning of warnings) log.warn(warning);
    if (parsed.check) {
      const report = checkHost(config, origins);
      writeAll(Deno.stdout, formatConfig(config) + formatHostReport(report));
      return EXIT.ok;
    }
    try {
      checkHost(config, origins);
    } catch (error) {
      log.error(errorLine(error));
      return EXIT.failure;
    }
    return await serve(config, log);
  } catch (error) {
    if (error instanceof ConfigError) {
      stderr(`joold: ${error.message}\n`);
      return EXIT.badConfig;
    }
    stderr(`joold: ${errorLine(error)}\n`);
    return EXIT.failure;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
