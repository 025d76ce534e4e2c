/**
 * The STATS_FOREACH exchange captured from the lab's Jool 4.1.13 (scenario e-kernel-stats:
 * lab/guest/kstats.ts in namespace J after a sync), against `jool stats display --all --csv` run
 * just before and just after it in the same namespace (tests/fixtures/4.1.13/f-stats-jool-*.csv).
 */
import assert from "node:assert/strict";
import { decodeJoolMessage } from "../../lib/jool/message.ts";
import { decodeStatsReply, jooldOnly, statsRequest } from "../../lib/jool/stats.ts";
import { parseMessages } from "../../lib/netlink/message.ts";
import { fixture } from "../_fixtures.ts";

const DIR = new URL("../fixtures/4.1.13/", import.meta.url).pathname;

function joolCsv(name: string): Map<string, bigint> {
  const values = new Map<string, bigint>();
  for (const line of Deno.readTextFileSync(`${DIR}${name}`).split("\n")) {
    const m = /^(JSTAT[A-Z0-9_]*),(\d+)$/.exec(line.trim());
    if (m) values.set(m[1], BigInt(m[2]));
  }
  return values;
}

Deno.test("the captured 4.1.13 stats reply decodes to every counter jool shows, each between jool's two reads", () => {
  const [m] = parseMessages(fixture("4.1.13", "f-stats-reply-1"));
  const page = decodeStatsReply(decodeJoolMessage(m));
  assert.equal(page.more, false, "one page: 83 counters fit");
  assert.equal(page.last, 83, "JSTAT_UNKNOWN is the last id the kernel sends");
  const before = joolCsv("f-stats-jool-before.csv");
  const after = joolCsv("f-stats-jool-after.csv");
  assert.ok(before.size >= 80, `jool showed ${before.size} counters`);
  for (const [name, low] of before) {
    const value = page.values.get(name);
    assert.ok(value !== undefined, `${name}: jool shows it, the decoder has no such name`);
    assert.ok(
      value >= low && value <= after.get(name)!,
      `${name}: ${value}, jool ${low}..${after.get(name)}`,
    );
  }
  const joold = jooldOnly(page.values);
  assert.equal(joold.size, 14);
  assert.ok(joold.get("JSTAT_JOOLD_ACKS")! > 0n);
  assert.ok(joold.get("JSTAT_JOOLD_SSS_SENT")! > 0n);
});

Deno.test("statsRequest builds the request the 4.1.13 kernel answered, byte for byte", () => {
  const captured = fixture("4.1.13", "f-stats-request-1");
  const [m] = parseMessages(captured);
  const j = decodeJoolMessage(m);
  const built = statsRequest({
    familyId: m.type,
    version: j.header.version,
    iname: j.header.iname,
    seq: m.seq,
    pid: m.pid,
  });
  assert.deepEqual(built, captured);
});
