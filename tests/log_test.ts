import assert from "node:assert/strict";
import { createLogger } from "../lib/log.ts";

const at = () => new Date("2026-12-01T10:00:00.5Z");

Deno.test("JSON logs: one object per line, fixed fields first, fields cannot replace them", () => {
  const lines: string[] = [];
  const log = createLogger("info", (l) => lines.push(l), "json", at);
  log.warn("two\nlines", { event: "send.lost", datagrams: 2, level: "debug", big: 2n ** 64n });
  log.info("no event");
  log.debug("filtered");
  log.level = "debug";
  log.debug("now written", { event: "d" });
  assert.equal(lines.length, 3);
  for (const line of lines) {
    assert.ok(line.endsWith("}\n") && !line.slice(0, -1).includes("\n"), line);
  }
  assert.deepEqual(JSON.parse(lines[0]), {
    time: "2026-12-01T10:00:00.500Z",
    level: "warn",
    event: "send.lost",
    message: "two\nlines",
    datagrams: 2,
    big: "18446744073709551616",
  });
  assert.deepEqual(Object.keys(JSON.parse(lines[1])), ["time", "level", "event", "message"]);
  assert.equal(JSON.parse(lines[1]).event, "message");
  assert.equal(JSON.parse(lines[2]).level, "debug");
});

Deno.test("text logs stay `joold: <level>: <message>` and ignore the fields", () => {
  const lines: string[] = [];
  const log = createLogger("info", (l) => lines.push(l));
  log.error("boom", { event: "failed", x: 1 });
  assert.deepEqual(lines, ["joold: error: boom\n"]);
});
