/**
 * The metrics endpoint of a real daemon (startDaemon, the CLI's wiring) after real traffic: two
 * daemons in two network namespaces with fake Jool kernels; A serves /metrics and the stats reply.
 */
import assert from "node:assert/strict";
import { AF_INET6, bind, close, recv, sendto, SOCK_DGRAM, socket } from "../../ffi/libc.ts";
import { sockaddrIn6 } from "../../ffi/sockaddr.ts";
import type { NetConfig } from "../../lib/config/types.ts";
import type { Counters } from "../../lib/counters.ts";
import { counterName } from "../../lib/metrics/exposition.ts";
import { Reactor } from "../../lib/reactor.ts";
import { VERSION } from "../../lib/version.ts";
import { node } from "../_daemon_node.ts";
import { fixture } from "../_fixtures.ts";
import { Netns, netnsUnavailable, veth } from "../_netns.ts";
import { waitFor } from "../_udp.ts";
import { freePort, promtoolCheck, promtoolUnavailable, samples } from "./_promtool.ts";

const unavailable = netnsUnavailable();
const skip = unavailable ? ` (skipped: ${unavailable})` : "";
const noPromtool = promtoolUnavailable();

/** The stats reply of the server on [::1]:port in `ns`, as NAME -> value. */
async function statsReply(ns: Netns, port: number): Promise<Map<string, number>> {
  const fd = ns.enter(() => socket(AF_INET6, SOCK_DGRAM, 0));
  try {
    const loopback = Uint8Array.of(...new Array(15).fill(0), 1);
    bind(fd, sockaddrIn6(loopback, 0));
    sendto(fd, new TextEncoder().encode("stats?"), sockaddrIn6(loopback, port));
    const buffer = new Uint8Array(1024);
    let n = -1;
    await waitFor(() => (n = recv(fd, buffer)) >= 0, "the stats reply");
    const text = new TextDecoder().decode(buffer.subarray(0, n));
    return new Map(text.trim().split("\n").map((l) => l.split(",")).map(([k, v]) => [k, +v]));
  } finally {
    close(fd);
  }
}

Deno.test({
  name:
    `/metrics after real traffic: promtool accepts it, its values are the stats reply's and the counters', no per-peer series with a group${skip}`,
  ignore: unavailable !== null,
  async fn() {
    const a = new Netns("a");
    const b = new Netns("b");
    const reactor = new Reactor();
    const running = reactor.run();
    const nodes: { close(): Promise<void> }[] = [];
    try {
      veth(a, "sync0", ["2001:db8:ff08::4/64"], b, "sync0", ["2001:db8:ff08::5/64"]);
      const net: NetConfig = {
        multicastAddress: "ff08::db8:64:64",
        multicastPort: "6464",
        inInterface: "sync0",
        outInterface: "sync0",
        ttl: 1,
        reuseAddress: true,
      };
      const port = freePort();
      let kernelStats: Map<string, bigint> | undefined = new Map([
        ["JSTAT_JOOLD_SSS_SENT", 7n],
        ["JSTAT_JOOLD_ACKS", 2n],
      ]);
      const A = await node(a, reactor, net, "4.1.13", undefined, {
        config: {
          stats: { address: "::1", port: 6401 },
          metrics: { hostname: "127.0.0.1", port, permission: `127.0.0.1:${port}` },
        },
        parts: { kernelStats: () => Promise.resolve(kernelStats) },
      });
      nodes.push(A);
      const B = await node(b, reactor, net, "4.1.13");
      nodes.push(B);
      assert.deepEqual({ ...A.daemon.metricsAddress }, {
        transport: "tcp",
        hostname: "127.0.0.1",
        port,
      });
      assert.equal(B.daemon.metricsAddress, null);
      const one = fixture("4.1.13", "d-udp-payload-1session");
      const four = fixture("4.1.13", "d-udp-payload-4sessions");
      for (const p of [one, four]) A.kernel.sendBatch(A.daemon.portId, p);
      for (const p of [four, four, one]) B.kernel.sendBatch(B.daemon.portId, p);
      await waitFor(() => A.counters.kernelAddsSent === 3, "three JOOLD_ADDs on A");
      await waitFor(() => B.counters.netDatagramsReceived === 2, "two datagrams at B");
      A.kernel.sendBatch(A.daemon.portId, Uint8Array.of(1, 2, 3), "other"); // another instance's
      await waitFor(() => A.counters.kernelOtherInstanceBatches === 1, "the other instance's");

      const url = `http://127.0.0.1:${port}/metrics`;
      const response = await fetch(url);
      assert.equal(response.status, 200);
      assert.equal(
        response.headers.get("content-type"),
        "text/plain; version=0.0.4; charset=utf-8",
      );
      const text = await response.text();
      const got = samples(text);
      const counters = A.counters;
      // Every counter, as the handle has it now (no traffic since).
      for (const [field, v] of Object.entries(counters)) {
        assert.equal(got.get(counterName(field as keyof Counters)), v, field);
      }
      assert.equal(counters.kernelBatchesReceived, 2);
      assert.equal(counters.netDatagramsSent, 2);
      assert.equal(counters.netDatagramsReceived, 3);
      // The six values of the stats reply.
      const stats = await statsReply(a, 6401);
      const pairs: [string, keyof Counters][] = [
        ["KERNEL_SENT_PKTS", "kernelAddsSent"],
        ["KERNEL_SENT_BYTES", "kernelAddBytes"],
        ["NET_RCVD_PKTS", "netDatagramsReceived"],
        ["NET_RCVD_BYTES", "netBytesReceived"],
        ["NET_SENT_PKTS", "netDatagramsSent"],
        ["NET_SENT_BYTES", "netBytesSent"],
      ];
      for (const [name, field] of pairs) {
        assert.equal(got.get(counterName(field)), stats.get(name), name);
      }
      assert.equal(stats.get("NET_SENT_BYTES"), one.length + four.length);
      // The ACK latency histogram: one sample per batch of our instance.
      const latency = A.daemon.ackLatency.summary();
      assert.equal(latency.count, 2);
      assert.equal(got.get("joold_kernel_ack_latency_seconds_count"), 2);
      assert.equal(got.get('joold_kernel_ack_latency_seconds_bucket{le="+Inf"}'), 2);
      assert.ok(got.get("joold_kernel_ack_latency_seconds_sum")! > 0);
      assert.equal(
        got.get(
          `joold_build_info{version="${VERSION}",jool_version="4.1.13.0",session_format="compact36",instance="default",mode="plain"}`,
        ),
        1,
      );
      // A group has no per-peer series (not zeros: none, and no HELP or TYPE either).
      assert.doesNotMatch(text, /joold_peer_/);
      assert.equal(got.get("jool_joold_sss_sent_total"), 7);
      assert.equal(got.get("jool_joold_acks_total"), 2);
      if (noPromtool === null) {
        const check = await promtoolCheck(text);
        assert.deepEqual(check, { code: 0, output: "" });
      }

      // The kernel's counters unknown: absent, not zero; a hanging source does not hang the scrape.
      kernelStats = undefined;
      const without = await (await fetch(url)).text();
      assert.doesNotMatch(without, /jool_joold_/);
      assert.match(without, /^joold_net_datagrams_sent_total 2$/m);
      assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 404);
      assert.equal((await fetch(url, { method: "POST" })).status, 405);
    } finally {
      for (const n of nodes) await n.close();
      reactor.stop();
      await running;
      a.dispose();
      b.dispose();
    }
  },
});
