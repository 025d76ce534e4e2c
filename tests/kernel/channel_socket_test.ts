/**
 * The kernel channel over real netlink sockets: the fake Jool kernel on NETLINK_USERSOCK (joining
 * its multicast group needs root), and the real kernel's controller on NETLINK_GENERIC (any user).
 * What is not about sockets is tested through the twin: channel_test.ts.
 */
import assert from "node:assert/strict";
import { createCounters } from "../../lib/counters.ts";
import { COMMANDS_4_1, parseVersion } from "../../lib/jool/version.ts";
import { JoolNotLoadedError, ReceiveOverrunError } from "../../lib/kernel/error.ts";
import { openKernel } from "../../lib/kernel/open.ts";
import { NETLINK_GENERIC, NETLINK_USERSOCK } from "../../lib/netlink/conn.ts";
import { Reactor } from "../../lib/reactor.ts";
import { FakeKernel } from "../_fake_kernel.ts";
import { fixture } from "../_fixtures.ts";
import { waitFor } from "../_udp.ts";

const isRoot = Deno.uid() === 0;
const ROOT_ONLY = " (skipped: needs root for NETLINK_USERSOCK multicast membership)";

async function setup(receiveBuffer?: number) {
  const kernel = new FakeKernel("4.1.13");
  const server = kernel.start();
  const reactor = new Reactor();
  const running = reactor.run();
  const counters = createCounters();
  const { channel } = await openKernel(reactor, {
    instance: "default",
    counters,
    protocol: NETLINK_USERSOCK,
    peerPortId: kernel.portId,
    moduleVersion: parseVersion("4.1.13"),
    receiveBuffer,
  });
  const batches: Uint8Array[] = [];
  const errors: Error[] = [];
  channel.onBatch((p) => batches.push(p.slice()));
  channel.onError((e) => errors.push(e));
  const teardown = async () => {
    channel.close();
    reactor.stop();
    await running;
    server.stop();
    kernel.close();
  };
  return { kernel, channel, counters, batches, errors, teardown };
}

Deno.test({
  name:
    `kernel channel on a socket: batches in the kernel's and the general shapes reach onBatch, each ACKed${
      isRoot ? "" : ROOT_ONLY
    }`,
  ignore: !isRoot,
  async fn() {
    const t = await setup();
    try {
      const one = fixture("4.1.13", "d-udp-payload-1session");
      const four = fixture("4.1.13", "d-udp-payload-4sessions");
      t.kernel.sendBatch(t.channel.portId, one);
      t.kernel.sendBatch(t.channel.portId, one, "other");
      t.kernel.sendBatch(t.channel.portId, four, "default", "two-in-one");
      t.kernel.sendBatch(t.channel.portId, one, "default", "reordered");
      await waitFor(() => t.kernel.requests(COMMANDS_4_1.JOOLD_ACK).length === 4, "four ACKs");
      assert.deepEqual(t.batches, [one, four, four, one]);
      assert.equal(t.counters.kernelOtherInstanceBatches, 1);
      const ack = t.kernel.requests(COMMANDS_4_1.JOOLD_ACK)[0];
      const real = fixture("4.1.13", "b-joold-ack");
      assert.deepEqual(ack.bytes.subarray(16), real.subarray(16)); // all but seq/pid
      assert.deepEqual(ack.bytes.subarray(0, 8), real.subarray(0, 8));
      assert.deepEqual(t.errors, []);
    } finally {
      await t.teardown();
    }
  },
});

Deno.test({
  name:
    `kernel channel on a socket: a real receive-buffer overrun (ENOBUFS) is reported and answered with JOOLD_ADVERTISE${
      isRoot ? "" : ROOT_ONLY
    }`,
  ignore: !isRoot,
  async fn() {
    const t = await setup(2048); // tiny, so a burst overflows it
    try {
      // A synchronous burst: the reactor cannot drain meanwhile, as when the daemon stalls.
      const payload = fixture("4.1.13", "d-udp-payload-4sessions");
      for (let i = 0; i < 200; i++) t.kernel.broadcastBatch(payload);
      await waitFor(() => t.counters.kernelOverruns >= 1, "the overrun");
      await waitFor(
        () => t.kernel.requests(COMMANDS_4_1.JOOLD_ADVERTISE).length >= 1,
        "JOOLD_ADVERTISE after the overrun",
      );
      assert.ok(t.errors[0] instanceof ReceiveOverrunError);
      const n = t.batches.length;
      assert.ok(n > 0 && n < 200, `some batches arrived, some were lost: ${n}`);
    } finally {
      await t.teardown();
    }
  },
});

Deno.test("the real kernel's controller: resolving Jool on a host without it says modprobe jool", async () => {
  const reactor = new Reactor();
  try {
    await assert.rejects(
      openKernel(reactor, {
        instance: "default",
        counters: createCounters(),
        protocol: NETLINK_GENERIC,
      }),
      (e: unknown) => {
        assert.ok(e instanceof JoolNotLoadedError, String(e));
        assert.match(e.message, /modprobe jool/);
        return true;
      },
    );
  } finally {
    reactor.stop();
  }
});
