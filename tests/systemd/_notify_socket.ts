/**
 * Test helper: a unix datagram socket standing in for systemd's `$NOTIFY_SOCKET`. Its address is
 * built here byte by byte, not with the code under test (lib/systemd/notify.ts).
 *
 * @module
 */

import { AF_UNIX, bind, close, recv, SOCK_DGRAM, socket } from "../../ffi/libc.ts";

/** A bound notification socket. */
export interface NotifySocket {
  /** Every datagram read so far, as text. */
  readonly messages: string[];
  /** Reads what arrived (non-blocking) into `messages` and returns them. */
  drain(): string[];
  /** Closes the socket. */
  close(): void;
}

/**
 * Binds a unix datagram socket at `name`: a path, or `@name` in the abstract namespace.
 *
 * @param name the address, as `$NOTIFY_SOCKET` would name it
 * @returns the socket
 */
export function notifySocket(name: string): NotifySocket {
  const text = new TextEncoder().encode(name.replace(/^@/, ""));
  // struct sockaddr_un: sun_family = AF_UNIX (host order), then the path and a NUL, or for an
  // abstract name a NUL and the name.
  const address = new Uint8Array(3 + text.length);
  address[0] = AF_UNIX;
  address.set(text, name.startsWith("@") ? 3 : 2);
  const fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  bind(fd, address, name);
  const messages: string[] = [];
  const buffer = new Uint8Array(4096);
  const drain = () => {
    for (let n = recv(fd, buffer); n >= 0; n = recv(fd, buffer)) {
      messages.push(new TextDecoder().decode(buffer.subarray(0, n)));
    }
    return messages;
  };
  return { messages, drain, close: () => close(fd) };
}
