// What Jool's kernel pays per JOOLD_ADD and per session (bench.sh --bench-addcost): sends COUNT
// synthetic UDP sessions of one BIB entry (Jool 4.1.13's 36-byte records, as a bulk of the lab's
// table carries them) to this namespace's instance, in JOOLD_ADDs of CHUNK sessions, and times the
// sends. Jool handles a Generic Netlink request inside the sender's sendmsg(), so the time of the
// sends is the kernel's own work; no daemon runs. BLOCK makes each run's BIB entry its own.
//   deno run --allow-ffi --allow-read addcost.ts COUNT CHUNK BLOCK
import { openKernel } from "../../lib/kernel/open.ts";
import { Reactor } from "../../lib/reactor.ts";
import { createCounters } from "../../lib/counters.ts";
import { encodeCompact36 } from "../../lib/jool/session.ts";
import { concat } from "../../lib/netlink/attribute.ts";

const [count, chunk, block] = Deno.args.map(Number);
const reactor = new Reactor();
const { channel } = await openKernel(reactor, { instance: "default", counters: createCounters() });
let errors = 0;
channel.onError((e) => {
  if (errors++ < 3) console.error(`addcost: ${e.message}`);
});
channel.onBatch(() => {});

const src6 = new Uint8Array(16);
src6.set([0x20, 0x01, 0x0d, 0xb8], 0);
src6[15] = 1;
const records = Array.from({ length: count }, (_, i) =>
  encodeCompact36({
    proto: 1, // UDP
    src6,
    src6Port: 20000 + block,
    src4: new Uint8Array([192, 0, 2, 1]),
    src4Port: 61001 + block,
    dst4: new Uint8Array([192, 0, 2, 8 + (block % 200)]),
    dst4Port: 1000 + i,
    expirationMs: 3_000_000,
    state: 0,
    timer: 0,
  }));
const payloads: Uint8Array[] = [];
for (let i = 0; i < count; i += chunk) payloads.push(concat(...records.slice(i, i + chunk)));

const t0 = performance.now();
for (const p of payloads) channel.add(p);
const ms = performance.now() - t0;
// An error reply arrives after the sends: give it a moment to be read.
await new Promise((r) => setTimeout(r, 300));
console.log(
  `BENCH addcost chunk=${chunk} adds=${payloads.length} sessions=${count} ms=${ms.toFixed(1)} ` +
    `us_per_add=${(ms * 1000 / payloads.length).toFixed(1)} ` +
    `us_per_session=${(ms * 1000 / count).toFixed(2)} errors=${errors}`,
);
channel.close();
Deno.exit(0);
