import assert from "node:assert/strict";
import type {
  ErrorHandler,
  KernelChannel,
  NetworkChannel,
  PayloadHandler,
} from "../lib/channel.ts";
import { Daemon } from "../lib/daemon.ts";
import type { Logger } from "../lib/log.ts";
import { createCounters } from "../lib/stats/counters.ts";
import { fixture } from "./_fixtures.ts";

/** Records what the daemon asks of the kernel; `batch()` plays a kernel batch. */
class RecordingKernel implements KernelChannel {
  batchHandler: PayloadHandler = () => {};
  errorHandler: ErrorHandler = () => {};
  adds: Uint8Array[] = [];
  advertises = 0;
  acks = 0;
  onBatch(h: PayloadHandler) {
    this.batchHandler = h;
  }
  onError(h: ErrorHandler) {
    this.errorHandler = h;
  }
  add(p: Uint8Array) {
    this.adds.push(p.slice());
  }
  advertise() {
    this.advertises++;
  }
  close() {}
  /** As the real channel: ACK, then the handler. */
  batch(p: Uint8Array) {
    this.acks++;
    this.batchHandler(p);
  }
}

class RecordingNetwork implements NetworkChannel {
  handler: PayloadHandler = () => {};
  sent: Uint8Array[] = [];
  failing = false;
  onDatagram(h: PayloadHandler) {
    this.handler = h;
  }
  send(p: Uint8Array) {
    if (this.failing) throw new Error("sendto(sync group) failed: ENETUNREACH");
    this.sent.push(p.slice());
  }
  close() {}
}

function logger() {
  const lines: string[] = [];
  const log: Logger = {
    error: (m) => lines.push(`error: ${m}`),
    warn: (m) => lines.push(`warn: ${m}`),
    info: (m) => lines.push(`info: ${m}`),
    debug: () => {},
  };
  return { log, lines };
}

function setup(localFormat?: "nested" | "compact36") {
  const kernel = new RecordingKernel();
  const network = new RecordingNetwork();
  const counters = createCounters();
  const { log, lines } = logger();
  let now = 0;
  const daemon = new Daemon({ kernel, network, counters, log, localFormat, now: () => now });
  daemon.start();
  return { kernel, network, counters, lines, daemon, tick: (ms: number) => (now += ms) };
}

Deno.test("a kernel batch goes out as one identical datagram and is counted", () => {
  const t = setup();
  const payload = fixture("4.1.9", "d-udp-payload-4sessions");
  t.kernel.batch(payload);
  assert.deepEqual(t.network.sent, [payload]);
  assert.equal(t.counters.netSentPkts, 1n);
  assert.equal(t.counters.netSentBytes, BigInt(payload.length));
  assert.equal(t.kernel.acks, 1);
});

Deno.test("a failed send is counted and warned, and the batch is still ACKed", () => {
  const t = setup();
  t.network.failing = true;
  t.kernel.batch(fixture("4.1.13", "d-udp-payload-1session"));
  assert.equal(t.kernel.acks, 1);
  assert.equal(t.counters.netSendErrors, 1n);
  assert.equal(t.counters.netSentPkts, 0n);
  assert.deepEqual(t.lines, [
    "warn: cannot send sessions to the sync group: sendto(sync group) failed: ENETUNREACH",
  ]);
});

Deno.test("a datagram from the group becomes JOOLD_ADD with the same bytes (documented counters)", () => {
  const t = setup("compact36");
  const payload = fixture("4.1.13", "d-udp-payload-3sessions");
  t.network.handler(payload);
  assert.deepEqual(t.kernel.adds, [payload]);
  assert.equal(t.counters.netRcvdPkts, 1n);
  assert.equal(t.counters.kernelSentPkts, 1n);
  assert.equal(t.counters.kernelSentBytes, BigInt(payload.length));
});

Deno.test("malformed datagrams never reach the kernel; warnings are rate limited", () => {
  const t = setup();
  const bad = [
    Uint8Array.from({ length: 100 }, (_, i) => (i * 37) & 0xff),
    fixture("4.1.9", "d-udp-payload-1session").subarray(0, 77),
    new Uint8Array(),
    new Uint8Array(65000),
  ];
  for (const b of bad) t.network.handler(b);
  assert.equal(t.kernel.adds.length, 0);
  assert.equal(t.counters.malformedDatagrams, 4n);
  assert.equal(t.counters.netRcvdPkts, 4n);
  assert.equal(t.lines.length, 1, t.lines.join("\n"));
  assert.match(
    t.lines[0],
    /^warn: dropped a 100-byte datagram from the sync group that is not a session list/,
  );
  t.tick(11_000);
  t.network.handler(bad[0]);
  assert.equal(t.lines.length, 2);
  assert.match(t.lines[1], /\(and 3 more like it since the last report\)$/);
  // Still working: a good datagram goes through.
  t.network.handler(fixture("4.1.9", "d-udp-payload-1session"));
  assert.equal(t.kernel.adds.length, 1);
});

Deno.test("a datagram of another Jool session format is dropped with an explanation", () => {
  const t = setup("nested");
  t.network.handler(fixture("4.1.13", "d-udp-payload-1session"));
  assert.equal(t.kernel.adds.length, 0);
  assert.equal(t.counters.foreignFormatDatagrams, 1n);
  assert.match(t.lines[0], /compact36 sessions: the local Jool uses nested sessions/);
});

Deno.test("print mode prints one CSV line per session and sends nothing", () => {
  const kernel = new RecordingKernel();
  const lines: string[] = [];
  new Daemon({
    kernel,
    network: null,
    counters: createCounters(),
    log: logger().log,
    print: (l) => lines.push(l),
  }).start();
  kernel.batch(fixture("4.1.9", "d-udp-payload-4sessions"));
  assert.equal(lines.length, 4);
  for (const l of lines) {
    assert.match(l, /^UDP,2001:db8::8,\d+,192\.0\.2\.1,\d+,192\.0\.2\.8,\d+,\d:\d\d:\d\d/);
  }
  assert.equal(kernel.acks, 1);
});

Deno.test("kernel errors are counted and reported once per kind per interval", () => {
  const t = setup();
  for (let i = 0; i < 5; i++) t.kernel.errorHandler(new Error('no Jool instance named "default"'));
  assert.equal(t.counters.kernelErrors, 5n);
  assert.equal(t.lines.length, 1);
});

Deno.test("kernel errors that differ only in details are one kind for the rate limiter", () => {
  const t = setup();
  for (let i = 0; i < 100; i++) {
    t.kernel.errorHandler(new Error(`malformed netlink datagram: length ${i} at offset ${i * 4}`));
  }
  t.kernel.errorHandler(new Error("malformed Jool message: too short"));
  assert.equal(t.counters.kernelErrors, 101n);
  assert.equal(t.lines.length, 2);
});
