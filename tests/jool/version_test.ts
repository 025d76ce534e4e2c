import assert from "node:assert/strict";
import {
  advertiseWorks,
  commandsFor,
  formatVersion,
  isMaptRelease,
  packVersion,
  parseVersion,
  sessionFormatFor,
  unpackVersion,
} from "../../lib/jool/version.ts";

// Facts from NICMx/Jool (common/xlat.h and enum joolnl_operation in common/config.h per tag;
// the session serializer in mod/common/nl/attribute.c, the queue in mod/common/joold.c).
const TABLE = [
  // version, JOOLD_ADD/ADVERTISE/ACK, session format, advertise works
  ["4.1.0", [27, 28, 29], "nested", false],
  ["4.1.9.0", [27, 28, 29], "nested", false],
  ["4.1.11.0", [27, 28, 29], "nested", true],
  ["4.1.12.0", [27, 28, 29], "compact48", true],
  ["4.1.13.0", [27, 28, 29], "compact36", true],
  ["4.1.15.0", [27, 28, 29], "compact36", true],
  ["4.1.255.2", [31, 32, 33], "nested", false], // v4.2.0-rc1
  ["4.1.255.3", [31, 32, 33], "nested", false], // v4.2.0-rc2
  ["4.1.255.5", [31, 32, 33], "compact36", true], // v4.2.0-rc3
  ["4.2.0.0", [31, 32, 33], "compact36", true],
] as const;

for (const [text, [add, advertise, ack], format, works] of TABLE) {
  Deno.test(`Jool ${text}: JOOLD_ADD/ADVERTISE/ACK are ${add}/${advertise}/${ack}, sessions ${format}, advertise ${works ? "works" : "is a no-op"}`, () => {
    const v = parseVersion(text);
    const c = commandsFor(v);
    assert.deepEqual([c.JOOLD_ADD, c.JOOLD_ADVERTISE, c.JOOLD_ACK], [add, advertise, ack]);
    // The commands before FMRT do not move.
    assert.deepEqual([c.INSTANCE_HELLO, c.GLOBAL_FOREACH, c.GLOBAL_UPDATE], [2, 8, 9]);
    assert.equal(sessionFormatFor(v), format);
    assert.equal(advertiseWorks(v), works);
  });
}

Deno.test("4.1.255.x is recognized as a 4.2.0 release candidate, and only that", () => {
  assert.equal(isMaptRelease(parseVersion("4.1.255.5")), true);
  assert.equal(isMaptRelease(parseVersion("4.1.15")), false);
  assert.equal(isMaptRelease(parseVersion("4.2.0")), false);
});

Deno.test("a Jool version round-trips through the header's be32 packing and the sysfs text", () => {
  const v = parseVersion("4.1.255.5\n");
  assert.equal(packVersion(v), 0x0401ff05);
  assert.deepEqual(unpackVersion(0x0401ff05), v);
  assert.equal(formatVersion(v), "4.1.255.5");
  assert.throws(() => parseVersion("jool"), SyntaxError);
  assert.throws(() => parseVersion("4.1.256"), SyntaxError);
});
