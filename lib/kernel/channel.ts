/**
 * The kernel channel: one Generic Netlink socket to Jool (family "Jool", multicast group "joold"),
 * driven by the reactor. Receives the session batches of our instance, ACKs each one, and sends
 * JOOLD_ADD / JOOLD_ADVERTISE / GLOBAL_UPDATE on request. Kernel error replies are reported through
 * `onError` as {@linkcode KernelError}s.
 *
 * @module
 */

import {
  AF_NETLINK,
  bind,
  close,
  getsockname,
  readSmallFile,
  recv,
  sendto,
  setsockoptInt,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SOCK_RAW,
  socket,
  SOL_SOCKET,
  waitReadableAsync,
} from "../../ffi/libc.ts";
import { ERRNO, SystemError } from "../../ffi/errno.ts";
import { netlinkPortId, sockaddrNl } from "../../ffi/sockaddr.ts";
import type { ErrorHandler, KernelChannel, PayloadHandler } from "../channel.ts";
import { type FamilyInfo, getFamilyRequest, parseFamilyReply } from "../genetlink/controller.ts";
import { align4, NLA_F_NESTED } from "../netlink/attribute.ts";
import {
  type Message,
  NLMSG_DONE,
  NLMSG_ERROR,
  parseErrorMessage,
  parseMessages,
} from "../netlink/message.ts";
import {
  batchPayload,
  decodeJoolMessage,
  errorReport,
  globalU8,
  IHS_ALIVE,
  JNLAG_JOOLD_ENABLED,
  JNLAIS_STATUS,
  JNLAR_SESSION_ENTRIES,
  type JoolMessage,
  joolRequest,
  ssEnabledAttribute,
} from "../jool/message.ts";
import {
  type Commands,
  commandsFor,
  type JoolVersion,
  packVersion,
  parseVersion,
  unpackVersion,
} from "../jool/version.ts";
import type { Reactor } from "../reactor.ts";
import { JOOLNLHDR_FLAGS_ERROR } from "../jool/header.ts";
import { JoolNotLoadedError, KernelError } from "./error.ts";
import { LatencyHistogram } from "./latency.ts";

/** linux/netlink.h */
export const NETLINK_USERSOCK = 2;
/** How many recent requests are remembered by name (a power of two). */
const OPS_RING = 1024;
/** linux/netlink.h */
export const NETLINK_GENERIC = 16;
/** linux/socket.h */
export const SOL_NETLINK = 270;
/** linux/netlink.h: join a multicast group. */
export const NETLINK_ADD_MEMBERSHIP = 1;
/** linux/netlink.h: extended ack (readable error messages). */
export const NETLINK_EXT_ACK = 11;

/** Where the module reports its version. */
export const MODULE_VERSION_FILE = "/sys/module/jool/version";
/** Version spoken when the module's version cannot be read (any 4.1.x kernel accepts it). */
export const FALLBACK_VERSION: JoolVersion = {
  major: 4,
  minor: 1,
  revision: 13,
  development: 0,
};

/** How to open the channel. */
export interface KernelChannelOptions {
  /** The Jool instance to serve. */
  readonly instance: string;
  /** Netlink protocol (NETLINK_GENERIC; tests use NETLINK_USERSOCK with a fake kernel). */
  readonly protocol?: number;
  /** Port id requests go to (0 = the kernel; tests: the fake kernel's port). */
  readonly peerPortId?: number;
  /** The module version; read from /sys/module/jool/version when omitted. */
  readonly moduleVersion?: JoolVersion;
  /** Receive buffer to ask for, bytes (default 8 MiB). */
  readonly receiveBuffer?: number;
  /** How long startup requests wait for their reply, ms (default 5000). */
  readonly replyTimeoutMs?: number;
}

/** What the channel counts. */
export interface KernelCounters {
  /** Batches of our instance received. */
  batches: number;
  /** Batches of other instances ignored. */
  otherInstances: number;
  /** JOOLD_ACKs sent. */
  acks: number;
  /** JOOLD_ADD requests sent, and their payload bytes. */
  adds: number;
  /** Payload bytes of those JOOLD_ADD requests. */
  addBytes: number;
  /** Error replies from the kernel. */
  kernelErrors: number;
  /** Receive-buffer overruns (ENOBUFS): sessions were lost. */
  overruns: number;
  /** Messages that could not be decoded. */
  malformed: number;
}

/** What the kernel said at startup. */
export interface KernelStatus {
  /** The module version used for requests. */
  readonly version: JoolVersion;
  /** Where the version came from. */
  readonly versionSource: "sysfs" | "option" | "fallback" | "batch";
  /** Whether the instance exists right now. */
  readonly instanceAlive: boolean;
  /** Its ss-enabled global, when the instance exists and the kernel said. */
  readonly syncEnabled: boolean | undefined;
}

function readModuleVersion(): JoolVersion | undefined {
  // Through libc: Deno lets only -A read /sys.
  const text = readSmallFile(MODULE_VERSION_FILE);
  if (text === undefined) return undefined;
  try {
    return parseVersion(text);
  } catch {
    return undefined;
  }
}

/** The Generic Netlink channel to one Jool instance. */
export class NetlinkKernelChannel implements KernelChannel {
  /** Counters, updated in place. */
  readonly counters: KernelCounters = {
    batches: 0,
    otherInstances: 0,
    acks: 0,
    adds: 0,
    addBytes: 0,
    kernelErrors: 0,
    overruns: 0,
    malformed: 0,
  };
  /** Family id and groups, as nlctrl reported them. */
  readonly family: FamilyInfo;
  /** Our netlink port id. */
  readonly portId: number;
  /**
   * Microseconds from reading each batch of our instance off the socket to sending its JOOLD_ACK
   * (decoding it and sending the ACK; the multicast send comes after the ACK). The kernel holds its next
   * batch until the ACK, so this bounds the sync rate.
   */
  readonly ackLatency: LatencyHistogram = new LatencyHistogram();

  readonly #fd: number;
  readonly #instance: string;
  readonly #peer: Uint8Array<ArrayBuffer>;
  readonly #reactor: Reactor;
  #version: JoolVersion;
  #versionSource: KernelStatus["versionSource"];
  #commands: Commands;
  #seq = Math.floor(Math.random() * 0x7fffffff);
  /** The request each recent sequence number was, to name it in error replies (a ring). */
  readonly #ops: string[] = new Array<string>(OPS_RING).fill("request");
  readonly #buffer = new Uint8Array(65536);
  readonly #view = new DataView(this.#buffer.buffer);
  /** Our instance name as the joolnlhdr carries it: 16 bytes, NUL padded. */
  readonly #iname: Uint8Array;
  #onBatch: PayloadHandler = () => {};
  #onError: ErrorHandler = () => {};
  #onAdvertiseDone: (() => void) | null = null;
  #ackMessage: Uint8Array<ArrayBuffer> | null = null;
  #addHead: Uint8Array<ArrayBuffer> | null = null;
  readonly #addBuffer = new Uint8Array(65536 + 128);
  #closed = false;
  #registered = false;

  private constructor(
    fd: number,
    reactor: Reactor,
    options: KernelChannelOptions,
  ) {
    this.#fd = fd;
    this.#reactor = reactor;
    this.#instance = options.instance;
    this.#iname = new Uint8Array(16);
    this.#iname.set(new TextEncoder().encode(options.instance).subarray(0, 15));
    this.#peer = sockaddrNl(options.peerPortId ?? 0);
    const fromSys = options.moduleVersion === undefined ? readModuleVersion() : undefined;
    this.#version = options.moduleVersion ?? fromSys ?? FALLBACK_VERSION;
    this.#versionSource = options.moduleVersion ? "option" : fromSys ? "sysfs" : "fallback";
    this.#commands = commandsFor(this.#version);
    this.portId = netlinkPortId(getsockname(fd));
    this.family = { name: "", id: 0, version: 0, groups: new Map() };
  }

  /**
   * Opens the socket, resolves family "Jool" and its "joold" group, checks the instance (and its
   * ss-enabled global, turning it on when `enableSync`), joins the group and starts receiving.
   *
   * @param reactor the reactor that will drive the socket
   * @param options instance, protocol, peer, version
   * @param enableSync turn ss-enabled on when it is off
   * @returns the channel and what the kernel said
   * @throws {JoolNotLoadedError} when the family is missing
   * @throws {KernelError} when the kernel refuses (EPERM, version mismatch)
   * @throws {SystemError} when a socket call fails
   */
  static async open(
    reactor: Reactor,
    options: KernelChannelOptions,
    enableSync = false,
  ): Promise<{ channel: NetlinkKernelChannel; status: KernelStatus }> {
    const fd = socket(
      AF_NETLINK,
      SOCK_RAW,
      options.protocol ?? NETLINK_GENERIC,
    );
    try {
      bind(fd, sockaddrNl(0));
      const size = options.receiveBuffer ?? 8 << 20;
      try {
        setsockoptInt(fd, SOL_SOCKET, SO_RCVBUFFORCE, size, "SO_RCVBUFFORCE");
      } catch {
        setsockoptInt(fd, SOL_SOCKET, SO_RCVBUF, size, "SO_RCVBUF");
      }
      try {
        setsockoptInt(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1, "NETLINK_EXT_ACK");
      } catch {
        // older kernels: error replies without the ext-ack text
      }
      const channel = new NetlinkKernelChannel(fd, reactor, options);
      const status = await channel.#startup(options, enableSync);
      return { channel, status };
    } catch (error) {
      close(fd);
      throw error;
    }
  }

  async #startup(
    options: KernelChannelOptions,
    enableSync: boolean,
  ): Promise<KernelStatus> {
    const timeout = options.replyTimeoutMs ?? 5000;
    // 1. Family and group.
    const seq = this.#nextSeq();
    this.#send(
      getFamilyRequest("Jool", seq, this.portId),
      "CTRL_CMD_GETFAMILY",
    );
    const reply = await this.#awaitReply(seq, timeout, "CTRL_CMD_GETFAMILY");
    if (reply.type === NLMSG_ERROR) {
      const e = parseErrorMessage(reply);
      if (e.errno === ERRNO.ENOENT) throw new JoolNotLoadedError();
      throw new KernelError(
        "CTRL_CMD_GETFAMILY",
        e.errno,
        e.extAckMessage ?? "",
        this.#instance,
      );
    }
    const family = parseFamilyReply(reply.body);
    (this as { family: FamilyInfo }).family = family;
    const group = family.groups.get("joold");
    if (group === undefined) {
      throw new Error(
        `Jool's family has no "joold" multicast group (groups: ${
          [...family.groups.keys()].join(", ") || "none"
        }): this Jool is too old or not a NAT64 build`,
      );
    }
    // 2. The instance, and its ss-enabled.
    const alive = await this.#instanceAlive(timeout);
    let syncEnabled: boolean | undefined;
    if (alive) {
      syncEnabled = await this.#readSyncEnabled(timeout);
      if (syncEnabled === false && enableSync) {
        await this.#jool(
          this.#commands.GLOBAL_UPDATE,
          ssEnabledAttribute(true),
          "GLOBAL_UPDATE ss-enabled",
          timeout,
        );
        syncEnabled = await this.#readSyncEnabled(timeout);
      }
    }
    // 3. Join the group and start receiving.
    setsockoptInt(
      this.#fd,
      SOL_NETLINK,
      NETLINK_ADD_MEMBERSHIP,
      group,
      "NETLINK_ADD_MEMBERSHIP",
    );
    this.#reactor.add(this.#fd, () => this.#drain(), { priority: true });
    this.#registered = true;
    return {
      version: this.#version,
      versionSource: this.#versionSource,
      instanceAlive: alive,
      syncEnabled,
    };
  }

  /** The version requests are sent with. */
  get version(): JoolVersion {
    return this.#version;
  }

  /**
   * Sets the handler of our instance's batches (the channel ACKs each one after it).
   *
   * @param handler receives the SESSION_ENTRIES payload (a view)
   */
  onBatch(handler: PayloadHandler): void {
    this.#onBatch = handler;
  }

  /**
   * Sets the handler of kernel refusals and channel failures.
   *
   * @param handler receives the error
   */
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

  /** Sends JOOLD_ACK (hot path: a prebuilt message, only its sequence number changes). */
  ack(): void {
    const message = this.#ackMessage ??= this.#build(
      this.#commands.JOOLD_ACK,
      new Uint8Array(),
    );
    this.#sendTracked(message, "JOOLD_ACK");
    this.counters.acks++;
  }

  /**
   * Sends JOOLD_ADD with `payload` (a datagram from the group), unchanged.
   *
   * @param payload the session entries
   * @throws {RangeError} when the payload cannot fit one netlink message
   * @throws {SystemError} when the send fails
   */
  add(payload: Uint8Array): void {
    // Hot path: headers prebuilt once, the payload copied behind them in a reusable buffer.
    const head = this.#addHead ??= this.#build(
      this.#commands.JOOLD_ADD,
      new Uint8Array(),
    );
    const length = head.length + 4 + payload.length;
    if (length > this.#addBuffer.length) {
      throw new RangeError(
        `a ${payload.length}-byte datagram does not fit one JOOLD_ADD`,
      );
    }
    const out = this.#addBuffer;
    out.set(head, 0);
    const view = new DataView(out.buffer);
    view.setUint32(0, align4(length), true); // nlmsg_len, padding included
    view.setUint16(head.length, 4 + payload.length, true); // nla_len
    view.setUint16(head.length + 2, JNLAR_SESSION_ENTRIES | NLA_F_NESTED, true);
    out.set(payload, head.length + 4);
    out.fill(0, length, align4(length));
    this.#sendTracked(out.subarray(0, align4(length)), "JOOLD_ADD");
    this.counters.adds++;
    this.counters.addBytes += payload.length;
  }

  #build(cmd: number, attributes: Uint8Array): Uint8Array<ArrayBuffer> {
    return joolRequest(
      {
        familyId: this.family.id,
        version: packVersion(this.#version),
        iname: this.#instance,
        seq: 0,
        pid: this.portId,
      },
      cmd,
      attributes,
    );
  }

  /**
   * Stamps a fresh sequence number into a prebuilt request, remembers which request it was (to
   * name it in error replies), and sends it.
   */
  #sendTracked(message: Uint8Array<ArrayBuffer>, op: string): number {
    const seq = this.#nextSeq();
    new DataView(message.buffer, message.byteOffset).setUint32(8, seq, true);
    this.#ops[seq & (OPS_RING - 1)] = op;
    this.#send(message, op);
    return seq;
  }

  /** Sends JOOLD_ADVERTISE: the kernel queues its whole table for sending. */
  advertise(): void {
    this.#sendTracked(
      this.#build(this.#commands.JOOLD_ADVERTISE, new Uint8Array()),
      "JOOLD_ADVERTISE",
    );
  }

  /** Stops receiving and closes the socket. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#registered) this.#reactor.remove(this.#fd);
    close(this.#fd);
  }

  #nextSeq(): number {
    this.#seq = (this.#seq + 1) >>> 0 || 1;
    return this.#seq;
  }

  #send(message: Uint8Array<ArrayBuffer>, op: string): void {
    for (;;) {
      const n = sendto(this.#fd, message, this.#peer);
      if (n >= 0) return;
      if (n === -ERRNO.EINTR) continue;
      throw new SystemError(`sendto(${op})`, -n);
    }
  }

  /** Synchronous request/reply, startup only (before the reactor drives the socket). */
  async #awaitReply(
    seq: number,
    timeoutMs: number,
    op: string,
  ): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0 || !(await waitReadableAsync(this.#fd, left))) {
        throw new Error(
          `the kernel did not answer ${op} within ${timeoutMs} ms`,
        );
      }
      const n = recv(this.#fd, this.#buffer);
      if (n === -ERRNO.EAGAIN || n === -ERRNO.EINTR) continue;
      if (n < 0) throw new SystemError(`recv(${op})`, -n);
      for (const m of parseMessages(this.#buffer.subarray(0, n))) {
        if (m.seq === seq && m.type !== NLMSG_DONE) {
          return { ...m, body: m.body.slice() };
        }
      }
    }
  }

  async #jool(
    cmd: number,
    attributes: Uint8Array | undefined,
    op: string,
    timeoutMs: number,
  ): Promise<JoolMessage> {
    const seq = this.#sendTracked(this.#build(cmd, attributes ?? new Uint8Array()), op);
    const reply = await this.#awaitReply(seq, timeoutMs, op);
    if (reply.type === NLMSG_ERROR) {
      const e = parseErrorMessage(reply);
      throw new KernelError(op, e.errno, e.extAckMessage ?? "", this.#instance);
    }
    const jm = decodeJoolMessage(reply);
    const report = errorReport(jm);
    if (report !== null) {
      throw new KernelError(op, report.code, report.message, this.#instance);
    }
    return jm;
  }

  async #instanceAlive(timeoutMs: number): Promise<boolean> {
    try {
      const jm = await this.#jool(
        this.#commands.INSTANCE_HELLO,
        undefined,
        "INSTANCE_HELLO",
        timeoutMs,
      );
      return globalU8(jm, JNLAIS_STATUS) === IHS_ALIVE;
    } catch (error) {
      if (error instanceof KernelError && error.instanceMissing) return false;
      throw error;
    }
  }

  async #readSyncEnabled(timeoutMs: number): Promise<boolean | undefined> {
    try {
      const jm = await this.#jool(
        this.#commands.GLOBAL_FOREACH,
        undefined,
        "GLOBAL_FOREACH",
        timeoutMs,
      );
      const value = globalU8(jm, JNLAG_JOOLD_ENABLED);
      return value === undefined ? undefined : value !== 0;
    } catch (error) {
      if (error instanceof KernelError && error.instanceMissing) {
        return undefined;
      }
      throw error;
    }
  }

  #drain(): void {
    for (;;) {
      const n = recv(this.#fd, this.#buffer);
      if (n === -ERRNO.EAGAIN) return;
      if (n === -ERRNO.EINTR) continue;
      if (n === -ERRNO.ENOBUFS) {
        this.counters.overruns++;
        this.#onError(
          new Error(
            "netlink receive buffer overrun (ENOBUFS): sessions from the kernel were lost; asking it to advertise its table",
          ),
        );
        this.#tryAdvertise();
        continue;
      }
      if (n < 0) throw new SystemError("recv(netlink)", -n);
      const readAt = performance.now();
      if (this.#fastBatch(n, readAt)) continue;
      let messages: Message[];
      try {
        messages = parseMessages(this.#buffer.subarray(0, n));
      } catch (error) {
        this.counters.malformed++;
        this.#onError(
          new Error(`malformed netlink datagram: ${(error as Error).message}`),
        );
        continue;
      }
      for (const m of messages) this.#dispatch(m, readAt);
    }
  }

  #tryAdvertise(): void {
    try {
      this.advertise();
    } catch (error) {
      this.#onError(error as Error);
    }
  }

  #dispatch(m: Message, readAt: number): void {
    if (m.type === NLMSG_ERROR) {
      const op = this.#ops[m.seq & (OPS_RING - 1)];
      try {
        const e = parseErrorMessage(m);
        if (e.errno !== 0) {
          this.counters.kernelErrors++;
          this.#onError(
            new KernelError(op, e.errno, e.extAckMessage ?? "", this.#instance),
          );
        }
      } catch (error) {
        this.counters.malformed++;
        this.#onError(error as Error);
      }
      return;
    }
    if (m.type !== this.family.id) return;
    let jm: JoolMessage;
    try {
      jm = decodeJoolMessage(m);
    } catch (error) {
      this.counters.malformed++;
      this.#onError(
        new Error(`malformed Jool message: ${(error as Error).message}`),
      );
      return;
    }
    // The kernel multicasts batches with sequence number 0; replies carry our request's.
    if (m.seq !== 0) {
      const op = this.#ops[m.seq & (OPS_RING - 1)];
      const report = errorReport(jm);
      if (report !== null) {
        this.counters.kernelErrors++;
        this.#onError(
          new KernelError(op, report.code, report.message, this.#instance),
        );
      } else if (op === "JOOLD_ADVERTISE") this.#onAdvertiseDone?.();
      return;
    }
    if (jm.header.iname !== this.#instance) {
      this.counters.otherInstances++;
      return;
    }
    this.#observeVersion(jm.header.version);
    let payload: Uint8Array | null = null;
    try {
      payload = batchPayload(jm);
    } catch (error) {
      this.counters.malformed++;
      this.#onError(
        new Error(`malformed session batch: ${(error as Error).message}`),
      );
    }
    this.#handleBatch(payload, readAt);
  }

  /**
   * The hot path: a datagram that is exactly one session batch as the kernel multicasts it (one
   * message, seq 0, cmd 0, no error flag, SESSION_ENTRIES as its first attribute) is recognized
   * with a few fixed-offset reads and an instance-name compare, without decoding objects. Anything
   * else returns false and takes the general path.
   *
   * @param n the datagram's length in the receive buffer
   * @param readAt when it was read
   * @returns true when the datagram was handled
   */
  #fastBatch(n: number, readAt: number): boolean {
    const b = this.#buffer;
    const v = this.#view;
    // nlmsghdr 16 + genlmsghdr 4 + joolnlhdr 28 + nlattr 4
    if (n < 52) return false;
    const length = v.getUint32(0, true);
    if ((length !== n && align4(length) !== n) || length < 52) return false;
    if (v.getUint16(4, true) !== this.family.id || v.getUint32(8, true) !== 0 || b[16] !== 0) {
      return false;
    }
    if (b[20] !== 0x6a || b[21] !== 0x6f || b[22] !== 0x6f || b[23] !== 0x6c) return false; // "jool"
    if ((b[29] & JOOLNLHDR_FLAGS_ERROR) !== 0) return false;
    const attrLength = v.getUint16(48, true);
    if ((v.getUint16(50, true) & 0x3fff) !== JNLAR_SESSION_ENTRIES) return false;
    if (attrLength < 4 || 48 + attrLength > length) return false;
    const name = this.#iname;
    for (let i = 0; i < 16; i++) {
      if (b[32 + i] !== name[i]) {
        this.counters.otherInstances++;
        return true;
      }
    }
    this.#observeVersion(v.getUint32(24, false));
    this.#handleBatch(b.subarray(52, 48 + attrLength), readAt);
    return true;
  }

  #handleBatch(payload: Uint8Array | null, readAt: number): void {
    this.counters.batches++;
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
    const seen = unpackVersion(packed);
    this.#version = seen;
    this.#versionSource = "batch";
    this.#commands = commandsFor(seen);
    this.#ackMessage = this.#addHead = null;
  }
}
