/**
 * Builds the effective {@linkcode Config} from the parsed command line and the JSON files it names:
 * defaults, then file keys, then flags (a flag overrides the same key from its file).
 *
 * @module
 */

import { addressFamily } from "./address.ts";
import type { ParsedArgs } from "./args.ts";
import { DEFAULTS } from "./defaults.ts";
import { COMMAND_LINE, ConfigError } from "./error.ts";
import { readJsonObject, type ReadTextFile, readTextFileSync } from "./file.ts";
import type { Config, LogLevel, NetConfig, StatsConfig } from "./types.ts";
import * as check from "./validate.ts";

/** The effective configuration and the warnings met while building it. */
export interface Resolved {
  /** The validated configuration. */
  readonly config: Config;
  /** One line each, e.g. `net.json: "multcast port": unknown key, ignored`. */
  readonly warnings: readonly string[];
}

/** A raw value and where it came from. */
interface Raw {
  readonly value: unknown;
  readonly origin: check.Origin;
}

/** JSON keys of each file, mapped to the flag that overrides them. */
const MOD_KEYS = { instance: "instance" } as const;
const NET_KEYS = {
  "multicast address": "net.mcast.addr",
  "multicast port": "net.mcast.port",
  "in interface": "net.dev.in",
  "out interface": "net.dev.out",
  ttl: "net.ttl",
  reuseaddr: "net.reuseaddr",
} as const;
const STATS_KEYS = { address: "stats.addr", port: "stats.port" } as const;

function loadFile(
  path: string,
  keys: Readonly<Record<string, string>>,
  read: ReadTextFile,
  raws: Map<string, Raw>,
  warnings: string[],
): void {
  const object = readJsonObject(path, read);
  for (const [key, value] of Object.entries(object)) {
    const canonical = keys[key];
    if (canonical === undefined) {
      const known = Object.keys(keys).map((k) => JSON.stringify(k)).join(", ");
      warnings.push(`${path}: ${JSON.stringify(key)}: unknown key, ignored (known keys: ${known})`);
      continue;
    }
    raws.set(canonical, { value, origin: { source: path, key } });
  }
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
  if (netFile !== undefined) loadFile(netFile, NET_KEYS, read, raws, warnings);
  if (modFile !== undefined) loadFile(modFile, MOD_KEYS, read, raws, warnings);
  if (args.statsFile !== undefined) {
    loadFile(args.statsFile, STATS_KEYS, read, raws, warnings);
  }
  for (const [name, value] of Object.entries(args.overrides)) {
    raws.set(name, { value, origin: { source: COMMAND_LINE, key: `--${name}` } });
  }
  const get = (name: string): Raw | undefined => raws.get(name);

  const instanceRaw = get("instance");
  const instance = instanceRaw
    ? check.instanceName(instanceRaw.origin, instanceRaw.value)
    : DEFAULTS.instance;

  let net: NetConfig | null = null;
  const addrRaw = get("net.mcast.addr");
  if (addrRaw !== undefined) {
    const multicastAddress = check.multicastAddress(addrRaw.origin, addrRaw.value);
    const family = addressFamily(multicastAddress)!;
    const portRaw = get("net.mcast.port");
    const ttlRaw = get("net.ttl");
    const inRaw = get("net.dev.in");
    const outRaw = get("net.dev.out");
    const reuseRaw = get("net.reuseaddr");
    net = {
      multicastAddress,
      multicastPort: portRaw
        ? check.portOrService(portRaw.origin, portRaw.value)
        : DEFAULTS.multicastPort,
      inInterface: inRaw ? check.interfaceFor(inRaw.origin, inRaw.value, family) : undefined,
      outInterface: outRaw ? check.interfaceFor(outRaw.origin, outRaw.value, family) : undefined,
      ttl: ttlRaw
        ? check.integerIn(
          ttlRaw.origin,
          ttlRaw.value,
          0,
          255,
          ttlRaw.origin.source === COMMAND_LINE,
        )
        : DEFAULTS.ttl,
      reuseAddress: reuseRaw ? check.flag(reuseRaw.origin, reuseRaw.value) : DEFAULTS.reuseAddress,
    };
  } else {
    const stray = ["net.mcast.port", "net.dev.in", "net.dev.out", "net.ttl", "net.reuseaddr"]
      .map(get).filter((r): r is Raw => r !== undefined);
    for (const r of stray) {
      warnings.push(
        `${r.origin.source}: ${r.origin.key}: ignored, because no multicast address is set (the sync network is disabled)`,
      );
    }
    if (netFile !== undefined) {
      warnings.push(
        `${netFile}: "multicast address" is not set: the sync network is disabled and the sessions from the kernel are printed instead`,
      );
    }
  }

  let stats: StatsConfig | null = null;
  const statsAddrRaw = get("stats.addr");
  const statsPortRaw = get("stats.port");
  if (statsAddrRaw !== undefined || statsPortRaw !== undefined || args.statsFile !== undefined) {
    stats = {
      address: statsAddrRaw
        ? check.bindAddress(statsAddrRaw.origin, statsAddrRaw.value)
        : DEFAULTS.statsAddress,
      port: statsPortRaw
        ? check.integerIn(statsPortRaw.origin, statsPortRaw.value, 1, 65535, true)
        : DEFAULTS.statsPort,
    };
  }

  const levelRaw = get("log-level");
  const logLevel: LogLevel = levelRaw
    ? check.logLevel(levelRaw.origin, levelRaw.value)
    : DEFAULTS.logLevel;

  return {
    config: {
      mod: { instance },
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
