/**
 * Secure sync over real sockets: two complete daemons (startDaemon, the CLI's own wiring) with the
 * same key file, in two network namespaces joined by a veth, each talking real netlink bytes to an
 * in-process fake Jool kernel that records every JOOLD_ADD. An attacker on the group (a plain UDP
 * socket in A's namespace) replays, reorders, truncates, flips and forges datagrams; a listener
 * (a plain channel in B's namespace) records what really travels.
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
} from "../../ffi/libc.ts";
import { sockaddrIn6 } from "../../ffi/sockaddr.ts";
import { parseIPv6 } from "../../lib/config/address.ts";
import type { NetConfig } from "../../lib/config/types.ts";
import { batchPayload } from "../../lib/jool/message.ts";
import { COMMANDS_4_1 } from "../../lib/jool/version.ts";
import { MulticastChannel } from "../../lib/net/multicast.ts";
import { Reactor } from "../../lib/reactor.ts";
import { isEnvelope, OVERHEAD, sealEnvelope } from "../../lib/secure/envelope.ts";
import { parseKeyFile } from "../../lib/secure/keyfile.ts";
import { node } from "../_daemon_node.ts";
import { fixture } from "../_fixtures.ts";
import { Netns, netnsUnavailable, veth } from "../_netns.ts";
import { waitFor } from "../_udp.ts";

const unavailable = netnsUnavailable();
const skip = unavailable ? ` (skipped: ${unavailable})` : "";

const KEY = "5e".repeat(32);

Deno.test({
  name:
    `secure sync over real sockets: genuine envelopes arrive, every replayed, truncated, flipped and forged one is dropped before the kernel${skip}`,
  ignore: unavailable !== null,
  async fn() {
    const a = new Netns("a");
    const b = new Netns("b");
    const dir = Deno.makeTempDirSync();
    const reactor = new Reactor();
    const running = reactor.run();
    const closers: (() => unknown)[] = [];
    try {
      Deno.writeTextFileSync(`${dir}/sync.key`, `# test key\n${KEY}\n`, { mode: 0o600 });
      veth(a, "sync0", ["2001:db8:ff08::4/64"], b, "sync0", ["2001:db8:ff08::5/64"]);
      const net: NetConfig = {
        multicastAddress: "ff08::db8:64:64",
        multicastPort: "6464",
        inInterface: "sync0",
        outInterface: "sync0",
        ttl: 1,
        reuseAddress: true,
        keyFile: `${dir}/sync.key`,
      };
      const warnings: string[] = [];
      const log = {
        level: "info" as const,
        error: (m: string) => warnings.push(m),
        warn: (m: string) => warnings.push(m),
        info() {},
        debug() {},
      };
      Deno.env.set("JOOLD_SEAL_THREAD", "1");
      const A = await node(a, reactor, net, "4.1.13").finally(() =>
        Deno.env.delete("JOOLD_SEAL_THREAD")
      );
      closers.push(() => A.close());
      const B = await node(b, reactor, net, "4.1.13", log);
      closers.push(() => B.close());
      // A seals and sends on its sealing thread (JOOLD_SEAL_THREAD=1, libcrypto granted by
      // --allow-all), B on its main loop: both envelopes are the same bytes.
      assert.equal(A.daemon.secure!.sealingThread, true, "A's sealing thread");
      assert.equal(B.daemon.secure!.sealingThread, false, "B seals on its main loop");
      // What travels on the wire, as B's namespace receives it.
      const wire: Uint8Array[] = [];
      const listener = b.enter(() => MulticastChannel.open(reactor, net));
      closers.push(() => listener.close());
      // The data envelopes (byte 3 = kind 0, version 1): the daemons' hellos travel too.
      listener.onDatagram((d) => {
        if (d[3] === 0x01) wire.push(d.slice());
      });

      const batches = ["1session", "4sessions"].map((n) => fixture("4.1.13", `d-udp-payload-${n}`));
      const adds = () =>
        B.kernel.requests(COMMANDS_4_1.JOOLD_ADD).map((r) => batchPayload(r.jool!));
      // One at a time: two batches read in one burst would share an envelope (daemon_join_test).
      for (const [i, p] of batches.entries()) {
        A.kernel.sendBatch(A.daemon.portId, p);
        await waitFor(() => adds().length === i + 1, `JOOLD_ADD ${i + 1} on B`);
      }
      await waitFor(() => adds().length === 2 && wire.length === 2, "two JOOLD_ADDs on B");
      assert.deepEqual(adds(), batches, "byte-identical sessions on B's kernel");
      assert.deepEqual(wire.map((d) => d.length), batches.map((p) => p.length + OVERHEAD));
      for (const [i, d] of wire.entries()) {
        assert.ok(isEnvelope(d));
        // Encrypted: no 16-byte run of the payload is on the wire.
        const text = Array.from(d).join(",");
        assert.ok(!text.includes(Array.from(batches[i].subarray(20, 36)).join(",")));
      }

      // The attacker: a plain socket in A aimed at the group.
      const fd = a.enter(() => socket(AF_INET6, SOCK_DGRAM, 0));
      closers.push(() => close(fd));
      const ifindex = Number(a.exec("-j", "link", "show", "sync0").match(/"ifindex":(\d+)/)![1]);
      setsockoptInt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, ifindex, "IPV6_MULTICAST_IF");
      const to = sockaddrIn6(parseIPv6("ff08::db8:64:64")!, 6464);
      const send = (d: Uint8Array) => sendto(fd, d as Uint8Array<ArrayBuffer>, to);
      const attacks: Uint8Array[] = [];
      for (const genuine of wire) {
        attacks.push(genuine, genuine); // replayed
        for (let i = 0; i < genuine.length; i += 7) {
          const flipped = genuine.slice();
          flipped[i] ^= 0x10;
          attacks.push(flipped);
        }
        for (const cut of [1, 16, 39, 40, 55, genuine.length - 1]) {
          attacks.push(genuine.slice(0, cut));
        }
        const forged = genuine.slice();
        forged.set(crypto.getRandomValues(new Uint8Array(forged.length - 40)), 40);
        attacks.push(forged);
      }
      attacks.push(batches[1]); // plain
      for (const d of attacks) send(d);
      const c = B.counters;
      const droppedCount = () =>
        c.netSecurePlainDatagrams + c.netSecureMalformed + c.netSecureUnknownKey +
        c.netSecureStale + c.netSecureReplays + c.netSecureAuthFailures;
      await waitFor(() => droppedCount() === attacks.length, `${attacks.length} drops counted`);
      assert.equal(adds().length, 2, "no attack reached B's kernel");
      // A copy of a datagram already received counts as a replay whatever else it changes (the
      // window is checked before the tag, as IPsec does): tampered headers fail elsewhere.
      assert.ok(c.netSecureReplays >= 4, `${c.netSecureReplays} replays`);
      assert.ok(c.netSecureAuthFailures > 0 && c.netSecureMalformed > 0);
      assert.equal(
        c.netSecurePlainDatagrams,
        5,
        "the plain one, two cut to 1 byte, two flipped magics",
      );
      assert.equal(c.netMalformedDatagrams, 0, "the daemon core never saw them");

      // Reordered, from a sender of the group (the test holds the key): all accepted, once each.
      const [key] = parseKeyFile(KEY, "sync.key");
      const sender = crypto.getRandomValues(new Uint8Array(16));
      const seal = (sequence: number, payload: Uint8Array) =>
        sealEnvelope(key, { time: Date.now(), sender, sequence }, payload);
      const p = [batches[0], batches[1], fixture("4.1.13", "d-udp-payload-3sessions")];
      for (const [sequence, payload] of [[3, p[2]], [1, p[0]], [2, p[1]]] as const) {
        send(seal(sequence, payload));
      }
      send(seal(2, p[1])); // a duplicate, sealed anew (same sequence)
      const replays = c.netSecureReplays;
      await waitFor(
        () => adds().length === 5 && c.netSecureReplays === replays + 1,
        "the reordered three",
      );
      assert.deepEqual(adds().slice(2), [p[2], p[0], p[1]]);
      assert.ok(warnings.some((w) => /sequence \d+ is a duplicate/.test(w)), warnings.join("\n"));
      assert.ok(warnings.every((w) => !w.includes(KEY.slice(0, 8))), "no key in the warnings");
      // The warnings name the sender's address (recvmsg's source) and its identity.
      assert.ok(
        warnings.some((w) =>
          /^dropped a \d+-byte datagram without the secure-sync envelope from 2001:db8:ff08::4: /
            .test(w)
        ),
        warnings.join("\n"),
      );
      assert.ok(
        warnings.some((w) => / from 2001:db8:ff08::4 \(sender [0-9a-f]{32}\)/.test(w)),
        warnings.join("\n"),
      );
      assert.equal(B.daemon.counters.netSecureAccepted, 5);
    } finally {
      for (const close of closers.reverse()) await close();
      reactor.stop();
      await running;
      a.dispose();
      b.dispose();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
