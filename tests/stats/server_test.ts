import assert from "node:assert/strict";
import {
  AF_INET,
  AF_INET6,
  bind,
  close,
  recv,
  sendto,
  SOCK_DGRAM,
  SOCK_RAW,
  socket,
} from "../../ffi/libc.ts";
import { sockaddrIn, sockaddrIn6 } from "../../ffi/sockaddr.ts";
import { Reactor } from "../../lib/reactor.ts";
import { type Counters, createCounters } from "../../lib/counters.ts";
import { formatStats } from "../../lib/stats/reply.ts";
import { MAX_REQUEST, REPLY_LIMIT, replyPolicy, StatsServer } from "../../lib/stats/server.ts";
import { waitFor } from "../_udp.ts";

async function query(family: 4 | 6, port: number): Promise<string> {
  const fd = socket(family === 4 ? AF_INET : AF_INET6, SOCK_DGRAM, 0);
  try {
    const loopback = family === 4
      ? sockaddrIn(Uint8Array.of(127, 0, 0, 1), port)
      : sockaddrIn6(Uint8Array.of(...new Array(15).fill(0), 1), port);
    bind(
      fd,
      family === 4
        ? sockaddrIn(Uint8Array.of(127, 0, 0, 1), 0)
        : sockaddrIn6(new Uint8Array(16), 0),
    );
    sendto(fd, new TextEncoder().encode("any"), loopback);
    const buffer = new Uint8Array(1024);
    let n = -1;
    await waitFor(() => (n = recv(fd, buffer)) >= 0, `the stats reply over IPv${family}`);
    return new TextDecoder().decode(buffer.subarray(0, n));
  } finally {
    close(fd);
  }
}

function openOnFreePort(
  reactor: Reactor,
  address: string,
  counters: Counters,
) {
  for (let i = 0; i < 20; i++) {
    const port = 20000 + Math.floor(Math.random() * 30000);
    try {
      return { server: StatsServer.open(reactor, { address, port }, counters), port };
    } catch (error) {
      if (!/EADDRINUSE/.test((error as Error).message)) throw error;
    }
  }
  throw new Error("no free port");
}

Deno.test("the stats server on :: answers over IPv6 and IPv4 with the live counters", async () => {
  const counters = createCounters();
  const reactor = new Reactor();
  const running = reactor.run();
  const { server, port } = openOnFreePort(reactor, "::", counters);
  try {
    counters.netDatagramsReceived = 3;
    counters.netBytesReceived = 120;
    assert.equal(await query(6, port), formatStats(counters));
    counters.netDatagramsReceived = 4;
    const v4 = await query(4, port);
    assert.equal(v4, formatStats(counters));
    assert.match(v4, /NET_RCVD_PKTS,4\n/);
    assert.equal(server.queries, 2);
  } finally {
    server.close();
    reactor.stop();
    await running;
  }
});

Deno.test("the stats server bound to 127.0.0.1 answers IPv4 queries", async () => {
  const reactor = new Reactor();
  const running = reactor.run();
  const { server, port } = openOnFreePort(reactor, "127.0.0.1", createCounters());
  try {
    assert.equal(await query(4, port), formatStats(createCounters()));
  } finally {
    server.close();
    reactor.stop();
    await running;
  }
});

Deno.test("a stats port already in use is a clear error naming the option", () => {
  const reactor = new Reactor();
  const { server, port } = openOnFreePort(reactor, "127.0.0.1", createCounters());
  try {
    assert.throws(
      () => StatsServer.open(reactor, { address: "::", port }, createCounters()),
      /stats\.addr\/stats\.port: cannot bind :: port \d+: EADDRINUSE \(the port is in use: pick another --stats\.port\)/,
    );
  } finally {
    server.close();
    reactor.stop();
  }
});

Deno.test("replyPolicy answers requests only: not replies, long datagrams, privileged ports, the stats port", () => {
  const text = (s: string) => new TextEncoder().encode(s);
  const reply = text(formatStats(createCounters()));
  const rows: [Uint8Array, number, number, string | null][] = [
    [new Uint8Array(0), 0, 40000, null],
    [text("stats\n"), 6, 40000, null],
    [new Uint8Array(MAX_REQUEST), MAX_REQUEST, 40000, null],
    [reply, reply.length, 40000, "notRequest"],
    [text("KERNEL_SENT_PKTS,"), 17, 40000, "notRequest"],
    [new Uint8Array(MAX_REQUEST + 1), MAX_REQUEST + 1, 40000, "notRequest"],
    [new Uint8Array(2048), 9000, 40000, "notRequest"], // cut by MSG_TRUNC: the real length counts
    [new Uint8Array(0), 0, 1023, "privilegedPort"],
    [new Uint8Array(0), 0, 53, "privilegedPort"],
    [new Uint8Array(0), 0, 0, "privilegedPort"],
    [new Uint8Array(0), 0, 1024, null],
    [new Uint8Array(0), 0, 6401, "statsPort"],
  ];
  for (const [datagram, length, port, expected] of rows) {
    assert.equal(
      replyPolicy(datagram, length, port, 6401),
      expected,
      `${length} bytes from ${port}`,
    );
  }
});

const root = Deno.uid() === 0;

/** Sends a UDP datagram to 127.0.0.1:`to` claiming to come from 127.0.0.1:`from` (a raw socket). */
function spoof(from: number, to: number, payload = new Uint8Array(0)): void {
  const fd = socket(AF_INET, SOCK_RAW, 17 /* IPPROTO_UDP: the kernel writes the IP header */);
  try {
    const udp = new Uint8Array(8 + payload.length);
    const view = new DataView(udp.buffer);
    view.setUint16(0, from, false);
    view.setUint16(2, to, false);
    view.setUint16(4, udp.length, false);
    udp.set(payload, 8); // checksum 0: none, which IPv4 allows
    assert.equal(sendto(fd, udp, sockaddrIn(Uint8Array.of(127, 0, 0, 1), 0)), udp.length);
  } finally {
    close(fd);
  }
}

Deno.test({
  name:
    `two stats servers do not ping-pong: a spoofed request from one to the other gets one reply, not answered${
      root ? "" : " (skipped: needs root for a raw socket)"
    }`,
  ignore: !root,
  async fn() {
    const reactor = new Reactor();
    const running = reactor.run();
    const j = openOnFreePort(reactor, "127.0.0.1", createCounters());
    const k = openOnFreePort(reactor, "127.0.0.1", createCounters());
    try {
      spoof(k.port, j.port); // as if K's stats socket had asked J
      await waitFor(() => k.server.drops.notRequest === 1, "K to get J's reply");
      await new Promise((r) => setTimeout(r, 200)); // room for a ping-pong to show
      assert.equal(j.server.queries, 1);
      assert.equal(k.server.queries, 0);
      assert.equal(j.server.drops.notRequest, 0);
    } finally {
      j.server.close();
      k.server.close();
      reactor.stop();
      await running;
    }
  },
});

/** A socket bound to `address`:`port`, or null when that port cannot be had. */
function boundSocket(address: Uint8Array, port: number): number | null {
  const fd = socket(AF_INET, SOCK_DGRAM, 0);
  try {
    bind(fd, sockaddrIn(address, port));
    return fd;
  } catch {
    close(fd);
    return null;
  }
}

Deno.test({
  name: `the stats server does not answer its own port (another joold's) nor privileged ports${
    root ? "" : " (skipped: needs root to bind a privileged port)"
  }`,
  ignore: !root,
  async fn() {
    const reactor = new Reactor();
    const running = reactor.run();
    const { server, port } = openOnFreePort(reactor, "127.0.0.1", createCounters());
    const senders: number[] = [];
    try {
      const peer = boundSocket(Uint8Array.of(127, 0, 0, 2), port); // a stats socket's port
      assert.ok(peer !== null);
      senders.push(peer);
      let privileged: number | null = null;
      for (let p = 1000; privileged === null && p > 900; p--) {
        privileged = boundSocket(Uint8Array.of(127, 0, 0, 1), p);
      }
      assert.ok(privileged !== null);
      senders.push(privileged);
      const to = sockaddrIn(Uint8Array.of(127, 0, 0, 1), port);
      for (const fd of senders) sendto(fd, new Uint8Array(0), to);
      await waitFor(
        () => server.drops.statsPort === 1 && server.drops.privilegedPort === 1,
        "both drops",
      );
      // A plain request still gets its answer, and the refused ones got none.
      assert.equal(await query(4, port), formatStats(createCounters()));
      const buffer = new Uint8Array(1024);
      for (const fd of senders) assert.equal(recv(fd, buffer), -11 /* EAGAIN: no reply */);
      assert.equal(server.queries, 1);
    } finally {
      for (const fd of senders) close(fd);
      server.close();
      reactor.stop();
      await running;
    }
  },
});

Deno.test("the stats server's replies are bounded under a flood (100/s, burst 20)", async () => {
  const reactor = new Reactor();
  const running = reactor.run();
  const { server, port } = openOnFreePort(reactor, "127.0.0.1", createCounters());
  const client = socket(AF_INET, SOCK_DGRAM, 0);
  try {
    bind(client, sockaddrIn(Uint8Array.of(127, 0, 0, 1), 0));
    const to = sockaddrIn(Uint8Array.of(127, 0, 0, 1), port);
    const started = performance.now();
    let sent = 0;
    for (let burst = 0; burst < 10; burst++) {
      for (let i = 0; i < 100; i++) if (sendto(client, new Uint8Array(0), to) === 0) sent++;
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 100));
    const elapsed = (performance.now() - started) / 1000;
    let replies = 0;
    const buffer = new Uint8Array(1024);
    while (recv(client, buffer) > 0) replies++;
    assert.equal(replies, server.queries);
    assert.ok(replies >= REPLY_LIMIT.burst, `${replies} replies`);
    assert.ok(
      replies <= REPLY_LIMIT.burst + REPLY_LIMIT.ratePerSecond * elapsed + 1,
      `${replies} replies to ${sent} requests in ${elapsed.toFixed(2)} s`,
    );
    assert.ok(server.drops.rateLimited > 0);
  } finally {
    close(client);
    server.close();
    reactor.stop();
    await running;
  }
});

Deno.test("the stats server warns when it listens on a wildcard address, not on loopback", () => {
  const reactor = new Reactor();
  const wildcard = openOnFreePort(reactor, "::", createCounters());
  const loopback = openOnFreePort(reactor, "127.0.0.1", createCounters());
  try {
    assert.deepEqual(wildcard.server.warnings, [
      `the stats socket listens on every address (:: port ${wildcard.port}): anyone who can reach this host can read the sync counters; set --stats.addr=::1 (or 127.0.0.1) to keep them local`,
    ]);
    assert.deepEqual(loopback.server.warnings, []);
  } finally {
    wildcard.server.close();
    loopback.server.close();
    reactor.stop();
  }
});
