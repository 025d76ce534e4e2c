/**
 * The `--help` text, written like a man page. The options, their defaults and the legacy arguments
 * come from the key table (`config/keys.ts`).
 *
 * @module
 */

import { DEFAULTS } from "./config/defaults.ts";
import {
  KEYS,
  type KeySpec,
  LEGACY_ARGUMENTS,
  LEGACY_SYNOPSIS,
  PROXY_SYNOPSIS,
} from "./config/keys.ts";
import { VERSION } from "./version.ts";

const WIDTH = 100;
const LABEL = 24;

/** Wraps `text` into lines of at most {@linkcode WIDTH}, the first after `label`. */
function item(label: string, text: string, labelWidth = LABEL): string {
  const indent = " ".repeat(4 + labelWidth);
  const lines: string[] = [];
  let line = `    ${label.padEnd(labelWidth - 1)}`;
  if (label.length >= labelWidth - 1) {
    lines.push(`    ${label}`);
    line = indent.slice(0, -1);
  }
  for (const word of text.split(" ")) {
    if ((line + " " + word).length > WIDTH && line.trim() !== "") {
      lines.push(line);
      line = indent + word;
    } else line += " " + word;
  }
  lines.push(line);
  return lines.join("\n");
}

function defaultText(spec: KeySpec): string {
  if (spec.defaultHelp !== undefined) return spec.defaultHelp;
  if (spec.default === undefined) return "";
  const value = spec.default;
  return `(default ${
    typeof value === "string" && !/^[0-9]+$/.test(value) ? JSON.stringify(value) : value
  })`;
}

function options(): string {
  return KEYS.filter((k) => k.flag).map((k) => {
    const label = `${k.short !== undefined ? `-${k.short}, ` : ""}--${k.name}${
      k.arg !== undefined ? `=${k.arg}` : ""
    }`;
    const also = k.aliases.length > 0 ? ` (also ${k.aliases.map((a) => `--${a}`).join(", ")})` : "";
    return item(label, [k.help + also, defaultText(k)].filter((t) => t !== "").join(" "));
  }).join("\n");
}

/** Wraps `text` at spaces, the first line indented `first`, the others `rest`. */
function wrap(text: string, first: number, rest: number): string {
  const lines: string[] = [];
  let line = " ".repeat(first);
  for (const word of text.split(" ")) {
    if ((line + word).length > WIDTH && line.trim() !== "") {
      lines.push(line.trimEnd());
      line = " ".repeat(rest);
    }
    line += word + " ";
  }
  lines.push(line.trimEnd());
  return lines.join("\n");
}

function proxyArguments(): string {
  const group = KEYS.find((k) => k.type === "group")!;
  const rows = [item("GROUP", `${group.help.split(";")[0]} (required)`)];
  for (const k of KEYS.filter((k) => k.proxyShort !== undefined || k.proxy === true)) {
    const label = `${k.proxyShort !== undefined ? `-${k.proxyShort}, ` : ""}--${
      [...k.aliases, k.name][0]
    }=${k.arg}`;
    rows.push(item(label, `as --${k.name} ${defaultText(k)}`.trimEnd()));
  }
  return rows.join("\n");
}

function fileKeys(): string {
  const files = KEYS.filter((k) => k.type === "file");
  return files.map((file) => {
    const keys = KEYS.filter((k) => k.section === file.section && k.fileKey !== undefined);
    return [
      `    --${file.name} FILE:`,
      ...keys.map((k) =>
        item(
          `  "${k.fileKey}"`,
          k.flag ? `as --${k.name}` : `${k.help}: true/false or 1/0 ${defaultText(k)}`,
        )
      ),
    ].join("\n");
  }).join("\n");
}

function legacyArguments(): string {
  return LEGACY_ARGUMENTS.map((a) =>
    item(a.name, a.default !== undefined ? `${a.help} (default "${a.default}")` : a.help, 12)
  ).join("\n");
}

/**
 * Builds the help text.
 *
 * @returns the text, newline-terminated
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { helpText } from "./help.ts";
 * assert.ok(helpText().startsWith("NAME\n"));
 * ```
 */
export function helpText(): string {
  return `NAME
    joold ${VERSION} - session synchronization daemon for the Jool NAT64

SYNOPSIS
    joold [OPTION...]                             (flag syntax)
    ${LEGACY_SYNOPSIS}          (legacy syntax of joold(8))
${wrap(PROXY_SYNOPSIS, 4, 6)}
                                                  (Jool 4.1.13's jool session proxy)

DESCRIPTION
    Forwards the sessions that the local Jool instance creates to a UDP multicast group, and hands
    the sessions received from the group (sent by the other translators' daemons) to the local
    instance, so that a standby translator can take over established connections. Speaks exactly
    the bytes of Jool's C daemon (joold / jool session proxy) and interoperates with it.

    Session synchronization must also be enabled in the kernel instance:
        jool global update ss-enabled true          (or run joold with --enable-sync)

    Three syntaxes: "session proxy" after the options selects Jool 4.1.13's; positional arguments
    select the legacy one; configuration flags the flag syntax. With neither positionals nor
    configuration flags (joold, joold --enable-sync) joold says so and reads the legacy default
    files from the current directory. Without any network configuration (no NETSOCKET file, no
    --net, no --net.* flag) the sync network is disabled and joold prints the kernel's sessions
    (SESSION OUTPUT); a network file or flag without the multicast group is an error. Where
    there is no multicast (a cloud), --net.peer (file key "peers") lists the other translators
    instead of the group: every datagram is sent to each, only they are accepted (ours).

LEGACY SYNTAX
${legacyArguments()}
    Used when positional arguments are given, or when no configuration flag is given at all.

SESSION PROXY SYNTAX
${proxyArguments()}
    Before "session", -i (--instance) names the Jool instance; after "proxy", -i is the in
    interface. The stats server runs only when a --stats option is given.

OPTIONS
${options()}
    Every option accepts --name=value and --name value. A flag overrides the same key of its file.

FILE KEYS
${fileKeys()}
    Files may contain comments and a UTF-8 byte order mark; keys are not case-sensitive (as in
    the C daemon). A key close to a known one (a typo) is an error; another unknown key, or a key
    given twice (the first counts, as in the C daemon), is a warning naming file and key.

STATS
    Any UDP datagram to the stats address and port gets six lines back, NAME,VALUE:
        KERNEL_SENT_PKTS,12     JOOLD_ADD requests sent to the local kernel (the peers' sessions)
        KERNEL_SENT_BYTES,1680  ... and the session bytes they carried
        NET_RCVD_PKTS,12        datagrams received from the multicast group
        NET_RCVD_BYTES,1680     ... and their bytes
        NET_SENT_PKTS,3         datagrams sent to the multicast group (the local kernel's sessions)
        NET_SENT_BYTES,420      ... and their bytes
    With unicast peers, NET_SENT_* count one datagram per peer it was sent to.
    The 4.1.x C daemon counts something else in KERNEL_SENT_*: the batches it received FROM the
    kernel. joold counts what its name says, what it sent TO the kernel.

SESSION OUTPUT
    In print mode (no network configuration) each session from the kernel is one line on stdout,
    as the C daemon prints it:
        PROTO,src6,port,src4,port,dst4,port,expiry
        UDP,2001:db8::8,5000,192.0.2.1,61001,198.51.100.8,53,0:05:00
    PROTO is TCP, UDP or ICMP; src6 and port: the IPv6 client; src4 and port: the translator's
    pool4 address; dst4 and port: the IPv4 server; expiry: time to live, H:MM:SS[.mmm].

SIGNALS
    SIGTERM, SIGINT   stop cleanly (exit 0)
    SIGUSR1           ask the kernel to advertise its whole session table

EXIT STATUS
    0 clean stop   1 runtime failure (one-line reason on stderr)   2 bad configuration

PRIVILEGES
    Jool's Generic Netlink commands need CAP_NET_ADMIN (root, or a user holding only it). Deno
    permissions: --allow-ffi=<absolute path of libc.so.6> (every socket is a libc socket; as strong
    as -A) and --allow-read=<the configuration files or their directory>. --help needs none;
    --check needs --allow-read, and --allow-ffi for the interface, address and port checks.

FILES
    /etc/joold/                   the configuration directory of the packaged unit
                                  (joold@INSTANCE.service reads /etc/joold/INSTANCE/netsocket.json)
    ${DEFAULTS.netFile.padEnd(30)}NETSOCKET when no argument names it (current directory)
    ${DEFAULTS.modFile.padEnd(30)}MODSOCKET when no argument names it (current directory)
    /etc/services                 the port service names ("multicast port", --net.mcast.port)
    /sys/module/jool/version      the Jool version, read at start

ENVIRONMENT
    JOOLD_LIBC              absolute path of the libc to open instead of the usual locations; read
                            only when --allow-env=JOOLD_LIBC is granted (and --allow-ffi for it)
    JOOLD_LINGER_MS         benchmarks only: the reactor's linger after a wake-up, in ms (0 off);
                            read only with --allow-env=JOOLD_LINGER_MS
    JOOLD_SEAL_THREAD       benchmarks only: 1 seals and sends secure sync's envelopes on a
                            thread of their own; read only with --allow-env=JOOLD_SEAL_THREAD
    JOOLD_TEST_NETLINK_PEER tests only: talk to a fake kernel; read only with --allow-env
    NO_COLOR                honoured by Deno

EXAMPLES
    joold netsocket.json modsocket.json 6401
    joold --mod=/etc/joold/mod.json --net.mcast.addr=ff08::db8:64:64 --net.mcast.port=6464 \\
          --net.dev.in=eth1 --net.dev.out=eth1 --net.ttl=3 --stats.port=6401
    joold -i default session proxy -i eth1 -o eth1 -p 6464 -t 3 --stats.port 6401 ff08::db8:64:64
    joold --net=/etc/joold/net.json --check
    echo | nc -u -w1 ::1 6401                       (query the stats counters)
`;
}
