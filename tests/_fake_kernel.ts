/**
 * Test helper: an in-process fake Jool kernel on a real NETLINK_USERSOCK socket. It speaks the
 * kernel's bytes (the controller reply is the captured one, batches are built like the kernel's
 * multicasts) and records every request it receives, raw.
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
import { netlinkPortId, sockaddrNl } from "../ffi/sockaddr.ts";
import { concat, encodeAttribute, NLA_F_NESTED, u8Attribute } from "../lib/netlink/attribute.ts";
import { encodeMessage, type Message, parseMessages } from "../lib/netlink/message.ts";
import { encodeGenlHeader, GENL_ID_CTRL } from "../lib/genetlink/controller.ts";
import { encodeJoolHeader, JOOLNLHDR_FLAGS_ERROR } from "../lib/jool/header.ts";
import { decodeJoolMessage, JNLAR_SESSION_ENTRIES, type JoolMessage } from "../lib/jool/message.ts";
import { COMMANDS_4_1 } from "../lib/jool/version.ts";
import { fixture, fixtureIndex } from "./_fixtures.ts";

/** NETLINK_USERSOCK (linux/netlink.h). */
export const NETLINK_USERSOCK = 2;

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
}

/** The fake kernel. */
export class FakeKernel {
  readonly fd: number;
  readonly portId: number;
  readonly familyId: number;
  readonly groupId: number;
  readonly version: number;
  readonly received: Received[] = [];
  readonly state: FakeKernelState = {
    instanceAlive: true,
    ssEnabled: true,
    addError: null,
    familyMissing: false,
  };
  #buffer = new Uint8Array(65536);

  /** Opens the fake kernel; `version` "4.1.13" or "4.1.9" picks the captured controller reply. */
  constructor(readonly recording: "4.1.9" | "4.1.13" = "4.1.13") {
    this.fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_USERSOCK);
    bind(this.fd, sockaddrNl(0));
    this.portId = netlinkPortId(getsockname(this.fd));
    const index = fixtureIndex(recording);
    this.familyId = index.family_id;
    this.groupId = index.joold_mcast_group_id;
    const [a, b, c] = recording === "4.1.13" ? [4, 1, 13] : [4, 1, 9];
    this.version = ((a << 24) | (b << 16) | (c << 8)) >>> 0;
  }

  /** Answers every pending request (call from a loop, or via `serveUntil`). */
  serve(): void {
    for (;;) {
      const n = recv(this.fd, this.#buffer);
      if (n === -ERRNO.EAGAIN) return;
      if (n < 0) throw new Error(`fake kernel recv: ${n}`);
      for (const m of parseMessages(this.#buffer.subarray(0, n))) {
        const bytes = this.#buffer.slice(0, n);
        const message = { ...m, body: m.body.slice() };
        if (m.type === GENL_ID_CTRL) {
          this.received.push({ bytes, message });
          this.#answerFamily(m);
        } else if (m.type === this.familyId) {
          const jool = decodeJoolMessage(message);
          this.received.push({ bytes, message, jool });
          this.#answerJool(m, jool);
        }
      }
    }
  }

  /** The requests with this genl command. */
  requests(cmd: number): Received[] {
    return this.received.filter((r) => r.jool?.cmd === cmd);
  }

  #reply(to: Message, body: Uint8Array, type = this.familyId): void {
    const m = encodeMessage({ type, flags: 0, seq: to.seq, pid: to.pid }, body);
    sendto(this.fd, m, sockaddrNl(to.pid));
  }

  #answerFamily(m: Message): void {
    if (this.state.familyMissing) {
      const err = new Uint8Array(4 + 16);
      new DataView(err.buffer).setInt32(0, -ERRNO.ENOENT, true);
      err.set(
        encodeMessage({ type: m.type, flags: m.flags, seq: m.seq, pid: m.pid }, new Uint8Array())
          .subarray(0, 16),
        4,
      );
      this.#reply(m, err, 2);
      return;
    }
    const [captured] = parseMessages(fixture(this.recording, "e-ctrl-getfamily-response"));
    this.#reply(m, captured.body, GENL_ID_CTRL);
  }

  #joolBody(cmd: number, flags: number, attributes: Uint8Array, iname = "default"): Uint8Array {
    return concat(
      encodeGenlHeader({ cmd, version: 2 }),
      encodeJoolHeader({ version: this.version, xt: 2, flags, iname }),
      attributes,
    );
  }

  #error(m: Message, cmd: number, code: number, text: string): void {
    const attrs = concat(
      encodeAttribute(1, Uint8Array.of(code & 0xff, code >> 8)),
      encodeAttribute(2, concat(new TextEncoder().encode(text), Uint8Array.of(0))),
    );
    this.#reply(m, this.#joolBody(cmd, JOOLNLHDR_FLAGS_ERROR, attrs));
  }

  #answerJool(m: Message, j: JoolMessage): void {
    const C = COMMANDS_4_1;
    const missing = () =>
      this.#error(m, j.cmd, 3, `This namespace lacks an instance named '${j.header.iname}'.`);
    switch (j.cmd) {
      case C.INSTANCE_HELLO:
        this.#reply(m, this.#joolBody(j.cmd, 0, u8Attribute(1, this.state.instanceAlive ? 0 : 1)));
        return;
      case C.GLOBAL_FOREACH:
        if (!this.state.instanceAlive) return missing();
        this.#reply(
          m,
          this.#joolBody(
            j.cmd,
            0,
            concat(u8Attribute(1, 1), u8Attribute(27, this.state.ssEnabled ? 1 : 0)),
          ),
        );
        return;
      case C.GLOBAL_UPDATE:
        if (!this.state.instanceAlive) return missing();
        this.state.ssEnabled = true;
        this.#reply(m, this.#joolBody(j.cmd, 0, new Uint8Array()));
        return;
      case C.JOOLD_ADVERTISE:
        if (!this.state.instanceAlive) return missing();
        this.#reply(m, this.#joolBody(j.cmd, 0, new Uint8Array()));
        return;
      case C.JOOLD_ADD:
        if (!this.state.instanceAlive) return missing();
        if (this.state.addError) this.#error(m, j.cmd, ...this.state.addError);
        return;
      case C.JOOLD_ACK:
        if (!this.state.instanceAlive) return missing();
        return;
    }
  }

  /**
   * Sends a session batch to `portId` as the kernel multicasts it.
   *
   * @param portId the daemon's port id
   * @param payload the SESSION_ENTRIES payload
   * @param iname the originating instance
   */
  sendBatch(portId: number, payload: Uint8Array, iname = "default"): void {
    const body = this.#joolBody(
      0,
      0,
      encodeAttribute(JNLAR_SESSION_ENTRIES | NLA_F_NESTED, payload),
      iname,
    );
    const n = sendto(
      this.fd,
      encodeMessage({ type: this.familyId, flags: 0, seq: 0, pid: 0 }, body),
      sockaddrNl(portId),
    );
    if (n < 0) throw new Error(`fake kernel sendto: ${n}`);
  }

  /**
   * Multicasts a session batch to the "joold" group, as the kernel does (every member gets it).
   *
   * @param payload the SESSION_ENTRIES payload
   * @returns the sendto result (bytes or -errno)
   */
  broadcastBatch(payload: Uint8Array): number {
    const body = this.#joolBody(
      0,
      0,
      encodeAttribute(JNLAR_SESSION_ENTRIES | NLA_F_NESTED, payload),
    );
    const message = encodeMessage({ type: this.familyId, flags: 0, seq: 0, pid: 0 }, body);
    return sendto(this.fd, message, sockaddrNl(0, 1 << (this.groupId - 1)));
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
