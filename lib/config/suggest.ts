/**
 * "Did you mean": the known name closest to a mistyped one, by edit distance, so that a typo in a
 * key or a flag is an error that names the fix rather than a key silently ignored.
 *
 * @module
 */

/**
 * The optimal-string-alignment distance (Levenshtein plus transpositions) between two strings.
 *
 * @param a one string
 * @param b the other
 * @returns the number of single-character edits that turn `a` into `b`
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { editDistance } from "./suggest.ts";
 * assert.equal(editDistance("adress", "address"), 1);
 * ```
 */
export function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) rows[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      rows[i][j] = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        rows[i][j] = Math.min(rows[i][j], rows[i - 2][j - 2] + 1);
      }
    }
  }
  return rows[a.length][b.length];
}

/** Case, and the separators people swap (`-`, `_`, `.`, space), do not count as typos. */
function normalize(text: string): string {
  return text.toLowerCase().replace(/[-_. ]+/g, " ").trim();
}

/**
 * The candidate a mistyped name most likely meant: equal but for case and separators, within a
 * few edits (one per four characters, at most two), or shortened by at most three characters.
 *
 * @param typed what was typed
 * @param candidates the known names
 * @returns the closest candidate, or undefined when none is close
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { closest } from "./suggest.ts";
 * assert.equal(closest("multicast adress", ["multicast address", "ttl"]), "multicast address");
 * assert.equal(closest("color", ["multicast address", "ttl"]), undefined);
 * ```
 */
export function closest(typed: string, candidates: readonly string[]): string | undefined {
  const t = normalize(typed);
  let best: { name: string; distance: number } | undefined;
  for (const name of candidates) {
    const n = normalize(name);
    let distance = editDistance(t, n);
    // A shortened name ("addr" for "address") is a typo too.
    if (t.length >= 4 && n.startsWith(t) && n.length - t.length <= 3) {
      distance = Math.min(distance, 1);
    }
    const allowed = Math.min(2, Math.max(1, Math.floor(n.length / 4)));
    if (distance <= allowed && (best === undefined || distance < best.distance)) {
      best = { name, distance };
    }
  }
  return best?.name;
}
