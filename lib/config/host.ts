/**
 * The checks of a configuration against this host that need no Jool kernel module: the interfaces
 * exist and have the form the group's family wants, the IPv4 interface addresses and the stats
 * address are local, the ports and service names resolve for UDP. `--check` runs them, and so does
 * startup before any socket opens, so both reject the same things with the same line, naming the
 * file and key (or the flag) the value came from. They use the libc calls the sockets use at
 * startup (if_nametoindex, getaddrinfo, bind), and open no group and send nothing.
 *
 * @module
 */

import { getAddrInfo } from "../../ffi/addrinfo.ts";
import { ERRNO, SystemError } from "../../ffi/errno.ts";
import { getInterfaceAddresses } from "../../ffi/ifaddrs.ts";
import { bind, close, ifNameToIndex, libc, libcPath, SOCK_DGRAM, socket } from "../../ffi/libc.ts";
import { addressFamily, parsePeer } from "./address.ts";
import { ConfigError } from "./error.ts";
import { key } from "./keys.ts";
import type { Config } from "./types.ts";
import type { Origin } from "./validate.ts";

/** What a host check verified, and what it could not. */
export interface HostReport {
  /** What was verified, one phrase each (`in interface eth0 exists`). */
  readonly checked: readonly string[];
  /** What was not verified, grouped by why: `needs the kernel` -> its phrases. */
  readonly notChecked: ReadonlyMap<string, readonly string[]>;
}

/** Where a value came from, or its default. */
function originOf(origins: Readonly<Record<string, Origin>>, name: string): Origin {
  return origins[name] ?? { source: "default", key: `--${name}` };
}

function fail(origin: Origin, problem: string): never {
  throw new ConfigError(origin.source, origin.key, problem);
}

/**
 * Whether `address` is an address of this network namespace: bind(2) to it, port 0, says
 * EADDRNOTAVAIL when it is not (joining an IPv4 group on it fails the same way, with ENODEV).
 */
function isLocal(address: string): boolean {
  let fd = -1;
  try {
    const [candidate] = getAddrInfo(address, "0");
    fd = socket(candidate.family, SOCK_DGRAM, 0);
    bind(fd, candidate.address);
    return true;
  } catch (error) {
    if (error instanceof SystemError && error.errno === ERRNO.EADDRNOTAVAIL) return false;
    // Another reason (no IPv6 in this kernel, a scope-less link-local address...): startup, which
    // knows what to do with it, names it.
    return true;
  } finally {
    if (fd >= 0) close(fd);
  }
}

/** Whether libc can be called (`--allow-ffi` granted); `--check` also works with less. */
function libcAvailable(): boolean {
  try {
    libc();
    return true;
  } catch {
    return false;
  }
}

/**
 * Checks the configuration against this host.
 *
 * @param config the effective configuration
 * @param origins where each value came from (`Resolved.origins`)
 * @returns what was checked and what was not (and why)
 * @throws {ConfigError} naming the value's file and key (or flag) and what is wrong
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCommandLine } from "./args.ts";
 * import { checkHost } from "./host.ts";
 * import { resolveConfig } from "./resolve.ts";
 * const { config, origins } = resolveConfig(
 *   parseCommandLine(["--net.mcast.addr=ff08::db8:64:64", "--net.dev.in=lo"]),
 * );
 * assert.ok(checkHost(config, origins).notChecked.has("needs the kernel"));
 * ```
 */
export function checkHost(config: Config, origins: Readonly<Record<string, Origin>>): HostReport {
  const checked: string[] = [];
  const notChecked = new Map<string, string[]>();
  const later = (why: string, what: string) =>
    notChecked.set(why, [...notChecked.get(why) ?? [], what]);
  later(
    "needs the kernel",
    `Jool module loaded, instance "${config.mod.instance}" exists, ss-enabled`,
  );
  if (!libcAvailable()) {
    const what = [
      config.net && "interfaces, local addresses, port names",
      config.stats && "stats address",
    ].filter((w) => w).join(", ");
    if (what !== "") later(`needs --allow-ffi=${libcPath()}`, what);
    return { checked, notChecked };
  }
  const net = config.net;
  if (net !== null) {
    const port = originOf(origins, "net.mcast.port");
    const peers = (net.peers ?? []).map((p) => ({ text: p, ...parsePeer(p)! }));
    // The group, or (unicast) the first peer: either resolves with the port or service name.
    const host = net.multicastAddress ?? peers[0].address;
    try {
      getAddrInfo(host, net.multicastPort);
    } catch (error) {
      fail(
        /^[0-9]+$/.test(net.multicastPort)
          ? originOf(origins, net.multicastAddress === undefined ? "net.peer" : "net.mcast.addr")
          : port,
        /^[0-9]+$/.test(net.multicastPort)
          ? `${host} does not resolve (${(error as Error).message})`
          : `${
            JSON.stringify(net.multicastPort)
          } is not a UDP service of this system (see /etc/services; a name listed only for tcp does not count): use a port number 1-65535`,
      );
    }
    checked.push(`port ${net.multicastPort}/udp`);
    if (peers.length > 0) {
      const own = getInterfaceAddresses();
      for (const peer of peers) {
        const mine = own.find((a) =>
          a.address.length === peer.bytes.length && a.address.every((b, i) => b === peer.bytes[i])
        );
        // Link-local addresses cannot be bound without their scope: getifaddrs alone judges them.
        const linkLocal = peer.family === 6 && peer.bytes[0] === 0xfe &&
          (peer.bytes[1] & 0xc0) === 0x80;
        if (mine !== undefined || (!linkLocal && isLocal(peer.address))) {
          fail(
            originOf(origins, "net.peer"),
            `${JSON.stringify(peer.text)} is an address of this host${
              mine ? ` (${mine.name})` : ""
            }: a translator does not sync with itself; list the OTHER translators' addresses`,
          );
        }
      }
      checked.push(`no peer is this host`);
    }
    const ipv4 = (net.multicastAddress === undefined
      ? peers[0].family
      : addressFamily(net.multicastAddress)) === 4;
    for (
      const [name, value] of [["net.dev.in", net.inInterface], ["net.dev.out", net.outInterface]]
    ) {
      if (value === undefined) {
        continue;
      }
      const origin = originOf(origins, name!);
      const label = key(name!).fileKey;
      if (ipv4) {
        if (!isLocal(value)) {
          fail(
            origin,
            `${value} is not an address of any interface in this network namespace (see ip address)`,
          );
        }
        checked.push(`${label} ${value} is local`);
      } else {
        if (ifNameToIndex(value) === 0) {
          fail(origin, `no interface named "${value}" in this network namespace (see ip link)`);
        }
        checked.push(`${label} ${value} exists`);
      }
    }
    later("done at start", `port ${net.multicastPort} free or shared (reuseaddr)`);
  }
  const stats = config.stats;
  if (stats !== null) {
    if (!isLocal(stats.address)) {
      fail(
        originOf(origins, "stats.addr"),
        `${stats.address} is not an address of any interface in this network namespace (see ip address)`,
      );
    }
    checked.push(`stats address ${stats.address} is local`);
    later("done at start", `stats port ${stats.port} free`);
  }
  return { checked, notChecked };
}

/**
 * The report as the lines `--check` prints after the `Config:` block.
 *
 * @param report what {@linkcode checkHost} returned
 * @returns the lines, newline-terminated
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatHostReport } from "./host.ts";
 * const text = formatHostReport({ checked: [], notChecked: new Map([["needs the kernel", ["x"]]]) });
 * assert.equal(text, "not checked (needs the kernel): x\n");
 * ```
 */
export function formatHostReport(report: HostReport): string {
  const lines = report.checked.length > 0 ? [`checked: ${report.checked.join(", ")}`] : [];
  for (const [why, what] of report.notChecked) {
    lines.push(`not checked (${why}): ${what.join(", ")}`);
  }
  return lines.map((l) => l + "\n").join("");
}
