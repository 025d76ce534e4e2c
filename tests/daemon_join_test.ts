/**
 * A keyed daemon joins the kernel batches of one burst into one envelope (lib/daemon.ts,
 * NetworkChannel.coalesceBytes); a plain one sends each batch as the C daemon does. The kernel
 * side is the real kernel channel over the in-memory netlink twin, its fake Jool answering each
 * ACK with the next queued batch as Jool's joold_ack does under load; the network side the real
 * secure channel over an in-memory wire, opened by a second daemon's secure channel.
 */
import assert from "node:assert/strict";
import type { KernelChannel, NetworkChannel, PayloadHandler } from "../lib/channel.ts";
import { createCounters } from "../lib/counters.ts";
import { Daemon } from "../lib/daemon.ts";
import { decodePayload } from "../lib/jool/session.ts";
import { COMMANDS_4_1, parseVersion } from "../lib/jool/version.ts";
import { openKernel } from "../lib/kernel/open.ts";
import { silentLogger } from "../lib/log.ts";
import { dialTwin } from "../lib/netlink/twin.ts";
import { Reactor } from "../lib/reactor.ts";
import { COALESCE_BYTES, SecureChannel } from "../lib/secure/channel.ts";
import { OVERHEAD } from "../lib/secure/envelope.ts";
import { parseKeyFile } from "../lib/secure/keyfile.ts";
import { SystemError } from "../ffi/errno.ts";
import { ERRNO } from "../ffi/errno.ts";
import { FakeJool } from "./_fake_kernel.ts";
import { fixture, VERSIONS } from "./_fixtures.ts";

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));
const keys = parseKeyFile("5a".repeat(32), "sync.key");

/** A plain channel that records what it sends; `full` makes sends fail as a full socket does. */
class Wire implements NetworkChannel {
  readonly sent: Uint8Array[] = [];
  handler: PayloadHandler = () => {};
  full = false;
  writable: (() => void) | null = null;
  onDatagram(handler: PayloadHandler): void {
    this.handler = handler;
  }
  send(payload: Uint8Array): void {
    if (this.full) throw new SystemError("sendto(sync group)", ERRNO.EAGAIN);
    this.sent.push(payload.slice());
  }
  whenWritable(handler: () => void): void {
    this.writable = handler;
  }
  close(): void {}
}

/** A secure channel over `inner` under the test's key. */
const keyed = (inner: NetworkChannel) =>
  new SecureChannel({ inner, keys, counters: createCounters(), log: silentLogger });

/** A kernel channel that records JOOLD_ADDs (the receiving daemon's). */
function addRecorder(): KernelChannel & { adds: Uint8Array[] } {
  const adds: Uint8Array[] = [];
  return {
    adds,
    onBatch() {},
    onError() {},
    add: (p) => void adds.push(p.slice()),
    advertise() {},
    close() {},
  };
}

/** J: a daemon on the real kernel channel over the twin, sending to `network`. */
async function sender(recording: (typeof VERSIONS)[number], network: NetworkChannel) {
  const jool = new FakeJool(recording);
  const { conn, twin } = dialTwin(jool.answer);
  const reactor = new Reactor();
  const { channel } = await openKernel(reactor, {
    instance: "default",
    counters: createCounters(),
    conn,
    moduleVersion: parseVersion(recording),
  });
  const daemon = new Daemon({
    kernel: channel,
    network,
    counters: createCounters(),
    log: silentLogger,
  });
  daemon.start();
  /** The kernel under load: `first` now, each of `queued` within the previous one's ACK. */
  const burst = async (first: Uint8Array, ...queued: Uint8Array[]) => {
    jool.state.ackGated.push(...queued);
    assert.ok(twin.multicast(jool.groupId, jool.batch(first)));
    await settle();
  };
  const acks = () => jool.requests(COMMANDS_4_1.JOOLD_ACK).length;
  const close = () => {
    daemon.stop();
    channel.close();
    reactor.stop();
  };
  return { burst, acks, daemon, close };
}

Deno.test(`with a key, an envelope's payload is at most ${COALESCE_BYTES} bytes: 1452 with its header and tag`, () => {
  assert.equal(COALESCE_BYTES + OVERHEAD, 1452);
  assert.equal(keyed(new Wire()).coalesceBytes, COALESCE_BYTES);
});

for (const recording of VERSIONS) {
  const one = fixture(recording, "d-udp-payload-1session");
  const four = fixture(recording, "d-udp-payload-4sessions");

  Deno.test(`without a key (${recording}), each batch of a burst is its own datagram, the kernel's bytes (the C daemon's)`, async () => {
    const wire = new Wire();
    const j = await sender(recording, wire);
    try {
      await j.burst(one, four, one);
      assert.deepEqual(wire.sent, [one, four, one]);
      assert.equal(j.acks(), 3);
    } finally {
      j.close();
    }
  });

  Deno.test(`with a key (${recording}), a burst's batches travel in one envelope and reach the peer's kernel as one JOOLD_ADD`, async () => {
    const wire = new Wire();
    const secureJ = keyed(wire);
    const j = await sender(recording, secureJ);
    const kWire = new Wire();
    const secureK = keyed(kWire);
    const kKernel = addRecorder();
    const kCounters = createCounters();
    new Daemon({ kernel: kKernel, network: secureK, counters: kCounters, log: silentLogger })
      .start();
    try {
      await j.burst(one, four, one);
      assert.equal(j.acks(), 3, "every batch was ACKed as it came");
      assert.equal(wire.sent.length, 1, "one envelope for the burst");
      const joined = Uint8Array.from([...one, ...four, ...one]);
      assert.equal(wire.sent[0].length, joined.length + OVERHEAD);
      kWire.handler(wire.sent[0], "2001:db8::4");
      assert.deepEqual(kKernel.adds, [joined]);
      const sessions = decodePayload(kKernel.adds[0]).sessions;
      assert.deepEqual(sessions, [
        ...decodePayload(one).sessions,
        ...decodePayload(four).sessions,
        ...decodePayload(one).sessions,
      ]);
      assert.equal(kCounters.netMalformedDatagrams, 0);
      // The next burst is an envelope of its own (the next sequence number).
      await j.burst(four);
      assert.equal(wire.sent.length, 2);
      kWire.handler(wire.sent[1], "2001:db8::4");
      assert.deepEqual(kKernel.adds.slice(1), [four]);
    } finally {
      j.close();
      secureJ.close();
      secureK.close();
    }
  });

  Deno.test(`with a key (${recording}), a burst larger than the limit is split between sessions, never over it, nothing lost or reordered`, async () => {
    const wire = new Wire();
    // The joining is the daemon core's: any channel that sets coalesceBytes gets it.
    const network = Object.assign(wire, { coalesceBytes: 3 * four.length + 1 });
    const j = await sender(recording, network);
    try {
      await j.burst(four, four, four, one, four, one);
      assert.deepEqual(wire.sent, [
        Uint8Array.from([...four, ...four, ...four]),
        Uint8Array.from([...one, ...four, ...one]),
      ]);
      assert.ok(wire.sent.every((d) => d.length <= network.coalesceBytes));
      // A batch larger than the limit is split between its sessions, none lost, none cut.
      const big = Uint8Array.from([...four, ...four, ...four, ...four]);
      await j.burst(one, big, one);
      const chunks = wire.sent.slice(2);
      assert.equal(chunks.length, 2);
      assert.ok(chunks.every((d) => d.length <= network.coalesceBytes), "none over the limit");
      assert.ok(chunks[0].length > network.coalesceBytes - one.length, "the first one full");
      assert.deepEqual(
        Uint8Array.from(chunks.flatMap((d) => [...d])),
        Uint8Array.from([...one, ...big, ...one]),
      );
      assert.deepEqual(
        chunks.flatMap((d) => decodePayload(d).sessions),
        [one, big, one].flatMap((d) => decodePayload(d).sessions),
        "cut between sessions",
      );
      // A payload whose entries do not add up (not the kernel's) goes as it is.
      const odd = Uint8Array.from([...big, 1, 2, 3]);
      await j.burst(one, odd, one);
      assert.deepEqual(wire.sent.slice(4), [one, odd, one], "in the kernel's order");
    } finally {
      j.close();
    }
  });

  Deno.test(`with a key (${recording}), a joined payload that finds the socket full waits in the retry queue, whole and in order`, async () => {
    const wire = new Wire();
    const network = Object.assign(wire, { coalesceBytes: COALESCE_BYTES });
    const j = await sender(recording, network);
    try {
      wire.full = true;
      await j.burst(one, four);
      assert.equal(j.daemon.queuedDatagrams, 1);
      await j.burst(one);
      assert.equal(j.daemon.queuedDatagrams, 2);
      wire.full = false;
      wire.writable?.();
      assert.deepEqual(wire.sent, [Uint8Array.from([...one, ...four]), one]);
      assert.equal(j.daemon.queuedDatagrams, 0);
    } finally {
      j.close();
    }
  });
}

Deno.test("a daemon stopping sends what it joined before it says what is lost", () => {
  let batch: PayloadHandler = () => {};
  const kernel: KernelChannel = {
    onBatch: (h) => (batch = h),
    onDrained() {}, // a burst that never ends before the stop
    onError() {},
    add() {},
    advertise() {},
    close() {},
  };
  const wire = Object.assign(new Wire(), { coalesceBytes: COALESCE_BYTES });
  const daemon = new Daemon({
    kernel,
    network: wire,
    counters: createCounters(),
    log: silentLogger,
  });
  daemon.start();
  const one = fixture("4.1.13", "d-udp-payload-1session");
  batch(one);
  batch(one);
  assert.deepEqual(wire.sent, []);
  daemon.stop();
  assert.deepEqual(wire.sent, [Uint8Array.from([...one, ...one])]);
});
