/**
 * The kernel channel: Jool's session batches in, JOOLD_ACK / JOOLD_ADD / JOOLD_ADVERTISE out, over
 * a {@linkcode NetlinkConn} driven by the reactor. It is built from what startup resolved
 * (lib/kernel/startup.ts; lib/kernel/open.ts does both). Every error it reports through `onError`
 * is a class of lib/kernel/error.ts, so callers can tell refusals, overruns and bad bytes apart.
 *
 * @module
 */

import { ERRNO, SystemError } from "../../ffi/errno.ts";
import type { ErrorHandler, KernelChannel, PayloadHandler } from "../channel.ts";
import type { Counters } from "../counters.ts";
import { instanceName16, recognizeBatch } from "../jool/batch.ts";
import { type JoolVersion, unpackVersion } from "../jool/version.ts";
import type { NetlinkConn } from "../netlink/conn.ts";
import type { Reactor } from "../reactor.ts";
import {
  KernelError,
  KernelSendError,
  MalformedKernelMessageError,
  ReceiveOverrunError,
} from "./error.ts";
import { classifyDatagram } from "./classify.ts";
import { LatencyHistogram } from "./latency.ts";
import { RequestTemplates } from "./requests.ts";
import type { KernelStartup, VersionSource } from "./startup.ts";

/**
 * What a channel is built from: what startup resolved (after a "fallback" version, the first
 * batch's version replaces it), and the connection, which has joined the "joold" group.
 */
export interface ChannelParts
  extends Pick<KernelStartup, "familyId" | "version" | "versionSource"> {
  /** The connection. */
  readonly conn: NetlinkConn;
  /** The reactor that drives it. */
  readonly reactor: Reactor;
  /** The daemon's counters: the channel owns the `kernel*` fields of lib/counters.ts. */
  readonly counters: Counters;
  /** The Jool instance served. */
  readonly instance: string;
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
  readonly #familyId: number;
  #version: JoolVersion;
  #versionSource: VersionSource;
  #requests: RequestTemplates;
  readonly #buffer = new Uint8Array(65536);
  #onBatch: PayloadHandler = () => {};
  #onError: ErrorHandler = () => {};
  #onAdvertiseDone: () => void = () => {};
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
   * Sends JOOLD_ACK: the kernel may send its next batch.
   *
   * @throws {KernelSendError} when the send fails
   */
  ack(): void {
    this.#send(this.#requests.ack(), "JOOLD_ACK");
    this.#counters.kernelAcksSent++;
  }

  /**
   * Sends JOOLD_ADD with `payload` (a datagram from the group), unchanged.
   *
   * @param payload the session entries
   * @throws {RangeError} when the payload cannot fit one netlink message
   * @throws {KernelSendError} when the send fails
   */
  add(payload: Uint8Array): void {
    this.#send(this.#requests.add(payload), "JOOLD_ADD");
    this.#counters.kernelAddsSent++;
    this.#counters.kernelAddBytes += payload.length;
  }

  /**
   * Sends JOOLD_ADVERTISE: the kernel queues its whole table for sending.
   *
   * @throws {KernelSendError} when the send fails
   */
  advertise(): void {
    this.#send(this.#requests.advertise(), "JOOLD_ADVERTISE");
    this.#counters.kernelAdvertisesSent++;
  }

  /** Stops receiving and closes the connection. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#conn.close();
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
        this.#counters.kernelOverruns++;
        this.#onError(new ReceiveOverrunError());
        try {
          this.advertise(); // the kernel's table refills what was lost
        } catch (error) {
          this.#onError(error as Error);
        }
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

  /** Whatever the recognizer did not take: decoded in full, message by message. */
  #general(datagram: Uint8Array, readAt: number): void {
    for (const e of classifyDatagram(datagram, this.#familyId, this.#instance)) {
      if (e.kind === "batch") {
        this.#observeVersion(e.version);
        this.#handleBatch(e.payload, readAt);
      } else if (e.kind === "other-instance") this.#counters.kernelOtherInstanceBatches++;
      else if (e.kind === "malformed") this.#malformed(e.what, e.cause);
      else if (e.kind === "refusal") this.#refused(this.#conn.opFor(e.seq), e.errno, e.text);
      else if (this.#conn.opFor(e.seq) === "JOOLD_ADVERTISE") this.#onAdvertiseDone();
    }
  }

  #refused(op: string, errno: number, text: string): void {
    this.#counters.kernelRefusals++;
    this.#onError(new KernelError(op, errno, text, this.#instance));
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
