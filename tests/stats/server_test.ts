import assert from "node:assert/strict";
import {
  AF_INET,
  AF_INET6,
  bind,
  close,
  recv,
  sendto,
  SOCK_DGRAM,
  socket,
} from "../../ffi/libc.ts";
import { sockaddrIn, sockaddrIn6 } from "../../ffi/sockaddr.ts";
import { Reactor } from "../../lib/reactor.ts";
import { type Counters, createCounters } from "../../lib/counters.ts";
import { formatStats } from "../../lib/stats/reply.ts";
import { StatsServer } from "../../lib/stats/server.ts";
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
