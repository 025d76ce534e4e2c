/**
 * The secure channel over an in-memory wire: every datagram one side sends is recorded, and the
 * test delivers what it wants to the other side (genuine, replayed, reordered, tampered, plain,
 * under other keys), as an attacker on the group could.
 */
import assert from "node:assert/strict";
import type { KernelChannel, NetworkChannel, PayloadHandler } from "../../lib/channel.ts";
import { type Counters, createCounters } from "../../lib/counters.ts";
import { Daemon } from "../../lib/daemon.ts";
import type { Logger } from "../../lib/log.ts";
import {
  ANNOUNCE_WAIT_MS,
  IDLE_TICK_MS,
  MAX_CLOCK_SKEW_MS,
  SecureChannel,
  TICK_MS,
} from "../../lib/secure/channel.ts";
import { OVERHEAD, sealEnvelope } from "../../lib/secure/envelope.ts";
import { parseKeyFile, type SyncKey } from "../../lib/secure/keyfile.ts";
import { fixture } from "../_fixtures.ts";

const K1 = "11".repeat(32);
const K2 = "22".repeat(32);
const keys = (...lines: string[]) => parseKeyFile(lines.join("\n"), "sync.key");

/** A plain channel whose sends are recorded and whose receive handler the test calls. */
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

function side(withKeys: SyncKey[], now = () => 1_000_000) {
  const wire = new Wire();
  const counters = createCounters();
  const log = logger();
  const channel = new SecureChannel({ inner: wire, keys: withKeys, counters, log, now });
  const got: Uint8Array[] = [];
  channel.onDatagram((payload) => got.push(payload.slice()));
  return { wire, counters, log, channel, got };
}

const PAYLOADS = [
  fixture("4.1.13", "d-udp-payload-1session"),
  fixture("4.1.13", "d-udp-payload-4sessions"),
  fixture("4.1.9", "d-udp-payload-4sessions"),
];

/** The netSecure* counters that are not zero. */
function dropped(c: Counters): Record<string, number> {
  return Object.fromEntries(
    Object.entries(c).filter(([k, v]) => k.startsWith("netSecure") && v !== 0),
  );
}

Deno.test("SecureChannel: genuine envelopes arrive byte-identical, in order", () => {
  const a = side(keys(K1));
  const b = side(keys(K1));
  for (const p of PAYLOADS) a.channel.send(p);
  assert.deepEqual(a.wire.sent.map((d) => d.length), PAYLOADS.map((p) => p.length + OVERHEAD));
  for (const d of a.wire.sent) b.wire.handler(d);
  assert.deepEqual(b.got, PAYLOADS);
  assert.deepEqual(dropped(b.counters), { netSecureAccepted: 3 });
  assert.deepEqual(b.log.warnings, []);
});

Deno.test("SecureChannel: replayed envelopes are dropped, reordered ones accepted once each", () => {
  const a = side(keys(K1));
  const b = side(keys(K1));
  for (let i = 0; i < 5; i++) a.channel.send(PAYLOADS[i % 3]);
  const [s1, s2, s3, s4, s5] = a.wire.sent;
  for (const d of [s3, s1, s2, s2, s1, s3, s5, s4, s4, s5]) b.wire.handler(d);
  assert.deepEqual(b.got, [PAYLOADS[2], PAYLOADS[0], PAYLOADS[1], PAYLOADS[1], PAYLOADS[0]]);
  // 3 came first (numbers below the first one are no gap), 5 skipped 4, which came late.
  assert.deepEqual(dropped(b.counters), {
    netSecureAccepted: 5,
    netSecureReplays: 5,
    netSecureGaps: 1,
    netSecureLate: 1,
  });
  assert.match(b.log.warnings[0], /sender [0-9a-f]{32}\): sequence 2 is a duplicate/);
  assert.ok(b.log.warnings[0].includes(a.channel.sender), "names the sender");
});

Deno.test("SecureChannel: forged, truncated and bit-flipped envelopes are 100% dropped", () => {
  const a = side(keys(K1));
  const b = side(keys(K1));
  a.channel.send(PAYLOADS[1]);
  const genuine = a.wire.sent[0];
  const attacks: Uint8Array[] = [];
  for (let byte = 0; byte < genuine.length; byte++) {
    const flipped = genuine.slice();
    flipped[byte] ^= 1 << (byte % 8);
    attacks.push(flipped);
  }
  for (let length = 0; length < genuine.length; length++) {
    attacks.push(genuine.slice(0, length));
  }
  // Forged: a well-formed header under the right key id, the rest made up.
  const forged = genuine.slice();
  for (let i = 40; i < forged.length; i++) forged[i] = (i * 31) & 0xff;
  attacks.push(forged);
  for (const d of attacks) b.wire.handler(d);
  assert.deepEqual(b.got, [], "nothing reached the daemon core");
  const c = b.counters;
  const total = c.netSecurePlainDatagrams + c.netSecureMalformed + c.netSecureUnknownKey +
    c.netSecureStale + c.netSecureReplays + c.netSecureAuthFailures;
  assert.equal(total, attacks.length, "each attack counted once");
  assert.equal(c.netSecureAccepted, 0);
  assert.ok(c.netSecureAuthFailures > genuine.length, "flips and truncations fail the tag");
  // Unverified sequence numbers did not move the window: the genuine one still arrives.
  b.wire.handler(genuine);
  assert.deepEqual(b.got, [PAYLOADS[1]]);
});

Deno.test("SecureChannel: warnings are rate limited per cause and never carry key material", () => {
  let t = 1_000_000;
  const b = side(keys(K1), () => t);
  const a = side(keys(K1), () => t);
  a.channel.send(PAYLOADS[0]);
  for (let i = 0; i < 100; i++) b.wire.handler(a.wire.sent[0].subarray(0, 60));
  assert.equal(b.log.warnings.length, 1);
  t += 10_000;
  b.wire.handler(a.wire.sent[0].subarray(0, 60));
  assert.equal(b.log.warnings.length, 2);
  assert.match(b.log.warnings[1], /\(and 99 more like it since the last report\)$/);
  for (const w of b.log.warnings) assert.ok(!w.includes("1111"), w);
});

Deno.test("SecureChannel: mixed configuration is loud: plain datagrams, unknown keys", () => {
  const b = side(keys(K1));
  b.wire.handler(PAYLOADS[0], "2001:db8::4");
  assert.deepEqual(dropped(b.counters), { netSecurePlainDatagrams: 1 });
  assert.match(
    b.log.warnings[0],
    /^dropped a \d+-byte datagram without the secure-sync envelope from 2001:db8::4: this daemon has a "key file"/,
  );
  const other = side(keys(K2));
  other.channel.send(PAYLOADS[0]);
  b.wire.handler(other.wire.sent[0]);
  assert.equal(b.counters.netSecureUnknownKey, 1);
  const [k1] = keys(K1);
  const [k2] = keys(K2);
  assert.equal(
    b.log.warnings[1],
    `dropped an envelope (sender ${other.channel.sender}) sealed under key id ${k2.idHex}, not in ` +
      `the key file (its key ids: ${k1.idHex}): the translators' key files differ; give every ` +
      `translator the same key file`,
  );
});

Deno.test("SecureChannel: envelopes beyond the clock skew are dropped as stale", () => {
  let t = 5_000_000;
  const a = side(keys(K1), () => t);
  const b = side(keys(K1), () => t);
  a.channel.send(PAYLOADS[0]);
  t += MAX_CLOCK_SKEW_MS + 1;
  b.wire.handler(a.wire.sent[0]);
  t -= 2 * (MAX_CLOCK_SKEW_MS + 1);
  b.wire.handler(a.wire.sent[0]);
  assert.deepEqual(dropped(b.counters), { netSecureStale: 2 });
  assert.match(b.log.warnings[0], /time is -?\d+ s from ours .*run NTP/);
  t += MAX_CLOCK_SKEW_MS + 1;
  b.wire.handler(a.wire.sent[0]);
  assert.equal(b.counters.netSecureAccepted, 1);
});

Deno.test("SecureChannel: an envelope of another version is dropped, naming the version", () => {
  const b = side(keys(K1));
  const [k1] = keys(K1);
  const envelope = sealEnvelope(
    k1,
    { time: 1_000_000, sender: new Uint8Array(16), sequence: 1 },
    PAYLOADS[0],
  );
  envelope[3] = 2;
  b.wire.handler(envelope);
  assert.deepEqual(dropped(b.counters), { netSecureMalformed: 1 });
  assert.match(b.log.warnings[0], /envelope version 2: this joold speaks version 1/);
});

Deno.test("SecureChannel: key rotation without downtime (add second, then first, then remove)", () => {
  const a = side(keys(K1));
  const b = side(keys(K1));
  const deliver = (from: typeof a, to: typeof a) => {
    from.channel.send(PAYLOADS[0]);
    to.wire.handler(from.wire.sent.at(-1)!);
  };
  const both = () => {
    deliver(a, b);
    deliver(b, a);
  };
  both();
  // Step 1: the new key second, node by node: both still seal with K1.
  a.channel.setKeys(keys(K1, K2));
  both();
  b.channel.setKeys(keys(K1, K2));
  both();
  // Step 2: the new key first, node by node: a seals with K2, b (which has it) verifies it.
  a.channel.setKeys(keys(K2, K1));
  both();
  b.channel.setKeys(keys(K2, K1));
  both();
  // Step 3: the old key removed.
  a.channel.setKeys(keys(K2));
  b.channel.setKeys(keys(K2));
  both();
  assert.equal(a.got.length, 6);
  assert.equal(b.got.length, 6);
  assert.deepEqual(dropped(a.counters), { netSecureAccepted: 6 });
  assert.deepEqual(dropped(b.counters), { netSecureAccepted: 6 });
  // Skipping step 1 on b: a seals with K2 that b does not have.
  const c = side(keys(K1));
  deliver(a, c);
  assert.deepEqual(dropped(c.counters), { netSecureUnknownKey: 1 });
});

Deno.test("a daemon without a key file drops envelopes before decoding, naming the key id", () => {
  let onDatagram: PayloadHandler = () => {};
  const adds: Uint8Array[] = [];
  const kernel: KernelChannel = {
    onBatch() {},
    onError() {},
    add: (p) => adds.push(p.slice()),
    advertise() {},
    close() {},
  };
  const network: NetworkChannel = {
    onDatagram: (h) => (onDatagram = h),
    send() {},
    close() {},
  };
  const counters = createCounters();
  const log = logger();
  new Daemon({ kernel, network, counters, log }).start();
  const [k1] = keys(K1);
  onDatagram(
    sealEnvelope(k1, { time: 1, sender: new Uint8Array(16), sequence: 1 }, PAYLOADS[0]),
    "2001:db8::9",
  );
  onDatagram(PAYLOADS[0]);
  assert.deepEqual(adds, [PAYLOADS[0]]);
  assert.equal(counters.netEnvelopesWithoutKey, 1);
  assert.equal(counters.netMalformedDatagrams, 0);
  assert.match(
    log.warnings[0],
    new RegExp(
      `secure-sync envelope \\(key id ${k1.idHex}\\) from 2001:db8::9: this daemon has no "key file"`,
    ),
  );
});

Deno.test("SecureChannel sees loss per sender: gaps and late arrivals, tracked per sender", () => {
  const a = side(keys(K1));
  const c = side(keys(K1));
  const b = side(keys(K1));
  for (let i = 0; i < 10; i++) a.channel.send(PAYLOADS[0]);
  for (let i = 0; i < 3; i++) c.channel.send(PAYLOADS[1]);
  const deliver = (from: typeof a, sequences: number[]) => {
    for (const s of sequences) b.wire.handler(from.wire.sent[s - 1]);
  };
  deliver(a, [1, 2, 4, 3, 7, 8, 10]); // 5, 6 and 9 lost; 3 late
  deliver(c, [1, 3]); // 2 lost: the other sender's own window
  assert.equal(b.counters.netSecureGaps, 5, "3, 5, 6, 9 and the other sender's 2");
  assert.equal(b.counters.netSecureLate, 1);
  // The missing ones wait in each sender's gap tracker for their NACK (tests/secure/recovery_test.ts).
  assert.equal(b.channel.peers.get(a.channel.sender)?.gaps.missing, 3, "5, 6, 9");
  assert.equal(b.channel.peers.get(c.channel.sender)?.gaps.missing, 1, "2");
  assert.deepEqual(b.log.warnings, [], "a gap is not worth a warning: it is NACKed");
});

Deno.test("SecureChannel's timer: every 25 ms while work waits, every 250 ms when idle, fast again at a gap", () => {
  let now = 1_000_000;
  const wire = new Wire();
  const channel = new SecureChannel({
    inner: wire,
    keys: keys(K1),
    counters: createCounters(),
    log: logger(),
    now: () => now,
    timers: true,
  });
  const peer = side(keys(K1), () => now);
  try {
    channel.onDatagram(() => {});
    assert.equal(channel.timerPeriod, TICK_MS, "not sync-ready yet");
    channel.tick(now);
    now += ANNOUNCE_WAIT_MS;
    channel.tick(now);
    assert.equal(channel.syncReadyReason, "no peer answered");
    assert.equal(channel.timerPeriod, IDLE_TICK_MS, "nothing waits");
    // A peer's datagrams 1 and 3: 2 is missing, its NACK is due soon.
    for (let i = 0; i < 3; i++) peer.channel.send(PAYLOADS[0]);
    wire.handler(peer.wire.sent[0], "2001:db8::5");
    assert.equal(channel.timerPeriod, IDLE_TICK_MS);
    wire.handler(peer.wire.sent[2], "2001:db8::5");
    assert.equal(channel.timerPeriod, TICK_MS, "a gap");
    wire.handler(peer.wire.sent[1], "2001:db8::5"); // late: reordered, not lost
    channel.tick(now);
    assert.equal(channel.timerPeriod, IDLE_TICK_MS, "the gap closed");
  } finally {
    channel.close();
    peer.channel.close();
  }
  assert.equal(channel.timerPeriod, 0);
});
