/**
 * Jool versions and the command numbers that depend on them (docs/PROTOCOL.md, "Commands by Jool
 * version" and "Session formats").
 *
 * @module
 */

/** A Jool version. */
export interface JoolVersion {
  /** Major (4). */
  readonly major: number;
  /** Minor (1). */
  readonly minor: number;
  /** Revision (9, 13...). */
  readonly revision: number;
  /** Development number (0 for releases). */
  readonly development: number;
}

/**
 * Parses "4.1.9" or "4.1.9.0" (as in /sys/module/jool/version).
 *
 * @param text the version text
 * @returns the version
 * @throws {SyntaxError} when it is not a dotted version
 * @example
 * ```ts
 * parseVersion("4.1.13.0").revision; // 13
 * ```
 */
export function parseVersion(text: string): JoolVersion {
  const m = /^\s*(\d+)\.(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  if (m === null) throw new SyntaxError(`not a Jool version: ${JSON.stringify(text.trim())}`);
  const [major, minor, revision, development] = [m[1], m[2], m[3], m[4] ?? "0"].map(Number);
  if ([major, minor, revision, development].some((n) => n > 255)) {
    throw new SyntaxError(`not a Jool version: ${JSON.stringify(text.trim())}`);
  }
  return { major, minor, revision, development };
}

/**
 * Packs a version as the joolnlhdr carries it (major<<24 | minor<<16 | rev<<8 | dev).
 *
 * @param v the version
 * @returns the 32-bit number
 */
export function packVersion(v: JoolVersion): number {
  return ((v.major << 24) | (v.minor << 16) | (v.revision << 8) | v.development) >>> 0;
}

/**
 * Unpacks a joolnlhdr version.
 *
 * @param n the 32-bit number
 * @returns the version
 */
export function unpackVersion(n: number): JoolVersion {
  return {
    major: n >>> 24,
    minor: (n >>> 16) & 0xff,
    revision: (n >>> 8) & 0xff,
    development: n & 0xff,
  };
}

/**
 * Formats a version as "4.1.9.0".
 *
 * @param v the version
 * @returns the text
 */
export function formatVersion(v: JoolVersion): string {
  return `${v.major}.${v.minor}.${v.revision}.${v.development}`;
}

/** The Generic Netlink command numbers joold uses (enum joolnl_operation, common/config.h). */
export interface Commands {
  /** Does the instance exist? */
  readonly INSTANCE_HELLO: number;
  /** Read the globals. */
  readonly GLOBAL_FOREACH: number;
  /** Change a global. */
  readonly GLOBAL_UPDATE: number;
  /** Sessions from the network, for the kernel. */
  readonly JOOLD_ADD: number;
  /** Ask the kernel for its whole table. */
  readonly JOOLD_ADVERTISE: number;
  /** The kernel may send its next batch. */
  readonly JOOLD_ACK: number;
}

/** 4.1.0 - 4.1.x numbering. */
export const COMMANDS_4_1: Commands = {
  INSTANCE_HELLO: 2,
  GLOBAL_FOREACH: 8,
  GLOBAL_UPDATE: 9,
  JOOLD_ADD: 27,
  JOOLD_ADVERTISE: 28,
  JOOLD_ACK: 29,
};

/**
 * 4.2.0-rc (mapt branch) numbering: four FMRT commands precede FILE_HANDLE. Tags v4.2.0-rc1, rc2 and
 * rc3 all use it; their modules report version 4.1.255.2, .3 and .5 (see {@linkcode isMaptRelease}).
 * Untagged mapt snapshots 4.1.255.0-.1 had only three FMRT commands (JOOLD_* = 30-32): unsupported.
 */
export const COMMANDS_4_2: Commands = {
  ...COMMANDS_4_1,
  JOOLD_ADD: 31,
  JOOLD_ADVERTISE: 32,
  JOOLD_ACK: 33,
};

/**
 * Whether a version is a 4.2.0 release candidate (the mapt branch): those modules report 4.1.255.x
 * (common/xlat.h: rc1 = 4.1.255.2, rc2 = .3, rc3 = .5), in /sys/module/jool/version and in the Jool
 * header alike. The kernel's version check compares major.minor only, so a 4.1 header passes; the
 * command numbers and session format differ though.
 *
 * @param v a version
 * @returns true for 4.1.255.x
 * @example
 * ```ts
 * isMaptRelease(parseVersion("4.1.255.5")); // true
 * ```
 */
export function isMaptRelease(v: JoolVersion): boolean {
  return v.major === 4 && v.minor === 1 && v.revision === 255;
}

/**
 * Picks the command numbers for the loaded module's version.
 *
 * @param v the module version (from /sys/module/jool/version)
 * @returns the numbering
 * @example
 * ```ts
 * commandsFor(parseVersion("4.1.255.5")).JOOLD_ADD; // 31
 * ```
 */
export function commandsFor(v: JoolVersion): Commands {
  return v.major > 4 || (v.major === 4 && v.minor >= 2) || isMaptRelease(v)
    ? COMMANDS_4_2
    : COMMANDS_4_1;
}

/** Session record format by kernel version (docs/PROTOCOL.md, "Session formats"). */
export type SessionFormat = "nested" | "compact48" | "compact36";

/**
 * Which session format a kernel of this version emits.
 *
 * @param v the kernel's version
 * @returns the format
 */
export function sessionFormatFor(v: JoolVersion): SessionFormat {
  // mapt: nested until 4.1.255.3 (rc2), the 36-byte record from 4.1.255.4 on (rc3 = .5).
  if (isMaptRelease(v)) return v.development <= 3 ? "nested" : "compact36";
  if (v.major === 4 && v.minor === 1 && v.revision <= 11) return "nested";
  if (v.major === 4 && v.minor === 1 && v.revision === 12) return "compact48";
  return "compact36";
}

/**
 * Whether JOOLD_ADVERTISE does anything on this kernel (a no-op before 4.1.11).
 *
 * @param v the kernel's version
 * @returns true when it works
 */
export function advertiseWorks(v: JoolVersion): boolean {
  // mapt: the 4.1.9-style queue until 4.1.255.3 (rc2); the rewritten one from .4 on.
  if (isMaptRelease(v)) return v.development >= 4;
  return !(v.major === 4 && v.minor === 1 && v.revision < 11) && v.major >= 4;
}
