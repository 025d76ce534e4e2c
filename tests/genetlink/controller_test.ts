import assert from "node:assert/strict";
import {
  CTRL_ATTR_FAMILY_ID,
  CTRL_ATTR_FAMILY_NAME,
  CTRL_ATTR_MCAST_GROUPS,
  CTRL_ATTR_MCAST_GRP_ID,
  CTRL_ATTR_MCAST_GRP_NAME,
  CTRL_CMD_NEWFAMILY,
  decodeGenlHeader,
  encodeGenlHeader,
  getFamilyRequest,
  parseFamilyReply,
} from "../../lib/genetlink/controller.ts";
import {
  concat,
  encodeAttribute,
  NLA_F_NESTED,
  stringAttribute,
} from "../../lib/netlink/attribute.ts";
import { parseMessages } from "../../lib/netlink/message.ts";
import { fixture, fixtureIndex, VERSIONS } from "../_fixtures.ts";

const u16 = (type: number, v: number) => encodeAttribute(type, Uint8Array.of(v & 0xff, v >> 8));
const u32 = (type: number, v: number) =>
  encodeAttribute(type, new Uint8Array(Uint32Array.of(v).buffer));
const group = (index: number, name: string | null, id: number | null) =>
  encodeAttribute(
    index | NLA_F_NESTED,
    concat(
      name === null ? new Uint8Array() : stringAttribute(CTRL_ATTR_MCAST_GRP_NAME, name),
      id === null ? new Uint8Array() : u32(CTRL_ATTR_MCAST_GRP_ID, id),
    ),
  );
const reply = (...attributes: Uint8Array[]) =>
  concat(encodeGenlHeader({ cmd: CTRL_CMD_NEWFAMILY, version: 2 }), ...attributes);

for (const v of VERSIONS) {
  Deno.test(`CTRL_CMD_GETFAMILY (${v}): request byte-exact, reply gives the recorded family and joold group`, () => {
    const [request] = parseMessages(fixture(v, "e-ctrl-getfamily-request"));
    assert.deepEqual(
      getFamilyRequest("Jool", request.seq, request.pid),
      fixture(v, "e-ctrl-getfamily-request"),
    );
    const [m] = parseMessages(fixture(v, "e-ctrl-getfamily-response"));
    const family = parseFamilyReply(m.body);
    const index = fixtureIndex(v);
    assert.equal(family.name, "Jool");
    assert.equal(family.id, index.family_id);
    assert.equal(family.groups.get("joold"), index.joold_mcast_group_id);
  });
}

Deno.test("a family reply: groups without a name or an id are skipped, the others kept", () => {
  const family = parseFamilyReply(reply(
    u16(CTRL_ATTR_FAMILY_ID, 0x1234),
    stringAttribute(CTRL_ATTR_FAMILY_NAME, "Jool"),
    encodeAttribute(
      CTRL_ATTR_MCAST_GROUPS | NLA_F_NESTED,
      concat(group(1, "joold", 9), group(2, null, 10), group(3, "x", null), group(4, "y", 11)),
    ),
  ));
  assert.equal(family.id, 0x1234);
  assert.deepEqual([...family.groups], [["joold", 9], ["y", 11]]);
});

Deno.test("a family reply without a family id, or with a truncated genlmsghdr, is a RangeError", () => {
  assert.throws(
    () => parseFamilyReply(reply(stringAttribute(CTRL_ATTR_FAMILY_NAME, "Jool"))),
    /without CTRL_ATTR_FAMILY_ID/,
  );
  assert.throws(() => parseFamilyReply(Uint8Array.of(1, 2, 0)), /truncated genlmsghdr: 3 bytes/);
  assert.throws(
    () => parseFamilyReply(concat(reply(), Uint8Array.of(8, 0, 1, 0, 0x34))),
    RangeError,
  );
  assert.deepEqual(decodeGenlHeader(encodeGenlHeader({ cmd: 3, version: 1 })), {
    cmd: 3,
    version: 1,
  });
});
