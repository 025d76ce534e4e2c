import assert from "node:assert/strict";
import { Reactor } from "../../lib/reactor.ts";
import {
  NETLINK_GENERIC,
  NETLINK_USERSOCK,
  NetlinkKernelChannel,
} from "../../lib/kernel/channel.ts";
import { JoolNotLoadedError, KernelError } from "../../lib/kernel/error.ts";
import { COMMANDS_4_1, parseVersion } from "../../lib/jool/version.ts";
import { batchPayload } from "../../lib/jool/message.ts";
import { FakeKernel } from "../_fake_kernel.ts";
import { fixture } from "../_fixtures.ts";
import { waitFor } from "../_udp.ts";

const isRoot = Deno.uid() === 0;
const ROOT_ONLY = " (skipped: needs root for NETLINK_USERSOCK multicast membership)";

async function setup(
  recording: "4.1.9" | "4.1.13" = "4.1.13",
  prepare: (k: FakeKernel) => void = () => {},
  enableSync = false,
) {
  const kernel = new FakeKernel(recording);
  prepare(kernel);
  const server = kernel.start();
  const reactor = new Reactor();
  const running = reactor.run();
  const { channel, status } = await NetlinkKernelChannel.open(reactor, {
    instance: "default",
    protocol: NETLINK_USERSOCK,
    peerPortId: kernel.portId,
    moduleVersion: parseVersion(recording),
  }, enableSync);
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
  return { kernel, channel, status, batches, errors, teardown };
}

for (const recording of ["4.1.9", "4.1.13"] as const) {
  Deno.test({
    name:
      `kernel channel (${recording}): batches of our instance reach onBatch, each followed by one ACK${
        isRoot ? "" : ROOT_ONLY
      }`,
    ignore: !isRoot,
    async fn() {
      const t = await setup(recording);
      try {
        assert.equal(t.status.instanceAlive, true);
        assert.equal(t.status.syncEnabled, true);
        const one = fixture(recording, "d-udp-payload-1session");
        const four = fixture(recording, "d-udp-payload-4sessions");
        t.kernel.sendBatch(t.channel.portId, one);
        t.kernel.sendBatch(t.channel.portId, one, "other");
        t.kernel.sendBatch(t.channel.portId, four);
        await waitFor(() => t.kernel.requests(COMMANDS_4_1.JOOLD_ACK).length === 2, "two ACKs");
        assert.deepEqual(t.batches, [one, four]);
        assert.equal(t.channel.counters.otherInstances, 1);
        // The ACK is byte-exact as the C daemon sends it (captured), but for seq/pid.
        const ack = t.kernel.requests(COMMANDS_4_1.JOOLD_ACK)[0];
        const real = fixture(recording, "b-joold-ack");
        assert.deepEqual(ack.bytes.subarray(16), real.subarray(16));
        assert.deepEqual(ack.bytes.subarray(0, 8), real.subarray(0, 8)); // length, type, flags
      } finally {
        await t.teardown();
      }
    },
  });

  Deno.test({
    name: `kernel channel (${recording}): add() frames the datagram as the captured JOOLD_ADD${
      isRoot ? "" : ROOT_ONLY
    }`,
    ignore: !isRoot,
    async fn() {
      const t = await setup(recording);
      try {
        const payload = fixture(recording, "d-udp-payload-4sessions");
        t.channel.add(payload);
        await waitFor(() => t.kernel.requests(COMMANDS_4_1.JOOLD_ADD).length === 1, "the ADD");
        const add = t.kernel.requests(COMMANDS_4_1.JOOLD_ADD)[0];
        const real = fixture(recording, "c-joold-add-4sessions");
        assert.equal(add.bytes.length, real.length);
        assert.deepEqual(add.bytes.subarray(16), real.subarray(16)); // all but seq/pid
        assert.deepEqual(batchPayload(add.jool!), payload);
        assert.equal(t.channel.counters.adds, 1);
        assert.equal(t.channel.counters.addBytes, payload.length);
      } finally {
        await t.teardown();
      }
    },
  });
}

Deno.test({
  name: `kernel channel: a kernel error reply to JOOLD_ADD is reported with its words${
    isRoot ? "" : ROOT_ONLY
  }`,
  ignore: !isRoot,
  async fn() {
    const t = await setup("4.1.13", (k) => {
      k.state.addError = [22, "We're out of sync: collision"];
    });
    try {
      t.channel.add(fixture("4.1.13", "d-udp-payload-1session"));
      await waitFor(() => t.errors.length === 1, "the error");
      assert.ok(t.errors[0] instanceof KernelError);
      assert.equal(
        t.errors[0].message,
        `Jool refused JOOLD_ADD (EINVAL): "We're out of sync: collision"`,
      );
    } finally {
      await t.teardown();
    }
  },
});

Deno.test({
  name: `kernel channel: a missing instance is detected at startup and named in ADD errors${
    isRoot ? "" : ROOT_ONLY
  }`,
  ignore: !isRoot,
  async fn() {
    const t = await setup("4.1.13", (k) => {
      k.state.instanceAlive = false;
    });
    try {
      assert.equal(t.status.instanceAlive, false);
      assert.equal(t.status.syncEnabled, undefined);
      t.channel.add(fixture("4.1.13", "d-udp-payload-1session"));
      await waitFor(() => t.errors.length === 1, "the error");
      assert.equal(
        t.errors[0].message,
        `no Jool instance named "default" in this network namespace (JOOLD_ADD): create it (jool instance add) or fix --instance`,
      );
    } finally {
      await t.teardown();
    }
  },
});

Deno.test({
  name: `kernel channel: ss-enabled off is reported, and turned on with enableSync${
    isRoot ? "" : ROOT_ONLY
  }`,
  ignore: !isRoot,
  async fn() {
    const off = await setup("4.1.13", (k) => {
      k.state.ssEnabled = false;
    });
    try {
      assert.equal(off.status.syncEnabled, false);
      assert.equal(off.kernel.requests(COMMANDS_4_1.GLOBAL_UPDATE).length, 0);
    } finally {
      await off.teardown();
    }
    const on = await setup("4.1.13", (k) => {
      k.state.ssEnabled = false;
    }, true);
    try {
      assert.equal(on.status.syncEnabled, true);
      const [update] = on.kernel.requests(COMMANDS_4_1.GLOBAL_UPDATE);
      // GLOBALS|NESTED { JNLAG_JOOLD_ENABLED (27) = u8 1 }
      assert.deepEqual(
        Array.from(update.jool!.attributes),
        [12, 0, 2, 0x80, 5, 0, 27, 0, 1, 0, 0, 0],
      );
    } finally {
      await on.teardown();
    }
  },
});

Deno.test({
  name: `kernel channel: a module that is not loaded gives the modprobe hint${
    isRoot ? "" : ROOT_ONLY
  }`,
  ignore: !isRoot,
  async fn() {
    const kernel = new FakeKernel();
    kernel.state.familyMissing = true;
    const server = kernel.start();
    const reactor = new Reactor();
    try {
      await assert.rejects(
        NetlinkKernelChannel.open(reactor, {
          instance: "default",
          protocol: NETLINK_USERSOCK,
          peerPortId: kernel.portId,
        }),
        JoolNotLoadedError,
      );
    } finally {
      reactor.stop();
      server.stop();
      kernel.close();
    }
  },
});

Deno.test("the real kernel's controller: resolving Jool on a host without it says modprobe jool", async () => {
  const reactor = new Reactor();
  try {
    await assert.rejects(
      NetlinkKernelChannel.open(reactor, { instance: "default", protocol: NETLINK_GENERIC }),
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

Deno.test({
  name:
    `kernel channel: a receive-buffer overrun (ENOBUFS) is counted, reported, and answered with JOOLD_ADVERTISE${
      isRoot ? "" : ROOT_ONLY
    }`,
  ignore: !isRoot,
  async fn() {
    const kernel = new FakeKernel("4.1.13");
    const server = kernel.start();
    const reactor = new Reactor();
    const running = reactor.run();
    const { channel } = await NetlinkKernelChannel.open(reactor, {
      instance: "default",
      protocol: NETLINK_USERSOCK,
      peerPortId: kernel.portId,
      moduleVersion: parseVersion("4.1.13"),
      receiveBuffer: 2048, // tiny, so a burst overflows it
    });
    const errors: Error[] = [];
    let batches = 0;
    channel.onError((e) => errors.push(e));
    channel.onBatch(() => batches++);
    try {
      // A synchronous burst: the reactor cannot drain meanwhile, as when the daemon stalls.
      const payload = fixture("4.1.13", "d-udp-payload-4sessions");
      for (let i = 0; i < 200; i++) kernel.broadcastBatch(payload);
      await waitFor(() => channel.counters.overruns >= 1, "the overrun");
      await waitFor(
        () => kernel.requests(COMMANDS_4_1.JOOLD_ADVERTISE).length >= 1,
        "JOOLD_ADVERTISE after the overrun",
      );
      assert.match(
        errors[0].message,
        /receive buffer overrun \(ENOBUFS\): sessions from the kernel were lost; asking it to advertise/,
      );
      assert.ok(batches > 0 && batches < 200, `some batches arrived, some were lost: ${batches}`);
    } finally {
      channel.close();
      reactor.stop();
      await running;
      server.stop();
      kernel.close();
    }
  },
});

Deno.test("the real kernel's controller resolves nlctrl itself (family id 0x10)", async () => {
  const { getFamilyRequest, parseFamilyReply } = await import("../../lib/genetlink/controller.ts");
  const libc = await import("../../ffi/libc.ts");
  const { sockaddrNl } = await import("../../ffi/sockaddr.ts");
  const { parseMessages } = await import("../../lib/netlink/message.ts");
  const fd = libc.socket(libc.AF_NETLINK, libc.SOCK_RAW, NETLINK_GENERIC);
  try {
    libc.bind(fd, sockaddrNl(0));
    assert.ok(libc.sendto(fd, getFamilyRequest("nlctrl", 7, 0), sockaddrNl(0)) > 0);
    const buffer = new Uint8Array(8192);
    let n = -1;
    await waitFor(() => (n = libc.recv(fd, buffer)) > 0, "the controller's reply");
    const [reply] = parseMessages(buffer.subarray(0, n));
    assert.equal(reply.seq, 7);
    const family = parseFamilyReply(reply.body);
    assert.deepEqual([family.name, family.id], ["nlctrl", 0x10]);
    assert.ok(family.groups.has("notify"), "nlctrl has its notify group");
  } finally {
    libc.close(fd);
  }
});

Deno.test("KernelError words the well-known refusals for an operator", () => {
  assert.equal(
    new KernelError("JOOLD_ADD", 1, "CAP_NET_ADMIN capability required.", "default").message,
    "Jool refused JOOLD_ADD (EPERM): joold needs CAP_NET_ADMIN (run it as root or grant the capability)",
  );
  assert.equal(
    new KernelError(
      "INSTANCE_HELLO",
      22,
      "Version mismatch. The userspace client's version is 4.1.13.0,\nbut the kernel module is 4.2.0.0.\nPlease update the userspace client.",
      "default",
    ).message,
    "Jool version mismatch (INSTANCE_HELLO): joold spoke 4.1.13.0, the kernel module is 4.2.0.0: Jool accepts only its own major.minor version; use a joold release that supports it",
  );
  const missing = new KernelError(
    "JOOLD_ACK",
    3,
    "This namespace lacks an instance named 'x'.",
    "x",
  );
  assert.ok(missing.instanceMissing);
  assert.equal(
    missing.message,
    `no Jool instance named "x" in this network namespace (JOOLD_ACK): create it (jool instance add) or fix --instance`,
  );
});

Deno.test({
  name:
    `kernel channel: each batch of ours is ACKed before its handler runs: a slow handler does not delay the ACK${
      isRoot ? "" : ROOT_ONLY
    }`,
  ignore: !isRoot,
  async fn() {
    const t = await setup("4.1.13");
    try {
      const handled: number[] = [];
      const acksSeenByHandler: number[] = [];
      t.channel.onBatch((p) => {
        acksSeenByHandler.push(t.channel.counters.acks);
        const until = performance.now() + 3; // a slow handler: 3 ms
        while (performance.now() < until) { /* busy */ }
        handled.push(p.length);
      });
      const one = fixture("4.1.13", "d-udp-payload-1session");
      t.kernel.sendBatch(t.channel.portId, one);
      t.kernel.sendBatch(t.channel.portId, one, "other");
      t.kernel.sendBatch(t.channel.portId, one);
      await waitFor(() => t.kernel.requests(COMMANDS_4_1.JOOLD_ACK).length === 2, "two ACKs");
      const s = t.channel.ackLatency.summary();
      assert.equal(handled.length, 2);
      assert.equal(s.count, 2); // the other instance's batch is neither ACKed nor measured
      // The ACK goes out before the 3 ms handler: the kernel's wait excludes the forwarding.
      assert.ok(s.max < 3000, `the handler delayed the ACK: ${JSON.stringify(s)}`);
      // And the ACK really was on the wire before the handler finished: the handler saw it.
      assert.equal(acksSeenByHandler[0], 1);
    } finally {
      await t.teardown();
    }
  },
});
