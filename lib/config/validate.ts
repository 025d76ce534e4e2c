/**
 * Validators for single configuration values. Each takes the raw value (a JSON value from a file, or
 * the string of a flag), the source and key to name in errors, and returns the typed value or throws
 * a {@linkcode ConfigError}.
 *
 * @module
 */

import { addressFamily, type Family, isMulticast, parsePeer } from "./address.ts";
import { INSTANCE_NAME_MAX_LENGTH } from "./defaults.ts";
import { COMMAND_LINE, ConfigError } from "./error.ts";
import type { LogFormat, LogLevel, MetricsConfig } from "./types.ts";
import { KeyFileError, loadKeyFile } from "../secure/keyfile.ts";

/** Where a raw value came from: the file path (or "command line") and the key or flag. */
export interface Origin {
  /** The file path, or "command line". */
  readonly source: string;
  /** The JSON key or the flag. */
  readonly key: string;
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  return `${typeof value} ${String(value)}`;
}

function fail(origin: Origin, problem: string): never {
  throw new ConfigError(origin.source, origin.key, problem);
}

/**
 * Reads an integer in `[min, max]` from a JSON number, or from a decimal string when `fromFlag`.
 *
 * @param origin where the value came from
 * @param value raw value
 * @param min smallest allowed
 * @param max largest allowed
 * @param strings whether a decimal string is accepted (flags, and ports in files)
 * @returns the integer
 * @throws {ConfigError} when it is not an integer in range
 * @example
 * ```ts
 * integerIn({ source: "net.json", key: "ttl" }, 3, 0, 255, false); // 3
 * ```
 */
export function integerIn(
  origin: Origin,
  value: unknown,
  min: number,
  max: number,
  strings: boolean,
): number {
  const what = `must be an integer ${min}-${max}, got ${describe(value)}`;
  let n: number;
  if (typeof value === "number") n = value;
  else if (strings && typeof value === "string" && /^[0-9]+$/.test(value.trim())) {
    n = Number(value.trim());
  } else fail(origin, what);
  if (!Number.isInteger(n) || n < min || n > max) fail(origin, what);
  return n;
}

/**
 * Reads a non-empty string.
 *
 * @param origin where the value came from
 * @param value raw value
 * @returns the string
 * @throws {ConfigError} when it is not a non-empty string
 * @example
 * ```ts
 * nonEmptyString({ source: "net.json", key: "in interface" }, "eth0"); // "eth0"
 * ```
 */
export function nonEmptyString(origin: Origin, value: unknown): string {
  if (typeof value !== "string" || value.length === 0) {
    fail(origin, `must be a non-empty string, got ${describe(value)}`);
  }
  return value;
}

/**
 * Validates a Jool instance name (1-15 characters, printable ASCII).
 *
 * @param origin where the value came from
 * @param value raw value
 * @returns the name
 * @throws {ConfigError} when it is not a valid instance name
 * @example
 * ```ts
 * instanceName({ source: "mod.json", key: "instance" }, "default"); // "default"
 * ```
 */
export function instanceName(origin: Origin, value: unknown): string {
  const name = nonEmptyString(origin, value);
  if (name.length > INSTANCE_NAME_MAX_LENGTH || !/^[\x21-\x7e]+$/.test(name)) {
    fail(
      origin,
      `must be a Jool instance name of 1-${INSTANCE_NAME_MAX_LENGTH} printable characters, got ${
        describe(value)
      }`,
    );
  }
  return name;
}

/**
 * Validates the multicast group: an IPv4 or IPv6 literal in the multicast range.
 *
 * @param origin where the value came from
 * @param value raw value
 * @returns the address text
 * @throws {ConfigError} when it is not an address, or not a multicast one
 * @example
 * ```ts
 * multicastAddress({ source: "net.json", key: "multicast address" }, "ff08::db8:64:64");
 * ```
 */
export function multicastAddress(origin: Origin, value: unknown): string {
  const text = nonEmptyString(origin, value);
  if (addressFamily(text) === null) {
    fail(origin, `must be an IPv4 or IPv6 address, got ${describe(value)}`);
  }
  if (!isMulticast(text)) {
    fail(
      origin,
      `${text} is not a multicast address: use one in 224.0.0.0/4 (IPv4) or ff00::/8 (IPv6), e.g. ff08::db8:64:64`,
    );
  }
  return text;
}

/**
 * Validates a UDP port given as a number or a string: a decimal 1-65535 or a service name (resolved
 * through /etc/services when the socket opens).
 *
 * @param origin where the value came from
 * @param value raw value
 * @returns the port as text (decimal, or the service name)
 * @throws {ConfigError} when it is neither
 * @example
 * ```ts
 * portOrService({ source: "net.json", key: "multicast port" }, "6464"); // "6464"
 * ```
 */
export function portOrService(origin: Origin, value: unknown): string {
  if (typeof value === "number" || (typeof value === "string" && /^[0-9]+$/.test(value))) {
    return String(integerIn(origin, value, 1, 65535, true));
  }
  if (typeof value === "string" && /^[A-Za-z][A-Za-z0-9._+-]*$/.test(value)) return value;
  return fail(
    origin,
    `must be a port number 1-65535 or a service name from /etc/services, got ${describe(value)}`,
  );
}

/**
 * Validates an interface option against the group's family: IPv4 groups take a local IPv4 address,
 * IPv6 groups an interface name (as Jool's C daemon does).
 *
 * @param origin where the value came from
 * @param value raw value
 * @param family the multicast group's family (or the peers')
 * @param unicast whether the family is the peers' (for the message)
 * @returns the text
 * @throws {ConfigError} when the form does not fit the family
 * @example
 * ```ts
 * interfaceFor({ source: "net.json", key: "in interface" }, "eth0", 6); // "eth0"
 * ```
 */
export function interfaceFor(
  origin: Origin,
  value: unknown,
  family: Family,
  unicast = false,
): string {
  const text = nonEmptyString(origin, value);
  const network = unicast ? `the peers are IPv${family}` : `the multicast group is IPv${family}`;
  if (family === 4) {
    if (addressFamily(text) !== 4) {
      fail(
        origin,
        `${network}, so this must be an IPv4 address of the interface, got ${describe(value)}`,
      );
    }
    return text;
  }
  if (addressFamily(text) !== null) {
    fail(
      origin,
      `${network}, so this must be an interface name (e.g. "eth0"), got the address ${text}`,
    );
  }
  if (text.length > 15 || !/^[^\s/:]+$/.test(text)) {
    fail(
      origin,
      `must be an interface name (1-15 characters, no "/", ":" or spaces), got ${describe(value)}`,
    );
  }
  return text;
}

/**
 * Validates an address to bind (an IPv4 or IPv6 literal).
 *
 * @param origin where the value came from
 * @param value raw value
 * @returns the address text
 * @throws {ConfigError} when it is not an IP literal
 * @example
 * ```ts
 * bindAddress({ source: "stats.json", key: "address" }, "::"); // "::"
 * ```
 */
export function bindAddress(origin: Origin, value: unknown): string {
  const text = nonEmptyString(origin, value);
  if (addressFamily(text) === null) {
    fail(
      origin,
      `must be an IPv4 or IPv6 address such as "::" or "127.0.0.1", got ${describe(value)}`,
    );
  }
  return text;
}

/**
 * Validates the peers a sync group accepts datagrams from (`"peers allowed"`): a JSON array of IP
 * addresses in a file, a comma-separated list on the command line, each of the group's family and
 * none multicast.
 *
 * @param origin where the value came from
 * @param value raw value
 * @param family the sync group's family (or the unicast peers')
 * @param unicast whether the family is the unicast peers' (for the message)
 * @returns the addresses as given
 * @throws {ConfigError} naming the entry at fault
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { peerList } from "./validate.ts";
 *
 * const origin = { source: "net.json", key: "peers allowed" };
 * assert.deepEqual(peerList(origin, ["2001:db8:ff08::5"], 6), ["2001:db8:ff08::5"]);
 * assert.throws(() => peerList(origin, ["192.0.2.5"], 6), /IPv6/);
 * ```
 */
export function peerList(
  origin: Origin,
  value: unknown,
  family: Family,
  unicast = false,
): string[] {
  const list = typeof value === "string" && origin.source === COMMAND_LINE
    ? value.split(",").map((s) => s.trim())
    : value;
  if (!Array.isArray(list) || list.length === 0) {
    fail(
      origin,
      `must be a non-empty list of the peers' addresses, e.g. ["2001:db8:ff08::5"], got ${
        Array.isArray(list) ? "an empty list" : describe(value)
      }`,
    );
  }
  return list.map((entry) => {
    if (typeof entry !== "string" || addressFamily(entry) !== family || isMulticast(entry)) {
      fail(
        origin,
        `every peer must be a unicast IPv${family} address (the ${
          unicast ? "peers are" : "sync group is"
        } IPv${family}), got ${describe(entry)}`,
      );
    }
    return entry;
  });
}

/**
 * Validates the unicast peers (`"peers"`, `--net.peer`): a JSON array of peers in a file; on the
 * command line one value per `--net.peer` (repeated), each of which may be a comma-separated list.
 * A peer is `ADDR`, `IPV4:PORT` or `[IPV6]:PORT` (lib/config/address.ts {@linkcode parsePeer});
 * every peer is a unicast address of the first peer's family (one socket of one family serves
 * them all: no IPv4 peer beside an IPv6 one), none given twice. That none is this host's own
 * address is checked against the host (lib/config/host.ts), not here.
 *
 * @param origin where the value came from
 * @param value raw value: a JSON array, or the flag's string(s)
 * @returns the peers as written (trimmed), in order
 * @throws {ConfigError} naming the peer at fault and what to write instead
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unicastPeers } from "./validate.ts";
 *
 * const origin = { source: "net.json", key: "peers" };
 * assert.deepEqual(unicastPeers(origin, ["2001:db8::2", "[2001:db8::3]:6464"]), [
 *   "2001:db8::2",
 *   "[2001:db8::3]:6464",
 * ]);
 * assert.throws(() => unicastPeers(origin, ["2001:db8::2", "192.0.2.2"]), /one family/);
 * ```
 */
export function unicastPeers(origin: Origin, value: unknown): string[] {
  const form = `e.g. ["2001:db8::2", "[2001:db8::3]:6464"] or ["192.0.2.2", "192.0.2.3:6464"]`;
  let list: unknown;
  if (origin.source === COMMAND_LINE && (typeof value === "string" || Array.isArray(value))) {
    list = (Array.isArray(value) ? value : [value]).flatMap((v) =>
      String(v).split(",").map((s) => s.trim())
    );
  } else list = value;
  if (!Array.isArray(list) || list.length === 0) {
    fail(
      origin,
      Array.isArray(list)
        ? `lists no peer: give at least one peer's address (${form}), or remove the key to use the multicast group`
        : `must be a list of the peers' addresses, ${form}, got ${describe(value)}`,
    );
  }
  const seen = new Map<string, string>();
  let first: { text: string; family: Family } | undefined;
  return list.map((entry) => {
    if (typeof entry !== "string") {
      fail(origin, `every peer must be a string such as "2001:db8::2", got ${describe(entry)}`);
    }
    const text = entry.trim();
    const peer = parsePeer(text);
    if (peer === null) {
      fail(
        origin,
        `${JSON.stringify(entry)} is not a peer: write an IP address, "IPV4:PORT" or ` +
          `"[IPV6]:PORT" (a port after an IPv6 address takes brackets), e.g. "[2001:db8::3]:6464"`,
      );
    }
    if (peer.port !== undefined) {
      const port = Number(peer.port);
      if (!/^[1-9][0-9]{0,4}$/.test(peer.port) || port > 65535) {
        fail(origin, `${JSON.stringify(text)}: the port must be 1-65535, got ${peer.port}`);
      }
    }
    if (isMulticast(peer.address)) {
      fail(
        origin,
        `${JSON.stringify(text)} is a multicast address: a peer is another translator's unicast ` +
          `address (a group goes in "multicast address" instead of "peers")`,
      );
    }
    const b = peer.bytes;
    // The unspecified address, 0.0.0.0/8 and the broadcast address name no one translator.
    if (
      b.every((x) => x === 0) ||
      (peer.family === 4 &&
        (b[0] === 0 || b[0] === 255 && b[1] === 255 && b[2] === 255 && b[3] === 255))
    ) {
      fail(origin, `${JSON.stringify(text)} is not a host's address: give the peer's own address`);
    }
    // The IPv6 socket is IPv6 only (one family per socket): it never reaches ::ffff:0:0/96.
    if (
      peer.family === 6 && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff &&
      b[11] === 0xff
    ) {
      fail(
        origin,
        `${JSON.stringify(text)} is an IPv4-mapped address: write the IPv4 address itself (${
          b.subarray(12).join(".")
        })`,
      );
    }
    if (first === undefined) first = { text, family: peer.family };
    else if (peer.family !== first.family) {
      fail(
        origin,
        `${JSON.stringify(text)} is IPv${peer.family} but the first peer ${
          JSON.stringify(first.text)
        } is IPv${first.family}: the peers share one socket of one family; list every peer by ` +
          `its IPv${first.family} address (or every peer by its IPv${peer.family} one)`,
      );
    }
    const key = Array.from(b).join(".");
    const before = seen.get(key);
    if (before !== undefined) {
      fail(
        origin,
        `${JSON.stringify(text)} is the same peer as ${
          JSON.stringify(before)
        }: give each peer once`,
      );
    }
    seen.set(key, text);
    return text;
  });
}

/**
 * Reads a boolean: JSON true/false, or 0/1 (the C daemon's `"reuseaddr"` integer).
 *
 * @param origin where the value came from
 * @param value raw value
 * @returns the boolean
 * @throws {ConfigError} for anything else
 * @example
 * ```ts
 * flag({ source: "net.json", key: "reuseaddr" }, 1); // true
 * ```
 */
export function flag(origin: Origin, value: unknown): boolean {
  if (typeof value === "boolean") return value;
  if (value === 0 || value === 1) return value === 1;
  return fail(origin, `must be true, false, 1 or 0, got ${describe(value)}`);
}

const LEVELS: readonly LogLevel[] = ["error", "warn", "info", "debug"];

/**
 * Validates a log level.
 *
 * @param origin where the value came from
 * @param value raw value
 * @returns the level
 * @throws {ConfigError} when it is not one of error, warn, info, debug
 * @example
 * ```ts
 * logLevel({ source: "command line", key: "--log-level" }, "debug"); // "debug"
 * ```
 */
export function logLevel(origin: Origin, value: unknown): LogLevel {
  if (typeof value === "string" && (LEVELS as readonly string[]).includes(value)) {
    return value as LogLevel;
  }
  return fail(origin, `must be one of ${LEVELS.join(", ")}, got ${describe(value)}`);
}

/**
 * Validates a listening address `HOST:PORT`: an IPv4 literal, an IPv6 literal in brackets
 * (`[::1]:9477`) or a host name, then a TCP port 1-65535.
 *
 * @param origin where the value came from
 * @param value raw value
 * @returns the host (IPv6 without brackets), the port, and the address as `--allow-net` names it
 * @throws {ConfigError} when it is not of that form
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hostPort } from "./validate.ts";
 * const metrics = hostPort({ source: "command line", key: "--metrics" }, "[::1]:9477");
 * assert.deepEqual(metrics, { hostname: "::1", port: 9477, permission: "[::1]:9477" });
 * ```
 */
export function hostPort(origin: Origin, value: unknown): MetricsConfig {
  const text = nonEmptyString(origin, value);
  const form = `HOST:PORT, e.g. "[::1]:9477" or "127.0.0.1:9477"`;
  const match = /^(?:\[([^\]]+)\]|([^:\[\]]+)):([0-9]{1,5})$/.exec(text);
  if (match === null) {
    return fail(origin, `must be ${form} (an IPv6 address in brackets), got ${describe(value)}`);
  }
  const [, v6, host, digits] = match;
  if (v6 !== undefined && addressFamily(v6) !== 6) {
    return fail(origin, `"${v6}" in brackets is not an IPv6 address (${form})`);
  }
  const hostname = v6 ?? host;
  if (v6 === undefined && !/^[A-Za-z0-9.-]+$/.test(hostname)) {
    return fail(origin, `"${hostname}" is not an IPv4 address or host name (${form})`);
  }
  const port = Number(digits);
  if (port < 1 || port > 65535) return fail(origin, `the port must be 1-65535, got ${digits}`);
  return { hostname, port, permission: v6 !== undefined ? `[${v6}]:${port}` : `${host}:${port}` };
}

const FORMATS: readonly LogFormat[] = ["text", "json"];

/**
 * Validates a log format.
 *
 * @param origin where the value came from
 * @param value raw value
 * @returns the format
 * @throws {ConfigError} when it is not text or json
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { logFormat } from "./validate.ts";
 * assert.equal(logFormat({ source: "command line", key: "--log-format" }, "json"), "json");
 * ```
 */
export function logFormat(origin: Origin, value: unknown): LogFormat {
  if (typeof value === "string" && (FORMATS as readonly string[]).includes(value)) {
    return value as LogFormat;
  }
  return fail(origin, `must be ${FORMATS.join(" or ")}, got ${describe(value)}`);
}

/**
 * Reads the secure-sync key file's path and checks the file itself now (it exists, group and
 * others cannot access it, every line is a key), so that `--check` and start-up refuse a bad key
 * file with exit 2. The keys are read again at start (lib/start.ts); no message names a key.
 *
 * @param origin where the value came from
 * @param value raw value
 * @returns the path
 * @throws {ConfigError} naming the file and the fix (`chmod 600 FILE`, `joold --keygen`)
 * @example
 * ```ts ignore
 * keyFile({ source: "net.json", key: "key file" }, "/etc/joold/sync.key"); // "/etc/joold/sync.key"
 * ```
 */
export function keyFile(origin: Origin, value: unknown): string {
  const path = nonEmptyString(origin, value);
  try {
    loadKeyFile(path);
  } catch (error) {
    if (error instanceof KeyFileError) fail(origin, error.message);
    throw error;
  }
  return path;
}
