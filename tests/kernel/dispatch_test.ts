/**
 * The channel's slow path (lib/kernel/dispatch.ts) on its own: captured kernel datagrams and the
 * fake Jool kernel's replies (the bytes Jool sends) go through the general decoder, and each
 * message reaches where it belongs: batches, awaited requests, stray refusals, the advertise
 * callback, nlctrl's notifications, the counters of what is dropped.
 */
import assert from "node:assert/strict";
import { createCounters } from "../../lib/counters.ts";
import { batchPayload, decodeJoolMessage, joolRequest } from "../../lib/jool/message.ts";
import { JNLOP_STATS_FOREACH } from "../../lib/jool/stats.ts";
import { COMMANDS_4_1, packVersion, parseVersion } from "../../lib/jool/version.ts";
import { dispatchGeneral } from "../../lib/kernel/dispatch.ts";
import { KernelError, MalformedKernelMessageError } from "../../lib/kernel/error.ts";
import { PendingReplies } from "../../lib/kernel/pending.ts";
import { encodeMessage, NLMSG_ERROR, parseMessages } from "../../lib/netlink/message.ts";
import { FakeJool } from "../_fake_kernel.ts";
import { fixture, VERSIONS } from "../_fixtures.ts";

const C = COMMANDS_4_1;

function setup(recording: "4.1.9" | "4.1.13" = "4.1.13") {
  const jool = new FakeJool(recording);
  const ops = new Map<number, string>();
  const seen: string[] = [];
  const batches: { payload: Uint8Array | null; version: number; readAt: number }[] = [];
  const errors: Error[] = [];
  const target = {
    counters: createCounters(),
    instance: "default",
    conn: { opFor: (seq: number) => ops.get(seq) ?? "request" },
    pending: new PendingReplies(),
    batch: (payload: Uint8Array | null, version: number, readAt: number) =>
      void batches.push({ payload: payload?.slice() ?? null, version, readAt }),
    family: (change: "new" | "del", family: { name: string; id: number }) =>
      void seen.push(`${change} ${family.name} ${family.id}`),
    error: (e: Error) => void errors.push(e),
    advertiseDone: () => void seen.push("advertise done"),
  };
  /** The fake kernel's answer to request `cmd` sent with `seq`, remembered as `op`. */
  const answer = (cmd: number, seq: number, op: string) => {
    ops.set(seq, op);
    const version = packVersion(parseVersion(recording));
    const request = joolRequest(
      { familyId: jool.familyId, version, iname: "default", seq, pid: 77 },
      cmd,
    );
    const [reply] = jool.answer(request);
    return reply;
  };
  const dispatch = (datagram: Uint8Array, readAt = 1) =>
    dispatchGeneral(datagram, jool.familyId, readAt, target);
  return { jool, target, batches, errors, seen, answer, dispatch };
}

for (const recording of VERSIONS) {
  Deno.test(`dispatchGeneral (${recording}): a captured kernel multicast is one batch with its payload and version`, () => {
    const t = setup(recording);
    for (const name of ["a-kernel-multicast-1session", "a-kernel-multicast-4sessions"]) {
      const datagram = fixture(recording, name);
      const message = decodeJoolMessage(parseMessages(datagram)[0]);
      t.dispatch(datagram, 42);
      assert.deepEqual(t.batches.at(-1), {
        payload: batchPayload(message),
        version: message.header.version,
        readAt: 42,
      });
    }
    assert.equal(t.batches.length, 2);
    assert.deepEqual(t.errors, []);
  });
}

Deno.test("dispatchGeneral: another instance's batch is counted, and bad bytes are counted and reported", () => {
  const t = setup();
  t.dispatch(t.jool.batch(Uint8Array.of(1, 2, 3, 4), "other"));
  assert.equal(t.target.counters.kernelOtherInstanceBatches, 1);
  t.dispatch(Uint8Array.of(1, 2, 3));
  assert.equal(t.target.counters.kernelMalformedMessages, 1);
  assert.ok(t.errors[0] instanceof MalformedKernelMessageError);
  assert.deepEqual(t.batches, []);
});

Deno.test("dispatchGeneral: a reply reaches its waiter as a copy of the receive buffer", async () => {
  const t = setup();
  const reply = t.answer(C.GLOBAL_FOREACH, 500, "GLOBAL_FOREACH");
  const waiting = t.target.pending.wait(500, "GLOBAL_FOREACH", 1000);
  t.dispatch(reply);
  const expected = decodeJoolMessage(parseMessages(reply)[0]).attributes.slice();
  reply.fill(0); // the receive buffer is reused by the next datagram
  const message = await waiting;
  assert.equal(message.cmd, C.GLOBAL_FOREACH);
  assert.deepEqual(message.attributes, expected);
  assert.equal(t.target.pending.size, 0);
});

Deno.test("dispatchGeneral: a Jool error report rejects its waiter with a KernelError, uncounted", async () => {
  const t = setup();
  t.jool.state.instanceAlive = false;
  const waiting = t.target.pending.wait(7, "STATS_FOREACH", 1000);
  t.dispatch(t.answer(JNLOP_STATS_FOREACH, 7, "STATS_FOREACH"));
  await assert.rejects(waiting, (e) => {
    assert.ok(e instanceof KernelError);
    assert.equal(e.op, "STATS_FOREACH");
    assert.ok(e.instanceMissing);
    return true;
  });
  assert.equal(t.target.counters.kernelRefusals, 0);
  assert.deepEqual(t.errors, []);
});

Deno.test("dispatchGeneral: a refusal nobody awaits is counted and named after its request", () => {
  const t = setup();
  t.jool.state.instanceAlive = false;
  t.dispatch(t.answer(C.JOOLD_ADD, 8, "JOOLD_ADD"));
  const body = new Uint8Array(4 + 16);
  new DataView(body.buffer).setInt32(0, -1, true); // -EPERM
  t.dispatch(encodeMessage({ type: NLMSG_ERROR, flags: 0, seq: 8, pid: 77 }, body));
  assert.equal(t.target.counters.kernelRefusals, 2);
  assert.ok(t.errors.every((e) => e instanceof KernelError && e.op === "JOOLD_ADD"));
  assert.match(t.errors[0].message, /^no Jool instance named "default"/);
  assert.match(t.errors[1].message, /^Jool refused JOOLD_ADD \(EPERM\)/);
});

Deno.test("dispatchGeneral: the kernel's reply to JOOLD_ADVERTISE calls the advertise callback; other stray replies nothing", () => {
  const t = setup();
  t.dispatch(t.answer(C.JOOLD_ADVERTISE, 3, "JOOLD_ADVERTISE"));
  t.dispatch(t.answer(C.GLOBAL_UPDATE, 4, "GLOBAL_UPDATE ss-enabled"));
  assert.deepEqual(t.seen, ["advertise done"]);
  assert.deepEqual(t.errors, []);
});

Deno.test("dispatchGeneral: nlctrl's family notifications reach the family, in order", () => {
  const t = setup();
  t.dispatch(t.jool.familyNotification("del"));
  t.jool.reload(0x31, 12);
  t.dispatch(t.jool.familyNotification("new"));
  assert.deepEqual(t.seen, ["del Jool 35", "new Jool 49"]);
});
