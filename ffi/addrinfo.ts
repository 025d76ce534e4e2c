/**
 * getaddrinfo(3): resolves a host literal and a port or service name into socket addresses, the way
 * the C daemon does (so `"multicast port": "joold"` works with an /etc/services entry).
 *
 * @module
 */

import { copyOut, cstring, libc, readCString, SOCK_DGRAM } from "./libc.ts";

/** getaddrinfo flag: addresses for bind(2). */
export const AI_PASSIVE = 0x1;
/** getaddrinfo flag: the host must be a numeric address (no DNS). */
const AI_NUMERICHOST = 0x4;

/** One getaddrinfo result. */
export interface AddrInfo {
  /** AF_INET or AF_INET6. */
  readonly family: number;
  /** SOCK_DGRAM. */
  readonly socktype: number;
  /** IPPROTO_UDP. */
  readonly protocol: number;
  /** The encoded sockaddr, ready for bind/sendto. */
  readonly address: Uint8Array<ArrayBuffer>;
}

/**
 * Resolves `host` and `service` into UDP socket addresses.
 *
 * @param host numeric address, or null for the wildcard (with AI_PASSIVE)
 * @param service port number or service name
 * @param flags AI_* flags (AI_NUMERICHOST is always added: no DNS lookups)
 * @returns the addresses, in getaddrinfo's order
 * @throws {Error} with gai_strerror's text when resolution fails
 * @example
 * ```ts
 * getAddrInfo("::", "6401", AI_PASSIVE)[0].family; // 10
 * ```
 */
export function getAddrInfo(host: string | null, service: string, flags = 0): AddrInfo[] {
  const lib = libc();
  const hints = new Uint8Array(48);
  const view = new DataView(hints.buffer);
  view.setInt32(0, flags | AI_NUMERICHOST, true);
  view.setInt32(8, SOCK_DGRAM, true);
  const result = new BigUint64Array(1);
  const code = lib.getaddrinfo(
    host === null ? null : cstring(host),
    cstring(service),
    hints,
    new Uint8Array(result.buffer),
  );
  if (code !== 0) {
    throw new Error(
      `cannot resolve ${host ?? "*"} port ${JSON.stringify(service)}: ${
        readCString(lib.gai_strerror(code))
      }`,
    );
  }
  const head = result[0];
  const out: AddrInfo[] = [];
  try {
    // struct addrinfo (x86-64 / aarch64): flags@0 family@4 socktype@8 protocol@12 addrlen@16
    // addr@24 canonname@32 next@40.
    const node = new Uint8Array(48);
    const view = new DataView(node.buffer);
    let address = head;
    for (let guard = 0; address !== 0n && guard < 64; guard++) {
      copyOut(node, address, 48);
      const addrlen = view.getUint32(16, true);
      const addrAt = view.getBigUint64(24, true);
      if (addrAt !== 0n && addrlen <= 128) {
        const sockaddr = new Uint8Array(addrlen);
        copyOut(sockaddr, addrAt, addrlen);
        out.push({
          family: view.getInt32(4, true),
          socktype: view.getInt32(8, true),
          protocol: view.getInt32(12, true),
          address: sockaddr,
        });
      }
      address = view.getBigUint64(40, true);
    }
  } finally {
    if (head !== 0n) lib.freeaddrinfo(head);
  }
  return out;
}
