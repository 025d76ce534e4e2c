/**
 * Command-line parsing, with `node:util` parseArgs and the key table: the flag syntax of Jool's
 * "Daemon Configuration Options" page, the legacy `joold [NETSOCKET] [MODSOCKET] [PORT]` syntax of
 * joold(8), and the command line of Jool 4.1.13's own daemon,
 * `joold [-i INSTANCE] session proxy [-i DEV] [-o DEV] [-p PORT] [-t TTL] [--stats.address ADDR]
 * [--stats.port PORT] GROUP` (so that a unit running `jool session proxy` changes only its program).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { COMMAND_LINE, ConfigError } from "./error.ts";
import {
  KEYS,
  type KeySpec,
  LEGACY_ARGUMENTS,
  LEGACY_SYNOPSIS,
  PROXY_SYNOPSIS,
  type Section,
  sectionFile,
} from "./keys.ts";
import { closest } from "./suggest.ts";

/** The command line, parsed but not yet validated. */
export interface ParsedArgs {
  /** `--help` was given. */
  readonly help: boolean;
  /** `--version` was given. */
  readonly version: boolean;
  /** `--keygen` was given: print a new key line, exit. */
  readonly keygen: boolean;
  /** `--check` was given: validate, print, exit. */
  readonly check: boolean;
  /** The syntax: legacy positionals, flags, or `session proxy`. */
  readonly syntax: "legacy" | "flags" | "proxy";
  /** True when the legacy positional syntax applies (positionals given, or no config flag at all). */
  readonly legacy: boolean;
  /**
   * True when the legacy syntax was chosen because nothing configures joold (no positional, no
   * configuration flag: `joold`, `joold --enable-sync`), so the default files are read.
   */
  readonly implicitLegacy: boolean;
  /** Module (Netlink) socket file: `--mod`, or the legacy MODSOCKET. */
  readonly modFile?: string;
  /** Network socket file: `--net`, or the legacy NETSOCKET. */
  readonly netFile?: string;
  /** Stats file: `--stats`. */
  readonly statsFile?: string;
  /**
   * Flag values that override file keys, by canonical flag name (`net.mcast.addr`, ...); a
   * repeatable flag (`--net.peer`) gives its values in order.
   */
  readonly overrides: Readonly<Record<string, string | readonly string[]>>;
  /**
   * How the operator gave each override, for messages: `--net.mcast.address`, `-p`,
   * `PORT (3rd argument)`, `GROUP (the argument of session proxy)`. Keys as in `overrides`.
   */
  readonly typed: Readonly<Record<string, string>>;
  /** `--enable-sync`: turn the instance's ss-enabled on at startup. */
  readonly enableSync: boolean;
  /** `--advertise`: ask the kernel to advertise its table once up. */
  readonly advertise: boolean;
}

type Options = Record<string, { type: "string" | "boolean"; short?: string }>;

/** parseArgs' descriptor of `specs`, each with its aliases and the short name `short` gives. */
function descriptor(specs: readonly KeySpec[], short: (k: KeySpec) => string | undefined): Options {
  return Object.fromEntries(specs.flatMap((k) => {
    const type = k.type === "boolean" ? "boolean" as const : "string" as const;
    const letter = short(k);
    return [
      [k.name, letter === undefined ? { type } : { type, short: letter }],
      ...k.aliases.map((alias) => [alias, { type }]),
    ];
  }));
}

const FLAGS = KEYS.filter((k) => k.flag);
const COMMAND_FLAGS = FLAGS.filter((k) => k.section === "command" || k.section === "top");

/** The flag syntax (and the flags allowed beside the legacy positionals). */
const OPTIONS = descriptor(FLAGS, (k) => k.short);
/** What Jool's `jool` takes before `session proxy`: the instance (`-i`), and our own options. */
const BEFORE_PROXY = descriptor(
  [...FLAGS.filter((k) => k.name === "instance"), ...COMMAND_FLAGS],
  (k) => k.name === "instance" ? "i" : k.short,
);
/** What `session proxy` takes: its options with Jool's short names, and our own options. */
const AFTER_PROXY = descriptor(
  [...FLAGS.filter((k) => k.proxyShort !== undefined || k.proxy === true), ...COMMAND_FLAGS],
  (k) => k.proxyShort ?? k.short,
);

/** Flags that configure the daemon (as opposed to --help, --check, --log-level...). */
const CONFIG_FLAGS = FLAGS.filter((k) =>
  (k.section === "mod" || k.section === "net" || k.section === "stats") &&
  k.selectsSyntax !== false
);

/** Flags whose value overrides a key (every valued flag but the files). */
const VALUE_FLAGS = FLAGS.filter((k) => k.type !== "boolean" && k.type !== "file");

/** Flags that may be repeated, each adding a value (`--net.peer`). */
const MULTIPLE: ReadonlySet<string> = new Set(FLAGS.filter((k) => k.multiple).map((k) => k.name));

const CANONICAL: ReadonlyMap<string, string> = new Map(
  FLAGS.flatMap((
    k,
  ) => [[k.name, k.name], ...k.aliases.map((a) => [a, k.name] as [string, string])]),
);

/** The PROXY GROUP positional, as messages name it. */
export const PROXY_GROUP = "GROUP (the argument of session proxy)";

const ORDINALS = ["1st", "2nd", "3rd"];

function commandLineError(
  error: unknown,
  args: readonly string[],
  options: Options,
  where: string,
): ConfigError {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: string }).code;
  // node's messages quote the option: "Option '-p, --net.mcast.port <value>' argument missing".
  const quoted = /'([^']*)'/.exec(message)?.[1] ?? "";
  const mentioned = quoted.match(/--?[\w.-]+/g) ?? [];
  // Name the option as the operator typed it (-p or --net.mcast.port).
  const option = mentioned.find((m) => args.some((a) => a === m || a.startsWith(`${m}=`))) ??
    mentioned.at(-1);
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    if (options === AFTER_PROXY && option !== undefined && option.slice(2) in BEFORE_PROXY) {
      return new ConfigError(
        COMMAND_LINE,
        option,
        `goes before "session proxy" (${PROXY_SYNOPSIS})`,
        { cause: error },
      );
    }
    if (options !== OPTIONS && option !== undefined && option.slice(2) in OPTIONS) {
      return new ConfigError(
        COMMAND_LINE,
        option,
        `is not part of the session proxy syntax (${PROXY_SYNOPSIS}); ` +
          `use it in the flag syntax, without "session proxy" (see joold --help)`,
        { cause: error },
      );
    }
    const names = Object.keys(options);
    const guess = option?.startsWith("--") ? closest(option.slice(2), names) : undefined;
    return new ConfigError(
      COMMAND_LINE,
      option,
      guess !== undefined
        ? `unknown option${where}; did you mean --${guess}? (see joold --help)`
        : `unknown option${where}: see joold --help`,
      { cause: error },
    );
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    if (message.includes("does not take an argument")) {
      return new ConfigError(COMMAND_LINE, option, "takes no value", { cause: error });
    }
    const long = mentioned.find((m) => m.startsWith("--"))?.slice(2);
    const spec = KEYS.find((k) => k.name === CANONICAL.get(long ?? ""));
    const example = spec?.example ?? "VALUE";
    const problem = option?.startsWith("--")
      ? `needs a value, e.g. ${option}=${example} or ${option} ${example}`
      : `needs a value, e.g. ${option} ${example}`;
    return new ConfigError(COMMAND_LINE, option, problem, { cause: error });
  }
  return new ConfigError(COMMAND_LINE, undefined, message, { cause: error });
}

/** Options (by canonical name, with how they were typed) and positionals of part of the line. */
interface Collected {
  readonly values: Map<string, { value: string | boolean | string[]; typed: string }>;
  readonly positionals: string[];
}

function collect(args: readonly string[], options: Options, where = ""): Collected {
  let tokens;
  try {
    tokens =
      parseArgs({ args: [...args], options, allowPositionals: true, strict: true, tokens: true })
        .tokens;
  } catch (error) {
    throw commandLineError(error, args, options, where);
  }
  const values: Collected["values"] = new Map();
  const positionals: string[] = [];
  for (const token of tokens) {
    if (token.kind === "positional") positionals.push(token.value);
    if (token.kind !== "option") continue;
    const name = CANONICAL.get(token.name) ?? token.name;
    const before = values.get(name);
    if (before !== undefined && before.typed !== token.rawName) {
      const [alias, other] = token.name === name
        ? [before.typed, token.rawName]
        : [token.rawName, before.typed];
      throw new ConfigError(
        COMMAND_LINE,
        alias,
        `is another spelling of ${other}; give only one of them`,
      );
    }
    if (MULTIPLE.has(name) && typeof token.value === "string") {
      const list = before !== undefined && Array.isArray(before.value) ? before.value : [];
      values.set(name, { value: [...list, token.value], typed: token.rawName });
      continue;
    }
    values.set(name, { value: token.value ?? true, typed: token.rawName });
  }
  return { values, positionals };
}

/**
 * Where `session proxy` starts: the first `session proxy` pair that is not an option's value
 * (`joold -i session session proxy ...` serves the instance "session").
 */
function proxyAt(args: readonly string[]): number {
  let broken = -1;
  for (let k = 0; k + 1 < args.length; k++) {
    if (args[k] !== "session" || args[k + 1] !== "proxy") continue;
    try {
      const before = parseArgs({
        args: args.slice(0, k),
        options: BEFORE_PROXY,
        allowPositionals: true,
        strict: true,
      });
      if (before.positionals.length === 0) return k;
    } catch {
      // "session" may be the value of an option before it: try the next pair; if none fits,
      // collect() reports what is wrong with the first.
      if (broken < 0) broken = k;
    }
  }
  return broken;
}

function result(
  collected: Collected["values"],
  syntax: ParsedArgs["syntax"],
  implicitLegacy: boolean,
  extra: { files?: Map<string, string>; overrides?: Map<string, [string, string]> } = {},
): ParsedArgs {
  const overrides: Record<string, string | readonly string[]> = {};
  const typed: Record<string, string> = {};
  for (const k of VALUE_FLAGS) {
    const given = collected.get(k.name);
    if (given !== undefined) {
      overrides[k.name] = given.value as string | string[];
      typed[k.name] = given.typed;
    }
  }
  for (const [name, [value, as]] of extra.overrides ?? []) {
    overrides[name] = value;
    typed[name] = as;
  }
  const file = (section: Section): string | undefined => {
    const name = sectionFile(section)!.name;
    return (collected.get(name)?.value as string | undefined) ?? extra.files?.get(name);
  };
  const flag = (name: string) => collected.get(name)?.value === true;
  return {
    help: flag("help"),
    version: flag("version"),
    keygen: flag("keygen"),
    check: flag("check"),
    syntax,
    legacy: syntax === "legacy",
    implicitLegacy,
    netFile: file("net"),
    modFile: file("mod"),
    statsFile: file("stats"),
    overrides,
    typed,
    enableSync: flag("enable-sync"),
    advertise: flag("advertise"),
  };
}

function parseProxy(args: readonly string[], at: number): ParsedArgs {
  const before = collect(args.slice(0, at), BEFORE_PROXY, " before session proxy");
  const after = collect(args.slice(at + 2), AFTER_PROXY, " of session proxy");
  for (const [name, given] of after.values) {
    if (before.values.has(name) && given.value !== true) {
      throw new ConfigError(COMMAND_LINE, given.typed, "is given twice; give it once");
    }
    before.values.set(name, given);
  }
  const wantsHelp = before.values.has("help") || before.values.has("version") ||
    before.values.has("keygen");
  if (after.positionals.length !== 1 && !wantsHelp) {
    throw new ConfigError(
      COMMAND_LINE,
      undefined,
      after.positionals.length === 0
        ? `session proxy needs the multicast group, e.g. joold session proxy ff08::db8:64:64 (${PROXY_SYNOPSIS})`
        : `session proxy takes one multicast group, got ${after.positionals.length}: ${
          after.positionals.map((p) => JSON.stringify(p)).join(" ")
        } (${PROXY_SYNOPSIS})`,
    );
  }
  const group = after.positionals[0];
  return result(before.values, "proxy", false, {
    overrides: new Map(group === undefined ? [] : [["net.mcast.addr", [group, PROXY_GROUP]]]),
  });
}

/**
 * Parses joold's command line, in any of its three syntaxes.
 *
 * @param args the arguments (without the program name)
 * @returns the parsed command line
 * @throws {ConfigError} for unknown flags, missing values, conflicting syntaxes, extra arguments
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCommandLine } from "./args.ts";
 * assert.equal(parseCommandLine(["netsocket.json", "modsocket.json", "6401"]).syntax, "legacy");
 * assert.equal(parseCommandLine(["session", "proxy", "-p", "6464", "ff08::1"]).syntax, "proxy");
 * ```
 */
export function parseCommandLine(args: readonly string[]): ParsedArgs {
  const at = proxyAt(args);
  if (at >= 0) return parseProxy(args, at);
  const { values, positionals } = collect(args, OPTIONS);
  if (positionals.length > LEGACY_ARGUMENTS.length) {
    throw new ConfigError(
      COMMAND_LINE,
      undefined,
      `too many arguments (${positionals.length}): the legacy syntax is ${LEGACY_SYNOPSIS}`,
    );
  }
  const files = new Map<string, string>();
  const overrides = new Map<string, [string, string]>();
  LEGACY_ARGUMENTS.forEach((argument, i) => {
    const pos = positionals[i];
    if (pos === undefined) return;
    const flag = values.get(argument.key);
    if (flag !== undefined) {
      throw new ConfigError(
        COMMAND_LINE,
        flag.typed,
        `conflicts with the positional ${argument.name} argument ${
          JSON.stringify(pos)
        }; give only one`,
      );
    }
    if (sectionFile(KEYS.find((k) => k.name === argument.key)!.section)?.name === argument.key) {
      files.set(argument.key, pos);
    } else overrides.set(argument.key, [pos, `${argument.name} (${ORDINALS[i]} argument)`]);
  });
  const anyConfigFlag = CONFIG_FLAGS.some((k) => values.has(k.name));
  const legacy = positionals.length > 0 || !anyConfigFlag;
  return result(values, legacy ? "legacy" : "flags", positionals.length === 0 && !anyConfigFlag, {
    files,
    overrides,
  });
}
