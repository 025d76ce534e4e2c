/**
 * The kernel channel: Jool's session batches in, JOOLD_ACK / JOOLD_ADD / JOOLD_ADVERTISE out, over
 * a {@linkcode NetlinkConn} driven by the reactor. It is built from what startup resolved
 * (lib/kernel/startup.ts; lib/kernel/open.ts does both). Every error it reports through `onError`
 * is a class of lib/kernel/error.ts, so callers can tell refusals, overruns and bad bytes apart.
 *
 * @module
 */

import { SystemError } from "../../ffi/errno.ts";
import type { ErrorHandler, KernelChannel, PayloadHandler } from "../channel.ts";
import type { Counters } from "../counters.ts";
import { instanceName16, recognizeBatch } from "../jool/batch.ts";
import {
  batchPayload,
  decodeJoolMessage,
  errorReport,
  JNLAR_SESSION_ENTRIES,
  type JoolMessage,
  joolRequest,
} from "../jool/message.ts";
import {
  type Commands,
  commandsFor,
  type JoolVersion,
  packVersion,
  unpackVersion,
} from "../jool/version.ts";
import { align4, NLA_F_NESTED, NLA_HDRLEN } from "../netlink/attribute.ts";
import type { NetlinkConn } from "../netlink/conn.ts";
import { type Message, NLMSG_ERROR, parseErrorMessage, parseMessages } from "../netlink/message.ts";
import type { Reactor } from "../reactor.ts";
import {
  KernelError,
  KernelSendError,
  MalformedKernelMessageError,
  ReceiveOverrunError,
} from "./error.ts";
import { LatencyHistogram } from "./latency.ts";
import type { VersionSource } from "./startup.ts";
import { ERRNO } from "../../ffi/errno.ts";

/** What a channel is built from: a connection and the values startup resolved. */
export interface ChannelParts {
  /** The connection (it has joined the "joold" group). */
  readonly conn: NetlinkConn;
  /** The reactor that drives it. */
  readonly reactor: Reactor;
  /** The daemon's counters: the channel owns the `kernel*` fields of lib/counters.ts. */
  readonly counters: Counters;
  /** The Jool instance served. */
  readonly instance: string;
  /** Jool's family id. */
  readonly familyId: number;
  /** The module version requests are sent with. */
  readonly version: JoolVersion;
  /** Where it came from: after "fallback", the first batch's version replaces it. */
  readonly versionSource: VersionSource;
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
  #commands: Commands;
  readonly #buffer = new Uint8Array(65536);
  #onBatch: PayloadHandler = () => {};
  #onError: ErrorHandler = () => {};
  #onAdvertiseDone: () => void = () => {};
  /** Prebuilt requests: only their sequence number changes per send. */
  #ackMessage: Uint8Array<ArrayBuffer> | null = null;
  #addHead: Uint8Array<ArrayBuffer> | null = null;
  readonly #addBuffer = new Uint8Array(65536 + 128);
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
    this.#commands = commandsFor(parts.version);
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
    this.#send(this.#ackMessage ??= this.#template(this.#commands.JOOLD_ACK), "JOOLD_ACK");
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
    const head = this.#addHead ??= this.#template(this.#commands.JOOLD_ADD);
    const length = head.length + NLA_HDRLEN + payload.length;
    const out = this.#addBuffer;
    if (length > out.length) {
      throw new RangeError(`a ${payload.length}-byte datagram does not fit one JOOLD_ADD`);
    }
    out.set(head, 0);
    const view = new DataView(out.buffer);
    view.setUint32(0, align4(length), true); // nlmsg_len, padding included
    view.setUint16(head.length, NLA_HDRLEN + payload.length, true); // nla_len
    view.setUint16(head.length + 2, JNLAR_SESSION_ENTRIES | NLA_F_NESTED, true); // nla_type
    out.set(payload, head.length + NLA_HDRLEN);
    out.fill(0, length, align4(length));
    this.#send(out.subarray(0, align4(length)), "JOOLD_ADD");
    this.#counters.kernelAddsSent++;
    this.#counters.kernelAddBytes += payload.length;
  }

  /**
   * Sends JOOLD_ADVERTISE: the kernel queues its whole table for sending.
   *
   * @throws {KernelSendError} when the send fails
   */
  advertise(): void {
    this.#send(this.#template(this.#commands.JOOLD_ADVERTISE), "JOOLD_ADVERTISE");
    this.#counters.kernelAdvertisesSent++;
  }

  /** Stops receiving and closes the connection. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#conn.close();
  }

  #template(cmd: number): Uint8Array<ArrayBuffer> {
    const version = packVersion(this.#version);
    const target = { familyId: this.#familyId, version, iname: this.#instance, seq: 0 };
    return joolRequest({ ...target, pid: this.#conn.portId }, cmd);
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
    let messages: Message[];
    try {
      messages = parseMessages(datagram);
    } catch (error) {
      return this.#malformed("netlink datagram", error);
    }
    for (const m of messages) {
      if (m.type === NLMSG_ERROR) this.#errorReply(m);
      else if (m.type === this.#familyId) this.#jool(m, readAt);
    }
  }

  #errorReply(m: Message): void {
    let errno: number, text: string | undefined;
    try {
      ({ errno, extAckMessage: text } = parseErrorMessage(m));
    } catch (error) {
      return this.#malformed("error reply", error);
    }
    if (errno !== 0) this.#refused(this.#conn.opFor(m.seq), errno, text ?? "");
  }

  #jool(m: Message, readAt: number): void {
    let jm: JoolMessage;
    try {
      jm = decodeJoolMessage(m);
    } catch (error) {
      return this.#malformed("Jool message", error);
    }
    if (m.seq !== 0) { // a reply to one of our requests; batches are multicast with seq 0
      const op = this.#conn.opFor(m.seq);
      const report = errorReport(jm);
      if (report !== null) this.#refused(op, report.code, report.message);
      else if (op === "JOOLD_ADVERTISE") this.#onAdvertiseDone();
      return;
    }
    if (jm.header.iname !== this.#instance) {
      this.#counters.kernelOtherInstanceBatches++;
      return;
    }
    this.#observeVersion(jm.header.version);
    let payload: Uint8Array | null = null;
    try {
      payload = batchPayload(jm);
    } catch (error) {
      this.#malformed("session batch", error);
    }
    this.#handleBatch(payload, readAt);
  }

  #refused(op: string, errno: number, text: string): void {
    this.#counters.kernelRefusals++;
    this.#onError(new KernelError(op, errno, text, this.#instance));
  }

  #malformed(what: string, error: unknown): void {
    this.#counters.kernelMalformedMessages++;
    this.#onError(new MalformedKernelMessageError(what, error as Error));
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
    this.#commands = commandsFor(this.#version);
    this.#ackMessage = this.#addHead = null;
  }
}
