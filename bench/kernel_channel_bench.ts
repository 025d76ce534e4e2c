// The kernel channel's hot paths over real netlink sockets (NETLINK_USERSOCK, a fake Jool kernel in
// this process, no network): the ACK-gated batch loop (the kernel sends a batch, the channel
// recognizes it, sends JOOLD_ACK, calls the handler; only then the next batch), and JOOLD_ADD
// framing + send. Prints the channel's own kernel->ACK latency histogram at the end. Needs root.
// The same batch loop over the in-memory twin (lib/netlink/twin.ts) runs as any user: the
// channel's own CPU, without the syscalls.
//   deno task bench
import { ERRNO } from "../ffi/errno.ts";
import { recv } from "../ffi/libc.ts";
import { parseVersion } from "../lib/jool/version.ts";
import { formatLatency } from "../lib/kernel/latency.ts";
import { createCounters } from "../lib/counters.ts";
import { openKernel } from "../lib/kernel/open.ts";
import { NETLINK_USERSOCK } from "../lib/netlink/conn.ts";
import { parseMessages } from "../lib/netlink/message.ts";
import { Reactor } from "../lib/reactor.ts";
import { dialTwin } from "../lib/netlink/twin.ts";
import { FakeJool, FakeKernel } from "../tests/_fake_kernel.ts";
import { fixture } from "../tests/_fixtures.ts";

if (Deno.uid() === 0) {
  const kernel = new FakeKernel("4.1.13");
  const reactor = new Reactor();
  const running = reactor.run();
  const server = kernel.start(); // answers the startup requests
  const { channel } = await openKernel(reactor, {
    instance: "default",
    counters: createCounters(),
    protocol: NETLINK_USERSOCK,
    peerPortId: kernel.portId,
    moduleVersion: parseVersion("4.1.13"),
  });
  server.stop();
  const buffer = new Uint8Array(65536);
  /** Reads what the channel sent to the fake kernel; returns the number of netlink messages. */
  const drainKernel = (): number => {
    let messages = 0;
    for (;;) {
      const n = recv(kernel.fd, buffer);
      if (n === -ERRNO.EAGAIN) return messages;
      if (n < 0) throw new Error(`recv: ${n}`);
      messages += parseMessages(buffer.subarray(0, n)).length;
    }
  };
  let wake: (() => void) | null = null;
  channel.onBatch(() => wake?.());
  const one = fixture("4.1.13", "d-udp-payload-1session");
  const four = fixture("4.1.13", "d-udp-payload-4sessions");

  Deno.bench("kernel channel: 100 ACK-gated 1-session batches (batch -> ACK -> handler)", {
    group: "kernel",
    n: 50,
  }, async () => {
    for (let i = 0; i < 100; i++) {
      const handled = new Promise<void>((r) => (wake = r));
      kernel.sendBatch(channel.portId, one);
      await handled;
      // The ACK left synchronously before the handler: it is already queued on the kernel side.
      if (drainKernel() !== 1) throw new Error("no ACK after the batch");
    }
  });

  Deno.bench("kernel channel: 100 JOOLD_ADD of a 4-session datagram (frame + sendto)", {
    group: "kernel",
    n: 200,
  }, () => {
    for (let i = 0; i < 100; i++) channel.add(four);
    if (drainKernel() !== 100) throw new Error("lost JOOLD_ADDs");
  });

  globalThis.addEventListener("unload", () => {
    console.error(`kernel->ACK latency: ${formatLatency(channel.ackLatency.summary())}`);
    channel.close();
    reactor.stop();
    void running;
    kernel.close();
  });
} else {
  console.error("kernel_channel_bench skipped: needs root (NETLINK_USERSOCK multicast)");
}

{
  const jool = new FakeJool("4.1.13");
  let acks = 0;
  const { conn, twin } = dialTwin((request) => {
    if (request[16] === 29) acks++; // JOOLD_ACK
    return jool.answer(request);
  });
  const reactor = new Reactor();
  const { channel } = await openKernel(reactor, {
    instance: "default",
    counters: createCounters(),
    conn,
    moduleVersion: parseVersion("4.1.13"),
  });
  let wake: (() => void) | null = null;
  channel.onBatch(() => wake?.());
  const batch = jool.batch(fixture("4.1.13", "d-udp-payload-1session"));

  Deno.bench("kernel channel over the twin: 100 ACK-gated 1-session batches (no syscalls)", {
    group: "twin",
    n: 200,
  }, async () => {
    for (let i = 0; i < 100; i++) {
      const before = acks;
      const handled = new Promise<void>((r) => (wake = r));
      twin.multicast(jool.groupId, batch);
      await handled;
      if (acks !== before + 1) throw new Error("no ACK before the handler");
    }
  });

  globalThis.addEventListener("unload", () => {
    channel.close();
    reactor.stop();
  });
}
