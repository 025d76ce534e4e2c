/**
 * The install procedure as documented: the README's install block run into a temporary root, then
 * the installed `joold` and the unit's own command run as an operator and as systemd would run
 * them (no network, a fresh environment, a non-root user with only CAP_NET_ADMIN, a terminal).
 * Needs root (the suite runs as root) and util-linux's unshare, setpriv and script.
 */
import assert from "node:assert/strict";
import { createCounters } from "../lib/counters.ts";
import { PEER_COUNTERS } from "../lib/metrics/exposition.ts";
import { FakeKernel } from "./_fake_kernel.ts";
import { reap } from "./_cli.ts";
import { Netns } from "./_netns.ts";
import { notifySocket } from "./systemd/_notify_socket.ts";
import { waitFor } from "./_udp.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const README = Deno.readTextFileSync(`${ROOT}README.md`);
const PACKAGING_README = Deno.readTextFileSync(`${ROOT}packaging/README.md`);
/**
 * `systemd-analyze security --offline=yes packaging/joold@.service` reached this (systemd 252).
 * AF_UNIX (Type=notify's one datagram to $NOTIFY_SOCKET) added 0.1 of weight to the open settings
 * below, which the score's rounding does not show; hence the exact list as well.
 */
const SECURITY_EXPOSURE_MAX = 1.6;
/** The settings systemd-analyze marks open (packaging/README.md says why each stays so). */
const SECURITY_OPEN = [
  "AmbientCapabilities=",
  "CapabilityBoundingSet=~CAP_NET_ADMIN",
  "DeviceAllow=",
  "IPAddressDeny=",
  "MemoryDenyWriteExecute=",
  "PrivateNetwork=",
  "PrivateUsers=",
  "RestrictAddressFamilies=~AF_(INET|INET6)",
  "RestrictAddressFamilies=~AF_NETLINK",
  "RestrictAddressFamilies=~AF_UNIX",
  "RootDirectory=/RootImage=",
];
/** A uid with no passwd entry, like the transient user of DynamicUser=yes. */
const SERVICE_UID = 61184;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; clearEnv?: boolean } = {},
): Run {
  const r = new Deno.Command(cmd, {
    args,
    cwd: options.cwd,
    clearEnv: options.clearEnv,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

function has(command: string): boolean {
  return run("sh", ["-c", `command -v ${command}`]).code === 0;
}

const missing = ["unshare", "setpriv", "script", "timeout", "git"].filter((t) => !has(t));
const isRoot = Deno.uid() === 0;
const skip = !isRoot
  ? " (skipped: needs root for unshare and setpriv)"
  : missing.length > 0
  ? ` (skipped: ${missing.join(", ")} missing; apt-get install util-linux bsdutils coreutils git)`
  : "";

/**
 * The install block of a Markdown file: the `sh` code block holding both `git clone` and
 * `systemctl enable --now`, one command per line, comments removed.
 */
function installBlock(markdown: string): string[] {
  const blocks = [...markdown.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
  const block = blocks.find((b) => b.includes("git clone") && b.includes("systemctl enable --now"));
  assert.ok(block, "no install block (git clone ... systemctl enable --now) in the file");
  return block.split("\n").map((line) => line.replace(/\s+#.*$/, "").trim()).filter((l) => l);
}

/** The first `sh` block after a heading, with continuation lines joined. */
function commandsAfter(markdown: string, heading: string): string[] {
  const at = markdown.indexOf(`${heading}\n`);
  assert.ok(at >= 0, `no "${heading}" section`);
  const block = markdown.slice(at).match(/```sh\n([\s\S]*?)```/);
  assert.ok(block, `no sh block under "${heading}"`);
  return block[1].replaceAll("\\\n", " ").split("\n").map((l) => l.replace(/\s+#.*$/, "").trim())
    .filter((l) => l);
}

interface Installed {
  /** The temporary root: /opt/joold, /usr/local/bin, /etc are under it. */
  root: string;
  /** An absolute path of the real system, moved under the temporary root. */
  at(path: string): string;
  /** The commands the test could not run (systemctl), as documented. */
  skipped: string[];
}

let installed: Installed | undefined;

/**
 * Runs the README's install block into a temporary root under /var/tmp (not /tmp: the unit's
 * private /tmp hides it). `git clone` is a copy of this checkout's files (its uncommitted edits
 * included), `npm install -g deno` and `systemctl` are not run.
 */
function install(): Installed {
  if (installed) return installed;
  const root = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "joold-install-" });
  Deno.chmodSync(root, 0o755); // the service's user must reach the checkout and /etc/joold
  globalThis.addEventListener("unload", () => Deno.removeSync(root, { recursive: true }));
  const at = (path: string) => `${root}${path}`;
  const moved = (line: string) =>
    line.replaceAll(/(^|[\s=])\/(opt|usr|etc)\//g, (_m, before, top) => `${before}${root}/${top}/`);
  Deno.mkdirSync(at("/usr/local/bin"), { recursive: true });
  Deno.mkdirSync(at("/etc/systemd/system"), { recursive: true });
  const script: string[] = [];
  const skipped: string[] = [];
  for (const line of installBlock(README)) {
    if (line.startsWith("npm install -g deno")) {
      skipped.push(line);
    } else if (line.startsWith("git clone ")) {
      const target = line.split(/\s+/).at(-1)!;
      assert.equal(target, "/opt/joold", "the checkout goes to /opt/joold");
      const files = run("git", ["-C", ROOT, "ls-files", "-co", "--exclude-standard"]).stdout
        .split("\n").filter((f) => f && exists(`${ROOT}${f}`));
      for (const file of files) {
        const to = `${at(target)}/${file}`;
        Deno.mkdirSync(to.slice(0, to.lastIndexOf("/")), { recursive: true });
        Deno.copyFileSync(`${ROOT}${file}`, to);
        Deno.chmodSync(to, Deno.statSync(`${ROOT}${file}`).mode! & 0o755);
      }
    } else if (line.startsWith("systemctl ") || line.includes("&& systemctl ")) {
      skipped.push(line);
    } else {
      script.push(moved(line));
      // The operator's edit the block asks for ("then set its interfaces"): this host's loopback.
      const copied = line.match(/^cp examples\/\S+ (\/etc\/joold\/\S+)$/);
      if (copied) script.push(`sed -i 's/"eth0"/"lo"/' ${at(copied[1])}`);
    }
  }
  const sh = run("sh", ["-ec", script.join("\n")], {
    cwd: root,
    env: { PATH: `${at("/usr/local/bin")}:${Deno.env.get("PATH")}` },
  });
  assert.equal(sh.code, 0, `the install block failed:\n${script.join("\n")}\n${sh.stderr}`);
  installed = { root, at, skipped };
  return installed;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The installed unit's ExecStart for an instance, its paths moved under the temporary root. */
function unitCommand(inst: Installed, instance: string): { argv: string[]; env: string[] } {
  const unit = Deno.readTextFileSync(inst.at("/etc/systemd/system/joold@.service"));
  const exec = unit.match(/^ExecStart=((?:.*\\\n)*.*)$/m);
  assert.ok(exec, "no ExecStart= in the unit");
  const argv = exec[1].replaceAll("\\\n", " ").trim().split(/\s+/)
    .filter((w) => w !== "$JOOLD_ARGS")
    .map((w) =>
      w.replaceAll("%i", instance).replaceAll(/(^|=)\/(opt|etc)\//g, `$1${inst.root}/$2/`)
    );
  const env = [...unit.matchAll(/^Environment=(.*)$/mg)].flatMap((m) => m[1].trim().split(/\s+/));
  return { argv, env };
}

/** `setpriv` arguments: the unit's user, capabilities and no-new-privileges. */
const AS_SERVICE = [
  `--reuid=${SERVICE_UID}`,
  `--regid=${SERVICE_UID}`,
  "--clear-groups",
  "--inh-caps=-all,+net_admin",
  "--ambient-caps=-all,+net_admin",
  "--bounding-set=-all,+net_admin",
  "--no-new-privs",
];

/**
 * Runs the unit's command as systemd would: no network (a new, empty network namespace), `/`
 * read-only and a private /tmp (ProtectSystem=strict, PrivateTmp), the unit's environment only,
 * the unit's user and capabilities.
 */
function runAsService(inst: Installed, extra: string[]): Run {
  const { argv, env } = unitCommand(inst, "default");
  return run("unshare", [
    "-n",
    "-m",
    "--propagation",
    "private",
    "sh",
    "-c",
    'mount -o remount,bind,ro / && mount -t tmpfs tmpfs /tmp && exec "$@"',
    "sh",
    "setpriv",
    ...AS_SERVICE,
    "env",
    "-i",
    "PATH=/usr/local/bin:/usr/bin:/bin",
    ...env,
    ...argv,
    ...extra,
  ]);
}

const NETSOCKET = `{ "multicast address": "ff08::db8:64:64", "multicast port": "6464",
  "in interface": "lo", "out interface": "lo", "reuseaddr": 1, "ttl": 3 }`;

Deno.test("the README and packaging/README.md give the same install procedure", () => {
  assert.deepEqual(installBlock(PACKAGING_README), installBlock(README));
  const lines = installBlock(README);
  // From the clone to the running service, the configuration file included.
  assert.ok(lines.some((l) => l.startsWith("git clone ") && l.endsWith(" /opt/joold")));
  assert.ok(lines.some((l) => /^cp examples\/\S+ \/etc\/joold\/default\/netsocket\.json$/.test(l)));
  assert.ok(lines.some((l) => l.includes("systemctl enable --now joold@default")));
  // What the README says of the unit's sandbox is what the unit has.
  const unit = Deno.readTextFileSync(`${ROOT}packaging/joold@.service`);
  const families = unit.match(/^RestrictAddressFamilies=.*$/m);
  assert.ok(families && README.includes(`\`${families[0]}\``), families?.[0]);
});

Deno.test({
  name: `the installed joold runs with no network, a fresh HOME and an empty DENO_DIR${skip}`,
  ignore: skip !== "",
  fn() {
    const inst = install();
    assert.ok(inst.skipped.some((l) => l.includes("systemctl enable --now joold@default")));
    const home = Deno.makeTempDirSync({ prefix: "joold-home-" });
    const denoDir = Deno.makeTempDirSync({ prefix: "joold-deno-dir-" });
    try {
      const env = ["PATH=/usr/bin:/bin", `HOME=${home}`, `DENO_DIR=${denoDir}`];
      const joold = inst.at("/usr/local/bin/joold");
      const version = run("unshare", ["-n", "env", "-i", ...env, joold, "--version"]);
      assert.deepEqual(version, { code: 0, stdout: "joold 0.1.0\n", stderr: "" });
      const net = inst.at("/etc/joold/default/netsocket.json");
      const check = run("unshare", ["-n", "env", "-i", ...env, joold, "--check", `--net=${net}`]);
      assert.equal(check.code, 0, check.stderr);
      assert.equal(check.stderr, "");
      assert.match(
        check.stdout,
        /^Config:\n {2}mod\.instance: default\n {2}net\.mcast\.addr: ff08::db8:64:64/,
      );
    } finally {
      Deno.removeSync(home, { recursive: true });
      Deno.removeSync(denoDir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `the unit's command, run as the unit runs it (non-root, CAP_NET_ADMIN only, no network, read-only /), validates and starts${skip}`,
  ignore: skip !== "",
  fn() {
    const inst = install();
    const unit = Deno.readTextFileSync(inst.at("/etc/systemd/system/joold@.service"));
    for (
      const line of [
        "DynamicUser=yes",
        "AmbientCapabilities=CAP_NET_ADMIN",
        "CapabilityBoundingSet=CAP_NET_ADMIN",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "RestartPreventExitStatus=2",
        "RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6",
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=30s",
      ]
    ) assert.ok(unit.split("\n").includes(line), `the unit lacks ${line}`);
    Deno.writeTextFileSync(inst.at("/etc/joold/default/netsocket.json"), NETSOCKET);
    const check = runAsService(inst, ["--check"]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /net\.dev\.in: lo/);
    // Started for real it gets as far as the kernel: this host has no Jool (exit 1, one line).
    const start = runAsService(inst, []);
    assert.equal(start.code, 1, start.stderr);
    assert.match(start.stderr, /^joold: info: joold \S+ starting: instance "default"/);
    assert.match(start.stderr, /joold: error: Jool's Generic Netlink family is missing/);
    assert.doesNotMatch(start.stderr, /Download|error sending request/);
    // A file outside /etc/joold is refused with the line that names the flag, exit 2 (no restart).
    const outside = runAsService(inst, ["--check", "--net=/etc/hostname"]);
    assert.deepEqual([outside.code, outside.stdout], [2, ""]);
    assert.match(
      outside.stderr,
      /^joold: \/etc\/hostname: Deno's permissions do not let joold read this file: run it with deno run --allow-read=\/etc\/hostname \(the service reads only \/etc\/joold/,
    );
  },
});

Deno.test({
  name:
    `as a non-root user, the installed joold reads a configuration in any directory (the man page's usage)${skip}`,
  ignore: skip !== "",
  fn() {
    const inst = install();
    const dir = Deno.makeTempDirSync({ prefix: "joold-cwd-" });
    try {
      Deno.chmodSync(dir, 0o755);
      Deno.writeTextFileSync(`${dir}/ipv6-netsocket.json`, NETSOCKET);
      Deno.writeTextFileSync(`${dir}/modsocket.json`, `{ "instance": "default" }`);
      const r = run("setpriv", [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "env",
        "-i",
        "PATH=/usr/bin:/bin",
        "HOME=/nonexistent",
        inst.at("/usr/local/bin/joold"),
        "--check",
        "ipv6-netsocket.json",
        "modsocket.json",
        "45678",
      ], { cwd: dir });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /\n {2}net\.dev\.in: lo\n[\s\S]*\n {2}stats\.port: 45678\n/);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    `the README's "Run it" works verbatim in a clone: --check, then the daemon stops at the missing module${skip}`,
  ignore: skip !== "",
  fn() {
    const checkout = install().at("/opt/joold");
    const commands = commandsAfter(README, "## Run it").filter((l) => l.startsWith("deno run "));
    assert.equal(commands.length, 2, commands.join("\n"));
    // In a namespace of its own (only lo, no network): the commands depend on neither.
    const [check, start] = commands.map((c) =>
      run("unshare", ["-n", "sh", "-c", c], { cwd: checkout })
    );
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /^Config:\n[\s\S]*\n {2}stats\.port: 6401\n/);
    // This host has no Jool: the README says what happens then.
    assert.equal(start.code, 1, start.stderr);
    assert.match(
      start.stderr,
      /\njoold: error: Jool's Generic Netlink family is missing: is the module loaded\? \(modprobe jool\)/,
    );
    assert.ok(README.includes("joold: error: Jool's Generic Netlink family is missing"));
  },
});

/** Runs a shell command line on a pseudo-terminal; a prompt would wait, so a time limit. */
function onTerminal(commandLine: string, cwd: string): Run {
  return run("timeout", ["30", "script", "-qec", commandLine, "/dev/null"], { cwd });
}

function assertNoPrompt(r: Run, what: string): void {
  assert.notEqual(r.code, 124, `${what} waited (a prompt?):\n${r.stdout}`);
  assert.doesNotMatch(r.stdout, /Deno requests|Allow\?/, what);
}

Deno.test({
  name: `on a terminal no documented command prompts for a permission${skip}`,
  ignore: skip !== "",
  fn() {
    const inst = install();
    // The README's "Run it", asked for a file outside its --allow-read.
    const [check] = commandsAfter(README, "## Run it").filter((l) => l.includes(" --check "));
    assert.ok(check, "no --check command in Run it");
    const denied = check.replace("examples/netsocket-ipv6.json", "/etc/hostname");
    assert.notEqual(denied, check);
    const runIt = onTerminal(denied, `${inst.at("/opt/joold")}`);
    assertNoPrompt(runIt, "Run it");
    assert.match(runIt.stdout, /joold: \/etc\/hostname: Deno's permissions do not let joold read/);
    assert.equal(runIt.code, 2);
    // The README's own Run it, as written, works from the checkout.
    const asWritten = onTerminal(check, inst.at("/opt/joold"));
    assertNoPrompt(asWritten, "Run it as written");
    assert.equal(asWritten.code, 0, asWritten.stdout);
    // The unit's command, on a terminal, asked for a file outside /etc/joold.
    const { argv } = unitCommand(inst, "default");
    const unit = onTerminal([...argv, "--check", "--net=/etc/hostname"].join(" "), "/");
    assertNoPrompt(unit, "the unit's command");
    assert.equal(unit.code, 2);
    // The installed joold (it reads any file, so nothing to deny): it passes --no-prompt too.
    const joold = inst.at("/usr/local/bin/joold");
    assert.match(Deno.readTextFileSync(joold), /deno run --no-prompt /);
    const version = onTerminal(`${joold} --version`, "/");
    assertNoPrompt(version, "joold --version");
    assert.match(version.stdout, /^joold \S+\r?\n$/);
  },
});

const hasAnalyze = has("systemd-analyze");
const noAnalyze = hasAnalyze
  ? ""
  : " (skipped: systemd-analyze is not installed; apt-get install systemd)";

Deno.test({
  name: `the installed unit passes systemd-analyze verify${hasAnalyze ? skip : noAnalyze}`,
  ignore: !hasAnalyze || skip !== "",
  fn() {
    const inst = install();
    // systemd-analyze checks that the command exists: the unit with its paths in the test's root.
    const unit = Deno.readTextFileSync(inst.at("/etc/systemd/system/joold@.service"))
      .replaceAll("/opt/joold/", inst.at("/opt/joold/"));
    const path = `${inst.root}/joold@default.service`;
    Deno.writeTextFileSync(path, unit);
    const verify = run("systemd-analyze", ["verify", "--man=no", path]);
    assert.equal(verify.code, 0, verify.stderr);
    assert.equal(verify.stderr.trim(), "", verify.stderr);
  },
});

Deno.test({
  name: `systemd-analyze security rates the unit at most ${SECURITY_EXPOSURE_MAX}${noAnalyze}`,
  ignore: !hasAnalyze,
  fn() {
    const r = run("systemd-analyze", [
      "security",
      "--offline=yes",
      "--no-pager",
      `${ROOT}packaging/joold@.service`,
    ]);
    const level = r.stdout.match(/Overall exposure level for \S+: (\d+\.\d)/);
    assert.ok(level, r.stdout + r.stderr);
    assert.ok(
      Number(level[1]) <= SECURITY_EXPOSURE_MAX,
      `exposure ${level[1]} > ${SECURITY_EXPOSURE_MAX}:\n${r.stdout}`,
    );
    // packaging/README.md states the same number.
    assert.match(PACKAGING_README, new RegExp(`\\*\\*${SECURITY_EXPOSURE_MAX}\\*\\*`));
    // No setting opened beyond these (the rounded score would hide one of weight 0.1), and each is
    // in packaging/README.md's table of what stays exposed.
    const open = [...r.stdout.matchAll(/^✗ (\S+)/mg)].map((m) => m[1]).sort();
    assert.deepEqual(open, SECURITY_OPEN, r.stdout);
    for (const setting of SECURITY_OPEN) {
      assert.ok(
        PACKAGING_README.includes(`| \`${setting.replaceAll("|", "\\|")}\``),
        `packaging/README.md does not say why ${setting} stays`,
      );
    }
  },
});

/**
 * A seccomp filter built as systemd builds the unit's (SystemCallFilter= lines, the calls systemd
 * always allows, SystemCallErrorNumber=, RestrictAddressFamilies=), the groups expanded by this
 * host's `systemd-analyze syscall-filter`, loaded with libseccomp's Python binding; then it execs
 * the command.
 */
const SECCOMP_HARNESS = String.raw`
import errno, functools, json, os, socket, subprocess, sys, seccomp
unit = json.loads(sys.argv[1])
@functools.lru_cache(None)
def expand(name):
    if not name.startswith("@"): return frozenset([name])
    out = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True, text=True, check=True).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        line = line.strip()
        if line and not line.startswith("#"): calls |= expand(line)
    return frozenset(calls)
allowed = {"execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn", "clock_gettime",
           "gettimeofday", "time", "nanosleep", "clock_nanosleep", "clock_getres"}
for line in unit["filters"]:
    deny = line.startswith("~")
    names = set().union(*(expand(n) for n in line.lstrip("~").split()))
    allowed = allowed - names if deny else allowed | names
default = seccomp.ERRNO(getattr(errno, unit["errno"])) if unit["errno"] else seccomp.KILL_PROCESS
f = seccomp.SyscallFilter(default)
for name in sorted(allowed - {"socket"}):
    try: f.add_rule(seccomp.ALLOW, name)
    except (RuntimeError, ValueError): pass  # not a call of this architecture
families = unit["families"]
for fam in families: f.add_rule(seccomp.ALLOW, "socket", seccomp.Arg(0, seccomp.EQ, getattr(socket, fam)))
if "socket" in allowed:
    for fam in range(1, 46):
        if fam not in [getattr(socket, x) for x in families]:
            f.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.EQ, fam))
f.load()
os.execvp(sys.argv[2], sys.argv[2:])
`;

const hasSeccomp = run("/usr/bin/python3", ["-c", "import seccomp"]).code === 0;
const noSeccomp = hasSeccomp
  ? ""
  : " (skipped: no libseccomp for Python; apt-get install python3-seccomp)";

Deno.test({
  name:
    `the unit's system call filter and address families let the daemon start (seccomp as systemd builds it)${
      skip || noAnalyze || noSeccomp
    }`,
  ignore: skip !== "" || !hasAnalyze || !hasSeccomp,
  async fn() {
    const inst = install();
    const unit = Deno.readTextFileSync(inst.at("/etc/systemd/system/joold@.service"));
    const values = (key: string) =>
      [...unit.matchAll(new RegExp(`^${key}=(.*)$`, "mg"))].map((m) => m[1].trim());
    const sandbox = JSON.stringify({
      filters: values("SystemCallFilter"),
      errno: values("SystemCallErrorNumber").at(-1) ?? "",
      families: values("RestrictAddressFamilies").flatMap((v) => v.split(/\s+/)),
    });
    const harness = `${inst.root}/systemd_sandbox.py`; // not seccomp.py: it would shadow the module
    Deno.writeTextFileSync(harness, SECCOMP_HARNESS);
    Deno.writeTextFileSync(inst.at("/etc/joold/default/netsocket.json"), NETSOCKET);
    const { argv, env } = unitCommand(inst, "default");
    const confined = (extra: string[]) =>
      run("unshare", [
        "-n",
        "setpriv",
        ...AS_SERVICE,
        "env",
        "-i",
        "PATH=/usr/local/bin:/usr/bin:/bin",
        ...env.map((e) => e.startsWith("DENO_DIR=") ? `DENO_DIR=${inst.root}/no-deno-dir` : e),
        "/usr/bin/python3",
        harness,
        sandbox,
        ...argv,
        ...extra,
      ]);
    const check = confined(["--check"]);
    assert.equal(check.code, 0, `exit ${check.code} (159: killed by SIGSYS)\n${check.stderr}`);
    const start = confined([]);
    assert.equal(start.code, 1, `exit ${start.code} (159: killed by SIGSYS)\n${start.stderr}`);
    assert.match(start.stderr, /joold: error: Jool's Generic Netlink family is missing/);
    // Against a fake Jool in a namespace of its own, under systemd's notification protocol: the
    // filter lets the sync socket, the unix socket and the watchdog's timer through.
    await notifyingUnderFilter(inst, harness, sandbox, argv, env);
  },
});

/**
 * Runs the unit's command under the seccomp harness against a fake kernel (the command's
 * `--allow-env` extended by the test seam only) with `$NOTIFY_SOCKET` and a 400 ms watchdog, and
 * reads READY=1, WATCHDOG=1 and, after SIGTERM, STOPPING=1.
 */
async function notifyingUnderFilter(
  inst: Installed,
  harness: string,
  sandbox: string,
  argv: string[],
  env: string[],
): Promise<void> {
  const ns = new Netns("unit");
  const kernel = ns.enter(() => new FakeKernel("4.1.13"));
  const server = kernel.start();
  const path = `${inst.root}/notify-${crypto.randomUUID()}`;
  const systemd = notifySocket(path);
  Deno.chmodSync(path, 0o666); // systemd's socket is writable by the service's user
  const allowEnv = argv.findIndex((a) => a.startsWith("--allow-env="));
  assert.equal(argv[allowEnv], "--allow-env=NOTIFY_SOCKET,WATCHDOG_USEC,WATCHDOG_PID");
  const seamed = argv.with(allowEnv, `${argv[allowEnv]},JOOLD_TEST_NETLINK_PEER`);
  const child = new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      ns.name,
      "setpriv",
      ...AS_SERVICE,
      "env",
      "-i",
      "PATH=/usr/local/bin:/usr/bin:/bin",
      ...env.map((e) => e.startsWith("DENO_DIR=") ? `DENO_DIR=${inst.root}/no-deno-dir` : e),
      `NOTIFY_SOCKET=${path}`,
      "WATCHDOG_USEC=400000",
      `JOOLD_TEST_NETLINK_PEER=${kernel.portId}`,
      "/usr/bin/python3",
      harness,
      sandbox,
      ...seamed,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const out = { stderr: "" };
  const pump = (async () => {
    for await (const c of child.stderr.pipeThrough(new TextDecoderStream())) out.stderr += c;
  })();
  try {
    const ready = () => systemd.drain().some((m) => m.startsWith("READY=1\n"));
    const pings = () => systemd.drain().filter((m) => m.startsWith("WATCHDOG=1")).length >= 2;
    await waitFor(ready, "READY=1", 20_000).then(() => waitFor(pings, "two watchdog pings"))
      .catch((error) => {
        throw new Error(`${error.message}; the daemon's stderr:\n${out.stderr}`);
      });
    await waitFor(() => out.stderr.includes("joold: info: ready\n"), "the ready line");
    child.kill("SIGTERM");
    const { code } = await child.status;
    await pump;
    assert.equal(code, 0, `exit ${code} (159: killed by SIGSYS)\n${out.stderr}`);
    assert.equal(systemd.drain().at(-1), "STOPPING=1\nSTATUS=stopping");
  } finally {
    await reap(child, server, kernel);
    systemd.close();
    ns.dispose();
  }
}

// The monitoring files: packaging/prometheus/ (alerting rules and their promtool tests) and
// packaging/grafana/ (the dashboard).
const RULES = `${ROOT}packaging/prometheus/joold-alerts.yml`;
const RULES_TEST = `${ROOT}packaging/prometheus/joold-alerts_test.yml`;
const DASHBOARD = `${ROOT}packaging/grafana/joold-dashboard.json`;
const hasPromtool = has("promtool");
const noPromtool = hasPromtool
  ? ""
  : " (skipped: promtool is not installed; apt-get install prometheus)";

/** Jool's JSTAT_JOOLD_* counters (the kernel's own), exported as jool_joold_<name lowercased>_total. */
const JSTAT_JOOLD = [
  "EMPTY",
  "TIMEOUT",
  "MISSING_ACK",
  "AD_ONGOING",
  "PKT_FULL",
  "QUEUING",
  "SSS_QUEUED",
  "SSS_SENT",
  "SSS_RCVD",
  "SSS_ENOSPC",
  "PKT_SENT",
  "PKT_RCVD",
  "ADS",
  "ACKS",
];

/**
 * The metric names of the exporter: lib/counters.ts's, the latency histogram's, the unicast
 * peers', the kernel's.
 */
function exportedMetrics(): Set<string> {
  const counters = Object.keys(createCounters()).map((name) =>
    `joold_${name.replaceAll(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}_total`
  );
  const histogram = ["bucket", "sum", "count"].map((s) => `joold_kernel_ack_latency_seconds_${s}`);
  const kernel = JSTAT_JOOLD.map((name) => `jool_joold_${name.toLowerCase()}_total`);
  const peers = PEER_COUNTERS.map(([name]) => name);
  return new Set([...counters, ...histogram, ...peers, ...kernel, "up"]);
}

/** The metric names a PromQL expression reads: its identifiers, less functions, keywords, labels. */
function metricsIn(expr: string): string[] {
  const bare = expr.replaceAll(/\{[^}]*\}|\[[^\]]*\]|"[^"]*"/g, "")
    .replaceAll(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "");
  return [...bare.matchAll(/\b([a-z_][a-z0-9_:]*)\b(?!\s*\()/g)].map((m) => m[1])
    .filter((name) => !["and", "or", "unless", "bool", "group_left", "group_right"].includes(name));
}

/** The dashboard's PromQL expressions, with Grafana's variables filled in as Grafana would. */
function dashboardExpressions(): { title: string; expr: string }[] {
  const dashboard = JSON.parse(Deno.readTextFileSync(DASHBOARD));
  return dashboard.panels.flatMap((p: { title: string; targets?: { expr: string }[] }) =>
    (p.targets ?? []).map((t) => ({
      title: p.title,
      expr: t.expr.replaceAll("$__rate_interval", "5m").replaceAll("$instance", ".*"),
    }))
  );
}

Deno.test({
  name: `promtool: the alerting rules are valid and their unit tests pass${noPromtool}`,
  ignore: !hasPromtool,
  fn() {
    const check = run("promtool", ["check", "rules", RULES]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    const rules = Deno.readTextFileSync(RULES);
    const alerts = [...rules.matchAll(/^ {6}- alert: (\w+)$/mg)].map((m) => m[1]);
    assert.match(check.stdout, new RegExp(`SUCCESS: ${alerts.length} rules found`));
    const test = run("promtool", ["test", "rules", RULES_TEST]);
    assert.equal(test.code, 0, test.stdout + test.stderr);
    assert.match(test.stdout, /SUCCESS/);
    // Every alert has a case where it fires and one where it must not.
    const cases = Deno.readTextFileSync(RULES_TEST);
    for (const alert of alerts) {
      const seen = [...cases.matchAll(/alertname: (\w+)\n\s+exp_alerts:( \[\])?/g)]
        .filter((m) => m[1] === alert).map((m) => m[2] ? "silent" : "fires");
      assert.ok(seen.includes("fires") && seen.includes("silent"), `${alert}: ${seen}`);
    }
    // The secure-sync alerts say they need it, in a group of their own.
    const secure = rules.slice(rules.indexOf("- name: joold-secure-sync"));
    for (const alert of ["JooldSecureSyncAuthFailures", "JooldSecureSyncReplays"]) {
      assert.ok(secure.includes(`- alert: ${alert}`), alert);
    }
    assert.equal(
      [...secure.matchAll(/- alert: /g)].length,
      [...secure.matchAll(/needs: secure-sync/g)].length,
    );
  },
});

Deno.test("the alerting rules and the dashboard read only the exporter's metric names", () => {
  const known = exportedMetrics();
  const rules = Deno.readTextFileSync(RULES);
  const exprs = [...rules.matchAll(/expr: >-\n((?:\s{10}.*\n)+)|expr: (.*)\n/g)]
    .map((m) => (m[1] ?? m[2]).trim());
  assert.ok(exprs.length >= 9, `${exprs.length} expressions`);
  for (const expr of exprs) {
    for (const name of metricsIn(expr)) assert.ok(known.has(name), `rules: ${name} in ${expr}`);
  }
  const panels = dashboardExpressions();
  for (const { title, expr } of panels) {
    for (const name of metricsIn(expr)) assert.ok(known.has(name), `${title}: ${name} in ${expr}`);
  }
  // The panels issue 16 asks for.
  const all = panels.map((p) => p.expr).join("\n");
  for (
    const name of [
      "joold_net_datagrams_sent_total",
      "joold_net_datagrams_received_total",
      "joold_kernel_ack_latency_seconds_bucket",
      "jool_joold_sss_enospc_total",
      "joold_kernel_refusals_total",
      "joold_net_malformed_datagrams_total",
      "joold_net_foreign_format_datagrams_total",
      "joold_net_send_errors_total",
      "joold_peer_datagrams_sent_total",
      "joold_peer_send_errors_total",
    ]
  ) assert.ok(all.includes(name), `no panel reads ${name}`);
  // The unicast peers' rates, one series per peer.
  assert.ok(
    panels.some((p) =>
      p.title === "Per-peer datagrams" &&
      p.expr.startsWith("rate(joold_peer_datagrams_sent_total{")
    ),
    "a per-peer datagrams panel",
  );
  assert.match(all, /histogram_quantile\(0\.5, /);
  assert.match(all, /histogram_quantile\(0\.99, /);
  const dashboard = JSON.parse(Deno.readTextFileSync(DASHBOARD));
  const heatmap = dashboard.panels.find((p: { type: string }) => p.type === "heatmap");
  assert.equal(heatmap?.targets[0].format, "heatmap");
});

Deno.test({
  name: `promtool parses every query of the dashboard${noPromtool}`,
  ignore: !hasPromtool,
  fn() {
    const dir = Deno.makeTempDirSync({ prefix: "joold-dashboard-" });
    try {
      // As recording rules: promtool parses each expression as Prometheus would.
      const rules = dashboardExpressions().map(({ expr }, i) =>
        `      - record: joold:dashboard_query_${i}\n        expr: ${JSON.stringify(expr)}\n`
      );
      Deno.writeTextFileSync(
        `${dir}/dashboard.yml`,
        `groups:\n  - name: dashboard\n    rules:\n${rules.join("")}`,
      );
      const check = run("promtool", ["check", "rules", `${dir}/dashboard.yml`]);
      assert.equal(check.code, 0, check.stdout + check.stderr);
      assert.match(check.stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
