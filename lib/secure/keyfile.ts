/**
 * The secure-sync key file (`"key file"`, `--net.key`): one key per line, 64 hex digits (256
 * bits), `#` starts a comment. The first key seals what this daemon sends; every key listed opens
 * what it receives, which is how keys rotate without downtime (docs/PROTOCOL.md, "Secure sync").
 * Like ssh, a key file that group or others can access is refused.
 *
 * No message of this module ever contains key material: errors name the file, the line and what
 * is wrong, never the line's text.
 *
 * @module
 */

import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";

/** Hex digits of one key: 256 bits. */
export const KEY_HEX_DIGITS = 64;

/** HKDF info of the AEAD key derived from a key of the file. */
const AEAD_INFO = new TextEncoder().encode("joold secure sync v1 aead key");
/** HKDF info of the key id (the envelope names the key it is sealed with by this id). */
const ID_INFO = new TextEncoder().encode("joold secure sync v1 key id");

/** A key of the key file that cannot be used (bad line, no key, too open a mode, unreadable). */
export class KeyFileError extends Error {
  /** The key file's path. */
  readonly path: string;

  /**
   * Builds the error: `path: problem`.
   *
   * @param path the key file
   * @param problem what is wrong and what to do (never key material)
   * @param options error options (`cause`)
   */
  constructor(path: string, problem: string, options?: ErrorOptions) {
    super(`${path}: ${problem}`, options);
    this.name = "KeyFileError";
    this.path = path;
  }
}

/**
 * One key, derived for use: the AEAD key and the 32-bit key id, both by HKDF-SHA-256 from the
 * file's key (which is not kept). Printing it shows the id only.
 */
export class SyncKey {
  /** The key id, as it travels in the envelope (unsigned 32-bit). */
  readonly id: number;
  readonly #aead: Uint8Array;

  /**
   * Derives the AEAD key and the key id.
   *
   * @param secret the 32 bytes of the key file's key
   * @throws {RangeError} when `secret` is not 32 bytes
   */
  constructor(secret: Uint8Array) {
    if (secret.length !== KEY_HEX_DIGITS / 2) {
      throw new RangeError(`a sync key is ${KEY_HEX_DIGITS / 2} bytes, got ${secret.length}`);
    }
    this.#aead = hkdf(sha256, secret, undefined, AEAD_INFO, 32);
    const id = hkdf(sha256, secret, undefined, ID_INFO, 4);
    this.id = new DataView(id.buffer, id.byteOffset, 4).getUint32(0, false);
  }

  /** The key id as 8 hex digits, as logs and docs show it. */
  get idHex(): string {
    return keyIdHex(this.id);
  }

  /**
   * The derived AEAD key (for lib/secure/envelope.ts only).
   *
   * @returns the 32-byte XChaCha20-Poly1305 key
   */
  aeadKey(): Uint8Array {
    return this.#aead;
  }

  /** Never the key: `SyncKey(id 1a2b3c4d)`. */
  toString(): string {
    return `SyncKey(id ${this.idHex})`;
  }

  /** `JSON.stringify` shows the id only. */
  toJSON(): { id: string } {
    return { id: this.idHex };
  }

  /** `console.log` / `Deno.inspect` show the id only. */
  [Symbol.for("Deno.customInspect")](): string {
    return this.toString();
  }
}

/**
 * A key id as 8 hex digits.
 *
 * @param id the unsigned 32-bit key id
 * @returns e.g. `"0a1b2c3d"`
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { keyIdHex } from "./keyfile.ts";
 * assert.equal(keyIdHex(0xa1b2c3), "00a1b2c3");
 * ```
 */
export function keyIdHex(id: number): string {
  return id.toString(16).padStart(8, "0");
}

function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * Parses the text of a key file.
 *
 * @param text the file's text
 * @param path the file's path, for messages
 * @returns the keys, in file order (the first one seals)
 * @throws {KeyFileError} naming the line that is not a key, or that there is no key
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseKeyFile } from "./keyfile.ts";
 *
 * const keys = parseKeyFile(`# rotated in 2026\n${"ab".repeat(32)}\n`, "sync.key");
 * assert.equal(keys.length, 1);
 * assert.match(String(keys[0]), /^SyncKey\(id [0-9a-f]{8}\)$/);
 * ```
 */
export function parseKeyFile(text: string, path: string): SyncKey[] {
  const keys: SyncKey[] = [];
  const ids = new Set<number>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/#.*$/, "").trim();
    if (line === "") continue;
    if (line.length !== KEY_HEX_DIGITS || !/^[0-9a-fA-F]+$/.test(line)) {
      // The line is NOT quoted: it may be a key with a typo.
      throw new KeyFileError(
        path,
        `line ${i + 1}: not a key: a key is ${KEY_HEX_DIGITS} hex digits on a line of its own ` +
          `(found ${line.length} characters${
            /^[0-9a-fA-F]*$/.test(line) ? "" : ", not all hex digits"
          }); make one with joold --keygen`,
      );
    }
    const key = new SyncKey(hexBytes(line));
    if (ids.has(key.id)) {
      throw new KeyFileError(path, `line ${i + 1}: the same key as an earlier line; remove it`);
    }
    ids.add(key.id);
    keys.push(key);
  }
  if (keys.length === 0) {
    throw new KeyFileError(
      path,
      `no key in the file: add a line made by joold --keygen (the same file on every translator)`,
    );
  }
  return keys;
}

/** What {@linkcode loadKeyFile} needs of the file system (tests pass fakes). */
export interface KeyFileSystem {
  /** The file's permission bits (`st_mode & 0o7777`), or null where the platform has none. */
  mode(path: string): number | null;
  /** The file's text. */
  read(path: string): string;
}

/** Deno's file system. */
export const denoKeyFileSystem: KeyFileSystem = {
  mode: (path) => {
    const mode = Deno.statSync(path).mode;
    return mode === null ? null : mode & 0o7777;
  },
  read: (path) => Deno.readTextFileSync(path),
};

/**
 * Reads and parses a key file, refusing it when group or others may access it.
 *
 * @param path the key file
 * @param fs the file system (Deno's by default)
 * @returns the keys, in file order
 * @throws {KeyFileError} when the file is missing, unreadable, too open, or not a key file
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadKeyFile } from "./keyfile.ts";
 *
 * const fs = { mode: () => 0o644, read: () => "" };
 * assert.throws(() => loadKeyFile("/etc/joold/sync.key", fs), /chmod 600 \/etc\/joold\/sync.key/);
 * ```
 */
export function loadKeyFile(path: string, fs: KeyFileSystem = denoKeyFileSystem): SyncKey[] {
  let mode: number | null;
  try {
    mode = fs.mode(path);
  } catch (error) {
    throw new KeyFileError(path, fileProblem(error), { cause: error });
  }
  if (mode !== null && (mode & 0o077) !== 0) {
    throw new KeyFileError(
      path,
      `mode ${
        mode.toString(8).padStart(4, "0")
      } lets group or others access the key: chmod 600 ${path}`,
    );
  }
  let text: string;
  try {
    text = fs.read(path);
  } catch (error) {
    throw new KeyFileError(path, fileProblem(error), { cause: error });
  }
  return parseKeyFile(text, path);
}

function fileProblem(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) {
    return "no such key file: make one with joold --keygen > FILE && chmod 600 FILE";
  }
  if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable) {
    return "cannot read the key file: permission denied (joold needs read access to it)";
  }
  if (error instanceof Deno.errors.IsADirectory) return "is a directory, not a key file";
  return `cannot read the key file: ${error instanceof Error ? error.name : String(error)}`;
}

/**
 * A new key line for a key file: 64 random hex digits (`joold --keygen`).
 *
 * @param random the random source (WebCrypto's by default)
 * @returns the line, without a newline
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateKeyLine, parseKeyFile } from "./keyfile.ts";
 *
 * const line = generateKeyLine();
 * assert.match(line, /^[0-9a-f]{64}$/);
 * assert.equal(parseKeyFile(line, "new.key").length, 1);
 * ```
 */
export function generateKeyLine(
  random: (bytes: Uint8Array) => Uint8Array = (b) => crypto.getRandomValues(b),
): string {
  return Array.from(
    random(new Uint8Array(KEY_HEX_DIGITS / 2)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}
