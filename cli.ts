/**
 * joold's command line: the composition root. It parses the arguments, loads and validates the
 * configuration, starts the daemon, handles signals, prints errors and picks the exit code
 * (0 clean stop, 1 runtime failure, 2 bad configuration).
 *
 * @example
 * ```sh
 * deno run --allow-ffi=/lib/x86_64-linux-gnu/libc.so.6 --allow-read cli.ts netsocket.json modsocket.json
 * ```
 *
 * @module
 */

import { parseCommandLine, type ParsedArgs } from "./lib/config/args.ts";
import { ConfigError } from "./lib/config/error.ts";
import { checkHost, formatHostReport } from "./lib/config/host.ts";
import { formatConfig } from "./lib/config/print.ts";
import { resolveConfig } from "./lib/config/resolve.ts";
import type { Config } from "./lib/config/types.ts";
import { helpText } from "./lib/help.ts";
import { createLogger, type Logger } from "./lib/log.ts";
import { VERSION } from "./lib/version.ts";
import { generateKeyLine } from "./lib/secure/keyfile.ts";
import { type DaemonHandle, type KernelPeer, startDaemon } from "./lib/start.ts";
import { NETLINK_USERSOCK } from "./lib/netlink/conn.ts";
import { granted } from "./ffi/libc.ts";
import { LINGER_MS } from "./lib/reactor.ts";
import { JOOLD_V8_FLAGS, reexecWithTiers } from "./lib/tiers.ts";

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
function testKernelPeer(): KernelPeer {
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
 * Runs the daemon with a validated configuration until SIGTERM or SIGINT. SIGHUP reloads what can
 * be reloaded, SIGUSR1 advertises, SIGPIPE is ignored; none of them ever stops the daemon. Signals
 * that arrive during start-up act once it is ready.
 *
 * @param parsed the command line (a reload resolves it again: it names the files)
 * @param config the effective configuration
 * @param log where events are reported
 * @returns the exit code: 0 after a clean stop, 1 when startup or the loop fails
 */
async function serve(parsed: ParsedArgs, config: Config, log: Logger): Promise<number> {
  let daemon: DaemonHandle | null = null;
  const early: ((daemon: DaemonHandle) => void)[] = [];
  const act = (action: (daemon: DaemonHandle) => void) => () => {
    if (daemon) action(daemon);
    else early.push(action);
  };
  const signals: [Deno.Signal, () => void][] = [
    ["SIGTERM", act((d) => void d.stop())],
    ["SIGINT", act((d) => void d.stop())],
    ["SIGUSR1", act((d) => d.advertise("SIGUSR1"))],
    ["SIGHUP", act((d) => d.reload("SIGHUP", () => resolveConfig(parsed)))],
    // SIGPIPE gets no listener: Deno ignores it, so a write to a closed pipe is an EPIPE error.
    // Removing a listener restores SIG_DFL, and the next such write would kill the process (141).
  ];
  for (const [signal, handler] of signals) Deno.addSignalListener(signal, handler);
  try {
    daemon = await startDaemon(config, {
      log,
      print: (line) => writeAll(Deno.stdout, line + "\n"),
      kernel: testKernelPeer(),
      lingerMs: reactorTuning().lingerMs,
    });
    for (const action of early) action(daemon);
    await daemon.done;
    return EXIT.ok;
  } catch (error) {
    log.error(errorLine(error), { event: "failed" });
    return EXIT.failure;
  } finally {
    for (const [signal, handler] of signals) Deno.removeSignalListener(signal, handler);
  }
}

/**
 * Runs joold with the given arguments.
 *
 * @param args command-line arguments, without the program name
 * @param options `tiers`: the process is joold itself (not a test calling it), which may
 *   re-execute itself with its V8 flags before it runs the daemon (lib/tiers.ts)
 * @returns the process exit code
 * @example
 * ```ts
 * const code = await main(["--check", "--net.mcast.addr=ff08::db8:64:64"]);
 * ```
 */
export async function main(
  args: readonly string[],
  options: { readonly tiers?: boolean } = {},
): Promise<number> {
  const stderr = (line: string) => {
    try {
      writeAll(Deno.stderr, line);
    } catch {
      // stderr closed (EPIPE: a log reader went away): the line is lost, the daemon goes on.
    }
  };
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
    if (parsed.keygen) {
      writeAll(Deno.stdout, generateKeyLine() + "\n");
      return EXIT.ok;
    }
    const { config, warnings, notes, origins } = resolveConfig(parsed);
    // The daemon itself (not --check), its configuration valid: V8's flags, before any socket and
    // any line of output (lib/tiers.ts; the re-executed process reads the files again).
    const tiers = options.tiers === true && !parsed.check ? reexecWithTiers() : null;
    const log = createLogger(config.logLevel, stderr, config.logFormat);
    if (tiers?.failed) {
      log.warn(
        `cannot run with V8's ${JOOLD_V8_FLAGS}: ${tiers.why}; run with --v8-flags=${JOOLD_V8_FLAGS}`,
        { event: "v8.flags" },
      );
    } else if (tiers) log.debug(`V8 flags: ${tiers.why}`);
    for (const note of notes) log.info(note, { event: "config.note" });
    for (const warning of warnings) log.warn(warning, { event: "config.warning" });
    if (parsed.check) {
      const report = checkHost(config, origins);
      writeAll(Deno.stdout, formatConfig(config) + formatHostReport(report));
      return EXIT.ok;
    }
    try {
      checkHost(config, origins);
    } catch (error) {
      log.error(errorLine(error), { event: "host.check" });
      return EXIT.failure;
    }
    return await serve(parsed, config, log);
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
  Deno.exit(await main(Deno.args, { tiers: true }));
}
