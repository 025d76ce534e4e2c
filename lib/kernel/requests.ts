/**
 * The channel's hot-path requests, prebuilt once per version: JOOLD_ACK and JOOLD_ADVERTISE are
 * whole templates, JOOLD_ADD a template head the payload is copied behind in a reusable buffer.
 * Only the sequence number changes per send, and the connection stamps it.
 *
 * @module
 */

import { JNLAR_SESSION_ENTRIES, joolRequest } from "../jool/message.ts";
import { type Commands, commandsFor, type JoolVersion, packVersion } from "../jool/version.ts";
import { align4, NLA_F_NESTED, NLA_HDRLEN } from "../netlink/attribute.ts";
import { NLMSG_LEN } from "../netlink/message.ts";

/** Who the requests are from and for. */
export interface RequestTarget {
  /** Jool's family id. */
  readonly familyId: number;
  /** The instance name. */
  readonly instance: string;
  /** Our port id. */
  readonly portId: number;
  /** The module version the headers carry (and the command numbers follow). */
  readonly version: JoolVersion;
}

/** The largest JOOLD_ADD: a 64 KiB datagram plus headers. */
const ADD_BUFFER = 65536 + 128;

/** The prebuilt requests of one version. */
export class RequestTemplates {
  readonly #target: RequestTarget;
  readonly #commands: Commands;
  readonly #ack: Uint8Array<ArrayBuffer>;
  readonly #addHead: Uint8Array<ArrayBuffer>;
  readonly #add = new Uint8Array(ADD_BUFFER);
  readonly #addView = new DataView(this.#add.buffer);

  /**
   * Builds the templates.
   *
   * @param target family, instance, port id, version
   */
  constructor(target: RequestTarget) {
    this.#target = target;
    this.#commands = commandsFor(target.version);
    this.#ack = this.#build(this.#commands.JOOLD_ACK);
    this.#addHead = this.#build(this.#commands.JOOLD_ADD);
    this.#add.set(this.#addHead, 0);
  }

  /**
   * JOOLD_ACK (the same buffer every time).
   *
   * @returns the message
   */
  ack(): Uint8Array<ArrayBuffer> {
    return this.#ack;
  }

  /**
   * JOOLD_ADD around `payload`, unchanged (a view of a buffer the next call reuses).
   *
   * @param payload the session entries (a datagram from the group)
   * @returns the message
   * @throws {RangeError} when the payload cannot fit one netlink message
   */
  add(payload: Uint8Array): Uint8Array<ArrayBuffer> {
    const at = this.#addHead.length;
    const length = at + NLA_HDRLEN + payload.length;
    if (length > this.#add.length) {
      throw new RangeError(`a ${payload.length}-byte datagram does not fit one JOOLD_ADD`);
    }
    const out = this.#add;
    this.#addView.setUint32(NLMSG_LEN, align4(length), true); // padding included, as libnl does
    this.#addView.setUint16(at, NLA_HDRLEN + payload.length, true); // nla_len
    this.#addView.setUint16(at + 2, JNLAR_SESSION_ENTRIES | NLA_F_NESTED, true); // nla_type
    out.set(payload, at + NLA_HDRLEN);
    out.fill(0, length, align4(length));
    return out.subarray(0, align4(length));
  }

  /**
   * JOOLD_ADVERTISE (a fresh message: it is rare).
   *
   * @returns the message
   */
  advertise(): Uint8Array<ArrayBuffer> {
    return this.#build(this.#commands.JOOLD_ADVERTISE);
  }

  #build(cmd: number): Uint8Array<ArrayBuffer> {
    const { familyId, instance, portId, version } = this.#target;
    return joolRequest(
      { familyId, version: packVersion(version), iname: instance, seq: 0, pid: portId },
      cmd,
    );
  }
}
