/**
 * OpenSSL's libcrypto through `Deno.dlopen`: ChaCha20-Poly1305 (RFC 8439) for the secure
 * channel's envelopes, one context per direction, reused for every envelope.
 *
 * Optional: the secure channel seals with it only when `--allow-ffi` grants one of
 * {@linkcode LIBCRYPTO_CANDIDATES} (beside libc) and the library opens; otherwise it uses the
 * runtime's `node:crypto` cipher, which computes the same bytes at ~2-3x the cost per envelope
 * (a stream object and Buffers per call). Pointers are plain integers ("usize"), as in
 * ffi/libc.ts: the scoped `--allow-ffi=<path>` is enough.
 *
 * @module
 */

import { granted } from "./libc.ts";

/** The libcrypto symbols joold uses (also the sealing thread's, lib/secure/sealer.ts). */
export const SYMBOLS = {
  /** EVP_CIPHER *EVP_CIPHER_fetch(OSSL_LIB_CTX *ctx, const char *algorithm, const char *props) */
  EVP_CIPHER_fetch: { parameters: ["usize", "buffer", "usize"], result: "usize" },
  /** EVP_CIPHER_CTX *EVP_CIPHER_CTX_new(void) */
  EVP_CIPHER_CTX_new: { parameters: [], result: "usize" },
  /** int EVP_CipherInit_ex(ctx, const EVP_CIPHER *type, ENGINE *impl, key, iv, int enc) */
  EVP_CipherInit_ex: {
    parameters: ["usize", "usize", "usize", "buffer", "buffer", "i32"],
    result: "i32",
  },
  /** int EVP_CipherUpdate(ctx, NULL, int *outl, const unsigned char *aad, int inl): the AAD */
  aad: {
    name: "EVP_CipherUpdate",
    parameters: ["usize", "usize", "buffer", "buffer", "i32"],
    result: "i32",
  },
  /** int EVP_CipherUpdate(ctx, unsigned char *out, int *outl, const unsigned char *in, int inl) */
  EVP_CipherUpdate: {
    parameters: ["usize", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  /** int EVP_CipherFinal_ex(ctx, unsigned char *out, int *outl): 0 when a tag does not match */
  EVP_CipherFinal_ex: { parameters: ["usize", "buffer", "buffer"], result: "i32" },
  /** int EVP_CIPHER_CTX_ctrl(ctx, int type, int arg, void *ptr): the tag, got or set */
  EVP_CIPHER_CTX_ctrl: { parameters: ["usize", "i32", "i32", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** OpenSSL 3's libcrypto on the distributions joold targets, most likely first. */
export const LIBCRYPTO_CANDIDATES: readonly string[] = [
  "/lib/x86_64-linux-gnu/libcrypto.so.3",
  "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
  "/lib/aarch64-linux-gnu/libcrypto.so.3",
  "/usr/lib/aarch64-linux-gnu/libcrypto.so.3",
  "/lib64/libcrypto.so.3",
  "/usr/lib64/libcrypto.so.3",
];

/** The algorithm's name for EVP_CIPHER_fetch, NUL-terminated. */
const ALGORITHM = new TextEncoder().encode("ChaCha20-Poly1305\0");
/** EVP_CTRL_AEAD_GET_TAG and EVP_CTRL_AEAD_SET_TAG (openssl/evp.h). */
const GET_TAG = 0x10;
const SET_TAG = 0x11;
/** RFC 8439 section 2.8.2's AEAD test vector: the inputs (its ciphertext and tag: the checks). */
export const RFC_8439_AEAD: {
  readonly key: Uint8Array;
  readonly nonce: Uint8Array;
  readonly aad: Uint8Array;
  readonly plaintext: Uint8Array;
} = {
  key: Uint8Array.from({ length: 32 }, (_, i) => 0x80 + i),
  nonce: Uint8Array.of(7, 0, 0, 0, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47),
  aad: Uint8Array.of(0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7),
  plaintext: new TextEncoder().encode(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  ),
};
/** The Poly1305 tag's length, bytes. */
const TAG_LENGTH = 16;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/**
 * ChaCha20-Poly1305 (IETF: 256-bit key, 96-bit nonce, 128-bit tag) on libcrypto, one reused
 * context for sealing and one for opening. Single-threaded, as the daemon is.
 */
export class LibcryptoChaCha {
  /** The library's path. */
  readonly path: string;
  readonly #lib: Symbols;
  readonly #cipher: bigint;
  readonly #sealer: bigint;
  readonly #opener: bigint;
  readonly #length = new Int32Array(1);

  private constructor(path: string, lib: Symbols) {
    this.path = path;
    this.#lib = lib;
    // Fetched once (OpenSSL 3's provider lookup), not EVP_chacha20_poly1305()'s implicit fetch.
    this.#cipher = BigInt(lib.EVP_CIPHER_fetch(0n, ALGORITHM, 0n));
    this.#sealer = BigInt(lib.EVP_CIPHER_CTX_new());
    this.#opener = BigInt(lib.EVP_CIPHER_CTX_new());
    if (this.#cipher === 0n || this.#sealer === 0n || this.#opener === 0n) {
      throw new Error(`${path}: no ChaCha20-Poly1305 or no cipher context`);
    }
    // The cipher is bound to each context once: every envelope then sets only its key and nonce
    // (an init that names the cipher sets the whole context up again).
    const none = new Uint8Array(0);
    if (
      lib.EVP_CipherInit_ex(this.#sealer, this.#cipher, 0n, none, none, 1) !== 1 ||
      lib.EVP_CipherInit_ex(this.#opener, this.#cipher, 0n, none, none, 0) !== 1
    ) throw new Error(`${path}: EVP_CipherInit_ex refused ChaCha20-Poly1305`);
  }

  /**
   * Opens the first granted and loadable candidate, once it has passed RFC 8439's test vector.
   *
   * @param candidates the paths to try (default {@linkcode LIBCRYPTO_CANDIDATES})
   * @returns the cipher, or why there is none (no candidate granted, none opened, a wrong answer)
   */
  static open(
    candidates: readonly string[] = LIBCRYPTO_CANDIDATES,
  ): LibcryptoChaCha | { unavailable: string } {
    const problems: string[] = [];
    for (const path of candidates) {
      if (!granted({ name: "ffi", path })) continue;
      let lib: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;
      try {
        lib = Deno.dlopen(path, SYMBOLS);
        const cipher = new LibcryptoChaCha(path, lib.symbols);
        if (cipher.#selfTest()) return cipher;
        problems.push(`${path}: a wrong answer to RFC 8439's test vector`);
      } catch (error) {
        problems.push(`${path}: ${(error as Error).message.split("\n")[0]}`);
      }
      lib?.close();
    }
    if (problems.length === 0) return { unavailable: "no --allow-ffi for libcrypto" };
    return { unavailable: problems.join("; ") };
  }

  /**
   * Encrypts `plaintext` into `out` and writes the tag after it.
   *
   * @param key 32 bytes
   * @param nonce 12 bytes
   * @param aad the authenticated header
   * @param plaintext what is sealed
   * @param out at least `plaintext.length` + 16 bytes: the ciphertext, then the tag
   * @throws {Error} when libcrypto refuses (it does not, for valid lengths)
   */
  seal(
    key: Uint8Array,
    nonce: Uint8Array,
    aad: Uint8Array,
    plaintext: Uint8Array,
    out: Uint8Array,
  ): void {
    const lib = this.#lib;
    const ctx = this.#sealer;
    const n = plaintext.length;
    const tag = out.subarray(n, n + TAG_LENGTH);
    const ok = lib.EVP_CipherInit_ex(ctx, 0n, 0n, key, nonce, 1) === 1 &&
      lib.aad(ctx, 0n, this.#length, aad, aad.length) === 1 &&
      lib.EVP_CipherUpdate(ctx, out, this.#length, plaintext, n) === 1 &&
      this.#length[0] === n &&
      lib.EVP_CipherFinal_ex(ctx, tag, this.#length) === 1 && // ChaCha writes nothing here
      lib.EVP_CIPHER_CTX_ctrl(ctx, GET_TAG, TAG_LENGTH, tag) === 1;
    if (!ok) throw new Error("libcrypto refused to seal an envelope");
  }

  /**
   * Verifies and decrypts `sealed` (ciphertext then tag) into `out`.
   *
   * @param key 32 bytes
   * @param nonce 12 bytes
   * @param aad the authenticated header
   * @param sealed the ciphertext and its 16-byte tag
   * @param out at least `sealed.length` - 16 bytes
   * @returns false when the tag does not match (then `out` holds garbage: do not use it)
   */
  open(
    key: Uint8Array,
    nonce: Uint8Array,
    aad: Uint8Array,
    sealed: Uint8Array,
    out: Uint8Array,
  ): boolean {
    const n = sealed.length - TAG_LENGTH;
    if (n < 0) return false;
    const lib = this.#lib;
    const ctx = this.#opener;
    return lib.EVP_CipherInit_ex(ctx, 0n, 0n, key, nonce, 0) === 1 &&
      lib.aad(ctx, 0n, this.#length, aad, aad.length) === 1 &&
      lib.EVP_CipherUpdate(ctx, out, this.#length, sealed.subarray(0, n), n) === 1 &&
      this.#length[0] === n &&
      lib.EVP_CIPHER_CTX_ctrl(ctx, SET_TAG, TAG_LENGTH, sealed.subarray(n)) === 1 &&
      lib.EVP_CipherFinal_ex(ctx, out.subarray(n), this.#length) === 1;
  }

  /** RFC 8439 section 2.8.2's AEAD test vector, sealed and opened (and a flipped bit refused). */
  #selfTest(): boolean {
    const { key, nonce, aad, plaintext } = RFC_8439_AEAD;
    const sealed = new Uint8Array(plaintext.length + TAG_LENGTH);
    this.seal(key, nonce, aad, plaintext, sealed);
    const tag = Array.from(
      sealed.subarray(plaintext.length),
      (b) => b.toString(16).padStart(2, "0"),
    );
    if (tag.join("") !== "1ae10b594f09e26a7e902ecbd0600691") return false;
    if (sealed[0] !== 0xd3 || sealed[1] !== 0x1a || sealed[plaintext.length - 1] !== 0x16) {
      return false;
    }
    const opened = new Uint8Array(plaintext.length);
    if (!this.open(key, nonce, aad, sealed, opened)) return false;
    if (opened.some((b, i) => b !== plaintext[i])) return false;
    sealed[5] ^= 1;
    return !this.open(key, nonce, aad, sealed, opened);
  }
}
