/**
 * Builds the effective {@linkcode Config} from the parsed command line and the JSON files it names:
 * defaults, then file keys, then flags (a flag overrides the same key from its file).
 *
 * @module
 */

import { addressFamily, type Family } from "./address.ts";
import type { ParsedArgs } from "./args.ts";
import { DEFAULTS } from "./defaults.ts";
import { COMMAND_LINE, ConfigError } from "./error.ts";
import { readJsonObject, type ReadTextFile, readTextFileSync } from "./file.ts";
import { key, type Section, sectionKeys, type ValueType } from "./keys.ts";
import type { Config, LogLevel, ModConfig, NetConfig, StatsConfig } from "./types.ts";
import * as check from "./validate.ts";

/** The effective configuration and the warnings met while building it. */
export interface Resolved {
  /** The validated configuration. */
  readonly config: Config;
  /** One line each, e.g. `net.json: "multcast port": unknown key, ignored`. */
  readonly warnings: readonly string[];
}

/** The key that enables the sync network. */
const GROUP = "net.mcast.addr";

/** A raw value and where it came from. */
interface Raw {
  readonly value: unknown;
  readonly origin: check.Origin;
}

type Validator = (origin: check.Origin, value: unknown, family: Family) => unknown;

/** One validator per value type of the key table. */
const VALIDATORS: Record<Exclude<ValueType, "file" | "boolean">, Validator> = {
  instance: check.instanceName,
  group: check.multicastAddress,
  "port-or-service": check.portOrService,
  interface: check.interfaceFor,
  // The C daemon's files hold the ttl as a JSON number; a flag is text.
  ttl: (origin, value) => check.integerIn(origin, value, 0, 255, origin.source === COMMAND_LINE),
  switch: check.flag,
  address: check.bindAddress,
  port: (origin, value) => check.integerIn(origin, value, 1, 65535, true),
  "log-level": check.logLevel,
};

function loadFile(
  path: string,
  section: Section,
  read: ReadTextFile,
  raws: Map<string, Raw>,
  warnings: string[],
): void {
  const object = readJsonObject(path, read);
  const keys = sectionKeys(section).filter((k) => k.fileKey !== undefined);
  for (const [fileKey, value] of Object.entries(object)) {
    const spec = keys.find((k) => k.fileKey === fileKey);
    if (spec === undefined) {
      const known = keys.map((k) => JSON.stringify(k.fileKey)).join(", ");
      warnings.push(
        `${path}: ${JSON.stringify(fileKey)}: unknown key, ignored (known keys: ${known})`,
      );
      continue;
    }
    raws.set(spec.name, { value, origin: { source: path, key: fileKey } });
  }
}

/**
 * Validates the keys of a section into its object of {@linkcode Config}, defaults filling the rest.
 *
 * @param section the section
 * @param raws the raw values, by key name
 * @param family the group's family (for the interfaces)
 * @returns the section's object, by field
 */
function buildSection(
  section: Section,
  raws: ReadonlyMap<string, Raw>,
  family: Family = 6,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const spec of sectionKeys(section)) {
    if (spec.type === "file" || spec.type === "boolean") continue;
    const raw = raws.get(spec.name);
    out[spec.field] = raw === undefined
      ? spec.default
      : VALIDATORS[spec.type](raw.origin, raw.value, family);
  }
  return out;
}

/**
 * Resolves the effective configuration.
 *
 * @param args the parsed command line
 * @param read file reader (Deno's by default)
 * @returns the configuration and any warnings
 * @throws {ConfigError} naming the file or flag, the key and what is wrong
 * @example
 * ```ts
 * const { config } = resolveConfig(parseCommandLine(["--net.mcast.addr=ff08::db8:64:64"]));
 * config.net?.multicastPort; // "6400"
 * ```
 */
export function resolveConfig(args: ParsedArgs, read: ReadTextFile = readTextFileSync): Resolved {
  const warnings: string[] = [];
  const raws = new Map<string, Raw>();

  const modFile = args.modFile ?? (args.legacy ? DEFAULTS.modFile : undefined);
  const netFile = args.netFile ?? (args.legacy ? DEFAULTS.netFile : undefined);
  const files: [string | undefined, Section][] = [
    [netFile, "net"],
    [modFile, "mod"],
    [args.statsFile, "stats"],
  ];
  for (const [path, section] of files) {
    if (path !== undefined) loadFile(path, section, read, raws, warnings);
  }
  for (const [name, value] of Object.entries(args.overrides)) {
    raws.set(name, { value, origin: { source: COMMAND_LINE, key: `--${name}` } });
  }

  const mod = buildSection("mod", raws) as unknown as ModConfig;

  let net: NetConfig | null = null;
  const group = raws.get(GROUP);
  if (group !== undefined) {
    const family = addressFamily(check.multicastAddress(group.origin, group.value))!;
    net = buildSection("net", raws, family) as unknown as NetConfig;
  } else {
    for (const spec of sectionKeys("net")) {
      const r = raws.get(spec.name);
      if (r === undefined) continue;
      warnings.push(
        `${r.origin.source}: ${r.origin.key}: ignored, because no multicast address is set (the sync network is disabled)`,
      );
    }
    if (netFile !== undefined) {
      warnings.push(
        `${netFile}: "${
          key(GROUP).fileKey
        }" is not set: the sync network is disabled and the sessions from the kernel are printed instead`,
      );
    }
  }

  let stats: StatsConfig | null = null;
  const statsKeys = sectionKeys("stats");
  if (statsKeys.some((k) => raws.has(k.name)) || args.statsFile !== undefined) {
    stats = buildSection("stats", raws) as unknown as StatsConfig;
  }

  const { logLevel } = buildSection("top", raws) as { logLevel: LogLevel };

  return {
    config: {
      mod,
      net,
      stats,
      logLevel,
      enableSync: args.enableSync,
      advertiseOnStart: args.advertise,
    },
    warnings,
  };
}

export { ConfigError };
