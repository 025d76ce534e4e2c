/**
 * The kernel channel: Jool's session batches in, JOOLD_ACK / JOOLD_ADD / JOOLD_ADVERTISE out, over
 * a {@linkcode NetlinkConn} driven by the reactor. It is built from what startup resolved
 * (lib/kernel/startup.ts; lib/kernel/open.ts does both) and is the receive loop, the hot path
 * (recognize a batch, ACK, forward) and its counters. The other jobs have files of their own: the
 * control side the channel extends (control.ts: the family across module reloads, family.ts; the
 * awaited requests, pending.ts; the ss-enabled keeper, sync_enabled.ts; the kernel's counters,
 * stats.ts), the slow-path dispatcher (dispatch.ts), receive overruns (overrun.ts) and the
 * prebuilt requests (requests.ts). Every error it reports through `onError` is a class of
 * lib/kernel/error.ts, so callers can tell refusals, overruns and bad bytes apart.
 *
 * @module
 */

import { ERRNO, SystemError } from "../../ffi/errno.ts";
import type { ErrorHandler, KernelChannel, PayloadHandler } from "../channel.ts";
import type { Counters } from "../counters.ts";
import { instanceName16, recognizeBatch } from "../jool/batch.ts";
import type { NetlinkConn } from "../netlink/conn.ts";
import type { Reactor } from "../reactor.ts";
import { ChannelControl, type ControlParts } from "./control.ts";
import { dispatchGeneral, type DispatchTarget } from "./dispatch.ts";
import { kernelSend } from "./error.ts";
import { familyGoneError, type JoolFamily } from "./family.ts";
import { LatencyHistogram } from "./latency.ts";
import { OverrunAdvertiser } from "./overrun.ts";
import { RequestTemplates } from "./requests.ts";

/**
 * What a channel is built from: what startup resolved (after a "fallback" version, the first
 * batch's version replaces it), and the connection, which has joined the "joold" group.
 */
export interface ChannelParts extends ControlParts {
  /** The reactor that drives the connection. */
  readonly reactor: Reactor;
  /** Clock, ms (the overrun advertise interval). Default: `Date.now`. */
  readonly now?: () => number;
}

/** The Generic Netlink channel to one Jool instance. */
export class NetlinkKernelChannel extends ChannelControl implements KernelChannel {
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
  readonly #family: JoolFamily;
  readonly #overruns: OverrunAdvertiser;
  readonly #target: DispatchTarget;
  #requests: RequestTemplates;
  #onBatch: PayloadHandler = () => {};
  #onError: ErrorHandler = () => {};
  #onAdvertiseDone: () => void = () => {};
  #onDrained: () => void = () => {};
  /** Whether a batch was handed to onBatch since the last onDrained. */
  #undrained = false;

  /**
   * Builds the channel and starts receiving.
   *
   * @param parts the connection, reactor, counters and what startup resolved
   */
  constructor(parts: ChannelParts) {
    super(parts, () => this.#requests = this.#templates());
    const { conn, counters, instance } = parts;
    this.#conn = conn;
    this.#counters = counters;
    this.#instance = instance;
    this.#iname = instanceName16(instance);
    this.#family = this.family;
    const error = (e: Error) => this.#onError(e);
    this.#overruns = new OverrunAdvertiser({
      counters,
      now: parts.now ?? Date.now,
      advertise: () => this.advertise(),
      error,
      notice: this.notice,
    });
    this.#target = {
      counters,
      instance,
      conn,
      pending: this.pending,
      batch: (payload, version, readAt) => this.#batch(payload, version, readAt),
      family: (change, family) => this.#family.notified(change, family),
      error,
      advertiseDone: () => this.#onAdvertiseDone(),
    };
    this.#requests = this.#templates();
    conn.watch(parts.reactor, () => this.#drain());
  }

  /** {@inheritDoc KernelChannel.onBatch} */
  onBatch(handler: PayloadHandler): void {
    this.#onBatch = handler;
  }

  /** {@inheritDoc KernelChannel.onError} */
  onError(handler: ErrorHandler): void {
    this.#onError = handler;
  }

  /** {@inheritDoc KernelChannel.onDrained} */
  onDrained(handler: () => void): void {
    this.#onDrained = handler;
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
   * Sends JOOLD_ACK: the kernel may send its next batch.
   *
   * @throws {KernelSendError} when the send fails
   */
  ack(): void {
    if (this.#family.gone) return; // no batch arrives then; the stale id may be another family's
    kernelSend(this.#conn, this.#requests.ack(), "JOOLD_ACK");
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
    kernelSend(this.#conn, this.#requests.add(payload), "JOOLD_ADD");
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
    kernelSend(this.#conn, this.#requests.advertise(), "JOOLD_ADVERTISE");
    this.#counters.kernelAdvertisesSent++;
  }

  /** Stops receiving and closes the connection. Idempotent. */
  override close(): void {
    if (this.closed) return;
    super.close();
    this.#overruns.close();
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

  #drain(): void {
    for (;;) {
      const n = this.#conn.receive(this.#buffer);
      if (n === -ERRNO.EAGAIN) {
        if (this.#undrained) {
          this.#undrained = false;
          this.#onDrained();
        }
        return;
      }
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
      if (payload !== null) {
        this.#undrained = true;
        this.#onBatch(payload); // forwarded even when the ACK failed
      }
    }
  }
}
