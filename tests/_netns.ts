/**
 * Test helper: network namespaces and veth pairs (iproute2), entering a namespace from the test's
 * own thread with setns(2) so sockets can be opened inside it, and an AF_PACKET sniffer that shows
 * what went on the wire (TTL / hop limit, interface).
 *
 * @module
 */

import { close, cstring, errno, recvfrom } from "../ffi/libc.ts";

const lib = Deno.dlopen(
  ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"].find((p) => {
    try {
      Deno.statSync(p);
      return true;
    } catch {
      return false;
    }
  }) ?? "libc.so.6",
  {
    open: { parameters: ["buffer", "i32"], result: "i32" },
    setns: { parameters: ["i32", "i32"], result: "i32" },
    socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  } as const,
);

const CLONE_NEWNET = 0x40000000;
const O_RDONLY = 0;
const O_CLOEXEC = 0x80000;

/** Why namespace tests cannot run here, or null when they can. */
export function netnsUnavailable(): string | null {
  if (Deno.uid() !== 0) return "needs root (network namespaces)";
  try {
    const r = new Deno.Command("ip", { args: ["-V"], stdout: "null", stderr: "null" }).outputSync();
    if (!r.success) return "iproute2's ip does not run";
  } catch {
    return "iproute2 (ip) is not installed";
  }
  return null;
}

/** Runs `ip ...args` and throws with its stderr on failure. */
export function ip(...args: string[]): string {
  const r = new Deno.Command("ip", { args, stdout: "piped", stderr: "piped" }).outputSync();
  if (!r.success) {
    throw new Error(`ip ${args.join(" ")}: ${new TextDecoder().decode(r.stderr).trim()}`);
  }
  return new TextDecoder().decode(r.stdout);
}

let counter = 0;

/** A namespace made by a test; `dispose()` deletes it. */
export class Netns {
  readonly name: string;
  constructor(tag: string) {
    this.name = `joold-${tag}-${Deno.pid}-${counter++}`;
    ip("netns", "add", this.name);
    this.exec("link", "set", "lo", "up");
    this.sysctl("net.ipv6.conf.all.accept_dad", "0");
    this.sysctl("net.ipv6.conf.default.accept_dad", "0");
  }

  /** `ip -n NAME ...`. */
  exec(...args: string[]): string {
    return ip("-n", this.name, ...args);
  }

  /** Sets a sysctl inside the namespace. */
  sysctl(key: string, value: string): void {
    ip("netns", "exec", this.name, "sysctl", "-q", "-w", `${key}=${value}`);
  }

  /** Runs `fn` with this thread inside the namespace (sockets it opens live there). */
  enter<T>(fn: () => T): T {
    const self = lib.symbols.open(cstring("/proc/self/ns/net"), O_RDONLY | O_CLOEXEC);
    const target = lib.symbols.open(cstring(`/var/run/netns/${this.name}`), O_RDONLY | O_CLOEXEC);
    if (self < 0 || target < 0) throw new Error(`cannot open namespace files: errno ${errno()}`);
    try {
      if (lib.symbols.setns(target, CLONE_NEWNET) !== 0) throw new Error(`setns: errno ${errno()}`);
      let result: T;
      try {
        result = fn();
      } finally {
        // Back to our own namespace whatever happened (a failure here would poison later tests).
        if (lib.symbols.setns(self, CLONE_NEWNET) !== 0) {
          console.error(`setns back: errno ${errno()}`);
        }
      }
      return result;
    } finally {
      close(self);
      close(target);
    }
  }

  /** Deletes the namespace. */
  dispose(): void {
    try {
      ip("netns", "del", this.name);
    } catch {
      // already gone
    }
  }
}

/**
 * Joins two namespaces with a veth pair and addresses both ends.
 *
 * @returns nothing; interfaces are named as given
 */
export function veth(
  a: Netns,
  aName: string,
  aAddrs: string[],
  b: Netns,
  bName: string,
  bAddrs: string[],
): void {
  const tmpA = `v${Deno.pid % 10000}a${counter}`;
  const tmpB = `v${Deno.pid % 10000}b${counter++}`;
  ip("link", "add", tmpA, "type", "veth", "peer", "name", tmpB);
  ip("link", "set", tmpA, "netns", a.name);
  ip("link", "set", tmpB, "netns", b.name);
  a.exec("link", "set", tmpA, "name", aName);
  b.exec("link", "set", tmpB, "name", bName);
  for (const [ns, dev, addrs] of [[a, aName, aAddrs], [b, bName, bAddrs]] as const) {
    for (const addr of addrs) {
      ns.exec("addr", "add", addr, "dev", dev, ...(addr.includes(":") ? ["nodad"] : []));
    }
    ns.exec("link", "set", dev, "up");
  }
  // Wait until both ends have carrier and (IPv6) their multicast route: sending before the
  // kernel has processed the carrier change fails with ENETUNREACH.
  const deadline = Date.now() + 10_000;
  for (const [ns, dev, addrs] of [[a, aName, aAddrs], [b, bName, bAddrs]] as const) {
    const v6 = addrs.some((addr) => addr.includes(":"));
    while (
      !ns.exec("-o", "link", "show", "dev", dev).includes("LOWER_UP") ||
      (v6 && !ns.exec("-6", "route", "show", "table", "local", "dev", dev).includes("ff00::/8"))
    ) {
      if (Date.now() > deadline) throw new Error(`${dev} in ${ns.name} did not come up`);
    }
  }
}

/** A frame seen by the sniffer. */
export interface Frame {
  /** Interface index it was seen on. */
  readonly ifindex: number;
  /** The frame (Ethernet header included). */
  readonly bytes: Uint8Array;
}

/** An AF_PACKET socket (opened inside a namespace with `enter`) that records incoming frames. */
export class Sniffer {
  readonly fd: number;
  constructor() {
    // socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL))
    this.fd = lib.symbols.socket(17, 3 | 0x800, 0x0300);
    if (this.fd < 0) throw new Error(`AF_PACKET socket: errno ${errno()}`);
  }

  /** Reads every frame queued so far. */
  read(): Frame[] {
    const out: Frame[] = [];
    const buffer = new Uint8Array(70000);
    const from = new Uint8Array(32);
    for (;;) {
      const [n] = recvfrom(this.fd, buffer, from);
      if (n < 0) return out;
      const ifindex = new DataView(from.buffer).getInt32(4, true);
      out.push({ ifindex, bytes: buffer.slice(0, Math.min(n, buffer.length)) });
    }
  }

  /** Closes the socket. */
  close(): void {
    close(this.fd);
  }
}

/** Waits until `read()` yields a frame matching `match`, with a generous deadline. */
export async function sniff(
  sniffer: Sniffer,
  match: (f: Frame) => boolean,
  timeoutMs = 10_000,
): Promise<Frame> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = sniffer.read().find(match);
    if (found) return found;
    if (Date.now() > deadline) throw new Error("no matching frame on the wire");
    await new Promise((r) => setTimeout(r, 10));
  }
}
