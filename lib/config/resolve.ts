/**
 * Builds the effective {@linkcode Config} from the parsed command line and the JSON files it names:
 * defaults, then file keys, then flags (a flag overrides the same key from its file).
 *
 * @module
 */

import { addressFamily, type Family, parsePeer } from "./address.ts";
import type { ParsedArgs } from "./args.ts";
import { COMMAND_LINE, ConfigError } from "./error.ts";
import { readJsonObject, type ReadTextFile, readTextFileSync } from "./file.ts";
import {
  key,
  LEGACY_ARGUMENTS,
  LEGACY_SYNOPSIS,
  type Section,
  sectionFile,
  sectionKeys,
  type ValueType,
} from "./keys.ts";
import { closest } from "./suggest.ts";
import type {
  Config,
  LogFormat,
  LogLevel,
  MetricsConfig,
  ModConfig,
  NetConfig,
  StatsConfig,
} from "./types.ts";
import * as check from "./validate.ts";

/** The effective configuration and the warnings met while building it. */
export interface Resolved {
  /** The validated configuration. */
  readonly config: Config;
  /** One line each, e.g. `net.json: "colour": unknown key, ignored`. */
  readonly warnings: readonly string[];
  /** Facts the operator should know, one line each (the implicit legacy syntax and its files). */
  readonly notes: readonly string[];
  /**
   * Where each key that was set came from (its file and JSON key, or the flag as typed), by key
   * name (`net.dev.in`); keys left at their default are absent.
   */
  readonly origins: Readonly<Record<string, { readonly source: string; readonly key: string }>>;
}

/** The keys that enable the sync network: the group, or the unicast peers instead. */
const GROUP = "net.mcast.addr";
const PEERS = "net.peer";

/** The key of the Prometheus endpoint: in the stats section, but it never starts the UDP server. */
const METRICS = "metrics";

/** A raw value and where it came from. */
interface Raw {
  readonly value: unknown;
  readonly origin: check.Origin;
}

/** What a value is checked against: the sync network's family, and whether it is unicast. */
type Validator = (
  origin: check.Origin,
  value: unknown,
  family: Family,
  unicast: boolean,
) => unknown;

/** One validator per value type of the key table. */
const VALIDATORS: Record<Exclude<ValueType, "file" | "boolean">, Validator> = {
  instance: check.instanceName,
  group: check.multicastAddress,
  "port-or-service": check.portOrService,
  interface: check.interfaceFor,
  // The C daemon's files hold the ttl as a JSON number; a flag is text.
  ttl: (origin, value) => check.integerIn(origin, value, 0, 255, origin.source === COMMAND_LINE),
  // A file holds true/false or 1/0; a flag is text.
  switch: (origin, value) =>
    check.flag(
      origin,
      origin.source === COMMAND_LINE && typeof value === "string"
        ? ({ true: true, false: false, "1": true, "0": false } as Record<string, unknown>)[value] ??
          value
        : value,
    ),
  address: check.bindAddress,
  port: (origin, value) => check.integerIn(origin, value, 1, 65535, true),
  "log-level": check.logLevel,
  "host-port": check.hostPort,
  "log-format": check.logFormat,
  "key-file": check.keyFile,
  bytes: (origin, value) =>
    check.integerIn(origin, value, 0, 268_435_456, origin.source === COMMAND_LINE),
  seconds: (origin, value) =>
    check.integerIn(origin, value, 1, 3600, origin.source === COMMAND_LINE),
  "peer-list": check.peerList,
  "unicast-peers": check.unicastPeers,
};

function loadFile(
  path: string,
  section: Section,
  read: ReadTextFile,
  raws: Map<string, Raw>,
  warnings: string[],
): void {
  const object = readJsonObject(path, read, (line) => warnings.push(line));
  const keys = sectionKeys(section).filter((k) => k.fileKey !== undefined);
  const names = keys.map((k) => k.fileKey!);
  const seen = new Map<string, string>();
  for (const [fileKey, value] of Object.entries(object)) {
    // Jool's C daemon (cJSON_GetObjectItem) matches keys whatever their case: "TTL" is "ttl".
    const spec = keys.find((k) => k.fileKey!.toLowerCase() === fileKey.toLowerCase());
    if (spec !== undefined) {
      const first = seen.get(spec.name);
      if (first !== undefined) {
        warnings.push(
          `${path}: ${JSON.stringify(fileKey)}: the same key as ${
            JSON.stringify(first)
          } (keys are not case-sensitive): the first one is used, as by Jool's C daemon`,
        );
        continue;
      }
      seen.set(spec.name, fileKey);
      raws.set(spec.name, { value, origin: { source: path, key: fileKey } });
      continue;
    }
    // A typo must not silently drop a key: "multicast adress" would disable the sync network.
    const meant = closest(fileKey, names);
    if (meant !== undefined) {
      throw new ConfigError(
        path,
        JSON.stringify(fileKey),
        `unknown key: did you mean ${JSON.stringify(meant)}?`,
      );
    }
    const known = names.map((k) => JSON.stringify(k)).join(", ");
    warnings.push(
      `${path}: ${JSON.stringify(fileKey)}: unknown key, ignored (known keys: ${known})`,
    );
  }
}

/** Value types whose keys stay absent when unset (the secure-sync ones read their default later). */
const OPT_IN: ReadonlySet<ValueType> = new Set([
  "key-file",
  "peer-list",
  "unicast-peers",
  "bytes",
  "seconds",
]);

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
  unicast = false,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const spec of sectionKeys(section)) {
    if (spec.type === "file" || spec.type === "boolean") continue;
    const raw = raws.get(spec.name);
    // An opt-in key left unset stays absent: the configuration is the C daemon's, key for key.
    if (raw === undefined && (OPT_IN.has(spec.type) || (spec.type === "group" && unicast))) {
      continue;
    }
    out[spec.field] = raw === undefined
      ? (unicast && spec.name === TTL ? UNICAST_TTL : spec.default)
      : VALIDATORS[spec.type](raw.origin, raw.value, family, unicast);
  }
  return out;
}

/** The TTL key, and its default with unicast peers (Linux's own unicast default, ip_default_ttl). */
const TTL = "net.ttl";
const UNICAST_TTL = 64;

/**
 * Resolves the effective configuration.
 *
 * @param args the parsed command line
 * @param read file reader (Deno's by default)
 * @returns the configuration and any warnings
 * @throws {ConfigError} naming the file or flag, the key and what is wrong
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCommandLine } from "./args.ts";
 * import { resolveConfig } from "./resolve.ts";
 * const { config, origins } = resolveConfig(parseCommandLine(["--net.mcast.addr=ff08::db8:64:64"]));
 * assert.equal(config.net?.multicastPort, "6400");
 * assert.deepEqual(origins["net.mcast.addr"], { source: "command line", key: "--net.mcast.addr" });
 * ```
 */
export function resolveConfig(args: ParsedArgs, read: ReadTextFile = readTextFileSync): Resolved {
  const warnings: string[] = [];
  const raws = new Map<string, Raw>();

  const notes: string[] = [];
  const defaulted = (section: Section): string | undefined =>
    args.legacy
      ? LEGACY_ARGUMENTS.find((a) => a.key === sectionFile(section)?.name)?.default
      : undefined;
  const modFile = args.modFile ?? defaulted("mod");
  const netFile = args.netFile ?? defaulted("net");
  if (args.implicitLegacy) {
    notes.push(
      `no configuration given: reading ${netFile} and ${modFile} from the current directory ` +
        `(the legacy syntax ${LEGACY_SYNOPSIS}; see joold --help for the others)`,
    );
  }
  const files: [string | undefined, Section, boolean][] = [
    [netFile, "net", args.netFile === undefined],
    [modFile, "mod", args.modFile === undefined],
    [args.statsFile, "stats", false],
  ];
  for (const [path, section, isDefault] of files) {
    if (path === undefined) continue;
    try {
      loadFile(path, section, read, raws, warnings);
    } catch (error) {
      if (!isDefault || !(error instanceof ConfigError) || !isNotFound(error)) throw error;
      throw defaultFileMissing(path, section, args.implicitLegacy, error);
    }
  }
  for (const [name, value] of Object.entries(args.overrides)) {
    const typed = args.typed?.[name] ?? `--${name}`;
    raws.set(name, { value, origin: { source: COMMAND_LINE, key: typed } });
  }

  const mod = buildSection("mod", raws) as unknown as ModConfig;

  let net: NetConfig | null = null;
  const group = raws.get(GROUP);
  const peers = raws.get(PEERS);
  if (group !== undefined && peers !== undefined) {
    throw new ConfigError(
      peers.origin.source,
      peers.origin.key,
      `unicast peers replace the multicast group, and ${
        group.origin.source === COMMAND_LINE ? group.origin.key : JSON.stringify(group.origin.key)
      } is set too${
        group.origin.source === peers.origin.source ? "" : ` (in ${group.origin.source})`
      }: keep one of them (peers for a network without multicast, the group otherwise)`,
    );
  }
  if (group !== undefined) {
    const family = addressFamily(check.multicastAddress(group.origin, group.value))!;
    net = buildSection("net", raws, family) as unknown as NetConfig;
  } else if (peers !== undefined) {
    const list = check.unicastPeers(peers.origin, peers.value);
    net = buildSection("net", raws, parsePeer(list[0])!.family, true) as unknown as NetConfig;
    const linkLocal = list.find((p) => {
      const b = parsePeer(p)!.bytes;
      return b.length === 16 && b[0] === 0xfe && (b[1] & 0xc0) === 0x80;
    });
    if (linkLocal !== undefined && net.outInterface === undefined) {
      throw new ConfigError(
        peers.origin.source,
        peers.origin.key,
        `${JSON.stringify(linkLocal)} is a link-local address: it needs the link it is on, so ` +
          `set "out interface" (--net.dev.out), or give the peer's global address`,
      );
    }
  } else {
    // Only the absence of any network configuration means print mode: a network file or flag
    // without its group is a mistake (a typo, a key left out), not a request to print sessions.
    const example = key(GROUP).example;
    if (netFile !== undefined) {
      throw new ConfigError(
        netFile,
        undefined,
        `"${key(GROUP).fileKey}" is not set: a network socket file needs the sync group, e.g. ` +
          `"${key(GROUP).fileKey}": "${example}", or the unicast peers, e.g. "${
            key(PEERS).fileKey
          }": ["${key(PEERS).example}"] (to print the kernel's sessions instead, give no ` +
          `network configuration at all)`,
      );
    }
    const stray = sectionKeys("net").map((k) => raws.get(k.name)).find((r) => r !== undefined);
    if (stray !== undefined) {
      throw new ConfigError(
        stray.origin.source,
        stray.origin.key,
        `needs the sync group --${GROUP} (e.g. --${GROUP}=${example}) or unicast peers ` +
          `(--${PEERS}=ADDR); to print the kernel's sessions instead, give no network option at all`,
      );
    }
  }

  let stats: StatsConfig | null = null;
  const statsKeys = sectionKeys("stats").filter((k) => k.name !== METRICS);
  const { metrics = null, ...statsSection } = buildSection("stats", raws) as {
    metrics?: MetricsConfig;
  };
  if (statsKeys.some((k) => raws.has(k.name)) || args.statsFile !== undefined) {
    stats = statsSection as unknown as StatsConfig;
  }

  const { logLevel, logFormat } = buildSection("top", raws) as {
    logLevel: LogLevel;
    logFormat: LogFormat;
  };

  return {
    config: {
      mod,
      net,
      stats,
      logLevel,
      enableSync: args.enableSync,
      advertiseOnStart: args.advertise,
      metrics,
      logFormat,
    },
    warnings,
    notes,
    origins: Object.fromEntries([...raws].map(([name, raw]) => [name, raw.origin])),
  };
}

function isNotFound(error: ConfigError): boolean {
  return error.cause instanceof Deno.errors.NotFound;
}

/** A default file of the legacy syntax is missing: say it was a default, and how to name one. */
function defaultFileMissing(
  path: string,
  section: Section,
  implicit: boolean,
  cause: ConfigError,
): ConfigError {
  const argument = LEGACY_ARGUMENTS.findIndex((a) => a.key === sectionFile(section)?.name);
  const name = LEGACY_ARGUMENTS[argument].name;
  const syntaxes = `${LEGACY_SYNOPSIS}, joold --${sectionFile("net")!.name}=FILE ` +
    `--${sectionFile("mod")!.name}=FILE (or --${GROUP}=GROUP ...), or joold session proxy GROUP`;
  return new ConfigError(
    path,
    undefined,
    implicit
      ? `no such file: with no configuration given, joold reads ${path} from the current ` +
        `directory (the legacy syntax); name the configuration instead: ${syntaxes}`
      : `no such file: ${name} (the ${
        ["1st", "2nd", "3rd"][argument]
      } argument) defaults to ${path} in the current directory; give it: ${LEGACY_SYNOPSIS}`,
    { cause },
  );
}

export { ConfigError };
