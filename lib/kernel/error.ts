/**
 * Errors of the kernel side, worded for an operator: what failed, and what to do.
 *
 * @module
 */

import { ERRNO, errnoName, SystemError } from "../../ffi/errno.ts";
import type { NetlinkConn } from "../netlink/conn.ts";

/**
 * How an operator hears what the kernel side did on its own (a module reload, ss-enabled
 * re-applied, a held-back advertise): not an error, a line worded for the log.
 */
export type NoticeHandler = (level: "debug" | "info" | "warn", text: string) => void;

/** The Jool module is not loaded in this network namespace (family "Jool" missing). */
export class JoolNotLoadedError extends Error {
  /** Builds the error. */
  constructor() {
    super(
      "Jool's Generic Netlink family is missing: is the module loaded? (modprobe jool) " +
        "It must be loaded and joold must run in the network namespace of the Jool instance.",
    );
    this.name = "JoolNotLoadedError";
  }
}

/** A request the kernel refused: the operation, errno and the kernel's own words. */
export class KernelError extends Error {
  /** The request (`JOOLD_ADD`, `JOOLD_ADVERTISE`, ...). */
  readonly op: string;
  /** Positive errno. */
  readonly errno: number;
  /** The kernel's message, if it sent one. */
  readonly kernelMessage: string;

  /**
   * Builds the error with an actionable message for the well-known causes.
   *
   * @param op the request
   * @param errno positive errno
   * @param kernelMessage the kernel's text
   * @param instance the instance the request was for
   */
  constructor(
    op: string,
    errno: number,
    kernelMessage: string,
    instance: string,
  ) {
    super(KernelError.describe(op, errno, kernelMessage, instance));
    this.name = "KernelError";
    this.op = op;
    this.errno = errno;
    this.kernelMessage = kernelMessage;
  }

  /** Whether the kernel said the instance does not exist. */
  get instanceMissing(): boolean {
    return this.errno === ERRNO.ESRCH || /lacks an instance/i.test(this.kernelMessage);
  }

  /** Whether the kernel refused for lack of CAP_NET_ADMIN. */
  get permissionDenied(): boolean {
    return this.errno === ERRNO.EPERM;
  }

  /** Words the message for the well-known causes. */
  private static describe(
    op: string,
    errno: number,
    text: string,
    instance: string,
  ): string {
    const said = text ? `: "${text.replace(/\s+/g, " ").trim()}"` : "";
    if (errno === ERRNO.EPERM) {
      return `Jool refused ${op} (EPERM): joold needs CAP_NET_ADMIN (run it as root or grant the capability)`;
    }
    if (errno === ERRNO.ESRCH || /lacks an instance/i.test(text)) {
      return `no Jool instance named "${instance}" in this network namespace (${op}): create it (jool instance add) or fix --instance`;
    }
    const mismatch =
      /userspace client's version is (\d+(?:\.\d+)*),?\s*but the kernel module is (\d+(?:\.\d+)*)/i
        .exec(text);
    if (mismatch) {
      return `Jool version mismatch (${op}): joold spoke ${mismatch[1]}, the kernel module is ${
        mismatch[2]
      }: Jool accepts only its own major.minor version; use a joold release that supports it`;
    }
    return `Jool refused ${op} (${errnoName(errno)})${said}`;
  }
}

/**
 * After a receive overrun the channel asks the kernel to advertise its whole table, at most once
 * per this interval: each advertise makes the kernel queue every session, which under load can
 * cause the next overrun, so advertising per ENOBUFS would feed itself.
 */
export const OVERRUN_ADVERTISE_INTERVAL_MS = 30_000;

/** The netlink receive buffer overflowed (ENOBUFS): the kernel dropped messages for joold. */
export class ReceiveOverrunError extends Error {
  /** What was being done: receiving. */
  readonly op = "recv";
  /** ENOBUFS. */
  readonly errno: number = ERRNO.ENOBUFS;

  /**
   * Builds the error.
   *
   * @param heldMs when the advertise it calls for is held back, in how many ms it goes out
   */
  constructor(heldMs?: number) {
    super(
      "netlink receive buffer overrun (ENOBUFS): sessions from the kernel were lost; " + (heldMs ===
          undefined
        ? "asking it to advertise its table"
        : `an advertise went out less than ${
          OVERRUN_ADVERTISE_INTERVAL_MS / 1000
        } s ago: the next one follows in ${Math.ceil(heldMs / 1000)} s`),
    );
    this.name = "ReceiveOverrunError";
  }
}

/** Jool's family disappeared while running (the module was unloaded), or came back changed. */
export class JoolFamilyError extends Error {
  /** What was being done. */
  readonly op: string;
  /** Positive errno (ENOENT: the family is gone). */
  readonly errno: number = ERRNO.ENOENT;

  /**
   * Builds the error.
   *
   * @param op the request that could not be sent, or "module reload"
   * @param message what happened and what to do
   */
  constructor(op: string, message: string) {
    super(message);
    this.name = "JoolFamilyError";
    this.op = op;
  }
}

/** A message from the kernel side that could not be decoded (it was dropped). */
export class MalformedKernelMessageError extends Error {
  /** What could not be decoded: "netlink datagram", "error reply", "Jool message", "session batch". */
  readonly op: string;
  /** 0: no errno, the bytes were wrong. */
  readonly errno = 0;

  /**
   * Builds the error.
   *
   * @param what what could not be decoded
   * @param cause the decoder's error
   */
  constructor(what: string, cause: Error) {
    super(`malformed ${what}: ${cause.message}`, { cause });
    this.name = "MalformedKernelMessageError";
    this.op = what;
  }
}

/** A request that could not be sent to the kernel (a local socket error, not a refusal). */
export class KernelSendError extends SystemError {
  /** The request (`JOOLD_ADD`, `JOOLD_ACK`, `JOOLD_ADVERTISE`). */
  readonly op: string;

  /**
   * Builds the error.
   *
   * @param op the request
   * @param errno the send's errno
   */
  constructor(op: string, errno: number) {
    super(`sendto(${op})`, errno);
    this.name = "KernelSendError";
    this.op = op;
  }
}

/**
 * Sends a request on the channel's connection; a failed send is a {@linkcode KernelSendError}.
 *
 * @param conn the connection
 * @param message the request
 * @param op its name
 * @returns the sequence number it went with
 * @throws {KernelSendError} when the send fails
 */
export function kernelSend(
  conn: Pick<NetlinkConn, "send">,
  message: Uint8Array<ArrayBuffer>,
  op: string,
): number {
  try {
    return conn.send(message, op);
  } catch (error) {
    throw error instanceof SystemError ? new KernelSendError(op, error.errno) : error;
  }
}
