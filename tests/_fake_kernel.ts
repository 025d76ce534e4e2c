/**
 * Test helper: an in-process fake Jool kernel. It speaks the kernel's bytes (the controller reply
 * is the captured one, batches are built like the kernel's multicasts, or in other valid shapes)
 * and records every request it receives, raw. {@linkcode FakeJool} is the behaviour alone (for the
 * in-memory twin, no root); {@linkcode FakeKernel} serves it on a real NETLINK_USERSOCK socket.
 *
 * @module
 */

import {
  AF_NETLINK,
  bind,
  close,
  getsockname,
  recv,
  sendto,
  SOCK_RAW,
  socket,
} from "../ffi/libc.ts";
import { ERRNO } from "../ffi/errno.ts";
import { NETLINK_USERSOCK } from "../lib/netlink/conn.ts";
import { netlinkPortId, sockaddrNl } from "../ffi/sockaddr.ts";
import { concat, encodeAttribute, NLA_F_NESTED, u8Attribute } from "../lib/netlink/attribute.ts";
import { encodeMessage, type Message, NLMSG_ERROR, parseMessages } from "../lib/netlink/message.ts";
import {
  CTRL_ATTR_FAMILY_ID,
  CTRL_ATTR_MCAST_GROUPS,
  CTRL_ATTR_MCAST_GRP_ID,
  CTRL_ATTR_MCAST_GRP_NAME,
  CTRL_CMD_DELFAMILY,
  CTRL_CMD_NEWFAMILY,
  encodeGenlHeader,
  GENL_HDRLEN,
  GENL_ID_CTRL,
} from "../lib/genetlink/controller.ts";
import { encodeJoolHeader, JOOLNLHDR_FLAGS_ERROR, JOOLNLHDR_FLAGS_M } from "../lib/jool/header.ts";
import { JNLOP_STATS_FOREACH, statNames } from "../lib/jool/stats.ts";
import { unpackVersion } from "../lib/jool/version.ts";
import { decodeJoolMessage, JNLAR_SESSION_ENTRIES, type JoolMessage } from "../lib/jool/message.ts";
import { COMMANDS_4_1 } from "../lib/jool/version.ts";
import { fixture, fixtureIndex } from "./_fixtures.ts";

/** A request the fake kernel received. */
export interface Received {
  /** The raw message bytes. */
  readonly bytes: Uint8Array;
  /** Decoded header. */
  readonly message: Message;
  /** Decoded Jool part (for Jool-family messages). */
  readonly jool?: JoolMessage;
}

/** The fake kernel's behaviour, changeable while running. */
export interface FakeKernelState {
  /** Whether the instance exists. */
  instanceAlive: boolean;
  /** The instance's ss-enabled. */
  ssEnabled: boolean;
  /** Reply to JOOLD_ADD with this error report (errno, message), or no reply when null. */
  addError: [number, string] | null;
  /** Answer GETFAMILY with ENOENT (module not loaded). */
  familyMissing: boolean;
  /** The instance's session timeouts in GLOBAL_FOREACH replies (u32 ms, host order), or none. */
  timeouts: { tcpEst: number; tcpTrans: number; udp: number; icmp: number } | null;
  /** The instance's pool6 in GLOBAL_FOREACH replies (16 address bytes and a length), or none. */
  pool6: { address: Uint8Array; length: number } | null;
  /** The instance's counters by JSTAT name (STATS_FOREACH; absent ones are 0). */
  stats: Map<string, bigint>;
  /** How many counters one STATS_FOREACH reply holds before JOOLNLHDR_FLAGS_M (default all). */
  statsPerPage: number;
  /**
   * Batches waiting for an ACK, as Jool's queue under load: each JOOLD_ACK is answered with the
   * next one (joold.c's joold_ack sends it within the ACK's own sendmsg). Empty: no answer.
   */
  ackGated: Uint8Array[];
}

/**
 * How a batch is laid out: as the kernel multicasts it ("kernel": one message, SESSION_ENTRIES
 * first, the recognizer's fast path), or in shapes netlink allows that only the general decoder
 * takes: "reordered" (a zero-length pad attribute before SESSION_ENTRIES) and "two-in-one" (two
 * batch messages in one datagram, each 4-byte aligned).
 */
export type BatchShape = "kernel" | "reordered" | "two-in-one";

/**
 * The fake Jool kernel's behaviour, without a socket: it answers request datagrams with the
 * kernel's reply datagrams and builds batches. {@linkcode FakeKernel} serves it on a real socket;
 * the channel tests hand {@linkcode FakeJool.answer} to the in-memory twin (lib/netlink/twin.ts).
 */
export class FakeJool {
  /** Jool's family id (changes with {@linkcode FakeJool.reload}). */
  familyId: number;
  /** The "joold" group's id (changes with {@linkcode FakeJool.reload}). */
  groupId: number;
  readonly version: number;
  readonly received: Received[] = [];
  readonly state: FakeKernelState = {
    instanceAlive: true,
    ssEnabled: true,
    addError: null,
    familyMissing: false,
    pool6: null,
    timeouts: null,
    stats: new Map(),
    statsPerPage: Infinity,
    ackGated: [],
  };

  /** `recording` "4.1.13" or "4.1.9" picks the captured controller reply and the version. */
  constructor(readonly recording: "4.1.9" | "4.1.13" = "4.1.13") {
    const index = fixtureIndex(recording);
    this.familyId = index.family_id;
    this.groupId = index.joold_mcast_group_id;
    const [a, b, c] = recording === "4.1.13" ? [4, 1, 13] : [4, 1, 9];
    this.version = ((a << 24) | (b << 16) | (c << 8)) >>> 0;
  }

  /**
   * Answers one request datagram as the kernel would, recording it.
   *
   * @param datagram what the daemon sent
   * @returns the datagrams the kernel sends back (to the request's port id)
   */
  answer = (datagram: Uint8Array): Uint8Array<ArrayBuffer>[] => {
    const replies: Uint8Array<ArrayBuffer>[] = [];
    for (const m of parseMessages(datagram)) {
      const bytes = datagram.slice();
      const message = { ...m, body: m.body.slice() };
      if (m.type === GENL_ID_CTRL) {
        this.received.push({ bytes, message });
        replies.push(this.#answerFamily(m));
      } else if (m.type === this.familyId) {
        const jool = decodeJoolMessage(message);
        this.received.push({ bytes, message, jool });
        const reply = this.#answerJool(m, jool);
        if (reply) replies.push(reply);
      }
    }
    return replies;
  };

  /**
   * nlctrl's notification of Jool's family, as genetlink.c's genl_ctrl_event sends it to the
   * "notify" group: ctrl_fill_info's body (the captured GETFAMILY reply's layout, with this fake's
   * current family and group ids), command CTRL_CMD_NEWFAMILY or CTRL_CMD_DELFAMILY, sequence 0,
   * port 0, no flags.
   *
   * @param change "new" (registered) or "del" (unregistered)
   * @returns the datagram
   */
  familyNotification(change: "new" | "del"): Uint8Array<ArrayBuffer> {
    const body = this.#familyBody();
    body[0] = change === "new" ? CTRL_CMD_NEWFAMILY : CTRL_CMD_DELFAMILY;
    return encodeMessage({ type: GENL_ID_CTRL, flags: 0, seq: 0, pid: 0 }, body);
  }

  /**
   * What `modprobe -r jool; modprobe jool` does to the fake: every instance gone, and the family
   * and group registered again under new ids.
   *
   * @param familyId the new family id
   * @param groupId the new "joold" group id
   */
  reload(familyId: number, groupId: number): void {
    this.familyId = familyId;
    this.groupId = groupId;
    this.state.instanceAlive = false;
    this.state.ssEnabled = false;
  }

  /** The requests with this genl command. */
  requests(cmd: number): Received[] {
    return this.received.filter((r) => r.jool?.cmd === cmd);
  }

  /**
   * A session batch datagram, as the kernel multicasts it or in another valid shape.
   *
   * @param payload the SESSION_ENTRIES payload
   * @param iname the originating instance
   * @param shape the layout
   * @returns the datagram
   */
  batch(
    payload: Uint8Array,
    iname = "default",
    shape: BatchShape = "kernel",
  ): Uint8Array<ArrayBuffer> {
    const entries = encodeAttribute(JNLAR_SESSION_ENTRIES | NLA_F_NESTED, payload);
    const attributes = shape === "reordered"
      ? concat(encodeAttribute(0, new Uint8Array()), entries)
      : entries;
    const message = encodeMessage(
      { type: this.familyId, flags: 0, seq: 0, pid: 0 },
      this.#joolBody(0, 0, attributes, iname),
    );
    return shape === "two-in-one" ? concat(message, message) : message;
  }

  #reply(to: Message, body: Uint8Array, type = this.familyId): Uint8Array<ArrayBuffer> {
    return encodeMessage({ type, flags: 0, seq: to.seq, pid: to.pid }, body);
  }

  #answerFamily(m: Message): Uint8Array<ArrayBuffer> {
    if (this.state.familyMissing) {
      const err = new Uint8Array(4 + 16);
      new DataView(err.buffer).setInt32(0, -ERRNO.ENOENT, true);
      err.set(
        encodeMessage({ type: m.type, flags: m.flags, seq: m.seq, pid: m.pid }, new Uint8Array())
          .subarray(0, 16),
        4,
      );
      return this.#reply(m, err, NLMSG_ERROR);
    }
    return this.#reply(m, this.#familyBody(), GENL_ID_CTRL);
  }

  /** The captured CTRL_CMD_NEWFAMILY body, with the current family and "joold" group ids. */
  #familyBody(): Uint8Array<ArrayBuffer> {
    const [captured] = parseMessages(fixture(this.recording, "e-ctrl-getfamily-response"));
    const body = captured.body.slice();
    const view = new DataView(body.buffer);
    const walk = (
      from: number,
      to: number,
      visit: (type: number, at: number, end: number) => void,
    ) => {
      for (let at = from; at + 4 <= to;) {
        const length = view.getUint16(at, true);
        visit(view.getUint16(at + 2, true) & 0x3fff, at + 4, at + length);
        at += (length + 3) & ~3;
      }
    };
    walk(GENL_HDRLEN, body.length, (type, at, end) => {
      if (type === CTRL_ATTR_FAMILY_ID) view.setUint16(at, this.familyId, true);
      if (type !== CTRL_ATTR_MCAST_GROUPS) return;
      walk(at, end, (_, gAt, gEnd) => {
        let name = "";
        let idAt = -1;
        walk(gAt, gEnd, (t, a, e) => {
          if (t === CTRL_ATTR_MCAST_GRP_NAME) {
            name = new TextDecoder().decode(body.subarray(a, e)).replace(/\0+$/, "");
          }
          if (t === CTRL_ATTR_MCAST_GRP_ID) idAt = a;
        });
        if (name === "joold" && idAt >= 0) view.setUint32(idAt, this.groupId, true);
      });
    });
    return body;
  }

  /** STATS_FOREACH: one u64 per id from the offset on, as nla_put_u64_64bit puts them on x86_64. */
  #stats(m: Message, j: JoolMessage): Uint8Array<ArrayBuffer> {
    const names = statNames(unpackVersion(this.version))!;
    let after = 0;
    for (let at = 0; at + 4 <= j.attributes.length;) {
      const view = new DataView(j.attributes.buffer, j.attributes.byteOffset);
      const length = view.getUint16(at, true);
      if (view.getUint16(at + 2, true) === 9 && length >= 5) after = j.attributes[at + 4]; // OFFSET_U8
      at += (length + 3) & ~3;
    }
    const parts: Uint8Array[] = [];
    let id = after + 1;
    for (; id < names.length && parts.length < this.state.statsPerPage; id++) {
      const value = new Uint8Array(8);
      new DataView(value.buffer).setBigUint64(0, this.state.stats.get(names[id]) ?? 0n, true);
      parts.push(encodeAttribute(id, value));
    }
    const more = id < names.length ? JOOLNLHDR_FLAGS_M : 0;
    return this.#reply(m, this.#joolBody(j.cmd, more, concat(...parts)));
  }

  #joolBody(cmd: number, flags: number, attributes: Uint8Array, iname = "default"): Uint8Array {
    return concat(
      encodeGenlHeader({ cmd, version: 2 }),
      encodeJoolHeader({ version: this.version, xt: 2, flags, iname }),
      attributes,
    );
  }

  #error(m: Message, cmd: number, code: number, text: string): Uint8Array<ArrayBuffer> {
    const attrs = concat(
      encodeAttribute(1, Uint8Array.of(code & 0xff, code >> 8)),
      encodeAttribute(2, concat(new TextEncoder().encode(text), Uint8Array.of(0))),
    );
    return this.#reply(m, this.#joolBody(cmd, JOOLNLHDR_FLAGS_ERROR, attrs));
  }

  #answerJool(m: Message, j: JoolMessage): Uint8Array<ArrayBuffer> | undefined {
    const C = COMMANDS_4_1;
    const missing = () =>
      this.#error(m, j.cmd, 3, `This namespace lacks an instance named '${j.header.iname}'.`);
    switch (j.cmd) {
      case C.INSTANCE_HELLO:
        return this.#reply(
          m,
          this.#joolBody(j.cmd, 0, u8Attribute(1, this.state.instanceAlive ? 0 : 1)),
        );
      case C.GLOBAL_FOREACH:
        if (!this.state.instanceAlive) return missing();
        return this.#reply(
          m,
          this.#joolBody(
            j.cmd,
            0,
            concat(
              u8Attribute(1, 1),
              // JNLAG_POOL6, as jnla_put_prefix6 writes it: address and length, or length 0.
              encodeAttribute(
                2 | NLA_F_NESTED,
                this.state.pool6
                  ? concat(
                    encodeAttribute(1, this.state.pool6.address),
                    u8Attribute(2, this.state.pool6.length),
                  )
                  : u8Attribute(2, 0),
              ),
              u8Attribute(27, this.state.ssEnabled ? 1 : 0),
              // JNLAG_TTL_TCP_EST 20, _TCP_TRANS 21, _UDP 22, _ICMP 23: u32 ms, host order.
              ...(this.state.timeouts
                ? ([
                  [20, this.state.timeouts.tcpEst],
                  [21, this.state.timeouts.tcpTrans],
                  [22, this.state.timeouts.udp],
                  [23, this.state.timeouts.icmp],
                ] as const).map(([type, ms]) => {
                  const value = new Uint8Array(4);
                  new DataView(value.buffer).setUint32(0, ms, true);
                  return encodeAttribute(type, value);
                })
                : []),
            ),
          ),
        );
      case C.GLOBAL_UPDATE:
        if (!this.state.instanceAlive) return missing();
        this.state.ssEnabled = true;
        return this.#reply(m, this.#joolBody(j.cmd, 0, new Uint8Array()));
      case JNLOP_STATS_FOREACH:
        if (!this.state.instanceAlive) return missing();
        return this.#stats(m, j);
      case C.JOOLD_ADVERTISE:
        if (!this.state.instanceAlive) return missing();
        return this.#reply(m, this.#joolBody(j.cmd, 0, new Uint8Array()));
      case C.JOOLD_ADD:
        if (!this.state.instanceAlive) return missing();
        if (this.state.addError) return this.#error(m, j.cmd, ...this.state.addError);
        return;
      case C.JOOLD_ACK: {
        if (!this.state.instanceAlive) return missing();
        const next = this.state.ackGated.shift();
        return next === undefined ? undefined : this.batch(next);
      }
    }
  }
}

/** The fake kernel on a real NETLINK_USERSOCK socket. */
export class FakeKernel extends FakeJool {
  readonly fd: number;
  readonly portId: number;
  #buffer = new Uint8Array(65536);

  /** Opens the fake kernel; `version` "4.1.13" or "4.1.9" picks the captured controller reply. */
  constructor(recording: "4.1.9" | "4.1.13" = "4.1.13") {
    super(recording);
    this.fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_USERSOCK);
    bind(this.fd, sockaddrNl(0));
    this.portId = netlinkPortId(getsockname(this.fd));
  }

  /** Answers every pending request (call from a loop, or via `start`). */
  serve(): void {
    for (;;) {
      const n = recv(this.fd, this.#buffer);
      if (n === -ERRNO.EAGAIN) return;
      if (n < 0) throw new Error(`fake kernel recv: ${n}`);
      const datagram = this.#buffer.subarray(0, n);
      const to = new DataView(datagram.buffer).getUint32(12, true); // the request's nlmsg_pid
      for (const reply of this.answer(datagram)) sendto(this.fd, reply, sockaddrNl(to));
    }
  }

  /**
   * Sends a session batch to `portId` as the kernel multicasts it (or in another shape).
   *
   * @param portId the daemon's port id
   * @param payload the SESSION_ENTRIES payload
   * @param iname the originating instance
   * @param shape the layout
   */
  sendBatch(
    portId: number,
    payload: Uint8Array,
    iname = "default",
    shape: BatchShape = "kernel",
  ): void {
    const n = sendto(this.fd, this.batch(payload, iname, shape), sockaddrNl(portId));
    if (n < 0) throw new Error(`fake kernel sendto: ${n}`);
  }

  /**
   * Multicasts a session batch to the "joold" group, as the kernel does (every member gets it).
   *
   * @param payload the SESSION_ENTRIES payload
   * @returns the sendto result (bytes or -errno)
   */
  broadcastBatch(payload: Uint8Array): number {
    return sendto(this.fd, this.batch(payload), sockaddrNl(0, 1 << (this.groupId - 1)));
  }

  /**
   * Multicasts nlctrl's notification of Jool's family to the controller's "notify" group (0x10),
   * as genetlink.c's genl_ctrl_event does.
   *
   * @param change "new" or "del"
   * @returns the sendto result (bytes or -errno)
   */
  notifyFamily(change: "new" | "del"): number {
    return sendto(this.fd, this.familyNotification(change), sockaddrNl(0, 1 << (0x10 - 1)));
  }

  /** Serves requests in the background (every 2 ms) until `stop()`. */
  start(): { stop: () => void } {
    const timer = setInterval(() => this.serve(), 2);
    return { stop: () => clearInterval(timer) };
  }

  /** Closes the socket. */
  close(): void {
    close(this.fd);
  }
}
