/**
 * errno numbers and names (Linux, asm-generic/errno-base.h and errno.h), so errors can name the
 * errno (`ENOBUFS`) rather than print a bare number.
 *
 * @module
 */

const NAMES: Readonly<Record<number, string>> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  6: "ENXIO",
  7: "E2BIG",
  9: "EBADF",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  16: "EBUSY",
  17: "EEXIST",
  19: "ENODEV",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  23: "ENFILE",
  24: "EMFILE",
  28: "ENOSPC",
  32: "EPIPE",
  34: "ERANGE",
  38: "ENOSYS",
  61: "ENODATA",
  71: "EPROTO",
  74: "EBADMSG",
  75: "EOVERFLOW",
  88: "ENOTSOCK",
  89: "EDESTADDRREQ",
  90: "EMSGSIZE",
  91: "EPROTOTYPE",
  92: "ENOPROTOOPT",
  93: "EPROTONOSUPPORT",
  95: "EOPNOTSUPP",
  97: "EAFNOSUPPORT",
  98: "EADDRINUSE",
  99: "EADDRNOTAVAIL",
  100: "ENETDOWN",
  101: "ENETUNREACH",
  104: "ECONNRESET",
  105: "ENOBUFS",
  107: "ENOTCONN",
  110: "ETIMEDOUT",
  111: "ECONNREFUSED",
  113: "EHOSTUNREACH",
  114: "EALREADY",
  115: "EINPROGRESS",
  125: "ECANCELED",
};

/** errno values the code tests for by name. */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EBADF: 9,
  EAGAIN: 11,
  ENODEV: 19,
  EINVAL: 22,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENOBUFS: 105,
} as const;

/**
 * Names an errno value.
 *
 * @param errno the number
 * @returns its symbolic name, or `errno N` when unknown
 * @example
 * ```ts
 * errnoName(105); // "ENOBUFS"
 * ```
 */
export function errnoName(errno: number): string {
  return NAMES[errno] ?? `errno ${errno}`;
}

/** A failed libc call: the call's name and its errno. */
export class SystemError extends Error {
  /** The libc function that failed (`bind`, `setsockopt(IP_ADD_MEMBERSHIP)`, ...). */
  readonly call: string;
  /** The errno it set. */
  readonly errno: number;

  /**
   * Builds the error; the message is `call: ENAME`, plus `detail` when given.
   *
   * @param call the failed call
   * @param errno its errno
   * @param detail optional context (address, option)
   */
  constructor(call: string, errno: number, detail?: string) {
    super(`${call} failed: ${errnoName(errno)}${detail ? ` (${detail})` : ""}`);
    this.name = "SystemError";
    this.call = call;
    this.errno = errno;
  }

  /** The errno's symbolic name. */
  get code(): string {
    return errnoName(this.errno);
  }
}
