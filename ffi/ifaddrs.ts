/**
 * getifaddrs(3): this host's IP addresses in the current network namespace, so the sync channel
 * can tell datagrams of its own host (multicast loop: its own sends, or a local user's) from its
 * peers'.
 *
 * @module
 */

import { AF_INET, AF_INET6, check, copyOut, libc, readCString } from "./libc.ts";

/** One address of an interface. */
export interface InterfaceAddress {
  /** The interface's name. */
  readonly name: string;
  /** 4 or 6. */
  readonly family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  readonly address: Uint8Array;
}

/**
 * Lists the IPv4 and IPv6 addresses of every interface.
 *
 * @returns the addresses, in getifaddrs' order
 * @throws {SystemError} when getifaddrs fails
 * @example
 * ```ts
 * getInterfaceAddresses().some((a) => a.name === "lo"); // true
 * ```
 */
export function getInterfaceAddresses(): InterfaceAddress[] {
  const lib = libc();
  const result = new BigUint64Array(1);
  check("getifaddrs", lib.getifaddrs(new Uint8Array(result.buffer)));
  const head = result[0];
  const out: InterfaceAddress[] = [];
  try {
    // struct ifaddrs (x86-64 / aarch64): next@0 name@8 flags@16 addr@24 netmask@32 ifu@40 data@48.
    const node = new Uint8Array(56);
    const view = new DataView(node.buffer);
    const sockaddr = new Uint8Array(28);
    const family = new DataView(sockaddr.buffer);
    let at = head;
    for (let guard = 0; at !== 0n && guard < 65536; guard++) {
      copyOut(node, at, 56);
      const addrAt = view.getBigUint64(24, true);
      if (addrAt !== 0n) {
        copyOut(sockaddr, addrAt, 2);
        const f = family.getUint16(0, true);
        if (f === AF_INET || f === AF_INET6) {
          copyOut(sockaddr, addrAt, f === AF_INET ? 16 : 28);
          out.push({
            name: readCString(view.getBigUint64(8, true)),
            family: f === AF_INET ? 4 : 6,
            address: f === AF_INET ? sockaddr.slice(4, 8) : sockaddr.slice(8, 24),
          });
        }
      }
      at = view.getBigUint64(0, true);
    }
  } finally {
    if (head !== 0n) lib.freeifaddrs(head);
  }
  return out;
}
