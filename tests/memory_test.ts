/**
 * The start-up pages (lib/memory.ts): which mappings of /proc/self/smaps may be released, read
 * from a table and from this process's own; then, in a process of its own, that releasing them
 * takes Deno's executable out of the resident set and the process goes on computing right.
 */
import assert from "node:assert/strict";
import { cleanFileMappings } from "../lib/memory.ts";
import { libcPath } from "../ffi/libc.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** One mapping's smaps block; `own` sets the fields that make a page the process's own. */
function block(
  range: string,
  perms: string,
  path: string,
  rss: number,
  own: Record<string, number> = {},
) {
  const f = { Anonymous: 0, Swap: 0, Private_Dirty: 0, Shared_Dirty: 0, ...own };
  return [
    `${range} ${perms} 00002000 fe:00 260131                     ${path}`.trimEnd(),
    `Size:               ${rss + 8} kB`,
    "KernelPageSize:        4 kB",
    `Rss:                ${rss} kB`,
    `Shared_Dirty:       ${f.Shared_Dirty} kB`,
    `Private_Dirty:      ${f.Private_Dirty} kB`,
    `Anonymous:          ${f.Anonymous} kB`,
    `Swap:               ${f.Swap} kB`,
    "Locked:                0 kB",
    "VmFlags: rd mr mw me",
  ].join("\n");
}

Deno.test("only a file's private, read-only, resident mappings without a page of their own are released", () => {
  const smaps = [
    block("1000-3000", "r-xp", "/usr/bin/deno", 8), // text: yes
    block("3000-4000", "r--p", "/usr/bin/deno", 4), // read-only data: yes
    block("4000-5000", "r--p", "/usr/bin/deno", 4, { Anonymous: 4, Private_Dirty: 4 }), // relocated: no
    block("5000-6000", "rw-p", "/usr/bin/deno", 4), // writable: no
    block("6000-7000", "r--p", "/usr/lib/libc.so.6", 0), // nothing resident: no
    block("7000-8000", "r--p", "/usr/lib/libx.so", 4, { Swap: 4 }), // a page swapped out: no
    block("8000-9000", "r--s", "/dev/shm/seg", 4), // shared: no
    block("9000-a000", "r-xp", "/usr/bin/old (deleted)", 4), // a deleted file: no
    block("a000-b000", "rw-p", "[heap]", 4), // not a file: no
    block("b000-c000", "r--p", "", 4), // anonymous: no
    block("c000-d000", "r--p", "[vvar]", 4),
    block("d000-e000", "r-xp", "/dev/shm/deno", 12, { Private_Dirty: 12 }), // on tmpfs: yes
    block("e000-f000", "r-xp", "/usr/lib/with space/libz.so", 4), // a path with a space: yes
  ].join("\n") + "\n";
  const found = cleanFileMappings(smaps);
  assert.deepEqual(found.map((m) => [m.start.toString(16), m.end.toString(16), m.rssKb, m.path]), [
    ["1000", "3000", 8, "/usr/bin/deno"],
    ["3000", "4000", 4, "/usr/bin/deno"],
    ["d000", "e000", 12, "/dev/shm/deno"],
    ["e000", "f000", 4, "/usr/lib/with space/libz.so"],
  ]);
  // A block cut short (no Anonymous line) is not released: absent counts as present.
  const cut = `1000-3000 r-xp 00000000 fe:00 1 /usr/bin/deno\nRss:  8 kB\nSwap: 0 kB\n`;
  assert.deepEqual(cleanFileMappings(cut), []);
  assert.deepEqual(cleanFileMappings(""), []);
});

Deno.test("this process's smaps: Deno's executable is among what would be released, nothing writable is", () => {
  const smaps = Deno.readTextFileSync("/proc/self/smaps");
  const found = cleanFileMappings(smaps);
  assert.ok(found.some((m) => m.path === Deno.execPath()), `${Deno.execPath()} not found`);
  const perms = new Map<string, string>();
  for (const line of smaps.split("\n")) {
    const m = /^([0-9a-f]+)-[0-9a-f]+ (\S{4})/.exec(line);
    if (m) perms.set(m[1], m[2]);
  }
  for (const m of found) {
    const p = perms.get(m.start.toString(16).padStart(8, "0"));
    assert.ok(p !== undefined && !p.includes("w") && p.endsWith("p"), `${m.path}: ${p}`);
  }
});

Deno.test("released, Deno's executable leaves the resident set and the process computes as before", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      `--config=${ROOT}deno.json`,
      `--allow-ffi=${libcPath()}`,
      `${ROOT}tests/_release_probe.ts`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout);
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const [before, released, after, work] = out.trim().split("\n");
  const mapped = (line: string) => Number(/RssFile\+RssShmem (\d+)/.exec(line)![1]);
  const kb = Number(/released (\d+) kB in (\d+)/.exec(released)![1]);
  assert.ok(kb > 8192, released); // Deno's start-up alone touches tens of MB of its executable
  assert.ok(mapped(before) - mapped(after) > 8192, `${before} -> ${after}`);
  // The same results as before the release: the code and read-only data came back intact.
  assert.equal(work, "work ok", out);
});
