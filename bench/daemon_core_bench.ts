// The daemon core's own work per kernel batch on the sending side, without the kernel channel or a
// socket: a 36-session batch (a full bulk batch of Jool 4.1.13) into the daemon, as a burst of 556
// (a 20 000-session bulk) ends. Plain: the batch goes to the network channel as it is; keyed: it is
// joined and split into envelopes of at most 1452 bytes, sealed (libcrypto when --allow-ffi grants
// it, else node:crypto), kept in the resend ring and sent.
//   deno bench --allow-all --v8-flags=--no-turbofan bench/daemon_core_bench.ts
import type { KernelChannel, NetworkChannel, PayloadHandler } from "../lib/channel.ts";
import { createCounters } from "../lib/counters.ts";
import { Daemon } from "../lib/daemon.ts";
import { silentLogger } from "../lib/log.ts";
import { SecureChannel } from "../lib/secure/channel.ts";
import { loadNativeCipher } from "../lib/secure/envelope.ts";
import { parseKeyFile } from "../lib/secure/keyfile.ts";
import { syntheticPayload } from "../lib/warmup.ts";

console.error(`cipher: ${await loadNativeCipher()}`);
const keys = parseKeyFile("5a".repeat(32), "sync.key");
const batch = syntheticPayload("compact36", 36, 600_000);

function core(keyed: boolean): () => void {
  const sink: NetworkChannel = { onDatagram() {}, send() {}, close() {} };
  let onBatch: PayloadHandler = () => {};
  let drained = () => {};
  const kernel: KernelChannel = {
    onBatch: (handler) => (onBatch = handler),
    onDrained: (handler) => (drained = handler),
    onError() {},
    add() {},
    advertise() {},
    close() {},
  };
  const network = keyed
    ? new SecureChannel({ inner: sink, keys, counters: createCounters(), log: silentLogger })
    : sink;
  new Daemon({ kernel, network, counters: createCounters(), log: silentLogger }).start();
  return () => {
    for (let i = 0; i < 556; i++) onBatch(batch);
    drained();
  };
}

const plain = core(false);
const keyed = core(true);
Deno.bench(
  "daemon core: 556 batches of 36 sessions, plain",
  { group: "bulk", baseline: true },
  plain,
);
Deno.bench("daemon core: 556 batches of 36 sessions, keyed", { group: "bulk" }, keyed);
