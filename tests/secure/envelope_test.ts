import assert from "node:assert/strict";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import {
  cipherImplementation,
  decodeHeader,
  encodeHeader,
  HEADER_LENGTH,
  isEnvelope,
  Kind,
  loadNativeCipher,
  openEnvelope,
  OVERHEAD,
  sealEnvelope,
} from "../../lib/secure/envelope.ts";
import { parseKeyFile } from "../../lib/secure/keyfile.ts";
import { fixture, VERSIONS } from "../_fixtures.ts";

const hex = (text: string) =>
  Uint8Array.from(text.replace(/\s+/g, "").match(/../g)!, (b) => parseInt(b, 16));
const toHex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

const KEY_LINE = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

Deno.test("XChaCha20-Poly1305 answers draft-irtf-cfrg-xchacha-03 A.3.1's known answer", () => {
  const key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
  const nonce = hex("404142434445464748494a4b4c4d4e4f5051525354555657");
  const aad = hex("50515253c0c1c2c3c4c5c6c7");
  const plaintext = new TextEncoder().encode(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the " +
      "future, sunscreen would be it.",
  );
  const expected = hex(
    "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4e" +
      "da7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2" +
      "383565d3fff921f9664c97637da9768812f615c68b13b52e" + "c0875924c1c7987947deafd8780acf49",
  );
  assert.deepEqual(xchacha20poly1305(key, nonce, aad).encrypt(plaintext), expected);
  assert.deepEqual(xchacha20poly1305(key, nonce, aad).decrypt(expected), plaintext);
});

/** A header and its bytes, written out by hand from docs/PROTOCOL.md's table. */
const HEADER_ROWS = [
  {
    name: "small fields",
    header: {
      kind: Kind.data as Kind,
      keyId: 0x01020304,
      time: 5,
      sender: new Uint8Array(16).fill(0xaa),
      sequence: 1,
    },
    bytes: "4a5353 01 01020304 0000000000000005" + "aa".repeat(16) + "0000000000000001",
  },
  {
    name: "fields above 2^32",
    header: {
      kind: Kind.bulkDone as Kind,
      keyId: 0xffffffff,
      time: 1_764_580_000_123,
      sender: hex("00112233445566778899aabbccddeeff"),
      sequence: 2 ** 40 + 7,
    },
    bytes: "4a5353 31 ffffffff 0000019ad92a017b 00112233445566778899aabbccddeeff 0000010000000007",
  },
];

for (const row of HEADER_ROWS) {
  Deno.test(`the envelope header encodes and decodes both ways: ${row.name}`, () => {
    const out = new Uint8Array(HEADER_LENGTH);
    encodeHeader(row.header, out);
    assert.equal(toHex(out), row.bytes.replace(/\s+/g, ""));
    const decoded = decodeHeader(new Uint8Array([...out, ...new Uint8Array(16)]));
    assert.deepEqual({ ...decoded, sender: decoded.sender.slice() }, row.header);
  });
}

const BAD_HEADERS: [string, string, RegExp][] = [
  ["a plain Jool payload", "2c000180" + "00".repeat(60), /no JSS magic/],
  ["another version", "4a535302" + "00".repeat(60), /version 2: this joold speaks version 1/],
  ["the magic alone", "4a5353", /version \(missing\)/],
  ["an unknown kind", "4a535341" + "00".repeat(60), /envelope kind 4: this joold knows kinds 0-3/],
  ["shorter than header and tag", "4a535301" + "00".repeat(51), /55-byte envelope is shorter/],
  [
    "a sequence beyond 2^53",
    "4a535301" + "00".repeat(28) + "0020000000000000" + "00".repeat(16),
    /beyond 2\^53/,
  ],
];
for (const [name, bytes, error] of BAD_HEADERS) {
  Deno.test(`decodeHeader refuses ${name}`, () => {
    assert.throws(
      () => decodeHeader(hex(bytes)),
      (e) => e instanceof RangeError && error.test(e.message),
    );
  });
}

Deno.test("encodeHeader refuses fields out of range", () => {
  const out = new Uint8Array(HEADER_LENGTH);
  const ok = { keyId: 1, time: 1, sender: new Uint8Array(16), sequence: 1 };
  for (
    const bad of [
      { ...ok, keyId: -1 },
      { ...ok, keyId: 2 ** 32 },
      { ...ok, time: 2 ** 53 },
      { ...ok, sequence: 1.5 },
      { ...ok, sender: new Uint8Array(15) },
    ]
  ) assert.throws(() => encodeHeader(bad, out), RangeError);
  assert.throws(() => encodeHeader(ok, new Uint8Array(39)), RangeError);
});

Deno.test("an envelope opens with a key derived independently (WebCrypto HKDF-SHA-256)", async () => {
  const [key] = parseKeyFile(KEY_LINE, "sync.key");
  const payload = fixture("4.1.13", "d-udp-payload-4sessions");
  const sender = hex("00112233445566778899aabbccddeeff");
  const envelope = sealEnvelope(key, { time: 1_764_580_000_123, sender, sequence: 9 }, payload);
  assert.equal(envelope.length, payload.length + OVERHEAD);
  assert.equal(isEnvelope(envelope), true);

  const ikm = await crypto.subtle.importKey("raw", hex(KEY_LINE), "HKDF", false, ["deriveBits"]);
  const derive = async (info: string, bits: number) =>
    new Uint8Array(
      await crypto.subtle.deriveBits(
        {
          name: "HKDF",
          hash: "SHA-256",
          salt: new Uint8Array(),
          info: new TextEncoder().encode(info),
        },
        ikm,
        bits,
      ),
    );
  const id = await derive("joold secure sync v1 key id", 32);
  const aead = await derive("joold secure sync v1 aead key", 256);
  assert.deepEqual(envelope.subarray(4, 8), id);
  assert.equal(key.id, new DataView(id.buffer).getUint32(0, false));
  // Nonce = bytes 16-39 (sender, sequence), associated data = bytes 0-39, then ciphertext + tag.
  const opened = xchacha20poly1305(aead, envelope.subarray(16, 40), envelope.subarray(0, 40))
    .decrypt(envelope.subarray(40));
  assert.deepEqual(opened, payload);
  // The payload is encrypted: its bytes do not appear in the envelope.
  assert.notDeepEqual(envelope.subarray(40, 40 + payload.length), payload);
});

/** Seals a captured payload, then flips every bit of the envelope and cuts it at every length. */
function flipsAndTruncationsFail(): void {
  const [key] = parseKeyFile(KEY_LINE, "sync.key");
  const payload = fixture("4.1.13", "d-udp-payload-4sessions");
  const envelope = sealEnvelope(key, { time: 1, sender: new Uint8Array(16), sequence: 1 }, payload);
  assert.deepEqual(openEnvelope(key, envelope), payload);
  for (let byte = 0; byte < envelope.length; byte++) {
    for (let bit = 0; bit < 8; bit++) {
      const flipped = envelope.slice();
      flipped[byte] ^= 1 << bit;
      assert.equal(openEnvelope(key, flipped), null, `bit ${bit} of byte ${byte}`);
    }
  }
  for (let length = 0; length < envelope.length; length++) {
    assert.equal(openEnvelope(key, envelope.subarray(0, length)), null, `${length} bytes`);
  }
}

Deno.test("every bit flipped anywhere in an envelope, and every truncation, fails to open", () => {
  assert.equal(cipherImplementation(), "noble"); // before a native cipher is loaded
  flipsAndTruncationsFail();
});

Deno.test("an envelope does not open under another key", () => {
  const [a, b] = parseKeyFile(`${"11".repeat(32)}\n${"22".repeat(32)}`, "sync.key");
  const envelope = sealEnvelope(
    a,
    { time: 1, sender: new Uint8Array(16), sequence: 1 },
    Uint8Array.of(1),
  );
  assert.equal(openEnvelope(b, envelope), null);
});

Deno.test("isEnvelope tells envelopes from every captured Jool payload", () => {
  for (const version of VERSIONS) {
    for (
      const name of ["d-udp-payload-1session", "d-udp-payload-4sessions"]
    ) {
      assert.equal(isEnvelope(fixture(version, name)), false, `${version} ${name}`);
    }
  }
});

for (const implementation of ["node:crypto", "libcrypto"] as const) {
  const load = async () => {
    const loaded = await loadNativeCipher(implementation);
    assert.equal(cipherImplementation(), implementation, loaded);
  };

  Deno.test(`the envelope's ChaCha20-Poly1305 (${implementation}) under a kept subkey is noble's XChaCha20-Poly1305`, async () => {
    await load();
    // Random keys, senders (more than the 16 subkeys kept per key), payload sizes (0 to a full
    // Jool payload), interleaved: every envelope equals noble's sealing of the same header, opens
    // with noble, and noble's sealing opens with openEnvelope.
    const keys = parseKeyFile(
      Array.from({ length: 3 }, () => toHex(crypto.getRandomValues(new Uint8Array(32)))).join("\n"),
      "sync.key",
    );
    const senders = Array.from({ length: 40 }, () => crypto.getRandomValues(new Uint8Array(16)));
    for (let i = 0; i < 600; i++) {
      const key = keys[i % keys.length];
      const sender = senders[(i * 7) % senders.length];
      const payload = crypto.getRandomValues(new Uint8Array([0, 1, 52, 104, 1452][i % 5]));
      const header = { kind: Kind.data, time: 1_764_580_000_000 + i, sender, sequence: i + 1 };
      const envelope = sealEnvelope(key, header, payload);
      const aead = key.aeadKey();
      const nonce = envelope.subarray(16, HEADER_LENGTH);
      const aad = envelope.subarray(0, HEADER_LENGTH);
      const noble = xchacha20poly1305(aead, nonce, aad).encrypt(payload);
      assert.equal(toHex(envelope.subarray(HEADER_LENGTH)), toHex(noble), `envelope ${i}`);
      assert.deepEqual(xchacha20poly1305(aead, nonce, aad).decrypt(noble), payload);
      const other = envelope.slice();
      other.set(noble, HEADER_LENGTH);
      assert.deepEqual(openEnvelope(key, other), payload, `envelope ${i} opens`);
      assert.equal(openEnvelope(keys[(i + 1) % keys.length], envelope), null);
    }
  });

  Deno.test(`with ${implementation}, every bit flipped anywhere in an envelope, and every truncation, fails to open`, async () => {
    await load();
    flipsAndTruncationsFail();
  });
}

Deno.test("a forged envelope under a new sender does not open, before or after its real one", () => {
  const [key] = parseKeyFile(KEY_LINE, "sync.key");
  const sender = crypto.getRandomValues(new Uint8Array(16));
  const envelope = sealEnvelope(key, { time: 1, sender, sequence: 1 }, Uint8Array.of(1, 2));
  const forged = envelope.slice();
  forged[envelope.length - 1] ^= 0x80;
  assert.equal(openEnvelope(key, forged), null);
  assert.deepEqual(openEnvelope(key, envelope), Uint8Array.of(1, 2));
  assert.equal(openEnvelope(key, forged), null);
  assert.deepEqual(openEnvelope(key, envelope), Uint8Array.of(1, 2));
});
