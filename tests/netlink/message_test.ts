import assert from "node:assert/strict";
import {
  encodeAttribute,
  NLA_F_NESTED,
  parseAttributes,
  readString,
  stringAttribute,
} from "../../lib/netlink/attribute.ts";
import {
  encodeMessage,
  NLM_F_ACK_TLVS,
  NLMSG_ERROR,
  parseErrorMessage,
  parseMessages,
} from "../../lib/netlink/message.ts";
import { fixture } from "../_fixtures.ts";

Deno.test("attributes: type flags are stripped and payloads padded to 4", () => {
  const a = encodeAttribute(7 | NLA_F_NESTED, Uint8Array.of(1, 2, 3, 4, 5));
  assert.deepEqual(a, Uint8Array.of(9, 0, 7, 0x80, 1, 2, 3, 4, 5, 0, 0, 0));
  const [d] = parseAttributes(a);
  assert.deepEqual([d.type, d.nested, Array.from(d.payload)], [7, true, [1, 2, 3, 4, 5]]);
  assert.equal(readString(parseAttributes(stringAttribute(2, "Jool"))[0]), "Jool");
});

Deno.test("attributes: a length shorter than the header is rejected", () => {
  assert.throws(() => parseAttributes(Uint8Array.of(2, 0, 1, 0)), /impossible length 2/);
});

Deno.test("messages: several messages in one datagram are split, lengths checked", () => {
  const one = encodeMessage({ type: 0x20, flags: 1, seq: 7, pid: 9 }, Uint8Array.of(1, 2, 3));
  const both = new Uint8Array([...one, ...one]);
  const parsed = parseMessages(both);
  assert.equal(parsed.length, 2);
  assert.deepEqual(Array.from(parsed[1].body), [1, 2, 3]);
  assert.throws(() => parseMessages(both.subarray(0, 10)), /truncated netlink header/);
  const lying = one.slice();
  lying[0] = 200;
  assert.throws(() => parseMessages(lying), /does not fit/);
  lying[0] = 4;
  assert.throws(() => parseMessages(lying), /does not fit/);
});

Deno.test("messages: the captured kernel batch is one message of its stated length", () => {
  const bytes = fixture("4.1.9", "a-kernel-multicast-4sessions");
  const [m] = parseMessages(bytes);
  assert.equal(m.length, bytes.length);
});

Deno.test("NLMSG_ERROR: errno, the echoed request and the ext-ack message are read", () => {
  const request = encodeMessage({ type: 0x20, flags: 1, seq: 42, pid: 5 }, new Uint8Array(8));
  const body = new Uint8Array([
    ...new Uint8Array(new Int32Array([-2]).buffer),
    ...request,
    ...stringAttribute(1, "Jool is not loaded"),
  ]);
  const [m] = parseMessages(
    encodeMessage({ type: NLMSG_ERROR, flags: NLM_F_ACK_TLVS, seq: 42, pid: 5 }, body),
  );
  const e = parseErrorMessage(m);
  assert.equal(e.errno, 2);
  assert.equal(e.request.seq, 42);
  assert.equal(e.extAckMessage, "Jool is not loaded");
  assert.throws(() => parseErrorMessage({ ...m, body: m.body.subarray(0, 8) }), /truncated/);
});
