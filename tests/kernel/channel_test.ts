/**
 * The kernel channel over the in-memory twin (lib/netlink/twin.ts): the fake Jool kernel's
 * behaviour (tests/_fake_kernel.ts) gets the exact request bytes and its replies and batches are
 * what the channel receives. No socket, no root. The same channel over a real NETLINK_USERSOCK
 * socket: channel_socket_test.ts.
 */
import { JOOL_DEFAULT_TIMEOUTS } from "../../lib/jool/timeouts.ts";
import { GENL_CTRL_NOTIFY_GROUP } from "../../lib/genetlink/controller.ts";
import assert from "node:assert/strict";
import { createCounters } from "../../lib/counters.ts";
import { batchPayload } from "../../lib/jool/message.ts";
import {
  COMMANDS_4_1,
  type JoolVersion,
  packVersion,
  parseVersion,
} from "../../lib/jool/version.ts";
import {
  JoolNotLoadedError,
  KernelError,
  KernelSendError,
  MalformedKernelMessageError,
  ReceiveOverrunError,
} from "../../lib/kernel/error.ts";
import { openKernel } from "../../lib/kernel/open.ts";
import { FALLBACK_VERSION, MODULE_VERSION_FILE } from "../../lib/kernel/startup.ts";
import { encodeMessage, NLMSG_ERROR } from "../../lib/netlink/message.ts";
import { dialTwin } from "../../lib/netlink/twin.ts";
import { Reactor } from "../../lib/reactor.ts";
import { FakeJool } from "../_fake_kernel.ts";
import { fixture, fixtureIndex, VERSIONS } from "../_fixtures.ts";

type Recording = "4.1.9" | "4.1.13";

/** Lets the twin's scheduled deliveries run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

async function setup(
  recording: Recording = "4.1.13",
  options: {
    prepare?: (k: FakeJool) => void;
    enableSync?: boolean;
    moduleVersion?: JoolVersion | null;
    portId?: number;
    seq?: number;
  } = {},
) {
  const jool = new FakeJool(recording);
  options.prepare?.(jool);
  const { conn, twin } = dialTwin(jool.answer, { portId: options.portId, seq: options.seq });
  const reactor = new Reactor(); // the twin needs no reactor turn: it schedules its own drains
  const counters = createCounters();
  const { channel, startup } = await openKernel(reactor, {
    instance: "default",
    counters,
    conn,
    enableSync: options.enableSync,
    moduleVersion: options.moduleVersion === null
      ? undefined
      : options.moduleVersion ?? parseVersion(recording),
  });
  const batches: Uint8Array[] = [];
  const errors: Error[] = [];
  channel.onBatch((p) => batches.push(p.slice()));
  channel.onError((e) => errors.push(e));
  const multicast = (datagram: Uint8Array) =>
    assert.ok(twin.multicast(jool.groupId, datagram), "the channel joined the joold group");
  const acks = () => jool.requests(COMMANDS_4_1.JOOLD_ACK);
  const teardown = () => {
    channel.close();
    reactor.stop();
  };
  return { jool, twin, channel, startup, counters, batches, errors, multicast, acks, teardown };
}

for (const recording of VERSIONS) {
  Deno.test(`kernel channel (${recording}): startup resolves family, group, instance and ss-enabled over the connection`, async () => {
    const t = await setup(recording);
    try {
      const index = fixtureIndex(recording);
      assert.deepEqual(t.startup, {
        version: parseVersion(recording),
        versionSource: "option",
        instanceAlive: true,
        syncEnabled: true,
        familyId: index.family_id,
        groupId: index.joold_mcast_group_id,
        // The fake's GLOBAL_FOREACH gives no timeouts: Jool's defaults stand.
        timeouts: JOOL_DEFAULT_TIMEOUTS,
      });
      // "joold", and nlctrl's "notify" (how a module reload is noticed).
      assert.deepEqual([...t.twin.groups], [index.joold_mcast_group_id, GENL_CTRL_NOTIFY_GROUP]);
      // GETFAMILY, INSTANCE_HELLO, GLOBAL_FOREACH: each a byte-valid request the fake decoded.
      assert.deepEqual(t.jool.received.map((r) => r.jool?.cmd ?? "ctrl"), ["ctrl", 2, 8]);
      assert.deepEqual(
        t.jool.received[0].bytes.subarray(16),
        fixture(recording, "e-ctrl-getfamily-request").subarray(16),
      );
    } finally {
      t.teardown();
    }
  });

  Deno.test(`kernel channel (${recording}): batches of our instance reach onBatch, each ACKed; other instances are counted and ignored`, async () => {
    const t = await setup(recording);
    try {
      const one = fixture(recording, "d-udp-payload-1session");
      const four = fixture(recording, "d-udp-payload-4sessions");
      t.multicast(t.jool.batch(one));
      t.multicast(t.jool.batch(one, "other"));
      t.multicast(t.jool.batch(four));
      await settle();
      assert.deepEqual(t.batches, [one, four]);
      assert.equal(t.acks().length, 2);
      assert.equal(t.counters.kernelBatchesReceived, 2);
      assert.equal(t.counters.kernelAcksSent, 2);
      assert.equal(t.counters.kernelOtherInstanceBatches, 1);
      assert.deepEqual(t.errors, []);
    } finally {
      t.teardown();
    }
  });

  Deno.test(`kernel channel (${recording}): batches the kernel sends within each ACK are one burst: onDrained once, after the last`, async () => {
    const t = await setup(recording);
    try {
      const one = fixture(recording, "d-udp-payload-1session");
      const four = fixture(recording, "d-udp-payload-4sessions");
      // Jool under load: every ACK is answered with the next queued batch (joold_ack).
      t.jool.state.ackGated.push(four, one);
      const seen: string[] = [];
      t.channel.onBatch((p) => seen.push(`batch ${p.length}`));
      t.channel.onDrained(() => seen.push("drained"));
      t.multicast(t.jool.batch(one));
      await settle();
      assert.deepEqual(seen, [
        `batch ${one.length}`,
        `batch ${four.length}`,
        `batch ${one.length}`,
        "drained",
      ]);
      assert.equal(t.acks().length, 3);
      // A message that is no batch of ours ends no burst of its own.
      t.multicast(t.jool.batch(one, "other"));
      await settle();
      assert.equal(seen.length, 4);
      t.multicast(t.jool.batch(four));
      await settle();
      assert.deepEqual(seen.slice(4), [`batch ${four.length}`, "drained"]);
    } finally {
      t.teardown();
    }
  });

  for (const shape of ["reordered", "two-in-one"] as const) {
    Deno.test(`kernel channel (${recording}): a batch in the ${shape} shape takes the general decoder and arrives the same`, async () => {
      const t = await setup(recording);
      try {
        const four = fixture(recording, "d-udp-payload-4sessions");
        t.multicast(t.jool.batch(four, "default", shape));
        t.multicast(t.jool.batch(four, "other", shape));
        await settle();
        const n = shape === "two-in-one" ? 2 : 1;
        assert.deepEqual(t.batches, Array(n).fill(four));
        assert.equal(t.acks().length, n);
        assert.equal(t.counters.kernelOtherInstanceBatches, n);
        assert.deepEqual(t.errors, []);
      } finally {
        t.teardown();
      }
    });
  }

  for (const sessions of ["1session", "4sessions"]) {
    Deno.test(`kernel channel (${recording}): the captured multicast a-kernel-multicast-${sessions} gives its payload and the captured JOOLD_ACK, byte for byte`, async () => {
      const ack = fixture(recording, "b-joold-ack");
      const view = new DataView(ack.buffer);
      // The capture's port id, and a sequence number such that the ACK, after the three startup
      // requests, gets the captured one.
      const t = await setup(recording, {
        portId: view.getUint32(12, true),
        seq: view.getUint32(8, true) - 4,
      });
      try {
        assert.equal(t.jool.received.length, 3);
        t.multicast(fixture(recording, `a-kernel-multicast-${sessions}`));
        await settle();
        assert.deepEqual(t.batches, [fixture(recording, `d-udp-payload-${sessions}`)]);
        assert.deepEqual(t.twin.sent.at(-1), ack);
        assert.equal(t.twin.sent.length, 4);
      } finally {
        t.teardown();
      }
    });
  }

  Deno.test(`kernel channel (${recording}): add() frames the datagram as the captured JOOLD_ADD`, async () => {
    const t = await setup(recording);
    try {
      const payload = fixture(recording, "d-udp-payload-4sessions");
      t.channel.add(payload);
      const [add] = t.jool.requests(COMMANDS_4_1.JOOLD_ADD);
      const real = fixture(recording, "c-joold-add-4sessions");
      assert.equal(add.bytes.length, real.length);
      assert.deepEqual(add.bytes.subarray(16), real.subarray(16)); // all but seq/pid
      assert.deepEqual(add.bytes.subarray(0, 8), real.subarray(0, 8)); // length, type, flags
      assert.deepEqual(batchPayload(add.jool!), payload);
      assert.equal(t.counters.kernelAddsSent, 1);
      assert.equal(t.counters.kernelAddBytes, payload.length);
    } finally {
      t.teardown();
    }
  });
}

Deno.test("kernel channel: each batch is ACKed before its handler runs, and the handler's view is the payload", async () => {
  const t = await setup("4.1.13");
  try {
    const seen: { acks: number; lastSent: number; payload: Uint8Array }[] = [];
    t.channel.onBatch((p) => {
      seen.push({
        acks: t.counters.kernelAcksSent,
        lastSent: t.twin.sent.at(-1)![16],
        payload: p.slice(),
      });
      const until = performance.now() + 3; // a slow handler: 3 ms
      while (performance.now() < until) { /* busy */ }
    });
    const one = fixture("4.1.13", "d-udp-payload-1session");
    t.multicast(t.jool.batch(one));
    t.multicast(t.jool.batch(one, "other"));
    t.multicast(t.jool.batch(one));
    await settle();
    // The handler ran after its batch's ACK had been sent (the last datagram out was a JOOLD_ACK).
    assert.deepEqual(seen, [
      { acks: 1, lastSent: COMMANDS_4_1.JOOLD_ACK, payload: one },
      { acks: 2, lastSent: COMMANDS_4_1.JOOLD_ACK, payload: one },
    ]);
    const s = t.channel.ackLatency.summary();
    assert.equal(s.count, 2); // the other instance's batch is neither ACKed nor measured
    assert.ok(s.max < 3000, `the handler delayed the ACK: ${JSON.stringify(s)}`);
  } finally {
    t.teardown();
  }
});

Deno.test("kernel channel: a kernel error reply to JOOLD_ADD is a KernelError naming the request, with the kernel's words", async () => {
  const t = await setup("4.1.13", {
    prepare: (k) => k.state.addError = [22, "We're out of sync: collision"],
  });
  try {
    t.channel.add(fixture("4.1.13", "d-udp-payload-1session"));
    await settle();
    assert.equal(t.errors.length, 1);
    const e = t.errors[0];
    assert.ok(e instanceof KernelError);
    assert.deepEqual([e.op, e.errno], ["JOOLD_ADD", 22]);
    assert.equal(e.message, `Jool refused JOOLD_ADD (EINVAL): "We're out of sync: collision"`);
    assert.equal(t.counters.kernelRefusals, 1);
  } finally {
    t.teardown();
  }
});

Deno.test("kernel channel: a netlink error reply (NLMSG_ERROR) is named after the request it answers", async () => {
  const t = await setup("4.1.13");
  try {
    t.channel.ack();
    const ack = t.twin.sent.at(-1)!;
    const body = new Uint8Array(4 + 16);
    new DataView(body.buffer).setInt32(0, -1, true); // -EPERM
    body.set(ack.subarray(0, 16), 4);
    const seq = new DataView(ack.buffer).getUint32(8, true);
    t.twin.deliver(
      encodeMessage({ type: NLMSG_ERROR, flags: 0, seq, pid: t.channel.portId }, body),
    );
    await settle();
    assert.ok(t.errors[0] instanceof KernelError);
    assert.deepEqual([t.errors[0].op, t.errors[0].errno], ["JOOLD_ACK", 1]);
    assert.match(
      t.errors[0].message,
      /^Jool refused JOOLD_ACK \(EPERM\): joold needs CAP_NET_ADMIN/,
    );
  } finally {
    t.teardown();
  }
});

Deno.test("kernel channel: a missing instance is detected at startup and named in ADD errors", async () => {
  const t = await setup("4.1.13", { prepare: (k) => k.state.instanceAlive = false });
  try {
    assert.equal(t.startup.instanceAlive, false);
    assert.equal(t.startup.syncEnabled, undefined);
    t.channel.add(fixture("4.1.13", "d-udp-payload-1session"));
    await settle();
    assert.equal(
      t.errors[0].message,
      `no Jool instance named "default" in this network namespace (JOOLD_ADD): create it (jool instance add) or fix --instance`,
    );
  } finally {
    t.teardown();
  }
});

Deno.test("kernel channel: ss-enabled off is reported, and turned on with enableSync", async () => {
  const off = await setup("4.1.13", { prepare: (k) => k.state.ssEnabled = false });
  try {
    assert.equal(off.startup.syncEnabled, false);
    assert.equal(off.jool.requests(COMMANDS_4_1.GLOBAL_UPDATE).length, 0);
  } finally {
    off.teardown();
  }
  const on = await setup("4.1.13", { prepare: (k) => k.state.ssEnabled = false, enableSync: true });
  try {
    assert.equal(on.startup.syncEnabled, true);
    const [update] = on.jool.requests(COMMANDS_4_1.GLOBAL_UPDATE);
    // GLOBALS|NESTED { JNLAG_JOOLD_ENABLED (27) = u8 1 }
    assert.deepEqual(Array.from(update.jool!.attributes), [
      12,
      0,
      2,
      0x80,
      5,
      0,
      27,
      0,
      1,
      0,
      0,
      0,
    ]);
  } finally {
    on.teardown();
  }
});

Deno.test("kernel channel: a module that is not loaded gives the modprobe hint and closes the connection", async () => {
  const jool = new FakeJool();
  jool.state.familyMissing = true;
  const { conn, twin } = dialTwin(jool.answer);
  const reactor = new Reactor();
  try {
    await assert.rejects(
      openKernel(reactor, { instance: "default", counters: createCounters(), conn }),
      JoolNotLoadedError,
    );
    assert.ok(twin.closed);
  } finally {
    reactor.stop();
  }
});

Deno.test("kernel channel: a kernel that does not answer fails startup naming the request", async () => {
  const { conn } = dialTwin(() => {});
  const reactor = new Reactor();
  try {
    await assert.rejects(
      openKernel(reactor, {
        instance: "default",
        counters: createCounters(),
        conn,
        replyTimeoutMs: 20,
      }),
      { message: "the kernel did not answer CTRL_CMD_GETFAMILY within 20 ms" },
    );
  } finally {
    reactor.stop();
  }
});

Deno.test("kernel channel: a receive-buffer overrun (ENOBUFS) is a ReceiveOverrunError, counted, and answered with JOOLD_ADVERTISE", async () => {
  const t = await setup("4.1.13");
  let done = 0;
  t.channel.onAdvertiseDone(() => done++);
  try {
    t.twin.overrun();
    t.multicast(t.jool.batch(fixture("4.1.13", "d-udp-payload-1session")));
    await settle();
    await settle(); // the advertise's reply
    assert.ok(t.errors[0] instanceof ReceiveOverrunError);
    assert.deepEqual([t.errors[0].op, t.errors[0].errno], ["recv", 105]);
    assert.match(
      t.errors[0].message,
      /receive buffer overrun \(ENOBUFS\): sessions from the kernel were lost; asking it to advertise/,
    );
    assert.equal(t.counters.kernelOverruns, 1);
    assert.equal(t.jool.requests(COMMANDS_4_1.JOOLD_ADVERTISE).length, 1);
    assert.equal(t.counters.kernelAdvertisesSent, 1);
    assert.equal(done, 1, "the kernel's reply to JOOLD_ADVERTISE reached onAdvertiseDone");
    assert.equal(t.batches.length, 1, "the batch after the overrun still arrived");
  } finally {
    t.teardown();
  }
});

Deno.test("kernel channel: undecodable messages are MalformedKernelMessageErrors, counted; a batch with broken attributes is ACKed, not forwarded", async () => {
  const t = await setup("4.1.13");
  try {
    const good = t.jool.batch(fixture("4.1.13", "d-udp-payload-1session"), "default", "reordered");
    const truncated = good.slice(0, 20); // nlmsg_len says more than arrived
    const badMagic = good.slice();
    badMagic[20] = 0x4a;
    const brokenAttributes = good.slice();
    brokenAttributes[52] = 0xff; // the SESSION_ENTRIES attribute's length now overflows the message
    brokenAttributes[53] = 0x0f;
    for (const d of [truncated, badMagic, brokenAttributes]) t.multicast(d);
    await settle();
    assert.deepEqual(
      t.errors.map((e) => e instanceof MalformedKernelMessageError && e.op),
      ["netlink datagram", "Jool message", "session batch"],
    );
    assert.match(
      t.errors[0].message,
      /^malformed netlink datagram: netlink message length \d+ does not fit/,
    );
    assert.equal(t.counters.kernelMalformedMessages, 3);
    assert.equal(t.batches.length, 0);
    assert.equal(t.acks().length, 1, "the kernel still gets its ACK for the broken batch");
  } finally {
    t.teardown();
  }
});

Deno.test("kernel channel: a failed send is a KernelSendError naming the request", async () => {
  const t = await setup("4.1.13");
  t.teardown(); // the twin refuses sends once closed (EBADF)
  assert.throws(() => t.channel.advertise(), (e: unknown) => {
    assert.ok(e instanceof KernelSendError);
    assert.deepEqual([e.op, e.code], ["JOOLD_ADVERTISE", "EBADF"]);
    assert.equal(e.message, "sendto(JOOLD_ADVERTISE) failed: EBADF");
    return true;
  });
});

let sysfsVersion = false;
try {
  Deno.statSync(MODULE_VERSION_FILE);
  sysfsVersion = true;
} catch {
  // no Jool module here: startup falls back
}

Deno.test({
  name:
    "kernel channel: with the fallback version, the first batch's version is adopted once, for the ACK too",
  ignore: sysfsVersion,
  async fn() {
    const t = await setup("4.1.9", { moduleVersion: null });
    try {
      assert.equal(t.startup.versionSource, "fallback");
      assert.deepEqual(t.channel.version, FALLBACK_VERSION);
      t.multicast(fixture("4.1.9", "a-kernel-multicast-1session"));
      await settle();
      assert.deepEqual(t.channel.version, parseVersion("4.1.9"));
      assert.equal(t.channel.versionSource, "batch");
      const ack = t.acks()[0];
      assert.equal(ack.jool!.header.version, packVersion(parseVersion("4.1.9")));
      assert.deepEqual(ack.bytes.subarray(16), fixture("4.1.9", "b-joold-ack").subarray(16));
    } finally {
      t.teardown();
    }
  },
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
