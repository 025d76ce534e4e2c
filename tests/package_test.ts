import assert from "node:assert/strict";
import { runCli } from "./_cli.ts";
import { VERSION } from "../lib/version.ts";

const ROOT = new URL("../", import.meta.url).pathname;

Deno.test("VERSION matches deno.json's version", () => {
  const manifest = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));
  assert.equal(VERSION, manifest.version);
  assert.equal(manifest.name, "@joold/cli");
  assert.deepEqual(manifest.exports, { ".": "./mod.ts", "./cli": "./cli.ts" });
});

Deno.test("mod.ts run as the main module prints the same help as cli.ts", async () => {
  const viaCli = await runCli(["--help"]);
  const viaMod = await runCli(["--help"], { entry: "mod.ts" });
  assert.equal(viaCli.code, 0);
  assert.equal(viaMod.code, 0);
  assert.equal(viaMod.stdout, viaCli.stdout);
});

Deno.test("mod.ts run as the main module validates like cli.ts (exit 2 on bad input)", async () => {
  const run = await runCli(["--check", "--net.ttl=x", "--net.mcast.addr=ff08::1"], {
    entry: "mod.ts",
  });
  assert.deepEqual([run.code, run.stderr], [
    2,
    `joold: command line: --net.ttl: must be an integer 0-255, got "x"\n`,
  ]);
});

Deno.test("deno publish --dry-run passes with no warning", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty"],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  assert.equal(code, 0, out);
  assert.doesNotMatch(out, /warning/i, out);
});

Deno.test("deno doc --lint is clean for both entry points", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--lint", "mod.ts", "cli.ts"],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  assert.equal(code, 0, out);
});
