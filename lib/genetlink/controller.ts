/**
 * Generic Netlink: the 4-byte `genlmsghdr` and the controller (`nlctrl`) that resolves a family name
 * into its id and multicast groups (linux/genetlink.h).
 *
 * @module
 */

import {
  concat,
  parseAttributes,
  readString,
  readU16,
  readU32,
  stringAttribute,
} from "../netlink/attribute.ts";
import { encodeMessage, NLM_F_REQUEST } from "../netlink/message.ts";

/** linux/genetlink.h: the controller's fixed family id. */
export const GENL_ID_CTRL = 0x10;
/** Controller commands: a family (the reply to GETFAMILY, and the notification of a new one). */
export const CTRL_CMD_NEWFAMILY = 1;
/** A family was unregistered (notification). */
export const CTRL_CMD_DELFAMILY = 2;
/** Ask for a family by name. */
export const CTRL_CMD_GETFAMILY = 3;
/** Controller attributes. */
export const CTRL_ATTR_FAMILY_ID = 1;
/** Family name (string). */
export const CTRL_ATTR_FAMILY_NAME = 2;
/** Family version (u32). */
const CTRL_ATTR_VERSION = 3;
/** Multicast groups (nest of nests). */
export const CTRL_ATTR_MCAST_GROUPS = 7;
/** Group name (string). */
export const CTRL_ATTR_MCAST_GRP_NAME = 1;
/** Group id (u32). */
export const CTRL_ATTR_MCAST_GRP_ID = 2;
/**
 * nlctrl's one multicast group, "notify": net/netlink/genetlink.c gives the controller's groups
 * ids from GENL_ID_CTRL on (genl_validate_assign_mc_groups), so it is always 0x10. The controller
 * sends CTRL_CMD_NEWFAMILY / CTRL_CMD_DELFAMILY to it whenever a module registers or unregisters a
 * family, to every network namespace for a netnsok family such as Jool's.
 */
export const GENL_CTRL_NOTIFY_GROUP = 0x10;
/** Size of `struct genlmsghdr`. */
export const GENL_HDRLEN = 4;

/** A genlmsghdr. */
export interface GenlHeader {
  /** Command. */
  readonly cmd: number;
  /** Family interface version. */
  readonly version: number;
}

/**
 * Encodes a genlmsghdr.
 *
 * @param header cmd and version
 * @returns 4 bytes
 */
export function encodeGenlHeader(header: GenlHeader): Uint8Array<ArrayBuffer> {
  return Uint8Array.of(header.cmd, header.version, 0, 0);
}

/**
 * Decodes a genlmsghdr.
 *
 * @param body a netlink message body
 * @returns the header
 * @throws {RangeError} when the body is shorter than 4 bytes
 */
export function decodeGenlHeader(body: Uint8Array): GenlHeader {
  if (body.length < GENL_HDRLEN) throw new RangeError(`truncated genlmsghdr: ${body.length} bytes`);
  return { cmd: body[0], version: body[1] };
}

/**
 * Builds the CTRL_CMD_GETFAMILY request for a family name.
 *
 * @param name family name ("Jool")
 * @param seq sequence number
 * @param pid our port id (0 lets the kernel fill it)
 * @returns the message
 * @example
 * ```ts
 * getFamilyRequest("Jool", 1, 0).length; // 32
 * ```
 */
export function getFamilyRequest(name: string, seq: number, pid: number): Uint8Array<ArrayBuffer> {
  return encodeMessage(
    { type: GENL_ID_CTRL, flags: NLM_F_REQUEST, seq, pid },
    concat(
      encodeGenlHeader({ cmd: CTRL_CMD_GETFAMILY, version: 1 }),
      stringAttribute(CTRL_ATTR_FAMILY_NAME, name),
    ),
  );
}

/** What the controller says of a family. */
export interface FamilyInfo {
  /** Family name. */
  readonly name: string;
  /** Family id: the nlmsg type of its messages. */
  readonly id: number;
  /** Family version. */
  readonly version: number;
  /** Multicast groups by name. */
  readonly groups: ReadonlyMap<string, number>;
}

/**
 * Decodes a CTRL_CMD_NEWFAMILY reply body.
 *
 * @param body the netlink message body (genlmsghdr + attributes)
 * @returns the family
 * @throws {RangeError} when the reply is malformed or lacks the family id
 */
export function parseFamilyReply(body: Uint8Array): FamilyInfo {
  decodeGenlHeader(body);
  let name = "";
  let id = -1;
  let version = 0;
  const groups = new Map<string, number>();
  for (const a of parseAttributes(body.subarray(GENL_HDRLEN))) {
    if (a.type === CTRL_ATTR_FAMILY_ID) id = readU16(a);
    else if (a.type === CTRL_ATTR_FAMILY_NAME) name = readString(a);
    else if (a.type === CTRL_ATTR_VERSION) version = readU32(a);
    else if (a.type === CTRL_ATTR_MCAST_GROUPS) {
      for (const group of parseAttributes(a.payload)) {
        let groupName: string | undefined;
        let groupId: number | undefined;
        for (const g of parseAttributes(group.payload)) {
          if (g.type === CTRL_ATTR_MCAST_GRP_NAME) groupName = readString(g);
          else if (g.type === CTRL_ATTR_MCAST_GRP_ID) groupId = readU32(g);
        }
        if (groupName !== undefined && groupId !== undefined) groups.set(groupName, groupId);
      }
    }
  }
  if (id < 0) throw new RangeError("controller reply without CTRL_ATTR_FAMILY_ID");
  return { name, id, version, groups };
}
