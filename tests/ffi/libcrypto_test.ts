/**
 * libcrypto's ChaCha20-Poly1305 through FFI (ffi/libcrypto.ts): RFC 8439's test vector, a refused
 * tag, a library that does not open, and the choice a keyed daemon makes under its permissions:
 * libcrypto when `--allow-ffi` grants it, node:crypto otherwise, the same envelope either way.
 */
import assert from "node:assert/strict";
import { LIBCRYPTO_CANDIDATES, LibcryptoChaCha, RFC_8439_AEAD } from "../../ffi/libcrypto.ts";
import { libcPath } from "../../ffi/libc.ts";

const present = LIBCRYPTO_CANDIDATES.find((path) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
});
const ignore = present === undefined;
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test({
  name: "libcrypto seals and opens RFC 8439 section 2.8.2's AEAD test vector",
  ignore,
  fn() {
    const cipher = LibcryptoChaCha.open([present!]);
    assert.ok(cipher instanceof LibcryptoChaCha, JSON.stringify(cipher));
    const { key, nonce, aad, plaintext } = RFC_8439_AEAD;
    const sealed = new Uint8Array(plaintext.length + 16);
    cipher.seal(key, nonce, aad, plaintext, sealed);
    assert.equal(hex(sealed.subarray(0, 16)), "d31a8d34648e60db7b86afbc53ef7ec2");
    assert.equal(hex(sealed.subarray(plaintext.length - 2, plaintext.length)), "6116");
    assert.equal(hex(sealed.subarray(plaintext.length)), "1ae10b594f09e26a7e902ecbd0600691");
    const opened = new Uint8Array(plaintext.length);
    assert.equal(cipher.open(key, nonce, aad, sealed, opened), true);
    assert.deepEqual(opened, plaintext);
    for (const at of [0, plaintext.length - 1, plaintext.length, sealed.length - 1]) {
      const forged = sealed.slice();
      forged[at] ^= 0x01;
      assert.equal(cipher.open(key, nonce, aad, forged, opened), false, `byte ${at} flipped`);
    }
    const otherAad = aad.slice();
    otherAad[0] ^= 1;
    assert.equal(cipher.open(key, nonce, otherAad, sealed, opened), false, "another header");
    assert.equal(cipher.open(key, nonce, aad, sealed.subarray(0, 15), opened), false, "no tag");
  },
});

Deno.test("a libcrypto that does not open is unavailable, with the path and the reason", () => {
  const missing = "/nonexistent/joold-test/libcrypto.so.3";
  const result = LibcryptoChaCha.open([missing]);
  assert.ok(!(result instanceof LibcryptoChaCha));
  assert.match(result.unavailable, new RegExp(`^${missing}: `));
});

async function probe(ffi: string): Promise<string[]> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      `--config=${ROOT}deno.json`,
      `--allow-ffi=${ffi}`,
      `${ROOT}tests/ffi/_cipher_probe.ts`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  assert.equal(code, 0, text.decode(stderr));
  return text.decode(stdout).trim().split("\n");
}

Deno.test({
  name: "a keyed daemon seals with libcrypto only when --allow-ffi grants it, the same bytes",
  ignore,
  async fn() {
    const [without, withIt] = await Promise.all([
      probe(libcPath()),
      probe(`${libcPath()},${present}`),
    ]);
    assert.deepEqual(without.slice(0, 2), [
      "node:crypto",
      "node:crypto (libcrypto: no --allow-ffi for libcrypto)",
    ]);
    assert.deepEqual(withIt.slice(0, 2), ["libcrypto", `libcrypto (${present})`]);
    assert.equal(withIt[2], without[2]);
    assert.match(withIt[2], /^4a5353/); // "JSS": an envelope
  },
});
