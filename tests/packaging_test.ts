import assert from "node:assert/strict";
import { libcPath } from "../ffi/libc.ts";
import { tempFiles, V8_FLAGS } from "./_cli.ts";

const ROOT = new URL("../", import.meta.url).pathname;

function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const r = new Deno.Command(cmd, {
    args,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

/** The install command of the README, with the configuration directory as a parameter. */
function install(root: string, configDir: string) {
  return run(Deno.execPath(), [
    "install",
    "-g",
    "-f",
    "--root",
    root,
    "-n",
    "joold",
    "--config",
    `${ROOT}deno.json`,
    `--allow-ffi=${libcPath()}`,
    `--allow-read=${configDir},/sys/module/jool/version`,
    `--v8-flags=${V8_FLAGS}`,
    `${ROOT}cli.ts`,
  ]);
}

Deno.test("deno install -g gives a joold command that works with the minimal permissions", () => {
  const config = tempFiles({
    "netsocket.json": `{"multicast address": "ff08::db8:64:64", "multicast port": "6464"}`,
  });
  const root = Deno.makeTempDirSync({ prefix: "joold-install-" });
  try {
    const installed = install(root, config);
    assert.equal(installed.code, 0, installed.stderr);
    // The shim runs the daemon with the V8 flag of the README (no optimizing-compiler pauses).
    assert.match(Deno.readTextFileSync(`${root}/bin/joold`), / --v8-flags=--no-turbofan /);
    const help = run(`${root}/bin/joold`, ["--help"]);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^NAME\n {4}joold/);
    const check = run(`${root}/bin/joold`, ["--check", `--net=${config}/netsocket.json`]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /net\.mcast\.addr: ff08::db8:64:64/);
    // Outside the granted directory, reading is refused with a clear line.
    const outside = run(`${root}/bin/joold`, ["--check", "--net=/etc/hostname"]);
    assert.equal(outside.code, 2);
    assert.match(outside.stderr, /not granted read access to this file: add it to --allow-read/);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

const hasAnalyze = run("sh", ["-c", "command -v systemd-analyze"]).code === 0;

Deno.test({
  name: `packaging/joold@.service passes systemd-analyze verify${
    hasAnalyze ? "" : " (skipped: systemd-analyze is not installed; apt-get install systemd)"
  }`,
  ignore: !hasAnalyze,
  fn() {
    const root = Deno.makeTempDirSync({ prefix: "joold-unit-" });
    try {
      const config = Deno.makeTempDirSync({ prefix: "joold-etc-" });
      assert.equal(install(root, config).code, 0);
      // The unit as shipped, pointed at this test's install instead of /usr/local/bin.
      const unit = Deno.readTextFileSync(`${ROOT}packaging/joold@.service`);
      assert.match(unit, /^ExecStart=\/usr\/local\/bin\/joold /m);
      assert.match(unit, /^AmbientCapabilities=CAP_NET_ADMIN$/m);
      assert.match(unit, /^CapabilityBoundingSet=CAP_NET_ADMIN$/m);
      assert.match(unit, /^RestrictAddressFamilies=AF_NETLINK AF_INET AF_INET6 AF_UNIX$/m);
      assert.match(unit, /^NoNewPrivileges=yes$/m);
      assert.match(unit, /^ProtectSystem=strict$/m);
      assert.match(unit, /^DynamicUser=yes$/m);
      const path = `${root}/joold@default.service`;
      Deno.writeTextFileSync(path, unit.replaceAll("/usr/local/bin/joold", `${root}/bin/joold`));
      const verify = run("systemd-analyze", ["verify", "--man=no", path]);
      assert.equal(verify.code, 0, verify.stderr);
      assert.equal(verify.stderr.trim(), "", verify.stderr);
      Deno.removeSync(config, { recursive: true });
    } finally {
      Deno.removeSync(root, { recursive: true });
    }
  },
});
