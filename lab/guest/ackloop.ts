/**
 * Lab guest tool: the receive+ACK-only ceiling of the bulk benchmark (guest/bench.sh, kind
 * `ackonly`). It opens the kernel channel exactly as the daemon does (lib/kernel/open.ts: the same
 * socket, receive loop and ACK) and forwards nothing, so the kernel's advertise runs as fast as
 * the kernel and one ACKing reader allow. Prints "ready" once it has joined the group.
 *
 * Usage (inside the translator's namespace): deno run --allow-ffi=<libc> --allow-read=/sys/module
 * lab/guest/ackloop.ts
 *
 * @module
 */

import { createCounters } from "../../lib/counters.ts";
import { openKernel } from "../../lib/kernel/open.ts";
import { Reactor } from "../../lib/reactor.ts";

const reactor = new Reactor();
const loop = reactor.run();
const counters = createCounters();
const { channel } = await openKernel(reactor, { instance: "default", counters });
channel.onBatch(() => {}); // the channel has ACKed the batch when this runs
Deno.addSignalListener("SIGTERM", () => {
  channel.close();
  reactor.stop();
});
console.log("ready");
await loop;
console.log(`batches ${counters.kernelBatchesReceived}`);
