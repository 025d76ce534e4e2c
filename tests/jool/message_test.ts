import assert from "node:assert/strict";
import { getFamilyRequest, parseFamilyReply } from "../../lib/genetlink/controller.ts";
import { parseMessages } from "../../lib/netlink/message.ts";
import { decodeJoolHeader } from "../../lib/jool/header.ts";
import {
  batchPayload,
  decodeJoolMessage,
  errorReport,
  joolRequest,
  sessionEntriesAttribute,
} from "../../lib/jool/message.ts";
import {
  COMMANDS_4_1,
  formatVersion,
  parseVersion,
  unpackVersion,
} from "../../lib/jool/version.ts";
import { BATCHES, fixture, fixtureIndex, VERSIONS } from "../_fixtures.ts";

for (const v of VERSIONS) {
  const index = fixtureIndex(v);

  Deno.test(`${v}: the GETFAMILY request is built byte-exact`, () => {
    const real = fixture(v, "e-ctrl-getfamily-request");
    const [m] = parseMessages(real);
    assert.deepEqual(getFamilyRequest("Jool", m.seq, m.pid), real);
  });

  Deno.test(`${v}: the GETFAMILY reply yields the family id and the joold group`, () => {
    const [m] = parseMessages(fixture(v, "e-ctrl-getfamily-response"));
    const family = parseFamilyReply(m.body);
    assert.equal(family.name, "Jool");
    assert.equal(family.id, index.family_id);
    assert.equal(family.groups.get("joold"), index.joold_mcast_group_id);
  });

  for (const batch of BATCHES) {
    Deno.test(`${v}: a kernel batch (${batch}) yields exactly the UDP payload`, () => {
      const [m] = parseMessages(fixture(v, `a-kernel-multicast-${batch}`));
      assert.equal(m.type, index.family_id);
      const jm = decodeJoolMessage(m);
      assert.equal(jm.cmd, 0);
      assert.equal(jm.genlVersion, 2);
      assert.equal(jm.header.iname, "default");
      assert.equal(formatVersion(unpackVersion(jm.header.version)), index.jool_version);
      assert.equal(errorReport(jm), null);
      assert.deepEqual(batchPayload(jm), fixture(v, `d-udp-payload-${batch}`));
    });

    Deno.test(`${v}: JOOLD_ADD (${batch}) is built byte-exact from the UDP payload`, () => {
      const real = fixture(v, `c-joold-add-${batch}`);
      const [m] = parseMessages(real);
      const header = decodeJoolHeader(m.body.subarray(4));
      const built = joolRequest(
        {
          familyId: index.family_id,
          version: header.version,
          iname: "default",
          seq: m.seq,
          pid: m.pid,
        },
        COMMANDS_4_1.JOOLD_ADD,
        sessionEntriesAttribute(fixture(v, `d-udp-payload-${batch}`)),
      );
      assert.deepEqual(built, real);
    });
  }

  Deno.test(`${v}: JOOLD_ACK is built byte-exact`, () => {
    const real = fixture(v, "b-joold-ack");
    const [m] = parseMessages(real);
    const version = packedVersion(index.jool_version);
    assert.deepEqual(
      joolRequest(
        { familyId: index.family_id, version, iname: "default", seq: m.seq, pid: m.pid },
        COMMANDS_4_1.JOOLD_ACK,
      ),
      real,
    );
  });
}

function packedVersion(text: string): number {
  const v = parseVersion(text);
  return ((v.major << 24) | (v.minor << 16) | (v.revision << 8) | v.development) >>> 0;
}

Deno.test("an error report carries the kernel's code and message", () => {
  const attrs = Uint8Array.of(
    ...[6, 0, 1, 0, 3, 0, 0, 0], // JNLAERR_CODE u16 = 3 (ESRCH)
    ...[12, 0, 2, 0, ...new TextEncoder().encode("no jool"), 0],
  );
  const body = new Uint8Array(4 + 28 + attrs.length);
  body.set([9, 2], 0);
  body.set(new TextEncoder().encode("jool"), 4);
  body.set([4, 1, 13, 0, 2, 1], 8); // version, xt=2, flags=ERROR
  body.set(attrs, 32);
  const jm = decodeJoolMessage({ type: 0x23, flags: 0, seq: 1, pid: 0, body });
  assert.deepEqual(errorReport(jm), { code: 3, message: "no jool" });
});

Deno.test("decodeJoolMessage rejects a wrong magic and truncated headers", () => {
  const [m] = parseMessages(fixture("4.1.13", "a-kernel-multicast-1session"));
  const bad = m.body.slice();
  bad[4] = 0x4a; // "Jool"
  assert.throws(() => decodeJoolMessage({ ...m, body: bad }), /magic/);
  assert.throws(() => decodeJoolMessage({ ...m, body: m.body.subarray(0, 20) }), RangeError);
  assert.throws(() => decodeJoolMessage({ ...m, body: m.body.subarray(0, 2) }), RangeError);
});
