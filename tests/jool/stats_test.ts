/**
 * Jool's counters: the id tables per version (from Jool's common/stats.h), the STATS_FOREACH
 * request, and the reply decoder on built pages, error rows, mutated bytes, and the reply captured
 * from the lab's Jool 4.1.13 (tests/fixtures/4.1.13/f-stats-*).
 */
import assert from "node:assert/strict";
import { encodeJoolHeader, JOOLNLHDR_FLAGS_M } from "../../lib/jool/header.ts";
import { decodeJoolMessage } from "../../lib/jool/message.ts";
import {
  decodeStatsReply,
  hasJooldStats,
  JNLOP_STATS_FOREACH,
  jooldOnly,
  statNames,
  statsAttributes,
  statsRequest,
} from "../../lib/jool/stats.ts";
import { type JoolVersion, packVersion, parseVersion } from "../../lib/jool/version.ts";
import { concat, encodeAttribute } from "../../lib/netlink/attribute.ts";
import { parseMessages } from "../../lib/netlink/message.ts";
import { encodeGenlHeader } from "../../lib/genetlink/controller.ts";

const v = parseVersion;

function u64(id: number, value: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, value, true);
  return encodeAttribute(id, b);
}

function reply(version: JoolVersion, attributes: Uint8Array, flags = 0) {
  const body = concat(
    encodeGenlHeader({ cmd: JNLOP_STATS_FOREACH, version: 2 }),
    encodeJoolHeader({ version: packVersion(version), xt: 2, flags, iname: "default" }),
    attributes,
  );
  return decodeJoolMessage({ type: 0x23, flags: 0, seq: 1, pid: 1, body });
}

Deno.test("stat ids per version: 4.1.12 has JSTAT_JOOLD_FLUSH_ASAP, 4.1.13 dropped it, 4.1.9-4.1.11 have no JSTAT_JOOLD_*", () => {
  const rows: [string, number, string][] = [
    ["4.1.9", 68, "JSTAT_ICMPEXT_BIG"],
    ["4.1.9", 69, "JSTAT_UNKNOWN"],
    ["4.1.12", 69, "JSTAT_JOOLD_EMPTY"],
    ["4.1.12", 73, "JSTAT_JOOLD_FLUSH_ASAP"],
    ["4.1.12", 83, "JSTAT_JOOLD_ACKS"],
    ["4.1.12", 84, "JSTAT_UNKNOWN"],
    ["4.1.13", 73, "JSTAT_JOOLD_PKT_FULL"],
    ["4.1.13", 75, "JSTAT_JOOLD_SSS_QUEUED"],
    ["4.1.13", 82, "JSTAT_JOOLD_ACKS"],
    ["4.1.13", 83, "JSTAT_UNKNOWN"],
    ["4.1.15", 82, "JSTAT_JOOLD_ACKS"],
  ];
  for (const [version, id, name] of rows) {
    assert.equal(statNames(v(version))?.[id], name, `${version} #${id}`);
  }
  assert.equal(statNames(v("4.1.13"))?.length, 84); // ids 1-83; JSTAT_PADDING = 84
  for (
    const [version, has] of [["4.1.9", false], ["4.1.11", false], ["4.1.12", true], [
      "4.1.13",
      true,
    ]] as const
  ) {
    assert.equal(hasJooldStats(v(version)), has, version);
  }
  assert.equal(statNames(v("4.1.255.5")), undefined, "4.2-rc numbering unknown");
  assert.equal(statNames(v("4.1.8")), undefined);
});

Deno.test("statsRequest: the Jool header of the instance, no attribute on the first page, JNLAR_OFFSET_U8 after", () => {
  const target = { familyId: 0x23, version: 0x04010d00, iname: "default", seq: 5, pid: 77 };
  const [m] = parseMessages(statsRequest(target));
  const j = decodeJoolMessage(m);
  assert.equal(m.type, 0x23);
  assert.equal(j.cmd, 7);
  assert.equal(j.header.iname, "default");
  assert.equal(j.header.version, 0x04010d00);
  assert.equal(j.attributes.length, 0);
  assert.deepEqual([...decodeJoolMessage(parseMessages(statsRequest(target, 70))[0]).attributes], [
    5,
    0,
    9,
    0,
    70,
    0,
    0,
    0,
  ]);
  assert.throws(() => statsAttributes(256), RangeError);
  assert.throws(() => statsAttributes(-1), RangeError);
});

Deno.test("decodeStatsReply names ids by the reply's own version, skips JSTAT_PADDING, reads FLAGS_M", () => {
  const pad = encodeAttribute(84, new Uint8Array()); // 4.1.13's JSTAT_PADDING
  const attrs = concat(u64(82, 5n), pad, u64(77, 2n ** 63n + 1n));
  const page13 = decodeStatsReply(reply(v("4.1.13"), attrs));
  assert.deepEqual([...page13.values], [["JSTAT_JOOLD_ACKS", 5n], [
    "JSTAT_JOOLD_SSS_RCVD",
    2n ** 63n + 1n,
  ]]);
  assert.equal(page13.last, 77);
  assert.equal(page13.more, false);
  // The same ids under 4.1.12 are other counters, and 84 is JSTAT_UNKNOWN there, not the pad.
  const page12 = decodeStatsReply(
    reply(v("4.1.12"), concat(u64(82, 5n), u64(77, 1n)), JOOLNLHDR_FLAGS_M),
  );
  assert.deepEqual([...page12.values.keys()], ["JSTAT_JOOLD_ADS", "JSTAT_JOOLD_SSS_SENT"]);
  assert.equal(page12.more, true);
  assert.throws(() => decodeStatsReply(reply(v("4.1.12"), pad)), /stat 84 is 0 bytes long/);
  const unknown = decodeStatsReply(reply(v("4.1.13"), u64(120, 1n)));
  assert.deepEqual([...unknown.values], [["JSTAT_#120", 1n]]);
  assert.deepEqual(
    [...jooldOnly(new Map([["JSTAT_SUCCESS", 1n], ["JSTAT_JOOLD_ACKS", 2n]]))],
    [["JSTAT_JOOLD_ACKS", 2n]],
  );
});

Deno.test("decodeStatsReply error rows: a counter not 8 bytes, an attribute past the end, an unknown numbering", () => {
  assert.throws(
    () => decodeStatsReply(reply(v("4.1.13"), encodeAttribute(3, new Uint8Array(4)))),
    /stat 3 is 4 bytes long, expected 8/,
  );
  assert.throws(
    () => decodeStatsReply(reply(v("4.1.13"), Uint8Array.of(40, 0, 3, 0, 1, 2, 3, 4))),
    RangeError,
  );
  assert.throws(
    () => decodeStatsReply(reply(v("4.2.0"), u64(1, 1n))),
    /numbering joold does not know/,
  );
});

Deno.test("decodeStatsReply over mutated replies throws only RangeError", () => {
  const base = reply(
    v("4.1.13"),
    concat(...Array.from({ length: 83 }, (_, i) => u64(i + 1, BigInt(i)))),
  );
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let i = 0; i < 3000; i++) {
    const bytes = base.attributes.slice(0, Math.floor(rand() * (base.attributes.length + 1)));
    for (let k = 0; k < 3; k++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
    try {
      decodeStatsReply({ ...base, attributes: bytes });
    } catch (error) {
      assert.ok(error instanceof RangeError, String(error));
    }
  }
});
