/**
 * systemd notifications on real unix datagram sockets: the test binds the socket systemd would
 * (tests/systemd/_notify_socket.ts) and reads what joold sends, in-process and from the real CLI
 * against the fake kernel.
 */
import assert from "node:assert/strict";
import { createCounters } from "../../lib/counters.ts";
import { silentLogger } from "../../lib/log.ts";
import { Reactor } from "../../lib/reactor.ts";
import {
  NOTIFY_VARIABLES,
  parseNotifyEnvironment,
  STATUS_INTERVAL_MS,
  statusText,
  SystemdNotifier,
  unixAddress,
} from "../../lib/systemd/notify.ts";
import { FakeKernel } from "../_fake_kernel.ts";
import { spawnDaemon, tempFiles } from "../_cli.ts";
import { fixture } from "../_fixtures.ts";
import { waitFor } from "../_udp.ts";
import { notifySocket } from "./_notify_socket.ts";

const isRoot = Deno.uid() === 0;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("unixAddress: a path with its NUL, an abstract name after a NUL, bad values named", () => {
  const path = new TextEncoder().encode("/run/systemd/notify");
  assert.deepEqual(unixAddress("/run/systemd/notify"), Uint8Array.of(1, 0, ...path, 0));
  assert.deepEqual(unixAddress("@x/y"), Uint8Array.of(1, 0, 0, 0x78, 0x2f, 0x79));
  assert.throws(() => unixAddress("run/notify"), /^Error: NOTIFY_SOCKET=run\/notify: neither/);
  assert.equal(unixAddress(`/${"a".repeat(106)}`).length, 110);
  assert.throws(() => unixAddress(`/${"a".repeat(107)}`), /longer than a unix socket address/);
});

Deno.test("parseNotifyEnvironment: the watchdog only for this pid and a positive interval", () => {
  const env = (vars: Record<string, string>) => parseNotifyEnvironment((n) => vars[n], 42);
  assert.equal(env({ WATCHDOG_USEC: "1000" }), undefined);
  assert.deepEqual(env({ NOTIFY_SOCKET: "@s" }), { socket: "@s" });
  assert.deepEqual(env({ NOTIFY_SOCKET: "@s", WATCHDOG_USEC: "1000", WATCHDOG_PID: "42" }), {
    socket: "@s",
    watchdogUsec: 1000,
  });
  assert.deepEqual(env({ NOTIFY_SOCKET: "@s", WATCHDOG_USEC: "1000", WATCHDOG_PID: "43" }), {
    socket: "@s",
  });
  assert.deepEqual(env({ NOTIFY_SOCKET: "@s", WATCHDOG_USEC: "0" }), { socket: "@s" });
  assert.deepEqual(env({ NOTIFY_SOCKET: "@s", WATCHDOG_USEC: "30s" }), { socket: "@s" });
  assert.deepEqual(NOTIFY_VARIABLES, ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"]);
});

Deno.test("statusText: the state first, then the counters and what went wrong", () => {
  const c = createCounters();
  const context = { instance: "blue", instanceAlive: false, syncEnabled: undefined, network: true };
  assert.equal(statusText(c, context), `waiting for Jool instance "blue" (jool instance add)`);
  const off = { ...context, instanceAlive: true, syncEnabled: false };
  assert.match(statusText(c, off), /^session synchronization is off on instance "blue"/);
  c.kernelBatchesReceived = 2; // the kernel sends: the instance exists and syncs
  c.netDatagramsSent = 2;
  c.netDatagramsReceived = 5;
  assert.equal(statusText(c, off), "syncing: 2 datagrams sent, 5 received");
  c.kernelRefusals = 1;
  c.netMalformedDatagrams = 1;
  c.netForeignFormatDatagrams = 2;
  assert.equal(
    statusText(c, off),
    "syncing: 2 datagrams sent, 5 received (1 kernel refusals, 3 datagrams dropped)",
  );
  assert.equal(
    statusText(c, { ...off, network: false }),
    "printing: 2 batches from the kernel (1 kernel refusals, 3 datagrams dropped)",
  );
});

Deno.test("SystemdNotifier: abstract socket; the watchdog pings only while the reactor turns", async () => {
  const name = `@joold-test-${Deno.pid}-${crypto.randomUUID()}`;
  const systemd = notifySocket(name);
  const reactor = new Reactor();
  const running = reactor.run();
  const counters = createCounters();
  const context = { instance: "default", instanceAlive: true, syncEnabled: true, network: true };
  const notifier = SystemdNotifier.open({
    reactor,
    counters,
    context,
    log: silentLogger,
    env: { socket: name, watchdogUsec: 40_000 }, // a ping every 20 ms
  });
  try {
    assert.ok(notifier.active);
    notifier.ready();
    await waitFor(() => systemd.drain().length >= 1, "READY=1");
    assert.equal(systemd.messages[0], "READY=1\nSTATUS=syncing: 0 datagrams sent, 0 received");
    await waitFor(
      () => systemd.drain().filter((m) => m.startsWith("WATCHDOG=1")).length >= 3,
      "three pings",
    );
    // The reactor stops (a dead loop): no more pings, though the timer still runs.
    reactor.stop();
    await running;
    systemd.drain();
    const before = systemd.messages.length;
    await sleep(200);
    assert.equal(systemd.drain().length, before, systemd.messages.slice(before).join(" | "));
    notifier.close();
    assert.equal(systemd.drain().at(-1), "STOPPING=1\nSTATUS=stopping");
    notifier.close(); // idempotent: nothing more
    assert.equal(systemd.drain().length, before + 1);
  } finally {
    notifier.close();
    reactor.stop();
    await running;
    systemd.close();
  }
});

Deno.test("SystemdNotifier: without NOTIFY_SOCKET, or with an unusable one, it stays silent", async () => {
  const reactor = new Reactor();
  const counters = createCounters();
  const context = { instance: "default", instanceAlive: true, syncEnabled: true, network: true };
  const warnings: string[] = [];
  const log = { ...silentLogger, warn: (m: string) => warnings.push(m) };
  const none = SystemdNotifier.open({ reactor, counters, context, log, env: undefined });
  none.ready();
  none.close();
  assert.deepEqual([none.active, none.sent, warnings], [false, 0, []]);
  const bad = SystemdNotifier.open({ reactor, counters, context, log, env: { socket: "notify" } });
  bad.ready();
  assert.deepEqual([bad.active, bad.sent], [false, 0]);
  assert.deepEqual(warnings, [
    "systemd notifications off: NOTIFY_SOCKET=notify: neither an absolute path nor an abstract socket name (@...)",
  ]);
  // systemd went away: one warning, the daemon goes on.
  const gone = `/tmp/joold-no-such-socket-${crypto.randomUUID()}`;
  const lost = SystemdNotifier.open({ reactor, counters, context, log, env: { socket: gone } });
  lost.ready();
  lost.close();
  assert.equal(warnings.at(-1), "systemd notification failed: sendto: ENOENT");
  assert.equal(warnings.length, 2);
  reactor.stop();
  await reactor.run();
});

/** The CLI in print mode against a fake kernel, with systemd's variables and permissions. */
function spawn(kernel: FakeKernel, env: Record<string, string>, allowEnv: string[]) {
  const dir = tempFiles({ "mod.json": `{ "instance": "blue" }` });
  return spawnDaemon([`--mod=${dir}/mod.json`, "--log-level=debug"], {
    kernel,
    read: [`${dir}/mod.json`],
    allowEnv,
    env,
    stdout: "null",
  });
}

Deno.test({
  name: `the daemon process tells systemd READY=1, STATUS=, WATCHDOG=1 and STOPPING=1${
    isRoot ? "" : " (skipped: needs root for NETLINK_USERSOCK)"
  }`,
  ignore: !isRoot,
  async fn() {
    const dir = Deno.makeTempDirSync({ prefix: "joold-notify-" });
    const path = `${dir}/notify`;
    const systemd = notifySocket(path);
    const kernel = new FakeKernel("4.1.13");
    kernel.state.instanceAlive = false;
    const server = kernel.start();
    const run = spawn(
      kernel,
      { NOTIFY_SOCKET: path, WATCHDOG_USEC: "400000" },
      [...NOTIFY_VARIABLES],
    );
    try {
      await waitFor(() => systemd.drain().some((m) => m.startsWith("READY=1")), "READY=1", 20_000);
      // The ready line was written before READY=1 was sent; the pipe may bring it a little later.
      await waitFor(() => run.out.stderr.includes("joold: info: ready\n"), "the ready line");
      assert.equal(
        systemd.messages.find((m) => m.startsWith("READY=1")),
        `READY=1\nSTATUS=waiting for Jool instance "blue" (jool instance add)`,
      );
      assert.match(run.out.stderr, /debug: systemd notifications to \S+, watchdog every 200 ms\n/);
      // Half of WATCHDOG_USEC: at least 3 pings in a second.
      const pings = () => systemd.drain().filter((m) => m.split("\n").includes("WATCHDOG=1"));
      const first = pings().length;
      await sleep(1000);
      assert.ok(pings().length - first >= 3, `${pings().length - first} pings in 1 s`);
      // A batch of the instance: it exists after all, the status says so at the next ping.
      const pid = kernel.received[0].message.pid;
      kernel.sendBatch(pid, fixture("4.1.13", "d-udp-payload-4sessions"), "blue");
      await waitFor(
        () => systemd.drain().some((m) => m.includes("STATUS=printing: 1 batches from the kernel")),
        "the new status",
        3000,
      );
      run.child.kill("SIGTERM");
      assert.equal((await run.child.status).code, 0, run.out.stderr);
      await run.pumps;
      assert.equal(systemd.drain().at(-1), "STOPPING=1\nSTATUS=stopping");
    } finally {
      try {
        run.child.kill("SIGKILL");
      } catch {
        // already gone
      }
      await run.child.status;
      server.stop();
      kernel.close();
      systemd.close();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: `the daemon process without --allow-env for NOTIFY_SOCKET: no notification, a debug line${
    isRoot ? "" : " (skipped: needs root for NETLINK_USERSOCK)"
  }`,
  ignore: !isRoot,
  async fn() {
    const dir = Deno.makeTempDirSync({ prefix: "joold-notify-" });
    const path = `${dir}/notify`;
    const systemd = notifySocket(path);
    const kernel = new FakeKernel("4.1.13");
    const server = kernel.start();
    const run = spawn(kernel, { NOTIFY_SOCKET: path, WATCHDOG_USEC: "400000" }, []);
    try {
      await waitFor(() => run.out.stderr.includes("joold: info: ready"), "ready", 20_000);
      assert.match(
        run.out.stderr,
        /joold: debug: systemd notifications off: not granted --allow-env=NOTIFY_SOCKET,WATCHDOG_USEC,WATCHDOG_PID\n/,
      );
      await sleep(500);
      run.child.kill("SIGTERM");
      assert.equal((await run.child.status).code, 0, run.out.stderr);
      await run.pumps;
      assert.deepEqual(systemd.drain(), []);
    } finally {
      try {
        run.child.kill("SIGKILL");
      } catch {
        // already gone
      }
      await run.child.status;
      server.stop();
      kernel.close();
      systemd.close();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test("SystemdNotifier: new counts at most every STATUS_INTERVAL_MS, a new problem at once", async () => {
  const name = `@joold-test-${Deno.pid}-${crypto.randomUUID()}`;
  const systemd = notifySocket(name);
  const reactor = new Reactor();
  const running = reactor.run();
  const counters = createCounters();
  const context = { instance: "default", instanceAlive: true, syncEnabled: true, network: true };
  let now = 0;
  const notifier = SystemdNotifier.open({
    reactor,
    counters,
    context,
    log: silentLogger,
    env: { socket: name, watchdogUsec: 20_000 }, // a tick every 10 ms
    now: () => now,
  });
  const statuses = () => systemd.drain().filter((m) => m.includes("STATUS="));
  const ticks = async (n: number) => {
    const start = systemd.drain().length;
    await waitFor(() => systemd.drain().length >= start + n, `${n} ticks`);
  };
  try {
    notifier.ready();
    counters.netDatagramsSent = 5;
    await ticks(5);
    assert.equal(statuses().length, 1, "only READY's status within the interval");
    now = STATUS_INTERVAL_MS;
    await ticks(2);
    assert.equal(statuses().at(-1), "WATCHDOG=1\nSTATUS=syncing: 5 datagrams sent, 0 received");
    counters.netDatagramsSent = 6;
    counters.kernelOverruns = 1;
    await ticks(2);
    assert.equal(
      statuses().at(-1),
      "WATCHDOG=1\nSTATUS=syncing: 6 datagrams sent, 0 received (1 receive overruns)",
    );
    assert.equal(statuses().length, 3);
  } finally {
    notifier.close();
    reactor.stop();
    await running;
    systemd.close();
  }
});
