/**
 * The real `cli.ts` process, run with the production permission flags, against an in-process fake
 * Jool kernel (NETLINK_USERSOCK, reached through the JOOLD_TEST_NETLINK_PEER test seam).
 */
import assert from "node:assert/strict";
import { libcPath } from "../ffi/libc.ts";
import { COMMANDS_4_1 } from "../lib/jool/version.ts";
import { FakeKernel } from "./_fake_kernel.ts";
import { entry, tempFiles } from "./_cli.ts";
import { fixture } from "./_fixtures.ts";
import { waitFor } from "./_udp.ts";

const isRoot = Deno.uid() === 0;
const skip = isRoot ? "" : " (skipped: needs root for NETLINK_USERSOCK)";

/** Spawns the CLI and collects its output as it comes. */
function spawn(args: string[], kernel: FakeKernel, files: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--no-prompt",
      `--allow-ffi=${libcPath()}`,
      `--allow-read=${files.join(",")}`,
      "--allow-env=JOOLD_TEST_NETLINK_PEER",
      entry("cli.ts"),
      ...args,
    ],
    env: { JOOLD_TEST_NETLINK_PEER: String(kernel.portId), NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = { stdout: "", stderr: "" };
  const pump = async (stream: ReadableStream<Uint8Array>, key: "stdout" | "stderr") => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) out[key] += chunk;
  };
  const pumps = Promise.all([pump(child.stdout, "stdout"), pump(child.stderr, "stderr")]);
  return { child, out, pumps };
}

Deno.test({
  name:
    `the daemon process: print mode, SIGUSR1 advertises, SIGTERM exits 0 within a second${skip}`,
  ignore: !isRoot,
  async fn() {
    const kernel = new FakeKernel("4.1.13");
    const server = kernel.start();
    const dir = tempFiles({ "mod.json": `{ "instance": "default" }` });
    const { child, out, pumps } = spawn([`--mod=${dir}/mod.json`], kernel, [`${dir}/mod.json`]);
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
      assert.match(out.stderr, /joold: info: stopping\n$/);
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
      await child.status;
      server.stop();
      kernel.close();
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
      const { child, out, pumps } = spawn(
        [`--mod=${dir}/mod.json`, ...flag],
        kernel,
        [`${dir}/mod.json`],
      );
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
    const { child, out, pumps } = spawn([`--mod=${dir}/mod.json`], kernel, [`${dir}/mod.json`]);
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
