import assert from "node:assert/strict";
import { type Counters, createCounters } from "../../lib/counters.ts";
import { formatStats } from "../../lib/stats/reply.ts";

Deno.test("formatStats is the C daemon's six lines, each from its documented counter", () => {
  const c = createCounters();
  c.kernelAddsSent = 6;
  c.kernelAddBytes = 1260;
  c.netDatagramsReceived = 7;
  c.netBytesReceived = 1470;
  c.netDatagramsSent = 3;
  c.netBytesSent = 2 ** 53 - 1;
  assert.equal(
    formatStats(c),
    "KERNEL_SENT_PKTS,6\nKERNEL_SENT_BYTES,1260\nNET_RCVD_PKTS,7\nNET_RCVD_BYTES,1470\n" +
      "NET_SENT_PKTS,3\nNET_SENT_BYTES,9007199254740991\n",
  );
});

Deno.test("formatStats reads no other counter (batches received are not KERNEL_SENT)", () => {
  const c = createCounters();
  for (const key of Object.keys(c) as (keyof Counters)[]) c[key] = 5;
  for (
    const key of [
      "kernelAddsSent",
      "kernelAddBytes",
      "netDatagramsReceived",
      "netBytesReceived",
      "netDatagramsSent",
      "netBytesSent",
    ] as const
  ) c[key] = 0;
  assert.equal(
    formatStats(c),
    "KERNEL_SENT_PKTS,0\nKERNEL_SENT_BYTES,0\nNET_RCVD_PKTS,0\nNET_RCVD_BYTES,0\n" +
      "NET_SENT_PKTS,0\nNET_SENT_BYTES,0\n",
  );
});
