/**
 * Jool's Generic Netlink family over the module's lifecycle, as the kernel channel follows it: the
 * family and "joold" group ids and the module's version now, and what nlctrl's "notify" group says.
 * When the family is unregistered (`modprobe -r jool`, CTRL_CMD_DELFAMILY) nothing may go to the
 * stale id; when it is registered again (CTRL_CMD_NEWFAMILY) the new ids come from the
 * notification and the group is rejoined. A module of another numbering or session format cannot
 * be served by what the daemon was built with: that is fatal, and the daemon exits non-zero so
 * that its supervisor (systemd's Restart=on-failure) starts it afresh.
 *
 * @module
 */

import type { Counters } from "../counters.ts";
import type { FamilyInfo } from "../genetlink/controller.ts";
import {
  commandsFor,
  formatVersion,
  type JoolVersion,
  sessionFormatFor,
  unpackVersion,
} from "../jool/version.ts";
import type { NetlinkConn } from "../netlink/conn.ts";
import { JoolFamilyError, type NoticeHandler } from "./error.ts";
import type { KernelStartup, VersionSource } from "./startup.ts";

/** What the family starts from (what startup resolved) and acts through. */
export interface FamilyParts
  extends Pick<KernelStartup, "familyId" | "groupId" | "version" | "versionSource"> {
  /** Joins the new "joold" group after a reload. */
  readonly conn: Pick<NetlinkConn, "joinGroup">;
  /** The daemon's counters (`kernelFamilyRemovals`, `kernelFamilyRecoveries`). */
  readonly counters: Counters;
  /** Reads the module's version after a reload (when it came from sysfs at startup). */
  readonly moduleVersion: () => JoolVersion | undefined;
  /** Where the removal and the recovery are announced. */
  readonly notice: NoticeHandler;
  /** The family went away (after it is marked gone): settle what awaited the stale id. */
  readonly gone: () => void;
  /** The ids or the version changed: requests must be built anew. */
  readonly changed: () => void;
  /** The family came back and the group is rejoined (after the notice). */
  readonly back: () => void;
  /** A module the daemon cannot serve was loaded (the family stays gone). */
  readonly fatal: (error: JoolFamilyError) => void;
}

/**
 * The error of a request that cannot go out while the family is gone.
 *
 * @param op the request
 * @returns the error
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { familyGoneError } from "./family.ts";
 *
 * assert.match(familyGoneError("JOOLD_ADD").message, /JOOLD_ADD not sent; waiting for modprobe jool$/);
 * ```
 */
export function familyGoneError(op: string): JoolFamilyError {
  return new JoolFamilyError(
    op,
    `Jool's Generic Netlink family is gone (the module was unloaded): ${op} not sent; waiting for modprobe jool`,
  );
}

/** Jool's family as it is now. */
export class JoolFamily {
  readonly #parts: FamilyParts;
  #id: number;
  #groupId: number;
  #version: JoolVersion;
  #versionSource: VersionSource;
  #gone = false;

  /**
   * Starts from what startup resolved.
   *
   * @param parts the ids, the version and the hooks above
   */
  constructor(parts: FamilyParts) {
    this.#parts = parts;
    this.#id = parts.familyId;
    this.#groupId = parts.groupId;
    this.#version = parts.version;
    this.#versionSource = parts.versionSource;
  }

  /** The family id (it changes when the module is reloaded). */
  get id(): number {
    return this.#id;
  }

  /** The "joold" group's id. */
  get groupId(): number {
    return this.#groupId;
  }

  /** The version requests are sent with. */
  get version(): JoolVersion {
    return this.#version;
  }

  /** Where {@linkcode version} came from ("batch" once a batch replaced a fallback). */
  get versionSource(): VersionSource {
    return this.#versionSource;
  }

  /** True between CTRL_CMD_DELFAMILY and CTRL_CMD_NEWFAMILY, and after a fatal reload. */
  get gone(): boolean {
    return this.#gone;
  }

  /**
   * A batch's joolnlhdr version: it replaces a fallback version (the first one only).
   *
   * @param packed the header's packed version
   */
  observeBatch(packed: number): void {
    if (this.#versionSource !== "fallback") return;
    this.#version = unpackVersion(packed);
    this.#versionSource = "batch";
    this.#parts.changed();
  }

  /**
   * What nlctrl announced; only Jool's family matters.
   *
   * @param change a family was registered ("new") or unregistered ("del")
   * @param family the family as the controller describes it
   */
  notified(change: "new" | "del", family: FamilyInfo): void {
    if (family.name !== "Jool") return;
    if (change === "del") this.#removed(family);
    else this.#registered(family);
  }

  #removed(family: FamilyInfo): void {
    if (family.id !== this.#id || this.#gone) return;
    this.#gone = true;
    this.#parts.counters.kernelFamilyRemovals++;
    this.#parts.gone();
    this.#parts.notice(
      "warn",
      `Jool's Generic Netlink family (id ${family.id}) was unregistered: the module was unloaded; waiting for it to come back (modprobe jool)`,
    );
  }

  #registered(family: FamilyInfo): void {
    const groupId = family.groups.get("joold");
    if (groupId === undefined) {
      return this.#fatal(
        `Jool's family came back without a "joold" multicast group (groups: ${
          [...family.groups.keys()].join(", ") || "none"
        })`,
      );
    }
    const was = this.#version;
    const now = this.#versionSource === "sysfs" ? this.#parts.moduleVersion() ?? was : was;
    if (commandsFor(now) !== commandsFor(was) || sessionFormatFor(now) !== sessionFormatFor(was)) {
      return this.#fatal(
        `Jool's module was replaced: ${formatVersion(was)} -> ${
          formatVersion(now)
        }, whose commands or session format differ; exiting so that joold starts afresh for it`,
      );
    }
    try {
      this.#parts.conn.joinGroup(groupId);
    } catch (error) {
      return this.#fatal(
        `cannot join Jool's new "joold" group ${groupId}: ${(error as Error).message}`,
      );
    }
    const changed = family.id !== this.#id || groupId !== this.#groupId;
    this.#id = family.id;
    this.#groupId = groupId;
    this.#version = now;
    this.#gone = false;
    this.#parts.changed();
    this.#parts.counters.kernelFamilyRecoveries++;
    this.#parts.notice(
      "info",
      `Jool's Generic Netlink family is back (module ${
        formatVersion(now)
      }): family id ${family.id}, "joold" group ${groupId}${
        changed ? "" : " (unchanged)"
      }; rejoined`,
    );
    this.#parts.back();
  }

  #fatal(text: string): void {
    this.#gone = true;
    this.#parts.fatal(new JoolFamilyError("module reload", text));
  }
}
