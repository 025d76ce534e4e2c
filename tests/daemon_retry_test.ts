/**
 * The daemon core's retry queue with several destinations (unicast peers): what one destination
 * misses is sent again to it alone, with the exact bytes; what fails for good is lost for that
 * destination only. The fake network throws the socket channel's own SendError.
 */
import assert from "node:assert/strict";
import type { KernelChannel, NetworkChannel, PayloadHandler } from "../lib/channel.ts";
import { createCounters } from "../lib/counters.ts";
import { Daemon } from "../lib/daemon.ts";
import type { Logger } from "../lib/log.ts";
import { SendError, type SendFailure } from "../lib/net/multicast.ts";
import { decodeHeader } from "../lib/secure/envelope.ts";
import { SecureChannel } from "../lib/secure/channel.ts";
import { parseKeyFile } from "../lib/secure/keyfile.ts";
import { ERRNO } from "../ffi/errno.ts";
import { fixture } from "./_fixtures.ts";

class Kernel implements KernelChannel {
  batch: PayloadHandler = () => {};
  onBatch(h: PayloadHandler) {
    this.batch = h;
  }
  onError() {}
  add() {}
  advertise() {}
  close() {}
}

/** Two peers; `failing` maps a peer to the errno its sends fail with. */
class TwoPeers implements NetworkChannel {
  readonly destinations = ["[2001:db8::5]:6464", "[2001:db8::6]:6464"];
  readonly got = new Map<string, Uint8Array[]>(this.destinations.map((d) => [d, []]));
  failing = new Map<string, number>();
  writable: (() => void) | null = null;
  onDatagram() {}
  send(payload: Uint8Array) {
    this.sendTo(payload, this.destinations);
  }
  sendTo(datagram: Uint8Array, to: readonly string[]) {
    const failures: SendFailure[] = [];
    for (const d of to) {
      const errno = this.failing.get(d);
      if (errno === undefined) this.got.get(d)!.push(datagram.slice());
      else failures.push({ destination: d, errno, what: `peer ${d}` });
    }
    if (failures.length > 0) {
      throw new SendError(`sendto(peer ${failures[0].destination})`, datagram, failures);
    }
  }
  whenWritable(h: () => void) {
    this.writable = h;
  }
  close() {}
}

function setup(wrap?: (plain: TwoPeers) => NetworkChannel) {
  const kernel = new Kernel();
  const plain = new TwoPeers();
  const counters = createCounters();
  const lines: string[] = [];
  const log: Logger = {
    error: (m) => lines.push(m),
    warn: (m) => lines.push(m),
    info: () => {},
    debug: () => {},
  };
  const network = wrap ? wrap(plain) : plain;
  const daemon = new Daemon({ kernel, network, counters, log });
  daemon.start();
  return { kernel, plain, counters, lines, daemon };
}

const [K, L] = ["[2001:db8::5]:6464", "[2001:db8::6]:6464"];

Deno.test("a datagram that found no buffer space for one peer is retried for that peer alone, in order", () => {
  const t = setup();
  const one = fixture("4.1.13", "d-udp-payload-1session");
  const four = fixture("4.1.13", "d-udp-payload-4sessions");
  t.plain.failing.set(L, ERRNO.EAGAIN);
  t.kernel.batch(one);
  assert.deepEqual(t.plain.got.get(K), [one], "K got it at once");
  assert.equal(t.daemon.queuedDatagrams, 1);
  assert.equal(t.counters.netSendRetries, 1, "one copy queued: L's");
  t.kernel.batch(four); // behind the queue: for both peers, after `one`
  assert.deepEqual(t.plain.got.get(K), [one]);
  assert.equal(t.counters.netSendRetries, 3, "L's copy of one, and both copies of four");
  t.plain.failing.clear();
  t.plain.writable!();
  assert.deepEqual(t.plain.got.get(K), [one, four], "K never gets a duplicate");
  assert.deepEqual(t.plain.got.get(L), [one, four]);
  assert.equal(t.daemon.queuedDatagrams, 0);
  assert.equal(t.counters.netSendLostDatagrams, 0);
  assert.deepEqual(t.lines, []);
});

Deno.test("a peer that fails for good loses its copy, counted and named, and never holds up the other", () => {
  const t = setup();
  const four = fixture("4.1.13", "d-udp-payload-4sessions");
  t.plain.failing.set(L, 101 /* ENETUNREACH */);
  for (let i = 0; i < 3; i++) t.kernel.batch(four);
  assert.equal(t.plain.got.get(K)!.length, 3);
  assert.equal(t.daemon.queuedDatagrams, 0, "nothing queued: no route is not worth a retry");
  assert.equal(t.counters.netSendLostDatagrams, 3);
  assert.equal(t.counters.netSendLostSessions, 12);
  assert.equal(t.lines.length, 1, "rate limited: one warning");
  assert.match(
    t.lines[0],
    /^cannot send sessions to peer \[2001:db8::6\]:6464: sendto\(peer \[2001:db8::6\]:6464\) failed: ENETUNREACH$/,
  );
});

Deno.test("datagrams still owed to a peer at stop are lost for that peer only", () => {
  const t = setup();
  t.plain.failing.set(L, ERRNO.ENOBUFS);
  t.kernel.batch(fixture("4.1.13", "d-udp-payload-4sessions"));
  t.daemon.stop();
  assert.equal(t.counters.netSendLostDatagrams, 1);
  assert.equal(t.counters.netSendLostSessions, 4);
  assert.equal(t.plain.got.get(K)!.length, 1);
});

Deno.test("under secure sync the peer that missed a datagram gets the same envelope, not a new sequence number", () => {
  const keys = parseKeyFile("42".repeat(32), "sync.key");
  const t = setup((inner) =>
    new SecureChannel({ inner, keys, counters: createCounters(), log: { ...console } as Logger })
  );
  t.plain.failing.set(L, ERRNO.EAGAIN);
  t.kernel.batch(fixture("4.1.13", "d-udp-payload-1session"));
  t.plain.failing.clear();
  t.plain.writable!();
  t.kernel.batch(fixture("4.1.13", "d-udp-payload-4sessions"));
  const sequences = (d: string) => t.plain.got.get(d)!.map((e) => decodeHeader(e).sequence);
  assert.deepEqual(sequences(K), [1, 2]);
  assert.deepEqual(sequences(L), [1, 2]);
  assert.deepEqual(t.plain.got.get(K)![0], t.plain.got.get(L)![0], "byte for byte");
});
