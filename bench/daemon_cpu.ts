// The daemon process's CPU per batch and the kernel's wait for each ACK (root): cli.ts, run as the
// README runs it (plus the V8 flags given), against an in-process fake Jool 4.1.13 kernel (the
// tests' JOOLD_TEST_NETLINK_PEER seam), in a network namespace of its own whose loopback carries the
// sync group. The fake kernel sends COUNT one-session batches at RATE/s, each only after the ACK of
// the previous one, as Jool does; the daemon also receives its own datagrams (multicast loopback)
// and hands them back as JOOLD_ADD, so its CPU is both translators' work. Prints the daemon's CPU
// (user + system, /proc/PID/stat, 10 ms ticks) per batch, the ACK wait's p50, p99 and max, and
// the daemon's memory at the end (VmRSS and its parts, /proc/PID/status).
//   deno run -A bench/daemon_cpu.ts [RATE=2000] [COUNT=20000] [V8_FLAGS=""] [SCRAPE_MS=0]
// (V8_FLAGS "": the README's command, no V8 flag: the daemon sets its own --no-turbofan; "--turbofan"
// runs with V8's defaults. SCRAPE_MS > 0: the daemon serves --metrics and another
// process, lab/guest/scrape.ts, scrapes it every SCRAPE_MS meanwhile, as Prometheus would: what
// a scrape costs the sync path, outside the lab's emulation. KEYED "key": secure sync, a key file
// in net.json; the daemon then drops its own looped-back envelopes as reflections, so this
// measures the sending side's cost of secure sync, not the receiving side's.)
import { FakeKernel } from "../tests/_fake_kernel.ts";
import { tempFiles } from "../tests/_cli.ts";
import { fixture } from "../tests/_fixtures.ts";
import { cpuMs, spawnDaemon } from "./_daemon_process.ts";
import { commandsFor, parseVersion } from "../lib/jool/version.ts";
import { generateKeyLine } from "../lib/secure/keyfile.ts";

const rate = Number(Deno.args[0] ?? 2000);
const count = Number(Deno.args[1] ?? 20000);
const v8 = Deno.args[2] ?? "";
const scrapeMs = Number(Deno.args[3] ?? 0);
const keyed = Deno.args[4] === "key";
const METRICS = "127.0.0.1:9477";

function ip(...args: string[]): void {
  const r = new Deno.Command("ip", { args, stderr: "piped" }).outputSync();
  if (!r.success) throw new Error(`ip ${args.join(" ")}: ${new TextDecoder().decode(r.stderr)}`);
}

if (Deno.env.get("JOOLD_BENCH_NS") === undefined) {
  // Outside: make the namespace, run this script in it, clean up.
  const ns = `joold-bench-${Deno.pid}`;
  ip("netns", "add", ns);
  try {
    ip("-n", ns, "link", "set", "lo", "up", "multicast", "on");
    ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", "lo");
    const { code } = await new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        ns,
        Deno.execPath(),
        "run",
        "-A",
        import.meta.filename!,
        ...Deno.args,
      ],
      env: { JOOLD_BENCH_NS: ns },
    }).spawn().status;
    if (code !== 0) Deno.exitCode = code;
  } finally {
    ip("netns", "del", ns);
  }
} else {
  await measure();
}

async function measure(): Promise<void> {
  const kernel = new FakeKernel("4.1.13");
  const ack = commandsFor(parseVersion("4.1.13")).JOOLD_ACK;
  const payload = fixture("4.1.13", "d-udp-payload-1session");
  const dir = tempFiles({ "mod.json": `{ "instance": "default" }` });
  if (keyed) Deno.writeTextFileSync(`${dir}/sync.key`, `${generateKeyLine()}\n`, { mode: 0o600 });
  Deno.writeTextFileSync(
    `${dir}/net.json`,
    JSON.stringify({
      "multicast address": "239.1.2.3",
      "multicast port": "6464",
      "in interface": "127.0.0.1",
      "out interface": "127.0.0.1",
      "reuseaddr": 1,
      "ttl": 1,
      ...(keyed ? { "key file": `${dir}/sync.key` } : {}),
    }),
  );
  const server = kernel.start(); // answers the start-up requests
  const child = await spawnDaemon(
    kernel,
    dir,
    v8,
    [`${dir}/net.json`, `${dir}/mod.json`, ...(scrapeMs > 0 ? [`--metrics=${METRICS}`] : [])],
    scrapeMs > 0 ? [`--allow-net=${METRICS}`] : [],
  );
  await new Promise((r) => setTimeout(r, 1000)); // start-up over
  server.stop();
  kernel.serve();
  // The scraper: its own process (this one spins on the schedule below), its failures counted.
  const scraper = scrapeMs > 0
    ? new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        `--allow-net=${METRICS}`,
        new URL("../lab/guest/scrape.ts", import.meta.url).pathname,
        `http://${METRICS}/metrics`,
        String(scrapeMs),
      ],
      stderr: "piped",
    }).spawn()
    : null;
  const pid = kernel.received[0].message.pid; // the daemon's netlink port id
  const ticks = () => cpuMs(child.pid);
  let scanned = kernel.received.length;
  const acked = () => {
    let found = false;
    for (; scanned < kernel.received.length; scanned++) {
      if (kernel.received[scanned].jool?.cmd === ack) found = true;
    }
    return found;
  };
  const cpu0 = ticks();
  const waits: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const due = t0 + (i * 1000) / rate;
    while (performance.now() < due) { /* the schedule: no timer is this precise */ }
    const sent = performance.now();
    kernel.sendBatch(pid, payload);
    while (!acked()) {
      kernel.serve();
      if (performance.now() - sent > 2000) throw new Error(`no ACK for batch ${i} in 2 s`);
    }
    waits.push((performance.now() - sent) * 1000);
  }
  const elapsedS = (performance.now() - t0) / 1000; // above RATE: the daemon's own ceiling
  await new Promise((r) => setTimeout(r, 300)); // the last datagrams' JOOLD_ADD
  const used = ticks() - cpu0;
  scraper?.kill("SIGTERM");
  const failed = scraper
    ? new TextDecoder().decode((await scraper.output()).stderr).split("\n").filter((l) =>
      l.includes("scrape failed")
    ).length
    : 0;
  // Its memory after the load: VmRSS and its parts (its own anonymous memory; Deno's executable
  // and the libraries mapped from files; shared memory).
  const status = Deno.readTextFileSync(`/proc/${child.pid}/status`);
  const kb = (field: string) => Number(status.match(new RegExp(`^${field}:\\s+(\\d+)`, "m"))?.[1]);
  const memory = `VmRSS ${kb("VmRSS")} kB (anon ${kb("RssAnon")}, file ${kb("RssFile")}, shmem ${
    kb("RssShmem")
  })`;
  child.kill("SIGTERM");
  await child.status;
  kernel.close();
  waits.sort((a, b) => a - b);
  const at = (p: number) => waits[Math.min(count - 1, Math.ceil(p * count) - 1)].toFixed(0);
  console.log(
    `V8 flags "${v8}"${
      scrapeMs > 0 ? `, scraped every ${scrapeMs} ms (${failed} scrapes failed)` : ""
    }${keyed ? ", secure sync" : ""}: ${count} batches at ${rate}/s (reached ${
      Math.round(count / elapsedS)
    }/s): daemon CPU ${used} ms = ${(used * 1000 / count).toFixed(1)} us per batch; ACK wait p50 ${
      at(0.5)
    } us, p99 ${at(0.99)} us, max ${at(1)} us; ${memory}`,
  );
}
