// Idle CPU of the daemon process (root: the fake kernel is a NETLINK_USERSOCK socket): starts
// cli.ts against an in-process fake Jool 4.1.13 kernel (the tests' JOOLD_TEST_NETLINK_PEER seam),
// waits for it to be ready, then prints the process's CPU time (user + system, /proc/PID/stat)
// per 5-second window for WINDOWS windows, with the README's V8 flags or the ones given (e.g.
// --no-turbofan,--trace-gc).
//   deno run -A bench/idle_cpu.ts [WINDOWS=16] [V8_FLAGS=""] ("": as the README runs it)
import { FakeKernel } from "../tests/_fake_kernel.ts";
import { tempFiles } from "../tests/_cli.ts";
import { cpuMs, spawnDaemon } from "./_daemon_process.ts";

const windows = Number(Deno.args[0] ?? 16);
const v8 = Deno.args[1] ?? "";
const kernel = new FakeKernel("4.1.13");
const server = kernel.start();
const dir = tempFiles({ "mod.json": `{ "instance": "default" }` });
const child = await spawnDaemon(kernel, dir, v8, [`--mod=${dir}/mod.json`]);
const ticks = () => cpuMs(child.pid);
let previous = ticks();
let total = 0;
for (let i = 1; i <= windows; i++) {
  await new Promise((r) => setTimeout(r, 5000));
  const now = ticks();
  total += now - previous;
  console.log(`${i * 5} s after ready: +${now - previous} ms CPU (total ${total} ms)`);
  previous = now;
}
child.kill("SIGTERM");
await child.status;
server.stop();
kernel.close();
