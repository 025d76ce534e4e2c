/**
 * The one table of joold's configuration keys and command-line options, like `parseArgs`' options
 * descriptor: for each key its section, JSON file key, flag, aliases, type, default and help text.
 * The argument parser (`args.ts`), the resolver (`resolve.ts`), `--help` (`../help.ts`) and
 * `--check` (`print.ts`) all read it; nothing else spells a key.
 *
 * @module
 */

/**
 * Where a key lives: the section of {@linkcode Config} (and the JSON file that sets it), or
 * `"command"` for options that steer the program rather than configure it (`--help`, `--check`).
 */
export type Section = "mod" | "net" | "stats" | "top" | "command";

/**
 * How a value is read and checked (the resolver has one validator per type):
 * - `file`: the path of a JSON file of the key's section (`--net=FILE`)
 * - `instance`: a Jool instance name
 * - `group`: a multicast address, IPv4 or IPv6
 * - `port-or-service`: a UDP port number or a service name
 * - `interface`: an interface, in the form the group's family wants
 * - `ttl`: an integer 0-255
 * - `switch`: true/false or 1/0 (the C daemon's `"reuseaddr"`)
 * - `address`: an IP address to bind
 * - `port`: an integer 1-65535
 * - `peer-list`: IP addresses of the group's family (a JSON array; a comma-separated flag)
 * - `unicast-peers`: the peers of unicast sync, `ADDR`, `[IPV6]:PORT` or `IPV4:PORT`, one family
 *   (a JSON array; a repeated flag, each may hold a comma-separated list)
 * - `key-file`: the secure-sync key file (exists, mode 600, one key or more: lib/secure/keyfile.ts)
 * - `bytes`: a size in bytes, an integer 0-268435456 (256 MiB)
 * - `seconds`: a duration in seconds, an integer 1-3600
 * - `log-level`: error, warn, info or debug
 * - `host-port`: an IP address (IPv6 in brackets) or host name, a colon and a TCP port
 * - `log-format`: text or json
 * - `boolean`: a flag without a value
 */
export type ValueType =
  | "file"
  | "instance"
  | "group"
  | "port-or-service"
  | "interface"
  | "ttl"
  | "switch"
  | "address"
  | "port"
  | "key-file"
  | "bytes"
  | "seconds"
  | "peer-list"
  | "unicast-peers"
  | "log-level"
  | "host-port"
  | "log-format"
  | "boolean";

/** One configuration key or command-line option. */
export interface KeySpec {
  /** The key's name: its long flag without `--` (`net.mcast.addr`), or `net.reuseaddr` (no flag). */
  readonly name: string;
  /** The section it configures. */
  readonly section: Section;
  /** Its property in the section's object of {@linkcode Config} (`multicastAddress`). */
  readonly field: string;
  /** Its key in the section's JSON file (`"multicast address"`), when a file can set it. */
  readonly fileKey?: string;
  /** Whether `--<name>` is a flag (false: only the file sets it). */
  readonly flag: boolean;
  /** Whether the flag may be repeated, each value adding to a list (`--net.peer`). */
  readonly multiple?: true;
  /** Other spellings of the flag (`net.mcast.address`, as Jool's docs write it). */
  readonly aliases: readonly string[];
  /** One-letter flag (`-h`). */
  readonly short?: string;
  /** One-letter flag in the `session proxy` syntax (`-p`), where Jool's own daemon has one. */
  readonly proxyShort?: string;
  /** Whether `session proxy` takes it as a flag (those with a `proxyShort` do anyway). */
  readonly proxy?: boolean;
  /** How the value is read. */
  readonly type: ValueType;
  /** The value when nothing sets it; undefined when unset is meaningful (the kernel chooses). */
  readonly default?: string | number | boolean;
  /** The help's name for the value (`ADDR`). */
  readonly arg?: string;
  /** A valid value, for the examples of the error messages. */
  readonly example?: string;
  /** The help text (one sentence or two; the default is appended unless `defaultHelp` says). */
  readonly help: string;
  /** How `--help` states the default, when not `(default <value>)`; "" for none. */
  readonly defaultHelp?: string;
  /** Its label in the C daemon's `Config:` block (`--check`), when printed there. */
  readonly printed?: string;
  /**
   * False for a flag of a section that does not choose the syntax: it observes the daemon rather
   * than configures it, so `joold --metrics=...` still reads the legacy default files.
   */
  readonly selectsSyntax?: false;
}

/** Every key and option, in the order `--help` lists them and `--check` prints them. */
export const KEYS: readonly KeySpec[] = [
  {
    name: "mod",
    section: "mod",
    field: "",
    flag: true,
    aliases: [],
    type: "file",
    arg: "FILE",
    example: "/etc/joold/modsocket.json",
    help: `Netlink socket JSON file: { "instance": "default" }`,
  },
  {
    name: "instance",
    section: "mod",
    field: "instance",
    fileKey: "instance",
    flag: true,
    aliases: [],
    type: "instance",
    default: "default",
    arg: "NAME",
    example: "default",
    help: "Jool instance to serve, in this network namespace",
    printed: "mod.instance",
  },
  {
    name: "net",
    section: "net",
    field: "",
    flag: true,
    aliases: [],
    type: "file",
    arg: "FILE",
    example: "/etc/joold/netsocket.json",
    help: `network socket JSON file: { "multicast address" (or "peers"), "multicast port", ` +
      `"in interface", "out interface", "ttl", "reuseaddr" }`,
  },
  {
    name: "net.mcast.addr",
    section: "net",
    field: "multicastAddress",
    fileKey: "multicast address",
    flag: true,
    aliases: ["net.mcast.address"],
    type: "group",
    arg: "ADDR",
    example: "ff08::db8:64:64",
    help: "multicast group, IPv4 or IPv6; without it (and without --net.peer) the sync " +
      "network is disabled and joold prints the sessions it receives from the kernel, one CSV " +
      "line each",
    printed: "net.mcast.addr",
  },
  {
    name: "net.peer",
    section: "net",
    field: "peers",
    fileKey: "peers",
    flag: true,
    multiple: true,
    aliases: [],
    type: "unicast-peers",
    arg: "ADDR",
    example: "2001:db8:ff08::5",
    help: "unicast sync, in place of the multicast group (for networks without multicast): " +
      "send every datagram to each peer and accept datagrams only from the peers; repeat it " +
      "once per peer (or give a comma-separated list), all of one family; a port goes after " +
      "an IPv4 address (192.0.2.2:6464) or an IPv6 one in brackets ([2001:db8::3]:6464), else " +
      "the multicast port is the peer's",
    defaultHelp: "(default: none, the multicast group)",
    printed: "net.peers",
  },
  {
    name: "net.mcast.port",
    section: "net",
    field: "multicastPort",
    fileKey: "multicast port",
    flag: true,
    aliases: [],
    proxyShort: "p",
    type: "port-or-service",
    default: "6400",
    arg: "PORT",
    example: "6400",
    help: "UDP port, number or service name",
    printed: "net.mcast.port",
  },
  {
    name: "net.dev.in",
    section: "net",
    field: "inInterface",
    fileKey: "in interface",
    flag: true,
    aliases: [],
    proxyShort: "i",
    type: "interface",
    arg: "DEV",
    example: "eth0",
    help: "interface to join the group on: IPv4 group: an IPv4 address of the interface; " +
      "IPv6 group: its name. With peers: the interface datagrams must arrive on, same forms " +
      "(IPv4: the socket is bound to that address)",
    defaultHelp: "(default: chosen by the kernel)",
    printed: "net.dev.in",
  },
  {
    name: "net.dev.out",
    section: "net",
    field: "outInterface",
    fileKey: "out interface",
    flag: true,
    aliases: [],
    proxyShort: "o",
    type: "interface",
    arg: "DEV",
    example: "eth0",
    help: "interface to send from, same forms (with peers too: IP_UNICAST_IF / IPV6_UNICAST_IF)",
    defaultHelp: "(default: chosen by the kernel)",
    printed: "net.dev.out",
  },
  {
    name: "net.ttl",
    section: "net",
    field: "ttl",
    fileKey: "ttl",
    flag: true,
    aliases: [],
    proxyShort: "t",
    type: "ttl",
    default: 1,
    arg: "INT",
    example: "3",
    help: "TTL / hop limit of the datagrams sent, 0-255; with peers unset means 64 (a unicast " +
      "peer may be routers away)",
    defaultHelp: "(default 1, with peers 64)",
    printed: "net.ttl",
  },
  {
    name: "net.reuseaddr",
    section: "net",
    field: "reuseAddress",
    fileKey: "reuseaddr",
    flag: false,
    aliases: [],
    type: "switch",
    default: true,
    help: "SO_REUSEADDR on the group's socket",
  },
  {
    name: "net.translate",
    section: "net",
    field: "translateSessions",
    fileKey: "translate sessions",
    flag: true,
    aliases: [],
    type: "switch",
    default: false,
    arg: "BOOL",
    example: "true",
    help: "re-encode the sessions of peers whose Jool speaks another session format (a rolling " +
      "upgrade, e.g. 4.1.9 <-> 4.1.13) in the local kernel's format, refusing what it cannot " +
      "carry; off: such datagrams are dropped with a warning",
  },
  {
    name: "net.peers-allowed",
    section: "net",
    field: "peersAllowed",
    fileKey: "peers allowed",
    flag: true,
    aliases: [],
    type: "peer-list",
    arg: "ADDR[,ADDR...]",
    example: "2001:db8:ff08::5",
    help: "accept datagrams from the sync group only when they come from these addresses (the " +
      "peers' addresses on the sync link); every other sender is dropped and counted",
    defaultHelp: "(default: any sender but this host)",
  },
  {
    name: "net.key",
    section: "net",
    field: "keyFile",
    fileKey: "key file",
    flag: true,
    aliases: [],
    type: "key-file",
    arg: "FILE",
    example: "/etc/joold/sync.key",
    help: "secure sync: seal and verify every datagram with the keys of FILE (one per line, " +
      "made by --keygen, mode 600, the same file on every translator); without it joold " +
      "speaks the C daemon's plain datagrams",
    defaultHelp: "(default: none, plain datagrams)",
  },
  {
    name: "net.resend-buffer",
    section: "net",
    field: "resendBuffer",
    fileKey: "resend buffer",
    flag: true,
    aliases: [],
    type: "bytes",
    default: 1048576,
    arg: "BYTES",
    example: "1048576",
    help: "secure sync only: keep the last BYTES of sent datagrams to resend those a peer NACKs " +
      "(lost on the way); a loss older than that makes the kernel advertise its table " +
      "(Jool 4.1.11+); 0: never resend",
  },
  {
    name: "net.sync-ready-timeout",
    section: "net",
    field: "syncReadyTimeout",
    fileKey: "sync-ready timeout",
    flag: true,
    aliases: [],
    type: "seconds",
    default: 60,
    arg: "SECONDS",
    example: "60",
    help: "secure sync only: a starting daemon is sync-ready once every live peer sent it its " +
      'table, or after SECONDS (keepalived\'s track_script asks: README, "Secure sync")',
  },
  {
    name: "stats",
    section: "stats",
    field: "",
    flag: true,
    aliases: [],
    type: "file",
    arg: "FILE",
    example: "/etc/joold/stats.json",
    help: `stats socket JSON file: { "address", "port" }`,
  },
  {
    name: "stats.addr",
    section: "stats",
    field: "address",
    fileKey: "address",
    flag: true,
    aliases: ["stats.address"],
    proxy: true,
    type: "address",
    default: "::",
    arg: "ADDR",
    example: "::",
    help: `serve the stats counters on this address ("::" also serves IPv4)`,
    printed: "stats.addr",
  },
  {
    name: "stats.port",
    section: "stats",
    field: "port",
    fileKey: "port",
    flag: true,
    aliases: [],
    proxy: true,
    type: "port",
    default: 6401,
    arg: "PORT",
    example: "6401",
    help: "... and this UDP port. The stats server runs when any --stats* option or PORT is given",
    printed: "stats.port",
  },
  {
    name: "metrics",
    section: "stats",
    field: "metrics",
    fileKey: "metrics",
    flag: true,
    aliases: [],
    proxy: true,
    selectsSyntax: false,
    type: "host-port",
    arg: "HOST:PORT",
    example: "[::1]:9477",
    help: "serve Prometheus metrics over HTTP at http://HOST:PORT/metrics (needs " +
      "--allow-net=HOST:PORT); it does not start the UDP stats server",
    defaultHelp: "(default: off)",
  },
  {
    name: "enable-sync",
    section: "command",
    field: "enableSync",
    flag: true,
    aliases: [],
    type: "boolean",
    help: "turn the instance's ss-enabled global on at startup if it is off",
  },
  {
    name: "advertise",
    section: "command",
    field: "advertiseOnStart",
    flag: true,
    aliases: [],
    type: "boolean",
    help: "ask the kernel to send its whole session table once joold is up",
  },
  {
    name: "keygen",
    section: "command",
    field: "keygen",
    flag: true,
    aliases: [],
    type: "boolean",
    help:
      "print a new secure-sync key line and exit (joold --keygen > sync.key; chmod 600 sync.key)",
  },
  {
    name: "log-level",
    section: "top",
    field: "logLevel",
    flag: true,
    aliases: [],
    type: "log-level",
    default: "info",
    arg: "LEVEL",
    example: "debug",
    help: "error, warn, info or debug; logs go to stderr",
  },
  {
    name: "log-format",
    section: "top",
    field: "logFormat",
    flag: true,
    aliases: [],
    type: "log-format",
    default: "text",
    arg: "FORMAT",
    example: "json",
    help: "text (joold: LEVEL: message) or json (one object per line, for journald or Loki)",
  },
  {
    name: "check",
    section: "command",
    field: "check",
    flag: true,
    aliases: [],
    type: "boolean",
    help: "validate the configuration, print it and exit (0 valid, 2 invalid)",
  },
  {
    name: "help",
    section: "command",
    field: "help",
    flag: true,
    aliases: [],
    short: "h",
    type: "boolean",
    help: "print this help and exit",
  },
  {
    name: "version",
    section: "command",
    field: "version",
    flag: true,
    aliases: [],
    short: "V",
    type: "boolean",
    help: "print the version and exit",
  },
];

/**
 * The key named `name`.
 *
 * @param name the key's name (`net.mcast.addr`)
 * @returns its entry in {@linkcode KEYS}
 * @throws {RangeError} when no key has that name (a typo in the code, not in the configuration)
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { key } from "./keys.ts";
 * assert.equal(key("net.mcast.addr").fileKey, "multicast address");
 * ```
 */
export function key(name: string): KeySpec {
  const spec = KEYS.find((k) => k.name === name);
  if (spec === undefined) throw new RangeError(`no configuration key named ${name}`);
  return spec;
}

/**
 * The keys of a section that a JSON file or a flag sets (not the `file` options themselves).
 *
 * @param section the section
 * @returns its keys, in table order
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sectionKeys } from "./keys.ts";
 * assert.deepEqual(sectionKeys("stats").map((k) => k.fileKey), ["address", "port", "metrics"]);
 * ```
 */
export function sectionKeys(section: Section): readonly KeySpec[] {
  return KEYS.filter((k) => k.section === section && k.type !== "file");
}

/**
 * The `file` option of a section (`--net`), if it has one.
 *
 * @param section the section
 * @returns the option, or undefined (the top level and the command options have no file)
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sectionFile } from "./keys.ts";
 * assert.equal(sectionFile("net")?.name, "net");
 * ```
 */
export function sectionFile(section: Section): KeySpec | undefined {
  return KEYS.find((k) => k.section === section && k.type === "file");
}

/** A positional argument of the legacy syntax `joold [NETSOCKET] [MODSOCKET] [PORT]`. */
export interface LegacyArgument {
  /** Its name in the synopsis. */
  readonly name: string;
  /** The key it sets (a `file` option or `stats.port`). */
  readonly key: string;
  /** Its default when absent (the files), if any. */
  readonly default?: string;
  /** The help text. */
  readonly help: string;
}

/** The legacy positional arguments of joold(8), in order. */
export const LEGACY_ARGUMENTS: readonly LegacyArgument[] = [
  {
    name: "NETSOCKET",
    key: "net",
    default: "netsocket.json",
    help: "network socket JSON file",
  },
  { name: "MODSOCKET", key: "mod", default: "modsocket.json", help: "Netlink socket JSON file" },
  { name: "PORT", key: "stats.port", help: "serve the stats counters on UDP [::]:PORT" },
];

/** The legacy synopsis, `joold [NETSOCKET] [MODSOCKET] [PORT]`. */
export const LEGACY_SYNOPSIS = `joold ${LEGACY_ARGUMENTS.map((a) => `[${a.name}]`).join(" ")}`;

/** The synopsis of Jool 4.1.13's own daemon, which joold also takes. */
export const PROXY_SYNOPSIS = "joold [-i INSTANCE] session proxy [-i DEV] [-o DEV] [-p PORT] " +
  "[-t TTL] [--stats.address ADDR] [--stats.port PORT] GROUP";
