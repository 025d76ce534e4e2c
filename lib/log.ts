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
  /**
   * The least severe level written, when the logger filters by level; assigning it changes what
   * is written from then on (a SIGHUP reload).
   */
  level?: LogLevel;
}

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/**
 * Builds a logger that writes `joold: <level>: <message>` lines through `write`, dropping messages
 * below `level` (which can be changed later through the logger's `level`).
 *
 * @param level the least severe level that is written
 * @param write receives each complete line, newline included
 * @returns the logger
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createLogger } from "./log.ts";
 *
 * const lines: string[] = [];
 * const log = createLogger("info", (line) => lines.push(line));
 * log.info("listening");
 * log.debug("dropped");
 * log.level = "debug";
 * log.debug("written");
 * assert.deepEqual(lines, ["joold: info: listening\n", "joold: debug: written\n"]);
 * ```
 */
export function createLogger(
  level: LogLevel,
  write: (line: string) => void,
): Logger & { level: LogLevel } {
  let at = RANK[level];
  let current = level;
  const emit = (l: LogLevel) => (message: string) => {
    if (RANK[l] <= at) write(`joold: ${l}: ${message}\n`);
  };
  return {
    error: emit("error"),
    warn: emit("warn"),
    info: emit("info"),
    debug: emit("debug"),
    get level(): LogLevel {
      return current;
    },
    set level(next: LogLevel) {
      current = next;
      at = RANK[next];
    },
  };
}

/** A logger that discards everything (for tests and library use). */
export const silentLogger: Logger = {
  error() {},
  warn() {},
  info() {},
  debug() {},
};
