import assert from "node:assert/strict";
import { close, libc, POLLIN, recv, sendto } from "../ffi/libc.ts";
import { ERRNO } from "../ffi/errno.ts";
import { decodePayload, encodeCompact36 } from "../lib/jool/session.ts";
import { COMMANDS_4_1 } from "../lib/jool/version.ts";
import { concat } from "../lib/netlink/attribute.ts";
import { Reactor, ROUND_BUDGET } from "../lib/reactor.ts";
import { spawnDaemon } from "./_cli.ts";
import { FakeKernel } from "./_fake_kernel.ts";
import { fixture } from "./_fixtures.ts";
import { Netns, netnsUnavailable, veth } from "./_netns.ts";
import { loopbackSocket, waitFor } from "./_udp.ts";

Deno.test("Reactor dispatches datagrams from several sockets and drains each until EAGAIN", async () => {
  const a = loopbackSocket();
  const b = loopbackSocket();
  const sender = loopbackSocket();
  const reactor = new Reactor();
  const got: string[] = [];
  const buffer = new Uint8Array(2048);
  const drain = (name: string, fd: number) => () => {
    for (;;) {
      const n = recv(fd, buffer);
      if (n === -ERRNO.EAGAIN) return;
      assert.ok(n >= 0, `recv failed: ${n}`);
      got.push(`${name}:${new TextDecoder().decode(buffer.subarray(0, n))}`);
    }
  };
  reactor.add(a.fd, drain("a", a.fd));
  reactor.add(b.fd, drain("b", b.fd));
  const done = reactor.run();
  for (let i = 0; i < 50; i++) {
    sendto(sender.fd, new TextEncoder().encode(`x${i}`), a.address);
    sendto(sender.fd, new TextEncoder().encode(`y${i}`), b.address);
  }
  await waitFor(() => got.length === 100, "100 datagrams");
  assert.deepEqual(got.filter((g) => g.startsWith("a:")).map((g) => g.slice(2)), [
    ...Array.from({ length: 50 }, (_, i) => `x${i}`),
  ]);
  assert.ok(reactor.wakeups < 100, `drained in batches, ${reactor.wakeups} wakeups`);
  reactor.stop();
  await done;
  assert.equal(reactor.running, false);
  for (const s of [a, b, sender]) close(s.fd);
});

Deno.test("Reactor.stop ends an idle run() promptly and leaves no pending call behind", async () => {
  const reactor = new Reactor();
  const done = reactor.run(); // runs synchronously up to its first await: poll() is now pending
  assert.equal(reactor.running, true);
  assert.equal(reactor.wakeups, 0);
  const started = performance.now();
  reactor.stop();
  await done;
  assert.ok(performance.now() - started < 1000);
});

Deno.test("Reactor reports a throwing handler to onError and keeps looping", async () => {
  const a = loopbackSocket();
  const sender = loopbackSocket();
  const reactor = new Reactor();
  const errors: unknown[] = [];
  let reads = 0;
  reactor.onError((e) => errors.push(e));
  reactor.add(a.fd, () => {
    while (recv(a.fd, new Uint8Array(64)) >= 0) reads++;
    if (reads === 1) throw new Error("boom");
  });
  const done = reactor.run();
  sendto(sender.fd, Uint8Array.of(1), a.address);
  await waitFor(() => errors.length === 1, "the error");
  sendto(sender.fd, Uint8Array.of(2), a.address);
  await waitFor(() => reads === 2, "the second datagram");
  reactor.stop();
  await done;
  assert.equal((errors[0] as Error).message, "boom");
  close(a.fd);
  close(sender.fd);
});

Deno.test("Reactor.stop before run() closes the eventfd and run() returns at once", async () => {
  const reactor = new Reactor();
  reactor.stop();
  await reactor.run();
});

Deno.test("Reactor.remove stops dispatching to an fd while the loop runs; its datagrams stay queued", async () => {
  const a = loopbackSocket();
  const b = loopbackSocket();
  const sender = loopbackSocket();
  const reactor = new Reactor();
  let aCalls = 0;
  let bReads = 0;
  reactor.add(a.fd, () => {
    aCalls++;
    while (recv(a.fd, new Uint8Array(64)) >= 0) { /* drain */ }
  });
  reactor.add(b.fd, () => {
    while (recv(b.fd, new Uint8Array(64)) >= 0) bReads++;
  });
  const done = reactor.run();
  try {
    reactor.remove(a.fd);
    sendto(sender.fd, Uint8Array.of(1), a.address);
    sendto(sender.fd, Uint8Array.of(2), b.address);
    await waitFor(() => bReads === 1, "b's datagram");
    // b's datagram was sent after a's and has been handled: a's handler would have run by now.
    assert.equal(aCalls, 0);
    assert.equal(recv(a.fd, new Uint8Array(64)), 1, "a's datagram is still queued");
  } finally {
    reactor.stop();
    await done;
    for (const s of [a, b, sender]) close(s.fd);
  }
});

Deno.test("Reactor reports a watched fd closed behind its back (POLLNVAL) and stops watching it", async () => {
  const a = loopbackSocket();
  const b = loopbackSocket();
  const reactor = new Reactor();
  const errors: unknown[] = [];
  reactor.onError((e) => errors.push(e));
  reactor.add(a.fd, () => {});
  const done = reactor.run();
  try {
    const fd = a.fd;
    close(fd); // without remove(): a caller bug the reactor must survive
    reactor.add(b.fd, () => {}); // wakes the loop, whose next poll sees the closed fd
    await waitFor(() => errors.length === 1, "the POLLNVAL report");
    assert.equal(
      (errors[0] as Error).message,
      `fd ${fd} was closed while watched; no longer watching it`,
    );
    const wakeups = reactor.wakeups;
    reactor.remove(b.fd); // another pass: the closed fd must not be reported again
    await waitFor(() => reactor.wakeups > wakeups, "another loop pass");
    assert.equal(errors.length, 1);
  } finally {
    reactor.stop();
    await done;
    close(b.fd);
  }
});

/**
 * Sends `count` datagrams to 127.0.0.1:`port` from ANOTHER process (an in-process sender could not
 * run while the reactor waits synchronously), ten at a time with a millisecond between.
 */
function burstFromChild(port: number, count: number): Deno.ChildProcess {
  const libc = new URL("../ffi/libc.ts", import.meta.url).href;
  const sockaddr = new URL("../ffi/sockaddr.ts", import.meta.url).href;
  const code = `
    import { AF_INET, SOCK_DGRAM, sendto, socket } from "${libc}";
    import { sockaddrIn } from "${sockaddr}";
    const fd = socket(AF_INET, SOCK_DGRAM, 0);
    const to = sockaddrIn(Uint8Array.of(127, 0, 0, 1), ${port});
    for (let i = 0; i < ${count}; i++) {
      sendto(fd, new TextEncoder().encode("m" + i), to);
      if (i % 10 === 9) await new Promise((r) => setTimeout(r, 1));
    }`;
  return new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-prompt", code],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
}

for (const lingerMs of [0, 5, 100]) {
  Deno.test(`Reactor with lingerMs ${lingerMs}: every datagram of a steady flow, and the event loop keeps running`, async () => {
    const a = loopbackSocket();
    const reactor = new Reactor({ lingerMs });
    const buffer = new Uint8Array(64);
    // At least 400 ms of flow (ten datagrams per ms): several of the 100 ms reactor's windows.
    const count = lingerMs >= 100 ? 4000 : 600;
    let got = 0;
    reactor.add(a.fd, () => {
      while (recv(a.fd, buffer) >= 0) got++;
    });
    // A timer that must keep firing while datagrams flow: a lingering reactor yields to the
    // event loop every lingerMs.
    let ticks = 0;
    let ticksDuringFlow = 0;
    const timer = setInterval(() => {
      ticks++;
      if (got > 0 && got < count) ticksDuringFlow++;
    }, 5);
    const done = reactor.run();
    const child = burstFromChild(a.port, count);
    try {
      assert.equal((await child.status).code, 0);
      await waitFor(() => got === count, `${count} datagrams (got ${got})`);
      assert.ok(ticksDuringFlow >= 2, `the timer fired ${ticksDuringFlow} times during the flow`);
      if (lingerMs === 0) assert.equal(reactor.syncWakeups, 0);
      else {
        // Datagrams 1 ms apart: most arrive while the reactor lingers in a synchronous wait.
        assert.ok(reactor.syncWakeups > 0, `${reactor.syncWakeups} synchronous wake-ups`);
      }
      // Quiet again: the loop is back in the off-thread wait, so stop() ends it promptly.
      const quietSince = ticks;
      await waitFor(() => ticks > quietSince + 2, "timer ticks after the flow");
    } finally {
      clearInterval(timer);
      reactor.stop();
      await done;
      close(a.fd);
    }
  });
}

Deno.test("Reactor with lingerMs: stop() from a handler ends the run during a flow", async () => {
  const a = loopbackSocket();
  const reactor = new Reactor({ lingerMs: 5 });
  let got = 0;
  reactor.add(a.fd, () => {
    while (recv(a.fd, new Uint8Array(64)) >= 0) {
      if (++got === 50) reactor.stop();
    }
  });
  const done = reactor.run();
  const child = burstFromChild(a.port, 400);
  await done; // resolves although datagrams keep coming
  assert.equal(reactor.running, false);
  assert.ok(got >= 50, `stopped after ${got}`);
  await child.status;
  close(a.fd);
});

// --- Fairness under a flood: the real daemon process against the fake kernel --------------------

const floodUnavailable = netnsUnavailable();

/**
 * Sends `payload` `rate` times a second for `durationMs` from ANOTHER process inside namespace
 * `ns`, to `to` (IPv4 `address`:`port`), out of interface address `via` when given (multicast).
 */
function flood(
  ns: Netns,
  to: { address: number[]; port: number; via?: number[] },
  payload: Uint8Array,
  rate: number,
  durationMs: number,
): Deno.ChildProcess {
  const libc = new URL("../ffi/libc.ts", import.meta.url).href;
  const sockaddr = new URL("../ffi/sockaddr.ts", import.meta.url).href;
  // sendmmsg(2) on a connected socket, 1024 datagrams a call, paced to `rate` a second: a flood
  // from a fraction of a CPU, as from a machine on the link, which leaves the daemon its CPU on
  // this small host.
  const code = `
    import { AF_INET, IP_MULTICAST_IF, IPPROTO_IP, libcPath, SOCK_DGRAM, setsockoptBytes, socket } from "${libc}";
    import { sockaddrIn } from "${sockaddr}";
    const lib = Deno.dlopen(libcPath(), {
      connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
      sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
    }).symbols;
    const fd = socket(AF_INET, SOCK_DGRAM, 0);
    const via = ${JSON.stringify(to.via ?? null)};
    if (via) setsockoptBytes(fd, IPPROTO_IP, IP_MULTICAST_IF, Uint8Array.from(via), "IP_MULTICAST_IF");
    const to = sockaddrIn(Uint8Array.from(${JSON.stringify(to.address)}), ${to.port});
    if (lib.connect(fd, to, to.length) !== 0) throw new Error("connect");
    const payload = Uint8Array.from(${JSON.stringify([...payload])});
    const iov = new BigUint64Array([BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(payload))), BigInt(payload.length)]);
    const iovAt = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(iov)));
    const N = 1024;
    const msgs = new BigUint64Array(8 * N); // struct mmsghdr: 64 bytes
    for (let i = 0; i < N; i++) { msgs[8 * i + 2] = iovAt; msgs[8 * i + 3] = 1n; }
    const sleeper = new Int32Array(new SharedArrayBuffer(4));
    const start = performance.now();
    const end = start + ${durationMs};
    for (let sent = 0; performance.now() < end; sent += N) {
      lib.sendmmsg(fd, msgs, N, 0x40);
      const ahead = start + (sent * 1000) / ${rate} - performance.now();
      if (ahead >= 1) Atomics.wait(sleeper, 0, 0, ahead);
    }`;
  return new Deno.Command("ip", {
    args: ["netns", "exec", ns.name, Deno.execPath(), "eval", "--no-prompt", code],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
}

/** Waits (synchronously: this process has nothing else to do) until `fd` is readable. */
function waitReadable(fd: number, timeoutMs: number): boolean {
  const pollfd = new Uint8Array(8);
  const view = new DataView(pollfd.buffer);
  view.setInt32(0, fd, true);
  view.setInt16(4, POLLIN, true);
  return Number(libc().poll(pollfd, 1n, timeoutMs)) > 0;
}

/** The p-th quantile of `values` (sorted in place). */
function quantile(values: number[], p: number): number {
  values.sort((x, y) => x - y);
  return values[Math.min(values.length - 1, Math.ceil(p * values.length) - 1)];
}

Deno.test({
  name:
    `the daemon under a flood of its stats socket, then of its sync socket: the kernel->ACK p99 stays low, SIGUSR1 is handled within 250 ms, SIGTERM within a second${
      floodUnavailable ? ` (skipped: ${floodUnavailable})` : ""
    }`,
  ignore: floodUnavailable !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const a = new Netns("flood-a");
    const b = new Netns("flood-b");
    const kernel = a.enter(() => new FakeKernel("4.1.13"));
    let server = kernel.start();
    let child: Deno.ChildProcess | null = null;
    const floods: Deno.ChildProcess[] = [];
    try {
      veth(a, "sync0", ["198.51.100.1/24"], b, "sync0", ["198.51.100.2/24"]);
      const daemon = spawnDaemon([
        "--net.mcast.addr=233.252.0.64",
        "--net.mcast.port=6464",
        "--net.dev.in=198.51.100.1",
        "--net.dev.out=198.51.100.1",
        "--stats.addr=127.0.0.1",
        "--stats.port=6401",
      ], { kernel, netns: a.name, stdout: "null" });
      child = daemon.child;
      const out = daemon.out;
      await waitFor(() => out.stderr.includes("joold: info: ready"), "ready", 20_000);
      server.stop();
      server = { stop() {} };
      const pid = kernel.received.find((r) => r.jool !== undefined)!.message.pid;
      const batch = fixture("4.1.13", "d-udp-payload-4sessions");
      const { JOOLD_ACK, JOOLD_ADVERTISE } = COMMANDS_4_1;
      // Forged sessions (TCP state 7): the daemon decodes and checks each datagram, and the
      // meaning checks drop it, so the fake kernel is not the bottleneck. Small datagrams, so the
      // host's own receive work (softirq, which runs in the daemon's system calls too) stays
      // small next to the daemon's.
      const [legal] = decodePayload(fixture("4.1.13", "d-udp-payload-1session")).sessions;
      const forged = concat(
        ...Array.from(
          { length: 2 },
          (_, i) => encodeCompact36({ ...legal, proto: 0, state: 7, src6Port: i }),
        ),
      );

      /**
       * For `ms`: a batch, then wait (synchronously: this process does nothing else) for its ACK;
       * after `signalAt` ms, SIGUSR1 the daemon and time the JOOLD_ADVERTISE it sends.
       */
      const sleeper = new Int32Array(new SharedArrayBuffer(4));
      const measure = (ms: number, signalAt: number) => {
        const latencies: number[] = [];
        let signalled = 0;
        let advertised = 0;
        const start = performance.now();
        let seen = kernel.received.length;
        const scan = (cmd: number) => {
          let found = false;
          for (; seen < kernel.received.length; seen++) {
            const got = kernel.received[seen].jool?.cmd;
            if (got === JOOLD_ADVERTISE && signalled > 0 && advertised === 0) {
              advertised = performance.now();
            }
            if (got === cmd) found = true;
          }
          return found;
        };
        while (performance.now() - start < ms) {
          if (signalled === 0 && performance.now() - start >= signalAt) {
            child!.kill("SIGUSR1");
            signalled = performance.now();
          }
          const t0 = performance.now();
          kernel.sendBatch(pid, batch);
          for (;;) {
            if (!waitReadable(kernel.fd, 5000)) throw new Error("no ACK within 5 s");
            kernel.serve();
            if (scan(JOOLD_ACK)) break;
          }
          latencies.push(performance.now() - t0);
          Atomics.wait(sleeper, 0, 0, 1); // 1 ms between batches, asleep (the CPUs are few)
        }
        if (signalled === 0) {
          // A slow host: the loop ended before `signalAt` came round. Signal now all the same.
          child!.kill("SIGUSR1");
          signalled = performance.now();
        }
        while (advertised === 0 && performance.now() - signalled < 5000) {
          if (waitReadable(kernel.fd, 100)) kernel.serve();
          scan(-1);
        }
        return {
          batches: latencies.length,
          p99: quantile(latencies, 0.99),
          signalMs: advertised === 0 ? Infinity : advertised - signalled,
        };
      };

      // A quiet baseline, then each socket flooded in turn.
      // Bounds with room for this small, shared host: without the fair reactor, the sync socket's
      // flood holds the ACK for the whole flood (seconds) and SIGUSR1 until it ends.
      const P99_MS = 150;
      // Under a flood the window shrinks to FLOOD_LINGER_MS (50 ms); quiet, it is the linger (250).
      const SIGNAL_MS: Record<string, number> = { quiet: 400, stats: 250, network: 250 };
      const once = (ms: number, signalAt: number) => [measure(ms, signalAt)];
      const startFlood = (...args: Parameters<typeof flood>) => floods.push(flood(...args));
      measure(300, 100); // warm-up: the daemon's first batches are compiled as they come
      await new Promise((r) => setTimeout(r, 1200)); // past the advertise interval
      const results: Record<string, ReturnType<typeof measure>[]> = { quiet: [measure(300, 100)] };
      // A host so busy that even the quiet daemon is slow (other work on these 2 CPUs) widens the
      // bounds by as much; the failures this test is about stay far outside them (the ACK held
      // for the whole flood, seconds; SIGUSR1 not handled until the flood ends).
      const slack = 10 * results.quiet[0].p99;
      startFlood(a, { address: [127, 0, 0, 1], port: 6401 }, new Uint8Array(0), 300_000, 4000);
      await new Promise((r) => setTimeout(r, 700)); // the flooder's start-up
      results.stats = once(1200, 600);
      floods[0].kill("SIGKILL");
      await floods[0].status;
      startFlood(
        b,
        { address: [233, 252, 0, 64], port: 6464, via: [198, 51, 100, 2] },
        forged,
        100_000,
        4000,
      );
      await new Promise((r) => setTimeout(r, 700));
      results.network = once(1200, 600);
      const t0 = performance.now();
      child.kill("SIGTERM");
      const status = await child.status;
      const stopMs = performance.now() - t0;
      const summary = Object.entries(results).flatMap(([k, rs]) =>
        rs.map((r) =>
          `${k}: ${r.batches} batches, ACK p99 ${r.p99.toFixed(2)} ms, SIGUSR1 ${
            r.signalMs.toFixed(0)
          } ms`
        )
      ).join("; ") + `; SIGTERM ${stopMs.toFixed(0)} ms`;
      console.log(summary);
      assert.equal(status.code, 0, out.stderr);
      for (const [name, rs] of Object.entries(results)) {
        const r = rs[rs.length - 1];
        assert.ok(
          r.p99 < P99_MS + slack,
          `${name}: kernel->ACK p99 ${r.p99.toFixed(2)} ms (${summary})`,
        );
        assert.ok(
          r.signalMs < SIGNAL_MS[name] + slack,
          `${name}: SIGUSR1 took ${r.signalMs} ms (${summary})`,
        );
      }
      assert.ok(stopMs < 1000, `SIGTERM took ${stopMs.toFixed(0)} ms (${summary})`);
    } finally {
      for (const f of floods) {
        try {
          f.kill("SIGKILL");
        } catch { /* gone */ }
        await f.status;
      }
      if (child) {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
        await child.status;
      }
      server.stop();
      kernel.close();
      a.dispose();
      b.dispose();
    }
  },
});

Deno.test("Reactor gives a socket at most ROUND_BUDGET datagrams a round and serves priority sockets first in every round", async () => {
  const kernel = loopbackSocket();
  const busy = [loopbackSocket(), loopbackSocket()];
  const sender = loopbackSocket();
  const reactor = new Reactor();
  const calls: string[] = [];
  const buffer = new Uint8Array(64);
  let left = 2 * 150; // within the default receive buffer of a loopback socket
  reactor.add(kernel.fd, (budget) => {
    assert.equal(budget, Infinity);
    let n = 0;
    while (recv(kernel.fd, buffer) >= 0) n++;
    calls.push(`kernel:${n}`);
  }, { priority: true });
  busy.forEach((s, i) =>
    reactor.add(s.fd, (budget) => {
      let n = 0;
      while (n < budget && recv(s.fd, buffer) >= 0) n++;
      left -= n;
      calls.push(`busy${i}:${n}`);
      if (i === 1) sendto(sender.fd, Uint8Array.of(1), kernel.address); // the kernel talks
      return n === budget;
    })
  );
  for (let k = 0; k < 150; k++) {
    for (const s of busy) sendto(sender.fd, Uint8Array.of(k), s.address);
  }
  const done = reactor.run();
  try {
    await waitFor(() => left === 0, "the busy sockets drained");
    for (const call of calls) {
      const n = Number(call.split(":")[1]);
      assert.ok(n <= ROUND_BUDGET, `${call}: more than a round's budget`);
    }
    // Every round that followed a kernel message started with the kernel.
    for (let i = 0; i + 1 < calls.length; i++) {
      if (calls[i].startsWith("busy1")) {
        assert.match(calls[i + 1], /^kernel:1$/, `after ${calls[i]}: ${calls.join(" ")}`);
      }
    }
    assert.ok(reactor.budgetStops >= 4, `${reactor.budgetStops} budget stops`);
  } finally {
    reactor.stop();
    await done;
    for (const s of [kernel, ...busy, sender]) close(s.fd);
  }
});

Deno.test("Reactor.whenWritable calls its handler once when the fd is writable; null cancels", async () => {
  const a = loopbackSocket();
  const b = loopbackSocket();
  const reactor = new Reactor();
  let reads = 0;
  reactor.add(a.fd, () => {
    while (recv(a.fd, new Uint8Array(64)) >= 0) reads++;
  });
  reactor.add(b.fd, () => {});
  const calls: string[] = [];
  reactor.whenWritable(b.fd, () => calls.push("cancelled"));
  reactor.whenWritable(b.fd, null);
  const done = reactor.run();
  reactor.whenWritable(a.fd, () => calls.push("a")); // while running: the pending poll is woken
  await waitFor(() => calls.length === 1, "the writable handler");
  // One-shot: an always-writable socket does not call it again, and reads still dispatch.
  sendto(b.fd, new TextEncoder().encode("x"), a.address);
  await waitFor(() => reads === 1, "a datagram read after the write wait");
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(calls, ["a"]);
  // remove() forgets a pending write wait with the fd.
  reactor.whenWritable(b.fd, () => calls.push("removed"));
  reactor.remove(b.fd);
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(calls, ["a"]);
  reactor.stop();
  await done;
  for (const s of [a, b]) close(s.fd);
});
