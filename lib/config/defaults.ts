/**
 * Default values of the configuration keys, read from the key table (`keys.ts`, the single source
 * of truth) under names for library users. They match Jool's C daemon (`jool session proxy`,
 * `joold`).
 *
 * @module
 */

import { key, LEGACY_ARGUMENTS } from "./keys.ts";
import type { LogLevel } from "./types.ts";

const legacyDefault = (name: string): string =>
  LEGACY_ARGUMENTS.find((a) => a.key === name)!.default!;

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
  instance: key("instance").default as string,
  multicastPort: key("net.mcast.port").default as string,
  ttl: key("net.ttl").default as number,
  reuseAddress: key("net.reuseaddr").default as boolean,
  statsAddress: key("stats.addr").default as string,
  statsPort: key("stats.port").default as number,
  logLevel: key("log-level").default as LogLevel,
  /** Legacy syntax: `joold [NETSOCKET] [MODSOCKET] [PORT]` defaults. */
  netFile: legacyDefault("net"),
  modFile: legacyDefault("mod"),
};

/** Longest Jool instance name: `INAME_MAX_SIZE` (16, NUL included) in Jool's common/config.h. */
export const INSTANCE_NAME_MAX_LENGTH = 15;
