/**
 * The kernel channel's control side, off the hot path, as the base class the channel (channel.ts)
 * extends with its receive loop: Jool's family across module reloads (family.ts) and what the
 * channel says of it, the Jool requests sent on the channel's socket and awaited while batches keep
 * flowing (the receive loop routes their replies back through pending.ts), what is built on them
 * (the kernel's counters, stats.ts; the ss-enabled keeper, sync_enabled.ts), and the handlers of
 * what happens there.
 *
 * @module
 */

import type { Counters } from "../counters.ts";
import { type JoolMessage, joolRequest } from "../jool/message.ts";
import { JNLOP_STATS_FOREACH, statsAttributes } from "../jool/stats.ts";
import { type JoolVersion, packVersion } from "../jool/version.ts";
import type { NetlinkConn } from "../netlink/conn.ts";
import { kernelSend, type NoticeHandler } from "./error.ts";
import { familyGoneError, JoolFamily } from "./family.ts";
import { PendingReplies } from "./pending.ts";
import { type KernelStartup, readModuleVersion, type VersionSource } from "./startup.ts";
import { readJooldStatsWith } from "./stats.ts";
import { SyncEnabledKeeper } from "./sync_enabled.ts";

/** How long an awaited request waits for its reply by default, ms. */
export const REQUEST_TIMEOUT_MS = 5000;

/**
 * What the control side is built from: what startup resolved (after a "fallback" version, the
 * first batch's version replaces it), and the connection, which has joined the "joold" group.
 */
export interface ControlParts
  extends Pick<KernelStartup, "familyId" | "groupId" | "version" | "versionSource"> {
  /** The connection. */
  readonly conn: NetlinkConn;
  /** The daemon's counters: the channel owns the `kernel*` fields of lib/counters.ts. */
  readonly counters: Counters;
  /** The Jool instance served. */
  readonly instance: string;
  /** Reads the module's version after a reload (default: /sys/module/jool/version). */
  readonly moduleVersion?: () => JoolVersion | undefined;
}

/** The family, the awaited requests and the ss-enabled keeper of a kernel channel. */
export class ChannelControl {
  readonly #conn: NetlinkConn;
  readonly #instance: string;
  readonly #family: JoolFamily;
  readonly #pending = new PendingReplies();
  readonly #keeper: SyncEnabledKeeper;
  readonly #notice: NoticeHandler = (level, text) => this.#onNotice(level, text);
  #onNotice: NoticeHandler = () => {};
  #onFatal: (error: Error) => void = () => {};
  #onFamilyBack: () => void = () => {};
  #closed = false;

  /**
   * Builds the control side of a channel (the channel's constructor calls it).
   *
   * @param parts the connection, counters, instance and what startup resolved
   * @param changed called when the family's ids or version changed: requests must be built anew
   */
  protected constructor(parts: ControlParts, changed: () => void) {
    const { conn, counters, instance } = parts;
    this.#conn = conn;
    this.#instance = instance;
    const notice = this.#notice;
    this.#family = new JoolFamily({
      ...parts,
      moduleVersion: parts.moduleVersion ?? readModuleVersion,
      notice,
      gone: () => {
        this.#keeper.instanceGone(); // whatever instance comes back is a new one
        this.#pending.rejectAll(familyGoneError);
      },
      changed,
      back: () => this.#onFamilyBack(),
      fatal: (e) => this.#onFatal(e),
    });
    this.#keeper = new SyncEnabledKeeper({
      instance,
      counters,
      request: (cmd, op, attributes) => this.request(cmd, op, attributes),
      version: () => this.#family.version,
      usable: () => !this.#closed && !this.#family.gone,
      notice,
    });
  }

  /** Our netlink port id. */
  get portId(): number {
    return this.#conn.portId;
  }

  /** The version requests are sent with. */
  get version(): JoolVersion {
    return this.#family.version;
  }

  /** Jool's family id now (it changes when the module is reloaded). */
  get familyId(): number {
    return this.#family.id;
  }

  /** The "joold" group's id now. */
  get groupId(): number {
    return this.#family.groupId;
  }

  /** Where {@linkcode version} came from ("batch" once a batch replaced a fallback). */
  get versionSource(): VersionSource {
    return this.#family.versionSource;
  }

  /**
   * Sets the handler of what the channel did on its own, worded for an operator.
   *
   * @param handler gets a level and one line
   */
  onNotice(handler: (level: "debug" | "info" | "warn", text: string) => void): void {
    this.#onNotice = handler;
  }

  /**
   * Sets the handler of an error the channel cannot recover from (a module of another numbering
   * was loaded): the daemon must exit non-zero so that its supervisor restarts it.
   *
   * @param handler gets the error
   */
  onFatal(handler: (error: Error) => void): void {
    this.#onFatal = handler;
  }

  /**
   * Sets a callback for when Jool's family came back and the channel rejoined it.
   *
   * @param handler called once per recovery
   */
  onFamilyBack(handler: () => void): void {
    this.#onFamilyBack = handler;
  }

  /**
   * Sends a Jool request on the channel's socket and resolves with its reply, which the drain loop
   * routes here by sequence number (batches keep flowing meanwhile).
   *
   * @param cmd the command number (of {@linkcode version}'s numbering)
   * @param op its name, for errors
   * @param attributes encoded attributes after the Jool header
   * @param timeoutMs how long to wait
   * @returns the reply
   * @throws {KernelError} when the kernel refuses (an error report or NLMSG_ERROR)
   * @throws {JoolFamilyError} while Jool's family is gone
   * @throws {KernelSendError} when the send fails
   * @throws {Error} when nothing answers within `timeoutMs`, or the channel closes first
   */
  async request(
    cmd: number,
    op: string,
    attributes?: Uint8Array,
    timeoutMs: number = REQUEST_TIMEOUT_MS,
  ): Promise<JoolMessage> {
    if (this.#closed) throw new Error(`${op}: the kernel channel is closed`);
    if (this.#family.gone) throw familyGoneError(op);
    const { id: familyId, version } = this.#family;
    const target = { familyId, version: packVersion(version), iname: this.#instance, seq: 0 };
    const message = joolRequest({ ...target, pid: this.#conn.portId }, cmd, attributes);
    const seq = kernelSend(this.#conn, message, op);
    return await this.#pending.wait(seq, op, timeoutMs);
  }

  /**
   * Reads the kernel's own session-synchronization counters (JSTAT_JOOLD_*) through this channel's
   * socket, as `jool stats display` does (lib/kernel/stats.ts).
   *
   * @returns the counters by name, or undefined when this Jool has none (before 4.1.12)
   * @throws {KernelError} when the kernel refuses (the instance is missing)
   * @throws {Error} when the kernel does not answer, or the reply is malformed
   */
  readJooldStats(): Promise<Map<string, bigint> | undefined> {
    const known = this.#family.versionSource === "fallback" ? undefined : this.#family.version;
    const page = (after: number) =>
      this.request(JNLOP_STATS_FOREACH, "STATS_FOREACH", statsAttributes(after));
    return readJooldStatsWith(page, known);
  }

  /**
   * With `--enable-sync`: checks ss-enabled every `intervalMs` and turns it on when it is off
   * (lib/kernel/sync_enabled.ts).
   *
   * @param intervalMs how often
   */
  keepSyncEnabled(intervalMs: number): void {
    this.#keeper.keep(intervalMs);
  }

  /**
   * Checks ss-enabled once and turns it on when it is off. Never throws: what it found goes to
   * `onNotice`.
   *
   * @returns whether ss-enabled is on afterwards (undefined when it could not tell)
   */
  checkSyncEnabled(): Promise<boolean | undefined> {
    return this.#keeper.check();
  }

  /**
   * Stops the keeper and rejects every awaited request (the channel closes). Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#keeper.close();
    this.#pending.rejectAll((op) => new Error(`${op}: the kernel channel closed before the reply`));
  }

  /**
   * Jool's family, for the channel's receive loop and hot path (which keep it when built).
   *
   * @ignore
   */
  protected get family(): JoolFamily {
    return this.#family;
  }

  /**
   * The awaited requests, which the channel's dispatcher settles.
   *
   * @ignore
   */
  protected get pending(): PendingReplies {
    return this.#pending;
  }

  /**
   * Hands a notice to the handler {@linkcode onNotice} set (one function, made once).
   *
   * @ignore
   */
  protected get notice(): NoticeHandler {
    return this.#notice;
  }

  /**
   * Whether {@linkcode close} was called.
   *
   * @ignore
   */
  protected get closed(): boolean {
    return this.#closed;
  }
}
