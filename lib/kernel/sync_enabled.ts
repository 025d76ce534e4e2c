/**
 * The ss-enabled keeper of `--enable-sync`: Jool sends no sessions to joold while its instance's
 * ss-enabled is off, and a re-created instance (`jool instance add`) starts with it off, so the
 * keeper reads it now and then (GLOBAL_FOREACH) and turns it on again (GLOBAL_UPDATE) when it
 * finds it off. It tells the operator once when the instance went missing and once when it is back.
 *
 * @module
 */

import type { Counters } from "../counters.ts";
import {
  globalU8,
  JNLAG_JOOLD_ENABLED,
  type JoolMessage,
  ssEnabledAttribute,
} from "../jool/message.ts";
import { commandsFor, type JoolVersion } from "../jool/version.ts";
import { KernelError, type NoticeHandler } from "./error.ts";

/** What the keeper acts through: the kernel channel's awaited requests. */
export interface SyncKeeperParts {
  /** The Jool instance served. */
  readonly instance: string;
  /** The daemon's counters (`kernelSyncReenabled`). */
  readonly counters: Counters;
  /** Sends a Jool request and awaits its reply (the channel's `request`). */
  readonly request: (cmd: number, op: string, attributes?: Uint8Array) => Promise<JoolMessage>;
  /** The module's version now (its numbering of the commands). */
  readonly version: () => JoolVersion;
  /** Whether requests can go out now (false once the channel closed or while the family is gone). */
  readonly usable: () => boolean;
  /** Where what it found goes. */
  readonly notice: NoticeHandler;
}

/** Keeps ss-enabled on. */
export class SyncEnabledKeeper {
  readonly #parts: SyncKeeperParts;
  #timer: ReturnType<typeof setInterval> | undefined;
  #checking = false;
  #instanceMissing = false;

  /**
   * Builds the keeper (it checks nothing until asked).
   *
   * @param parts the requests, counters and where to report
   */
  constructor(parts: SyncKeeperParts) {
    this.#parts = parts;
  }

  /**
   * Checks every `intervalMs` (replacing an earlier interval).
   *
   * @param intervalMs how often
   */
  keep(intervalMs: number): void {
    clearInterval(this.#timer);
    this.#timer = setInterval(() => void this.check(), intervalMs);
  }

  /** Jool's family went away: whatever instance comes back is a new one, to be announced. */
  instanceGone(): void {
    this.#instanceMissing = true;
  }

  /**
   * Checks ss-enabled once and turns it on when it is off. Never throws: what it found goes to
   * `notice`. A check while one is under way, or while requests cannot go out, does nothing.
   *
   * @returns whether ss-enabled is on afterwards (undefined when it could not tell)
   */
  async check(): Promise<boolean | undefined> {
    const { instance, counters, request, notice, usable } = this.#parts;
    if (this.#checking || !usable()) return undefined;
    this.#checking = true;
    const commands = commandsFor(this.#parts.version());
    try {
      const read = async () =>
        globalU8(await request(commands.GLOBAL_FOREACH, "GLOBAL_FOREACH"), JNLAG_JOOLD_ENABLED);
      let enabled = await read();
      if (this.#instanceMissing) {
        this.#instanceMissing = false;
        notice("info", `Jool instance "${instance}" exists again`);
      }
      if (enabled === 0) {
        await request(commands.GLOBAL_UPDATE, "GLOBAL_UPDATE ss-enabled", ssEnabledAttribute(true));
        enabled = await read();
        if (enabled === 1) {
          counters.kernelSyncReenabled++;
          notice(
            "info",
            `ss-enabled was off on instance "${instance}" (re-created?): turned it on again (--enable-sync)`,
          );
        }
      }
      return enabled === undefined ? undefined : enabled !== 0;
    } catch (error) {
      if (error instanceof KernelError && error.instanceMissing) {
        if (!this.#instanceMissing) {
          this.#instanceMissing = true;
          notice(
            "warn",
            `no Jool instance named "${instance}" any more: waiting for it (jool instance add); --enable-sync will turn ss-enabled on when it is back`,
          );
        }
      } else if (usable()) {
        notice("warn", `cannot check ss-enabled: ${(error as Error).message}`);
      }
      return undefined;
    } finally {
      this.#checking = false;
    }
  }

  /** Stops the interval. */
  close(): void {
    clearInterval(this.#timer);
  }
}
