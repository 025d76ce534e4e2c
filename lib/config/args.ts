/**
 * Command-line parsing: the flag syntax of Jool's "Daemon Configuration Options" page and the legacy
 * `joold [NETSOCKET] [MODSOCKET] [PORT]` syntax of joold(8), with `node:util` parseArgs.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { COMMAND_LINE, ConfigError } from "./error.ts";

/** Every flag joold accepts, with the spellings the Jool docs use. */
const OPTIONS = {
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
  check: { type: "boolean" },
  mod: { type: "string" },
  instance: { type: "string" },
  net: { type: "string" },
  "net.mcast.addr": { type: "string" },
  "net.mcast.address": { type: "string" },
  "net.mcast.port": { type: "string" },
  "net.dev.in": { type: "string" },
  "net.dev.out": { type: "string" },
  "net.ttl": { type: "string" },
  stats: { type: "string" },
  "stats.addr": { type: "string" },
  "stats.address": { type: "string" },
  "stats.port": { type: "string" },
  "log-level": { type: "string" },
  "enable-sync": { type: "boolean" },
  advertise: { type: "boolean" },
} as const;

/** The command line, parsed but not yet validated. */
export interface ParsedArgs {
  /** `--help` was given. */
  readonly help: boolean;
  /** `--version` was given. */
  readonly version: boolean;
  /** `--check` was given: validate, print, exit. */
  readonly check: boolean;
  /** True when the legacy positional syntax applies (positionals given, or no config flag at all). */
  readonly legacy: boolean;
  /** Module (Netlink) socket file: `--mod`, or the legacy MODSOCKET. */
  readonly modFile?: string;
  /** Network socket file: `--net`, or the legacy NETSOCKET. */
  readonly netFile?: string;
  /** Stats file: `--stats`. */
  readonly statsFile?: string;
  /** Flag values that override file keys, by canonical flag name (`net.mcast.addr`, ...). */
  readonly overrides: Readonly<Record<string, string>>;
  /** `--enable-sync`: turn the instance's ss-enabled on at startup. */
  readonly enableSync: boolean;
  /** `--advertise`: ask the kernel to advertise its table once up. */
  readonly advertise: boolean;
}

/** Flags that configure the daemon (as opposed to --help, --check, --log-level...). */
const CONFIG_FLAGS = [
  "mod",
  "instance",
  "net",
  "net.mcast.addr",
  "net.mcast.port",
  "net.dev.in",
  "net.dev.out",
  "net.ttl",
  "stats",
  "stats.addr",
  "stats.port",
] as const;

function commandLineError(error: unknown): ConfigError {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: string }).code;
  // node's messages quote the option: "Option '-h, --help' does not take an argument".
  const quoted = /'([^']*)'/.exec(message)?.[1] ?? "";
  const option = quoted.match(/--?[\w.-]+/g)?.at(-1);
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    return new ConfigError(COMMAND_LINE, option, "unknown option: see joold --help", {
      cause: error,
    });
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    const problem = message.includes("does not take an argument")
      ? "takes no value"
      : "needs a value, e.g. --net.ttl=3 or --net.ttl 3";
    return new ConfigError(COMMAND_LINE, option, problem, { cause: error });
  }
  return new ConfigError(COMMAND_LINE, undefined, message, { cause: error });
}

/**
 * Parses joold's command line.
 *
 * @param args the arguments (without the program name)
 * @returns the parsed command line
 * @throws {ConfigError} for unknown flags, missing values, conflicting syntaxes, extra arguments
 * @example
 * ```ts
 * parseCommandLine(["netsocket.json", "modsocket.json", "6401"]).legacy; // true
 * ```
 */
export function parseCommandLine(args: readonly string[]): ParsedArgs {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw commandLineError(error);
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  const str = (name: string): string | undefined => v[name] as string | undefined;

  const aliases: [string, string][] = [
    ["net.mcast.address", "net.mcast.addr"],
    ["stats.address", "stats.addr"],
  ];
  for (const [alias, canonical] of aliases) {
    if (str(alias) !== undefined) {
      if (str(canonical) !== undefined) {
        throw new ConfigError(
          COMMAND_LINE,
          `--${alias}`,
          `is another spelling of --${canonical}; give only one of them`,
        );
      }
      v[canonical] = str(alias);
    }
  }

  const positionals = parsed.positionals;
  if (positionals.length > 3) {
    throw new ConfigError(
      COMMAND_LINE,
      undefined,
      `too many arguments (${positionals.length}): the legacy syntax is joold [NETSOCKET] [MODSOCKET] [PORT]`,
    );
  }
  const [netPos, modPos, portPos] = positionals;
  const conflicts: [string | undefined, string, string][] = [
    [netPos, "net", "NETSOCKET"],
    [modPos, "mod", "MODSOCKET"],
    [portPos, "stats.port", "PORT"],
  ];
  for (const [pos, flagName, argName] of conflicts) {
    if (pos !== undefined && str(flagName) !== undefined) {
      throw new ConfigError(
        COMMAND_LINE,
        `--${flagName}`,
        `conflicts with the positional ${argName} argument ${JSON.stringify(pos)}; give only one`,
      );
    }
  }

  const anyConfigFlag = CONFIG_FLAGS.some((name) => v[name] !== undefined);
  const legacy = positionals.length > 0 || !anyConfigFlag;

  const overrides: Record<string, string> = {};
  for (
    const name of [
      "instance",
      "net.mcast.addr",
      "net.mcast.port",
      "net.dev.in",
      "net.dev.out",
      "net.ttl",
      "stats.addr",
      "stats.port",
    ]
  ) {
    const value = str(name);
    if (value !== undefined) overrides[name] = value;
  }
  if (portPos !== undefined) overrides["stats.port"] = portPos;
  if (str("log-level") !== undefined) overrides["log-level"] = str("log-level")!;

  return {
    help: v.help === true,
    version: v.version === true,
    check: v.check === true,
    legacy,
    netFile: str("net") ?? netPos,
    modFile: str("mod") ?? modPos,
    statsFile: str("stats"),
    overrides,
    enableSync: v["enable-sync"] === true,
    advertise: v.advertise === true,
  };
}
