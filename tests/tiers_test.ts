/**
 * V8's flags without a flag in the run command (lib/tiers.ts): the decision, and the real daemon
 * process re-executing itself in place (same pid, same command line) with DENO_V8_FLAGS.
 */
import assert from "node:assert/strict";
import { decideTiers, JOOLD_V8_FLAGS, V8_FLAGS_VARIABLE } from "../lib/tiers.ts";
import { printDaemon } from "./_cli.ts";

Deno.test("tiers: re-execute without V8 flags; never over the operator's flags or a second time", () => {
  const run = ["deno", "run", "--allow-ffi=/lib/x86_64-linux-gnu/libc.so.6", "cli.ts", "n.json"];
  assert.deepEqual(decideTiers(run, null), { reexec: true });
  // Our own re-execution sets the variable: it is the loop's end.
  assert.deepEqual(decideTiers(run, JOOLD_V8_FLAGS), {
    reexec: false,
    why: `${V8_FLAGS_VARIABLE} is set`,
  });
  assert.equal(decideTiers(run, "").reexec, false, "even empty: the operator set it");
  for (const flag of [["--v8-flags=--turbofan"], ["--v8-flags", "--max-old-space-size=64"]]) {
    assert.deepEqual(decideTiers([...run.slice(0, 2), ...flag, ...run.slice(2)], null), {
      reexec: false,
      why: "the command line has --v8-flags",
    });
  }
  assert.equal(decideTiers([], null).reexec, false);
});

/** The NUL-separated text of /proc/PID/FILE. */
const proc = (pid: number, file: string) =>
  Deno.readTextFileSync(`/proc/${pid}/${file}`).split("\0").filter((s) => s !== "");

const isRoot = Deno.uid() === 0;

for (const operator of [null, "--v8-flags=--max-old-space-size=96"]) {
  Deno.test({
    name: operator === null
      ? "the daemon started without V8 flags runs with DENO_V8_FLAGS=--no-turbofan: same pid, same command line"
      : "the daemon started with the operator's --v8-flags keeps them and is not re-executed",
    ignore: !isRoot,
    async fn() {
      const run = await printDaemon(undefined, {
        args: ["--log-level=debug"],
        permissions: operator === null ? [] : [operator],
      });
      try {
        const { child, out } = run;
        const environ = proc(child.pid, "environ");
        const cmdline = proc(child.pid, "cmdline");
        if (operator === null) {
          assert.ok(!cmdline.some((a) => a.startsWith("--v8-flags")), cmdline.join(" "));
          assert.ok(environ.includes(`DENO_V8_FLAGS=${JOOLD_V8_FLAGS}`), "the flag is V8's");
          // The process that said ready is the one spawned (execv, not a child).
          assert.match(out.stderr, /V8 flags: DENO_V8_FLAGS is set/);
        } else {
          assert.ok(!environ.some((e) => e.startsWith("DENO_V8_FLAGS=")));
          assert.ok(cmdline.includes(operator));
          assert.match(out.stderr, /V8 flags: the command line has --v8-flags/);
        }
        // Started once: one "ready", one start-up line.
        assert.equal(out.stderr.split("joold: info: ready").length, 2, out.stderr);
        child.kill("SIGTERM");
        assert.equal((await child.status).code, 0, out.stderr);
      } finally {
        await run.end();
      }
    },
  });
}
