/**
 * Lab guest tool: reads the kernel's JSTAT_JOOLD_* counters the way the daemon does
 * (lib/kernel/stats.ts over a netlink connection: the same request bytes and decoder) and prints
 * them as `NAME,value` lines, or `none` when this Jool has no such counters (before 4.1.12).
 * With `--capture DIR` it also writes the request and reply datagrams as .hex files (the format of
 * tests/fixtures/), which is where tests/fixtures/4.1.13/f-stats-* come from.
 *
 * Usage (inside the instance's namespace): deno run --allow-ffi lab/guest/kstats.ts [--instance
 * NAME] [--capture DIR]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { decodeJoolMessage } from "../../lib/jool/message.ts";
import { statsRequest } from "../../lib/jool/stats.ts";
import { packVersion } from "../../lib/jool/version.ts";
import { readJooldStatsWith } from "../../lib/kernel/stats.ts";
import { resolveStartup } from "../../lib/kernel/startup.ts";
import { openNetlink } from "../../lib/netlink/conn.ts";
import { encodeMessage } from "../../lib/netlink/message.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { instance: { type: "string", default: "default" }, capture: { type: "string" } },
});
const instance = values.instance!;

function hex(bytes: Uint8Array): string {
  const lines: string[] = [];
  for (let i = 0; i < bytes.length; i += 16) {
    lines.push(
      [...bytes.subarray(i, i + 16)].map((b) => b.toString(16).padStart(2, "0")).join(" "),
    );
  }
  return lines.join("\n") + "\n";
}

const conn = openNetlink();
try {
  const startup = await resolveStartup(conn, { instance });
  let page = 0;
  const stats = await readJooldStatsWith(async (after) => {
    const request = statsRequest({
      familyId: startup.familyId,
      version: packVersion(startup.version),
      iname: instance,
      seq: 0,
      pid: conn.portId,
    }, after);
    const reply = await conn.request(request, "STATS_FOREACH", 5000);
    if (reply.kind !== "reply") {
      throw new Error(`STATS_FOREACH: ${reply.kind === "error" ? reply.error.message : "an ack"}`);
    }
    if (values.capture) {
      page++;
      Deno.writeTextFileSync(`${values.capture}/f-stats-request-${page}.hex`, hex(request));
      Deno.writeTextFileSync(
        `${values.capture}/f-stats-reply-${page}.hex`,
        hex(encodeMessage(reply.message, reply.message.body)), // the datagram as received
      );
    }
    return decodeJoolMessage(reply.message);
  }, startup.version);
  if (stats === undefined) console.log("none");
  else for (const [name, value] of stats) console.log(`${name},${value}`);
} finally {
  conn.close();
}
