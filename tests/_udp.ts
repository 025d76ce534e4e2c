/**
 * Test helper: plain libc UDP sockets on loopback.
 *
 * @module
 */

import { AF_INET, bind, getsockname, SOCK_DGRAM, socket } from "../ffi/libc.ts";
import { decodeSockaddr, sockaddrIn } from "../ffi/sockaddr.ts";

/** A bound UDP socket on 127.0.0.1 with its port and encoded address. */
export interface LoopbackSocket {
  readonly fd: number;
  readonly port: number;
  readonly address: Uint8Array<ArrayBuffer>;
}

/** Opens a non-blocking UDP socket bound to 127.0.0.1 on a kernel-chosen port. */
export function loopbackSocket(): LoopbackSocket {
  const fd = socket(AF_INET, SOCK_DGRAM, 0);
  bind(fd, sockaddrIn(Uint8Array.of(127, 0, 0, 1), 0));
  const local = getsockname(fd);
  const port = decodeSockaddr(local)!.port;
  return { fd, port, address: sockaddrIn(Uint8Array.of(127, 0, 0, 1), port) };
}

/** Resolves when `condition()` holds, polling every few ms; rejects after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
