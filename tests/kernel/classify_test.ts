import assert from "node:assert/strict";
import { instanceName16, recognizeBatch } from "../../lib/jool/batch.ts";
import { classifyDatagram } from "../../lib/kernel/classify.ts";
import { FakeJool } from "../_fake_kernel.ts";
import { fixture, VERSIONS } from "../_fixtures.ts";

for (const recording of VERSIONS) {
  Deno.test(`classifyDatagram (${recording}): batches in every shape, other instances, replies and refusals`, () => {
    const jool = new FakeJool(recording);
    const four = fixture(recording, "d-udp-payload-4sessions");
    const batch = { kind: "batch", payload: four, version: jool.version };
    const classify = (d: Uint8Array) => classifyDatagram(d, jool.familyId, "default");
    assert.deepEqual(classify(fixture(recording, "a-kernel-multicast-4sessions")), [batch]);
    assert.deepEqual(classify(jool.batch(four, "default", "reordered")), [batch]);
    assert.deepEqual(classify(jool.batch(four, "default", "two-in-one")), [batch, batch]);
    assert.deepEqual(classify(jool.batch(four, "other")), [{ kind: "other-instance" }]);
    // The fake kernel's answers to requests: a reply, and a Jool error report.
    const added = jool.answer(fixture(recording, "c-joold-add-1session").slice());
    assert.deepEqual(added.map(classify), []); // JOOLD_ADD succeeds silently
    jool.state.addError = [22, "collision"];
    const [report] = jool.answer(fixture(recording, "c-joold-add-1session").slice());
    const seq = new DataView(report.buffer).getUint32(8, true);
    assert.deepEqual(classify(report), [{ kind: "refusal", seq, errno: 22, text: "collision" }]);
  });
}

Deno.test("classifyDatagram names what it could not decode, and never throws", () => {
  const jool = new FakeJool("4.1.13");
  const good = jool.batch(fixture("4.1.13", "d-udp-payload-1session"));
  const kinds = (d: Uint8Array) =>
    classifyDatagram(d, jool.familyId, "default").map((e) =>
      e.kind === "malformed" ? e.what : e.kind
    );
  assert.deepEqual(kinds(good.subarray(0, 10)), ["netlink datagram"]);
  const badMagic = good.slice();
  badMagic[20] = 0;
  assert.deepEqual(kinds(badMagic), ["Jool message"]);
  const badAttribute = good.slice();
  badAttribute[48] = 0xff; // SESSION_ENTRIES overflows the message
  assert.deepEqual(kinds(badAttribute), ["session batch", "batch"]);
  for (let i = 0; i < 2000; i++) {
    const d = good.slice();
    for (let k = 0; k < 3; k++) {
      d[Math.floor(Math.random() * d.length)] = Math.floor(Math.random() * 256);
    }
    classifyDatagram(d, jool.familyId, "default");
  }
});

Deno.test("the batch recognizer agrees with the general decoder on real and mutated batches", () => {
  for (const recording of VERSIONS) {
    const jool = new FakeJool(recording);
    const iname = instanceName16("default");
    for (const sessions of ["1session", "4sessions"]) {
      const real = fixture(recording, `a-kernel-multicast-${sessions}`);
      for (let i = 0; i < 3000; i++) {
        const d = real.slice();
        if (i > 0) d[Math.floor(Math.random() * 64)] = Math.floor(Math.random() * 256); // headers
        const fast = recognizeBatch(d, d.length, jool.familyId, iname);
        if (fast.kind !== "batch") continue;
        // Whatever the fast path takes, the general decoder reads the same way.
        const events = classifyDatagram(d, jool.familyId, "default");
        const batch = events.find((e) => e.kind === "batch");
        assert.ok(batch?.kind === "batch", `byte mutation ${i}: ${JSON.stringify(events)}`);
        assert.equal(batch.version, fast.version);
        if (batch.payload !== null) {
          assert.deepEqual(batch.payload, d.subarray(fast.payloadStart, fast.payloadEnd));
        }
      }
    }
  }
});
