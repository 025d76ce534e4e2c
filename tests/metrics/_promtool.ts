/**
 * Test helper: `promtool check metrics` (Debian's prometheus package) over an exposition, the
 * exposition's samples, and a free TCP port for the endpoint.
 *
 * @module
 */

/** Why promtool cannot run here, or null when it can. */
export function promtoolUnavailable(): string | null {
  try {
    const r = new Deno.Command("promtool", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync();
    return r.success ? null : "promtool does not run";
  } catch {
    return "promtool is not installed (apt-get install -y prometheus)";
  }
}

/** Runs `promtool check metrics` on `text`: its exit code and what it said. */
export async function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const dec = new TextDecoder();
  return { code, output: dec.decode(stdout) + dec.decode(stderr) };
}

/** The samples of an exposition, by series (`name{labels}`), as numbers. */
export function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** A TCP port on 127.0.0.1 that nothing listens on now. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}
