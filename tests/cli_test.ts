import assert from "node:assert/strict";
import { runCli, tempFiles } from "./_cli.ts";
import { VERSION } from "../lib/version.ts";
import { libcPath } from "../ffi/libc.ts";

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
  "typo.json": `{ "instance": "default", "colour": "x" }`,
  "broken.json": `{\n  "multicast address": "ff08::1"\n  "ttl": 3\n}`,
  "stats.json": `{ "address": "127.0.0.1", "port": 7001 }`,
  "ttl.json": `{ "multicast address": "ff08::1", "ttl": 300 }`,
});

const CONFIG6 = "Config:\n  mod.instance: default\n  net.mcast.addr: ff08::db8:64:64\n" +
  "  net.mcast.port: 6464\n  net.dev.in: eth0\n  net.dev.out: eth0\n  net.ttl: 3\n";

/** What --check says it did not check, run (as here) with --allow-read only. */
function notChecked(what: { net?: boolean; stats?: boolean; instance?: string } = {}): string {
  const { net = true, stats = false, instance = "default" } = what;
  const host = [net && "interfaces, local addresses, port names", stats && "stats address"]
    .filter((w) => w).join(", ");
  return `not checked (needs the kernel): Jool module loaded, instance "${instance}" exists, ss-enabled\n` +
    (host === "" ? "" : `not checked (needs --allow-ffi=${libcPath()}): ${host}\n`);
}

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
  assert.equal(
    run.stdout,
    CONFIG6 + "  stats.addr: ::\n  stats.port: 6401\n" + notChecked({ stats: true }),
  );
  assert.equal(run.code, 0);
});

Deno.test("--check with no argument at all reads netsocket.json and modsocket.json, and says so", async () => {
  const run = await runCli(["--check"], { cwd: dir });
  assert.deepEqual([run.code, run.stdout, run.stderr], [
    0,
    CONFIG6 + notChecked(),
    "joold: info: no configuration given: reading netsocket.json and modsocket.json from the current directory (the legacy syntax joold [NETSOCKET] [MODSOCKET] [PORT]; see joold --help for the others)\n",
  ]);
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
      "  stats.addr: 127.0.0.1\n  stats.port: 7002\n" + notChecked({ stats: true }),
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
  assert.ok(run.stdout.includes("stats.addr: ::1\n  stats.port: 6401\nnot checked"), run.stdout);
});

Deno.test("without a multicast address the network is disabled and --check says so", async () => {
  const run = await runCli(["--check", "--instance=blue"], { cwd: dir });
  assert.equal(run.code, 0);
  assert.equal(
    run.stdout,
    "Config:\n  mod.instance: blue\n  net: disabled (no multicast address): sessions from the kernel are printed\n" +
      notChecked({ net: false, instance: "blue" }),
  );
});

Deno.test("an unknown key is a warning naming file and key, and does not stop joold", async () => {
  const run = await runCli(["--check", "--mod=typo.json"], { cwd: dir });
  assert.equal(run.code, 0);
  assert.equal(
    run.stderr,
    `joold: warn: typo.json: "colour": unknown key, ignored (known keys: "instance")\n`,
  );
});

/** [arguments, expected stderr]: each must exit 2 with one line and print nothing on stdout. */
const BAD: [string[], string][] = [
  [
    ["--check", "--net=missing.json"],
    "joold: missing.json: no such file: check the path (relative paths start at the current directory)",
  ],
  [["--check", "--net=broken.json"], `joold: broken.json:3:3: expected "," between two entries`],
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
    "joold: command line: --net.mcast.addr: needs a value, e.g. --net.mcast.addr=ff08::db8:64:64 or --net.mcast.addr ff08::db8:64:64",
  ],
  [["--check", "--bogus"], "joold: command line: --bogus: unknown option: see joold --help"],
  [
    ["--check", "netsocket.json", "modsocket.json", "http"],
    `joold: command line: PORT (3rd argument): must be an integer 1-65535, got "http"`,
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
  assert.equal(
    flags.stdout,
    CONFIG6 + "  stats.addr: ::\n  stats.port: 6401\n" + notChecked({ stats: true }),
  );
});

// ---- issue 18: strict configuration, a complete --check, session proxy, messages, --help ----

const strict = tempFiles({
  "typo.json": `{ "multicast adress": "ff08::db8:64:64" }`,
  "nogroup.json": `{ "multicast port": "6464", "ttl": 3 }`,
  "dup.json": `{\n  "multicast address": "ff08::db8:64:64",\n  "ttl": 2,\n  "ttl": 3\n}`,
  "bom.json": `\uFEFF{ "instance": "default" }`,
  "empty.json": "",
  "quotes.json": `{ 'instance': 'default' }`,
  "eth9.json": `{ "multicast address": "ff08::db8:64:64", "in interface": "eth9" }`,
  "lo.json":
    `{ "multicast address": "ff08::db8:64:64", "in interface": "lo", "out interface": "lo" }`,
  "v4.json":
    `{ "multicast address": "233.252.0.64", "in interface": "127.0.0.1", "out interface": "198.51.100.77" }`,
  "abc.json": `{ "multicast address": "ff08::db8:64:64", "multicast port": "abc" }`,
  "http.json": `{ "multicast address": "ff08::db8:64:64", "multicast port": "http" }`,
  "domain.json": `{ "multicast address": "ff08::db8:64:64", "multicast port": "domain" }`,
  "modsocket.json": MOD,
});
const S = { cwd: strict };
/** The production permissions: --check then also checks interfaces, addresses and ports. */
const SFFI = { cwd: strict, permissions: [`--allow-read=${strict}`, `--allow-ffi=${libcPath()}`] };

/** [arguments, options, expected stderr]: each must exit 2 with that one line, stdout empty. */
const STRICT: [string[], typeof S, string][] = [
  // A typo must not silently disable the sync network.
  [
    ["--check", "--net", "typo.json"],
    S,
    `joold: typo.json: "multicast adress": unknown key: did you mean "multicast address"?`,
  ],
  [
    ["--net", "typo.json"],
    S,
    `joold: typo.json: "multicast adress": unknown key: did you mean "multicast address"?`,
  ],
  [
    ["--check", "nogroup.json", "modsocket.json"],
    S,
    `joold: nogroup.json: "multicast address" is not set: a network socket file needs the sync group, e.g. "multicast address": "ff08::db8:64:64", or the unicast peers, e.g. "peers": ["2001:db8:ff08::5"] (to print the kernel's sessions instead, give no network configuration at all)`,
  ],
  [
    ["--check", "--instance=blue", "--net.ttl=3"],
    S,
    "joold: command line: --net.ttl: needs the sync group --net.mcast.addr (e.g. --net.mcast.addr=ff08::db8:64:64) or unicast peers (--net.peer=ADDR); to print the kernel's sessions instead, give no network option at all",
  ],
  [
    ["--check", "--net.mcast.adress=ff08::1"],
    S,
    "joold: command line: --net.mcast.adress: unknown option; did you mean --net.mcast.address? (see joold --help)",
  ],
  [
    ["--check", "--mod=empty.json"],
    S,
    `joold: empty.json:1:1: the file is empty: expected a JSON object, e.g. { "instance": "default" }`,
  ],
  [
    ["--check", "--mod=quotes.json"],
    S,
    "joold: quotes.json:1:3: single quotes: JSON strings and keys take double quotes",
  ],
  // --check rejects what startup rejects, naming file and key.
  [
    ["--check", "--net=eth9.json"],
    SFFI,
    `joold: eth9.json: in interface: no interface named "eth9" in this network namespace (see ip link)`,
  ],
  [
    ["--check", "--net=v4.json"],
    SFFI,
    "joold: v4.json: out interface: 198.51.100.77 is not an address of any interface in this network namespace (see ip address)",
  ],
  [
    ["--check", "--net=abc.json"],
    SFFI,
    `joold: abc.json: multicast port: "abc" is not a UDP service of this system (see /etc/services; a name listed only for tcp does not count): use a port number 1-65535`,
  ],
  [
    ["--check", "--net=http.json"],
    SFFI,
    `joold: http.json: multicast port: "http" is not a UDP service of this system (see /etc/services; a name listed only for tcp does not count): use a port number 1-65535`,
  ],
  [
    ["--check", "--net.mcast.addr=ff08::1", "--stats.addr=192.0.2.250"],
    SFFI,
    "joold: command line: --stats.addr: 192.0.2.250 is not an address of any interface in this network namespace (see ip address)",
  ],
  // Messages name what the operator typed.
  [
    ["--check", "--instance"],
    S,
    "joold: command line: --instance: needs a value, e.g. --instance=default or --instance default",
  ],
  [
    ["--check", "session", "proxy", "ff08::1", "-p"],
    S,
    "joold: command line: -p: needs a value, e.g. -p 6400",
  ],
  [
    ["--check", "session", "proxy", "-t", "300", "ff08::1"],
    S,
    `joold: command line: -t: must be an integer 0-255, got "300"`,
  ],
  [
    ["--check", "session", "proxy", "ff08::1", "--stats.address=::", "--stats.addr=::1"],
    S,
    "joold: command line: --stats.address: is another spelling of --stats.addr; give only one of them",
  ],
  [
    ["--check", "session", "proxy", "192.0.2.1"],
    S,
    "joold: command line: GROUP (the argument of session proxy): 192.0.2.1 is not a multicast address: use one in 224.0.0.0/4 (IPv4) or ff00::/8 (IPv6), e.g. ff08::db8:64:64",
  ],
  [
    ["--check", "session", "proxy", "-i", "eth0"],
    S,
    "joold: command line: session proxy needs the multicast group, e.g. joold session proxy ff08::db8:64:64 (joold [-i INSTANCE] session proxy [-i DEV] [-o DEV] [-p PORT] [-t TTL] [--stats.address ADDR] [--stats.port PORT] GROUP)",
  ],
  [
    ["--check", "session", "proxy", "--net=lo.json", "ff08::1"],
    S,
    `joold: command line: --net: is not part of the session proxy syntax (joold [-i INSTANCE] session proxy [-i DEV] [-o DEV] [-p PORT] [-t TTL] [--stats.address ADDR] [--stats.port PORT] GROUP); use it in the flag syntax, without "session proxy" (see joold --help)`,
  ],
];

for (const [args, options, stderr] of STRICT) {
  Deno.test(`strict: ${JSON.stringify(args)} exits 2 with: ${stderr}`, async () => {
    const run = await runCli(args, options);
    assert.deepEqual([run.code, run.stdout, run.stderr], [2, "", stderr + "\n"]);
  });
}

Deno.test("a key given twice is a warning naming file and key; the first counts, as in the C daemon", async () => {
  const run = await runCli(["--check", "--net=dup.json"], S);
  assert.equal(run.code, 0);
  assert.equal(
    run.stderr,
    `joold: warn: dup.json: "ttl": given 2 times (at 3:3, 4:3): the first one is used, as by Jool's C daemon\n`,
  );
  assert.match(run.stdout, /\n {2}net\.ttl: 2\n/);
});

Deno.test("a UTF-8 byte order mark is accepted", async () => {
  const run = await runCli(["--check", "--mod=bom.json"], S);
  assert.deepEqual([run.code, run.stderr], [0, ""]);
  assert.match(run.stdout, /^Config:\n {2}mod\.instance: default\n/);
});

Deno.test("--check with --allow-ffi checks interfaces and ports, and names what needs the kernel", async () => {
  const v6 = await runCli(["--check", "--net=lo.json", "--stats.port=7001"], SFFI);
  assert.deepEqual([v6.code, v6.stderr], [0, ""]);
  assert.ok(
    v6.stdout.endsWith(
      "  stats.addr: ::\n  stats.port: 7001\n" +
        "checked: port 6400/udp, in interface lo exists, out interface lo exists, stats address :: is local\n" +
        `not checked (needs the kernel): Jool module loaded, instance "default" exists, ss-enabled\n` +
        "not checked (done at start): port 6400 free or shared (reuseaddr), stats port 7001 free\n",
    ),
    v6.stdout,
  );
  // A UDP service name resolves; an IPv4 group takes local addresses.
  const named = await runCli(["--check", "--net=domain.json"], SFFI);
  assert.deepEqual([named.code, named.stderr], [0, ""]);
  assert.match(named.stdout, /\nchecked: port domain\/udp\n/);
  const v4 = await runCli(
    ["--check", "--net.mcast.addr=233.252.0.64", "--net.dev.in=127.0.0.1"],
    SFFI,
  );
  assert.deepEqual([v4.code, v4.stderr], [0, ""]);
  assert.match(v4.stdout, /\nchecked: port 6400\/udp, in interface 127\.0\.0\.1 is local\n/);
});

Deno.test("startup rejects an unknown port name with the same line as --check, naming file and key, exit 1", async () => {
  const run = await runCli(["--net=abc.json"], SFFI);
  assert.equal(run.code, 1);
  assert.equal(
    run.stderr,
    `joold: error: abc.json: multicast port: "abc" is not a UDP service of this system (see /etc/services; a name listed only for tcp does not count): use a port number 1-65535\n`,
  );
  assert.doesNotMatch(run.stderr, /Servname|ai_socktype/);
  const eth9 = await runCli(["session", "proxy", "-i", "eth9", "ff08::1"], SFFI);
  assert.deepEqual([eth9.code, eth9.stderr], [
    1,
    `joold: error: command line: -i: no interface named "eth9" in this network namespace (see ip link)\n`,
  ]);
});

Deno.test("session proxy: Jool 4.1.13's command line, its defaults, -i before and after", async () => {
  const full = await runCli([
    "-i",
    "blue",
    "session",
    "proxy",
    "-i",
    "eth0",
    "-o",
    "eth1",
    "-p",
    "6464",
    "-t",
    "3",
    "--stats.address",
    "::1",
    "--stats.port=7000",
    "ff08::db8:64:64",
    "--check",
  ], S);
  assert.deepEqual([full.code, full.stderr], [0, ""]);
  assert.ok(
    full.stdout.startsWith(
      "Config:\n  mod.instance: blue\n  net.mcast.addr: ff08::db8:64:64\n  net.mcast.port: 6464\n" +
        "  net.dev.in: eth0\n  net.dev.out: eth1\n  net.ttl: 3\n  stats.addr: ::1\n  stats.port: 7000\n",
    ),
    full.stdout,
  );
  // The long names, and the defaults: port 6400, ttl 1, no stats server.
  const defaults = await runCli([
    "session",
    "proxy",
    "--net.dev.in=192.0.2.1",
    "233.252.0.64",
    "--check",
  ], S);
  assert.deepEqual([defaults.code, defaults.stderr], [0, ""]);
  assert.ok(
    defaults.stdout.startsWith(
      "Config:\n  mod.instance: default\n  net.mcast.addr: 233.252.0.64\n  net.mcast.port: 6400\n" +
        "  net.dev.in: 192.0.2.1\n  net.dev.out: (null)\n  net.ttl: 1\nnot checked",
    ),
    defaults.stdout,
  );
  // One stats option starts the stats server, on :: 6401 by default.
  const stats = await runCli(
    ["--check", "session", "proxy", "ff08::1", "--stats.address", "::"],
    S,
  );
  assert.equal(stats.code, 0, stats.stderr);
  assert.match(stats.stdout, /\n {2}stats\.addr: ::\n {2}stats\.port: 6401\n/);
  // --instance before "session" is the instance; -i after "proxy" the in interface.
  const instance = await runCli([
    "--instance=red",
    "session",
    "proxy",
    "-i",
    "lo",
    "ff08::1",
    "--check",
  ], S);
  assert.equal(instance.code, 0, instance.stderr);
  assert.match(instance.stdout, /mod\.instance: red\n.*\n.*\n {2}net\.dev\.in: lo\n/);
});

Deno.test("the legacy syntax chosen implicitly says so; a missing default file names the syntaxes", async () => {
  const empty = tempFiles({});
  const run = await runCli(["--enable-sync"], { cwd: empty });
  assert.deepEqual([run.code, run.stdout], [2, ""]);
  assert.equal(
    run.stderr,
    "joold: netsocket.json: no such file: with no configuration given, joold reads netsocket.json from the current directory (the legacy syntax); name the configuration instead: joold [NETSOCKET] [MODSOCKET] [PORT], joold --net=FILE --mod=FILE (or --net.mcast.addr=GROUP ...), or joold session proxy GROUP\n",
  );
  const onlyNet = tempFiles({ "net.json": NET6 });
  const explicit = await runCli(["--check", "net.json"], { cwd: onlyNet });
  assert.deepEqual([explicit.code, explicit.stderr], [
    2,
    "joold: modsocket.json: no such file: MODSOCKET (the 2nd argument) defaults to modsocket.json in the current directory; give it: joold [NETSOCKET] [MODSOCKET] [PORT]\n",
  ]);
});

Deno.test("--help has the stats reply, the session output, privileges, files, environment and the three syntaxes", async () => {
  const run = await runCli(["--help"], { cwd: dir });
  assert.equal(run.code, 0);
  for (
    const text of [
      "\nSTATS\n",
      "KERNEL_SENT_PKTS,12     JOOLD_ADD requests sent to the local kernel",
      "NET_RCVD_PKTS,12        datagrams received from the multicast group",
      "NET_SENT_PKTS,3         datagrams sent to the multicast group",
      "the batches it received FROM the\n    kernel",
      "\nSESSION OUTPUT\n",
      "PROTO,src6,port,src4,port,dst4,port,expiry",
      "\nPRIVILEGES\n",
      "CAP_NET_ADMIN",
      "--allow-ffi=",
      "\nFILES\n",
      "/etc/joold/",
      "netsocket.json ",
      "\nENVIRONMENT\n",
      "JOOLD_LIBC",
      "joold [NETSOCKET] [MODSOCKET] [PORT]",
      "joold [-i INSTANCE] session proxy [-i DEV] [-o DEV] [-p PORT] [-t TTL]",
      "\nSESSION PROXY SYNTAX\n",
      `"multicast address"   as --net.mcast.addr`,
    ]
  ) assert.ok(run.stdout.includes(text), `--help lacks ${JSON.stringify(text)}`);
  for (const line of run.stdout.split("\n")) assert.ok(line.length <= 100, line);
});
