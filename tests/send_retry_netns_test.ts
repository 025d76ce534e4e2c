/**
 * Nothing silently gone on send: daemon A's sync socket gets the smallest SO_SNDBUF (the test
 * finds its fd in this process by the socket's inode) and its interface is slow (a tbf qdisc holds
 * the datagrams, charged to the socket), so a burst of kernel batches meets EAGAIN; every datagram
 * then reaches daemon B or is counted lost. (net.core.wmem_default is not settable in a namespace.)
 */
import assert from "node:assert/strict";
import type { NetConfig } from "../lib/config/types.ts";
import { COMMANDS_4_1 } from "../lib/jool/version.ts";
import { setsockoptInt, SOL_SOCKET } from "../ffi/libc.ts";
import { Reactor } from "../lib/reactor.ts";
import { node } from "./_daemon_node.ts";
import { fixture } from "./_fixtures.ts";
import { Netns, netnsUnavailable, veth } from "./_netns.ts";
import { waitFor } from "./_udp.ts";

const unavailable = netnsUnavailable();
const skip = unavailable ? ` (skipped: ${unavailable})` : "";

Deno.test({
  name:
    `a burst against a full send buffer (EAGAIN) is retried: every datagram arrives or is counted lost${skip}`,
  ignore: unavailable !== null,
  async fn() {
    const a = new Netns("a");
    const b = new Netns("b");
    const reactor = new Reactor();
    const running = reactor.run();
    const nodes: { close(): Promise<void> }[] = [];
    try {
      veth(a, "sync0", ["2001:db8:ff08::4/64"], b, "sync0", ["2001:db8:ff08::5/64"]);
      // A link that drains at 2 Mbit/s, holding what waits (up to 4 MB) in its qdisc.
      ip(
        a,
        "qdisc",
        "add",
        "dev",
        "sync0",
        "root",
        "tbf",
        "rate",
        "2mbit",
        "burst",
        "4k",
        "limit",
        "4mb",
      );
      const net: NetConfig = {
        multicastAddress: "ff08::db8:64:64",
        multicastPort: "6464",
        inInterface: "sync0",
        outInterface: "sync0",
        ttl: 1,
        reuseAddress: true,
      };
      const A = await node(a, reactor, net, "4.1.13");
      nodes.push(A);
      // The smallest send buffer the kernel allows (SOCK_MIN_SNDBUF, about 4.5 KB).
      setsockoptInt(syncSocketFd(a, 6464), SOL_SOCKET, SO_SNDBUF, 1, "SO_SNDBUF");
      const B = await node(b, reactor, net, "4.1.13");
      nodes.push(B);
      const payload = fixture("4.1.13", "d-udp-payload-4sessions");
      const total = 300;
      for (let i = 0; i < total; i += 30) {
        for (let j = 0; j < 30; j++) A.kernel.sendBatch(A.daemon.portId, payload);
        await waitFor(() => A.counters.kernelBatchesReceived >= i + 30, "A read the batches");
      }
      const accounted = () =>
        B.counters.netDatagramsReceived + A.counters.netSendLostDatagrams === total;
      await waitFor(accounted, "every datagram at B or counted lost by A", 20_000);
      assert.equal(A.counters.kernelBatchesReceived, total);
      assert.equal(A.kernel.requests(COMMANDS_4_1.JOOLD_ACK).length, total);
      assert.ok(A.counters.netSendErrors > 0, "the burst met EAGAIN (the test forces it)");
      assert.ok(A.counters.netSendRetries > 0, "failed sends were queued for a retry");
      assert.equal(A.counters.netDatagramsSent + A.counters.netSendLostDatagrams, total);
      assert.equal(A.counters.netSendLostDatagrams, 0, "the queue held the burst: nothing lost");
      assert.equal(B.counters.netDatagramsReceived, total);
      assert.equal(B.counters.netBytesReceived, total * payload.length);
      assert.equal(B.counters.netMalformedDatagrams, 0);
    } finally {
      for (const n of nodes) await n.close();
      reactor.stop();
      await running;
      a.dispose();
      b.dispose();
    }
  },
});

function ip(ns: Netns, ...args: string[]): void {
  const r = new Deno.Command("ip", {
    args: ["netns", "exec", ns.name, "tc", ...args],
    stderr: "piped",
  }).outputSync();
  if (!r.success) throw new Error(`tc ${args.join(" ")}: ${new TextDecoder().decode(r.stderr)}`);
}

/** SO_SNDBUF (asm-generic/socket.h). */
const SO_SNDBUF = 7;

/** The fd, in this process, of the UDP socket bound to `port` in `ns` (found by its inode). */
function syncSocketFd(ns: Netns, port: number): number {
  const table = new TextDecoder().decode(
    new Deno.Command("ip", { args: ["netns", "exec", ns.name, "cat", "/proc/net/udp6"] })
      .outputSync().stdout,
  );
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  const row = table.split("\n").map((l) => l.trim().split(/\s+/)).find((f) =>
    f[1]?.endsWith(`:${hexPort}`)
  );
  if (row === undefined) throw new Error(`no UDP socket on port ${port} in ${ns.name}`);
  const inode = row[9];
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (Deno.readLinkSync(`/proc/self/fd/${entry.name}`) === `socket:[${inode}]`) {
        return Number(entry.name);
      }
    } catch {
      // closed meanwhile
    }
  }
  throw new Error(`the socket of inode ${inode} is not open in this process`);
}
