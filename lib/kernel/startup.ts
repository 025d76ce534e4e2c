/**
 * What joold must know before it can serve a Jool instance, asked over a connection before the
 * channel exists: the module version (sysfs, option or a fallback), family "Jool" and its "joold"
 * group (through nlctrl), whether the instance is alive, and its ss-enabled global (turned on with
 * `enableSync`). The channel is built from the values this returns.
 *
 * @module
 */

import { readSmallFile } from "../../ffi/libc.ts";
import { ERRNO } from "../../ffi/errno.ts";
import { getFamilyRequest, parseFamilyReply } from "../genetlink/controller.ts";
import type { NetlinkConn } from "../netlink/conn.ts";
import {
  decodeJoolMessage,
  errorReport,
  globalU8,
  IHS_ALIVE,
  JNLAG_JOOLD_ENABLED,
  JNLAIS_STATUS,
  type JoolMessage,
  joolRequest,
  ssEnabledAttribute,
} from "../jool/message.ts";
import { commandsFor, type JoolVersion, packVersion, parseVersion } from "../jool/version.ts";
import { type Pool6, pool6FromGlobals } from "../jool/translate.ts";
import { decodeTimeouts, type SessionTimeouts } from "../jool/timeouts.ts";
import { JoolNotLoadedError, KernelError } from "./error.ts";

/** Where the module reports its version. */
export const MODULE_VERSION_FILE = "/sys/module/jool/version";
/** Version spoken when the module's version cannot be read (any 4.1.x kernel accepts it). */
export const FALLBACK_VERSION: JoolVersion = { major: 4, minor: 1, revision: 13, development: 0 };

/**
 * Where the version came from: the module's sysfs file, the caller, the fallback, or (later, on
 * the channel) the first batch after a fallback.
 */
export type VersionSource = "sysfs" | "option" | "fallback" | "batch";

/** What the kernel said at startup. */
export interface KernelStartup {
  /** The module version requests are sent with. */
  readonly version: JoolVersion;
  /** Where it came from (never "batch" at startup). */
  readonly versionSource: VersionSource;
  /** Whether the instance exists right now. */
  readonly instanceAlive: boolean;
  /** Its ss-enabled global, when the instance exists and the kernel said. */
  readonly syncEnabled: boolean | undefined;
  /** The instance's pool6, when it exists, has one and the kernel said (`"translate sessions"`). */
  readonly pool6?: Pool6;
  /**
   * The instance's session timeouts (GLOBAL_FOREACH; Jool's defaults for any it did not give), when
   * the instance exists: the meaning checks clamp the peers' expirations to them.
   */
  readonly timeouts?: SessionTimeouts;
  /** Jool's family id. */
  readonly familyId: number;
  /** The "joold" multicast group's id. */
  readonly groupId: number;
}

/** What startup needs to know. */
export interface StartupOptions {
  /** The Jool instance. */
  readonly instance: string;
  /** Turn ss-enabled on when it is off. */
  readonly enableSync?: boolean;
  /** The module version; read from {@linkcode MODULE_VERSION_FILE} when omitted. */
  readonly moduleVersion?: JoolVersion;
  /** How long each request waits for its reply, ms (default 5000). */
  readonly replyTimeoutMs?: number;
}

/**
 * Reads the loaded module's version from {@linkcode MODULE_VERSION_FILE}.
 *
 * @returns the version, or undefined when the file is missing or unreadable
 */
export function readModuleVersion(): JoolVersion | undefined {
  const text = readSmallFile(MODULE_VERSION_FILE); // through libc: Deno lets only -A read /sys
  if (text === undefined) return undefined;
  try {
    return parseVersion(text);
  } catch {
    return undefined;
  }
}

/**
 * Resolves everything the channel is built from, over `conn` (before it joins any group).
 *
 * @param conn the connection
 * @param options instance, enableSync, version, timeout
 * @returns what the kernel said
 * @throws {JoolNotLoadedError} when the family is missing
 * @throws {KernelError} when the kernel refuses (EPERM, version mismatch)
 * @throws {Error} when the family has no "joold" group or a reply does not come
 * @example
 * ```ts ignore
 * const startup = await resolveStartup(conn, { instance: "default" });
 * ```
 */
export async function resolveStartup(
  conn: NetlinkConn,
  options: StartupOptions,
): Promise<KernelStartup> {
  const timeout = options.replyTimeoutMs ?? 5000;
  const { instance } = options;
  const fromSys = options.moduleVersion === undefined ? readModuleVersion() : undefined;
  const version = options.moduleVersion ?? fromSys ?? FALLBACK_VERSION;
  const versionSource = options.moduleVersion ? "option" : fromSys ? "sysfs" : "fallback";

  const family = await conn.request(
    getFamilyRequest("Jool", 0, conn.portId),
    "CTRL_CMD_GETFAMILY",
    timeout,
  );
  if (family.kind === "error" && family.error.errno === ERRNO.ENOENT) {
    throw new JoolNotLoadedError();
  }
  if (family.kind !== "reply") {
    const e = family.kind === "error" ? family.error : { errno: 0, extAck: "" };
    throw new KernelError("CTRL_CMD_GETFAMILY", e.errno, e.extAck, instance);
  }
  const { id: familyId, groups } = parseFamilyReply(family.message.body);
  const groupId = groups.get("joold");
  if (groupId === undefined) {
    throw new Error(
      `Jool's family has no "joold" multicast group (groups: ${
        [...groups.keys()].join(", ") || "none"
      }): this Jool is too old or not a NAT64 build`,
    );
  }

  const commands = commandsFor(version);
  const target = { familyId, version: packVersion(version), iname: instance, seq: 0 };
  const jool = async (cmd: number, op: string, attributes?: Uint8Array): Promise<JoolMessage> => {
    const r = await conn.request(
      joolRequest({ ...target, pid: conn.portId }, cmd, attributes),
      op,
      timeout,
    );
    if (r.kind === "error") throw new KernelError(op, r.error.errno, r.error.extAck, instance);
    if (r.kind === "ack") throw new KernelError(op, 0, "", instance); // as the kernel never does
    const message = decodeJoolMessage(r.message);
    const report = errorReport(message);
    if (report !== null) throw new KernelError(op, report.code, report.message, instance);
    return message;
  };
  /** Runs a request; a missing instance gives `missing` instead of an error. */
  const unlessMissing = async <T>(request: () => Promise<T>, missing: T): Promise<T> => {
    try {
      return await request();
    } catch (error) {
      if (error instanceof KernelError && error.instanceMissing) return missing;
      throw error;
    }
  };
  let pool6: Pool6 | undefined;
  let timeouts: SessionTimeouts | undefined;
  const readSyncEnabled = () =>
    unlessMissing(async () => {
      const globals = await jool(commands.GLOBAL_FOREACH, "GLOBAL_FOREACH");
      pool6 = pool6FromGlobals(globals.attributes);
      timeouts = decodeTimeouts(globals.attributes);
      const value = globalU8(globals, JNLAG_JOOLD_ENABLED);
      return value === undefined ? undefined : value !== 0;
    }, undefined);

  const instanceAlive = await unlessMissing(
    async () =>
      globalU8(await jool(commands.INSTANCE_HELLO, "INSTANCE_HELLO"), JNLAIS_STATUS) === IHS_ALIVE,
    false,
  );
  let syncEnabled: boolean | undefined;
  if (instanceAlive) {
    syncEnabled = await readSyncEnabled();
    if (syncEnabled === false && options.enableSync) {
      await jool(commands.GLOBAL_UPDATE, "GLOBAL_UPDATE ss-enabled", ssEnabledAttribute(true));
      syncEnabled = await readSyncEnabled();
    }
  }
  const known = { ...(pool6 === undefined ? {} : { pool6 }), ...(timeouts ? { timeouts } : {}) };
  return { version, versionSource, instanceAlive, syncEnabled, ...known, familyId, groupId };
}
