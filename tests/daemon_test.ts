import assert from "node:assert/strict";
import type {
  ErrorHandler,
  KernelChannel,
  NetworkChannel,
  PayloadHandler,
} from "../lib/channel.ts";
import { ConfigError } from "../lib/config/error.ts";
import type { Config } from "../lib/config/types.ts";
import { createCounters } from "../lib/counters.ts";
import { Daemon, kernelErrorKind } from "../lib/daemon.ts";
import { COMMANDS_4_1 } from "../lib/jool/version.ts";
import { NETLINK_USERSOCK } from "../lib/netlink/conn.ts";
import { JoolNotLoadedError, KernelError } from "../lib/kernel/error.ts";
import { createLogger, type Logger } from "../lib/log.ts";
import { ADVERTISE_INTERVAL_MS, startDaemon, stopSummary } from "../lib/start.ts";
import { FakeKernel } from "./_fake_kernel.ts";
import { fixture } from "./_fixtures.ts";
import { ERRNO, SystemError } from "../ffi/errno.ts";
import { RETRY_QUEUE_LIMITS } from "../lib/daemon.ts";
import { waitFor } from "./_udp.ts";

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
  errorHandler: ErrorHandler = () => {};
  sent: Uint8Array[] = [];
  failing = false;
  /** While set, every send fails with this errno, as the socket does (a SystemError). */
  full: number | null = null;
  writable: (() => void) | null = null;
  onDatagram(h: PayloadHandler) {
    this.handler = h;
  }
  onError(h: ErrorHandler) {
    this.errorHandler = h;
  }
  send(p: Uint8Array) {
    if (this.failing) throw new Error("sendto(sync group) failed: ENETUNREACH");
    if (this.full !== null) throw new SystemError("sendto(sync group)", this.full);
    this.sent.push(p.slice());
  }
  whenWritable(h: () => void) {
    this.writable = h;
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

Deno.test("a send that finds no buffer space (EAGAIN) is retried in order once writable", () => {
  const t = setup();
  const one = fixture("4.1.13", "d-udp-payload-1session");
  const four = fixture("4.1.13", "d-udp-payload-4sessions");
  t.network.full = ERRNO.EAGAIN;
  t.kernel.batch(one);
  t.kernel.batch(four);
  assert.equal(t.kernel.acks, 2);
  assert.deepEqual(t.network.sent, []);
  assert.equal(t.counters.netSendRetries, 2);
  assert.equal(t.daemon.queuedDatagrams, 2);
  assert.ok(t.network.writable, "the daemon waits for the socket to be writable");
  t.network.full = null;
  const writable = t.network.writable!;
  t.network.writable = null;
  writable();
  t.kernel.batch(one); // after the queue: order kept
  assert.deepEqual(t.network.sent, [one, four, one]);
  assert.equal(t.daemon.queuedDatagrams, 0);
  assert.equal(t.counters.netSendLostDatagrams, 0);
  assert.deepEqual(t.lines, [], "a retry that succeeds is not worth a warning");
});

Deno.test("a full retry queue counts datagrams and sessions lost, warned once per interval", () => {
  const t = setup();
  const four = fixture("4.1.13", "d-udp-payload-4sessions");
  t.network.full = ERRNO.ENOBUFS;
  for (let i = 0; i < RETRY_QUEUE_LIMITS.datagrams + 3; i++) t.kernel.batch(four);
  assert.equal(t.counters.netSendRetries, RETRY_QUEUE_LIMITS.datagrams);
  assert.equal(t.counters.netSendLostDatagrams, 3);
  assert.equal(t.counters.netSendLostSessions, 12);
  assert.equal(t.lines.length, 1);
  assert.match(
    t.lines[0],
    /^warn: the sync group's socket has had no buffer space .* \(4 sessions lost;/,
  );
  // Stop: the queue gets one last try, what still fails is lost, and said so.
  t.network.full = null;
  t.network.sent.length = 0;
  t.daemon.stop();
  assert.equal(t.network.sent.length, RETRY_QUEUE_LIMITS.datagrams);
  assert.equal(t.counters.netSendLostDatagrams, 3);
});

Deno.test("datagrams still queued at stop are counted lost", () => {
  const t = setup();
  t.network.full = ERRNO.EAGAIN;
  t.kernel.batch(fixture("4.1.13", "d-udp-payload-4sessions"));
  t.daemon.stop();
  assert.equal(t.counters.netSendLostDatagrams, 1);
  assert.equal(t.counters.netSendLostSessions, 4);
  assert.deepEqual(t.lines, [
    "warn: stopping with 1 datagrams (4 sessions) not yet sent to the sync group: they are lost",
  ]);
});

Deno.test("a send that fails otherwise is lost at once, with its sessions", () => {
  const t = setup();
  t.network.failing = true;
  t.kernel.batch(fixture("4.1.13", "d-udp-payload-4sessions"));
  assert.equal(t.counters.netSendRetries, 0);
  assert.equal(t.counters.netSendLostDatagrams, 1);
  assert.equal(t.counters.netSendLostSessions, 4);
});

Deno.test("the network channel's errors reach the rate-limited warnings", () => {
  const t = setup();
  for (let i = 0; i < 3; i++) {
    t.network.errorHandler(
      new Error("dropped a 70000-byte datagram from the sync group: too large"),
    );
  }
  t.network.errorHandler(new SystemError("recv(sync group)", ERRNO.ENOBUFS));
  assert.equal(t.lines.length, 2);
  assert.equal(
    t.lines[0],
    "warn: sync group: dropped a 70000-byte datagram from the sync group: too large",
  );
  assert.match(t.lines[1], /^warn: sync group: recv\(sync group\)/);
  t.tick(10_001);
  t.network.errorHandler(new Error("dropped a 70000-byte datagram from the sync group: too large"));
  assert.match(t.lines[2], /\(and 2 more like it since the last report\)$/);
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

// startDaemon, the one wiring (cli.ts and tests/_daemon_node.ts use it), in this process against
// the fake kernel (NETLINK_USERSOCK needs root).
const isRoot = Deno.uid() === 0;
const needsRoot = isRoot ? "" : " (skipped: needs root for NETLINK_USERSOCK)";

function printConfig(instance = "default"): Config {
  return {
    mod: { instance },
    net: null,
    stats: null,
    logLevel: "info",
    enableSync: false,
    advertiseOnStart: false,
  };
}

function fakeKernelParts(kernel: FakeKernel) {
  return { protocol: NETLINK_USERSOCK, peerPortId: kernel.portId };
}

Deno.test({
  name: `startDaemon: print mode end to end, one counters object, stop summary, done${needsRoot}`,
  ignore: !isRoot,
  async fn() {
    const kernel = new FakeKernel("4.1.13");
    const server = kernel.start();
    const lines: string[] = [];
    const printed: string[] = [];
    try {
      const daemon = await startDaemon(printConfig(), {
        lingerMs: 0,
        kernel: fakeKernelParts(kernel),
        log: createLogger("info", (l) => lines.push(l)),
        print: (l) => printed.push(l),
      });
      assert.equal(daemon.startup.familyId, kernel.familyId);
      assert.equal(daemon.startup.instanceAlive, true);
      assert.equal(daemon.startup.syncEnabled, true);
      assert.equal(lines.at(-1), "joold: info: ready\n");
      kernel.sendBatch(daemon.portId, fixture("4.1.13", "d-udp-payload-4sessions"));
      await waitFor(() => printed.length === 4, "four CSV lines");
      await waitFor(() => kernel.requests(COMMANDS_4_1.JOOLD_ACK).length === 1, "the ACK");
      assert.equal(daemon.counters.kernelBatchesReceived, 1);
      assert.equal(daemon.counters.kernelAcksSent, 1);
      assert.equal(daemon.ackLatency.summary().count, 1);
      let resolved = false;
      daemon.done.then(() => (resolved = true));
      await daemon.stop();
      await daemon.done;
      assert.ok(resolved);
      assert.equal(lines.at(-3), "joold: info: stopping\n");
      assert.equal(lines.at(-2), `joold: info: ${stopSummary(daemon.counters)}\n`);
      assert.match(
        lines.at(-2)!,
        /counters: 1 batches from the kernel \(0 of other instances ignored, 1 ACKs\), 0 datagrams sent/,
      );
      assert.match(lines.at(-1)!, /^joold: info: kernel->ACK latency: 1 batches, /);
      await daemon.stop(); // idempotent: nothing more is logged
      assert.match(lines.at(-1)!, /kernel->ACK latency/);
    } finally {
      server.stop();
      kernel.close();
    }
  },
});

Deno.test({
  name: `startDaemon: a start-up failure closes everything and rejects with the cause${needsRoot}`,
  ignore: !isRoot,
  async fn() {
    const kernel = new FakeKernel("4.1.13");
    kernel.state.familyMissing = true;
    const server = kernel.start();
    try {
      await assert.rejects(
        startDaemon(printConfig(), { lingerMs: 0, kernel: fakeKernelParts(kernel) }),
        JoolNotLoadedError,
      );
      // The sanitizers fail this test if the daemon's reactor or a socket op were left behind.
    } finally {
      server.stop();
      kernel.close();
    }
  },
});

Deno.test({
  name:
    `startDaemon: reload applies the log level, reports failures and restart-only changes${needsRoot}`,
  ignore: !isRoot,
  async fn() {
    const kernel = new FakeKernel("4.1.13");
    const server = kernel.start();
    const lines: string[] = [];
    const log = createLogger("info", (l) => lines.push(l));
    try {
      const daemon = await startDaemon(printConfig(), {
        lingerMs: 0,
        kernel: fakeKernelParts(kernel),
        log,
      });
      lines.length = 0;
      const resolved = (config: Config) => () => ({
        config,
        warnings: ["x.json: a warning"],
        notes: [],
        origins: {},
      });
      daemon.reload("SIGHUP", resolved({ ...printConfig(), logLevel: "debug" }));
      assert.equal(log.level, "debug");
      assert.deepEqual(lines, [
        "joold: warn: SIGHUP: x.json: a warning\n",
        "joold: info: SIGHUP: reloaded: log level debug (was info)\n",
      ]);
      lines.length = 0;
      daemon.reload("SIGHUP", () => {
        throw new ConfigError("x.json", undefined, "not JSON");
      });
      assert.equal(log.level, "debug");
      assert.equal(lines.length, 1);
      assert.match(
        lines[0],
        /^joold: error: SIGHUP: cannot reload, the running configuration stays: /,
      );
      lines.length = 0;
      daemon.reload("SIGHUP", () => ({
        config: { ...printConfig("blue"), stats: { address: "::", port: 6401 } },
        warnings: [],
        notes: [],
        origins: {},
      }));
      assert.equal(log.level, "info");
      assert.deepEqual(lines, [
        "joold: info: SIGHUP: reloaded: log level info (was debug)\n",
        "joold: warn: SIGHUP: the instance, the stats server changed in the configuration: restart joold to apply (a reload applies the log level only)\n",
      ]);
      await daemon.stop();
    } finally {
      server.stop();
      kernel.close();
    }
  },
});

Deno.test({
  name: `startDaemon: advertise requests within the interval become one more request${needsRoot}`,
  ignore: !isRoot,
  async fn() {
    const kernel = new FakeKernel("4.1.13");
    const server = kernel.start();
    const lines: string[] = [];
    try {
      const daemon = await startDaemon(printConfig(), {
        lingerMs: 0,
        kernel: fakeKernelParts(kernel),
        log: createLogger("info", (l) => lines.push(l)),
      });
      const advertises = () => kernel.requests(COMMANDS_4_1.JOOLD_ADVERTISE).length;
      const t0 = performance.now();
      for (let i = 0; i < 5; i++) daemon.advertise("test");
      await waitFor(() => advertises() === 1, "the first advertise");
      await waitFor(() => advertises() === 2, "the coalesced advertise", 3000);
      assert.ok(performance.now() - t0 >= ADVERTISE_INTERVAL_MS - 20, "not before the interval");
      const said = lines.filter((l) => l.includes("test: asked the kernel"));
      assert.deepEqual(said, [
        "joold: info: test: asked the kernel to advertise its session table\n",
        "joold: info: test: asked the kernel to advertise its session table (4 requests within 1000 ms of the previous one, coalesced into this one)\n",
      ]);
      daemon.advertise("test"); // held again: stop() drops it, and its timer
      await daemon.stop();
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(advertises(), 2);
    } finally {
      server.stop();
      kernel.close();
    }
  },
});
