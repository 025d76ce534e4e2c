/**
 * The sealing thread over real loopback sockets: what it sends is byte for byte what an
 * independent XChaCha20-Poly1305 (noble's) seals, in the order staged, to every destination,
 * across the staging buffer's wrap and a key change; close sends what is staged; a destination
 * that fails is counted without holding the others up.
 */
import assert from "node:assert/strict";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { close, libcPath, recv } from "../../ffi/libc.ts";
import { sockaddrIn6 } from "../../ffi/sockaddr.ts";
import { createCounters } from "../../lib/counters.ts";
import { newStats as stats } from "../../lib/net/multicast.ts";
import {
  HEADER_LENGTH,
  Kind,
  libcryptoPath,
  loadNativeCipher,
  OVERHEAD,
  writeHeader,
} from "../../lib/secure/envelope.ts";
import { parseKeyFile, type SyncKey } from "../../lib/secure/keyfile.ts";
import { Sealer, SEALER_STAGING } from "../../lib/secure/sealer.ts";
import { loopbackSocket } from "../_udp.ts";

await loadNativeCipher();
const libcrypto = libcryptoPath();
const skip = libcrypto === null ? " (skipped: no libcrypto)" : "";

const KEYS = parseKeyFile(`${"a1".repeat(32)}\n${"b2".repeat(32)}\n`, "sync.key");
const SENDER = Uint8Array.from({ length: 16 }, (_, i) => 0xc0 + i);

/** An unsealed envelope: the header, the payload, 16 bytes for the tag. */
function unsealed(key: SyncKey, sequence: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(OVERHEAD + payload.length);
  writeHeader(out, Kind.data, key.id, {
    time: 1_700_000_000_000 + sequence,
    sender: SENDER,
    sequence,
  });
  out.set(payload, HEADER_LENGTH);
  return out;
}

/** What noble seals for the same header and payload. */
function reference(key: SyncKey, envelope: Uint8Array): Uint8Array {
  const header = envelope.subarray(0, HEADER_LENGTH);
  const payload = envelope.subarray(HEADER_LENGTH, envelope.length - 16);
  const sealed = xchacha20poly1305(key.aeadKey(), header.subarray(16), header).encrypt(payload);
  const out = new Uint8Array(HEADER_LENGTH + sealed.length);
  out.set(header);
  out.set(sealed, HEADER_LENGTH);
  return out;
}

/** Every datagram waiting on `fd`. */
function drainSocket(fd: number): Uint8Array[] {
  const got: Uint8Array[] = [];
  const buffer = new Uint8Array(65536);
  for (;;) {
    const n = recv(fd, buffer);
    if (n < 0) return got;
    got.push(buffer.slice(0, n));
  }
}

Deno.test({
  name:
    `the sealing thread sends what noble seals, in order, to every destination, across the staging buffer's wrap and a key change${skip}`,
  ignore: libcrypto === null,
  async fn() {
    const from = loopbackSocket(), to = [loopbackSocket(), loopbackSocket()];
    const counters = createCounters();
    const targets = to.map((s) => ({ sockaddr: s.address, stats: stats(`127.0.0.1:${s.port}`) }));
    const sealer = await Sealer.start({
      libc: libcPath(),
      libcrypto: libcrypto!,
      plan: { fd: from.fd, targets },
      counters,
      sender: SENDER,
    });
    assert.ok(sealer instanceof Sealer, JSON.stringify(sealer));
    try {
      const expected: Uint8Array[] = [];
      const got: Uint8Array[][] = [[], []];
      let bytes = 0;
      // Three times the staging buffer, in rounds that the receivers' buffers hold.
      for (let sequence = 1; bytes < 3 * SEALER_STAGING; sequence++) {
        const key = sequence < 700 ? KEYS[0] : KEYS[1];
        const payload = crypto.getRandomValues(new Uint8Array(1 + (sequence * 37) % 1400));
        // The key id written is the one seal() is given, whatever the bytes said.
        const staged = unsealed(KEYS[1 - KEYS.indexOf(key)], sequence, payload);
        const right = unsealed(key, sequence, payload);
        assert.equal(sealer.seal(staged, key), true);
        staged.fill(0); // the caller's bytes were copied
        expected.push(reference(key, right));
        bytes += right.length;
        if (sequence % 64 === 0) {
          assert.equal(sealer.drain(5000), true);
          for (const [i, s] of to.entries()) got[i].push(...drainSocket(s.fd));
        }
      }
      assert.equal(sealer.drain(5000), true);
      for (const [i, s] of to.entries()) got[i].push(...drainSocket(s.fd));
      for (const [i, datagrams] of got.entries()) {
        assert.equal(datagrams.length, expected.length, `destination ${i}: every envelope`);
        for (const [n, d] of datagrams.entries()) {
          assert.deepEqual(d, expected[n], `envelope ${n + 1}`);
        }
      }
      // Counted once folded: per destination and in the daemon's counters.
      assert.equal(counters.netDatagramsSent, 0);
      sealer.fold();
      assert.equal(counters.netDatagramsSent, 2 * expected.length);
      assert.equal(counters.netBytesSent, 2 * bytes);
      assert.equal(counters.netSendErrors, 0);
      for (const t of targets) assert.equal(t.stats.datagramsSent, expected.length);
    } finally {
      sealer.close();
      for (const s of [from, ...to]) close(s.fd);
    }
  },
});

Deno.test({
  name:
    `the sealing thread: close sends everything staged; a failing destination is counted, the others still get each envelope${skip}`,
  ignore: libcrypto === null,
  async fn() {
    const from = loopbackSocket(), good = loopbackSocket();
    const counters = createCounters();
    // An IPv6 address from an IPv4 socket: sendto fails (EINVAL/EAFNOSUPPORT) every time.
    const bad = {
      sockaddr: sockaddrIn6(new Uint8Array(16).fill(0).map((_, i) => i === 15 ? 1 : 0), 9),
      stats: stats("[::1]:9"),
    };
    const fine = { sockaddr: good.address, stats: stats("good") };
    const sealer = await Sealer.start({
      libc: libcPath(),
      libcrypto: libcrypto!,
      plan: { fd: from.fd, targets: [bad, fine] },
      counters,
      sender: SENDER,
    });
    assert.ok(sealer instanceof Sealer);
    try {
      const expected: Uint8Array[] = [];
      for (let sequence = 1; sequence <= 100; sequence++) {
        const envelope = unsealed(KEYS[0], sequence, Uint8Array.of(sequence, 2, 3));
        assert.equal(sealer.seal(envelope, KEYS[0]), true);
        expected.push(reference(KEYS[0], envelope));
      }
      sealer.close(); // sends what is staged first
      assert.equal(sealer.pending, 0);
      assert.equal(sealer.seal(unsealed(KEYS[0], 101, Uint8Array.of(1)), KEYS[0]), false, "closed");
      assert.deepEqual(drainSocket(good.fd), expected);
      assert.equal(fine.stats.datagramsSent, 100);
      assert.equal(bad.stats.sendErrors, 100);
      assert.equal(bad.stats.datagramsSent, 0);
      assert.equal(counters.netSendErrors, 100);
      assert.equal(counters.netDatagramsSent, 100);
    } finally {
      sealer.close();
      for (const s of [from, good]) close(s.fd);
    }
  },
});
