/**
 * The `--help` text, written like a man page. The options, their defaults and the legacy arguments
 * come from the key table (`config/keys.ts`).
 *
 * @module
 */

import { KEYS, type KeySpec, LEGACY_ARGUMENTS } from "./config/keys.ts";
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
 * helpText().startsWith("NAME"); // true
 * ```
 */
export function helpText(): string {
  return `NAME
    joold ${VERSION} - session synchronization daemon for the Jool NAT64

SYNOPSIS
    joold [OPTION...]
    joold [NETSOCKET] [MODSOCKET] [PORT]          (legacy syntax of joold(8))

DESCRIPTION
    Forwards the sessions that the local Jool instance creates to a UDP multicast group, and hands
    the sessions received from the group (sent by the other translators' daemons) to the local
    instance, so that a standby translator can take over established connections. Speaks exactly
    the bytes of Jool's C daemon (joold / jool session proxy) and interoperates with it.

    Session synchronization must also be enabled in the kernel instance:
        jool global update ss-enabled true          (or run joold with --enable-sync)

LEGACY SYNTAX
${legacyArguments()}
    Used when positional arguments are given, or when no configuration flag is given at all.

OPTIONS
${options()}
    Every option accepts --name=value and --name value. A flag overrides the same key of its file.
    JSON files may contain comments.

SIGNALS
    SIGTERM, SIGINT   stop cleanly (exit 0)
    SIGUSR1           ask the kernel to advertise its whole session table

EXIT STATUS
    0 clean stop   1 runtime failure (one-line reason on stderr)   2 bad configuration

EXAMPLES
    joold netsocket.json modsocket.json 6401
    joold --mod=/etc/joold/mod.json --net.mcast.addr=ff08::db8:64:64 --net.mcast.port=6464 \\
          --net.dev.in=eth1 --net.dev.out=eth1 --net.ttl=3 --stats.port=6401
    joold --net=/etc/joold/net.json --check
    echo | nc -u -w1 ::1 6401                       (query the stats counters)
`;
}
