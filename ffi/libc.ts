/**
 * libc through `Deno.dlopen`: the symbol table and thin typed wrappers. Every wrapper makes a
 * SYNCHRONOUS call and reads errno right after it, on the same thread (a `nonblocking: true` call
 * runs on another thread, where errno is not ours). Failures become {@linkcode SystemError}s naming
 * the call and the errno; the hot-path calls (`recv`, `sendto`) return `-errno` instead of throwing.
 *
 * The library is opened lazily, at the first socket, so `--help` and `--check` need no FFI
 * permission. Its absolute path is {@linkcode libcPath} (`--allow-ffi` needs that exact path).
 *
 * @module
 */

import { SystemError } from "./errno.ts";

/** The libc symbols joold uses. */
export const SYMBOLS = {
  /** int socket(int domain, int type, int protocol) */
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  /** int bind(int fd, const struct sockaddr *addr, socklen_t len) */
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  /** int getsockname(int fd, struct sockaddr *addr, socklen_t *len) */
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  /** int setsockopt(int fd, int level, int name, const void *value, socklen_t len) */
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  /** ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to, socklen_t tolen) */
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  /** ssize_t recv(int fd, void *buf, size_t len, int flags) */
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  /** ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from, socklen_t *fromlen) */
  recvfrom: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"],
    result: "isize",
  },
  /** int poll(struct pollfd *fds, nfds_t nfds, int timeout): the reactor's wait, off-thread */
  poll_wait: {
    name: "poll",
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
  /** int poll(struct pollfd *fds, nfds_t nfds, int timeout): synchronous (the reactor's linger) */
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  /** int eventfd(unsigned int initval, int flags) */
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  /** ssize_t read(int fd, void *buf, size_t count) */
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** ssize_t write(int fd, const void *buf, size_t count) */
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** int close(int fd) */
  close: { parameters: ["i32"], result: "i32" },
  /** unsigned int if_nametoindex(const char *ifname) */
  if_nametoindex: { parameters: ["buffer"], result: "u32" },
  /** int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res) */
  getaddrinfo: { parameters: ["buffer", "buffer", "buffer", "buffer"], result: "i32" },
  /** void freeaddrinfo(struct addrinfo *res): the address as an integer (see below) */
  freeaddrinfo: { parameters: ["usize"], result: "void" },
  /** const char *gai_strerror(int errcode) */
  gai_strerror: { parameters: ["i32"], result: "usize" },
  /** int *__errno_location(void) */
  __errno_location: { parameters: [], result: "usize" },
  /** void *memcpy(void *dest, const void *src, size_t n): copies out of libc-owned memory */
  memcpy: { parameters: ["buffer", "usize", "usize"], result: "void" },
  /** size_t strlen(const char *s) */
  strlen: { parameters: ["usize"], result: "usize" },
  /** int open(const char *path, int flags): files Deno's permissions do not reach (/sys) */
  open: { parameters: ["buffer", "i32"], result: "i32" },
  /** ssize_t recvmsg(int fd, struct msghdr *msg, int flags) */
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  /** int getifaddrs(struct ifaddrs **ifap): the list's address lands in the 8-byte buffer */
  getifaddrs: { parameters: ["buffer"], result: "i32" },
  /** void freeifaddrs(struct ifaddrs *ifa): the address as an integer */
  freeifaddrs: { parameters: ["usize"], result: "void" },
  /**
   * void *memmove(void *dest, const void *src, size_t n), called with n = 0 to learn the address
   * of a buffer (`dest` comes back) without `Deno.UnsafePointer`, which needs the unscoped
   * --allow-ffi: for the pointers inside a struct msghdr.
   */
  address_of: { name: "memmove", parameters: ["buffer", "usize", "usize"], result: "usize" },
  /** char *getenv(const char *name): read without Deno's env permission (the V8 flags' guard) */
  getenv: { parameters: ["buffer"], result: "usize" },
  /** int setenv(const char *name, const char *value, int overwrite) */
  setenv: { parameters: ["buffer", "buffer", "i32"], result: "i32" },
  /** int execv(const char *path, char *const argv[]): the daemon re-executed with its V8 flags */
  execv: { parameters: ["buffer", "buffer"], result: "i32" },
  /** int timerfd_create(int clockid, int flags): the systemd watchdog's tick, on the reactor */
  timerfd_create: { parameters: ["i32", "i32"], result: "i32" },
  /** int timerfd_settime(int fd, int flags, const struct itimerspec *new, struct itimerspec *old) */
  timerfd_settime: { parameters: ["i32", "i32", "buffer", "buffer"], result: "i32" },
  /** int madvise(void *addr, size_t length, int advice) */
  madvise: { parameters: ["usize", "usize", "i32"], result: "i32" },
  /** int malloc_trim(size_t pad) */
  malloc_trim: { parameters: ["usize"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The opened library's symbols. */
export type LibcSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** Where glibc lives on the distributions joold targets, most likely first. */
export const LIBC_CANDIDATES: readonly string[] = [
  "/lib/x86_64-linux-gnu/libc.so.6",
  "/usr/lib/x86_64-linux-gnu/libc.so.6",
  "/lib/aarch64-linux-gnu/libc.so.6",
  "/usr/lib/aarch64-linux-gnu/libc.so.6",
  "/lib64/libc.so.6",
  "/usr/lib64/libc.so.6",
];

/**
 * The path to name in `--allow-ffi` for a library on this machine's architecture, from a
 * candidate list laid out as {@linkcode LIBC_CANDIDATES} is (x86_64's two, aarch64's two, then
 * the others).
 *
 * @param candidates the library's candidates
 * @returns the first of this architecture's
 */
export function usualPath(candidates: readonly string[]): string {
  return candidates[Deno.build.arch === "aarch64" ? 2 : 0];
}

/**
 * Whether a permission is granted, asked without ever prompting (an interactive prompt would stall
 * a daemon started from a terminal).
 *
 * @param descriptor the permission
 * @returns true when granted
 */
export function granted(descriptor: Deno.PermissionDescriptor): boolean {
  try {
    return Deno.permissions.querySync(descriptor).state === "granted";
  } catch {
    return false;
  }
}

function envLibc(): string | undefined {
  if (!granted({ name: "env", variable: "JOOLD_LIBC" })) return undefined;
  return Deno.env.get("JOOLD_LIBC") || undefined;
}

let opened: { path: string; lib: Deno.DynamicLibrary<typeof SYMBOLS> } | null = null;

/**
 * Opens libc (once) and returns its symbols.
 *
 * @returns the symbols
 * @throws {Error} naming the paths tried and the permission to grant when none could be opened
 * @example
 * ```ts
 * const fd = libc().socket(2, 2, 0);
 * ```
 */
export function libc(): LibcSymbols {
  if (opened !== null) return opened.lib.symbols;
  const env = envLibc();
  const candidates = env !== undefined ? [env] : LIBC_CANDIDATES;
  const problems: string[] = [];
  let allowed = 0;
  for (const path of candidates) {
    if (!granted({ name: "ffi", path })) continue;
    allowed++;
    try {
      opened = { path, lib: Deno.dlopen(path, SYMBOLS) };
      return opened.lib.symbols;
    } catch (error) {
      problems.push(`${path}: ${(error as Error).message.split("\n")[0]}`);
    }
  }
  if (allowed === 0) {
    const path = env ?? usualPath(LIBC_CANDIDATES);
    throw new Error(
      `not granted FFI access to libc: run joold with --allow-ffi=${path}`,
    );
  }
  throw new Error(`cannot open libc: ${problems.join("; ")}`);
}

/**
 * The absolute path of the libc that was opened (after {@linkcode libc}), or the first candidate
 * that exists on this machine (for building `--allow-ffi=`); needs no permission for the former.
 *
 * @returns the path
 * @example
 * ```ts
 * console.log(`--allow-ffi=${libcPath()}`);
 * ```
 */
export function libcPath(): string {
  if (opened !== null) return opened.path;
  const env = envLibc();
  if (env !== undefined) return env;
  for (const path of LIBC_CANDIDATES) {
    if (!granted({ name: "read", path })) continue;
    try {
      Deno.statSync(path);
      return path;
    } catch {
      // try the next
    }
  }
  return LIBC_CANDIDATES[0];
}

/**
 * Reads errno. Call it right after the synchronous call whose failure it explains.
 *
 * @returns the current thread's errno
 */
export function errno(): number {
  const out = new Int32Array(1);
  copyOut(out, libc().__errno_location(), 4);
  return out[0];
}

/**
 * Copies `length` bytes from libc-owned memory at `address` into `into`.
 *
 * Addresses are plain integers ("usize") on purpose: Deno's pointer objects
 * (`Deno.UnsafePointer`, `UnsafePointerView`) need the unscoped `--allow-ffi`, while calls with
 * integer and buffer arguments work with `--allow-ffi=<libc path>` alone.
 *
 * @param into destination buffer (at least `length` bytes)
 * @param address source address
 * @param length byte count
 */
export function copyOut(into: BufferSource, address: number | bigint, length: number): void {
  libc().memcpy(into, BigInt(address), BigInt(length));
}

/**
 * Throws a {@linkcode SystemError} when a call returned -1.
 *
 * @param call the call's name for the message
 * @param result the call's return value
 * @param detail optional context for the message
 * @returns `result` when it is not -1
 * @throws {SystemError} with errno when it is -1
 */
export function check(call: string, result: number | bigint, detail?: string): number {
  const n = Number(result);
  if (n === -1) throw new SystemError(call, errno(), detail);
  return n;
}

const cstrings = new TextEncoder();

/**
 * Encodes a NUL-terminated C string, in an `ArrayBuffer` of its own (never moved by the garbage
 * collector: its {@linkcode addressOf} may go into a pointer array, as execv's argv).
 *
 * @param text the string
 * @returns its UTF-8 bytes plus a NUL
 */
export function cstring(text: string): Uint8Array<ArrayBuffer> {
  const bytes = cstrings.encode(text);
  const out = new Uint8Array(new ArrayBuffer(bytes.length + 1));
  out.set(bytes);
  return out;
}

/**
 * Reads a NUL-terminated C string from a pointer.
 *
 * @param pointer the string's address
 * @returns the string ("" for NULL)
 */
export function readCString(address: number | bigint): string {
  if (BigInt(address) === 0n) return "";
  const length = Number(libc().strlen(BigInt(address)));
  const bytes = new Uint8Array(length);
  copyOut(bytes, address, length);
  return new TextDecoder().decode(bytes);
}

/**
 * Reads a small file whole through libc (for /sys and /proc files, which Deno only lets `-A` read).
 *
 * @param path the file
 * @returns its text, or undefined when it cannot be opened or read
 */
export function readSmallFile(path: string): string | undefined {
  const fd = libc().open(cstring(path), 0x80000 /* O_RDONLY | O_CLOEXEC */);
  if (fd < 0) return undefined;
  try {
    const chunks: Uint8Array[] = [];
    for (;;) {
      const chunk = new Uint8Array(4096);
      const n = Number(libc().read(fd, chunk, BigInt(chunk.length)));
      if (n < 0) return undefined;
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
    }
    const decoder = new TextDecoder();
    return chunks.map((c, i) => decoder.decode(c, { stream: i < chunks.length - 1 })).join("");
  } finally {
    libc().close(fd);
  }
}

// Constants: <sys/socket.h>, <netinet/in.h>, <linux/netlink.h>, <poll.h>, <sys/eventfd.h>.
/** Address families. */
export const AF_INET = 2;
/** IPv6 address family. */
export const AF_INET6 = 10;
/** Unix-domain sockets (systemd's notification socket). */
export const AF_UNIX = 1;
/** Netlink address family. */
export const AF_NETLINK = 16;
/** Datagram sockets. */
export const SOCK_DGRAM = 2;
/** Raw sockets (netlink). */
export const SOCK_RAW = 3;
/** socket(2) type flag: O_NONBLOCK. */
export const SOCK_NONBLOCK = 0x800;
/** socket(2) type flag: O_CLOEXEC. */
const SOCK_CLOEXEC = 0x80000;
/** Socket-level options. */
export const SOL_SOCKET = 1;
/** SO_REUSEADDR. */
export const SO_REUSEADDR = 2;
/** SO_RCVBUF. */
export const SO_RCVBUF = 8;
/** SO_RCVBUFFORCE (needs CAP_NET_ADMIN). */
export const SO_RCVBUFFORCE = 33;
/** IPPROTO_IP level. */
export const IPPROTO_IP = 0;
/** IPPROTO_IPV6 level. */
export const IPPROTO_IPV6 = 41;
/** IP_MULTICAST_IF. */
export const IP_MULTICAST_IF = 32;
/** IP_MULTICAST_TTL. */
export const IP_MULTICAST_TTL = 33;
/** IP_MULTICAST_LOOP. */
export const IP_MULTICAST_LOOP = 34;
/** IP_ADD_MEMBERSHIP. */
export const IP_ADD_MEMBERSHIP = 35;
/** IPV6_MULTICAST_IF. */
export const IPV6_MULTICAST_IF = 17;
/** IPV6_MULTICAST_HOPS. */
export const IPV6_MULTICAST_HOPS = 18;
/** IPV6_MULTICAST_LOOP. */
export const IPV6_MULTICAST_LOOP = 19;
/** IPV6_ADD_MEMBERSHIP (IPV6_JOIN_GROUP). */
export const IPV6_ADD_MEMBERSHIP = 20;
/** IPV6_V6ONLY. */
export const IPV6_V6ONLY = 26;
/** IP_PKTINFO: deliver a `struct in_pktinfo` (arrival interface) with each datagram. */
export const IP_PKTINFO = 8;
/** IP_MULTICAST_ALL: receive the groups joined by every socket, not only this one's (Linux). */
export const IP_MULTICAST_ALL = 49;
/** IPV6_MULTICAST_ALL (Linux). */
export const IPV6_MULTICAST_ALL = 29;
/** IPV6_RECVPKTINFO: deliver a `struct in6_pktinfo` with each datagram. */
export const IPV6_RECVPKTINFO = 49;
/** IPV6_PKTINFO: the control message type of that `struct in6_pktinfo`. */
export const IPV6_PKTINFO = 50;
/** recv flag: do not block. */
const MSG_DONTWAIT = 0x40;
/** recv flag: return the real length of a truncated datagram. */
export const MSG_TRUNC = 0x20;
/** poll: readable. */
export const POLLIN = 0x1;
/** poll(2): writable (sys/poll.h). */
export const POLLOUT = 0x4;
/** poll: error. */
export const POLLERR = 0x8;
/** poll: hang-up. */
export const POLLHUP = 0x10;
/** poll: invalid fd. */
export const POLLNVAL = 0x20;
/** eventfd flag: non-blocking. */
export const EFD_NONBLOCK = 0x800;
/** eventfd flag: close-on-exec. */
export const EFD_CLOEXEC = 0x80000;
/** The clock that never jumps (timerfd_create). */
export const CLOCK_MONOTONIC = 1;
/** timerfd flag: non-blocking. */
export const TFD_NONBLOCK = 0x800;
/** timerfd flag: close-on-exec. */
export const TFD_CLOEXEC = 0x80000;

/**
 * socket(2) that throws on failure; the fd is non-blocking and close-on-exec.
 *
 * @param domain address family
 * @param type socket type (SOCK_NONBLOCK and SOCK_CLOEXEC are added)
 * @param protocol protocol number
 * @returns the fd
 * @throws {SystemError} on failure
 */
export function socket(domain: number, type: number, protocol: number): number {
  return check("socket", libc().socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol));
}

/**
 * bind(2) that throws on failure.
 *
 * @param fd the socket
 * @param address an encoded sockaddr
 * @param detail the address as text, for the message
 * @throws {SystemError} on failure
 */
export function bind(fd: number, address: Uint8Array<ArrayBuffer>, detail?: string): void {
  check("bind", libc().bind(fd, address, address.byteLength), detail);
}

/**
 * setsockopt(2) with an int value.
 *
 * @param fd the socket
 * @param level option level
 * @param name option name
 * @param value the int
 * @param label the option's name for the message
 * @throws {SystemError} on failure
 */
export function setsockoptInt(
  fd: number,
  level: number,
  name: number,
  value: number,
  label: string,
): void {
  const buffer = new Int32Array([value]);
  check(`setsockopt(${label})`, libc().setsockopt(fd, level, name, buffer, 4));
}

/**
 * setsockopt(2) with a raw value (a struct).
 *
 * @param fd the socket
 * @param level option level
 * @param name option name
 * @param value the bytes
 * @param label the option's name for the message
 * @throws {SystemError} on failure
 */
export function setsockoptBytes(
  fd: number,
  level: number,
  name: number,
  value: Uint8Array<ArrayBuffer>,
  label: string,
): void {
  check(`setsockopt(${label})`, libc().setsockopt(fd, level, name, value, value.byteLength));
}

/**
 * getsockname(2).
 *
 * @param fd the socket
 * @returns the encoded local address
 * @throws {SystemError} on failure
 */
export function getsockname(fd: number): Uint8Array<ArrayBuffer> {
  const address = new Uint8Array(128);
  const length = new Uint32Array([128]);
  check("getsockname", libc().getsockname(fd, address, length));
  return address.slice(0, length[0]);
}

/**
 * sendto(2) without throwing (hot path).
 *
 * @param fd the socket
 * @param data the bytes to send
 * @param to the encoded destination, or null when connected / netlink default
 * @returns the bytes sent, or `-errno`
 */
export function sendto(
  fd: number,
  data: Uint8Array<ArrayBuffer>,
  to: Uint8Array<ArrayBuffer> | null,
): number {
  const n = Number(libc().sendto(fd, data, BigInt(data.byteLength), 0, to, to?.byteLength ?? 0));
  return n < 0 ? -errno() : n;
}

/**
 * recv(2) without throwing (hot path), non-blocking.
 *
 * @param fd the socket
 * @param buffer where the data goes
 * @param flags extra flags (MSG_TRUNC...); MSG_DONTWAIT is always added
 * @returns the length read (with MSG_TRUNC: the datagram's real length), or `-errno`
 */
export function recv(fd: number, buffer: Uint8Array<ArrayBuffer>, flags = 0): number {
  const n = Number(libc().recv(fd, buffer, BigInt(buffer.byteLength), flags | MSG_DONTWAIT));
  return n < 0 ? -errno() : n;
}

/**
 * recvfrom(2) without throwing, non-blocking.
 *
 * @param fd the socket
 * @param buffer where the data goes
 * @param from receives the sender's encoded address (128 bytes is enough)
 * @returns `[length or -errno, sender address length]`
 */
export function recvfrom(
  fd: number,
  buffer: Uint8Array<ArrayBuffer>,
  from: Uint8Array<ArrayBuffer>,
): [number, number] {
  const length = new Uint32Array([from.byteLength]);
  const n = Number(
    libc().recvfrom(fd, buffer, BigInt(buffer.byteLength), MSG_DONTWAIT | MSG_TRUNC, from, length),
  );
  return [n < 0 ? -errno() : n, length[0]];
}

/**
 * The address of a buffer's memory, for the pointers of a struct (msghdr, iovec). The buffer must
 * be backed by an `ArrayBuffer` made with `new ArrayBuffer(n)` (never moved by the garbage
 * collector, unlike a small typed array's on-heap storage) and kept alive while the address is
 * in use.
 *
 * @param buffer the buffer
 * @returns its address
 */
export function addressOf(buffer: Uint8Array<ArrayBuffer>): bigint {
  return BigInt(libc().address_of(buffer, 0n, 0n));
}

/**
 * recvmsg(2) without throwing (hot path), non-blocking.
 *
 * @param fd the socket
 * @param msghdr an encoded `struct msghdr` whose pointers stay valid during the call
 * @param flags extra flags (MSG_TRUNC...); MSG_DONTWAIT is always added
 * @returns the length read (with MSG_TRUNC: the datagram's real length), or `-errno`
 */
export function recvmsg(fd: number, msghdr: Uint8Array<ArrayBuffer>, flags = 0): number {
  const n = Number(libc().recvmsg(fd, msghdr, flags | MSG_DONTWAIT));
  return n < 0 ? -errno() : n;
}

/**
 * close(2), ignoring errors (the fd is gone either way).
 *
 * @param fd the fd
 */
export function close(fd: number): void {
  libc().close(fd);
}

/**
 * if_nametoindex(3).
 *
 * @param name interface name
 * @returns its index, or 0 when there is no such interface
 */
export function ifNameToIndex(name: string): number {
  return libc().if_nametoindex(cstring(name));
}

/**
 * Waits off-thread until `fd` is readable or `timeoutMs` passes, without blocking the event loop
 * (startup request/reply, where an in-process peer may need to run meanwhile).
 *
 * @param fd the fd
 * @param timeoutMs how long to wait
 * @returns true when readable (errors surface in the read that follows)
 */
export async function waitReadableAsync(fd: number, timeoutMs: number): Promise<boolean> {
  const pollfd = new Uint8Array(8);
  const view = new DataView(pollfd.buffer);
  view.setInt32(0, fd, true);
  view.setInt16(4, POLLIN, true);
  const n = await libc().poll_wait(pollfd, 1n, Math.max(0, Math.floor(timeoutMs)));
  return n > 0;
}

/**
 * A periodic timer as an fd (timerfd_create(2) + timerfd_settime(2)), non-blocking and
 * close-on-exec: it becomes readable every `periodMs`, so a reactor can dispatch it like a socket.
 * Read 8 bytes (the expirations since the last read) to re-arm its readiness.
 *
 * @param periodMs the period, ms (the first expiry is one period from now)
 * @returns the fd
 * @throws {SystemError} on failure
 */
export function periodicTimerFd(periodMs: number): number {
  const fd = check(
    "timerfd_create",
    libc().timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC),
  );
  const ns = BigInt(Math.max(1, Math.round(periodMs * 1e6)));
  const seconds = ns / 1_000_000_000n;
  const rest = ns % 1_000_000_000n;
  // struct itimerspec { struct timespec it_interval, it_value; }: both the period.
  const spec = new BigInt64Array([seconds, rest, seconds, rest]);
  const result = libc().timerfd_settime(fd, 0, new Uint8Array(spec.buffer), null);
  if (result === -1) {
    const e = errno();
    close(fd);
    throw new SystemError("timerfd_settime", e);
  }
  return fd;
}
