/**
 * The kernel lab: end-to-end scenarios against the real Jool module (Debian bookworm: Jool 4.1.9;
 * trixie: Jool 4.1.13) in QEMU guests built only from Debian packages. Builds the guests once
 * (cached outside the repository), boots each with no network card, shares the project and Deno
 * over 9p, runs the scenarios of guest/scenarios.sh and reports one line per scenario, then
 * `N passed, N failed, N skipped`. Scenarios the machine cannot run are SKIPPED with the reason.
 *
 *   deno task test:kernel [--flavour bookworm|trixie|trixie-sid|upgrade] [--scenario NAME[,NAME...]]
 *   deno task lab:build [--flavour bookworm|trixie]      (build the guests only)
 *
 * The `upgrade` entry is two guests at once, a bookworm J and a trixie K joined by a sync link
 * between their QEMU processes, for a rolling upgrade across session formats (guest/upgrade.sh).
 *
 * @module
 */

import dgram from "node:dgram";
import { parseArgs } from "node:util";

const HERE = new URL(".", import.meta.url).pathname;
const PROJECT = new URL("../", import.meta.url).pathname;
const CACHE = Deno.env.get("JOOLD_LAB_CACHE") ?? "/var/cache/joold-lab";
const FLAVOURS = ["bookworm", "trixie", "trixie-sid"] as const;
type Flavour = typeof FLAVOURS[number];
/** The two-guest entry: a rolling upgrade from Jool 4.1.9 (J, bookworm) to 4.1.13 (K, trixie). */
const PAIR = "upgrade" as const;
/** Its verdicts, as guest/upgrade.sh's two sides judge them. */
const PAIR_SCENARIOS = [
  "k-translate-9-to-13",
  "k-translate-13-to-9",
  "k-failover-across-versions",
  "k-no-translate-9-to-13",
  "k-no-translate-13-to-9",
];
/** Whether `deno task test:kernel` without --flavour runs the pair too (see lab/README.md, Cost). */
const PAIR_BY_DEFAULT = false;
const ALL = [
  "control-no-daemon",
  "c-baseline",
  "a-sync-ipv6",
  "a-sync-ipv4",
  "b-failover",
  "c-interop-ours-to-c",
  "c-interop-c-to-ours",
  "c-interop-proxy",
  "c-proxy-syntax",
  "d-advertise",
  "e-stats",
  "f-instance-late",
  "f-instance-readded",
  "f-peer-restart",
  "f-storm",
  "g-ss-enabled",
  "h-nonroot",
  "e-kernel-stats",
  "i-enable-sync-readded",
  "i-module-reload",
  "j-forged-sessions",
  "j-stats-flood",
  "j-sighup",
  "k-three-multicast",
  "k-three-unicast",
  "k-three-c-daemon",
  "k-secure-sync",
  "k-secure-loss",
  "k-secure-forgery",
];

const { values } = parseArgs({
  args: Deno.args,
  options: {
    flavour: { type: "string" },
    scenario: { type: "string" },
    demo: { type: "boolean" },
    "build-only": { type: "boolean" },
    bench: { type: "boolean" },
    "bench-count": { type: "string" },
    "bench-rates": { type: "string" },
    "bench-reps": { type: "string" },
    "bench-interop": { type: "string" },
    "bench-idle": { type: "string" },
    "bench-kinds": { type: "string" },
    "bench-warmup": { type: "string" },
    "bench-bulk": { type: "string" },
    "bench-start-gap": { type: "string" },
    "bench-bulk-batches": { type: "string" },
    "bench-flush-ms": { type: "string" },
    "bench-micro": { type: "string" },
    "bench-addcost": { type: "string" },
  },
});
const demo = values.demo === true;
/**
 * `deno task lab:bench`: guest/bench.sh instead of the scenarios (our daemon against the C daemon,
 * alternating on the same boot); its BENCH lines go to stdout.
 */
const bench = values.bench === true;
/** Kernel command line parameters that tune guest/bench.sh. */
const benchArgs = [
  ["bench-count", "joold.bench_count"],
  ["bench-rates", "joold.bench_rates"],
  ["bench-reps", "joold.bench_reps"],
  ["bench-interop", "joold.bench_interop"],
  ["bench-idle", "joold.bench_idle"],
  ["bench-kinds", "joold.bench_kinds"],
  ["bench-warmup", "joold.bench_warmup"],
  ["bench-bulk", "joold.bench_bulk"],
  ["bench-start-gap", "joold.bench_start_gap"],
  ["bench-bulk-batches", "joold.bench_bulk_batches"],
  ["bench-flush-ms", "joold.bench_flush_ms"],
  ["bench-micro", "joold.bench_micro"],
  ["bench-addcost", "joold.bench_addcost"],
].flatMap(([flag, param]) => {
  const value = values[flag as "bench-count"];
  return value === undefined ? [] : [`${param}=${value.replaceAll(" ", ",")}`];
});
/** A generous time limit for guest/bench.sh: about 2 minutes per step under TCG (each takes ~1). */
function benchLimitS(): number {
  const kinds = (values["bench-kinds"] ?? "c,ours").split(/[, ]+/).length;
  const reps = Number(values["bench-reps"] ?? 2);
  if (values["bench-bulk"]) {
    // Filling J's table runs at ~2000 sessions/s under TCG; a step (fresh daemons, the bulk, two
    // table reads) at most ~5 minutes for 100k sessions.
    const sizes = values["bench-bulk"].split(/[, ]+/).map(Number);
    const batches = (values["bench-bulk-batches"] ?? "default,1").split(/[, ]+/).length;
    // (reps + 1: guest/bench.sh's warm-up repetition 0)
    return 300 +
      sizes.reduce((s, n) => s + batches * (n / 1000 + kinds * (reps + 1) * (60 + n / 300)), 0);
  }
  const rates = (values["bench-rates"] ?? "200,400,800,1600,3200").split(/[, ]+/).length;
  const interop = Number(values["bench-interop"] ?? 400) > 0 ? 2 * reps : 0;
  const idleS = Number(values["bench-idle"] ?? 30);
  const warmupS = Number(values["bench-warmup"] ?? 0) / 100; // at 200/s, twice that to settle
  return 300 + (kinds * rates * reps + interop) * (120 + warmupS) +
    (idleS > 0 ? kinds * (idleS + 120) : 0);
}
/** `deno task lab:build`: build (or find cached) the guests and stop; CI can run it ahead of time. */
const buildOnly = values["build-only"] === true;
const chosen = demo
  ? ["demo"]
  : bench
  ? ["bench"]
  : values.scenario
  ? values.scenario.split(",")
  : [...ALL, ...PAIR_SCENARIOS]; // the pair's only where it runs
/** What one guest runs (the pair's verdicts come from the two-guest entry). */
const scenarios = chosen.filter((name) => !PAIR_SCENARIOS.includes(name));
/** The pair's verdicts asked for (all of them run: each step needs the one before). */
const pairScenarios = chosen.filter((name) => PAIR_SCENARIOS.includes(name));
const flavours: (Flavour | typeof PAIR)[] = values.flavour
  ? [values.flavour as Flavour | typeof PAIR]
  : demo
  ? ["trixie" as const]
  : [
    ...FLAVOURS,
    ...((PAIR_BY_DEFAULT && !bench) || values.scenario && pairScenarios.length ? [PAIR] : []),
  ];
for (const f of flavours) {
  if (f !== PAIR && !(FLAVOURS as readonly string[]).includes(f)) {
    console.error(`lab: unknown --flavour "${f}": use ${[...FLAVOURS, PAIR].join(", ")}`);
    Deno.exit(2);
  }
}
/**
 * The scenarios a flavour runs by default. trixie-sid differs from trixie only in Jool (4.1.15 on
 * the same 6.12 kernel, the same 36-byte session format): what it has to prove is that Jool's
 * own daemons and counters (its C daemon, `session proxy`, JSTAT_JOOLD_*) and the basic sync and
 * failover work with ours. The daemon's fault handling is the daemon's, proven on 4.1.9 and
 * 4.1.13; running it a third time would cost ~6 minutes of CI's budget for no new fact. Not
 * here either: a-sync-ipv4 (the sync link's address family is the daemon's, not Jool's) and
 * e-stats (the daemon's own UDP stats reply): the last CI run took 47.5 min of its ~45.
 */
const SUBSETS: Partial<Record<Flavour, readonly string[]>> = {
  "trixie-sid": [
    "control-no-daemon",
    "a-sync-ipv6",
    "b-failover",
    "c-interop-ours-to-c",
    "c-interop-c-to-ours",
    "c-interop-proxy",
    "c-proxy-syntax",
    "d-advertise",
    "e-kernel-stats",
    "j-forged-sessions",
  ],
};
/**
 * Scenarios that run on some flavours only by default: what they judge is the daemon's own
 * behaviour (signals, its reactor under a flood, malformed datagrams, the topology of three
 * translators of ours), the same whatever Jool is underneath, so one flavour proves it and the
 * others keep CI's budget (~45 min) for what does depend on Jool. `k-three-c-daemon` runs wherever
 * there is a C daemon to pair with.
 */
const ONLY_ON: Readonly<Record<string, readonly Flavour[]>> = {
  "a-sync-ipv4": ["trixie"], // the sync link's address family is the daemon's socket, not Jool
  "f-peer-restart": ["trixie"], // a daemon killed and restarted: its peer's sends, its own start
  "k-secure-loss": ["trixie"], // NACKs and resends: the daemons' own protocol over netem
  "k-secure-forgery": ["trixie"], // envelopes that do not verify never reach the kernel at all
  "f-storm": ["trixie"],
  "j-stats-flood": ["trixie"],
  "j-sighup": ["trixie"],
  "k-three-multicast": ["trixie"],
  "k-three-unicast": ["trixie"],
};
/**
 * What runs on a flavour: `--scenario` as given; else ALL in its order, within the flavour's subset
 * and where each scenario's {@linkcode ONLY_ON} allows.
 */
function scenariosFor(flavour: Flavour): string[] {
  if (demo || bench || values.scenario) return scenarios;
  const subset = SUBSETS[flavour];
  return scenarios.filter((name) =>
    (subset === undefined || subset.includes(name)) && (ONLY_ON[name]?.includes(flavour) ?? true)
  );
}
const started = Date.now();

function progress(message: string): void {
  const s = Math.round((Date.now() - started) / 1000);
  console.error(`[lab ${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s] ${message}`);
}

function sh(cmd: string, args: string[], env?: Record<string, string>) {
  const r = new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).outputSync();
  const dec = new TextDecoder();
  return { ok: r.success, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

function has(command: string): boolean {
  return sh("sh", ["-c", `command -v ${command}`]).ok;
}

/** Why the lab cannot run on this machine at all, or null. */
function labUnavailable(): string | null {
  if (Deno.uid() !== 0) return "the lab needs root (debootstrap, QEMU shares, namespaces)";
  const tools = [
    "qemu-system-x86_64",
    "debootstrap",
    "mke2fs",
    "cpio",
    "busybox",
    "zstd",
    "python3",
  ];
  if (tools.every(has)) return null;
  progress("installing the lab's Debian packages (qemu-system-x86 debootstrap ...)");
  const install = sh("sh", [
    "-c",
    "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 debootstrap e2fsprogs cpio busybox-static xz-utils zstd python3",
  ]);
  const missing = tools.filter((t) => !has(t));
  return missing.length === 0
    ? null
    : `cannot install ${missing.join(", ")} from Debian's archive: ${
      install.err.trim().split("\n").at(-1)
    }`;
}

async function inputsHash(flavour: Flavour): Promise<string> {
  const files = ["build-image.sh", "extract-vmlinux.py", "make-initramfs.py", "guest/stub.sh"];
  const text = flavour + files.map((f) => Deno.readTextFileSync(`${HERE}${f}`)).join("\0");
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest).slice(0, 6), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/** The image build's steps and their typical duration here (TCG host, 2 cores), seconds. */
const BUILD_STEPS: [string, number][] = [
  ["debootstrap", 30],
  ["guest packages", 65],
  ["jool-dkms", 30],
  ["kernel and initramfs", 2],
  ["guest init", 1],
  ["rootfs image", 10],
];

async function buildImage(flavour: Flavour): Promise<{ dir: string } | { skip: string }> {
  const dir = `${CACHE}/${flavour}-${await inputsHash(flavour)}`;
  try {
    Deno.statSync(`${dir}/ok`);
    progress(`${flavour}: cached guest ${dir}`);
    return { dir };
  } catch {
    // build it
  }
  Deno.mkdirSync(CACHE, { recursive: true });
  progress(`${flavour}: building the guest (about 2-4 minutes: debootstrap, kernel, jool-dkms)`);
  // SCHED_IDLE: a build that runs while an earlier flavour's guest runs its scenarios (see
  // builtInOrder) takes only the CPU the guest leaves idle, never the guest's share.
  const child = new Deno.Command("chrt", {
    args: ["--idle", "0", "bash", `${HERE}build-image.sh`, flavour, dir],
    stdout: "inherit",
    stderr: "piped",
  }).spawn();
  let tail = "";
  const t0 = Date.now();
  for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
    tail = (tail + chunk).slice(-4000);
    for (const line of chunk.split("\n").filter((l) => l.startsWith("[lab "))) {
      const step = BUILD_STEPS.findIndex(([name]) => line.includes(`] ${name}`));
      if (step < 0) {
        progress(line);
        continue;
      }
      const left = BUILD_STEPS.slice(step).reduce((sum, [, seconds]) => sum + seconds, 0);
      const elapsed = Math.round((Date.now() - t0) / 1000);
      progress(
        `${flavour}: step ${step + 1}/${BUILD_STEPS.length}: ${
          BUILD_STEPS[step][0]
        }; ${elapsed}s elapsed, about ${left}s left`,
      );
    }
  }
  const status = await child.status;
  if (!status.success) {
    return {
      skip: `the ${flavour} guest could not be built: ${
        tail.trim().split("\n").slice(-3).join(" | ")
      }`,
    };
  }
  return { dir };
}

function prepareDeno(): string {
  const share = `${CACHE}/deno-share`;
  Deno.mkdirSync(`${share}/cache`, { recursive: true });
  const exe = Deno.execPath();
  const target = `${share}/deno`;
  let same = false;
  try {
    same = Deno.statSync(target).size === Deno.statSync(exe).size;
  } catch {
    // copy it
  }
  if (!same) Deno.copyFileSync(exe, target);
  const cached = sh(exe, [
    "cache",
    "--quiet",
    `${PROJECT}cli.ts`,
    `${HERE}guest/storm.ts`,
    `${HERE}guest/loadgen.ts`,
  ], {
    DENO_DIR: `${share}/cache`,
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
  });
  if (!cached.ok) throw new Error(`deno cache for the guest failed: ${cached.err}`);
  return share;
}

function accel(): string[] {
  // /dev/kvm here is a nested "PVM" KVM that emulates a stock kernel instruction by instruction.
  let pvm = false;
  try {
    Deno.statSync("/sys/module/kvm_pvm");
    pvm = true;
  } catch {
    // not PVM
  }
  let kvm = false;
  try {
    Deno.openSync("/dev/kvm", { read: true, write: true }).close();
    kvm = true;
  } catch {
    // no KVM
  }
  return !pvm && kvm
    ? ["-accel", "kvm", "-cpu", "host"]
    : ["-accel", "tcg,thread=multi", "-cpu", "max"];
}

/** How many more boots a flavour gets for the scenarios an emulator-caused panic took. */
const PANIC_BOOTS = Number(Deno.env.get("JOOLD_LAB_PANIC_BOOTS") ?? 2);

/** How long a guest may take to show a sign of life (its guest.log) before it counts as not booting. */
const BOOT_DEADLINE_S = Number(Deno.env.get("JOOLD_LAB_BOOT_DEADLINE") ?? 300);

interface Outcome {
  name: string;
  status: "ok" | "FAILED" | "SKIPPED";
  detail: string;
  /** No result because the guest kernel panicked outside Jool: the panic's first line. */
  panic?: string;
}

/**
 * Why the guest kernel died, when it panicked and its trace does not name Jool: under TCG with
 * several vCPUs the kernel's live code patching (static keys, int3) races the emulator now and
 * then (seen here at boot in sched_clock_cpu, and in __netif_receive_skb_core), which says nothing
 * about the daemon or Jool. A panic whose trace names Jool's modules is Jool's and stays a failure.
 */
function emulatorPanic(consoleLines: string[]): string | undefined {
  // "Attempted to kill init" is how every run ends (init's power-off races its own exit).
  const at = consoleLines.findIndex((l) =>
    /Kernel panic|Oops:|BUG:/.test(l) && !l.includes("Attempted to kill init")
  );
  if (at < 0) return undefined;
  // A frame in Jool's code is annotated "[jool]" or "[jool_common]" (the "Modules linked in:"
  // line names every loaded module, Jool included, without brackets).
  if (consoleLines.slice(at).some((l) => /\[jool\w*\]/.test(l))) return undefined;
  return consoleLines.slice(at).find((l) => l.includes("Kernel panic"))?.trim() ??
    consoleLines[at].trim();
}

/**
 * Starts QEMU on a guest image under `timeout`: the image read-only (`-snapshot`), the project,
 * Deno and the results directory over 9p, no network card unless `nic` adds the sync link.
 */
function spawnQemu(
  image: string,
  results: string,
  denoShare: string,
  limitS: number,
  params: string,
  nic: string[] = [],
): Deno.ChildProcess {
  return new Deno.Command("timeout", {
    args: [
      "-k",
      "10",
      String(limitS),
      "qemu-system-x86_64",
      "-machine",
      "q35",
      "-m",
      "2048",
      "-smp",
      "2",
      ...accel(),
      "-kernel",
      `${image}/vmlinux`,
      "-initrd",
      `${image}/initrd.cpio`,
      "-drive",
      `file=${image}/rootfs.ext4,if=virtio,format=raw`,
      "-snapshot",
      "-nic",
      "none",
      ...nic,
      "-no-reboot",
      "-display",
      "none",
      "-virtfs",
      `local,path=${PROJECT},mount_tag=project,security_model=none,readonly=on`,
      "-virtfs",
      `local,path=${results},mount_tag=results,security_model=none`,
      "-virtfs",
      `local,path=${denoShare},mount_tag=deno,security_model=none,readonly=on`,
      "-serial",
      `file:${results}/console.log`,
      "-append",
      `root=/dev/vda rw console=ttyS0 panic=-1 quiet ${params}${tuning()}`,
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

async function boot(
  flavour: Flavour,
  image: string,
  denoShare: string,
  scenarios: string[],
): Promise<Outcome[]> {
  const results = Deno.makeTempDirSync({ prefix: `joold-lab-${flavour}-` });
  const limitS = bench ? benchLimitS() : 180 + scenarios.length * 150;
  progress(
    `${flavour}: booting QEMU (${accel()[1]}), ${scenarios.length} scenarios, limit ${limitS}s`,
  );
  // ours-hostscraped: J's and K's endpoints reachable from here, scraped by this process.
  const scraped = bench && (values["bench-kinds"] ?? "").split(/[, ]+/).includes("ours-hostscraped")
    ? scrapeTargets()
    : [];
  const qemu = spawnQemu(
    image,
    results,
    denoShare,
    limitS,
    `joold.scenarios=${scenarios.join(",")}${demo ? " joold.demo=1" : ""}${
      bench ? ` joold.bench=1 ${benchArgs.join(" ")}` : ""
    }`,
    scraped.flatMap(scrapeNic),
  );
  const stderrText = new Response(qemu.stderr).text();
  // Stream the scenario results while the guest runs.
  const seen = new Set<string>();
  let done = false;
  const scraping = scraped.length > 0 ? hostScraper(results, scraped, () => done) : null;
  const watch = (async () => {
    const bootBy = Date.now() + BOOT_DEADLINE_S * 1000;
    while (!done) {
      await new Promise((r) => setTimeout(r, 1000));
      if (!done && Date.now() > bootBy && readLines(`${results}/guest.log`).length === 0) {
        // Never booted (e.g. a nested KVM that emulates every instruction): stop waiting.
        progress(`${flavour}: no sign of life after ${BOOT_DEADLINE_S}s, stopping QEMU`);
        try {
          qemu.kill("SIGTERM");
        } catch {
          // already gone
        }
        break;
      }
      for (const line of readLines(`${results}/scenarios.log`)) {
        if (seen.has(line)) continue;
        if (line.startsWith("RESULT ")) {
          seen.add(line);
          progress(`${flavour}: ${line.slice(7)}`);
        } else if (demo && line.startsWith("DEMO ")) {
          seen.add(line);
          console.log(line.slice(5));
        } else if (bench && line.startsWith("BENCH ")) {
          seen.add(line);
          console.log(`BENCH ${flavour} ${line.slice(6)}`);
        }
      }
    }
  })();
  const status = await qemu.status;
  done = true;
  await watch;
  await scraping;
  const qemuErr = (await stderrText).trim();
  const log = readLines(`${results}/scenarios.log`);
  const booted = readLines(`${results}/guest.log`).length > 0;
  const panic = emulatorPanic(readLines(`${results}/console.log`));
  const outcomes: Outcome[] = [];
  for (const name of scenarios) {
    const line = log.find((l) => l.startsWith(`RESULT ${name} `));
    if (line) {
      const [, , verdict, ...rest] = line.split(" ");
      const detail = verdict === "FAIL" ? excerpt(log, name) : rest.join(" ");
      outcomes.push({
        name,
        status: verdict === "PASS" ? "ok" : verdict === "SKIP" ? "SKIPPED" : "FAILED",
        detail,
      });
    } else if (!booted) {
      outcomes.push({
        name,
        status: "SKIPPED",
        panic,
        detail: panic
          ? `the ${flavour} guest kernel panicked while booting: ${panic}`
          : `the ${flavour} guest did not boot within ${BOOT_DEADLINE_S}s (QEMU exit ${status.code}${
            qemuErr ? `: ${qemuErr.split("\n")[0]}` : ""
          }); console: ${readLines(`${results}/console.log`).slice(-3).join(" | ")}`,
      });
    } else {
      outcomes.push({
        name,
        status: "FAILED",
        panic,
        detail: `no result: the guest stopped first${
          panic ? ` (its kernel panicked: ${panic})` : ""
        } (QEMU exit ${status.code}); log tail:\n${log.slice(-20).join("\n")}`,
      });
    }
  }
  for (const outcome of outcomes) checkExposition(outcome, `${results}/${outcome.name}.prom`);
  const keep = `${CACHE}/last-${flavour}`;
  try {
    Deno.removeSync(keep, { recursive: true });
  } catch {
    // first run
  }
  Deno.renameSync(results, keep);
  progress(`${flavour}: logs in ${keep}`);
  return outcomes;
}

/**
 * A scenario that scraped a daemon's metrics leaves the exposition as `<scenario>.prom` in its
 * results; the guest has no promtool, so the host's judges it (`promtool check metrics`, as
 * Prometheus's own linter). A passed scenario whose exposition promtool rejects has FAILED; without
 * promtool (`.ci/run` installs it) it is SKIPPED, never passed.
 */
function checkExposition(outcome: Outcome, file: string): void {
  try {
    Deno.statSync(file);
  } catch {
    return; // this scenario scraped nothing
  }
  if (outcome.status !== "ok") return;
  if (!has("promtool")) {
    outcome.status = "SKIPPED";
    outcome.detail = "promtool is not installed (Debian: prometheus or promtool): the scraped " +
      "exposition was not checked; everything else passed";
    return;
  }
  // promtool reads the exposition on stdin; --lint=none would hide what Prometheus warns about.
  const checked = sh("sh", ["-c", 'promtool check metrics < "$0"', file]);
  if (!checked.ok) {
    outcome.status = "FAILED";
    outcome.detail = `promtool check metrics rejects the scraped exposition (${file}): ${
      (checked.out + checked.err).trim().split("\n").slice(0, 5).join(" | ")
    }`;
  }
}

/** One side of the pair. */
interface PairGuest {
  /** Translator J (bookworm, Jool 4.1.9) or K (trixie, Jool 4.1.13). */
  readonly role: "J" | "K";
  readonly image: string;
  /** The sync NIC's MAC: how guest/upgrade.sh finds it. */
  readonly mac: string;
  readonly results: string;
}

/** Two free UDP ports on the host's loopback, for the two ends of the sync link (closed again). */
async function freeUdpPorts(): Promise<[number, number]> {
  const sockets = [dgram.createSocket("udp4"), dgram.createSocket("udp4")];
  const ports = await Promise.all(
    sockets.map((socket) =>
      new Promise<number>((resolve) =>
        socket.bind(0, "127.0.0.1", () => resolve(socket.address().port))
      )
    ),
  );
  // close() is asynchronous: QEMU must not find the port still bound.
  await Promise.all(sockets.map((socket) => new Promise<void>((r) => socket.close(() => r()))));
  return [ports[0], ports[1]];
}

/**
 * The sync link of one guest: a virtio NIC whose Ethernet frames QEMU sends as UDP datagrams from
 * `local` to `remote` on the host's loopback (`-netdev dgram`, QEMU 7.2+; `-netdev socket,udp=`
 * where dgram is missing). Nothing else of the host's network is involved.
 */
function syncNic(mac: string, local: number, remote: number): string[] {
  const dgramNetdev = sh("qemu-system-x86_64", ["-netdev", "help"]).out.includes("dgram");
  const netdev = dgramNetdev
    ? `dgram,id=sync,local.type=inet,local.host=127.0.0.1,local.port=${local},` +
      `remote.type=inet,remote.host=127.0.0.1,remote.port=${remote}`
    : `socket,id=sync,udp=127.0.0.1:${remote},localaddr=127.0.0.1:${local}`;
  return ["-netdev", netdev, "-device", `virtio-net-pci,netdev=sync,mac=${mac}`];
}

/** One translator whose metrics endpoint the host scrapes (bench kind ours-hostscraped). */
interface ScrapeTarget {
  /** J or K. */
  readonly ns: "J" | "K";
  /** The guest NIC's MAC (guest/bench.sh moves the card with it into the namespace). */
  readonly mac: string;
  /** The host port QEMU forwards to the namespace's 10.0.2.15:9477. */
  readonly port: number;
}

function scrapeTargets(): ScrapeTarget[] {
  return (["J", "K"] as const).map((ns, i) => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = listener.addr.port;
    listener.close();
    return { ns, mac: `52:54:00:6a:01:0${i + 1}`, port };
  });
}

/**
 * A user-mode network card whose only use is the host's scrapes: `restrict=on` (the guest reaches
 * nothing outside), one forwarded port from the host's loopback to the daemon's endpoint.
 */
function scrapeNic(t: ScrapeTarget): string[] {
  const id = `scrape${t.ns}`;
  return [
    "-netdev",
    `user,id=${id},restrict=on,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:${t.port}-10.0.2.15:9477`,
    "-device",
    `virtio-net-pci,netdev=${id},mac=${t.mac}`,
  ];
}

/**
 * Scrapes each target's /metrics every 100 ms, as Prometheus servers outside the translator would:
 * a new request every 100 ms whether the last one was answered or not (at most 10 in flight per
 * target; the daemon answers between its reactor's turns, up to 250 ms late under load). After
 * each good scrape (HTTP 200, the exposition's first counter in it) writes the target's count so
 * far to `results/host-scrapes-NS`, where the guest reads it (whole: a dot file, then a rename).
 * Between steps nothing listens: those scrapes fail and are not counted.
 */
async function hostScraper(
  results: string,
  targets: ScrapeTarget[],
  stop: () => boolean,
): Promise<void> {
  const good = targets.map(() => 0);
  const inFlight = targets.map(() => 0);
  const once = async (t: ScrapeTarget, i: number) => {
    inFlight[i]++;
    try {
      const response = await fetch(`http://127.0.0.1:${t.port}/metrics`, {
        signal: AbortSignal.timeout(5000),
      });
      const body = await response.text();
      if (!response.ok || !body.includes("joold_kernel_batches_received_total")) return;
      good[i]++;
      Deno.writeTextFileSync(`${results}/.host-scrapes-${t.ns}`, `${good[i]}\n`);
      Deno.renameSync(`${results}/.host-scrapes-${t.ns}`, `${results}/host-scrapes-${t.ns}`);
    } catch {
      // nothing listening yet (or any more): not a scrape
    } finally {
      inFlight[i]--;
    }
  };
  const pending = new Set<Promise<void>>();
  for (let next = Date.now(); !stop(); next += 100) {
    targets.forEach((t, i) => {
      if (inFlight[i] >= 10) return;
      const p = once(t, i);
      pending.add(p);
      p.finally(() => pending.delete(p));
    });
    await new Promise((r) => setTimeout(r, Math.max(0, next + 100 - Date.now())));
  }
  await Promise.all(pending);
}

/**
 * Copies every word a guest wrote to its results' out/ into the peer's in/ (whole: a copy under a
 * dot name, then a rename), once. This is how the two guests wait for each other (guest/upgrade.sh).
 */
function relayWords(from: string, to: string, relayed: Set<string>): void {
  let names: string[];
  try {
    names = [...Deno.readDirSync(`${from}/out`)].map((e) => e.name);
  } catch {
    return; // not booted yet
  }
  for (const name of names) {
    if (name.startsWith(".") || relayed.has(`${from}/${name}`)) continue;
    Deno.mkdirSync(`${to}/in`, { recursive: true });
    Deno.copyFileSync(`${from}/out/${name}`, `${to}/in/.${name}.relay`);
    Deno.renameSync(`${to}/in/.${name}.relay`, `${to}/in/${name}`);
    relayed.add(`${from}/${name}`);
  }
}

/**
 * The rolling upgrade: boots J (bookworm) and K (trixie) at once, joined by the sync link, relays
 * their words and reads each side's verdicts; a verdict passes when the guest that judges it says
 * PASS.
 */
async function bootPair(imageJ: string, imageK: string, denoShare: string): Promise<Outcome[]> {
  const [portJ, portK] = await freeUdpPorts();
  const guests: PairGuest[] = [
    { role: "J", image: imageJ, mac: "52:54:00:6a:00:09", results: "" },
    { role: "K", image: imageK, mac: "52:54:00:6a:00:0d", results: "" },
  ].map((g) => ({
    ...g,
    role: g.role as "J" | "K",
    results: Deno.makeTempDirSync({ prefix: `joold-lab-${PAIR}-${g.role}-` }),
  }));
  const limitS = 180 + PAIR_SCENARIOS.length * 150;
  progress(
    `${PAIR}: booting J (bookworm) and K (trixie) at once (${
      accel()[1]
    }), sync link 127.0.0.1:${portJ} <-> 127.0.0.1:${portK}, limit ${limitS}s`,
  );
  const qemus = guests.map((g, i) =>
    spawnQemu(
      g.image,
      g.results,
      denoShare,
      limitS,
      `joold.role=${g.role} joold.sync_mac=${g.mac}`,
      i === 0 ? syncNic(g.mac, portJ, portK) : syncNic(g.mac, portK, portJ),
    )
  );
  const stderrTexts = qemus.map((q) => new Response(q.stderr).text());
  const exited = qemus.map(() => false);
  qemus.forEach((q, i) => q.status.then(() => exited[i] = true));
  const aborted = new Set<number>();
  const seen = new Set<string>();
  const relayed = new Set<string>();
  let done = false;
  const watch = (async () => {
    const bootBy = Date.now() + BOOT_DEADLINE_S * 1000;
    while (!done) {
      await new Promise((r) => setTimeout(r, 300));
      relayWords(guests[0].results, guests[1].results, relayed);
      relayWords(guests[1].results, guests[0].results, relayed);
      // A guest gone before its "finished" (QEMU failed, or the guest died): its peer stops waiting.
      guests.forEach((g, i) => {
        const peer = guests[1 - i];
        if (!exited[i] || aborted.has(i) || readLines(`${g.results}/out/finished`).length > 0) {
          return;
        }
        aborted.add(i);
        Deno.mkdirSync(`${peer.results}/in`, { recursive: true });
        Deno.writeTextFileSync(`${peer.results}/in/.abort.relay`, `${g.role}'s QEMU exited\n`);
        Deno.renameSync(`${peer.results}/in/.abort.relay`, `${peer.results}/in/abort`);
        progress(`${PAIR}: ${g.role}'s QEMU exited before its part was done; told ${peer.role}`);
      });
      for (const g of guests) {
        for (const line of readLines(`${g.results}/scenarios.log`)) {
          if (!line.startsWith("RESULT ") || seen.has(`${g.role} ${line}`)) continue;
          seen.add(`${g.role} ${line}`);
          progress(`${PAIR} ${g.role}: ${line.slice(7)}`);
        }
      }
      const silent = guests.filter((g) => readLines(`${g.results}/guest.log`).length === 0);
      if (!done && Date.now() > bootBy && silent.length > 0) {
        progress(
          `${PAIR}: ${
            silent.map((g) => g.role).join(" and ")
          } showed no sign of life after ${BOOT_DEADLINE_S}s, stopping both`,
        );
        for (const q of qemus) {
          try {
            q.kill("SIGTERM");
          } catch {
            // already gone
          }
        }
        break;
      }
    }
  })();
  // A guest that ends first (its part failed) leaves its peer to notice the "abort" word.
  const statuses = await Promise.all(qemus.map((q) => q.status));
  done = true;
  await watch;
  const logs = guests.map((g) => readLines(`${g.results}/scenarios.log`));
  const outcomes: Outcome[] = [];
  for (const name of PAIR_SCENARIOS) {
    const judged = logs.flatMap((log, i) => {
      const line = log.find((l) => l.startsWith(`RESULT ${name} `));
      return line ? [{ log, line, role: guests[i].role }] : [];
    });
    const failed = judged.find((j) => j.line.split(" ")[2] !== "PASS");
    if (judged.length > 0 && failed === undefined) {
      outcomes.push({ name, status: "ok", detail: "" });
    } else if (failed) {
      outcomes.push({
        name,
        status: "FAILED",
        detail: `${failed.role}: ${excerpt(failed.log, name)}`,
      });
    } else {
      const booted = guests.every((g) => readLines(`${g.results}/guest.log`).length > 0);
      const qemuErr = (await Promise.all(stderrTexts)).map((t) => t.trim()).filter(Boolean);
      const tails = guests.map((g, i) =>
        `--- ${g.role} (QEMU exit ${statuses[i].code}):\n${logs[i].slice(-15).join("\n")}`
      );
      outcomes.push({
        name,
        status: booted ? "FAILED" : "SKIPPED",
        detail: booted
          ? `no verdict: a step before it failed or a guest stopped first${
            qemuErr.length ? ` (${qemuErr[0].split("\n")[0]})` : ""
          }\n${tails.join("\n")}`
          : `a guest of the pair did not boot (QEMU exit ${
            statuses.map((st, i) => `${guests[i].role} ${st.code}`).join(", ")
          }; boot deadline ${BOOT_DEADLINE_S}s)${
            qemuErr.length ? `: ${qemuErr[0].split("\n")[0]}` : ""
          }`,
      });
    }
  }
  const keep = `${CACHE}/last-${PAIR}`;
  try {
    Deno.removeSync(keep, { recursive: true });
  } catch {
    // first run
  }
  Deno.mkdirSync(keep, { recursive: true });
  for (const g of guests) Deno.renameSync(g.results, `${keep}/${g.role}`);
  progress(`${PAIR}: logs in ${keep}/J and ${keep}/K`);
  return outcomes;
}

/** Scenario tuning from the host's environment, passed on the guest's kernel command line. */
function tuning(): string {
  const params: [string, string][] = [
    ["JOOLD_LAB_SYNC_DEADLINE", "joold.sync_deadline"],
    ["JOOLD_LAB_FLUSH_DEADLINE_MS", "joold.flush_deadline_ms"],
    ["JOOLD_LAB_PAIR_DEADLINE", "joold.pair_deadline"],
  ];
  return params.flatMap(([env, param]) => {
    const value = Deno.env.get(env);
    return value && /^\d+$/.test(value) ? [` ${param}=${value}`] : [];
  }).join("");
}

function readLines(path: string): string[] {
  try {
    return Deno.readTextFileSync(path).split("\n");
  } catch {
    return [];
  }
}

function excerpt(log: string[], name: string): string {
  const start = log.findIndex((l) => l.includes(`=== ${name}`));
  const end = log.findIndex((l) => l.startsWith(`RESULT ${name} `));
  return log.slice(Math.max(start, 0), end + 1).slice(-40).join("\n");
}

const outcomes: Outcome[] = [];
const unavailable = labUnavailable();
if (demo && unavailable !== null) {
  console.error(`joold demo: ${unavailable}`);
  Deno.exit(1);
}
/**
 * The guests' builds, one after another in the flavours' order, from the start: while a guest runs
 * its scenarios (20-40 minutes, its two vCPUs busy about half of that time), the next flavours'
 * images build in the idle time (SCHED_IDLE), so that a fresh machine (CI's) waits for one build,
 * not three (~4.5 minutes each there). Two builds at once gained nothing (README, "Cost"): they run
 * in a row.
 */
const builds = new Map<Flavour, Promise<{ dir: string } | { skip: string }>>();
let lastBuild: Promise<unknown> = Promise.resolve();
function builtInOrder(flavour: Flavour): Promise<{ dir: string } | { skip: string }> {
  let build = builds.get(flavour);
  if (build === undefined) {
    build = lastBuild.then(() => buildImage(flavour));
    lastBuild = build.catch(() => {});
    builds.set(flavour, build);
  }
  return build;
}
if (unavailable === null && !demo) {
  for (const f of flavours) {
    if (f === PAIR) {
      if (buildOnly || pairScenarios.length === 0) continue;
      for (const side of ["bookworm", "trixie"] as const) void builtInOrder(side).catch(() => {});
    } else if (buildOnly || scenarios.length > 0) void builtInOrder(f).catch(() => {});
  }
}
let denoShare: string | null = null;
for (const flavour of flavours) {
  if (flavour === PAIR) {
    if (buildOnly || pairScenarios.length === 0) continue; // its guests are bookworm's and trixie's
    const started = Date.now();
    let skip = unavailable;
    const images: string[] = [];
    for (const side of ["bookworm", "trixie"] as const) {
      if (skip !== null) break;
      const built = await builtInOrder(side);
      if ("skip" in built) skip = built.skip;
      else images.push(built.dir);
    }
    if (skip !== null) {
      for (const name of pairScenarios) {
        outcomes.push({ name: `${PAIR} ${name}`, status: "SKIPPED", detail: skip });
      }
      continue;
    }
    denoShare ??= prepareDeno();
    for (const o of await bootPair(images[0], images[1], denoShare)) {
      if (pairScenarios.includes(o.name)) outcomes.push({ ...o, name: `${PAIR} ${o.name}` });
    }
    progress(`${PAIR}: ${Math.round((Date.now() - started) / 1000)}s for the pair`);
    continue;
  }
  if (scenarios.length === 0 && !buildOnly) continue; // only the pair's verdicts were asked for
  let skip = unavailable;
  let image: string | null = null;
  if (skip === null) {
    const built = await builtInOrder(flavour);
    if ("skip" in built) skip = built.skip;
    else image = built.dir;
  }
  if (buildOnly) {
    if (image !== null) console.log(`built ${flavour} ${image}`);
    else console.log(`SKIPPED ${flavour}: ${skip}`);
    continue;
  }
  if (skip !== null || image === null) {
    for (const name of scenariosFor(flavour)) {
      outcomes.push({ name: `${flavour} ${name}`, status: "SKIPPED", detail: skip ?? "no image" });
    }
    continue;
  }
  denoShare ??= prepareDeno();
  let got = await boot(flavour, image, denoShare, scenariosFor(flavour));
  // MTTCG's cross-modifying-code race (a static key's int3, seen at boot and mid-run on trixie):
  // boot again, up to PANIC_BOOTS more times, for the scenarios a panic took; a panic after that
  // is reported as it is.
  for (let again = 1; again <= PANIC_BOOTS; again++) {
    const lost = got.filter((o) => o.panic !== undefined);
    if (lost.length === 0) break;
    progress(
      `${flavour}: the guest kernel panicked outside Jool (${lost[0].panic}); booting again ` +
        `(${again} of ${PANIC_BOOTS}) for the ${lost.length} scenario(s) without a result ` +
        `(its logs: last-${flavour}-panicked-${again})`,
    );
    const kept = `${CACHE}/last-${flavour}-panicked-${again}`;
    try {
      Deno.removeSync(kept, { recursive: true });
    } catch {
      // no earlier panic kept
    }
    Deno.renameSync(`${CACHE}/last-${flavour}`, kept);
    const rerun = await boot(flavour, image, denoShare, lost.map((o) => o.name));
    got = got.map((o) => rerun.find((a) => a.name === o.name) ?? o);
  }
  for (const o of got) {
    outcomes.push({ ...o, name: `${flavour} ${o.name}` });
  }
}

if (buildOnly) Deno.exit(0);

if (demo) {
  const o = outcomes[0];
  if (o?.status !== "ok") console.error(`joold demo: ${o ? o.detail : "nothing ran"}`);
  Deno.exit(o?.status === "ok" ? 0 : 1);
}

for (const o of outcomes) {
  if (o.status === "ok") console.log(`ok ${o.name}`);
  else console.log(`${o.status} ${o.name}: ${o.detail}`);
}
const count = (s: Outcome["status"]) => outcomes.filter((o) => o.status === s).length;
console.log(`${count("ok")} passed, ${count("FAILED")} failed, ${count("SKIPPED")} skipped`);
Deno.exit(count("FAILED") > 0 ? 1 : 0);
