import assert from "node:assert/strict";
import { MulticastChannel, NetworkConfigError } from "../../lib/net/multicast.ts";
import type { NetConfig } from "../../lib/config/types.ts";
import { Reactor } from "../../lib/reactor.ts";
import { Netns, netnsUnavailable, sniff, Sniffer, veth } from "../_netns.ts";
import { waitFor } from "../_udp.ts";
import { fixture } from "../_fixtures.ts";

const unavailable = netnsUnavailable();
const skip = unavailable ? ` (skipped: ${unavailable})` : "";

/** Two namespaces joined by a veth, a reactor, and cleanup. */
async function pair(
  v6: boolean,
  fn: (ctx: {
    a: Netns;
    b: Netns;
    reactor: Reactor;
  }) => Promise<void>,
) {
  const a = new Netns("a");
  const b = new Netns("b");
  const reactor = new Reactor();
  const running = reactor.run();
  try {
    veth(
      a,
      "sync0",
      v6 ? ["2001:db8:ff08::1/64"] : ["198.51.100.1/24"],
      b,
      "sync0",
      v6 ? ["2001:db8:ff08::2/64"] : ["198.51.100.2/24"],
    );
    await fn({ a, b, reactor });
  } finally {
    reactor.stop();
    await running;
    a.dispose();
    b.dispose();
  }
}

const V6: NetConfig = {
  multicastAddress: "ff08::db8:64:64",
  multicastPort: "6464",
  inInterface: "sync0",
  outInterface: "sync0",
  ttl: 3,
  reuseAddress: true,
};

Deno.test({
  name:
    `IPv6 group: a datagram sent on A arrives byte-identical on B, hop limit 3 on the wire${skip}`,
  ignore: unavailable !== null,
  async fn() {
    await pair(true, async ({ a, b, reactor }) => {
      const chA = a.enter(() => MulticastChannel.open(reactor, V6));
      const chB = b.enter(() => MulticastChannel.open(reactor, V6));
      const sniffer = b.enter(() => new Sniffer());
      const got: Uint8Array[] = [];
      chB.onDatagram((p) => got.push(p.slice()));
      const payload = fixture("4.1.13", "d-udp-payload-4sessions");
      chA.send(payload);
      await waitFor(() => got.length === 1, "the datagram on B");
      assert.deepEqual(got[0], payload);
      const frame = await sniff(sniffer, (f) => f.bytes[12] === 0x86 && f.bytes[13] === 0xdd);
      assert.equal(frame.bytes[14 + 7], 3, "IPv6 hop limit");
      assert.equal(frame.bytes[14 + 6], 17, "next header UDP");
      const udp = new DataView(frame.bytes.buffer, 14 + 40);
      assert.deepEqual([udp.getUint16(0), udp.getUint16(2)], [6464, 6464], "6464 -> 6464");
      assert.equal(chA.counters.netDatagramsSent, 1);
      assert.equal(chB.counters.netBytesReceived, payload.length);
      sniffer.close();
      chA.close();
      chB.close();
    });
  },
});

Deno.test({
  name: `IPv4 group: a datagram sent on A arrives on B with the configured TTL${skip}`,
  ignore: unavailable !== null,
  async fn() {
    await pair(false, async ({ a, b, reactor }) => {
      const cfg = (local: string): NetConfig => ({
        multicastAddress: "233.252.0.64",
        multicastPort: "6464",
        inInterface: local,
        outInterface: local,
        ttl: 5,
        reuseAddress: true,
      });
      const chA = a.enter(() => MulticastChannel.open(reactor, cfg("198.51.100.1")));
      const chB = b.enter(() => MulticastChannel.open(reactor, cfg("198.51.100.2")));
      const sniffer = b.enter(() => new Sniffer());
      const got: Uint8Array[] = [];
      chB.onDatagram((p) => got.push(p.slice()));
      const payload = fixture("4.1.9", "d-udp-payload-1session");
      chA.send(payload);
      await waitFor(() => got.length === 1, "the datagram on B");
      assert.deepEqual(got[0], payload);
      const frame = await sniff(sniffer, (f) => f.bytes[12] === 0x08 && f.bytes[13] === 0x00);
      assert.equal(frame.bytes[14 + 8], 5, "IPv4 TTL");
      assert.deepEqual(Array.from(frame.bytes.subarray(14 + 16, 14 + 20)), [233, 252, 0, 64]);
      sniffer.close();
      chA.close();
      chB.close();
    });
  },
});

Deno.test({
  name: `IPv6 group: a 60000-byte datagram is received whole${skip}`,
  ignore: unavailable !== null,
  async fn() {
    await pair(true, async ({ a, b, reactor }) => {
      const chA = a.enter(() => MulticastChannel.open(reactor, V6));
      const chB = b.enter(() => MulticastChannel.open(reactor, V6));
      const got: Uint8Array[] = [];
      chB.onDatagram((p) => got.push(p.slice()));
      const big = Uint8Array.from({ length: 60000 }, (_, i) => i & 0xff);
      chA.send(big);
      await waitFor(() => got.length === 1, "the big datagram");
      assert.deepEqual(got[0], big);
      chA.close();
      chB.close();
    });
  },
});

Deno.test({
  name: `the out interface decides where datagrams leave (two interfaces)${skip}`,
  ignore: unavailable !== null,
  async fn() {
    const a = new Netns("a");
    const b = new Netns("b");
    const c = new Netns("c");
    const reactor = new Reactor();
    const running = reactor.run();
    try {
      veth(a, "toB", ["2001:db8:b::1/64"], b, "eth0", ["2001:db8:b::2/64"]);
      veth(a, "toC", ["2001:db8:c::1/64"], c, "eth0", ["2001:db8:c::2/64"]);
      const chA = a.enter(() =>
        MulticastChannel.open(reactor, { ...V6, inInterface: "toC", outInterface: "toC" })
      );
      const [sniffB, sniffC] = [b.enter(() => new Sniffer()), c.enter(() => new Sniffer())];
      chA.send(Uint8Array.of(1, 2, 3, 4));
      const isSync = (f: { bytes: Uint8Array }) =>
        f.bytes[12] === 0x86 && f.bytes[13] === 0xdd && f.bytes[14 + 6] === 17 &&
        f.bytes[14 + 40 + 2] === 0x19 && f.bytes[14 + 40 + 3] === 0x40;
      await sniff(sniffC, isSync);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(sniffB.read().filter(isSync).length, 0, "nothing left through toB");
      sniffB.close();
      sniffC.close();
      chA.close();
    } finally {
      reactor.stop();
      await running;
      a.dispose();
      b.dispose();
      c.dispose();
    }
  },
});

Deno.test({
  name: `startup errors name the option: unknown interface, foreign address${skip}`,
  ignore: unavailable !== null,
  async fn() {
    await pair(true, async ({ a, reactor }) => {
      await Promise.resolve();
      assert.throws(
        () => a.enter(() => MulticastChannel.open(reactor, { ...V6, inInterface: "nosuch0" })),
        (e: unknown) => {
          assert.ok(e instanceof NetworkConfigError);
          assert.equal(
            e.message,
            `"in interface" (--net.dev.in): no interface named "nosuch0" in this network namespace (see ip link)`,
          );
          return true;
        },
      );
      assert.throws(
        () => a.enter(() => MulticastChannel.open(reactor, { ...V6, outInterface: "nosuch1" })),
        /"out interface" \(--net\.dev\.out\): no interface named "nosuch1"/,
      );
      assert.throws(
        () =>
          a.enter(() =>
            MulticastChannel.open(reactor, {
              ...V6,
              multicastAddress: "233.252.0.64",
              inInterface: "192.0.2.77",
              outInterface: undefined,
            })
          ),
        /"in interface" \(--net\.dev\.in\): 192\.0\.2\.77 is not an address of any interface/,
      );
      assert.throws(
        () =>
          a.enter(() =>
            MulticastChannel.open(reactor, { ...V6, multicastPort: "no-such-service" })
          ),
        /"multicast port" \(--net\.mcast\.port\): cannot resolve ff08::db8:64:64 port "no-such-service"/,
      );
      assert.throws(
        () =>
          a.enter(() =>
            MulticastChannel.open(reactor, {
              ...V6,
              multicastAddress: "ff02::db8:64:64",
              inInterface: undefined,
            })
          ),
        /cannot bind ff02::db8:64:64 port 6464: EINVAL \(a link-local or interface-local group needs the in interface: set --net\.dev\.in\)/,
      );
    });
  },
});

Deno.test({
  name:
    `IPv6 link-local group (ff02::): the socket binds scoped to the in interface and datagrams arrive${skip}`,
  ignore: unavailable !== null,
  async fn() {
    await pair(true, async ({ a, b, reactor }) => {
      const config = { ...V6, multicastAddress: "ff02::db8:64:64" };
      const chA = a.enter(() => MulticastChannel.open(reactor, config));
      const chB = b.enter(() => MulticastChannel.open(reactor, config));
      const got: Uint8Array[] = [];
      chB.onDatagram((p) => got.push(p.slice()));
      const payload = fixture("4.1.13", "d-udp-payload-1session");
      chA.send(payload);
      await waitFor(() => got.length === 1, "the datagram on B");
      assert.deepEqual(got[0], payload);
      chA.close();
      chB.close();
    });
  },
});
