/**
 * V8's tiers without a flag in the run command. joold runs with TurboFan off (docs/DESIGN.md, "No
 * TurboFan": under load TurboFan's compilations and deoptimizations cost more than they give), but
 * V8 takes its flags only before it starts: `node:v8`'s `setFlagsFromString("--no-turbofan")`
 * returns and changes nothing. So a daemon started without V8 flags re-executes itself once, at
 * once, with `DENO_V8_FLAGS=--no-turbofan` (Deno's own variable for V8 flags): the same program,
 * argv, permissions and pid (execv replaces the process: systemd's notify socket, the signals and
 * the journal stay its), once its configuration is valid and before it has opened a socket or written a line.
 *
 * An operator's own choice wins: `--v8-flags=...` in the command, or any `DENO_V8_FLAGS` (which
 * is also how the re-executed daemon knows it must not do it again).
 *
 * @module
 */

import { addressOf, cstring, errno, libc, readCString, readSmallFile } from "../ffi/libc.ts";
import { errnoName } from "../ffi/errno.ts";

/** The V8 flags joold runs with (docs/DESIGN.md, "No TurboFan"). */
export const JOOLD_V8_FLAGS = "--no-turbofan";

/** Deno's environment variable for V8 flags. */
export const V8_FLAGS_VARIABLE = "DENO_V8_FLAGS";

/** What to do about V8's flags at start. */
export type TierDecision =
  | { readonly reexec: true }
  | { readonly reexec: false; readonly why: string };

/**
 * Decides whether to re-execute with {@linkcode JOOLD_V8_FLAGS}.
 *
 * @param argv the process's whole command line (/proc/self/cmdline: deno, run, its flags, ...)
 * @param variable `DENO_V8_FLAGS`, or null when it is not set
 * @returns re-execute, or why not
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decideTiers } from "./tiers.ts";
 *
 * assert.deepEqual(decideTiers(["deno", "run", "cli.ts", "net.json"], null), { reexec: true });
 * assert.equal(decideTiers(["deno", "run", "cli.ts"], "--no-turbofan").reexec, false);
 * assert.equal(decideTiers(["deno", "run", "--v8-flags=--max-old-space-size=64", "cli.ts"], null).reexec, false);
 * ```
 */
export function decideTiers(argv: readonly string[], variable: string | null): TierDecision {
  if (variable !== null) return { reexec: false, why: `${V8_FLAGS_VARIABLE} is set` };
  if (argv.some((a) => a === "--v8-flags" || a.startsWith("--v8-flags="))) {
    return { reexec: false, why: "the command line has --v8-flags" };
  }
  if (argv.length === 0) return { reexec: false, why: "the command line is unknown" };
  return { reexec: true };
}

/** The process's command line, from /proc/self/cmdline (through libc: no read permission). */
function commandLine(): string[] {
  const argv = readSmallFile("/proc/self/cmdline")?.split("\0") ?? [];
  if (argv.at(-1) === "") argv.pop();
  return argv;
}

/**
 * Re-executes this process with {@linkcode JOOLD_V8_FLAGS} when {@linkcode decideTiers} says so.
 * Returns only when it did not: why (to log), or why it could not (then the daemon runs with V8's
 * defaults: slower under load, as BENCHMARKS.md measured).
 *
 * @returns why the process was not re-executed
 */
export function reexecWithTiers(): { readonly failed: boolean; readonly why: string } {
  let lib;
  try {
    lib = libc();
  } catch (error) {
    // Not granted libc: the daemon says so itself, with the flag to add, when it opens a socket.
    return { failed: false, why: `no libc (${(error as Error).message})` };
  }
  const address = lib.getenv(cstring(V8_FLAGS_VARIABLE));
  const variable = BigInt(address) === 0n ? null : readCString(address);
  const argv = commandLine();
  const decision = decideTiers(argv, variable);
  if (!decision.reexec) return { failed: false, why: decision.why };
  if (lib.setenv(cstring(V8_FLAGS_VARIABLE), cstring(JOOLD_V8_FLAGS), 1) !== 0) {
    return { failed: true, why: `setenv(${V8_FLAGS_VARIABLE}) failed: ${errnoName(errno())}` };
  }
  // Everything allocated before the addresses are taken; `strings` is used after the call, so
  // that the collector keeps them until execv has copied them.
  const path = cstring("/proc/self/exe");
  const strings = argv.map(cstring);
  const pointers = new BigUint64Array(new ArrayBuffer(8 * (strings.length + 1)));
  const vector = new Uint8Array(pointers.buffer);
  strings.forEach((s, i) => pointers[i] = addressOf(s));
  lib.execv(path, vector);
  const e = errno();
  return {
    failed: true,
    why: `execv(/proc/self/exe, ${strings.length} arguments) failed: ${errnoName(e)}`,
  };
}
