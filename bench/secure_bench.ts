// The secure-sync AEAD, chosen by measurement (BENCHMARKS.md, "Secure sync"): WebCrypto
// AES-256-GCM (native, but every call is a Promise) against @noble/ciphers' XChaCha20-Poly1305
// and AES-256-GCM (pure JavaScript, synchronous) and the runtime's native ChaCha20-Poly1305
// (`node:crypto`, synchronous; the envelope runs XChaCha's second half on it), sealing and opening a one-session and a
// full-size (1452-byte, Jool's default ss-max-payload) payload; then the envelope as the secure
// channel seals and opens it. Run: deno task bench (and with --v8-flags=--no-turbofan, as the
// daemon runs).
import { gcm } from "@noble/ciphers/aes.js";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { createCipheriv, createDecipheriv } from "node:crypto";
import {
  decodeHeader,
  loadNativeCipher,
  openEnvelope,
  sealEnvelope,
} from "../lib/secure/envelope.ts";
import { parseKeyFile } from "../lib/secure/keyfile.ts";
import { fixture } from "../tests/_fixtures.ts";
import type { NetworkChannel } from "../lib/channel.ts";
import { createCounters } from "../lib/counters.ts";
import { silentLogger } from "../lib/log.ts";
import { SecureChannel } from "../lib/secure/channel.ts";

const small = fixture("4.1.13", "d-udp-payload-1session");
const full = crypto.getRandomValues(new Uint8Array(1452));
const key = crypto.getRandomValues(new Uint8Array(32));
const aad = crypto.getRandomValues(new Uint8Array(40));
const nonce24 = crypto.getRandomValues(new Uint8Array(24));
const nonce12 = crypto.getRandomValues(new Uint8Array(12));
const webKey = await crypto.subtle.importKey("raw", key, "AES-GCM", false, ["encrypt", "decrypt"]);
const gcmParams = { name: "AES-GCM", iv: nonce12, additionalData: aad };

for (const [size, payload] of [["1 session", small], ["1452 bytes", full]] as const) {
  const group = `seal ${size}`;
  Deno.bench(`WebCrypto AES-256-GCM (async) seal ${size}`, { group, baseline: true }, async () => {
    await crypto.subtle.encrypt(gcmParams, webKey, payload);
  });
  Deno.bench(`noble XChaCha20-Poly1305 (sync) seal ${size}`, { group }, () => {
    xchacha20poly1305(key, nonce24, aad).encrypt(payload);
  });
  Deno.bench(`noble AES-256-GCM (sync) seal ${size}`, { group }, () => {
    gcm(key, nonce12, aad).encrypt(payload);
  });
  Deno.bench(`node:crypto ChaCha20-Poly1305 (sync, native) seal ${size}`, { group }, () => {
    const cipher = createCipheriv("chacha20-poly1305", key, nonce12, { authTagLength: 16 });
    cipher.setAAD(aad, { plaintextLength: payload.length });
    cipher.update(payload);
    cipher.final();
    cipher.getAuthTag();
  });
  const sealedGcm = new Uint8Array(await crypto.subtle.encrypt(gcmParams, webKey, payload));
  const sealedX = xchacha20poly1305(key, nonce24, aad).encrypt(payload);
  Deno.bench(`WebCrypto AES-256-GCM (async) open ${size}`, {
    group: `open ${size}`,
    baseline: true,
  }, async () => {
    await crypto.subtle.decrypt(gcmParams, webKey, sealedGcm);
  });
  Deno.bench(`noble XChaCha20-Poly1305 (sync) open ${size}`, { group: `open ${size}` }, () => {
    xchacha20poly1305(key, nonce24, aad).decrypt(sealedX);
  });
  const sealer = createCipheriv("chacha20-poly1305", key, nonce12, { authTagLength: 16 });
  sealer.setAAD(aad, { plaintextLength: payload.length });
  const sealedNative = sealer.update(payload);
  sealer.final();
  const nativeTag = sealer.getAuthTag();
  Deno.bench(`node:crypto ChaCha20-Poly1305 (sync, native) open ${size}`, {
    group: `open ${size}`,
  }, () => {
    const decipher = createDecipheriv("chacha20-poly1305", key, nonce12, { authTagLength: 16 });
    decipher.setAAD(aad, { plaintextLength: payload.length });
    decipher.setAuthTag(nativeTag);
    decipher.update(sealedNative);
    decipher.final();
  });
  Deno.bench(`noble AES-256-GCM (sync) open ${size}`, { group: `open ${size}` }, () => {
    gcm(key, nonce12, aad).decrypt(sealedGcm);
  });
}

// The envelope and the channel as a keyed daemon runs them: with the native cipher loaded.
await loadNativeCipher();
const [syncKey] = parseKeyFile("42".repeat(32), "sync.key");
const sender = crypto.getRandomValues(new Uint8Array(16));
let sequence = 0;
const envelope = sealEnvelope(syncKey, { time: Date.now(), sender, sequence: 1 }, small);
Deno.bench("envelope: seal a 1-session payload", { group: "envelope" }, () => {
  sealEnvelope(syncKey, { time: Date.now(), sender, sequence: ++sequence }, small);
});
Deno.bench("envelope: decode the header and open it", { group: "envelope" }, () => {
  decodeHeader(envelope);
  openEnvelope(syncKey, envelope);
});

// The secure channel as the daemon runs it, over plain channels that go nowhere: what one
// payload costs the sender (seal, ring, send) and the receiver (checks, window, open, peers).
const payloads: Uint8Array[] = [];
const sink: NetworkChannel = {
  onDatagram: () => {},
  send: (datagram) => void payloads.push(datagram),
  close() {},
};
let deliver: (datagram: Uint8Array, from?: string) => void = () => {};
const source: NetworkChannel = {
  onDatagram: (handler) => (deliver = handler),
  send: () => {},
  close() {},
};
const channelKeys = parseKeyFile("42".repeat(32), "sync.key");
const sending = new SecureChannel({
  inner: sink,
  keys: channelKeys,
  counters: createCounters(),
  log: silentLogger,
});
const receiving = new SecureChannel({
  inner: source,
  keys: channelKeys,
  counters: createCounters(),
  log: silentLogger,
});
receiving.onDatagram(() => {});
Deno.bench("secure channel: send a 1-session payload", { group: "channel" }, () => {
  sending.send(small);
  if (payloads.length > 4096) payloads.length = 0;
});
let next = 0;
const sealedStream = Array.from({ length: 20_000 }, () => {
  sending.send(small);
  return payloads.pop()!;
});
// Each envelope once (a second time it would be a replay, dropped before the AEAD).
Deno.bench("secure channel: receive a 1-session envelope", {
  group: "channel",
  n: 15_000,
  warmup: 5_000,
}, () => {
  deliver(sealedStream[next++], "2001:db8::1");
});
