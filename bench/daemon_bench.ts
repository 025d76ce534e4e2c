// End-to-end daemon throughput on the host, ACK-gated like the kernel: a fake Jool kernel (real
// netlink bytes over NETLINK_USERSOCK) sends one 1-session batch, waits for its JOOLD_ACK, sends the
// next; the daemon forwards each batch to a real multicast group in a network namespace pair.
// batches/s here = the kernel->daemon->ACK rate that caps sync throughput (docs/DESIGN.md, "One
// FFI reactor for every socket": the C daemon reaches 244-366 sessions/s in the lab with one
// session per batch). Needs root.
//   deno task bench
import { waitReadableAsync } from "../ffi/libc.ts";
import type { NetConfig } from "../lib/config/types.ts";
import { COMMANDS_4_1 } from "../lib/jool/version.ts";
import { formatLatency } from "../lib/kernel/latency.ts";
import { MulticastChannel } from "../lib/net/multicast.ts";
import { Reactor } from "../lib/reactor.ts";
import { node } from "../tests/_daemon_node.ts";
import { fixture } from "../tests/_fixtures.ts";
import { Netns, netnsUnavailable, veth } from "../tests/_netns.ts";

const unavailable = netnsUnavailable();
if (unavailable === null) {
  const a = new Netns("bench-a");
  const b = new Netns("bench-b");
  veth(a, "sync0", ["2001:db8:ff08::4/64"], b, "sync0", ["2001:db8:ff08::5/64"]);
  const reactor = new Reactor();
  const running = reactor.run();
  const net: NetConfig = {
    multicastAddress: "ff08::db8:64:64",
    multicastPort: "6464",
    inInterface: "sync0",
    outInterface: "sync0",
    ttl: 1,
    reuseAddress: true,
  };
  const started = await node(a, reactor, net, "4.1.13");
  started.stopServing(); // from here on the bench loop answers for the kernel
  const peer = b.enter(() => MulticastChannel.open(reactor, net));
  const { kernel, daemon } = started;
  const one = fixture("4.1.13", "d-udp-payload-1session");
  const acks = () => kernel.requests(COMMANDS_4_1.JOOLD_ACK).length;

  Deno.bench("daemon: 200 ACK-gated 1-session batches, kernel -> group -> ACK", {
    n: 10,
    warmup: 2,
  }, async () => {
    for (let i = 0; i < 200; i++) {
      const before = acks();
      kernel.broadcastBatch(one);
      // Like the kernel: the next batch only after the ACK.
      while (acks() === before) {
        await waitReadableAsync(kernel.fd, 1000);
        kernel.serve();
      }
    }
  });

  globalThis.addEventListener("unload", () => {
    console.error(`kernel->ACK latency: ${formatLatency(daemon.ackLatency.summary())}`);
    peer.close();
    void started.close();
    reactor.stop();
    void running;
    a.dispose();
    b.dispose();
  });
} else {
  console.error(`daemon_bench skipped: ${unavailable}`);
}
