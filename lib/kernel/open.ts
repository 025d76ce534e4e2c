/**
 * Opens the kernel side in its three steps: a netlink connection (a real socket, or the twin a
 * test passes in), startup over it (lib/kernel/startup.ts), then the channel built from what
 * startup resolved, once it has joined the "joold" group and nlctrl's "notify" group.
 *
 * @module
 */

import type { Counters } from "../counters.ts";
import { GENL_CTRL_NOTIFY_GROUP } from "../genetlink/controller.ts";
import type { JoolVersion } from "../jool/version.ts";
import { type NetlinkConn, openNetlink } from "../netlink/conn.ts";
import type { Reactor } from "../reactor.ts";
import { NetlinkKernelChannel } from "./channel.ts";
import { type KernelStartup, resolveStartup } from "./startup.ts";

/** How to open the kernel side. */
export interface KernelOptions {
  /** The Jool instance to serve. */
  readonly instance: string;
  /** The daemon's counters (the channel owns their `kernel*` fields). */
  readonly counters: Counters;
  /** Turn ss-enabled on when it is off. */
  readonly enableSync?: boolean;
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
  /** A connection to use instead of opening a socket (tests: the twin of lib/netlink/twin.ts). */
  readonly conn?: NetlinkConn;
}

/**
 * Opens the kernel channel: connects, resolves family, group, instance, version and ss-enabled,
 * joins the group and starts receiving.
 *
 * @param reactor the reactor that will drive the socket
 * @param options instance, counters and the knobs above
 * @returns the channel and what the kernel said at startup
 * @throws {JoolNotLoadedError} when the family is missing
 * @throws {KernelError} when the kernel refuses (EPERM, version mismatch)
 * @throws {SystemError} when a socket call fails
 * @example
 * ```ts ignore
 * const { channel, startup } = await openKernel(reactor, { instance: "default", counters });
 * ```
 */
export async function openKernel(
  reactor: Reactor,
  options: KernelOptions,
): Promise<{ channel: NetlinkKernelChannel; startup: KernelStartup }> {
  const conn = options.conn ?? openNetlink(options);
  try {
    const startup = await resolveStartup(conn, options);
    conn.joinGroup(startup.groupId);
    // The controller's notifications: how the channel learns that the module was reloaded.
    conn.joinGroup(GENL_CTRL_NOTIFY_GROUP);
    const { instance, counters } = options;
    const channel = new NetlinkKernelChannel({ ...startup, conn, reactor, instance, counters });
    return { channel, startup };
  } catch (error) {
    conn.close();
    throw error;
  }
}
