/**
 * Logging seam: `lib/` never writes to the console; it reports through a {@linkcode Logger} that the
 * composition root (`cli.ts`) provides. This file owns the two line formats: text
 * (`joold: <level>: <message>`, the default, unchanged) and JSON (one object per line, for
 * journald and Loki: `time`, `level`, `event`, `message`, then the event's fields).
 *
 * @module
 */

import type { LogFormat, LogLevel } from "./config/types.ts";

/**
 * What a log call may carry besides its message: `event`, a stable short id of the kind of event
 * (`ready`, `send.retry`), and fields a JSON line includes as they are. Text lines show only the
 * message.
 */
export interface LogFields {
  /** A stable short id (default `message`). */
  readonly event?: string;
  /** Anything else, written as JSON values. */
  readonly [field: string]: unknown;
}

/** One method per level; each call is one line (no trailing newline). */
export interface Logger {
  /** Something failed. */
  error(message: string, fields?: LogFields): void;
  /** Something is wrong but joold goes on. */
  warn(message: string, fields?: LogFields): void;
  /** A state change worth an operator's eye (startup, stop, peer events). */
  info(message: string, fields?: LogFields): void;
  /** Per-event detail for troubleshooting. */
  debug(message: string, fields?: LogFields): void;
  /**
   * The least severe level written, when the logger filters by level; assigning it changes what
   * is written from then on (a SIGHUP reload).
   */
  level?: LogLevel;
}

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/** Fields a JSON line always has: an event's fields cannot replace them. */
const RESERVED = new Set(["time", "level", "event", "message"]);

/**
 * One log line in the given format.
 *
 * @param format text or json
 * @param level the line's level
 * @param message the message
 * @param fields the event id and fields (JSON only)
 * @param now the time of the line (JSON only)
 * @returns the line, newline included
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatLine } from "./log.ts";
 *
 * const at = new Date("2026-12-01T10:00:00Z");
 * assert.equal(formatLine("text", "info", "ready", { event: "ready" }, at), "joold: info: ready\n");
 * assert.equal(
 *   formatLine("json", "warn", "x", { event: "send.lost", datagrams: 2 }, at),
 *   '{"time":"2026-12-01T10:00:00.000Z","level":"warn","event":"send.lost","message":"x","datagrams":2}\n',
 * );
 * ```
 */
export function formatLine(
  format: LogFormat,
  level: LogLevel,
  message: string,
  fields: LogFields | undefined,
  now: Date,
): string {
  if (format === "text") return `joold: ${level}: ${message}\n`;
  const line: Record<string, unknown> = {
    time: now.toISOString(),
    level,
    event: typeof fields?.event === "string" ? fields.event : "message",
    message,
  };
  if (fields !== undefined) {
    for (const [name, value] of Object.entries(fields)) {
      if (!RESERVED.has(name)) line[name] = value;
    }
  }
  // One object per line whatever the fields hold: JSON.stringify escapes newlines in strings.
  return JSON.stringify(line, (_, v) => typeof v === "bigint" ? v.toString() : v) + "\n";
}

/**
 * Builds a logger that writes lines through `write` (`joold: <level>: <message>`, or JSON objects),
 * dropping messages below `level` (which can be changed later through the logger's `level`).
 *
 * @param level the least severe level that is written
 * @param write receives each complete line, newline included
 * @param format text (default) or json
 * @param now clock for the JSON lines' `time`
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
  format: LogFormat = "text",
  now: () => Date = () => new Date(),
): Logger & { level: LogLevel } {
  let at = RANK[level];
  let current = level;
  const emit = (l: LogLevel) => (message: string, fields?: LogFields) => {
    if (RANK[l] <= at) write(formatLine(format, l, message, fields, now()));
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
