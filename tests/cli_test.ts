import assert from "node:assert/strict";
import { runCli, tempFiles } from "./_cli.ts";
import { VERSION } from "../lib/version.ts";

/** The C daemon's own sample files (joold(8)): "multicast port" as a string, "reuseaddr". */
const NET6 = `{
  "multicast address": "ff08::db8:64:64",
  "multicast port": "6464",
  "in interface": "eth0",
  "out interface": "eth0",
  "reuseaddr": 1,
  "ttl": 3
}`;
const NET4 = `{
  "multicast address": "233.252.0.64",
  "multicast port": "6464",
  "in interface": "192.0.2.1",
  "out interface": "192.0.2.1",
  "reuseaddr": 1,
  "ttl": 3
}`;
const MOD = `{ "instance": "default" }`;

const dir = tempFiles({
  "netsocket.json": NET6,
  "modsocket.json": MOD,
  "net4.json": NET4,
  "typo.json": `{ "instance": "default", "instanse": "x" }`,
  "broken.json": `{\n  "multicast address": "ff08::1"\n  "ttl": 3\n}`,
  "stats.json": `{ "address": "127.0.0.1", "port": 7001 }`,
  "ttl.json": `{ "multicast address": "ff08::1", "ttl": 300 }`,
});

const CONFIG6 = "Config:\n  mod.instance: default\n  net.mcast.addr: ff08::db8:64:64\n" +
  "  net.mcast.port: 6464\n  net.dev.in: eth0\n  net.dev.out: eth0\n  net.ttl: 3\n";

Deno.test("--help prints a man page with every flag, exit 0", async () => {
  const run = await runCli(["--help"], { cwd: dir });
  assert.equal(run.code, 0);
  assert.equal(run.stderr, "");
  for (
    const flag of [
      "--mod=FILE",
      "--instance=NAME",
      "--net=FILE",
      "--net.mcast.addr=ADDR",
      "--net.mcast.port=PORT",
      "--net.dev.in=DEV",
      "--net.dev.out=DEV",
      "--net.ttl=INT",
      "--stats=FILE",
      "--stats.addr=ADDR",
      "--stats.port=PORT",
      "--check",
      "--version",
      "--log-level=LEVEL",
      "NETSOCKET",
      "EXAMPLES",
      "(default 6400)",
      "(default 6401)",
    ]
  ) assert.ok(run.stdout.includes(flag), `help lacks ${flag}`);
});

Deno.test("--version prints the version, exit 0", async () => {
  const run = await runCli(["--version"], { cwd: dir });
  assert.deepEqual([run.code, run.stdout, run.stderr], [0, `joold ${VERSION}\n`, ""]);
});

Deno.test("--check with the legacy syntax prints the C daemon's Config: block", async () => {
  const run = await runCli(["netsocket.json", "modsocket.json", "6401", "--check"], { cwd: dir });
  assert.equal(run.stderr, "");
  assert.equal(run.stdout, CONFIG6 + "  stats.addr: ::\n  stats.port: 6401\n");
  assert.equal(run.code, 0);
});

Deno.test("--check with no argument at all reads netsocket.json and modsocket.json", async () => {
  const run = await runCli(["--check"], { cwd: dir });
  assert.deepEqual([run.code, run.stdout, run.stderr], [0, CONFIG6, ""]);
});

Deno.test("--check with the flag syntax: files, overrides and both value forms", async () => {
  const run = await runCli([
    "--check",
    "--net",
    "net4.json",
    "--mod=modsocket.json",
    "--net.ttl",
    "5",
    "--stats=stats.json",
    "--stats.port=7002",
  ], { cwd: dir });
  assert.equal(run.stderr, "");
  assert.equal(
    run.stdout,
    "Config:\n  mod.instance: default\n  net.mcast.addr: 233.252.0.64\n  net.mcast.port: 6464\n" +
      "  net.dev.in: 192.0.2.1\n  net.dev.out: 192.0.2.1\n  net.ttl: 5\n" +
      "  stats.addr: 127.0.0.1\n  stats.port: 7002\n",
  );
  assert.equal(run.code, 0);
});

Deno.test("--check accepts the docs' spellings --net.mcast.address and --stats.address", async () => {
  const run = await runCli(
    ["--check", "--net.mcast.address=ff08::db8:64:64", "--stats.address", "::1"],
    { cwd: dir },
  );
  assert.equal(run.code, 0);
  assert.match(run.stdout, /net\.mcast\.addr: ff08::db8:64:64\n/);
  assert.ok(run.stdout.endsWith("stats.addr: ::1\n  stats.port: 6401\n"), run.stdout);
});

Deno.test("without a multicast address the network is disabled and --check says so", async () => {
  const run = await runCli(["--check", "--instance=blue"], { cwd: dir });
  assert.equal(run.code, 0);
  assert.equal(
    run.stdout,
    "Config:\n  mod.instance: blue\n  net: disabled (no multicast address): sessions from the kernel are printed\n",
  );
});

Deno.test("an unknown key is a warning naming file and key, and does not stop joold", async () => {
  const run = await runCli(["--check", "--mod=typo.json"], { cwd: dir });
  assert.equal(run.code, 0);
  assert.equal(
    run.stderr,
    `joold: warn: typo.json: "instanse": unknown key, ignored (known keys: "instance")\n`,
  );
});

/** [arguments, expected stderr]: each must exit 2 with one line and print nothing on stdout. */
const BAD: [string[], string][] = [
  [
    ["--check", "--net=missing.json"],
    "joold: missing.json: no such file: check the path (relative paths start at the current directory)",
  ],
  [["--check", "--net=broken.json"], "joold: broken.json: JSON syntax error at 3:3: CommaExpected"],
  [["--check", "--net=ttl.json"], "joold: ttl.json: ttl: must be an integer 0-255, got number 300"],
  [
    ["--check", "--net.mcast.addr=10.0.0.1"],
    "joold: command line: --net.mcast.addr: 10.0.0.1 is not a multicast address: use one in 224.0.0.0/4 (IPv4) or ff00::/8 (IPv6), e.g. ff08::db8:64:64",
  ],
  [
    ["--check", "--net.mcast.addr=ff08::1", "--net.mcast.port=99999"],
    `joold: command line: --net.mcast.port: must be an integer 1-65535, got "99999"`,
  ],
  [
    ["--check", "--stats.port=0"],
    `joold: command line: --stats.port: must be an integer 1-65535, got "0"`,
  ],
  [
    ["--check", "--instance="],
    `joold: command line: --instance: must be a non-empty string, got ""`,
  ],
  [
    ["--check", "--net.mcast.addr"],
    "joold: command line: --net.mcast.addr: needs a value, e.g. --net.ttl=3 or --net.ttl 3",
  ],
  [["--check", "--bogus"], "joold: command line: --bogus: unknown option: see joold --help"],
  [
    ["--check", "netsocket.json", "modsocket.json", "http"],
    `joold: command line: --stats.port: must be an integer 1-65535, got "http"`,
  ],
  [
    ["--check", "net4.json", "modsocket.json", "--net.dev.in=eth0"],
    `joold: command line: --net.dev.in: the multicast group is IPv4, so this must be an IPv4 address of the interface, got "eth0"`,
  ],
];

for (const [args, stderr] of BAD) {
  Deno.test(`bad input ${JSON.stringify(args)} exits 2 with one clear line`, async () => {
    const run = await runCli(args, { cwd: dir });
    assert.deepEqual([run.code, run.stdout, run.stderr], [2, "", stderr + "\n"]);
  });
}

Deno.test("a file outside --allow-read is reported as a missing permission, exit 2", async () => {
  const run = await runCli(["--check", "--net=/etc/hostname"], { cwd: dir });
  assert.equal(run.code, 2);
  assert.equal(
    run.stderr,
    "joold: /etc/hostname: Deno's permissions do not let joold read this file: run it with " +
      "deno run --allow-read=/etc/hostname (the service reads only /etc/joold: keep its files there)\n",
  );
});

const isRoot = Deno.uid() === 0;
Deno.test({
  name: `an unreadable file (mode 000) is reported, exit 2${
    isRoot ? " (skipped: root reads any file; run the suite as a normal user to cover it)" : ""
  }`,
  ignore: isRoot,
}, async () => {
  const secret = `${dir}/secret.json`;
  Deno.writeTextFileSync(secret, MOD);
  Deno.chmodSync(secret, 0);
  const run = await runCli(["--check", `--mod=${secret}`], { cwd: dir });
  assert.equal(run.code, 2);
  assert.equal(
    run.stderr,
    `joold: ${secret}: permission denied: make the file readable by the user joold runs as\n`,
  );
});

Deno.test("a directory given as a file is reported, exit 2", async () => {
  const run = await runCli(["--check", `--mod=${dir}`], { cwd: dir });
  assert.deepEqual([run.code, run.stderr], [2, `joold: ${dir}: is a directory, not a JSON file\n`]);
});

const EXAMPLES = new URL("../examples/", import.meta.url).pathname;

Deno.test("the README's sample files (IPv4 and IPv6, both syntaxes) pass --check", async () => {
  const legacy = await runCli(
    ["--check", "netsocket-ipv4.json", "modsocket.json", "6401"],
    { cwd: EXAMPLES },
  );
  assert.equal(legacy.stderr, "");
  assert.equal(legacy.code, 0);
  assert.match(legacy.stdout, /net\.mcast\.addr: 233\.252\.0\.64\n/);
  const flags = await runCli(
    ["--check", "--net=netsocket-ipv6.json", "--mod=modsocket.json", "--stats=stats.json"],
    { cwd: EXAMPLES },
  );
  assert.equal(flags.stderr, "");
  assert.equal(flags.code, 0);
  assert.equal(flags.stdout, CONFIG6 + "  stats.addr: ::\n  stats.port: 6401\n");
});
