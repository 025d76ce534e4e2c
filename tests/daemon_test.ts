import assert from "node:assert/strict";
import type {
  ErrorHandler,
  KernelChannel,
  NetworkChannel,
  PayloadHandler,
} from "../lib/channel.ts";
import { createCounters } from "../lib/counters.ts";
import { Daemon, kernelErrorKind } from "../lib/daemon.ts";
import { KernelError } from "../lib/kernel/error.ts";
import type { Logger } from "../lib/log.ts";
import { fixture } from "./_fixtures.ts";

/** Records what the daemon asks of the kernel; `batch()` plays a kernel batch. */
class RecordingKernel implements KernelChannel {
  batchHandler: PayloadHandler = () => {};
  errorHandler: ErrorHandler = () => {};
  adds: Uint8Array[] = [];
  advertises = 0;
  acks = 0;
  /** ACKs sent when the handler ran, per batch. */
  acksSeenByHandler: number[] = [];
  failingAdd = false;
  onBatch(h: PayloadHandler) {
    this.batchHandler = h;
  }
  onError(h: ErrorHandler) {
    this.errorHandler = h;
  }
  add(p: Uint8Array) {
    if (this.failingAdd) throw new Error("sendto(JOOLD_ADD) failed: ENOBUFS");
    this.adds.push(p.slice());
  }
  advertise() {
    this.advertises++;
  }
  close() {}
  /** As the real channel (lib/channel.ts): the ACK first, then the handler. */
  batch(p: Uint8Array) {
    this.acks++;
    this.acksSeenByHandler.push(this.acks);
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

Deno.test("a kernel batch goes out as one identical datagram, after its ACK", () => {
  const t = setup();
  const payload = fixture("4.1.9", "d-udp-payload-4sessions");
  t.kernel.batch(payload);
  assert.deepEqual(t.network.sent, [payload]);
  assert.deepEqual(t.kernel.acksSeenByHandler, [1]);
  // The channels count traffic; the core counts only what it drops or fails.
  assert.deepEqual(t.counters, createCounters());
});

Deno.test("a failed send is warned, and the batch was ACKed before it", () => {
  const t = setup();
  t.network.failing = true;
  t.kernel.batch(fixture("4.1.13", "d-udp-payload-1session"));
  assert.equal(t.kernel.acks, 1);
  assert.deepEqual(t.lines, [
    "warn: cannot send sessions to the sync group: sendto(sync group) failed: ENETUNREACH",
  ]);
});

Deno.test("a datagram from the group becomes JOOLD_ADD with the same bytes", () => {
  const t = setup("compact36");
  const payload = fixture("4.1.13", "d-udp-payload-3sessions");
  t.network.handler(payload);
  assert.deepEqual(t.kernel.adds, [payload]);
  assert.equal(t.counters.kernelAddFailures, 0);
});

Deno.test("a JOOLD_ADD that cannot be sent is counted and warned", () => {
  const t = setup("compact36");
  t.kernel.failingAdd = true;
  t.network.handler(fixture("4.1.13", "d-udp-payload-3sessions"));
  assert.equal(t.counters.kernelAddFailures, 1);
  assert.deepEqual(t.lines, [
    "warn: cannot hand sessions to the kernel: sendto(JOOLD_ADD) failed: ENOBUFS",
  ]);
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
  assert.equal(t.counters.netMalformedDatagrams, 4);
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
  assert.equal(t.counters.netForeignFormatDatagrams, 1);
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

class ReceiveOverrun extends Error {
  override name = "ReceiveOverrunError";
}
class MalformedMessage extends Error {
  override name = "MalformedKernelMessageError";
}

Deno.test("the rate limiter's kind of a kernel error is its class, request and errno", () => {
  const refusal = (op: string, errno: number, text: string) =>
    kernelErrorKind(new KernelError(op, errno, text, "default"));
  assert.equal(refusal("JOOLD_ADD", 22, "a"), refusal("JOOLD_ADD", 22, "b: other details"));
  assert.equal(refusal("JOOLD_ADD", 22, ""), "kernel:KernelError:JOOLD_ADD:22");
  assert.notEqual(refusal("JOOLD_ADD", 22, ""), refusal("JOOLD_ADD", 12, ""));
  assert.notEqual(refusal("JOOLD_ADD", 22, ""), refusal("JOOLD_ACK", 22, ""));
  assert.equal(kernelErrorKind(new ReceiveOverrun("x: 1")), "kernel:ReceiveOverrunError");
  assert.equal(
    kernelErrorKind(new MalformedMessage("too short: 3")),
    kernelErrorKind(new MalformedMessage("bad length: 9")),
  );
  assert.notEqual(kernelErrorKind(new ReceiveOverrun("a")), kernelErrorKind(new Error("a")));
});

Deno.test("kernel errors are reported once per kind per interval, whatever their messages", () => {
  const t = setup();
  for (let i = 0; i < 100; i++) {
    t.kernel.errorHandler(new MalformedMessage(`malformed netlink datagram: length ${i}`));
    t.kernel.errorHandler(new KernelError("JOOLD_ADD", 22, `detail ${i}`, "default"));
  }
  t.kernel.errorHandler(new ReceiveOverrun("netlink receive buffer overrun (ENOBUFS)"));
  t.kernel.errorHandler(new KernelError("JOOLD_ADVERTISE", 22, "", "default"));
  assert.equal(t.lines.length, 4, t.lines.join("\n"));
  assert.match(t.lines[0], /^warn: malformed netlink datagram: length 0$/);
  assert.match(t.lines[1], /^warn: Jool refused JOOLD_ADD \(EINVAL\): "detail 0"$/);
  t.tick(11_000);
  t.kernel.errorHandler(new MalformedMessage("malformed Jool message: too short"));
  assert.equal(
    t.lines[4],
    "warn: malformed Jool message: too short (and 99 more like it since the last report)",
  );
  // The kernel channel counts its own errors; the core counts none of them.
  assert.deepEqual(t.counters, createCounters());
});
