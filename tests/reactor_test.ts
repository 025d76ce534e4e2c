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
