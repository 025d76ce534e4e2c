/**
 * Loss recovery and announce/bulk over an in-memory wire: two (or three) secure channels on one
 * clock the test moves, the control plane run by hand (`tick`), every datagram recorded and
 * delivered, dropped, reordered or duplicated by the test, as a lossy link would.
 */
import assert from "node:assert/strict";
import type { NetworkChannel, PayloadHandler } from "../../lib/channel.ts";
import { createCounters } from "../../lib/counters.ts";
import type { Logger } from "../../lib/log.ts";
import {
  type AdvertiseMode,
  ANNOUNCE_WAIT_MS,
  BULK_MAX_DRAIN_MS,
  BULK_QUIET_MS,
  HELLO_INTERVAL_MS,
  MAX_RESEND_PER_NACK,
  NACK_RATE,
  SecureChannel,
} from "../../lib/secure/channel.ts";
import {
  BULK_NO_ADVERTISE,
  decodeNack,
  encodeBulkDone,
  encodeHello,
  encodeNack,
  HELLO_SYNC_READY,
  HELLO_WANT_BULK,
  NACK_RESYNC,
} from "../../lib/secure/control.ts";
import { decodeHeader, Kind, openEnvelope, sealEnvelope } from "../../lib/secure/envelope.ts";
import { parseKeyFile } from "../../lib/secure/keyfile.ts";
import {
  GapTracker,
  NACK_RETRY_MS,
  NACK_TRIES,
  REORDER_WAIT_MS,
  ResendRing,
} from "../../lib/secure/recovery.ts";
import { WINDOW } from "../../lib/secure/replay.ts";

const [KEY] = parseKeyFile("33".repeat(32), "sync.key");

class Wire implements NetworkChannel {
  readonly sent: Uint8Array[] = [];
  handler: (datagram: Uint8Array, from?: string) => void = () => {};
  onDatagram(handler: PayloadHandler): void {
    this.handler = handler;
  }
  send(payload: Uint8Array): void {
    this.sent.push(payload.slice());
  }
  close(): void {}
}

const clock = { t: 1_000_000 };
const now = () => clock.t;

function logger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return {
    warnings,
    error: (m: string) => warnings.push(m),
    warn: (m: string) => warnings.push(m),
    info() {},
    debug() {},
  } as unknown as Logger & { warnings: string[] };
}

function side(options: { ring?: number; mode?: AdvertiseMode; readyTimeoutMs?: number } = {}) {
  const wire = new Wire();
  const counters = createCounters();
  const log = logger();
  const channel = new SecureChannel({
    inner: wire,
    keys: [KEY],
    counters,
    log,
    now,
    resendBufferBytes: options.ring,
    syncReadyTimeoutMs: options.readyTimeoutMs,
  });
  const advertises: string[] = [];
  channel.setAdvertiser((why) => {
    advertises.push(why);
    return options.mode ?? "reports-done";
  });
  const got: Uint8Array[] = [];
  channel.onDatagram((payload) => got.push(payload.slice()));
  /** Per receiver, the index of the next datagram of this wire not yet delivered by `flush`. */
  const next = new Map<Wire, number>();
  return {
    wire,
    counters,
    log,
    channel,
    got,
    advertises,
    /** Delivers what it sent since the last flush to `to`, except those `drop` says. */
    flush(to: { wire: Wire }, drop: (kind: Kind, i: number) => boolean = () => false) {
      for (let i = next.get(to.wire) ?? 0; i < wire.sent.length; i++) {
        next.set(to.wire, i + 1);
        const d = wire.sent[i];
        if (!drop(decodeHeader(d).kind ?? Kind.data, i)) to.wire.handler(d);
      }
    },
  };
}

/** A distinct payload per number (the channel does not look inside). */
const payload = (n: number) => new Uint8Array(100).fill(n & 0xff);
const kinds = (wire: Wire) => wire.sent.map((d) => decodeHeader(d).kind);

Deno.test("ResendRing: 20 000 envelopes of random sizes round a small buffer, each read back as pushed while held", () => {
  let seed = 17;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const max = 4096, longest = 300;
  const ring = new ResendRing(max);
  const pushed: Uint8Array[] = [];
  let total = 0;
  for (let s = 1; s <= 20_000; s++) {
    const bytes = new Uint8Array(1 + Math.floor(random() * longest)).map(() => random() * 256);
    pushed[s] = bytes;
    total += bytes.length;
    ring.push({ sequence: s, bytes, time: s * 2 });
    assert.ok(ring.bytes <= max, `held ${ring.bytes} bytes of ${max}`);
    assert.ok(
      ring.bytes >= Math.min(total, max - 2 * longest),
      `after ${s}: only ${ring.bytes} bytes held`,
    );
    if (s % 37 !== 0) continue;
    const oldest = s - ring.size + 1;
    assert.equal(ring.get(oldest - 1), undefined, "the envelope before the oldest is gone");
    assert.equal(ring.get(s + 1), undefined);
    let held = 0;
    for (let q = oldest; q <= s; q++) {
      const entry = ring.get(q);
      assert.ok(entry !== undefined, `${q} of ${oldest}..${s} is held`);
      assert.equal(entry.time, q * 2);
      assert.deepEqual(entry.bytes, pushed[q], `${q}'s bytes`);
      held += entry.bytes.length;
    }
    assert.equal(held, ring.bytes, "the held envelopes add up to the bytes reported");
  }
});

Deno.test("ResendRing: bounded in bytes, oldest out first, exact lookups", () => {
  const ring = new ResendRing(1000);
  for (let s = 1; s <= 30; s++) ring.push({ sequence: s, bytes: new Uint8Array(90), time: s });
  assert.equal(ring.size, 11, "11 x 90 = 990 <= 1000");
  assert.equal(ring.bytes, 990);
  assert.equal(ring.get(19), undefined);
  assert.equal(ring.get(20)?.time, 20);
  assert.equal(ring.get(30)?.time, 30);
  assert.equal(ring.get(31), undefined);
  ring.push({ sequence: 31, bytes: new Uint8Array(1001), time: 31 });
  assert.equal(ring.size, 0, "larger than the whole ring: nothing kept");
  ring.push({ sequence: 32, bytes: new Uint8Array(10), time: 32 });
  ring.push({ sequence: 40, bytes: new Uint8Array(10), time: 40 });
  assert.equal(ring.get(32), undefined, "a jump in sequence empties the ring");
  assert.equal(ring.get(40)?.time, 40);
  const none = new ResendRing(0);
  none.push({ sequence: 1, bytes: new Uint8Array(1), time: 0 });
  assert.equal(none.size, 0);
  assert.throws(() => new ResendRing(-1), RangeError);
  // Many pushes: the compaction keeps lookups right.
  const big = new ResendRing(100);
  for (let s = 1; s <= 5000; s++) big.push({ sequence: s, bytes: new Uint8Array(10), time: s });
  assert.equal(big.size, 10);
  assert.equal(big.get(4991)?.time, 4991);
  assert.equal(big.get(4990), undefined);
});

Deno.test("GapTracker: NACK after the reordering wait, retries doubling, then a resync", () => {
  const gaps = new GapTracker();
  gaps.skipped(5, 7, 0);
  assert.deepEqual(gaps.due(REORDER_WAIT_MS - 1, 8), { nacks: [], abandoned: 0 });
  assert.deepEqual(gaps.due(REORDER_WAIT_MS, 8).nacks, [
    { first: 5, count: 3, resync: false, retry: false },
  ]);
  let t = REORDER_WAIT_MS;
  for (let i = 1; i < NACK_TRIES; i++) {
    t += NACK_RETRY_MS * 2 ** (i - 1);
    assert.deepEqual(gaps.due(t - 1, 8).nacks, [], `no retry before ${t}`);
    assert.deepEqual(gaps.due(t, 8).nacks, [{ first: 5, count: 3, resync: false, retry: true }]);
  }
  assert.equal(gaps.arrived(6), "recovered");
  assert.equal(gaps.missing, 2);
  t += NACK_RETRY_MS * 2 ** (NACK_TRIES - 1);
  const last = gaps.due(t, 8);
  assert.equal(last.abandoned, 2, "5 and 7 given up");
  assert.deepEqual(last.nacks, [
    { first: 5, count: 1, resync: true, retry: false },
    { first: 7, count: 1, resync: true, retry: false },
  ]);
  assert.equal(gaps.missing, 0);
  assert.equal(gaps.arrived(5), "untracked");
});

Deno.test("GapTracker: a gap falling out of the replay window is given up (a resend would be refused)", () => {
  const gaps = new GapTracker();
  gaps.skipped(2, 11, 0);
  const work = gaps.due(0, 11 + WINDOW - 5); // the floor is now 7: 2-6 are out
  assert.equal(work.abandoned, 5);
  assert.deepEqual(work.nacks, [{ first: 2, count: 5, resync: true, retry: false }]);
  assert.equal(gaps.missing, 5);
  assert.deepEqual(gaps.due(REORDER_WAIT_MS, 11 + WINDOW - 5).nacks, [
    { first: 7, count: 5, resync: false, retry: false },
  ]);
});

/**
 * The table: what reaches B when A's datagrams are delivered in this order (sequence numbers of
 * data, 1-based; missing ones are lost, repeated ones duplicated), and what B then counts.
 */
const ORDER_ROWS: {
  name: string;
  order: number[];
  expect: { late: number; replays: number; nacked: number; recovered: number };
}[] = [
  {
    name: "in order",
    order: [1, 2, 3, 4, 5],
    expect: { late: 0, replays: 0, nacked: 0, recovered: 0 },
  },
  {
    name: "reordered",
    order: [1, 3, 2, 5, 4],
    expect: { late: 2, replays: 0, nacked: 0, recovered: 0 },
  },
  {
    name: "duplicated",
    order: [1, 2, 2, 3, 4, 4, 5],
    expect: { late: 0, replays: 2, nacked: 0, recovered: 0 },
  },
  {
    name: "lost, recovered by NACK",
    order: [1, 4, 5],
    expect: { late: 0, replays: 0, nacked: 2, recovered: 2 },
  },
  {
    name: "reordered and lost",
    order: [2, 1, 5], // 1 is below the first number B saw: neither a gap nor late
    expect: { late: 0, replays: 0, nacked: 2, recovered: 2 },
  },
];
for (const row of ORDER_ROWS) {
  Deno.test(`loss recovery, ${row.name}: every payload reaches B exactly once`, () => {
    const a = side();
    const b = side();
    for (let n = 1; n <= 5; n++) a.channel.send(payload(n));
    for (const s of row.order) b.wire.handler(a.wire.sent[s - 1]);
    // Reordering gets its wait, then B NACKs what is still missing.
    clock.t += REORDER_WAIT_MS;
    b.channel.tick(clock.t);
    const nacks = b.wire.sent.filter((d) => decodeHeader(d).kind === Kind.nack);
    assert.equal(b.counters.netSecureNackedDatagrams, row.expect.nacked);
    for (const d of nacks) a.wire.handler(d);
    // A resends from its ring: B accepts them (never received, so not replays).
    const resent = a.wire.sent.slice(5);
    assert.equal(resent.length, row.expect.nacked);
    for (const d of resent) b.wire.handler(d);
    assert.deepEqual(
      b.got.map((p) => p[0]).sort(),
      [1, 2, 3, 4, 5],
      "each payload once",
    );
    assert.equal(b.counters.netSecureLate, row.expect.late);
    assert.equal(b.counters.netSecureReplays, row.expect.replays);
    assert.equal(b.counters.netSecureRecovered, row.expect.recovered);
    assert.equal(a.counters.netSecureRetransmitted, row.expect.nacked);
    assert.equal(b.channel.peers.get(a.channel.sender)?.gaps.missing, 0);
    // A resend that arrives twice is a duplicate like any other.
    for (const d of resent) b.wire.handler(d);
    assert.equal(b.counters.netSecureReplays, row.expect.replays + resent.length);
  });
}

Deno.test("loss recovery: a gap older than the ring asks A's kernel to advertise, or is unrecoverable", () => {
  for (const mode of ["reports-done", "unavailable"] as const) {
    const a = side({ ring: 3 * (100 + 56), mode });
    const b = side();
    for (let n = 1; n <= 6; n++) a.channel.send(payload(n));
    for (const s of [1, 6]) b.wire.handler(a.wire.sent[s - 1]); // 2-5 lost; the ring holds 4-6
    clock.t += REORDER_WAIT_MS;
    b.channel.tick(clock.t);
    b.flush(a, (kind) => kind !== Kind.nack); // the NACKs only: B's hello would be an announce
    assert.equal(a.counters.netSecureRetransmitted, 2, "4 and 5 were still in the ring");
    const resyncs = a.advertises.filter((w) => !/announced itself/.test(w));
    assert.equal(resyncs.length, 1, "2 and 3 were not");
    assert.match(resyncs[0], /missed 2 datagrams older than the resend buffer/);
    if (mode === "unavailable") {
      assert.equal(a.counters.netSecureUnrecoverable, 2);
      assert.equal(a.counters.netSecureResyncsRequested, 0);
      assert.match(a.log.warnings.join("\n"), /this Jool cannot advertise \(4\.1\.11\+ can\)/);
    } else {
      assert.equal(a.counters.netSecureUnrecoverable, 0);
      assert.equal(a.counters.netSecureResyncsRequested, 1);
    }
  }
});

Deno.test("loss recovery: a gap NACKed in vain is given up with a resync request", () => {
  const a = side();
  const b = side();
  for (let n = 1; n <= 3; n++) a.channel.send(payload(n));
  for (const s of [1, 3]) b.wire.handler(a.wire.sent[s - 1]);
  let t = clock.t + REORDER_WAIT_MS;
  for (let i = 0; i <= NACK_TRIES; i++) {
    b.channel.tick(t);
    t += NACK_RETRY_MS * 2 ** i;
  }
  const nacks = b.wire.sent.filter((d) => decodeHeader(d).kind === Kind.nack)
    .map((d) => decodeNack(openEnvelope(KEY, d)!));
  assert.equal(nacks.length, NACK_TRIES + 1);
  assert.deepEqual(nacks.map((n) => [n.first, n.count, n.flags]).at(-1), [2, 1, NACK_RESYNC]);
  assert.equal(b.counters.netSecureNackedDatagrams, 1, "counted once, not per retry");
  assert.equal(b.counters.netSecureAbandoned, 1);
  for (const d of b.wire.sent) a.wire.handler(d);
  assert.equal(a.counters.netSecureRetransmitted, NACK_TRIES, "each plain NACK resent it");
  assert.deepEqual(
    a.advertises.filter((w) => !/announced itself/.test(w)).map((w) =>
      w.replace(/[0-9a-f]{32}/, "B")
    ),
    ["secure sync: peer B gave up on 1 datagrams"],
    "the resync NACK asked for the table",
  );
  clock.t = t;
});

Deno.test("loss recovery: hostile NACKs are bounded (future numbers, huge ranges, floods)", () => {
  const a = side();
  for (let n = 1; n <= 400; n++) a.channel.send(payload(n));
  const sender = crypto.getRandomValues(new Uint8Array(16));
  let sequence = 0;
  const target = Uint8Array.from(a.channel.sender.match(/../g)!, (h) => parseInt(h, 16));
  const nack = (first: number, count: number, flags = 0) =>
    sealEnvelope(
      KEY,
      { kind: Kind.nack, time: now(), sender, sequence: ++sequence },
      encodeNack({
        target,
        first,
        count,
        flags,
      }),
    );
  const sent = () => a.wire.sent.length - 400;
  a.wire.handler(nack(401, 10));
  assert.equal(sent(), 0, "numbers never sent: nothing resent");
  assert.equal(a.counters.netSecureNacksRefused, 1);
  a.wire.handler(nack(390, 0xffffffff));
  assert.equal(sent(), 11, "clamped to the last one sent: 390-400");
  a.wire.handler(nack(1, 400));
  assert.equal(sent(), 11, `more than ${MAX_RESEND_PER_NACK}: a resync, not a resend`);
  assert.equal(a.advertises.length, 1);
  assert.match(a.advertises[0], /missed 400 datagrams \(more than 256\)/);
  // Someone else's NACK is not ours to answer.
  a.wire.handler(
    sealEnvelope(
      KEY,
      { kind: Kind.nack, time: now(), sender, sequence: ++sequence },
      encodeNack({ target: new Uint8Array(16), first: 1, count: 1, flags: 0 }),
    ),
  );
  assert.equal(sent(), 11);
  // A flood within one millisecond: at most NACK_RATE served.
  const before = a.counters.netSecureNacksReceived;
  for (let i = 0; i < 5 * NACK_RATE; i++) a.wire.handler(nack(400, 1));
  assert.ok(a.counters.netSecureNacksReceived - before <= NACK_RATE);
  assert.ok(sent() - 11 <= NACK_RATE, `${sent() - 11} resends for ${5 * NACK_RATE} NACKs`);
  assert.ok(a.counters.netSecureNacksRefused >= 4 * NACK_RATE - 3);
  // A broken control message that verified: dropped, counted.
  a.wire.handler(
    sealEnvelope(
      KEY,
      { kind: Kind.nack, time: now(), sender, sequence: ++sequence },
      new Uint8Array(3),
    ),
  );
  assert.equal(a.counters.netSecureBadControl, 1);
  clock.t += 1000;
});

Deno.test("announce and bulk: a starting daemon gets each peer's bulk, then is sync-ready", () => {
  const a = side();
  const b = side();
  const c = side({ mode: "unavailable" }); // Jool before 4.1.11: says so at once
  // B and C were running: their hellos make them live peers of A.
  b.channel.tick(clock.t);
  c.channel.tick(clock.t);
  a.channel.tick(clock.t); // A announces
  assert.deepEqual(kinds(a.wire), [Kind.hello]);
  assert.equal(decodeHeader(a.wire.sent[0]).kind, Kind.hello);
  assert.deepEqual(openEnvelope(KEY, a.wire.sent[0]), encodeHello(HELLO_WANT_BULK));
  for (const peer of [b, c]) {
    a.flush(peer);
    peer.flush(a);
  }
  assert.equal(b.advertises.length, 1, "B asked its kernel for the table");
  assert.match(b.advertises[0], new RegExp(`peer ${a.channel.sender} announced itself`));
  assert.equal(c.counters.netSecureBulksSent, 1, "C cannot advertise: bulk-done at once");
  // B's kernel advertises: sessions go out, then the kernel says done; B waits for quiet.
  b.channel.send(payload(1));
  b.channel.advertiseDone();
  b.channel.tick(clock.t);
  assert.equal(b.counters.netSecureBulksSent, 0, "the sessions have not stopped yet");
  clock.t += BULK_QUIET_MS;
  b.channel.tick(clock.t);
  assert.equal(b.counters.netSecureBulksSent, 1);
  b.flush(a);
  assert.equal(a.counters.netSecureBulksReceived, 2);
  // A translator whose sessions never pause still answers, BULK_MAX_DRAIN_MS after the kernel's done.
  const busy = side();
  a.flush(busy);
  busy.channel.advertiseDone();
  const doneAt = clock.t;
  for (; clock.t < doneAt + BULK_MAX_DRAIN_MS; clock.t += BULK_QUIET_MS / 2) {
    busy.channel.send(payload(9));
    busy.channel.tick(clock.t);
    assert.equal(busy.counters.netSecureBulksSent, 0, "not while it drains");
  }
  busy.channel.send(payload(9));
  busy.channel.tick(clock.t);
  assert.equal(busy.counters.netSecureBulksSent, 1);
  clock.t = doneAt;
  assert.deepEqual(a.got, [payload(1)]);
  assert.equal(a.channel.syncReady, false, "not before the announce wait");
  // A's next hello still asks (not ready yet): B says bulk-done again, without another advertise.
  clock.t += HELLO_INTERVAL_MS;
  a.channel.tick(clock.t);
  a.flush(b);
  assert.equal(b.counters.netSecureBulksSent, 2);
  assert.equal(b.advertises.length, 1);
  b.flush(a);
  assert.equal(a.counters.netSecureBulksReceived, 2, "one per peer");
  clock.t += ANNOUNCE_WAIT_MS;
  a.channel.tick(clock.t);
  assert.equal(a.channel.syncReadyReason, "bulk from every live peer");
  clock.t += HELLO_INTERVAL_MS;
  a.channel.tick(clock.t);
  assert.deepEqual(openEnvelope(KEY, a.wire.sent.at(-1)!), encodeHello(HELLO_SYNC_READY));
});

Deno.test("announce and bulk: a silent peer holds sync-ready until the timeout; alone, it is ready at once", () => {
  const a = side({ readyTimeoutMs: 10_000 });
  const b = side();
  b.channel.tick(clock.t);
  b.flush(a);
  a.channel.tick(clock.t);
  a.flush(b); // B advertises but its kernel never says done
  for (let t = 0; t < 9_000; t += HELLO_INTERVAL_MS) {
    clock.t += HELLO_INTERVAL_MS;
    b.channel.tick(clock.t);
    b.flush(a);
    a.channel.tick(clock.t);
  }
  assert.equal(a.channel.syncReady, false);
  a.flush(b);
  assert.equal(b.advertises.length, 1, "one advertise for one announcer, however often it asks");
  clock.t += HELLO_INTERVAL_MS;
  a.channel.tick(clock.t);
  assert.equal(a.channel.syncReadyReason, "timeout");

  const alone = side();
  alone.channel.tick(clock.t);
  clock.t += ANNOUNCE_WAIT_MS;
  alone.channel.tick(clock.t);
  assert.equal(alone.channel.syncReadyReason, "no peer answered");
});

Deno.test("an envelope carrying the daemon's own sender identity is dropped as a reflection", () => {
  const a = side();
  a.channel.send(payload(1));
  a.wire.handler(a.wire.sent[0]);
  assert.deepEqual(a.got, []);
  assert.equal(a.counters.netSecureReplays, 1);
  assert.equal(a.channel.peers.size, 0, "it never becomes its own peer");
  assert.match(a.log.warnings[0], /own sender identity: a reflected or replayed copy/);
});

Deno.test("the control payloads, byte for byte (docs/PROTOCOL.md, Kinds and control messages)", () => {
  const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const target = new Uint8Array(16).fill(0xaa);
  assert.equal(
    hex(encodeNack({ target, first: 5, count: 3, flags: 0 })),
    "aa".repeat(16) + "0000000000000005" + "00000003" + "00",
  );
  assert.equal(
    hex(encodeNack({ target, first: 2 ** 40 + 1, count: 1, flags: NACK_RESYNC })),
    "aa".repeat(16) + "0000010000000001" + "00000001" + "01",
  );
  assert.equal(hex(encodeHello(HELLO_WANT_BULK)), "01");
  assert.equal(hex(encodeBulkDone({ target, flags: BULK_NO_ADVERTISE })), "aa".repeat(16) + "01");
  const bad = (h: string) => Uint8Array.from(h.match(/../g)!, (x) => parseInt(x, 16));
  for (
    const [what, payload] of [
      ["a count of 0", bad("aa".repeat(16) + "0000000000000005" + "00000000" + "00")],
      ["a first sequence of 0", bad("aa".repeat(16) + "0000000000000000" + "00000001" + "00")],
      [
        "a first sequence beyond 2^53",
        bad("aa".repeat(16) + "0020000000000000" + "00000001" + "00"),
      ],
      ["28 bytes", new Uint8Array(28)],
    ] as const
  ) assert.throws(() => decodeNack(payload), RangeError, what);
});
