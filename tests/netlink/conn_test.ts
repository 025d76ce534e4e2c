import assert from "node:assert/strict";
import { ERRNO } from "../../ffi/errno.ts";
import { getFamilyRequest, parseFamilyReply } from "../../lib/genetlink/controller.ts";
import { concat, stringAttribute } from "../../lib/netlink/attribute.ts";
import { NetlinkError, openNetlink } from "../../lib/netlink/conn.ts";
import {
  encodeMessage,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLMSG_ERROR,
  NLMSGERR_ATTR_MSG,
} from "../../lib/netlink/message.ts";
import { dialTwin } from "../../lib/netlink/twin.ts";

/** An NLMSG_ERROR answering `request`, with an ext-ack message when `text` is given. */
function errorReply(request: Uint8Array, errno: number, text?: string): Uint8Array {
  const head = new Uint8Array(4 + 16);
  new DataView(head.buffer).setInt32(0, -errno, true);
  head.set(request.subarray(0, 16), 4);
  const view = new DataView(request.buffer, request.byteOffset);
  return encodeMessage(
    {
      type: NLMSG_ERROR,
      flags: text === undefined ? 0 : NLM_F_ACK_TLVS | NLM_F_CAPPED,
      seq: view.getUint32(8, true),
      pid: view.getUint32(12, true),
    },
    text === undefined ? head : concat(head, stringAttribute(NLMSGERR_ATTR_MSG, text)),
  );
}

Deno.test("NetlinkConn.request returns the reply with the request's sequence number, skipping others", async () => {
  const { conn, twin } = dialTwin((request) => {
    const seq = new DataView(request.buffer).getUint32(8, true);
    return [
      encodeMessage({ type: 0x20, flags: 0, seq: seq + 7, pid: 0 }, Uint8Array.of(9)),
      encodeMessage({ type: 0x20, flags: 0, seq, pid: 0 }, Uint8Array.of(1, 2, 3, 4)),
    ];
  }, { seq: 41 });
  const reply = await conn.request(new Uint8Array(16), "PING", 1000);
  assert.equal(reply.kind, "reply");
  assert.deepEqual(reply.kind === "reply" && [reply.message.seq, reply.message.body], [
    42,
    Uint8Array.of(1, 2, 3, 4),
  ]);
  assert.equal(
    new DataView(twin.sent[0].buffer).getUint32(8, true),
    42,
    "the seq was stamped into the request",
  );
  assert.equal(conn.opFor(42), "PING");
});

Deno.test("NetlinkConn.request tells an ack from an error reply, which carries op, errno and the ext-ack text", async () => {
  let errno = 0;
  const { conn } = dialTwin((
    request,
  ) => [errorReply(request, errno, errno ? "Invalid attribute" : undefined)]);
  assert.deepEqual(await conn.request(new Uint8Array(16), "SET", 1000), { kind: "ack" });
  errno = ERRNO.EINVAL;
  const r = await conn.request(new Uint8Array(16), "SET", 1000);
  assert.ok(r.kind === "error" && r.error instanceof NetlinkError);
  assert.deepEqual([r.error.op, r.error.errno, r.error.extAck], ["SET", 22, "Invalid attribute"]);
  assert.equal(r.error.message, `SET failed: EINVAL: "Invalid attribute"`);
});

Deno.test("NetlinkConn: sequence numbers wrap past 0, which is the kernel's multicast number", () => {
  const { conn, twin } = dialTwin(() => {}, { seq: 0xffffffff });
  assert.equal(conn.send(new Uint8Array(16), "A"), 1);
  assert.equal(conn.send(new Uint8Array(16), "B"), 2);
  assert.deepEqual(twin.sent.map((d) => d[8]), [1, 2]);
});

Deno.test("NetlinkConn.request times out naming the request", async () => {
  const { conn } = dialTwin(() => {});
  await assert.rejects(conn.request(new Uint8Array(16), "QUIET", 10), {
    message: "the kernel did not answer QUIET within 10 ms",
  });
});

Deno.test("the in-memory twin delivers multicasts only to joined groups", () => {
  const { conn, twin } = dialTwin(() => {});
  assert.equal(twin.multicast(9, new Uint8Array(16)), false);
  conn.joinGroup(9);
  assert.equal(twin.multicast(9, Uint8Array.of(1, 2)), true);
  const buffer = new Uint8Array(64);
  assert.equal(conn.receive(buffer), 2);
  assert.equal(conn.receive(buffer), -ERRNO.EAGAIN);
});

Deno.test("a real Generic Netlink connection: the kernel's controller resolves nlctrl (family id 0x10)", async () => {
  const conn = openNetlink();
  try {
    const reply = await conn.request(
      getFamilyRequest("nlctrl", 0, conn.portId),
      "CTRL_CMD_GETFAMILY",
      2000,
    );
    assert.ok(reply.kind === "reply");
    const family = parseFamilyReply(reply.message.body);
    assert.deepEqual([family.name, family.id], ["nlctrl", 0x10]);
    assert.ok(family.groups.has("notify"), "nlctrl has its notify group");
  } finally {
    conn.close();
  }
});

Deno.test("a real Generic Netlink connection: an unknown family is an ENOENT error reply", async () => {
  const conn = openNetlink();
  try {
    const reply = await conn.request(
      getFamilyRequest("NoSuchFamily", 0, conn.portId),
      "CTRL_CMD_GETFAMILY",
      2000,
    );
    assert.ok(reply.kind === "error");
    assert.deepEqual([reply.error.op, reply.error.errno], ["CTRL_CMD_GETFAMILY", ERRNO.ENOENT]);
  } finally {
    conn.close();
  }
});
