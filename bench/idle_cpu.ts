// Idle CPU of the daemon process (root: the fake kernel is a NETLINK_USERSOCK socket): starts
// cli.ts against an in-process fake Jool 4.1.13 kernel (the tests' JOOLD_TEST_NETLINK_PEER seam),
// waits for it to be ready, then prints the process's CPU time (user + system, /proc/PID/stat)
// per 5-second window for WINDOWS windows, with the README's V8 flags or the ones given (e.g.
// --no-turbofan,--trace-gc).
//   deno run -A bench/idle_cpu.ts [WINDOWS=16] [V8_FLAGS=--no-turbofan]
import { FakeKernel } from "../tests/_fake_kernel.ts";
import { tempFiles } from "../tests/_cli.ts";
import { libcPath } from "../ffi/libc.ts";

const windows = Number(Deno.args[0] ?? 16);
const v8 = Deno.args[1] ?? "--no-turbofan";
const kernel = new FakeKernel("4.1.13");
const server = kernel.start();
const dir = tempFiles({ "mod.json": `{ "instance": "default" }` });
const child = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "--no-prompt",
    `--allow-ffi=${libcPath()}`,
    `--allow-read=${dir}`,
    "--allow-env=JOOLD_TEST_NETLINK_PEER",
    ...(v8 ? [`--v8-flags=${v8}`] : []),
    new URL("../cli.ts", import.meta.url).pathname,
    `--mod=${dir}/mod.json`,
  ],
  env: { JOOLD_TEST_NETLINK_PEER: String(kernel.portId), NO_COLOR: "1" },
  stderr: "piped",
}).spawn();
const decoder = new TextDecoder();
const reader = child.stderr.getReader();
for (let text = ""; !text.includes("joold: info: ready");) {
  const { value, done } = await reader.read();
  if (done) throw new Error(`the daemon stopped before it was ready:\n${text}`);
  text += decoder.decode(value);
}
const ticks = () => {
  const f = Deno.readTextFileSync(`/proc/${child.pid}/stat`).split(") ")[1].split(" ");
  return Number(f[11]) + Number(f[12]); // utime + stime, clock ticks (100 per second)
};
let previous = ticks();
let total = 0;
for (let i = 1; i <= windows; i++) {
  await new Promise((r) => setTimeout(r, 5000));
  const now = ticks();
  total += (now - previous) * 10;
  console.log(`${i * 5} s after ready: +${(now - previous) * 10} ms CPU (total ${total} ms)`);
  previous = now;
}
child.kill("SIGTERM");
await child.status;
server.stop();
kernel.close();
