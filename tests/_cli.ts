/**
 * Test helper: runs the real CLI as an operator would, with the production permission flags: a
 * one-shot run whose output is collected at its exit ({@linkcode runCli}), or the daemon against
 * an in-process fake Jool kernel, its output collected as it comes ({@linkcode spawnDaemon}).
 *
 * @module
 */

import { libcPath } from "../ffi/libc.ts";
import { FakeKernel } from "./_fake_kernel.ts";
import { waitFor } from "./_udp.ts";

/** Result of one CLI run. */
export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const ROOT = new URL("../", import.meta.url).pathname;

/** Absolute path of an entry point of the project (`cli.ts`, `mod.ts`). */
export function entry(name: string): string {
  return `${ROOT}${name}`;
}

/**
 * Runs `deno run <permissions> <entry> <args>` and collects its output.
 *
 * @param args CLI arguments
 * @param options cwd, entry point (default cli.ts) and the permission flags
 * @returns exit code, stdout and stderr
 */
export async function runCli(
  args: readonly string[],
  options: { cwd?: string; entry?: string; permissions?: readonly string[]; signal?: AbortSignal } =
    {},
): Promise<CliRun> {
  const permissions = options.permissions ?? [`--allow-read=${options.cwd ?? ROOT}`];
  const command = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--no-prompt",
      ...permissions,
      entry(options.entry ?? "cli.ts"),
      ...args,
    ],
    cwd: options.cwd,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    env: { NO_COLOR: "1" },
    signal: options.signal,
  });
  const { code, stdout, stderr } = await command.output();
  const dec = new TextDecoder();
  return { code, stdout: dec.decode(stdout), stderr: dec.decode(stderr) };
}

/** How {@linkcode daemonCommand} runs the daemon. */
export interface DaemonOptions {
  /** The fake kernel it talks to: JOOLD_TEST_NETLINK_PEER (the test seam) is its port id. */
  readonly kernel: { readonly portId: number };
  /** What `--allow-read` lists (the daemon's files, or their directory); none: no such flag. */
  readonly read?: readonly string[];
  /** Variables `--allow-env` lists besides JOOLD_TEST_NETLINK_PEER. */
  readonly allowEnv?: readonly string[];
  /** Its environment besides JOOLD_TEST_NETLINK_PEER and NO_COLOR. */
  readonly env?: Readonly<Record<string, string>>;
  /** Permission flags beyond production's (`--allow-net=HOST:PORT`). */
  readonly permissions?: readonly string[];
  /** Run it inside this network namespace (`ip netns exec NAME deno run ...`). */
  readonly netns?: string;
  /** Where its stdout goes (default: piped). */
  readonly stdout?: "piped" | "null";
  /** The program run instead of cli.ts (a test's wrapper around `main()`), with deno.json's imports. */
  readonly script?: string;
}

/**
 * The daemon's command: `deno run` of cli.ts with the production permission flags (libc by FFI,
 * the reads given, JOOLD_TEST_NETLINK_PEER) and no V8 flag (the daemon sets its own: lib/tiers.ts),
 * stdin closed, stderr piped.
 *
 * @param args CLI arguments
 * @param options the fake kernel, permissions, environment, namespace and stdout
 * @returns the command, not spawned
 */
export function daemonCommand(args: readonly string[], options: DaemonOptions): Deno.Command {
  const deno = [
    Deno.execPath(),
    "run",
    "--quiet",
    "--no-prompt",
    `--allow-ffi=${libcPath()}`,
    ...(options.read === undefined ? [] : [`--allow-read=${options.read.join(",")}`]),
    `--allow-env=${["JOOLD_TEST_NETLINK_PEER", ...options.allowEnv ?? []].join(",")}`,
    ...options.permissions ?? [],
    ...(options.script === undefined
      ? [entry("cli.ts")]
      : [`--config=${entry("deno.json")}`, options.script]),
    ...args,
  ];
  const [command, ...rest] = options.netns === undefined
    ? deno
    : ["ip", "netns", "exec", options.netns, ...deno];
  return new Deno.Command(command, {
    args: rest,
    env: { JOOLD_TEST_NETLINK_PEER: String(options.kernel.portId), NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: options.stdout ?? "piped",
    stderr: "piped",
  });
}

/**
 * Kills the daemon if it still runs, waits for it, and stops its fake kernel: a test's `finally`.
 *
 * @param child the daemon
 * @param server what `kernel.start()` returned
 * @param kernel the fake kernel
 */
export async function reap(
  child: Deno.ChildProcess,
  server: { stop(): void },
  kernel: { close(): void },
): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch {
    // already gone
  }
  await child.status;
  server.stop();
  kernel.close();
}

/** A running daemon: the child, what it wrote so far, and the pumps, settled once its output ends. */
export interface SpawnedDaemon {
  readonly child: Deno.ChildProcess;
  readonly out: { stdout: string; stderr: string };
  readonly pumps: Promise<unknown>;
}

/**
 * Spawns {@linkcode daemonCommand} and collects its stdout (when piped) and stderr as they come.
 *
 * @param args CLI arguments
 * @param options as {@linkcode daemonCommand} takes them
 * @returns the child, its output so far, and the pumps
 */
export function spawnDaemon(args: readonly string[], options: DaemonOptions): SpawnedDaemon {
  const child = daemonCommand(args, options).spawn();
  const out = { stdout: "", stderr: "" };
  const pump = async (stream: ReadableStream<Uint8Array>, key: "stdout" | "stderr") => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) out[key] += chunk;
  };
  const piped = options.stdout !== "null";
  const pumps = Promise.all([
    piped ? pump(child.stdout, "stdout") : undefined,
    pump(child.stderr, "stderr"),
  ]);
  return { child, out, pumps };
}

const tempDirs: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const dir of tempDirs) Deno.removeSync(dir, { recursive: true });
});

/** Creates a temporary directory holding `files` (name -> content), removed when the run ends. */
export function tempFiles(files: Record<string, string>): string {
  const dir = Deno.makeTempDirSync({ prefix: "joold-test-" });
  tempDirs.push(dir);
  for (const [name, text] of Object.entries(files)) Deno.writeTextFileSync(`${dir}/${name}`, text);
  return dir;
}

/**
 * A print-mode daemon against a serving fake kernel (Jool 4.1.13), ready; `end()` cleans up
 * whatever happened.
 *
 * @param mod the module socket file's text
 * @param options more CLI arguments, more deno flags (after the production ones)
 * @returns the running daemon, its fake kernel, the files' directory and `end()`
 */
export async function printDaemon(
  mod = `{ "instance": "default" }`,
  options: { readonly args?: readonly string[]; readonly permissions?: readonly string[] } = {},
) {
  const kernel = new FakeKernel("4.1.13");
  const server = kernel.start();
  const dir = tempFiles({ "mod.json": mod });
  const run = spawnDaemon([`--mod=${dir}/mod.json`, ...options.args ?? []], {
    kernel,
    read: [`${dir}/mod.json`],
    permissions: options.permissions,
  });
  await waitFor(() => run.out.stderr.includes("joold: info: ready"), "ready", 20_000);
  const end = async () => {
    try {
      run.child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await run.child.status;
    await run.pumps;
    server.stop();
    kernel.close();
  };
  return { ...run, kernel, dir, end };
}
