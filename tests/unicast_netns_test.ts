/**
 * Unicast peers over real sockets: three complete daemons J, K, L (startDaemon, the CLI's own
 * wiring), each in a network namespace on one bridge, each with an in-process fake Jool kernel
 * that speaks the kernel's bytes, listing each other as `"peers"` (no multicast group at all);
 * a fourth namespace M is a stranger on the same link.
 */
import assert from "node:assert/strict";
import { AF_INET, AF_INET6, bind, close, sendto, SOCK_DGRAM, socket } from "../ffi/libc.ts";
import { sockaddrIn, sockaddrIn6 } from "../ffi/sockaddr.ts";
import { parseIPv4, parseIPv6 } from "../lib/config/address.ts";
import type { NetConfig } from "../lib/config/types.ts";
import { batchPayload } from "../lib/jool/message.ts";
import { COMMANDS_4_1 } from "../lib/jool/version.ts";
import { PEER_COUNTERS } from "../lib/metrics/exposition.ts";
import { MulticastChannel } from "../lib/net/multicast.ts";
import { Reactor } from "../lib/reactor.ts";
import { isEnvelope } from "../lib/secure/envelope.ts";
import { node } from "./_daemon_node.ts";
import type { FakeKernel } from "./_fake_kernel.ts";
import { createLogger } from "../lib/log.ts";

/** A daemon of these tests. */
type Node = Awaited<ReturnType<typeof node>>;
import { fixture } from "./_fixtures.ts";
import { ip, Netns, netnsUnavailable, sniff, Sniffer } from "./_netns.ts";
import { waitFor } from "./_udp.ts";
import { freePort, promtoolCheck, promtoolUnavailable, samples } from "./metrics/_promtool.ts";

const unavailable = netnsUnavailable();
const skip = unavailable ? ` (skipped: ${unavailable})` : "";
const noPromtool = promtoolUnavailable();

/** Each translator's address on the sync link; L listens on its own port (6465). */
const ADDRESS = { J: "2001:db8:ff08::4", K: "2001:db8:ff08::5", L: "2001:db8:ff08::6" } as const;
const STRANGER = "2001:db8:ff08::9";
/** Their IPv4 addresses, for the IPv4 socket. */
const ADDRESS4 = { J: "198.51.100.4", K: "198.51.100.5", L: "198.51.100.6", M: "198.51.100.9" };
type Name = keyof typeof ADDRESS;

/**
 * J, K and L list the two others. L listens on 6465, so L is written with its port, and L writes
 * J and K with theirs (a peer without a port is sent to the daemon's own "multicast port").
 */
function unicastNet(me: Name, extra: Partial<NetConfig> = {}): NetConfig {
  const peer = (n: Name) =>
    n === "L" ? `[${ADDRESS.L}]:6465` : me === "L" ? `[${ADDRESS[n]}]:6464` : ADDRESS[n];
  return {
    peers: (["J", "K", "L"] as const).filter((n) => n !== me).map(peer),
    multicastPort: me === "L" ? "6465" : "6464",
    inInterface: "sync0",
    outInterface: "sync0",
    ttl: 64,
    reuseAddress: true,
    ...extra,
  };
}

interface Link {
  readonly ns: Record<Name | "M", Netns>;
  readonly reactor: Reactor;
  keep<T extends { close(): Promise<void> }>(n: T): T;
}

/** Runs `fn` with J, K, L and M on one bridge (in a hub namespace) and a running reactor. */
async function onBridge(fn: (link: Link) => Promise<void>): Promise<void> {
  const hub = new Netns("hub");
  const ns = { J: new Netns("J"), K: new Netns("K"), L: new Netns("L"), M: new Netns("M") };
  const reactor = new Reactor();
  const running = reactor.run();
  const nodes: { close(): Promise<void> }[] = [];
  try {
    hub.exec("link", "add", "br0", "type", "bridge");
    hub.exec("link", "set", "br0", "up");
    const addresses = { ...ADDRESS, M: STRANGER };
    for (const [name, n] of Object.entries(ns) as [Name | "M", Netns][]) {
      const port = `p${Deno.pid % 10000}${name}`;
      ip("link", "add", port, "type", "veth", "peer", "name", `${port}x`);
      ip("link", "set", port, "netns", hub.name);
      ip("link", "set", `${port}x`, "netns", n.name);
      hub.exec("link", "set", port, "master", "br0", "up");
      n.exec("link", "set", `${port}x`, "name", "sync0");
      n.exec("addr", "add", `${addresses[name]}/64`, "dev", "sync0", "nodad");
      n.exec("addr", "add", `${ADDRESS4[name]}/24`, "dev", "sync0");
      n.exec("link", "set", "sync0", "up");
    }
    for (const n of Object.values(ns)) {
      const deadline = Date.now() + 10_000;
      while (!n.exec("-o", "link", "show", "dev", "sync0").includes("LOWER_UP")) {
        if (Date.now() > deadline) throw new Error(`sync0 in ${n.name} did not come up`);
      }
    }
    await fn({ ns, reactor, keep: (n) => (nodes.push(n), n) });
  } finally {
    for (const n of nodes) await n.close();
    reactor.stop();
    await running;
    for (const n of [...Object.values(ns), hub]) n.dispose();
  }
}

/** A plain UDP socket in `ns`, bound to `from` (an address of that namespace). */
function sender(ns: Netns, from: string): number {
  const fd = ns.enter(() => socket(AF_INET6, SOCK_DGRAM, 0));
  bind(fd, sockaddrIn6(parseIPv6(from)!, 0));
  return fd;
}

/** The payloads of the JOOLD_ADDs a daemon's fake kernel received, in order. */
const adds = (n: { kernel: FakeKernel }) =>
  n.kernel.requests(COMMANDS_4_1.JOOLD_ADD).map((r) => batchPayload(r.jool!));

Deno.test({
  name:
    `unicast peers: J's batches reach K and L byte-identical, each peer counted, in the stop summary and in /metrics${skip}`,
  ignore: unavailable !== null,
  fn: () =>
    onBridge(async ({ ns, reactor, keep }) => {
      const lines: string[] = [];
      const log = createLogger("info", (line) => lines.push(line));
      const port = freePort();
      const J = await node(ns.J, reactor, unicastNet("J"), "4.1.13", log, {
        config: { metrics: { hostname: "127.0.0.1", port, permission: `127.0.0.1:${port}` } },
      });
      const K = keep(await node(ns.K, reactor, unicastNet("K"), "4.1.13"));
      const L = keep(await node(ns.L, reactor, unicastNet("L"), "4.1.13"));
      let scrape: string;
      try {
        await threeWay(J, K, L);
        scrape = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      } finally {
        await J.close();
      }
      const text = lines.join("");
      // The scrape (no traffic since) says what the stop summary says, peer by peer.
      const summary = text.match(/^joold: info: peers: (.*)$/m)?.[1];
      assert.ok(summary !== undefined, text);
      const expected = new Map<string, number>();
      for (const entry of summary.split("; ")) {
        const m = entry.match(
          /^(\S+) sent (\d+) \((\d+) bytes, (\d+) failed\), received (\d+) \((\d+) bytes\)$/,
        );
        assert.ok(m !== null, entry);
        const [, peer, sent, bytesSent, failed, received, bytesReceived] = m;
        for (
          const [name, v] of [
            ["joold_peer_datagrams_sent_total", sent],
            ["joold_peer_bytes_sent_total", bytesSent],
            ["joold_peer_send_errors_total", failed],
            ["joold_peer_datagrams_received_total", received],
            ["joold_peer_bytes_received_total", bytesReceived],
          ]
        ) expected.set(`${name}{peer="${peer}"}`, +v);
      }
      const got = samples(scrape);
      const perPeer = peerSeries(got);
      assert.deepEqual(perPeer, expected);
      // The peers add up to the daemon's totals (the received ones: no datagram was dropped).
      for (
        const [total, name] of [
          ["joold_net_datagrams_sent_total", "joold_peer_datagrams_sent_total"],
          ["joold_net_bytes_sent_total", "joold_peer_bytes_sent_total"],
          ["joold_net_send_errors_total", "joold_peer_send_errors_total"],
          ["joold_net_datagrams_received_total", "joold_peer_datagrams_received_total"],
          ["joold_net_bytes_received_total", "joold_peer_bytes_received_total"],
        ]
      ) {
        const sum = [...perPeer].filter(([s]) => s.startsWith(`${name}{`))
          .reduce((a, [, v]) => a + v, 0);
        assert.equal(sum, got.get(total), name);
      }
      if (noPromtool === null) {
        assert.deepEqual(await promtoolCheck(scrape), { code: 0, output: "" });
      }
      assert.match(
        text,
        new RegExp(
          String
            .raw`^joold: info: joold \S+ starting: instance "default", unicast sync peers 2001:db8:ff08::5, \[2001:db8:ff08::6\]:6465, port 6464, metrics on http://127\.0\.0\.1:${port}/metrics$`,
          "m",
        ),
      );
      const [one, four] = ["1session", "4sessions"].map((n) =>
        fixture("4.1.13", `d-udp-payload-${n}`).length
      );
      assert.ok(
        text.includes(
          `joold: info: peers: [${ADDRESS.K}]:6464 sent 2 (${one + four} bytes, 0 failed), ` +
            `received 1 (${four} bytes); [${ADDRESS.L}]:6465 sent 2 (${one + four} bytes, ` +
            `0 failed), received 0 (0 bytes)\n`,
        ),
        text,
      );
    }),
});

/** The joold_peer_* series of a scrape's samples (every one of PEER_COUNTERS). */
function peerSeries(got: Map<string, number>): Map<string, number> {
  const names = new Set(PEER_COUNTERS.map(([name]) => name));
  const out = new Map<string, number>();
  for (const [series, v] of got) {
    if (!series.startsWith("joold_peer_")) continue;
    assert.ok(names.has(series.slice(0, series.indexOf("{"))), series);
    out.set(series, v);
  }
  return out;
}

/** J sends two batches, which K and L get byte for byte; then K sends one to J and L. */
async function threeWay(J: Node, K: Node, L: Node): Promise<void> {
  const batches = ["1session", "4sessions"].map((n) => fixture("4.1.13", `d-udp-payload-${n}`));
  for (const p of batches) J.kernel.sendBatch(J.daemon.portId, p);
  await waitFor(() => adds(K).length === 2 && adds(L).length === 2, "two ADDs on K and L");
  assert.deepEqual(adds(K), batches);
  assert.deepEqual(adds(L), batches);
  const bytes = batches[0].length + batches[1].length;
  // NET_SENT_PKTS counts one per peer reached: two datagrams to two peers.
  assert.equal(J.counters.netDatagramsSent, 4);
  assert.equal(J.counters.netBytesSent, 2 * bytes);
  assert.equal(J.counters.netSendErrors, 0);
  for (const n of [K, L]) {
    assert.equal(n.counters.netDatagramsReceived, 2);
    assert.equal(n.counters.netBytesReceived, bytes);
    assert.equal(n.counters.kernelAddsSent, 2);
    assert.equal(n.counters.netUnknownPeerDrops, 0);
  }
  // And K's batch goes to J and L.
  K.kernel.sendBatch(K.daemon.portId, batches[1]);
  await waitFor(() => adds(J).length === 1 && adds(L).length === 3, "K's batch on J and L");
  assert.deepEqual(adds(J), [batches[1]]);
}

Deno.test({
  name:
    `unicast peers, IPv4 (bound to the in interface's address): J's batch reaches K and L byte-identical${skip}`,
  ignore: unavailable !== null,
  fn: () =>
    onBridge(async ({ ns, reactor, keep }) => {
      const net = (me: Name): NetConfig => ({
        peers: (["J", "K", "L"] as const).filter((n) => n !== me).map((n) => ADDRESS4[n]),
        multicastPort: "6464",
        inInterface: ADDRESS4[me],
        outInterface: ADDRESS4[me],
        ttl: 64,
        reuseAddress: true,
      });
      const J = keep(await node(ns.J, reactor, net("J"), "4.1.9"));
      const K = keep(await node(ns.K, reactor, net("K"), "4.1.9"));
      const L = keep(await node(ns.L, reactor, net("L"), "4.1.9"));
      const batch = fixture("4.1.9", "d-udp-payload-4sessions");
      J.kernel.sendBatch(J.daemon.portId, batch);
      await waitFor(() => adds(K).length === 1 && adds(L).length === 1, "K and L's ADD");
      assert.deepEqual(adds(K), [batch]);
      assert.deepEqual(adds(L), [batch]);
      assert.equal(J.counters.netDatagramsSent, 2);
      // K's socket is bound to 198.51.100.5 only: a datagram to its other address never reaches it.
      ns.K.exec("addr", "add", "198.51.100.55/24", "dev", "sync0");
      const fd = ns.J.enter(() => socket(AF_INET, SOCK_DGRAM, 0));
      bind(fd, sockaddrIn(parseIPv4(ADDRESS4.J)!, 0));
      sendto(fd, batch, sockaddrIn(parseIPv4("198.51.100.55")!, 6464));
      sendto(fd, batch, sockaddrIn(parseIPv4(ADDRESS4.K)!, 6464));
      await waitFor(() => adds(K).length === 2, "the datagram to K's bound address");
      assert.equal(K.counters.netDatagramsReceived, 2);
      close(fd);
    }),
});

Deno.test({
  name:
    `unicast peers: a stranger's datagram is dropped and counted; a local sender is dropped; a spoofed peer address passes the address check (only secure sync stops it)${skip}`,
  ignore: unavailable !== null,
  fn: () =>
    onBridge(async ({ ns, reactor, keep }) => {
      const K = keep(await node(ns.K, reactor, unicastNet("K"), "4.1.13"));
      const good = fixture("4.1.13", "d-udp-payload-1session");
      const toK = sockaddrIn6(parseIPv6(ADDRESS.K)!, 6464);
      const stranger = sender(ns.M, STRANGER);
      for (let i = 0; i < 5; i++) sendto(stranger, good, toK);
      await waitFor(() => K.counters.netUnknownPeerDrops === 5, "K drops the stranger's five");
      // From inside K's own namespace, from K's own address: this host is never a peer.
      const local = sender(ns.K, ADDRESS.K);
      sendto(local, good, toK);
      await waitFor(() => K.counters.netLocalSourceDrops === 1, "K drops its own host's datagram");
      assert.equal(K.counters.kernelAddsSent, 0, "nothing reached K's kernel");
      // M takes J's address: the source check is an address check, and J's address is listed.
      ns.M.exec("addr", "add", `${ADDRESS.J}/128`, "dev", "sync0", "nodad");
      const spoofer = sender(ns.M, ADDRESS.J);
      sendto(spoofer, good, toK);
      await waitFor(() => K.counters.kernelAddsSent === 1, "the spoofed datagram reaches K");
      assert.deepEqual(adds(K), [good]);
      for (const fd of [stranger, local, spoofer]) close(fd);
    }),
});

Deno.test({
  name:
    `unicast peers with secure sync: K and L open J's envelopes; a plain datagram from a spoofed peer address is dropped${skip}`,
  ignore: unavailable !== null,
  fn: () =>
    onBridge(async ({ ns, reactor, keep }) => {
      const dir = Deno.makeTempDirSync();
      try {
        const keyFile = `${dir}/sync.key`;
        Deno.writeTextFileSync(keyFile, `${"7a".repeat(32)}\n`, { mode: 0o600 });
        const net = (n: Name) => unicastNet(n, { keyFile });
        const J = keep(await node(ns.J, reactor, net("J"), "4.1.13"));
        const K = keep(await node(ns.K, reactor, net("K"), "4.1.13"));
        const L = keep(await node(ns.L, reactor, net("L"), "4.1.13"));
        const batch = fixture("4.1.13", "d-udp-payload-4sessions");
        J.kernel.sendBatch(J.daemon.portId, batch);
        await waitFor(() => adds(K).length === 1 && adds(L).length === 1, "K and L's ADD");
        assert.deepEqual(adds(K), [batch]);
        assert.deepEqual(adds(L), [batch]);
        assert.equal(K.counters.netSecureAccepted, 1);
        assert.equal(L.counters.netSecureAccepted, 1);
        assert.ok(J.counters.netBytesSent > 2 * batch.length, "J sent envelopes, not the bytes");
        // M takes J's address and sends the plain batch: the address passes, the key does not.
        ns.M.exec("addr", "add", `${ADDRESS.J}/128`, "dev", "sync0", "nodad");
        const spoofer = sender(ns.M, ADDRESS.J);
        sendto(spoofer, batch, sockaddrIn6(parseIPv6(ADDRESS.K)!, 6464));
        await waitFor(() => K.counters.netSecurePlainDatagrams === 1, "K drops the plain one");
        assert.equal(adds(K).length, 1);
        close(spoofer);
      } finally {
        Deno.removeSync(dir, { recursive: true });
      }
    }),
});

Deno.test({
  name:
    `unicast peers: while L is unreachable J's datagrams still reach K, L's copies are counted lost; then L gets the next${skip}`,
  ignore: unavailable !== null,
  fn: () =>
    onBridge(async ({ ns, reactor, keep }) => {
      // No out interface: J's sends follow its routes (an egress pinned to sync0 would not see
      // the unreachable route below).
      const port = freePort();
      const J = keep(
        await node(
          ns.J,
          reactor,
          unicastNet("J", { outInterface: undefined }),
          "4.1.13",
          undefined,
          {
            config: { metrics: { hostname: "127.0.0.1", port, permission: `127.0.0.1:${port}` } },
          },
        ),
      );
      const K = keep(await node(ns.K, reactor, unicastNet("K"), "4.1.13"));
      const L = keep(await node(ns.L, reactor, unicastNet("L"), "4.1.13"));
      ns.J.exec("-6", "route", "add", "unreachable", `${ADDRESS.L}/128`);
      const batch = fixture("4.1.13", "d-udp-payload-4sessions");
      for (let i = 0; i < 3; i++) J.kernel.sendBatch(J.daemon.portId, batch);
      await waitFor(() => adds(K).length === 3, "K gets all three");
      await waitFor(() => J.counters.netSendLostDatagrams === 3, "J counts L's copies lost");
      assert.equal(J.counters.netSendLostSessions, 12);
      assert.equal(J.counters.netSendErrors, 3);
      assert.equal(J.counters.netSendRetries, 0, "no route is not worth a retry");
      assert.equal(J.counters.netDatagramsSent, 3, "only K's copies went out");
      assert.equal(adds(L).length, 0);
      // /metrics names the peer that fails: every send to L failed, none to K.
      const scrape = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const toK = `{peer="[${ADDRESS.K}]:6464"}`;
      const toL = `{peer="[${ADDRESS.L}]:6465"}`;
      const perPeer = peerSeries(samples(scrape));
      assert.equal(perPeer.get(`joold_peer_datagrams_sent_total${toK}`), 3);
      assert.equal(perPeer.get(`joold_peer_bytes_sent_total${toK}`), 3 * batch.length);
      assert.equal(perPeer.get(`joold_peer_send_errors_total${toK}`), 0);
      assert.equal(perPeer.get(`joold_peer_datagrams_sent_total${toL}`), 0);
      assert.equal(perPeer.get(`joold_peer_bytes_sent_total${toL}`), 0);
      assert.equal(perPeer.get(`joold_peer_send_errors_total${toL}`), 3);
      assert.equal(perPeer.size, 2 * PEER_COUNTERS.length);
      ns.J.exec("-6", "route", "del", "unreachable", `${ADDRESS.L}/128`);
      J.kernel.sendBatch(J.daemon.portId, batch);
      await waitFor(() => adds(L).length === 1 && adds(K).length === 4, "the next reaches both");
    }),
});

Deno.test({
  name:
    `unicast channel: this host's own address as a peer is refused at open; sendTo reaches only the named peer${skip}`,
  ignore: unavailable !== null,
  fn: () =>
    onBridge(async ({ ns, reactor }) => {
      assert.throws(
        () => ns.J.enter(() => MulticastChannel.open(reactor, unicastNet("K"))),
        {
          name: "NetworkConfigError",
          message:
            `"peers" (--net.peer): "2001:db8:ff08::4" is an address of this host: a translator does not sync with itself; list the OTHER translators' addresses`,
        },
      );
      const j = ns.J.enter(() => MulticastChannel.open(reactor, unicastNet("J", { ttl: 7 })));
      const sniffer = ns.L.enter(() => new Sniffer());
      const k = ns.K.enter(() => MulticastChannel.open(reactor, unicastNet("K")));
      const l = ns.L.enter(() => MulticastChannel.open(reactor, unicastNet("L")));
      try {
        assert.deepEqual(j.destinations, [`[${ADDRESS.K}]:6464`, `[${ADDRESS.L}]:6465`]);
        const got: Record<string, Uint8Array[]> = { K: [], L: [] };
        k.onDatagram((d) => got.K.push(d.slice()));
        l.onDatagram((d) => got.L.push(d.slice()));
        j.sendTo(Uint8Array.of(1, 2, 3), [`[${ADDRESS.L}]:6465`]);
        j.send(Uint8Array.of(4));
        await waitFor(() => got.L.length === 2 && got.K.length === 1, "L two, K one");
        assert.deepEqual(got.K, [Uint8Array.of(4)]);
        assert.deepEqual(got.L, [Uint8Array.of(1, 2, 3), Uint8Array.of(4)]);
        assert.throws(() => j.sendTo(Uint8Array.of(5), ["[2001:db8::99]:6464"]), RangeError);
        // A reply to a sender goes to that peer's destination (its port, not the sender's own).
        assert.equal(j.destinationOf(ADDRESS.L), `[${ADDRESS.L}]:6465`);
        assert.equal(j.destinationOf(STRANGER), undefined);
        const [toK, toL] = j.destinationStats();
        assert.deepEqual([toK.datagramsSent, toK.bytesSent, toL.datagramsSent, toL.bytesSent], [
          1,
          1,
          2,
          4,
        ]);
        const fromJ = l.destinationStats().find((d) => d.destination === `[${ADDRESS.J}]:6464`)!;
        assert.deepEqual([fromJ.datagramsReceived, fromJ.bytesReceived], [2, 4]);
        assert.ok(!isEnvelope(got.L[0]));
        // On the wire: unicast to L's address and port, with the configured hop limit.
        const frame = await sniff(sniffer, (f) =>
          f.bytes[12] === 0x86 && f.bytes[13] === 0xdd && f.bytes[14 + 6] === 17);
        assert.equal(frame.bytes[14 + 7], 7, "IPv6 hop limit");
        assert.deepEqual(frame.bytes.subarray(14 + 24, 14 + 40), parseIPv6(ADDRESS.L));
        assert.equal(new DataView(frame.bytes.buffer, 14 + 40).getUint16(2), 6465);
      } finally {
        sniffer.close();
        for (const c of [j, k, l]) {
          c.close();
        }
      }
    }),
});
