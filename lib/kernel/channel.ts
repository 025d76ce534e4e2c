/**
 * The kernel channel: Jool's session batches in, JOOLD_ACK / JOOLD_ADD / JOOLD_ADVERTISE out, over
 * a {@linkcode NetlinkConn} driven by the reactor. It is built from what startup resolved
 * (lib/kernel/startup.ts; lib/kernel/open.ts does both) and is the receive loop, the hot path
 * (recognize a batch, ACK, forward) and the public surface. The other jobs have files of their
 * own: the slow-path dispatcher (dispatch.ts), the family across module reloads (family.ts),
 * receive overruns (overrun.ts), the awaited requests (pending.ts), the ss-enabled keeper
 * (sync_enabled.ts) and the kernel's counters (stats.ts). Every error it reports through `onError`
 * is a class of lib/kernel/error.ts, so callers can tell refusals, overruns and bad bytes apart.
 *
 * @module
 */

import { ERRNO, SystemError } from "../../ffi/errno.ts";
import type { ErrorHandler, KernelChannel, PayloadHandler } from "../channel.ts";
import type { Counters } from "../counters.ts";
import { instanceName16, recognizeBatch } from "../jool/batch.ts";
import { type JoolMessage, joolRequest } from "../jool/message.ts";
import { JNLOP_STATS_FOREACH, statsAttributes } from "../jool/stats.ts";
import { type JoolVersion, packVersion } from "../jool/version.ts";
import type { NetlinkConn } from "../netlink/conn.ts";
import type { Reactor } from "../reactor.ts";
import { dispatchGeneral, type DispatchTarget } from "./dispatch.ts";
import { KernelSendError, type NoticeHandler } from "./error.ts";
import { familyGoneError, JoolFamily } from "./family.ts";
import { LatencyHistogram } from "./latency.ts";
import { OverrunAdvertiser } from "./overrun.ts";
import { PendingReplies } from "./pending.ts";
import { RequestTemplates } from "./requests.ts";
import { type KernelStartup, readModuleVersion, type VersionSource } from "./startup.ts";
import { readJooldStatsWith } from "./stats.ts";
import { SyncEnabledKeeper } from "./sync_enabled.ts";

/** How long an awaited request waits for its reply by default, ms. */
export const REQUEST_TIMEOUT_MS = 5000;

/**
 * What a channel is built from: what startup resolved (after a "fallback" version, the first
 * batch's version replaces it), and the connection, which has joined the "joold" group.
 */
export interface ChannelParts
  extends Pick<KernelStartup, "familyId" | "groupId" | "version" | "versionSource"> {
  /** The connection. */
  readonly conn: NetlinkConn;
  /** The reactor that drives it. */
  readonly reactor: Reactor;
  /** The daemon's counters: the channel owns the `kernel*` fields of lib/counters.ts. */
  readonly counters: Counters;
  /** The Jool instance served. */
  readonly instance: string;
  /** Clock, ms (the overrun advertise interval). Default: `Date.now`. */
  readonly now?: () => number;
  /** Reads the module's version after a reload (default: /sys/module/jool/version). */
  readonly moduleVersion?: () => JoolVersion | undefined;
}

/** The Generic Netlink channel to one Jool instance. */
export class NetlinkKernelChannel implements KernelChannel {
  /**
   * Microseconds from reading each batch of our instance off the socket to sending its JOOLD_ACK
   * (recognizing it and sending the ACK; forwarding comes after). The kernel holds its next batch
   * until the ACK, so this bounds the sync rate.
   */
  readonly ackLatency: LatencyHistogram = new LatencyHistogram();
  readonly #conn: NetlinkConn;
  readonly #counters: Counters;
  readonly #instance: string;
  /** Our instance name as the joolnlhdr carries it. */
  readonly #iname: Uint8Array;
  readonly #buffer = new Uint8Array(65536);
  readonly #pending = new PendingReplies();
  readonly #family: JoolFamily;
  readonly #overruns: OverrunAdvertiser;
  readonly #keeper: SyncEnabledKeeper;
  readonly #target: DispatchTarget;
  #requests: RequestTemplates;
  #onBatch: PayloadHandler = () => {};
  #onError: ErrorHandler = () => {};
  #onAdvertiseDone: () => void = () => {};
  #onNotice: NoticeHandler = () => {};
  #onFatal: (error: Error) => void = () => {};
  #onFamilyBack: () => void = () => {};
  #closed = false;

  /**
   * Builds the channel and starts receiving.
   *
   * @param parts the connection, reactor, counters and what startup resolved
   */
  constructor(parts: ChannelParts) {
    const { conn, counters, instance } = parts;
    this.#conn = conn;
    this.#counters = counters;
    this.#instance = instance;
    this.#iname = instanceName16(instance);
    const notice: NoticeHandler = (level, text) => this.#onNotice(level, text);
    const error = (e: Error) => this.#onError(e);
    this.#family = new JoolFamily({
      ...parts,
      moduleVersion: parts.moduleVersion ?? readModuleVersion,
      notice,
      gone: () => {
        this.#keeper.instanceGone(); // whatever instance comes back is a new one
        this.#pending.rejectAll(familyGoneError);
      },
      changed: () => this.#requests = this.#templates(),
      back: () => this.#onFamilyBack(),
      fatal: (e) => this.#onFatal(e),
    });
    this.#overruns = new OverrunAdvertiser({
      counters,
      now: parts.now ?? Date.now,
      advertise: () => this.advertise(),
      error,
      notice,
    });
    this.#keeper = new SyncEnabledKeeper({
      instance,
      counters,
      request: (cmd, op, attributes) => this.request(cmd, op, attributes),
      version: () => this.#family.version,
      usable: () => !this.#closed && !this.#family.gone,
      notice,
    });
    this.#target = {
      counters,
      instance,
      conn,
      pending: this.#pending,
      batch: (payload, version, readAt) => this.#batch(payload, version, readAt),
      family: (change, family) => this.#family.notified(change, family),
      error,
      advertiseDone: () => this.#onAdvertiseDone(),
    };
    this.#requests = this.#templates();
    conn.watch(parts.reactor, () => this.#drain());
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

  /** {@inheritDoc KernelChannel.onBatch} */
  onBatch(handler: PayloadHandler): void {
    this.#onBatch = handler;
  }

  /** {@inheritDoc KernelChannel.onError} */
  onError(handler: ErrorHandler): void {
    this.#onError = handler;
  }

  /**
   * Sets a callback for the kernel's reply to JOOLD_ADVERTISE (success).
   *
   * @param handler called once per successful advertise
   */
  onAdvertiseDone(handler: () => void): void {
    this.#onAdvertiseDone = handler;
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
    const seq = this.#send(message, op);
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
   * Sends JOOLD_ACK: the kernel may send its next batch.
   *
   * @throws {KernelSendError} when the send fails
   */
  ack(): void {
    if (this.#family.gone) return; // no batch arrives then; the stale id may be another family's
    this.#send(this.#requests.ack(), "JOOLD_ACK");
    this.#counters.kernelAcksSent++;
  }

  /**
   * Sends JOOLD_ADD with `payload` (a datagram from the group), unchanged.
   *
   * @param payload the session entries
   * @throws {RangeError} when the payload cannot fit one netlink message
   * @throws {JoolFamilyError} while Jool's family is gone (the module is not loaded)
   * @throws {KernelSendError} when the send fails
   */
  add(payload: Uint8Array): void {
    if (this.#family.gone) throw familyGoneError("JOOLD_ADD");
    this.#send(this.#requests.add(payload), "JOOLD_ADD");
    this.#counters.kernelAddsSent++;
    this.#counters.kernelAddBytes += payload.length;
  }

  /**
   * Sends JOOLD_ADVERTISE: the kernel queues its whole table for sending.
   *
   * @throws {JoolFamilyError} while Jool's family is gone (the module is not loaded)
   * @throws {KernelSendError} when the send fails
   */
  advertise(): void {
    if (this.#family.gone) throw familyGoneError("JOOLD_ADVERTISE");
    this.#send(this.#requests.advertise(), "JOOLD_ADVERTISE");
    this.#counters.kernelAdvertisesSent++;
  }

  /** Stops receiving and closes the connection. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#keeper.close();
    this.#overruns.close();
    this.#pending.rejectAll((op) => new Error(`${op}: the kernel channel closed before the reply`));
    this.#conn.close();
  }

  #templates(): RequestTemplates {
    const { id: familyId, version } = this.#family;
    return new RequestTemplates({
      familyId,
      instance: this.#instance,
      portId: this.portId,
      version,
    });
  }

  #send(message: Uint8Array<ArrayBuffer>, op: string): number {
    try {
      return this.#conn.send(message, op);
    } catch (error) {
      throw error instanceof SystemError ? new KernelSendError(op, error.errno) : error;
    }
  }

  #drain(): void {
    for (;;) {
      const n = this.#conn.receive(this.#buffer);
      if (n === -ERRNO.EAGAIN) return;
      if (n === -ERRNO.ENOBUFS) {
        this.#overruns.overrun();
        continue;
      }
      if (n < 0) throw new SystemError("recv(netlink)", -n);
      const readAt = performance.now();
      const seen = recognizeBatch(this.#buffer, n, this.#family.id, this.#iname);
      if (seen.kind === "batch") {
        this.#batch(
          this.#buffer.subarray(seen.payloadStart, seen.payloadEnd),
          seen.version,
          readAt,
        );
      } else if (seen.kind === "other-instance") {
        this.#counters.kernelOtherInstanceBatches++;
      } else {
        dispatchGeneral(this.#buffer.subarray(0, n), this.#family.id, readAt, this.#target);
      }
    }
  }

  #batch(payload: Uint8Array | null, version: number, readAt: number): void {
    this.#family.observeBatch(version);
    this.#counters.kernelBatchesReceived++;
    // ACK first, then forward: the kernel builds its next batch while the datagram goes out, so
    // the multicast send is off the kernel's critical path (BENCHMARKS.md). The payload is a view
    // of the receive buffer, which sending the ACK does not touch; the C daemon sends, then ACKs.
    try {
      this.ack();
      this.ackLatency.record((performance.now() - readAt) * 1000);
    } finally {
      if (payload !== null) this.#onBatch(payload); // forwarded even when the ACK failed
    }
  }
}
