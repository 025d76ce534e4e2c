// Prints which ChaCha20-Poly1305 a keyed daemon would load under this process's permissions, and
// the hex of one envelope sealed with it (tests/ffi/libcrypto_test.ts compares the two runs).
import { cipherImplementation, loadNativeCipher, sealEnvelope } from "../../lib/secure/envelope.ts";
import { parseKeyFile } from "../../lib/secure/keyfile.ts";

const loaded = await loadNativeCipher();
const [key] = parseKeyFile("42".repeat(32), "probe.key");
const envelope = sealEnvelope(key, {
  time: 1_764_580_000_000,
  sender: new Uint8Array(16).fill(7),
  sequence: 9,
}, new TextEncoder().encode("a Jool payload"));
console.log(cipherImplementation());
console.log(loaded);
console.log(Array.from(envelope, (b) => b.toString(16).padStart(2, "0")).join(""));
