/**
 * IP address literals: parsing and classification, pure (no sockets), so the configuration can be
 * validated before anything starts.
 *
 * @module
 */

/** Address family of a literal. */
export type Family = 4 | 6;

/**
 * Parses a dotted-quad IPv4 literal (exactly four decimal octets, no leading zeros).
 *
 * @param text the literal
 * @returns the 4 bytes in network order, or `null` when `text` is not an IPv4 literal
 * @example
 * ```ts
 * parseIPv4("233.252.0.64"); // Uint8Array [233, 252, 0, 64]
 * ```
 */
export function parseIPv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

/**
 * Parses an IPv6 literal (RFC 4291 text forms, `::` compression, embedded IPv4). A zone index
 * (`%eth0`) is not accepted.
 *
 * @param text the literal
 * @returns the 16 bytes in network order, or `null` when `text` is not an IPv6 literal
 * @example
 * ```ts
 * parseIPv6("ff08::db8:64:64")?.[0]; // 0xff
 * ```
 */
export function parseIPv6(text: string): Uint8Array | null {
  if (text.length < 2 || text.length > 45) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (s: string): number[] | null => {
    if (s === "") return [];
    const words: number[] = [];
    const items = s.split(":");
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      if (i === items.length - 1 && item.includes(".")) {
        const v4 = parseIPv4(item);
        if (v4 === null) return null;
        words.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(item)) return null;
        words.push(parseInt(item, 16));
      }
    }
    return words;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (head === null || tail === null) return null;
  const total = head.length + tail.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return null;
  const words = [...head, ...new Array(8 - total).fill(0), ...tail];
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

/**
 * Tells the family of an IP literal.
 *
 * @param text the literal
 * @returns 4, 6, or `null` when it is neither
 * @example
 * ```ts
 * addressFamily("::"); // 6
 * ```
 */
export function addressFamily(text: string): Family | null {
  if (parseIPv4(text) !== null) return 4;
  if (parseIPv6(text) !== null) return 6;
  return null;
}

/**
 * Tells whether an IP literal is a multicast address (IPv4 224.0.0.0/4, IPv6 ff00::/8).
 *
 * @param text the literal
 * @returns true for a multicast address; false otherwise, unparsable text included
 * @example
 * ```ts
 * isMulticast("ff08::db8:64:64"); // true
 * ```
 */
export function isMulticast(text: string): boolean {
  const v4 = parseIPv4(text);
  if (v4 !== null) return (v4[0] & 0xf0) === 0xe0;
  const v6 = parseIPv6(text);
  return v6 !== null && v6[0] === 0xff;
}

/** A unicast peer as written: its address and, when given, its port. */
export interface PeerAddress {
  /** The address literal, as written (without brackets). */
  readonly address: string;
  /** Its family. */
  readonly family: Family;
  /** The address bytes, network order. */
  readonly bytes: Uint8Array;
  /** The port digits when given (`[2001:db8::3]:6464`, `192.0.2.2:6464`); undefined otherwise. */
  readonly port?: string;
}

/**
 * Splits a unicast peer into its address and port: `2001:db8::2` and `[2001:db8::2]` (IPv6, no
 * port), `[2001:db8::2]:6464`, `192.0.2.2`, `192.0.2.2:6464`. A bare IPv6 literal has no port:
 * `2001:db8::3:6464` is the address 2001:db8::3:6464 (a port after an IPv6 address takes brackets).
 * The port's range is not checked here (the validator says what is wrong with it).
 *
 * @param text the peer as written
 * @returns its parts, or `null` when it is none of those forms
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePeer } from "./address.ts";
 * assert.equal(parsePeer("[2001:db8::3]:6464")?.port, "6464");
 * assert.equal(parsePeer("2001:db8::3:6464")?.port, undefined);
 * assert.equal(parsePeer("192.0.2.2:6464")?.address, "192.0.2.2");
 * assert.equal(parsePeer("eth0"), null);
 * ```
 */
export function parsePeer(text: string): PeerAddress | null {
  const bracketed = /^\[([^\]]*)\](?::([0-9]+))?$/.exec(text);
  if (bracketed !== null) {
    const bytes = parseIPv6(bracketed[1]);
    if (bytes === null) return null;
    return { address: bracketed[1], family: 6, bytes, port: bracketed[2] };
  }
  const v6 = parseIPv6(text);
  if (v6 !== null) return { address: text, family: 6, bytes: v6 };
  const v4 = /^([0-9.]+)(?::([0-9]+))?$/.exec(text);
  const bytes = v4 === null ? null : parseIPv4(v4[1]);
  if (v4 === null || bytes === null) return null;
  return { address: v4[1], family: 4, bytes, port: v4[2] };
}
