/**
 * Test helper: one complete daemon (kernel channel, multicast channel, daemon core) in a network
 * namespace, talking real netlink bytes to an in-process fake Jool kernel. Used by the two-daemon
 * tests and the daemon benchmark.
 *
 * @module
 */

import type { NetConfig } from "../lib/config/types.ts";
import { Daemon } from "../lib/daemon.ts";
import { parseVersion, sessionFormatFor } from "../lib/jool/version.ts";
import { createCounters as createKernelCounters } from "../lib/counters.ts";
import { openKernel } from "../lib/kernel/open.ts";
import { NETLINK_USERSOCK } from "../lib/netlink/conn.ts";
import { silentLogger } from "../lib/log.ts";
import { MulticastChannel } from "../lib/net/multicast.ts";
import type { Reactor } from "../lib/reactor.ts";
import { createCounters } from "../lib/stats/counters.ts";
import { FakeKernel } from "./_fake_kernel.ts";
import type { Netns } from "./_netns.ts";

/** Starts a daemon in `ns` with its own fake kernel; `close()` undoes it all. */
export async function node(
  ns: Netns,
  reactor: Reactor,
  net: NetConfig,
  recording: "4.1.9" | "4.1.13",
) {
  // Sockets belong to the namespace they are created in: create them inside `enter` (the kernel
  // channel's socket is created synchronously, before open() first awaits).
  const kernel = ns.enter(() => new FakeKernel(recording));
  let server = kernel.start();
  const { channel } = await ns.enter(() =>
    openKernel(reactor, {
      instance: "default",
      counters: createKernelCounters(),
      protocol: NETLINK_USERSOCK,
      peerPortId: kernel.portId,
      moduleVersion: parseVersion(recording),
    })
  );
  const network = ns.enter(() => MulticastChannel.open(reactor, net));
  const counters = createCounters();
  new Daemon({
    kernel: channel,
    network,
    counters,
    log: silentLogger,
    localFormat: sessionFormatFor(parseVersion(recording)),
  }).start();
  return {
    kernel,
    channel,
    network,
    counters,
    /** Stops the background request loop (the caller then answers with `kernel.serve()`). */
    stopServing() {
      server.stop();
      server = { stop() {} };
    },
    close() {
      network.close();
      channel.close();
      server.stop();
      kernel.close();
    },
  };
}
