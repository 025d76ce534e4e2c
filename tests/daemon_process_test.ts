/**
 * The real `cli.ts` process, run with the production permission flags, against an in-process fake
 * Jool kernel (NETLINK_USERSOCK, reached through the JOOLD_TEST_NETLINK_PEER test seam).
 */
import { ADVERTISE_INTERVAL_MS } from "../lib/start.ts";
import assert from "node:assert/strict";
import { COMMANDS_4_1 } from "../lib/jool/version.ts";
import { FakeKernel } from "./_fake_kernel.ts";
import { daemonCommand, entry, printDaemon, reap, spawnDaemon, tempFiles } from "./_cli.ts";
import { fixture } from "./_fixtures.ts";
import { waitFor } from "./_udp.ts";

const isRoot = Deno.uid() === 0;
const skip = isRoot ? "" : " (skipped: needs root for NETLINK_USERSOCK)";

/** Reads the daemon's stderr until its "ready" line; returns the reader, still open. */
async function readUntilReady(
  child: Deno.ChildProcess,
): Promise<ReadableStreamDefaultReader<string>> {
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  for (let text = ""; !text.includes("joold: info: ready");) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the daemon stopped before it was ready:\n${text}`);
    text += value;
  }
  return reader;
}

Deno.test({
  name:
    `the daemon process: print mode, SIGUSR1 advertises, SIGTERM exits 0 within a second${skip}`,
  ignore: !isRoot,
  async fn() {
    const kernel = new FakeKernel("4.1.13");
    const server = kernel.start();
    const dir = tempFiles({ "mod.json": `{ "instance": "default" }` });
    const { child, out, pumps } = spawnDaemon([`--mod=${dir}/mod.json`], {
      kernel,
      read: [`${dir}/mod.json`],
    });
    try {
      await waitFor(() => out.stderr.includes("joold: info: ready"), "ready", 20_000);
      assert.match(out.stderr, /sync network disabled \(printing the kernel's sessions\)/);
      const pid = kernel.received[0].message.pid; // the daemon's netlink port id
      kernel.sendBatch(pid, fixture("4.1.13", "d-udp-payload-4sessions"));
      await waitFor(() => out.stdout.split("\n").length === 5, "four CSV lines");
      for (const line of out.stdout.trim().split("\n")) {
        assert.match(
          line,
          /^(UDP|TCP|ICMP),2001:db8::8,\d+,192\.0\.2\.1,\d+,192\.0\.2\.8,\d+,\d+:\d\d:\d\d/,
        );
      }
      await waitFor(() => kernel.requests(COMMANDS_4_1.JOOLD_ACK).length === 1, "the ACK");
      child.kill("SIGUSR1");
      await waitFor(
        () => kernel.requests(COMMANDS_4_1.JOOLD_ADVERTISE).length === 1,
        "JOOLD_ADVERTISE",
      );
      const t0 = performance.now();
      child.kill("SIGTERM");
      const status = await child.status;
      const elapsed = performance.now() - t0;
      await pumps;
      assert.equal(status.code, 0, out.stderr);
      assert.ok(elapsed < 1000, `stopped in ${elapsed.toFixed(0)} ms`);
      assert.match(out.stderr, /SIGUSR1: asked the kernel to advertise its session table/);
      // The stop report: the counters, then the kernel->ACK latency of the one batch.
      assert.match(
        out.stderr,
        /joold: info: stopping\njoold: info: counters: 1 batches from the kernel \(0 of other instances ignored, 1 ACKs\), 0 datagrams sent \(0 failed, 0 retried, 0 lost with 0 sessions\), 0 received .*\njoold: info: kernel->ACK latency: 1 batches, p50 <= \d+ us, p99 <= \d+ us, max \d+ us, mean \d+ us\n$/,
      );
    } finally {
      await reap(child, server, kernel);
    }
  },
});

Deno.test({
  name:
    `the daemon process: ss-enabled off gives a clear warning; --enable-sync turns it on${skip}`,
  ignore: !isRoot,
  async fn() {
    for (const flag of [[], ["--enable-sync"]]) {
      const kernel = new FakeKernel("4.1.13");
      kernel.state.ssEnabled = false;
      const server = kernel.start();
      const dir = tempFiles({ "mod.json": `{ "instance": "default" }` });
      const { child, out, pumps } = spawnDaemon([`--mod=${dir}/mod.json`, ...flag], {
        kernel,
        read: [`${dir}/mod.json`],
      });
      try {
        await waitFor(() => out.stderr.includes("joold: info: ready"), "ready", 20_000);
        if (flag.length === 0) {
          assert.match(
            out.stderr,
            /joold: warn: session synchronization is disabled on instance "default": run jool global update ss-enabled true, or start joold with --enable-sync/,
          );
          assert.equal(kernel.state.ssEnabled, false);
        } else {
          assert.equal(kernel.requests(COMMANDS_4_1.GLOBAL_UPDATE).length, 1);
          assert.equal(kernel.state.ssEnabled, true);
          assert.match(out.stderr, /ss-enabled is on for instance "default"/);
        }
        child.kill("SIGTERM");
        assert.equal((await child.status).code, 0);
        await pumps;
      } finally {
        server.stop();
        kernel.close();
      }
    }
  },
});

Deno.test({
  name: `the daemon process: a missing instance is a warning and joold waits for it${skip}`,
  ignore: !isRoot,
  async fn() {
    const kernel = new FakeKernel("4.1.13");
    kernel.state.instanceAlive = false;
    const server = kernel.start();
    const dir = tempFiles({ "mod.json": `{ "instance": "blue" }` });
    const { child, out, pumps } = spawnDaemon([`--mod=${dir}/mod.json`], {
      kernel,
      read: [`${dir}/mod.json`],
    });
    try {
      await waitFor(() => out.stderr.includes("joold: info: ready"), "ready", 20_000);
      assert.match(
        out.stderr,
        /joold: warn: no Jool instance named "blue" in this network namespace yet: waiting for it \(jool instance add\)/,
      );
      child.kill("SIGINT");
      assert.equal((await child.status).code, 0);
      await pumps;
    } finally {
      server.stop();
      kernel.close();
    }
  },
});

/** SIGTERM, then the exit code, the time it took, and the whole stderr. */
async function terminate(run: Awaited<ReturnType<typeof printDaemon>>) {
  const t0 = performance.now();
  run.child.kill("SIGTERM");
  const { code } = await run.child.status;
  const ms = performance.now() - t0;
  await run.pumps;
  return { code, ms, stderr: run.out.stderr };
}

const STOP_LINE =
  /joold: info: stopping\njoold: info: counters: \d+ batches from the kernel .* receive overruns, \d+ malformed kernel messages\n/;

Deno.test({
  name: `the daemon process: SIGHUP reloads and logs it, never stops the daemon${skip}`,
  ignore: !isRoot,
  async fn() {
    const run = await printDaemon();
    try {
      run.child.kill("SIGHUP");
      await waitFor(() => run.out.stderr.includes("reloaded"), "the reload line");
      assert.match(
        run.out.stderr,
        /\njoold: info: SIGHUP: reloaded: log level info \(unchanged\)\n/,
      );
      // Files that no longer parse: an error line, the running configuration stays.
      Deno.writeTextFileSync(`${run.dir}/mod.json`, `{ "instance": `);
      run.child.kill("SIGHUP");
      await waitFor(() => run.out.stderr.includes("cannot reload"), "the failed reload");
      assert.match(
        run.out.stderr,
        /\njoold: error: SIGHUP: cannot reload, the running configuration stays: .*mod\.json.*\n/,
      );
      // A setting that is a socket: reloaded is the log level, the rest needs a restart.
      Deno.writeTextFileSync(`${run.dir}/mod.json`, `{ "instance": "blue" }`);
      run.child.kill("SIGHUP");
      await waitFor(() => run.out.stderr.includes("restart joold"), "the restart warning");
      assert.match(
        run.out.stderr,
        /\njoold: warn: SIGHUP: the instance changed in the configuration: restart joold to apply/,
      );
      // Still serving: SIGUSR1 reaches the kernel.
      run.child.kill("SIGUSR1");
      await waitFor(
        () => run.kernel.requests(COMMANDS_4_1.JOOLD_ADVERTISE).length === 1,
        "JOOLD_ADVERTISE after the reloads",
      );
      const { code, stderr } = await terminate(run);
      assert.equal(code, 0, stderr);
      assert.match(stderr, STOP_LINE);
    } finally {
      await run.end();
    }
  },
});

Deno.test({
  name:
    `the daemon process: 10 SIGUSR1 within a second are coalesced into at most 2 advertises${skip}`,
  ignore: !isRoot,
  async fn() {
    const run = await printDaemon();
    try {
      const first = performance.now();
      for (let i = 0; i < 10; i++) {
        run.child.kill("SIGUSR1");
        // Apart, so that most are delivered on their own (the daemon's linger after the kernel's
        // reply to an advertise delays its event loop: signals within 250 ms become one).
        await new Promise((r) => setTimeout(r, 100));
      }
      // A loaded host spreads the ten signals: each started interval allows one more request.
      const spread = performance.now() - first;
      const allowed = 1 + Math.ceil(spread / ADVERTISE_INTERVAL_MS);
      await new Promise((r) => setTimeout(r, 1200)); // past the interval: the held request is out
      const advertises = run.kernel.requests(COMMANDS_4_1.JOOLD_ADVERTISE).length;
      assert.ok(
        advertises >= 1 && advertises <= allowed,
        `${advertises} JOOLD_ADVERTISE requests for 10 SIGUSR1 over ${spread.toFixed(0)} ms`,
      );
      assert.match(
        run.out.stderr,
        /joold: info: SIGUSR1: asked the kernel to advertise its session table\n/,
      );
      if (advertises >= 2) {
        assert.match(
          run.out.stderr,
          /SIGUSR1: asked the kernel to advertise its session table \(\d+ requests within 1000 ms of the previous one, coalesced into this one\)\n/,
        );
      }
      // After the interval, a new request goes out at once.
      run.child.kill("SIGUSR1");
      await waitFor(
        () => run.kernel.requests(COMMANDS_4_1.JOOLD_ADVERTISE).length === advertises + 1,
        "the next advertise",
      );
      const { code, stderr } = await terminate(run);
      assert.equal(code, 0, stderr);
    } finally {
      await run.end();
    }
  },
});

Deno.test({
  name: `the daemon process: SIGTERM under load exits 0 within a second, with the stop line${skip}`,
  ignore: !isRoot,
  async fn() {
    const run = await printDaemon();
    const pid = run.kernel.received[0].message.pid;
    const batch = fixture("4.1.13", "d-udp-payload-1session");
    let loading = true;
    const load = (async () => {
      while (loading) {
        for (let i = 0; i < 50; i++) {
          try {
            run.kernel.sendBatch(pid, batch);
          } catch {
            // the daemon's receive buffer is full: that is load
          }
        }
        await new Promise((r) => setTimeout(r, 1));
      }
    })();
    try {
      await waitFor(() => run.out.stdout.split("\n").length > 2000, "the daemon under load");
      const { code, ms, stderr } = await terminate(run);
      loading = false;
      assert.equal(code, 0, stderr);
      assert.ok(ms < 1000, `stopped in ${ms.toFixed(0)} ms under load`);
      assert.match(stderr, STOP_LINE);
    } finally {
      loading = false;
      await load;
      await run.end();
    }
  },
});

Deno.test({
  name: `the daemon process: a closed stderr (EPIPE) loses log lines but never the daemon${skip}`,
  ignore: !isRoot,
  async fn() {
    const kernel = new FakeKernel("4.1.13");
    const server = kernel.start();
    const dir = tempFiles({ "mod.json": `{ "instance": "default" }` });
    const child = daemonCommand([`--mod=${dir}/mod.json`], { kernel, read: [dir], stdout: "null" })
      .spawn();
    try {
      const reader = await readUntilReady(child);
      await reader.cancel(); // the read end closes: every log line from now on meets EPIPE
      const advertises = () => kernel.requests(COMMANDS_4_1.JOOLD_ADVERTISE).length;
      child.kill("SIGUSR1"); // sends, then logs (EPIPE)
      await waitFor(() => advertises() === 1, "the first advertise");
      await new Promise((r) => setTimeout(r, 1100));
      child.kill("SIGUSR1");
      await waitFor(() => advertises() === 2, "an advertise after the failed log write");
      child.kill("SIGTERM");
      assert.equal((await child.status).code, 0);
    } finally {
      await reap(child, server, kernel);
    }
  },
});

Deno.test({
  name:
    `the daemon process: after main() returns, a write to a closed stderr is EPIPE, not death${skip}`,
  ignore: !isRoot,
  async fn() {
    // Deno ignores SIGPIPE until a listener for it comes and goes: then it is SIG_DFL again, and
    // the next write to a closed pipe kills the process (status 141). A line written after the
    // daemon's own (the runtime's, a late log) must find SIGPIPE still ignored.
    const kernel = new FakeKernel("4.1.13");
    const server = kernel.start();
    const dir = tempFiles({
      "mod.json": `{ "instance": "default" }`,
      "after.ts": `import { main } from ${JSON.stringify(entry("cli.ts"))};
const code = await main(Deno.args);
for (let i = 0; i < 3; i++) {
  try {
    Deno.stderr.writeSync(new TextEncoder().encode("a line after the daemon's\\n"));
  } catch {
    // EPIPE: the reader is gone
  }
}
Deno.exit(code);
`,
    });
    const child = daemonCommand([`--mod=${dir}/mod.json`], {
      kernel,
      read: [dir],
      stdout: "null",
      script: `${dir}/after.ts`,
    }).spawn();
    try {
      const reader = await readUntilReady(child);
      await reader.cancel();
      child.kill("SIGTERM");
      const { code, signal } = await child.status;
      assert.deepEqual({ code, signal }, { code: 0, signal: null });
    } finally {
      await reap(child, server, kernel);
    }
  },
});

Deno.test({
  name:
    `the daemon process: SIGHUP and SIGUSR1 during start-up act once it is ready, never kill${skip}`,
  ignore: !isRoot,
  async fn() {
    const kernel = new FakeKernel("4.1.13");
    const dir = tempFiles({ "mod.json": `{ "instance": "default" }` });
    const { child, out, pumps } = spawnDaemon([`--mod=${dir}/mod.json`], {
      kernel,
      read: [`${dir}/mod.json`],
    });
    let server = { stop() {} };
    try {
      // The kernel does not answer yet: the daemon waits for its family.
      await waitFor(() => out.stderr.includes("starting"), "the start-up line", 20_000);
      child.kill("SIGHUP");
      child.kill("SIGUSR1");
      await new Promise((r) => setTimeout(r, 200));
      server = kernel.start();
      await waitFor(() => out.stderr.includes("joold: info: ready"), "ready", 20_000);
      await waitFor(
        () => kernel.requests(COMMANDS_4_1.JOOLD_ADVERTISE).length === 1,
        "the early SIGUSR1's advertise",
      );
      await waitFor(() => out.stderr.includes("SIGHUP: reloaded"), "the early SIGHUP's reload");
      child.kill("SIGTERM");
      assert.equal((await child.status).code, 0, out.stderr);
      await pumps;
    } finally {
      await reap(child, server, kernel);
    }
  },
});

import { MulticastChannel } from "../lib/net/multicast.ts";
import { AF_INET, close, recv, sendto, SOCK_DGRAM, socket } from "../ffi/libc.ts";
import { sockaddrIn } from "../ffi/sockaddr.ts";
import { Reactor } from "../lib/reactor.ts";
import { Netns, netnsUnavailable, veth } from "./_netns.ts";

const noNetns = netnsUnavailable();

Deno.test({
  name: `the daemon process with a sync group and stats, production permissions only${
    noNetns ? ` (skipped: ${noNetns})` : ""
  }`,
  ignore: noNetns !== null,
  async fn() {
    const a = new Netns("a");
    const b = new Netns("b");
    const reactor = new Reactor();
    const running = reactor.run();
    const kernel = a.enter(() => new FakeKernel("4.1.9"));
    const server = kernel.start();
    const dir = tempFiles({
      "netsocket.json": JSON.stringify({
        "multicast address": "ff08::db8:64:64",
        "multicast port": "6464",
        "in interface": "sync0",
        "out interface": "sync0",
        reuseaddr: 1,
        ttl: 3,
      }),
      "modsocket.json": `{ "instance": "default" }`,
    });
    let child: Deno.ChildProcess | null = null;
    try {
      veth(a, "sync0", ["2001:db8:ff08::4/64"], b, "sync0", ["2001:db8:ff08::5/64"]);
      const peer = b.enter(() =>
        MulticastChannel.open(reactor, {
          multicastAddress: "ff08::db8:64:64",
          multicastPort: "6464",
          inInterface: "sync0",
          outInterface: "sync0",
          ttl: 3,
          reuseAddress: true,
        })
      );
      const heard: Uint8Array[] = [];
      peer.onDatagram((p) => heard.push(p.slice()));
      const daemon = spawnDaemon(
        [`${dir}/netsocket.json`, `${dir}/modsocket.json`, "6401"],
        { kernel, read: [dir], netns: a.name },
      );
      child = daemon.child;
      const out = daemon.out;
      await waitFor(() => out.stderr.includes("joold: info: ready"), "ready", 20_000);
      const pid = kernel.received[0].message.pid;
      const batch = fixture("4.1.9", "d-udp-payload-4sessions");
      kernel.sendBatch(pid, batch);
      await waitFor(() => heard.length === 1, "the batch on the peer");
      assert.deepEqual(heard[0], batch);
      const fromPeer = fixture("4.1.9", "d-udp-payload-1session");
      peer.send(fromPeer);
      await waitFor(() => kernel.requests(COMMANDS_4_1.JOOLD_ADD).length === 1, "the ADD");
      // Stats over IPv4 loopback inside the namespace: the daemon's :: socket serves IPv4 too.
      const fd = a.enter(() => socket(AF_INET, SOCK_DGRAM, 0));
      sendto(fd, Uint8Array.of(0x0a), sockaddrIn(Uint8Array.of(127, 0, 0, 1), 6401));
      const buffer = new Uint8Array(512);
      let n = -1;
      await waitFor(() => (n = recv(fd, buffer)) >= 0, "the stats reply");
      close(fd);
      assert.equal(
        new TextDecoder().decode(buffer.subarray(0, n)),
        `KERNEL_SENT_PKTS,1\nKERNEL_SENT_BYTES,${fromPeer.length}\nNET_RCVD_PKTS,1\n` +
          `NET_RCVD_BYTES,${fromPeer.length}\nNET_SENT_PKTS,1\nNET_SENT_BYTES,${batch.length}\n`,
      );
      child.kill("SIGTERM");
      assert.equal((await child.status).code, 0, out.stderr);
      child = null;
      await daemon.pumps;
      peer.close();
    } finally {
      if (child) {
        child.kill("SIGKILL");
        await child.status;
      }
      reactor.stop();
      await running;
      server.stop();
      kernel.close();
      a.dispose();
      b.dispose();
    }
  },
});
