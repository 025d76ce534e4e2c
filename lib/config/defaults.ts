/**
 * Default values of every configuration key: the single source of truth used by the resolver, the
 * help text and the README. They match Jool's C daemon (`jool session proxy`, `joold`).
 *
 * @module
 */

import type { LogLevel } from "./types.ts";

/** Defaults applied when neither a file nor a flag sets a key. */
export const DEFAULTS: {
  readonly instance: string;
  readonly multicastPort: string;
  readonly ttl: number;
  readonly reuseAddress: boolean;
  readonly statsAddress: string;
  readonly statsPort: number;
  readonly logLevel: LogLevel;
  readonly netFile: string;
  readonly modFile: string;
} = {
  instance: "default",
  multicastPort: "6400",
  ttl: 1,
  reuseAddress: true,
  statsAddress: "::",
  statsPort: 6401,
  logLevel: "info",
  /** Legacy syntax: `joold [NETSOCKET] [MODSOCKET] [PORT]` defaults. */
  netFile: "netsocket.json",
  modFile: "modsocket.json",
};

/** Longest Jool instance name: `INAME_MAX_SIZE` (16, NUL included) in Jool's common/config.h. */
export const INSTANCE_NAME_MAX_LENGTH = 15;
