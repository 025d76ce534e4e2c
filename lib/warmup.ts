/**
 * The start-up warm-up: before the daemon says it is ready, the daemon core's own code runs on
 * synthetic sessions in the local kernel's format, through a throwaway {@linkcode Daemon} whose
 * channels go nowhere, so that V8 has compiled the hot path before the first real batch.
 *
 * Why: a standby that (re)starts gets the whole table at once (the peers advertise), and a freshly
 * started daemon runs that bulk in V8's interpreter while its compilers catch up on the same CPU.
 * Measured in the lab's bulk benchmark (BENCHMARKS.md, "Bulk resync"): K's first JOOLD_ADD came
 * 190 ms after J's first datagram reached it, and K needed ~7 ms per 36-session datagram after.
 *
 * Without side effects: nothing is sent anywhere, the real counters are not touched (the throwaway
 * daemon counts into its own), nothing is logged. The same functions run as in service (the
 * throwaway is the same class; its stub channels only make the call sites polymorphic, which
 * V8's compilers handle), on data of the shape the kernel sends.
 *
 * @module
 */

import type { KernelChannel, NetworkChannel, PayloadHandler } from "./channel.ts";
import { createCounters } from "./counters.ts";
import { Daemon } from "./daemon.ts";
import { concat } from "./netlink/attribute.ts";
import { encodeCompact36, encodeCompact48, encodeNested, type Session } from "./jool/session.ts";
import type { SessionTimeouts } from "./jool/timeouts.ts";
import type { SessionFormat } from "./jool/version.ts";
import { silentLogger } from "./log.ts";

/**
 * Rounds of the warm-up: each one datagram from the "network" and one batch from the "kernel".
 * V8 compiles a function with Maglev after a few hundred calls of its loops' worth of feedback;
 * 300 rounds of 36 sessions took 11 ms on the development host (Deno 2.9.6), a few hundred ms
 * under the lab's emulation.
 */
export const WARMUP_ROUNDS = 300;

/** Sessions per synthetic datagram: a full batch of Jool's default ss-max-sessions-per-packet. */
const SESSIONS = 36;

const ENCODERS: Record<SessionFormat, (s: Session) => Uint8Array> = {
  nested: encodeNested,
  compact48: encodeCompact48,
  compact36: encodeCompact36,
};

/**
 * A datagram of `count` established UDP sessions in `format`, as a kernel's batch holds them.
 *
 * @param format the session format
 * @param count how many sessions
 * @param expirationMs their remaining lifetime
 * @returns the payload (session entries, no netlink headers)
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodePayload } from "./jool/session.ts";
 * import { syntheticPayload } from "./warmup.ts";
 *
 * const summary = decodePayload(syntheticPayload("compact36", 3, 60_000));
 * assert.equal(summary.format, "compact36");
 * assert.deepEqual(summary.sessions.map((s) => s.src6Port), [40000, 40001, 40002]);
 * ```
 */
export function syntheticPayload(
  format: SessionFormat,
  count: number,
  expirationMs: number,
): Uint8Array {
  const encode = ENCODERS[format];
  const parts: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    // Documentation prefixes only (RFC 3849, RFC 5737, RFC 6052's well-known prefix).
    parts.push(encode({
      proto: 1,
      state: 0,
      timer: 0,
      src6: Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8),
      src6Port: 40000 + i,
      dst6: Uint8Array.of(0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, 8),
      dst6Port: 7000,
      src4: Uint8Array.of(192, 0, 2, 1),
      src4Port: 61001 + i,
      dst4: Uint8Array.of(192, 0, 2, 8),
      dst4Port: 7000,
      expirationMs,
    }));
  }
  return concat(...parts);
}

/** What the warm-up needs to know of the local instance. */
export interface WarmUpOptions {
  /** The local kernel's session format. */
  readonly format: SessionFormat;
  /** The local instance's timeouts (the meaning checks clamp to them). */
  readonly timeouts: SessionTimeouts;
}

/**
 * Runs the daemon core's paths on synthetic sessions, with no effect outside this call.
 *
 * @param options the local format and timeouts
 * @param rounds how many datagrams and batches
 * @returns what the throwaway daemon handed on: datagrams "sent" and "added" (both `rounds`
 *   when the paths ran as in service)
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JOOL_DEFAULT_TIMEOUTS } from "./jool/timeouts.ts";
 * import { warmUp } from "./warmup.ts";
 *
 * const done = warmUp({ format: "nested", timeouts: JOOL_DEFAULT_TIMEOUTS }, 5);
 * assert.deepEqual(done, { sent: 5, added: 5 });
 * ```
 */
export function warmUp(
  options: WarmUpOptions,
  rounds = WARMUP_ROUNDS,
): { sent: number; added: number } {
  const done = { sent: 0, added: 0 };
  let fromKernel: PayloadHandler = () => {};
  let fromNetwork: (payload: Uint8Array, from?: string) => void = () => {};
  const kernel: KernelChannel = {
    onBatch: (handler) => (fromKernel = handler),
    onError() {},
    add: () => void done.added++,
    advertise() {},
    close() {},
  };
  const network: NetworkChannel = {
    onDatagram: (handler) => (fromNetwork = handler),
    send: () => void done.sent++,
    close() {},
  };
  const daemon = new Daemon({
    kernel,
    network,
    counters: createCounters(),
    log: silentLogger,
    localFormat: options.format,
    timeouts: options.timeouts,
  });
  daemon.start();
  // Within the local UDP timeout: the common case, no clamping, no copy.
  const payload = syntheticPayload(options.format, SESSIONS, 60_000);
  for (let i = 0; i < rounds; i++) {
    fromNetwork(payload, "warm-up");
    fromKernel(payload);
  }
  daemon.stop();
  return done;
}
