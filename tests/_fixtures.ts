/**
 * Test helper: the real bytes captured from Jool 4.1.9 (Debian bookworm) and 4.1.13 (trixie)
 * kernels and C daemons (copied from shared/captures; see tests/fixtures/4.1.9/README.md).
 *
 * @module
 */

const DIR = new URL("./fixtures/", import.meta.url).pathname;

/** The two recorded kernel versions. */
export const VERSIONS = ["4.1.9", "4.1.13"] as const;
/** One of them. */
export type FixtureVersion = typeof VERSIONS[number];

/**
 * Loads a `.hex` fixture.
 *
 * @param version the recording
 * @param name file name without `.hex`
 * @returns the bytes
 */
export function fixture(version: FixtureVersion, name: string): Uint8Array<ArrayBuffer> {
  const text = Deno.readTextFileSync(`${DIR}${version}/${name}.hex`);
  return Uint8Array.from(text.match(/[0-9a-f]{2}/g)!, (h) => parseInt(h, 16));
}

/** Facts from the recording's index.json (family id, group id). */
export function fixtureIndex(version: FixtureVersion): {
  family_id: number;
  joold_mcast_group_id: number;
  jool_version: string;
} {
  return JSON.parse(Deno.readTextFileSync(`${DIR}${version}/index.json`));
}

/** The 4-session fixture name differs between recordings only in N; both have 1 and 4. */
export const BATCHES = ["1session", "4sessions"] as const;
