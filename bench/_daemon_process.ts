// For the host scripts that measure the daemon PROCESS (bench/idle_cpu.ts, bench/daemon_cpu.ts):
// cli.ts run as the README runs it (its permission flags, the given V8 flags), against an
// in-process fake kernel through the tests' JOOLD_TEST_NETLINK_PEER seam.
import type { FakeKernel } from "../tests/_fake_kernel.ts";
import { libcPath } from "../ffi/libc.ts";

/**
 * Starts the daemon and waits for its "ready" line; its log is drained (and dropped) afterwards.
 * The fake kernel must be answering (`kernel.start()`) meanwhile.
 *
 * @param kernel the fake kernel the daemon talks to
 * @param configDir the directory of its configuration files (its --allow-read)
 * @param v8 V8 flags ("": none, as the README runs it: the daemon sets its own)
 * @param args the daemon's arguments
 * @param denoFlags more flags for `deno run` (e.g. the `--allow-net` of `--metrics`)
 * @returns the running daemon
 */
export async function spawnDaemon(
  kernel: FakeKernel,
  configDir: string,
  v8: string,
  args: string[],
  denoFlags: string[] = [],
): Promise<Deno.ChildProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      `--allow-ffi=${libcPath()}`,
      `--allow-read=${configDir}`,
      "--allow-env=JOOLD_TEST_NETLINK_PEER",
      ...(v8 ? [`--v8-flags=${v8}`] : []),
      ...denoFlags,
      new URL("../cli.ts", import.meta.url).pathname,
      ...args,
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
  (async () => {
    while (!(await reader.read()).done) { /* a full pipe would block the daemon */ }
  })();
  return child;
}

/**
 * A process's CPU time so far: user + system from /proc/PID/stat, at 100 clock ticks per second.
 *
 * @param pid the process
 * @returns milliseconds, in steps of 10
 */
export function cpuMs(pid: number): number {
  const f = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}
