/**
 * The metrics endpoint and JSON logs of the real `cli.ts` process, run with the production
 * permission flags (plus `--allow-net=HOST:PORT` where it is meant to work) against an in-process
 * fake Jool kernel (the JOOLD_TEST_NETLINK_PEER test seam). The process's reactor lingers as in
 * production (250 ms), so a scrape during load shows what the event loop's turns cost.
 */
import assert from "node:assert/strict";
import { LINGER_MS } from "../../lib/reactor.ts";
import { spawnDaemon, tempFiles } from "../_cli.ts";
import { FakeKernel } from "../_fake_kernel.ts";
import { fixture } from "../_fixtures.ts";
import { waitFor } from "../_udp.ts";
import { freePort, promtoolCheck, promtoolUnavailable, samples } from "./_promtool.ts";

const isRoot = Deno.uid() === 0;
const skip = isRoot ? "" : " (skipped: needs root for NETLINK_USERSOCK)";
const noPromtool = promtoolUnavailable();

for (const format of ["text", "json"] as const) {
  Deno.test({
    name:
      `without --allow-net, --metrics is a one-line error naming the flag (${format} logs), exit 1${skip}`,
    ignore: !isRoot,
    async fn() {
      const kernel = new FakeKernel("4.1.13");
      const server = kernel.start();
      const dir = tempFiles({ "mod.json": `{ "instance": "default" }` });
      try {
        const { child, out, pumps } = spawnDaemon(
          [`--mod=${dir}/mod.json`, "--metrics=[::1]:9477", `--log-format=${format}`],
          { kernel, read: [`${dir}/mod.json`] },
        );
        const status = await child.status;
        await pumps;
        assert.equal(status.code, 1, out.stderr);
        const message =
          "--metrics=[::1]:9477: joold may not listen there: add --allow-net=[::1]:9477 to deno run's permission flags";
        const lines = out.stderr.trimEnd().split("\n");
        if (format === "text") {
          assert.equal(lines.at(-1), `joold: error: ${message}`);
          assert.match(
            lines[0],
            /^joold: info: joold .* starting: .*metrics on http:\/\/\[::1\]:9477\/metrics$/,
          );
        } else {
          const objects = lines.map((l) => JSON.parse(l));
          for (const o of objects) {
            assert.deepEqual(Object.keys(o).slice(0, 4), ["time", "level", "event", "message"]);
            assert.ok(!Number.isNaN(Date.parse(o.time)) && o.time.endsWith("Z"), o.time);
          }
          assert.equal(objects[0].event, "starting");
          assert.equal(objects[0].instance, "default");
          assert.deepEqual(
            {
              level: objects.at(-1).level,
              event: objects.at(-1).event,
              message: objects.at(-1).message,
            },
            { level: "error", event: "failed", message },
          );
        }
        // Nothing was opened: the kernel was never asked anything.
        assert.equal(kernel.received.length, 0);
      } finally {
        server.stop();
        kernel.close();
      }
    },
  });
}

Deno.test({
  name:
    `a scrape during load is answered within the reactor's linger; the values are the traffic's${skip}`,
  ignore: !isRoot,
  async fn() {
    const kernel = new FakeKernel("4.1.13");
    const server = kernel.start();
    const dir = tempFiles({ "mod.json": `{ "instance": "default" }` });
    const port = freePort();
    const { child, out, pumps } = spawnDaemon(
      [`--mod=${dir}/mod.json`, `--metrics=127.0.0.1:${port}`, "--log-format=json"],
      { kernel, read: [`${dir}/mod.json`], permissions: [`--allow-net=127.0.0.1:${port}`] },
    );
    try {
      await waitFor(() => out.stderr.includes('"event":"ready"'), "ready", 20_000);
      const pid = kernel.received[0].message.pid;
      const payload = fixture("4.1.13", "d-udp-payload-4sessions");
      const url = `http://127.0.0.1:${port}/metrics`;
      // Load: a batch every millisecond or so for 3 s, while scraping every 100 ms.
      let sent = 0;
      let loading = true;
      const load = (async () => {
        while (loading) {
          for (let i = 0; i < 5; i++, sent++) kernel.sendBatch(pid, payload);
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      const latencies: number[] = [];
      const t0 = performance.now();
      while (performance.now() - t0 < 3000) {
        const t = performance.now();
        const text = await (await fetch(url)).text();
        latencies.push(performance.now() - t);
        assert.ok(samples(text).has("joold_kernel_batches_received_total"));
        await new Promise((r) => setTimeout(r, 100));
      }
      loading = false;
      await load;
      await waitFor(() => out.stdout.split("\n").length - 1 === sent * 4, "every session printed");
      const text = await (await fetch(url)).text();
      const got = samples(text);
      assert.equal(got.get("joold_kernel_batches_received_total"), sent);
      assert.equal(got.get("joold_kernel_acks_sent_total"), sent);
      assert.equal(got.get("joold_kernel_ack_latency_seconds_count"), sent);
      if (noPromtool === null) assert.deepEqual(await promtoolCheck(text), { code: 0, output: "" });
      latencies.sort((x, y) => x - y);
      const p50 = latencies[Math.floor(latencies.length / 2)];
      const max = latencies.at(-1)!;
      console.log(
        `scrape latency under load (${sent} batches in 3 s): p50 ${p50.toFixed(1)} ms, max ${
          max.toFixed(1)
        } ms over ${latencies.length} scrapes`,
      );
      // A scrape needs a few event-loop turns (accept, read, answer), each up to one linger away
      // (measured on an idle host: p50 200 ms, max 400 ms); the bound leaves room for a busy host.
      assert.ok(max < 20 * LINGER_MS, `a scrape took ${max.toFixed(0)} ms`);
      child.kill("SIGTERM");
      assert.equal((await child.status).code, 0);
      await pumps;
      const last = out.stderr.trimEnd().split("\n").map((l) => JSON.parse(l));
      const counters = last.find((o) => o.event === "counters");
      assert.equal(counters.kernelBatchesReceived, sent, "the stop summary's fields");
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
      server.stop();
      kernel.close();
    }
  },
});
