/**
 * `struct sockaddr_in`, `sockaddr_in6` and `sockaddr_nl` as bytes (Linux x86-64 / aarch64 layout):
 * the family is host order (little endian), ports are network order.
 *
 * @module
 */

import { AF_INET, AF_INET6, AF_NETLINK } from "./libc.ts";

/** A decoded IP socket address. */
export interface SocketAddress {
  /** 4 or 6. */
  readonly family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  readonly address: Uint8Array;
  /** Port, host number. */
  readonly port: number;
  /** IPv6 scope (interface index), 0 for IPv4. */
  readonly scopeId: number;
}

/**
 * Encodes a `struct sockaddr_in` (16 bytes).
 *
 * @param address 4 bytes, network order
 * @param port the port
 * @returns the bytes
 * @example
 * ```ts
 * sockaddrIn(Uint8Array.of(127, 0, 0, 1), 6401).length; // 16
 * ```
 */
export function sockaddrIn(address: Uint8Array, port: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  view.setUint16(0, AF_INET, true);
  view.setUint16(2, port, false);
  out.set(address.subarray(0, 4), 4);
  return out;
}

/**
 * Encodes a `struct sockaddr_in6` (28 bytes).
 *
 * @param address 16 bytes, network order
 * @param port the port
 * @param scopeId interface index for link-local addresses, else 0
 * @returns the bytes
 * @example
 * ```ts
 * sockaddrIn6(new Uint8Array(16), 6401).length; // 28
 * ```
 */
export function sockaddrIn6(
  address: Uint8Array,
  port: number,
  scopeId = 0,
): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(28);
  const view = new DataView(out.buffer);
  view.setUint16(0, AF_INET6, true);
  view.setUint16(2, port, false);
  out.set(address.subarray(0, 16), 8);
  view.setUint32(24, scopeId, true);
  return out;
}

/**
 * Encodes a `struct sockaddr_nl` (12 bytes).
 *
 * @param portId netlink port id (0: the kernel, or "assign one" in bind)
 * @param groups multicast group bitmask (legacy; 0)
 * @returns the bytes
 * @example
 * ```ts
 * sockaddrNl(0).length; // 12
 * ```
 */
export function sockaddrNl(portId: number, groups = 0): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(12);
  const view = new DataView(out.buffer);
  view.setUint16(0, AF_NETLINK, true);
  view.setUint32(4, portId, true);
  view.setUint32(8, groups, true);
  return out;
}

/**
 * Reads the port id out of a `struct sockaddr_nl`.
 *
 * @param bytes the encoded address
 * @returns the port id
 * @throws {RangeError} when it is not a netlink address
 */
export function netlinkPortId(bytes: Uint8Array): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 12 || view.getUint16(0, true) !== AF_NETLINK) {
    throw new RangeError("not a sockaddr_nl");
  }
  return view.getUint32(4, true);
}

/**
 * Decodes an IPv4 or IPv6 socket address.
 *
 * @param bytes the encoded address
 * @returns the address, or null for another family or a short buffer
 * @example
 * ```ts
 * decodeSockaddr(sockaddrIn(Uint8Array.of(127, 0, 0, 1), 80))?.port; // 80
 * ```
 */
export function decodeSockaddr(bytes: Uint8Array): SocketAddress | null {
  if (bytes.length < 2) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const family = view.getUint16(0, true);
  if (family === AF_INET && bytes.length >= 16) {
    return { family: 4, address: bytes.slice(4, 8), port: view.getUint16(2, false), scopeId: 0 };
  }
  if (family === AF_INET6 && bytes.length >= 28) {
    return {
      family: 6,
      address: bytes.slice(8, 24),
      port: view.getUint16(2, false),
      scopeId: view.getUint32(24, true),
    };
  }
  return null;
}

/**
 * Formats 4 or 16 address bytes as text (IPv6 in RFC 5952 form).
 *
 * @param address the bytes, network order
 * @returns the text
 * @example
 * ```ts
 * formatAddress(Uint8Array.of(192, 0, 2, 1)); // "192.0.2.1"
 * ```
 */
export function formatAddress(address: Uint8Array): string {
  if (address.length === 4) return Array.from(address).join(".");
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((address[i] << 8) | address[i + 1]);
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(":");
  const head = hex.slice(0, bestStart).join(":");
  const tail = hex.slice(bestStart + bestLength).join(":");
  return `${head}::${tail}`;
}

/**
 * Formats a socket address as `addr#port` (Jool's notation).
 *
 * @param address the decoded address
 * @returns the text
 */
export function formatSocketAddress(address: SocketAddress): string {
  return `${formatAddress(address.address)}#${address.port}`;
}
