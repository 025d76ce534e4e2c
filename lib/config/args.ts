/**
 * Command-line parsing: the flag syntax of Jool's "Daemon Configuration Options" page and the legacy
 * `joold [NETSOCKET] [MODSOCKET] [PORT]` syntax of joold(8), with `node:util` parseArgs.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { COMMAND_LINE, ConfigError } from "./error.ts";
import { KEYS, LEGACY_ARGUMENTS, LEGACY_SYNOPSIS, type Section, sectionFile } from "./keys.ts";

/** parseArgs' descriptor, built from the key table: every flag and alias. */
const OPTIONS: Record<string, { type: "string" | "boolean"; short?: string }> = Object.fromEntries(
  KEYS.filter((k) => k.flag).flatMap((k) => {
    const type = k.type === "boolean" ? "boolean" as const : "string" as const;
    return [
      [k.name, k.short === undefined ? { type } : { type, short: k.short }],
      ...k.aliases.map((alias) => [alias, { type }]),
    ];
  }),
);

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
const CONFIG_FLAGS = KEYS.filter((k) =>
  k.flag && (k.section === "mod" || k.section === "net" ||
    k.section === "stats")
);

/** Flags whose value overrides a key (every valued flag but the files). */
const VALUE_FLAGS = KEYS.filter((k) => k.flag && k.type !== "boolean" && k.type !== "file");

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

  const aliases = KEYS.flatMap((k) => k.aliases.map((alias) => [alias, k.name] as const));
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
      `too many arguments (${positionals.length}): the legacy syntax is ${LEGACY_SYNOPSIS}`,
    );
  }
  const legacyValues = new Map<string, string>();
  LEGACY_ARGUMENTS.forEach((argument, i) => {
    const pos = positionals[i];
    if (pos === undefined) return;
    if (str(argument.key) !== undefined) {
      throw new ConfigError(
        COMMAND_LINE,
        `--${argument.key}`,
        `conflicts with the positional ${argument.name} argument ${
          JSON.stringify(pos)
        }; give only one`,
      );
    }
    legacyValues.set(argument.key, pos);
  });

  const anyConfigFlag = CONFIG_FLAGS.some((k) => v[k.name] !== undefined);
  const legacy = positionals.length > 0 || !anyConfigFlag;

  const overrides: Record<string, string> = {};
  for (const k of VALUE_FLAGS) {
    const value = str(k.name) ?? legacyValues.get(k.name);
    if (value !== undefined) overrides[k.name] = value;
  }
  const file = (section: Section): string | undefined => {
    const name = sectionFile(section)!.name;
    return str(name) ?? legacyValues.get(name);
  };

  return {
    help: v.help === true,
    version: v.version === true,
    check: v.check === true,
    legacy,
    netFile: file("net"),
    modFile: file("mod"),
    statsFile: file("stats"),
    overrides,
    enableSync: v["enable-sync"] === true,
    advertise: v.advertise === true,
  };
}
