/**
 * The ss-enabled keeper (lib/kernel/sync_enabled.ts) on its own, over the in-memory twin: its
 * requests go out through the connection layer's own request() to the fake Jool kernel, which
 * answers with the bytes Jool sends. The keeper inside the channel and the daemon:
 * lifecycle_test.ts and start_lifecycle_test.ts.
 */
import assert from "node:assert/strict";
import { createCounters } from "../../lib/counters.ts";
import { decodeJoolMessage, errorReport, joolRequest } from "../../lib/jool/message.ts";
import { COMMANDS_4_1, packVersion, parseVersion } from "../../lib/jool/version.ts";
import { KernelError } from "../../lib/kernel/error.ts";
import { SyncEnabledKeeper } from "../../lib/kernel/sync_enabled.ts";
import { dialTwin } from "../../lib/netlink/twin.ts";
import { FakeJool } from "../_fake_kernel.ts";

const C = COMMANDS_4_1;

function setup() {
  const jool = new FakeJool("4.1.13");
  const { conn } = dialTwin(jool.answer);
  const counters = createCounters();
  const notices: string[] = [];
  /** `usable` is what the keeper is told; `gate` runs before each request goes out. */
  const knobs = { usable: true, gate: undefined as (() => Promise<void>) | undefined };
  const keeper = new SyncEnabledKeeper({
    instance: "default",
    counters,
    async request(cmd, op, attributes) {
      await knobs.gate?.();
      const target = {
        familyId: jool.familyId,
        version: packVersion(parseVersion("4.1.13")),
        iname: "default",
        seq: 0,
        pid: conn.portId,
      };
      const reply = await conn.request(joolRequest(target, cmd, attributes), op, 1000);
      if (reply.kind !== "reply") throw new Error(`${op}: ${reply.kind}`);
      const message = decodeJoolMessage(reply.message);
      const report = errorReport(message);
      if (report) throw new KernelError(op, report.code, report.message, "default");
      return message;
    },
    version: () => parseVersion("4.1.13"),
    usable: () => knobs.usable,
    notice: (level, text) => notices.push(`${level}: ${text}`),
  });
  return { jool, counters, notices, keeper, knobs };
}

Deno.test("SyncEnabledKeeper leaves ss-enabled alone while it is on", async () => {
  const t = setup();
  assert.equal(await t.keeper.check(), true);
  assert.equal(t.jool.requests(C.GLOBAL_FOREACH).length, 1);
  assert.equal(t.jool.requests(C.GLOBAL_UPDATE).length, 0);
  assert.deepEqual(t.notices, []);
});

Deno.test("SyncEnabledKeeper turns ss-enabled on with Jool's GLOBAL_UPDATE bytes, reads it back and counts it", async () => {
  const t = setup();
  t.jool.state.ssEnabled = false;
  assert.equal(await t.keeper.check(), true);
  assert.equal(t.jool.state.ssEnabled, true);
  const [update] = t.jool.requests(C.GLOBAL_UPDATE);
  // JNLAR_GLOBALS (nested) { JNLAG_JOOLD_ENABLED = 1 }.
  assert.deepEqual([...update.jool!.attributes], [12, 0, 2, 0x80, 5, 0, 27, 0, 1, 0, 0, 0]);
  assert.equal(t.jool.requests(C.GLOBAL_FOREACH).length, 2);
  assert.equal(t.counters.kernelSyncReenabled, 1);
  assert.deepEqual(t.notices, [
    `info: ss-enabled was off on instance "default" (re-created?): turned it on again (--enable-sync)`,
  ]);
});

Deno.test("SyncEnabledKeeper reports a missing instance once, and once more when it exists again", async () => {
  const t = setup();
  t.jool.state.instanceAlive = false;
  assert.equal(await t.keeper.check(), undefined);
  assert.equal(await t.keeper.check(), undefined);
  assert.equal(t.notices.length, 1);
  assert.match(t.notices[0], /^warn: no Jool instance named "default" any more: waiting for it/);
  t.jool.state.instanceAlive = true;
  assert.equal(await t.keeper.check(), true);
  assert.equal(t.notices[1], `info: Jool instance "default" exists again`);
  assert.equal(t.notices.length, 2);
});

Deno.test("SyncEnabledKeeper after instanceGone announces the instance that is there again", async () => {
  const t = setup();
  t.keeper.instanceGone();
  assert.equal(await t.keeper.check(), true);
  assert.deepEqual(t.notices, [`info: Jool instance "default" exists again`]);
});

Deno.test("SyncEnabledKeeper asks nothing while requests cannot go out, nor during a check under way", async () => {
  const t = setup();
  t.knobs.usable = false;
  assert.equal(await t.keeper.check(), undefined);
  assert.equal(t.jool.received.length, 0);
  t.knobs.usable = true;
  const first = t.keeper.check();
  assert.equal(await t.keeper.check(), undefined, "one check at a time");
  assert.equal(await first, true);
  assert.equal(t.jool.requests(C.GLOBAL_FOREACH).length, 1);
});

Deno.test("SyncEnabledKeeper words another failure as a warning, and none once requests cannot go out", async () => {
  const t = setup();
  t.knobs.gate = () =>
    Promise.reject(new Error("the kernel did not answer GLOBAL_FOREACH within 5000 ms"));
  assert.equal(await t.keeper.check(), undefined);
  assert.deepEqual(t.notices, [
    "warn: cannot check ss-enabled: the kernel did not answer GLOBAL_FOREACH within 5000 ms",
  ]);
  let fail = (_: Error) => {};
  t.knobs.gate = () => new Promise((_, reject) => fail = reject);
  const late = t.keeper.check();
  t.knobs.usable = false; // the channel closed while the request was out
  fail(new Error("GLOBAL_FOREACH: the kernel channel closed before the reply"));
  assert.equal(await late, undefined);
  assert.equal(t.notices.length, 1, "no warning for a request the closing channel cut short");
});

Deno.test("SyncEnabledKeeper.keep checks on its interval until closed", async () => {
  const t = setup();
  t.jool.state.ssEnabled = false;
  t.keeper.keep(10);
  const end = Date.now() + 2000;
  while (!t.jool.state.ssEnabled && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
  assert.equal(t.jool.state.ssEnabled, true);
  t.keeper.close();
  const asked = t.jool.received.length;
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(t.jool.received.length, asked, "closed: no more checks");
});
