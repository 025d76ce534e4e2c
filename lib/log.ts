/**
 * Logging seam: `lib/` never writes to the console; it reports through a {@linkcode Logger} that the
 * composition root (`cli.ts`) provides.
 *
 * @module
 */

import type { LogLevel } from "./config/types.ts";

/** One method per level; each call is one line (no trailing newline). */
export interface Logger {
  /** Something failed. */
  error(message: string): void;
  /** Something is wrong but joold goes on. */
  warn(message: string): void;
  /** A state change worth an operator's eye (startup, stop, peer events). */
  info(message: string): void;
  /** Per-event detail for troubleshooting. */
  debug(message: string): void;
}

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/**
 * Builds a logger that writes `joold: <level>: <message>` lines through `write`, dropping messages
 * below `level`.
 *
 * @param level the least severe level that is written
 * @param write receives each complete line, newline included
 * @returns the logger
 * @example
 * ```ts
 * const log = createLogger("info", (line) => Deno.stderr.writeSync(new TextEncoder().encode(line)));
 * log.info("listening");
 * ```
 */
export function createLogger(level: LogLevel, write: (line: string) => void): Logger {
  const at = RANK[level];
  const emit = (l: LogLevel) => (message: string) => {
    if (RANK[l] <= at) write(`joold: ${l}: ${message}\n`);
  };
  return { error: emit("error"), warn: emit("warn"), info: emit("info"), debug: emit("debug") };
}

/** A logger that discards everything (for tests and library use). */
export const silentLogger: Logger = {
  error() {},
  warn() {},
  info() {},
  debug() {},
};
