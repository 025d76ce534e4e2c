/**
 * Two complete daemons (started by `startDaemon`, the CLI's own wiring) in two network namespaces
 * joined by a veth, each talking real netlink bytes to an in-process fake Jool kernel.
 */
import assert from "node:assert/strict";
import {
  AF_INET6,
  close,
  IPPROTO_IPV6,
  IPV6_MULTICAST_IF,
  sendto,
  setsockoptInt,
  SOCK_DGRAM,
  socket,
} from "../ffi/libc.ts";
import { sockaddrIn6 } from "../ffi/sockaddr.ts";
import { parseIPv6 } from "../lib/config/address.ts";
import type { NetConfig } from "../lib/config/types.ts";
import { batchPayload } from "../lib/jool/message.ts";
import { decodePayload, encodeCompact36 } from "../lib/jool/session.ts";
import { COMMANDS_4_1 } from "../lib/jool/version.ts";
import { Reactor } from "../lib/reactor.ts";
import { node } from "./_daemon_node.ts";
import { fixture } from "./_fixtures.ts";
import { Netns, netnsUnavailable, veth } from "./_netns.ts";
import { waitFor } from "./_udp.ts";

const unavailable = netnsUnavailable();
const skip = unavailable ? ` (skipped: ${unavailable})` : "";

for (
  const [family, recording] of [["IPv6", "4.1.13"], ["IPv4", "4.1.9"]] as const
) {
  Deno.test({
    name:
      `two daemons, ${family} group, Jool ${recording} bytes: a batch on A arrives byte-identical as JOOLD_ADD on B${skip}`,
    ignore: unavailable !== null,
    async fn() {
      const a = new Netns("a");
      const b = new Netns("b");
      const reactor = new Reactor();
      const running = reactor.run();
      const nodes: { close(): Promise<void> }[] = [];
      try {
        const v6 = family === "IPv6";
        veth(
          a,
          "sync0",
          [v6 ? "2001:db8:ff08::4/64" : "198.51.100.4/24"],
          b,
          "sync0",
          [v6 ? "2001:db8:ff08::5/64" : "198.51.100.5/24"],
        );
        const net = (local: string): NetConfig => ({
          multicastAddress: v6 ? "ff08::db8:64:64" : "233.252.0.64",
          multicastPort: "6464",
          inInterface: v6 ? "sync0" : local,
          outInterface: v6 ? "sync0" : local,
          ttl: 3,
          reuseAddress: true,
        });
        const A = await node(a, reactor, net("198.51.100.4"), recording);
        nodes.push(A);
        const B = await node(b, reactor, net("198.51.100.5"), recording);
        nodes.push(B);
        const batches = ["1session", "4sessions"].map((n) =>
          fixture(recording, `d-udp-payload-${n}`)
        );
        for (const p of batches) A.kernel.sendBatch(A.daemon.portId, p);
        const adds = () => B.kernel.requests(COMMANDS_4_1.JOOLD_ADD);
        await waitFor(() => adds().length === 2, "two JOOLD_ADDs on B");
        assert.deepEqual(adds().map((r) => batchPayload(r.jool!)), batches);
        // Framed exactly as the C daemon frames it (captured), but for seq and pid.
        const real = fixture(recording, "c-joold-add-4sessions");
        assert.deepEqual(adds()[1].bytes.subarray(16), real.subarray(16));
        assert.equal(A.kernel.requests(COMMANDS_4_1.JOOLD_ACK).length, 2, "A ACKed both batches");
        // The one counters object of each daemon, as its stats reply and stop summary read it.
        assert.equal(A.counters.kernelBatchesReceived, 2);
        assert.equal(A.counters.kernelAcksSent, 2);
        assert.equal(A.counters.netDatagramsSent, 2);
        assert.equal(A.counters.netBytesSent, batches[0].length + batches[1].length);
        assert.equal(B.counters.netDatagramsReceived, 2);
        assert.equal(B.counters.netBytesReceived, batches[0].length + batches[1].length);
        assert.equal(B.counters.kernelAddsSent, 2);
        assert.equal(B.counters.kernelAddBytes, batches[0].length + batches[1].length);
        assert.equal(B.counters.netDatagramsSent, 0);
        assert.equal(
          B.kernel.requests(COMMANDS_4_1.JOOLD_ACK).length,
          0,
          "B's kernel sent nothing",
        );
      } finally {
        for (const n of nodes) await n.close();
        reactor.stop();
        await running;
        a.dispose();
        b.dispose();
      }
    },
  });
}

/** The sync link of the tests below: A and B on a veth, B joined to the IPv6 group over it. */
const SYNC_NET: NetConfig = {
  multicastAddress: "ff08::db8:64:64",
  multicastPort: "6464",
  inInterface: "sync0",
  outInterface: "sync0",
  ttl: 1,
  reuseAddress: true,
};

/**
 * Runs `fn` with two namespaces joined by a veth (A 2001:db8:ff08::4, B ::5) and a running reactor;
 * the daemons `fn` hands to `keep` are closed after it, then everything else.
 */
async function onSyncLink(
  fn: (
    link: {
      a: Netns;
      b: Netns;
      reactor: Reactor;
      keep<T extends { close(): Promise<void> }>(n: T): T;
    },
  ) => Promise<void>,
): Promise<void> {
  const a = new Netns("a");
  const b = new Netns("b");
  const reactor = new Reactor();
  const running = reactor.run();
  const nodes: { close(): Promise<void> }[] = [];
  try {
    veth(a, "sync0", ["2001:db8:ff08::4/64"], b, "sync0", ["2001:db8:ff08::5/64"]);
    await fn({ a, b, reactor, keep: (n) => (nodes.push(n), n) });
  } finally {
    for (const n of nodes) await n.close();
    reactor.stop();
    await running;
    a.dispose();
    b.dispose();
  }
}

/** A hostile sender in `ns`: a plain UDP socket aimed at the group over sync0. */
function hostileSender(ns: Netns): { fd: number; to: Uint8Array<ArrayBuffer> } {
  const fd = ns.enter(() => socket(AF_INET6, SOCK_DGRAM, 0));
  const ifindex = Number(ns.exec("-j", "link", "show", "sync0").match(/"ifindex":(\d+)/)![1]);
  setsockoptInt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, ifindex, "IPV6_MULTICAST_IF");
  return { fd, to: sockaddrIn6(parseIPv6(SYNC_NET.multicastAddress!)!, 6464) };
}

Deno.test({
  name:
    `bad datagrams on the group (random, truncated, oversized) never reach B's kernel; B keeps working${skip}`,
  ignore: unavailable !== null,
  fn: () =>
    onSyncLink(async ({ a, b, reactor, keep }) => {
      const B = keep(await node(b, reactor, SYNC_NET, "4.1.13"));
      const { fd, to } = hostileSender(a);
      const good = fixture("4.1.13", "d-udp-payload-4sessions");
      const bad = [
        Uint8Array.from({ length: 333 }, (_, i) => (i * 97 + 13) & 0xff),
        good.subarray(0, good.length - 7),
        new Uint8Array(60000).fill(0xee),
        fixture("4.1.9", "d-udp-payload-1session"), // another Jool's format
      ];
      for (let i = 0; i < 50; i++) {
        for (const d of bad) sendto(fd, d as Uint8Array<ArrayBuffer>, to);
      }
      sendto(fd, good, to);
      await waitFor(
        () => B.kernel.requests(COMMANDS_4_1.JOOLD_ADD).length === 1,
        "the good datagram",
      );
      await waitFor(() => B.counters.netDatagramsReceived === 201, "all 201 datagrams counted");
      assert.deepEqual(batchPayload(B.kernel.requests(COMMANDS_4_1.JOOLD_ADD)[0].jool!), good);
      assert.equal(B.counters.netMalformedDatagrams, 150);
      assert.equal(B.counters.netForeignFormatDatagrams, 50);
      assert.equal(B.counters.kernelAddsSent, 1);
      close(fd);
    }),
});

Deno.test({
  name:
    `a session claiming a far-future expiry reaches B's kernel clamped to B's own ICMP timeout${skip}`,
  ignore: unavailable !== null,
  fn: () =>
    onSyncLink(async ({ a, b, reactor, keep }) => {
      // B's instance has a 15 s ICMP timeout (GLOBAL_FOREACH), not Jool's default minute.
      const timeouts = { tcpEst: 7_200_000, tcpTrans: 240_000, udp: 30_000, icmp: 15_000 };
      const B = keep(
        await node(b, reactor, SYNC_NET, "4.1.13", undefined, { kernelState: { timeouts } }),
      );
      const { fd, to } = hostileSender(a);
      const [icmp] = decodePayload(fixture("4.1.13", "d-udp-payload-1session")).sessions;
      const forged = encodeCompact36({ ...icmp, expirationMs: 0xffff_fff0 }); // 49.7 days
      sendto(fd, forged, to);
      await waitFor(() => B.kernel.requests(COMMANDS_4_1.JOOLD_ADD).length === 1, "the JOOLD_ADD");
      const added = batchPayload(B.kernel.requests(COMMANDS_4_1.JOOLD_ADD)[0].jool!);
      const [session] = decodePayload(added!).sessions;
      assert.equal(session.expirationMs, 15_000);
      assert.deepEqual({ ...session, expirationMs: 0 }, { ...icmp, expirationMs: 0 });
      assert.equal(B.counters.netSessionsClamped, 1);
      close(fd);
    }),
});

Deno.test({
  name: `"peers allowed": B takes A's sessions only while A's address is on its list${skip}`,
  ignore: unavailable !== null,
  fn: () =>
    onSyncLink(async ({ a, b, reactor, keep }) => {
      const net = (peersAllowed: string[]): NetConfig => ({ ...SYNC_NET, peersAllowed });
      const A = keep(await node(a, reactor, net(["2001:db8:ff08::5"]), "4.1.13"));
      const stranger = keep(await node(b, reactor, net(["2001:db8:ff08::9"]), "4.1.13"));
      const friend = keep(await node(b, reactor, net(["2001:db8:ff08::4"]), "4.1.13"));
      const pid = A.kernel.received.find((r) => r.jool !== undefined)!.message.pid;
      A.kernel.sendBatch(pid, fixture("4.1.13", "d-udp-payload-1session"));
      await waitFor(
        () => friend.kernel.requests(COMMANDS_4_1.JOOLD_ADD).length === 1,
        "friend's ADD",
      );
      await waitFor(() => stranger.counters.netUnknownPeerDrops === 1, "the stranger's drop");
      assert.equal(stranger.kernel.requests(COMMANDS_4_1.JOOLD_ADD).length, 0);
    }),
});
