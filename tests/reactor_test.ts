import assert from "node:assert/strict";
import { close, recv, sendto } from "../ffi/libc.ts";
import { ERRNO } from "../ffi/errno.ts";
import { Reactor } from "../lib/reactor.ts";
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
