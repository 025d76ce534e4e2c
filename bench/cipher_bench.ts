// The per-envelope ChaCha20-Poly1305 alone, by each implementation a keyed daemon may use:
// libcrypto through FFI (ffi/libcrypto.ts; needs --allow-ffi for it), the runtime's node:crypto,
// and noble's pure JavaScript; a 40-byte header as AAD, a 1-session payload and a full envelope's
// (1396 bytes: 1452 with header and tag). In the lab (run.ts --bench-micro cipher_bench.ts) it
// also runs under OPENSSL_ia32cap masks: what the emulation's SIMD costs libcrypto's code paths.
//   deno bench --allow-all --v8-flags=--no-turbofan bench/cipher_bench.ts
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { createCipheriv } from "node:crypto";
import { LibcryptoChaCha } from "../ffi/libcrypto.ts";

const key = crypto.getRandomValues(new Uint8Array(32));
const nonce = crypto.getRandomValues(new Uint8Array(12));
const aad = crypto.getRandomValues(new Uint8Array(40));
const libcrypto = LibcryptoChaCha.open();
if (!(libcrypto instanceof LibcryptoChaCha)) console.error(`libcrypto: ${libcrypto.unavailable}`);

for (const size of [40, 1396]) {
  const payload = crypto.getRandomValues(new Uint8Array(size));
  const out = new Uint8Array(size + 16);
  const group = `seal ${size} bytes`;
  if (libcrypto instanceof LibcryptoChaCha) {
    Deno.bench(`libcrypto (FFI) seal ${size} B`, { group, baseline: true }, () => {
      libcrypto.seal(key, nonce, aad, payload, out);
    });
    const sealed = new Uint8Array(size + 16);
    libcrypto.seal(key, nonce, aad, payload, sealed);
    const opened = new Uint8Array(size);
    Deno.bench(`libcrypto (FFI) open ${size} B`, { group: `open ${size} bytes` }, () => {
      if (!libcrypto.open(key, nonce, aad, sealed, opened)) throw new Error("did not open");
    });
  }
  Deno.bench(`node:crypto seal ${size} B`, { group }, () => {
    const cipher = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
    cipher.setAAD(aad, { plaintextLength: size });
    out.set(cipher.update(payload));
    cipher.final();
    out.set(cipher.getAuthTag(), size);
  });
  Deno.bench(`noble seal ${size} B`, { group }, () => {
    chacha20poly1305(key, nonce, aad).encrypt(payload);
  });
}
