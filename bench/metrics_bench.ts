// A scrape's own work, without the HTTP server: decoding the kernel's stats reply (the captured
// 4.1.13 one: 83 counters) to its JSTAT_JOOLD_* ones, and writing the exposition of a plain
// daemon's counters, histogram and those kernel counters. Run: deno task bench (or, as the daemon
// runs, deno bench --v8-flags=--no-turbofan bench/metrics_bench.ts).
import { createCounters } from "../lib/counters.ts";
import { decodeJoolMessage } from "../lib/jool/message.ts";
import { decodeStatsReply, jooldOnly } from "../lib/jool/stats.ts";
import { LATENCY_BOUNDS_US } from "../lib/kernel/latency.ts";
import { formatMetrics } from "../lib/metrics/exposition.ts";
import { parseMessages } from "../lib/netlink/message.ts";
import { fixture } from "../tests/_fixtures.ts";

const reply = fixture("4.1.13", "f-stats-reply-1");
const counters = createCounters();
for (const [i, k] of (Object.keys(counters) as (keyof typeof counters)[]).entries()) {
  counters[k] = i * 1000 + 7;
}
const kernelStats = jooldOnly(decodeStatsReply(decodeJoolMessage(parseMessages(reply)[0])).values);
const snapshot = {
  counters,
  ackLatencyUs: {
    bounds: LATENCY_BOUNDS_US,
    counts: LATENCY_BOUNDS_US.map((_, i) => i * 11).concat([3]),
    sum: 123456,
  },
  info: {
    version: "0.1.0",
    joolVersion: "4.1.13",
    sessionFormat: "compact36" as const,
    instance: "default",
    mode: "plain" as const,
  },
  kernelStats,
};

Deno.bench("decode the kernel's stats reply to its joold counters", { group: "scrape" }, () => {
  jooldOnly(decodeStatsReply(decodeJoolMessage(parseMessages(reply)[0])).values);
});
Deno.bench("write the exposition (plain daemon, kernel counters)", { group: "scrape" }, () => {
  formatMetrics(snapshot);
});
