/**
 * Test helper: one complete daemon, started by the daemon's own wiring (`startDaemon`, as
 * `cli.ts` starts it), in a network namespace, talking real netlink bytes to an in-process fake
 * Jool kernel. Used by the two-daemon tests and the daemon benchmark.
 *
 * @module
 */

import type { Config, NetConfig } from "../lib/config/types.ts";
import { parseVersion } from "../lib/jool/version.ts";
import { NETLINK_USERSOCK } from "../lib/netlink/conn.ts";
import type { Logger } from "../lib/log.ts";
import type { Reactor } from "../lib/reactor.ts";
import { startDaemon, type StartParts } from "../lib/start.ts";
import { FakeKernel } from "./_fake_kernel.ts";
import type { Netns } from "./_netns.ts";

/**
 * Starts a daemon in `ns` with its own fake kernel; `close()` undoes it all.
 *
 * @param ns the namespace its sockets live in
 * @param reactor a running reactor (the caller stops it)
 * @param net the sync group
 * @param recording the Jool version the fake kernel speaks
 * @param log where the daemon's events go (default: nowhere)
 * @param extra configuration and start parts beyond those (metrics, stats, a kernel stats source),
 *   and the fake kernel's state (its instance's timeouts...)
 * @returns the daemon's handle, its fake kernel, and `close()`
 */
export async function node(
  ns: Netns,
  reactor: Reactor,
  net: NetConfig,
  recording: "4.1.9" | "4.1.13",
  log?: Logger,
  extra: {
    config?: Partial<Config>;
    parts?: Partial<StartParts>;
    kernelState?: Partial<FakeKernel["state"]>;
  } = {},
) {
  // Sockets belong to the namespace they are created in.
  const kernel = ns.enter(() => new FakeKernel(recording));
  Object.assign(kernel.state, extra.kernelState);
  let server = kernel.start();
  const config: Config = {
    mod: { instance: "default" },
    net,
    stats: null,
    logLevel: "info",
    enableSync: false,
    advertiseOnStart: false,
    ...extra.config,
  };
  const daemon = await startDaemon(config, {
    reactor,
    log,
    kernel: {
      protocol: NETLINK_USERSOCK,
      peerPortId: kernel.portId,
      moduleVersion: parseVersion(recording),
    },
    inNamespace: (open) => ns.enter(open),
    ...extra.parts,
  });
  return {
    kernel,
    daemon,
    counters: daemon.counters,
    /** Stops the background request loop (the caller then answers with `kernel.serve()`). */
    stopServing() {
      server.stop();
      server = { stop() {} };
    },
    async close() {
      await daemon.stop();
      server.stop();
      kernel.close();
    },
  };
}
