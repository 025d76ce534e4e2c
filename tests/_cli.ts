/**
 * Test helper: runs the real CLI as an operator would, with the production permission flags.
 *
 * @module
 */

/** Result of one CLI run. */
export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const ROOT = new URL("../", import.meta.url).pathname;

/** The V8 flags of the README's run command (`--v8-flags=` + this). */
export const V8_FLAGS = "--no-turbofan";

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
