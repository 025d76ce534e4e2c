/**
 * The `--help` text, written like a man page. Defaults come from {@linkcode DEFAULTS}.
 *
 * @module
 */

import { DEFAULTS } from "./config/defaults.ts";
import { VERSION } from "./version.ts";

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
    NETSOCKET   network socket JSON file                       (default "${DEFAULTS.netFile}")
    MODSOCKET   Netlink socket JSON file                       (default "${DEFAULTS.modFile}")
    PORT        serve the stats counters on UDP [::]:PORT
    Used when positional arguments are given, or when no configuration flag is given at all.

OPTIONS
    --mod=FILE              Netlink socket JSON file: { "instance": "default" }
    --instance=NAME         Jool instance to serve, in this network namespace
                            (default "${DEFAULTS.instance}")
    --net=FILE              network socket JSON file: { "multicast address", "multicast port",
                            "in interface", "out interface", "ttl", "reuseaddr" }
    --net.mcast.addr=ADDR   multicast group, IPv4 or IPv6 (also --net.mcast.address). Without it
                            the sync network is disabled and joold prints the sessions it
                            receives from the kernel, one CSV line each.
    --net.mcast.port=PORT   UDP port, number or service name (default ${DEFAULTS.multicastPort})
    --net.dev.in=DEV        interface to join the group on: IPv4 group: an IPv4 address of the
                            interface; IPv6 group: its name (default: chosen by the kernel)
    --net.dev.out=DEV       interface to send from, same forms (default: chosen by the kernel)
    --net.ttl=INT           TTL / hop limit of the datagrams sent, 0-255 (default ${DEFAULTS.ttl})
    --stats=FILE            stats socket JSON file: { "address", "port" }
    --stats.addr=ADDR       serve the stats counters on this address (also --stats.address;
                            default "${DEFAULTS.statsAddress}", which also serves IPv4)
    --stats.port=PORT       ... and this UDP port (default ${DEFAULTS.statsPort})
                            The stats server runs when any --stats* option or PORT is given.
    --enable-sync           turn the instance's ss-enabled global on at startup if it is off
    --advertise             ask the kernel to send its whole session table once joold is up
    --log-level=LEVEL       error, warn, info or debug (default ${DEFAULTS.logLevel}); logs go to stderr
    --check                 validate the configuration, print it and exit (0 valid, 2 invalid)
    -h, --help              print this help and exit
    -V, --version           print the version and exit
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
