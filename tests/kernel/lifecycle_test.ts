/**
 * The kernel channel across the module's lifecycle, over the in-memory twin: a module reload
 * (nlctrl's CTRL_CMD_DELFAMILY / CTRL_CMD_NEWFAMILY, bytes as genetlink.c's ctrl_fill_info builds
 * them), a module of another numbering (fatal: the daemon restarts), a re-created instance with
 * ss-enabled off (--enable-sync re-applies it), receive overruns (one advertise per 30 s), and
 * awaited requests (the kernel's counters) sharing the socket with the batches.
 */
import assert from "node:assert/strict";
import { createCounters } from "../../lib/counters.ts";
import { GENL_CTRL_NOTIFY_GROUP, parseFamilyReply } from "../../lib/genetlink/controller.ts";
import { JNLOP_STATS_FOREACH } from "../../lib/jool/stats.ts";
import { COMMANDS_4_1, type JoolVersion, parseVersion } from "../../lib/jool/version.ts";
import { NetlinkKernelChannel } from "../../lib/kernel/channel.ts";
import {
  JoolFamilyError,
  OVERRUN_ADVERTISE_INTERVAL_MS,
  ReceiveOverrunError,
} from "../../lib/kernel/error.ts";
import { openKernel } from "../../lib/kernel/open.ts";
import { parseMessages } from "../../lib/netlink/message.ts";
import { dialTwin } from "../../lib/netlink/twin.ts";
import { Reactor } from "../../lib/reactor.ts";
import { FakeJool } from "../_fake_kernel.ts";
import { fixture } from "../_fixtures.ts";

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));
const C = COMMANDS_4_1;

async function setup(
  recording: "4.1.9" | "4.1.13" = "4.1.13",
  options: { now?: () => number; moduleVersion?: () => JoolVersion | undefined } = {},
) {
  const jool = new FakeJool(recording);
  const { conn, twin } = dialTwin(jool.answer);
  const reactor = new Reactor();
  const counters = createCounters();
  const { startup } = await openKernel(reactor, {
    instance: "default",
    counters,
    conn,
    moduleVersion: parseVersion(recording),
  });
  // openKernel's channel, rebuilt with the test's clock and version source (same connection).
  const channel = new NetlinkKernelChannel({
    ...startup,
    versionSource: options.moduleVersion ? "sysfs" : startup.versionSource,
    conn,
    reactor,
    counters,
    instance: "default",
    now: options.now,
    moduleVersion: options.moduleVersion,
  });
  const batches: Uint8Array[] = [];
  const errors: Error[] = [];
  const notices: string[] = [];
  const fatal: Error[] = [];
  channel.onBatch((p) => batches.push(p.slice()));
  channel.onError((e) => errors.push(e));
  channel.onNotice((level, text) => notices.push(`${level}: ${text}`));
  channel.onFatal((e) => fatal.push(e));
  const notify = (datagram: Uint8Array) =>
    assert.ok(twin.multicast(GENL_CTRL_NOTIFY_GROUP, datagram), "joined nlctrl's notify group");
  const teardown = () => {
    channel.close();
    reactor.stop();
  };
  return { jool, twin, channel, counters, batches, errors, notices, fatal, notify, teardown };
}

Deno.test("the fake's NEWFAMILY notification is the captured GETFAMILY reply with sequence and port 0", () => {
  const jool = new FakeJool("4.1.13");
  const captured = fixture("4.1.13", "e-ctrl-getfamily-response");
  const notification = jool.familyNotification("new");
  assert.equal(notification.length, captured.length);
  assert.deepEqual(notification.subarray(0, 8), captured.subarray(0, 8)); // len, type, flags
  assert.deepEqual([...notification.subarray(8, 16)], [0, 0, 0, 0, 0, 0, 0, 0]); // seq, pid
  assert.deepEqual(notification.subarray(16), captured.subarray(16));
  const del = jool.familyNotification("del");
  assert.equal(del[16], 2); // CTRL_CMD_DELFAMILY, the rest alike
  assert.deepEqual(del.subarray(17), captured.subarray(17));
  jool.reload(0x30, 9);
  const info = parseFamilyReply(parseMessages(jool.familyNotification("new"))[0].body);
  assert.equal(info.id, 0x30);
  assert.equal(info.groups.get("joold"), 9);
});

Deno.test("a module reload: the channel stops at DELFAMILY and rejoins the new family and group at NEWFAMILY", async () => {
  const t = await setup();
  try {
    const oldFamily = t.jool.familyId;
    t.notify(t.jool.familyNotification("del"));
    await settle();
    assert.equal(t.counters.kernelFamilyRemovals, 1);
    assert.match(
      t.notices.at(-1)!,
      /^warn: Jool's Generic Netlink family \(id 35\) was unregistered/,
    );
    assert.throws(() => t.channel.add(new Uint8Array(36)), JoolFamilyError);
    assert.throws(() => t.channel.advertise(), JoolFamilyError);
    const sentBefore = t.twin.sent.length;
    t.channel.ack(); // nothing may reach the stale id
    assert.equal(t.twin.sent.length, sentBefore);

    t.jool.reload(oldFamily + 7, 21);
    t.notify(t.jool.familyNotification("new"));
    await settle();
    assert.equal(t.counters.kernelFamilyRecoveries, 1);
    assert.match(
      t.notices.at(-1)!,
      /^info: Jool's Generic Netlink family is back .* family id 42, "joold" group 21; rejoined$/,
    );
    assert.ok(t.twin.groups.has(21), "joined the new joold group");
    assert.equal(t.channel.familyId, 42);

    // A batch under the new family id is recognized and ACKed with the new id.
    t.jool.state.instanceAlive = true;
    assert.ok(t.twin.multicast(21, t.jool.batch(Uint8Array.of(1, 2, 3, 4))));
    await settle();
    assert.equal(t.batches.length, 1);
    const ack = t.twin.sent.at(-1)!;
    assert.equal(new DataView(ack.buffer).getUint16(4, true), 42, "the ACK goes to the new family");
    assert.equal(t.jool.requests(C.JOOLD_ACK).length, 1, "the fake (new id) decoded the ACK");
    t.channel.add(new Uint8Array(36));
    assert.equal(t.jool.requests(C.JOOLD_ADD).length, 1);
    assert.deepEqual(t.fatal, []);
  } finally {
    t.teardown();
  }
});

Deno.test("notifications of other families, and a DELFAMILY naming another id, change nothing", async () => {
  const t = await setup();
  try {
    const other = t.jool.familyNotification("del");
    other.set(new TextEncoder().encode("Jooo"), 24); // CTRL_ATTR_FAMILY_NAME's payload
    t.notify(other);
    const stale = new FakeJool("4.1.13");
    stale.familyId = 99;
    t.notify(stale.familyNotification("del"));
    await settle();
    assert.equal(t.counters.kernelFamilyRemovals, 0);
    t.channel.add(new Uint8Array(36));
    assert.equal(t.jool.requests(C.JOOLD_ADD).length, 1);
  } finally {
    t.teardown();
  }
});

Deno.test("a reload into a Jool of another session format is fatal (the daemon exits, its supervisor restarts it)", async () => {
  const t = await setup("4.1.13", { moduleVersion: () => parseVersion("4.1.9") });
  try {
    t.notify(t.jool.familyNotification("del"));
    t.jool.reload(50, 16);
    t.notify(t.jool.familyNotification("new"));
    await settle();
    assert.equal(t.fatal.length, 1);
    assert.match(
      t.fatal[0].message,
      /^Jool's module was replaced: 4\.1\.13\.0 -> 4\.1\.9\.0, .*exiting/,
    );
    assert.throws(() => t.channel.add(new Uint8Array(36)), JoolFamilyError);
  } finally {
    t.teardown();
  }
});

Deno.test("a reload into the same version keeps serving (sysfs re-read)", async () => {
  let reads = 0;
  const t = await setup("4.1.13", {
    moduleVersion: () => (reads++, parseVersion("4.1.13")),
  });
  try {
    t.notify(t.jool.familyNotification("del"));
    t.notify(t.jool.familyNotification("new"));
    await settle();
    assert.equal(reads, 1);
    assert.deepEqual(t.fatal, []);
    assert.equal(t.counters.kernelFamilyRecoveries, 1);
    assert.match(t.notices.at(-1)!, /\(unchanged\); rejoined$/);
  } finally {
    t.teardown();
  }
});

Deno.test("--enable-sync's keeper: a missing instance is reported once, a re-created one gets ss-enabled on again", async () => {
  const t = await setup();
  try {
    assert.equal(await t.channel.checkSyncEnabled(), true);
    assert.equal(t.jool.requests(C.GLOBAL_UPDATE).length, 0, "nothing to do while it is on");
    t.jool.state.instanceAlive = false;
    assert.equal(await t.channel.checkSyncEnabled(), undefined);
    assert.equal(await t.channel.checkSyncEnabled(), undefined);
    assert.deepEqual(t.notices.filter((n) => n.startsWith("warn: no Jool instance")).length, 1);
    t.jool.state.instanceAlive = true;
    t.jool.state.ssEnabled = false; // `jool instance add` starts with it off
    assert.equal(await t.channel.checkSyncEnabled(), true);
    assert.equal(t.jool.state.ssEnabled, true);
    assert.equal(t.counters.kernelSyncReenabled, 1);
    const update = t.jool.requests(C.GLOBAL_UPDATE)[0];
    assert.deepEqual([...update.jool!.attributes], [12, 0, 2, 0x80, 5, 0, 27, 0, 1, 0, 0, 0]);
    assert.ok(t.notices.includes(`info: Jool instance "default" exists again`));
    assert.match(
      t.notices.at(-1)!,
      /^info: ss-enabled was off on instance "default" \(re-created\?\): turned it on again/,
    );
  } finally {
    t.teardown();
  }
});

Deno.test("--enable-sync's keeper runs on its interval", async () => {
  const t = await setup();
  try {
    t.jool.state.ssEnabled = false;
    t.channel.keepSyncEnabled(10);
    const end = Date.now() + 2000;
    while (!t.jool.state.ssEnabled && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
    assert.equal(t.jool.state.ssEnabled, true);
  } finally {
    t.teardown();
  }
});

Deno.test("receive overruns: one advertise at once, the next ones held and covered by one at the interval's end", async () => {
  let now = 1_000_000;
  const t = await setup("4.1.13", { now: () => now });
  try {
    t.twin.overrun();
    await settle();
    assert.equal(t.counters.kernelAdvertisesSent, 1);
    now += OVERRUN_ADVERTISE_INTERVAL_MS - 20;
    t.twin.overrun();
    t.twin.overrun();
    await settle();
    assert.equal(t.counters.kernelOverruns, 3);
    assert.equal(t.counters.kernelOverrunAdvertisesHeld, 2);
    assert.equal(t.counters.kernelAdvertisesSent, 1, "held back");
    assert.ok(t.errors.every((e) => e instanceof ReceiveOverrunError));
    assert.match(
      t.errors[1].message,
      /an advertise went out less than 30 s ago: the next one follows in 1 s$/,
    );
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(t.counters.kernelAdvertisesSent, 2, "one advertise for both held overruns");
    assert.match(t.notices.at(-1)!, /for 2 receive overrun\(s\) held back/);
    assert.equal(t.jool.requests(C.JOOLD_ADVERTISE).length, 2);
  } finally {
    t.teardown();
  }
});

Deno.test("an awaited request's reply reaches its waiter while batches keep flowing, in the same datagram or not", async () => {
  const t = await setup();
  try {
    t.jool.state.stats = new Map([["JSTAT_JOOLD_ACKS", 12n], ["JSTAT_JOOLD_SSS_SENT", 40n]]);
    const reading = t.channel.readJooldStats();
    assert.ok(t.twin.multicast(t.jool.groupId, t.jool.batch(Uint8Array.of(9, 9, 9, 9))));
    const stats = await reading;
    assert.equal(stats?.get("JSTAT_JOOLD_ACKS"), 12n);
    assert.equal(stats?.get("JSTAT_JOOLD_SSS_SENT"), 40n);
    assert.equal(stats?.get("JSTAT_JOOLD_EMPTY"), 0n);
    assert.equal(stats?.size, 14, "4.1.13's JSTAT_JOOLD_* only");
    assert.equal(t.batches.length, 1);
    assert.equal(t.counters.kernelRefusals, 0);
    const sent = t.jool.requests(JNLOP_STATS_FOREACH);
    assert.equal(sent.length, 1);
    assert.equal(sent[0].jool!.attributes.length, 0, "the first page has no offset");
  } finally {
    t.teardown();
  }
});

Deno.test("readJooldStats follows JOOLNLHDR_FLAGS_M pages with JNLAR_OFFSET_U8", async () => {
  const t = await setup();
  try {
    t.jool.state.statsPerPage = 30;
    t.jool.state.stats = new Map([["JSTAT_JOOLD_ADS", 3n]]);
    const stats = await t.channel.readJooldStats();
    assert.equal(stats?.get("JSTAT_JOOLD_ADS"), 3n);
    const pages = t.jool.requests(JNLOP_STATS_FOREACH);
    assert.equal(pages.length, 3); // 83 ids, 30 per page
    assert.deepEqual([...pages[1].jool!.attributes], [5, 0, 9, 0, 30, 0, 0, 0]);
    assert.deepEqual([...pages[2].jool!.attributes], [5, 0, 9, 0, 60, 0, 0, 0]);
  } finally {
    t.teardown();
  }
});

Deno.test("readJooldStats on Jool 4.1.9 is undefined, and asks nothing", async () => {
  const t = await setup("4.1.9");
  try {
    assert.equal(await t.channel.readJooldStats(), undefined);
    assert.equal(t.jool.requests(JNLOP_STATS_FOREACH).length, 0);
  } finally {
    t.teardown();
  }
});

Deno.test("readJooldStats with a missing instance rejects with the kernel's refusal, not counted as a stray one", async () => {
  const t = await setup();
  try {
    t.jool.state.instanceAlive = false;
    await assert.rejects(t.channel.readJooldStats(), /no Jool instance named "default"/);
    assert.equal(t.counters.kernelRefusals, 0);
  } finally {
    t.teardown();
  }
});

Deno.test("an awaited request times out, and closing the channel rejects what is pending", async () => {
  const t = await setup();
  try {
    await assert.rejects(
      t.channel.request(C.JOOLD_ACK, "JOOLD_ACK", undefined, 20),
      /did not answer JOOLD_ACK within 20 ms/,
    );
    const pending = t.channel.request(C.JOOLD_ACK, "JOOLD_ACK");
    t.channel.close();
    await assert.rejects(pending, /closed before the reply/);
  } finally {
    t.teardown();
  }
});

Deno.test("DELFAMILY rejects the requests still awaiting a reply, and refuses new ones", async () => {
  const t = await setup();
  try {
    const pending = t.channel.request(C.JOOLD_ACK, "JOOLD_ACK"); // the kernel never answers it
    t.notify(t.jool.familyNotification("del"));
    await assert.rejects(pending, JoolFamilyError);
    await assert.rejects(t.channel.readJooldStats(), /family is gone .*STATS_FOREACH/);
  } finally {
    t.teardown();
  }
});
