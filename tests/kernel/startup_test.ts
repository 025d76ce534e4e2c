/** Startup over the in-memory twin: the refusals and gaps it must word for an operator. */
import assert from "node:assert/strict";
import {
  CTRL_ATTR_FAMILY_ID,
  CTRL_ATTR_FAMILY_NAME,
  GENL_ID_CTRL,
} from "../../lib/genetlink/controller.ts";
import { parseVersion } from "../../lib/jool/version.ts";
import { KernelError } from "../../lib/kernel/error.ts";
import { resolveStartup } from "../../lib/kernel/startup.ts";
import { concat, encodeAttribute, stringAttribute } from "../../lib/netlink/attribute.ts";
import { encodeMessage, NLMSG_ERROR } from "../../lib/netlink/message.ts";
import { dialTwin, type TwinKernel } from "../../lib/netlink/twin.ts";
import { FakeJool } from "../_fake_kernel.ts";

const seqOf = (request: Uint8Array) => new DataView(request.buffer).getUint32(8, true);
const options = { instance: "default", moduleVersion: parseVersion("4.1.13") };

Deno.test("startup: a Jool family without the joold group says which groups it has", async () => {
  const kernel: TwinKernel = (request) => [
    encodeMessage(
      { type: GENL_ID_CTRL, flags: 0, seq: seqOf(request), pid: 0 },
      concat(
        Uint8Array.of(1, 2, 0, 0), // CTRL_CMD_NEWFAMILY
        encodeAttribute(CTRL_ATTR_FAMILY_ID, Uint8Array.of(0x23, 0)),
        stringAttribute(CTRL_ATTR_FAMILY_NAME, "Jool"),
      ),
    ),
  ];
  await assert.rejects(resolveStartup(dialTwin(kernel).conn, options), {
    message:
      `Jool's family has no "joold" multicast group (groups: none): this Jool is too old or not a NAT64 build`,
  });
});

Deno.test("startup: a controller refusal other than ENOENT is a KernelError naming CTRL_CMD_GETFAMILY", async () => {
  const kernel: TwinKernel = (request) => {
    const body = new Uint8Array(20);
    new DataView(body.buffer).setInt32(0, -1, true); // -EPERM
    body.set(request.subarray(0, 16), 4);
    return [encodeMessage({ type: NLMSG_ERROR, flags: 0, seq: seqOf(request), pid: 0 }, body)];
  };
  await assert.rejects(resolveStartup(dialTwin(kernel).conn, options), (e: unknown) => {
    assert.ok(e instanceof KernelError);
    assert.deepEqual([e.op, e.errno], ["CTRL_CMD_GETFAMILY", 1]);
    return true;
  });
});

Deno.test("startup: the kernel's version-mismatch report to INSTANCE_HELLO is worded for the operator", async () => {
  const jool = new FakeJool("4.1.13");
  const kernel: TwinKernel = (request) => {
    const replies = jool.answer(request);
    if (request[4] !== jool.familyId) return replies; // the controller's reply as captured
    // What Jool 4.2 answers a 4.1 header with (Jool's error report: code and message).
    const text =
      "Version mismatch. The userspace client's version is 4.1.13.0,\nbut the kernel module is 4.2.0.0.";
    const report = concat(
      Uint8Array.of(2, 2, 0, 0), // genlmsghdr: cmd INSTANCE_HELLO, version 2
      Uint8Array.of(0x6a, 0x6f, 0x6f, 0x6c, 4, 2, 0, 0, 2, 1, 0, 0), // "jool" 4.2.0.0 NAT64 ERROR
      new Uint8Array(16),
      encodeAttribute(1, Uint8Array.of(22, 0)),
      stringAttribute(2, text),
    );
    return [encodeMessage({ type: jool.familyId, flags: 0, seq: seqOf(request), pid: 0 }, report)];
  };
  await assert.rejects(resolveStartup(dialTwin(kernel).conn, options), {
    message:
      "Jool version mismatch (INSTANCE_HELLO): joold spoke 4.1.13.0, the kernel module is 4.2.0.0: Jool accepts only its own major.minor version; use a joold release that supports it",
  });
});

Deno.test("startup reads the instance's own session timeouts, for the meaning checks' clamp", async () => {
  const fake = new FakeJool("4.1.13");
  fake.state.timeouts = { tcpEst: 7_200_000, tcpTrans: 240_000, udp: 30_000, icmp: 15_000 };
  const startup = await resolveStartup(dialTwin(fake.answer).conn, options);
  assert.deepEqual(startup.timeouts, {
    tcpEst: 7_200_000,
    tcpTrans: 240_000,
    udp: 30_000,
    icmp: 15_000,
  });
  // An instance that does not say keeps Jool's defaults; a missing instance gives none.
  fake.state.timeouts = null;
  const defaults = await resolveStartup(dialTwin(fake.answer).conn, options);
  assert.deepEqual(defaults.timeouts, {
    tcpEst: 7_200_000,
    tcpTrans: 240_000,
    udp: 300_000,
    icmp: 60_000,
  });
  fake.state.instanceAlive = false;
  const missing = await resolveStartup(dialTwin(fake.answer).conn, options);
  assert.equal(missing.timeouts, undefined);
});
