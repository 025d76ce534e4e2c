import assert from "node:assert/strict";
import {
  AF_INET,
  close,
  IP_MULTICAST_IF,
  IPPROTO_IP,
  sendto,
  setsockoptBytes,
  SOCK_DGRAM,
  socket,
} from "../../ffi/libc.ts";
import { sockaddrIn } from "../../ffi/sockaddr.ts";
import { createCounters } from "../../lib/counters.ts";
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
      // One destination, the group; a reply to any member goes to the group too.
      assert.deepEqual(chA.destinations, ["[ff08::db8:64:64]:6464"]);
      assert.equal(chA.destinationOf("2001:db8:ff08::5"), "[ff08::db8:64:64]:6464");
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

const GROUP4 = Uint8Array.of(233, 252, 0, 64);

function cfg4(local: string | undefined): NetConfig {
  return {
    multicastAddress: "233.252.0.64",
    multicastPort: "6464",
    inInterface: local,
    outInterface: local,
    ttl: 1,
    reuseAddress: true,
  };
}

/** A plain UDP socket sending to the IPv4 group out of `via`, multicast loop on (the default). */
function groupSender(via: number[]): { send(payload: Uint8Array): void; close(): void } {
  const fd = socket(AF_INET, SOCK_DGRAM, 0);
  setsockoptBytes(fd, IPPROTO_IP, IP_MULTICAST_IF, Uint8Array.from(via), "IP_MULTICAST_IF");
  const to = sockaddrIn(GROUP4, 6464);
  return {
    send: (payload) => assert.equal(sendto(fd, payload.slice(), to), payload.length),
    close: () => close(fd),
  };
}

Deno.test({
  name:
    `datagrams from this host's own addresses (multicast loop: a local user) are dropped; a peer's pass${skip}`,
  ignore: unavailable !== null,
  async fn() {
    await pair(false, async ({ a, b, reactor }) => {
      const chA = a.enter(() => MulticastChannel.open(reactor, cfg4("198.51.100.1")));
      const chB = b.enter(() => MulticastChannel.open(reactor, cfg4("198.51.100.2")));
      const local = b.enter(() => groupSender([198, 51, 100, 2]));
      try {
        const got: Uint8Array[] = [];
        chB.onDatagram((p) => got.push(p.slice()));
        const forged = fixture("4.1.13", "d-udp-payload-1session");
        local.send(forged);
        await waitFor(() => chB.drops.netLocalSourceDrops === 1, "the local datagram's drop");
        const payload = fixture("4.1.13", "d-udp-payload-4sessions");
        chA.send(payload);
        await waitFor(() => got.length === 1, "A's datagram on B");
        assert.deepEqual(got, [payload]);
        assert.deepEqual(chB.warnings, []);
      } finally {
        local.close();
        chA.close();
        chB.close();
      }
    });
  },
});

Deno.test({
  name: `the peers allow-list: a sender outside it is dropped, one in it passes${skip}`,
  ignore: unavailable !== null,
  async fn() {
    await pair(false, async ({ a, b, reactor }) => {
      const chA = a.enter(() => MulticastChannel.open(reactor, cfg4("198.51.100.1")));
      const strict = b.enter(() =>
        MulticastChannel.open(reactor, cfg4("198.51.100.2"), createCounters(), {
          peers: ["198.51.100.9"],
        })
      );
      const open = b.enter(() =>
        MulticastChannel.open(reactor, cfg4("198.51.100.2"), createCounters(), {
          peers: ["198.51.100.1"],
        })
      );
      try {
        const got: string[] = [];
        strict.onDatagram(() => got.push("strict"));
        open.onDatagram(() => got.push("open"));
        chA.send(fixture("4.1.13", "d-udp-payload-1session"));
        await waitFor(() => got.length === 1 && strict.drops.netUnknownPeerDrops === 1, "both");
        assert.deepEqual(got, ["open"]);
        assert.throws(
          () =>
            b.enter(() =>
              MulticastChannel.open(reactor, cfg4("198.51.100.2"), createCounters(), {
                peers: ["::1"],
              })
            ),
          {
            name: "NetworkConfigError",
            message:
              `"peers allowed": the group is IPv4, so every peer must be an IPv4 address, got "::1"`,
          },
        );
      } finally {
        chA.close();
        strict.close();
        open.close();
      }
    });
  },
});

Deno.test({
  name: `a sender over its rate is cut to it (bytes per second per sender)${skip}`,
  ignore: unavailable !== null,
  async fn() {
    await pair(false, async ({ a, b, reactor }) => {
      const payload = fixture("4.1.13", "d-udp-payload-4sessions");
      const chA = a.enter(() => MulticastChannel.open(reactor, cfg4("198.51.100.1")));
      let now = 0;
      const chB = b.enter(() =>
        MulticastChannel.open(reactor, cfg4("198.51.100.2"), createCounters(), {
          peerRate: { ratePerSecond: payload.length, burst: 3 * payload.length },
          now: () => now,
        })
      );
      try {
        let got = 0;
        chB.onDatagram(() => got++);
        for (let i = 0; i < 10; i++) chA.send(payload);
        await waitFor(() => got + chB.drops.netRateLimitedDrops === 10, "ten datagrams");
        assert.equal(got, 3, "the burst");
        now = 2000; // two seconds later: two more
        for (let i = 0; i < 5; i++) chA.send(payload);
        await waitFor(() => got + chB.drops.netRateLimitedDrops === 15, "five more");
        assert.equal(got, 5);
      } finally {
        chA.close();
        chB.close();
      }
    });
  },
});

Deno.test({
  name:
    `the group's datagrams arriving on another interface than the in interface do not get through${skip}`,
  ignore: unavailable !== null,
  async fn() {
    await pair(false, async ({ a, b, reactor }) => {
      const c = new Netns("c");
      try {
        veth(b, "up0", ["198.51.101.2/24"], c, "up0", ["198.51.101.3/24"]);
        const chA = a.enter(() => MulticastChannel.open(reactor, cfg4("198.51.100.1")));
        const chB = b.enter(() => MulticastChannel.open(reactor, cfg4("198.51.100.2")));
        // Another program of B's host joins the group on the uplink: the kernel now accepts the
        // group's traffic there (with IP_MULTICAST_ALL on, every socket of the group would get it).
        const other = b.enter(() => MulticastChannel.open(reactor, cfg4("198.51.101.2")));
        const uplink = c.enter(() => groupSender([198, 51, 101, 3]));
        try {
          const got: Uint8Array[] = [];
          let others = 0;
          chB.onDatagram((p) => got.push(p.slice()));
          other.onDatagram(() => others++);
          uplink.send(fixture("4.1.13", "d-udp-payload-1session"));
          await waitFor(() => others === 1, "the uplink datagram on the uplink's socket");
          const payload = fixture("4.1.13", "d-udp-payload-4sessions");
          chA.send(payload);
          await waitFor(() => got.length === 1, "A's datagram");
          assert.deepEqual(got, [payload], "only the sync link's datagram");
        } finally {
          uplink.close();
          chA.close();
          chB.close();
          other.close();
        }
      } finally {
        c.dispose();
      }
    });
  },
});

Deno.test({
  name:
    `without an in interface the channel warns that the group may be joined on the uplink${skip}`,
  ignore: unavailable !== null,
  async fn() {
    await pair(false, ({ a, reactor }) => {
      a.exec("route", "add", "224.0.0.0/4", "dev", "sync0");
      const ch = a.enter(() => MulticastChannel.open(reactor, cfg4(undefined)));
      try {
        assert.deepEqual(ch.warnings, [
          "no in interface (--net.dev.in) is set: the group is joined on the interface of the default multicast route, perhaps the uplink, where anyone can send sessions to it; set the sync interface",
        ]);
      } finally {
        ch.close();
      }
      return Promise.resolve();
    });
  },
});
