// The kernel->ACK latency of ANY daemon, seen from the kernel: reads a packet capture of a
// translator's netlink traffic (tcpdump on an nlmon device in its namespace) and pairs each session
// batch the kernel sent (JOOLD_ADD towards user space) with the next JOOLD_ACK that came back.
// The timestamps are taken by the kernel's netlink tap when each message is queued, so the latency
// covers everything the daemon does, its wake-up included, and is the same yardstick for the C
// daemon and for ours.
//   deno run --allow-read acklat.ts CAPTURE.pcap FAMILY_ID JOOL_VERSION
// Prints one line: batches=N acked=N span_s=S rate=R/s p50=.. p90=.. p99=.. max=.. mean=.. (µs).
import { commandsFor, parseVersion } from "../../lib/jool/version.ts";
import { analyzeCapture, formatAckLatency } from "./pcap.ts";

const [file, family, version] = Deno.args;
if (!file || !family || !version) {
  console.error("usage: acklat.ts CAPTURE.pcap FAMILY_ID JOOL_VERSION");
  Deno.exit(2);
}
const commands = commandsFor(parseVersion(version));
const result = analyzeCapture(Deno.readFileSync(file), {
  family: Number(family),
  ack: commands.JOOLD_ACK,
});
console.log(formatAckLatency(result));
