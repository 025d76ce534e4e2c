/**
 * The start-up pages, released. Deno's executable is ~100 MB of code and data mapped from its file;
 * starting (V8's snapshot, the module graph, the TypeScript loader) touches ~36-41 MB of it, which
 * stays in the process's resident set (`VmRSS`, `RssFile`) although the daemon never runs most of
 * it again. Once started, joold drops its page-table entries for the mappings that hold nothing but
 * the file's own bytes (`madvise(MADV_DONTNEED)` on a private, never-written file mapping: the
 * pages stay in the page cache, and a page used again comes back with a minor fault, the same
 * bytes).
 * The warm-up runs after it, so the hot path's pages are resident again before the first batch.
 *
 * A mapping qualifies only when `/proc/self/smaps` shows it is a file's, private, not writable, and
 * has no page of its own (`Anonymous: 0 kB` and `Swap: 0 kB`: no copy-on-write page, such as
 * relocated read-only data, that dropping would lose). A dirty page of the file itself (a file on
 * tmpfs has only dirty pages) is the page cache's, not the mapping's: it comes back the same.
 * Nothing else is touched.
 *
 * @module
 */

import { libc, readSmallFile } from "../ffi/libc.ts";

/** `MADV_DONTNEED` (<sys/mman.h>). */
const MADV_DONTNEED = 4;

/** A mapping whose resident pages are all the file's own, unchanged. */
export interface CleanMapping {
  /** First address. */
  readonly start: bigint;
  /** Past the last address. */
  readonly end: bigint;
  /** Its resident memory (kB) when read. */
  readonly rssKb: number;
  /** The mapped file. */
  readonly path: string;
}

/** What {@linkcode releaseStartupPages} did. */
export interface Released {
  /** Mappings released. */
  readonly mappings: number;
  /** Their resident memory before (kB). */
  readonly kb: number;
}

const HEADER = /^([0-9a-f]+)-([0-9a-f]+) ([-rwxsp]{4}) \S+ \S+ \S+ *(.*)$/;

/**
 * The mappings of `/proc/self/smaps` (its text) that can be released: a file's (an absolute path,
 * not deleted), private and not writable, resident, without anonymous or swapped pages.
 *
 * @param smaps the text of /proc/PID/smaps
 * @returns the qualifying mappings, in address order
 */
export function cleanFileMappings(smaps: string): CleanMapping[] {
  const found: CleanMapping[] = [];
  let current: { start: bigint; end: bigint; path: string; ok: boolean } | null = null;
  let fields = new Map<string, number>();
  const finish = () => {
    if (current === null || !current.ok) return;
    const rss = fields.get("Rss");
    if (rss === undefined || rss === 0) return;
    // Absent counts as present: not released.
    if (fields.get("Anonymous") !== 0 || fields.get("Swap") !== 0) return;
    found.push({ start: current.start, end: current.end, rssKb: rss, path: current.path });
  };
  for (const line of smaps.split("\n")) {
    const header = HEADER.exec(line);
    if (header !== null) {
      finish();
      const [, start, end, perms, path] = header;
      current = {
        start: BigInt(`0x${start}`),
        end: BigInt(`0x${end}`),
        path,
        ok: path.startsWith("/") && !path.endsWith(" (deleted)") && perms[1] === "-" &&
          perms[3] === "p",
      };
      fields = new Map();
      continue;
    }
    const field = /^(\w+):\s+(\d+) kB$/.exec(line);
    if (field !== null) fields.set(field[1], Number(field[2]));
  }
  finish();
  return found;
}

/**
 * Releases the start-up pages (see the module's text) and returns glibc's free heap memory to the
 * system (`malloc_trim`). Needs libc (FFI) only; /proc/self/smaps is read through it.
 *
 * @returns what was released, or why nothing was
 */
export function releaseStartupPages(): Released | { readonly unavailable: string } {
  const smaps = readSmallFile("/proc/self/smaps");
  if (smaps === undefined) return { unavailable: "/proc/self/smaps cannot be read" };
  let mappings = 0, kb = 0;
  for (const mapping of cleanFileMappings(smaps)) {
    if (libc().madvise(mapping.start, mapping.end - mapping.start, MADV_DONTNEED) !== 0) continue;
    mappings++;
    kb += mapping.rssKb;
  }
  libc().malloc_trim(0n);
  return { mappings, kb };
}
