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
  const done = reactor.run();
  await new Promise((resolve) => setTimeout(resolve, 20));
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
