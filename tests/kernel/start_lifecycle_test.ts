/**
 * The kernel lifecycle through startDaemon (the one wiring cli.ts uses), against the fake kernel on
 * a real NETLINK_USERSOCK socket driven by the reactor: the kernel's counters read while batches
 * flow, a module reload recovered in place, and --enable-sync re-applied to a re-created instance.
 */
import assert from "node:assert/strict";
import type { Config } from "../../lib/config/types.ts";
import { COMMANDS_4_1 } from "../../lib/jool/version.ts";
import { createLogger } from "../../lib/log.ts";
import { NETLINK_USERSOCK } from "../../lib/netlink/conn.ts";
import { startDaemon, SYNC_CHECK_INTERVAL_MS } from "../../lib/start.ts";
import { FakeKernel } from "../_fake_kernel.ts";
import { fixture } from "../_fixtures.ts";

const isRoot = Deno.uid() === 0;
const needsRoot = isRoot ? "" : " (skipped: needs root for NETLINK_USERSOCK)";

function config(enableSync: boolean): Config {
  return {
    mod: { instance: "default" },
    net: null,
    stats: null,
    logLevel: "info",
    enableSync,
    advertiseOnStart: false,
  };
}

async function waitFor(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test({
  name:
    `startDaemon: the kernel's counters over the reactor-driven socket, a module reload recovered in place${needsRoot}`,
  ignore: !isRoot,
  async fn() {
    const kernel = new FakeKernel("4.1.13");
    const server = kernel.start();
    const lines: string[] = [];
    try {
      const daemon = await startDaemon(config(false), {
        lingerMs: 0,
        kernel: { protocol: NETLINK_USERSOCK, peerPortId: kernel.portId },
        log: createLogger("info", (l) => lines.push(l)),
        print: () => {},
      });
      kernel.state.stats = new Map([["JSTAT_JOOLD_ACKS", 41n]]);
      const reading = daemon.readJooldStats();
      kernel.sendBatch(daemon.portId, fixture("4.1.13", "d-udp-payload-1session"));
      assert.equal((await reading)?.get("JSTAT_JOOLD_ACKS"), 41n);
      await waitFor(() => daemon.counters.kernelAcksSent === 1, "the batch's ACK");

      kernel.notifyFamily("del"); // multicast only: the unicast part to port 0 fails, as ignored
      await waitFor(() => daemon.counters.kernelFamilyRemovals === 1, "DELFAMILY");
      kernel.reload(kernel.familyId + 1, kernel.groupId + 2); // 17: not nlctrl's 16
      kernel.state.instanceAlive = true;
      kernel.notifyFamily("new");
      await waitFor(() => daemon.counters.kernelFamilyRecoveries === 1, "NEWFAMILY");
      assert.ok(
        lines.some((l) => /warn: Jool's Generic Netlink family \(id 35\) was unregistered/.test(l)),
      );
      assert.ok(
        lines.some((l) =>
          /info: Jool's Generic Netlink family is back .*family id 36, "joold" group 17; rejoined/
            .test(l)
        ),
      );
      kernel.broadcastBatch(fixture("4.1.13", "d-udp-payload-1session")); // to the new group
      await waitFor(
        () => kernel.requests(COMMANDS_4_1.JOOLD_ACK).length === 2,
        "the ACK under the new id",
      );
      assert.equal(daemon.counters.kernelBatchesReceived, 2);
      await daemon.stop();
    } finally {
      server.stop();
      kernel.close();
    }
  },
});

Deno.test({
  name:
    `startDaemon --enable-sync: a re-created instance with ss-enabled off gets it on again${needsRoot}`,
  ignore: !isRoot,
  async fn() {
    const kernel = new FakeKernel("4.1.13");
    const server = kernel.start();
    const lines: string[] = [];
    try {
      const daemon = await startDaemon(config(true), {
        lingerMs: 0,
        kernel: { protocol: NETLINK_USERSOCK, peerPortId: kernel.portId },
        log: createLogger("info", (l) => lines.push(l)),
        print: () => {},
      });
      kernel.state.ssEnabled = false; // `jool instance remove; jool instance add`
      await waitFor(
        () => kernel.state.ssEnabled,
        "ss-enabled on again",
        SYNC_CHECK_INTERVAL_MS * 3,
      );
      await waitFor(() => daemon.counters.kernelSyncReenabled === 1, "the counter");
      assert.ok(
        lines.some((l) =>
          /info: ss-enabled was off on instance "default" \(re-created\?\): turned it on again/
            .test(l)
        ),
      );
      await daemon.stop();
    } finally {
      server.stop();
      kernel.close();
    }
  },
});
