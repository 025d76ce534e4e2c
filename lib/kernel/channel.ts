/**
 * The kernel channel: Jool's session batches in, JOOLD_ACK / JOOLD_ADD / JOOLD_ADVERTISE out, over
 * a {@linkcode NetlinkConn} driven by the reactor. It is built from what startup resolved
 * (lib/kernel/startup.ts; lib/kernel/open.ts does both). Every error it reports through `onError`
 * is a class of lib/kernel/error.ts, so callers can tell refusals, overruns and bad bytes apart.
 *
 * It also outlives the module: it listens on nlctrl's "notify" group, and when Jool's family is
 * unregistered (`modprobe -r jool`) it stops sending to the stale id; when the family is registered
 * again it takes the new family and group ids from the notification, rejoins the group and rebuilds
 * its request templates. A module of another numbering or session format cannot be served by what
 * the daemon was built with: that is reported through `onFatal`, and the daemon exits non-zero so
 * its supervisor (systemd's Restart=on-failure) starts it afresh. Requests whose replies someone
 * awaits ({@linkcode NetlinkKernelChannel.request}: the kernel's counters, the ss-enabled keeper)
 * share the socket with the batches; their replies are routed by sequence number to the waiter.
 *
 * @module
 */

import { ERRNO, SystemError } from "../../ffi/errno.ts";
import type { FamilyInfo } from "../genetlink/controller.ts";
import type { ErrorHandler, KernelChannel, PayloadHandler } from "../channel.ts";
import type { Counters } from "../counters.ts";
import { instanceName16, recognizeBatch } from "../jool/batch.ts";
import {
  globalU8,
  JNLAG_JOOLD_ENABLED,
  type JoolMessage,
  joolRequest,
  ssEnabledAttribute,
} from "../jool/message.ts";
import { JNLOP_STATS_FOREACH, statsAttributes } from "../jool/stats.ts";
import {
  commandsFor,
  formatVersion,
  type JoolVersion,
  packVersion,
  sessionFormatFor,
  unpackVersion,
} from "../jool/version.ts";
import type { NetlinkConn } from "../netlink/conn.ts";
import type { Reactor } from "../reactor.ts";
import {
  JoolFamilyError,
  KernelError,
  KernelSendError,
  MalformedKernelMessageError,
  OVERRUN_ADVERTISE_INTERVAL_MS,
  ReceiveOverrunError,
} from "./error.ts";
import { classifyDatagram } from "./classify.ts";
import { LatencyHistogram } from "./latency.ts";
import { RequestTemplates } from "./requests.ts";
import { type KernelStartup, readModuleVersion, type VersionSource } from "./startup.ts";
import { readJooldStatsWith } from "./stats.ts";

/** How an operator hears what the channel did on its own (a module reload, ss-enabled re-applied). */
type NoticeHandler = (level: "debug" | "info" | "warn", text: string) => void;

/** How long an awaited request waits for its reply by default, ms. */
export const REQUEST_TIMEOUT_MS = 5000;

/** A request whose reply someone awaits. */
interface Waiter {
  readonly op: string;
  readonly resolve: (message: JoolMessage) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

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
  #familyId: number;
  #groupId: number;
  /** Set between CTRL_CMD_DELFAMILY and CTRL_CMD_NEWFAMILY: nothing may go to the stale id. */
  #familyGone = false;
  #version: JoolVersion;
  #versionSource: VersionSource;
  #requests: RequestTemplates;
  readonly #buffer = new Uint8Array(65536);
  #onBatch: PayloadHandler = () => {};
  #onError: ErrorHandler = () => {};
  #onAdvertiseDone: () => void = () => {};
  #onNotice: NoticeHandler = () => {};
  #onFatal: (error: Error) => void = () => {};
  #onFamilyBack: () => void = () => {};
  readonly #waiters = new Map<number, Waiter>();
  readonly #now: () => number;
  readonly #moduleVersion: () => JoolVersion | undefined;
  #lastOverrunAdvertise = -Infinity;
  #overrunTimer: ReturnType<typeof setTimeout> | undefined;
  #overrunsHeld = 0;
  #keeper: ReturnType<typeof setInterval> | undefined;
  #keeping = false;
  #instanceMissing = false;
  #closed = false;

  /**
   * Builds the channel and starts receiving.
   *
   * @param parts the connection, reactor, counters and what startup resolved
   */
  constructor(parts: ChannelParts) {
    this.#conn = parts.conn;
    this.#counters = parts.counters;
    this.#instance = parts.instance;
    this.#iname = instanceName16(parts.instance);
    this.#familyId = parts.familyId;
    this.#groupId = parts.groupId;
    this.#now = parts.now ?? Date.now;
    this.#moduleVersion = parts.moduleVersion ?? readModuleVersion;
    this.#version = parts.version;
    this.#versionSource = parts.versionSource;
    this.#requests = this.#templates();
    parts.conn.watch(parts.reactor, () => this.#drain());
  }

  /** Our netlink port id. */
  get portId(): number {
    return this.#conn.portId;
  }

  /** The version requests are sent with. */
  get version(): JoolVersion {
    return this.#version;
  }

  /** Jool's family id now (it changes when the module is reloaded). */
  get familyId(): number {
    return this.#familyId;
  }

  /** The "joold" group's id now. */
  get groupId(): number {
    return this.#groupId;
  }

  /** Where {@linkcode version} came from ("batch" once a batch replaced a fallback). */
  get versionSource(): VersionSource {
    return this.#versionSource;
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
  request(
    cmd: number,
    op: string,
    attributes?: Uint8Array,
    timeoutMs: number = REQUEST_TIMEOUT_MS,
  ): Promise<JoolMessage> {
    return new Promise((resolve, reject) => {
      if (this.#closed) return reject(new Error(`${op}: the kernel channel is closed`));
      if (this.#familyGone) return reject(this.#goneError(op));
      const message = joolRequest(
        {
          familyId: this.#familyId,
          version: packVersion(this.#version),
          iname: this.#instance,
          seq: 0,
          pid: this.#conn.portId,
        },
        cmd,
        attributes,
      );
      let seq: number;
      try {
        seq = this.#conn.send(message, op);
      } catch (error) {
        return reject(error instanceof SystemError ? new KernelSendError(op, error.errno) : error);
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(seq);
        reject(new Error(`the kernel did not answer ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.set(seq, { op, resolve, reject, timer });
    });
  }

  /**
   * Reads the kernel's own session-synchronization counters (JSTAT_JOOLD_*), as `jool stats
   * display` does, through this channel's socket.
   *
   * @returns the counters by name, or undefined when this Jool has none (before 4.1.12)
   * @throws {KernelError} when the kernel refuses (the instance is missing)
   * @throws {Error} when the kernel does not answer, or the reply is malformed
   */
  readJooldStats(): Promise<Map<string, bigint> | undefined> {
    const known = this.#versionSource === "fallback" ? undefined : this.#version;
    return readJooldStatsWith(
      (after) => this.request(JNLOP_STATS_FOREACH, "STATS_FOREACH", statsAttributes(after)),
      known,
    );
  }

  /**
   * With `--enable-sync`: checks ss-enabled every `intervalMs` and turns it on again when it is off
   * (a re-created instance starts with it off), and once more whenever the family comes back.
   *
   * @param intervalMs how often
   */
  keepSyncEnabled(intervalMs: number): void {
    clearInterval(this.#keeper);
    this.#keeper = setInterval(() => void this.checkSyncEnabled(), intervalMs);
  }

  /**
   * Checks ss-enabled once and turns it on when it is off (what {@linkcode keepSyncEnabled} runs).
   * Never throws: what it found goes to `onNotice`.
   *
   * @returns whether ss-enabled is on afterwards (undefined when it could not tell)
   */
  async checkSyncEnabled(): Promise<boolean | undefined> {
    if (this.#keeping || this.#closed || this.#familyGone) return undefined;
    this.#keeping = true;
    const commands = commandsFor(this.#version);
    try {
      const read = async () =>
        globalU8(
          await this.request(commands.GLOBAL_FOREACH, "GLOBAL_FOREACH"),
          JNLAG_JOOLD_ENABLED,
        );
      let enabled = await read();
      if (this.#instanceMissing) {
        this.#instanceMissing = false;
        this.#onNotice("info", `Jool instance "${this.#instance}" exists again`);
      }
      if (enabled === 0) {
        await this.request(
          commands.GLOBAL_UPDATE,
          "GLOBAL_UPDATE ss-enabled",
          ssEnabledAttribute(true),
        );
        enabled = await read();
        if (enabled === 1) {
          this.#counters.kernelSyncReenabled++;
          this.#onNotice(
            "info",
            `ss-enabled was off on instance "${this.#instance}" (re-created?): turned it on again (--enable-sync)`,
          );
        }
      }
      return enabled === undefined ? undefined : enabled !== 0;
    } catch (error) {
      if (error instanceof KernelError && error.instanceMissing) {
        if (!this.#instanceMissing) {
          this.#instanceMissing = true;
          this.#onNotice(
            "warn",
            `no Jool instance named "${this.#instance}" any more: waiting for it (jool instance add); --enable-sync will turn ss-enabled on when it is back`,
          );
        }
      } else if (!this.#closed && !this.#familyGone) {
        this.#onNotice("warn", `cannot check ss-enabled: ${(error as Error).message}`);
      }
      return undefined;
    } finally {
      this.#keeping = false;
    }
  }

  /**
   * Sends JOOLD_ACK: the kernel may send its next batch.
   *
   * @throws {KernelSendError} when the send fails
   */
  ack(): void {
    if (this.#familyGone) return; // no batch arrives then; the stale id may be another family's
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
    if (this.#familyGone) throw this.#goneError("JOOLD_ADD");
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
    if (this.#familyGone) throw this.#goneError("JOOLD_ADVERTISE");
    this.#send(this.#requests.advertise(), "JOOLD_ADVERTISE");
    this.#counters.kernelAdvertisesSent++;
  }

  /** Stops receiving and closes the connection. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#keeper);
    clearTimeout(this.#overrunTimer);
    for (const [, w] of this.#waiters) {
      clearTimeout(w.timer);
      w.reject(new Error(`${w.op}: the kernel channel closed before the reply`));
    }
    this.#waiters.clear();
    this.#conn.close();
  }

  #goneError(op: string): JoolFamilyError {
    return new JoolFamilyError(
      op,
      `Jool's Generic Netlink family is gone (the module was unloaded): ${op} not sent; waiting for modprobe jool`,
    );
  }

  #templates(): RequestTemplates {
    const { portId } = this.#conn;
    return new RequestTemplates({
      familyId: this.#familyId,
      instance: this.#instance,
      portId,
      version: this.#version,
    });
  }

  #send(message: Uint8Array<ArrayBuffer>, op: string): void {
    try {
      this.#conn.send(message, op);
    } catch (error) {
      throw error instanceof SystemError ? new KernelSendError(op, error.errno) : error;
    }
  }

  #drain(): void {
    for (;;) {
      const n = this.#conn.receive(this.#buffer);
      if (n === -ERRNO.EAGAIN) return;
      if (n === -ERRNO.ENOBUFS) {
        this.#overrun();
        continue;
      }
      if (n < 0) throw new SystemError("recv(netlink)", -n);
      const readAt = performance.now();
      const seen = recognizeBatch(this.#buffer, n, this.#familyId, this.#iname);
      if (seen.kind === "batch") {
        this.#observeVersion(seen.version);
        this.#handleBatch(this.#buffer.subarray(seen.payloadStart, seen.payloadEnd), readAt);
      } else if (seen.kind === "other-instance") {
        this.#counters.kernelOtherInstanceBatches++;
      } else {
        this.#general(this.#buffer.subarray(0, n), readAt);
      }
    }
  }

  /**
   * A receive overrun: the kernel's table refills what was lost, but at most one advertise per
   * {@linkcode OVERRUN_ADVERTISE_INTERVAL_MS}; overruns within it are counted and covered by one
   * advertise at its end.
   */
  #overrun(): void {
    this.#counters.kernelOverruns++;
    const wait = this.#lastOverrunAdvertise + OVERRUN_ADVERTISE_INTERVAL_MS - this.#now();
    if (wait <= 0) {
      this.#onError(new ReceiveOverrunError());
      this.#overrunAdvertise();
      return;
    }
    this.#counters.kernelOverrunAdvertisesHeld++;
    this.#overrunsHeld++;
    this.#onError(new ReceiveOverrunError(wait));
    this.#overrunTimer ??= setTimeout(() => {
      this.#overrunTimer = undefined;
      const held = this.#overrunsHeld;
      this.#overrunsHeld = 0;
      this.#onNotice(
        "info",
        `asking the kernel to advertise its table for ${held} receive overrun(s) held back (at most one advertise per ${
          OVERRUN_ADVERTISE_INTERVAL_MS / 1000
        } s)`,
      );
      this.#overrunAdvertise();
    }, wait);
  }

  #overrunAdvertise(): void {
    this.#lastOverrunAdvertise = this.#now();
    try {
      this.advertise();
    } catch (error) {
      this.#onError(error as Error);
    }
  }

  /** Whatever the recognizer did not take: decoded in full, message by message. */
  #general(datagram: Uint8Array, readAt: number): void {
    for (const e of classifyDatagram(datagram, this.#familyId, this.#instance)) {
      if (e.kind === "batch") {
        this.#observeVersion(e.version);
        this.#handleBatch(e.payload, readAt);
      } else if (e.kind === "other-instance") this.#counters.kernelOtherInstanceBatches++;
      else if (e.kind === "malformed") this.#malformed(e.what, e.cause);
      else if (e.kind === "family") this.#family(e.change, e.family);
      else if (e.kind === "refusal") {
        const waiter = this.#waiter(e.seq);
        const op = waiter?.op ?? this.#conn.opFor(e.seq);
        const error = new KernelError(op, e.errno, e.text, this.#instance);
        if (waiter) waiter.reject(error);
        else this.#refused(error);
      } else {
        const waiter = this.#waiter(e.seq);
        if (waiter) waiter.resolve(copyMessage(e.message));
        else if (this.#conn.opFor(e.seq) === "JOOLD_ADVERTISE") this.#onAdvertiseDone();
      }
    }
  }

  #waiter(seq: number): Waiter | undefined {
    const waiter = this.#waiters.get(seq);
    if (waiter === undefined) return undefined;
    this.#waiters.delete(seq);
    clearTimeout(waiter.timer);
    return waiter;
  }

  /** nlctrl said a family came or went; only Jool's matters. */
  #family(change: "new" | "del", family: FamilyInfo): void {
    if (family.name !== "Jool") return;
    if (change === "del") {
      if (family.id !== this.#familyId || this.#familyGone) return;
      this.#familyGone = true;
      this.#counters.kernelFamilyRemovals++;
      this.#instanceMissing = true; // whatever instance comes back is a new one
      for (const [seq, { op }] of this.#waiters) this.#waiter(seq)?.reject(this.#goneError(op));
      this.#onNotice(
        "warn",
        `Jool's Generic Netlink family (id ${family.id}) was unregistered: the module was unloaded; waiting for it to come back (modprobe jool)`,
      );
      return;
    }
    const groupId = family.groups.get("joold");
    if (groupId === undefined) {
      return this.#fatal(
        `Jool's family came back without a "joold" multicast group (groups: ${
          [...family.groups.keys()].join(", ") || "none"
        })`,
      );
    }
    const was = this.#version;
    const now = this.#versionSource === "sysfs" ? this.#moduleVersion() ?? was : was;
    if (
      commandsFor(now) !== commandsFor(was) || sessionFormatFor(now) !== sessionFormatFor(was)
    ) {
      return this.#fatal(
        `Jool's module was replaced: ${formatVersion(was)} -> ${
          formatVersion(now)
        }, whose commands or session format differ; exiting so that joold starts afresh for it`,
      );
    }
    try {
      this.#conn.joinGroup(groupId);
    } catch (error) {
      return this.#fatal(
        `cannot join Jool's new "joold" group ${groupId}: ${(error as Error).message}`,
      );
    }
    const changed = family.id !== this.#familyId || groupId !== this.#groupId;
    this.#familyId = family.id;
    this.#groupId = groupId;
    this.#version = now;
    this.#familyGone = false;
    this.#requests = this.#templates();
    this.#counters.kernelFamilyRecoveries++;
    this.#onNotice(
      "info",
      `Jool's Generic Netlink family is back (module ${
        formatVersion(now)
      }): family id ${family.id}, "joold" group ${groupId}${
        changed ? "" : " (unchanged)"
      }; rejoined`,
    );
    this.#onFamilyBack();
  }

  #fatal(text: string): void {
    this.#familyGone = true;
    this.#onFatal(new JoolFamilyError("module reload", text));
  }

  #refused(error: KernelError): void {
    this.#counters.kernelRefusals++;
    this.#onError(error);
  }

  #malformed(what: string, cause: Error): void {
    this.#counters.kernelMalformedMessages++;
    this.#onError(new MalformedKernelMessageError(what, cause));
  }

  #handleBatch(payload: Uint8Array | null, readAt: number): void {
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

  #observeVersion(packed: number): void {
    if (this.#versionSource !== "fallback") return;
    this.#version = unpackVersion(packed);
    this.#versionSource = "batch";
    this.#requests = this.#templates();
  }
}

/** A reply the waiter may keep: its attributes copied out of the receive buffer. */
function copyMessage(m: JoolMessage): JoolMessage {
  return { ...m, attributes: m.attributes.slice() };
}
