/**
 * The start-up warm-up: before the daemon says it is ready, its own code runs on synthetic
 * sessions in the local kernel's format, through a throwaway kernel channel over an in-memory
 * netlink twin and a throwaway {@linkcode Daemon} whose network is a socket on loopback that sends
 * to itself (or, where loopback is down, one in memory that goes nowhere), so that V8 has
 * compiled the hot path (receive, recognize, ACK, forward; check, add) before the first real batch.
 *
 * Why: a standby that (re)starts gets the whole table at once (the peers advertise), and a freshly
 * started daemon runs that bulk in V8's interpreter while its compilers catch up on the same CPU.
 * Measured in the lab's bulk benchmark (BENCHMARKS.md, "Bulk resync"): K's first JOOLD_ADD came
 * 190 ms after J's first datagram reached it, and K needed ~7 ms per 36-session datagram after.
 *
 * Without side effects: nothing leaves the host's loopback (a socket bound to 127.0.0.1 or ::1,
 * port chosen by the kernel, sends only to itself, closed at the end), the real counters are not
 * touched (the throwaway daemon counts into its own), nothing is logged. The same classes run as
 * in service; only the netlink socket calls differ (the twin's), which makes those call sites
 * polymorphic, which V8's compilers handle. The data has the shape the kernel sends.
 *
 * @module
 */

import type { NetworkChannel } from "./channel.ts";
import { createCounters } from "./counters.ts";
import { Daemon } from "./daemon.ts";
import { MulticastChannel } from "./net/multicast.ts";
import { NetlinkKernelChannel } from "./kernel/channel.ts";
import type { KernelStartup } from "./kernel/startup.ts";
import { joolRequest, sessionEntriesAttribute } from "./jool/message.ts";
import { commandsFor, packVersion, sessionFormatFor } from "./jool/version.ts";
import { concat } from "./netlink/attribute.ts";
import { NLMSG_HDRLEN } from "./netlink/message.ts";
import { dialTwin } from "./netlink/twin.ts";
import type { Reactor } from "./reactor.ts";
import { SESSION_ENCODERS } from "./jool/session.ts";
import type { SessionTimeouts } from "./jool/timeouts.ts";
import type { SessionFormat } from "./jool/version.ts";
import { silentLogger } from "./log.ts";
import { COALESCE_BYTES, SecureChannel } from "./secure/channel.ts";
import { generateKeyLine, parseKeyFile } from "./secure/keyfile.ts";

/**
 * Rounds of the warm-up: each one datagram from the "network" and one batch from the "kernel".
 * V8 tiers a function up after enough calls and loop iterations; with 300 rounds the first 84 real
 * datagrams through a daemon core took 1.9-3.3 ms on the development host instead of 4.5-8.9 ms
 * cold (Deno 2.9.6, two runs each). The rounds
 * took 35-50 ms there (the host busy with other work); the daemon logs their time at debug level
 * (`warm-up: 300 rounds in N ms`); under the lab's emulation it was not measured.
 */
export const WARMUP_ROUNDS = 300;

/** Sessions per synthetic datagram: a full batch of Jool's default ss-max-sessions-per-packet. */
const SESSIONS = 36;

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
  const encode = SESSION_ENCODERS[format];
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

/** What the warm-up needs to know of the local instance: what startup resolved. */
export interface WarmUpOptions
  extends Pick<KernelStartup, "familyId" | "groupId" | "version" | "versionSource"> {
  /** The Jool instance served. */
  readonly instance: string;
  /** The local instance's timeouts (the meaning checks clamp to them). */
  readonly timeouts: SessionTimeouts;
  /** The daemon's reactor (the throwaway channel's connection is a twin: it never watches it). */
  readonly reactor: Reactor;
  /**
   * The sync socket's family: the throwaway daemon's network is then a real UDP socket on
   * loopback that sends to itself (the send and receive paths as in service). Absent, or
   * loopback unusable: an in-memory network (everything but the socket calls).
   */
  readonly family?: 4 | 6;
  /**
   * A daemon with a key file: the throwaway daemon also joins and splits batches as a keyed one
   * does, and a pair of throwaway secure channels seals and opens the same payloads (under a key
   * drawn for the warm-up and dropped after it: never the key file's).
   */
  readonly keyed?: boolean;
}

/** What the throwaway pipeline handed on: all `rounds` when the paths ran as in service. */
export interface WarmUpResult {
  /** Datagrams the throwaway daemon "sent" to the sync group (batches from the twin kernel). */
  readonly sent: number;
  /** JOOLD_ACKs and JOOLD_ADDs the throwaway channel sent to the twin kernel. */
  readonly acks: number;
  readonly adds: number;
  /** Where the throwaway daemon's datagrams went: a loopback socket, or nowhere (memory). */
  readonly network: "loopback" | "memory";
  /** Envelopes the throwaway secure pair sealed and opened (with `keyed` only). */
  readonly opened?: number;
}

/**
 * Runs the daemon's paths on synthetic sessions, with no effect outside this call: a throwaway
 * kernel channel of the real class over the in-memory twin of a netlink socket
 * (lib/netlink/twin.ts), and a throwaway daemon between it and a network: given the sync socket's
 * family, a UDP socket on loopback that sends to itself (lib/net/multicast.ts `loopback`), else
 * one in memory that goes nowhere. Each round the twin kernel multicasts one full batch
 * (recognized, ACKed and forwarded as in service) and the network hands one datagram back (checked
 * and added).
 *
 * @param options what startup resolved, the instance, its timeouts and the reactor
 * @param rounds how many batches and datagrams
 * @returns what went through
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JOOL_DEFAULT_TIMEOUTS } from "./jool/timeouts.ts";
 * import { Reactor } from "./reactor.ts";
 * import { warmUp } from "./warmup.ts";
 *
 * const done = await warmUp({
 *   familyId: 0x23,
 *   groupId: 5,
 *   version: { major: 4, minor: 1, revision: 13, development: 0 },
 *   versionSource: "sysfs",
 *   instance: "default",
 *   timeouts: JOOL_DEFAULT_TIMEOUTS,
 *   reactor: new Reactor(),
 * }, 5);
 * assert.deepEqual(done, { sent: 5, acks: 5, adds: 5, network: "memory" });
 * ```
 */
export async function warmUp(
  options: WarmUpOptions,
  rounds = WARMUP_ROUNDS,
): Promise<WarmUpResult> {
  const format = sessionFormatFor(options.version);
  const commands = commandsFor(options.version);
  const counts = { sent: 0, acks: 0, adds: 0 };
  const { conn, twin } = dialTwin((request) => {
    const cmd = request[NLMSG_HDRLEN]; // genlmsghdr.cmd
    if (cmd === commands.JOOLD_ACK) counts.acks++;
    else if (cmd === commands.JOOLD_ADD) counts.adds++;
  });
  conn.joinGroup(options.groupId);
  const kernel = new NetlinkKernelChannel({
    familyId: options.familyId,
    groupId: options.groupId,
    version: options.version,
    versionSource: options.versionSource,
    conn,
    reactor: options.reactor,
    counters: createCounters(),
    instance: options.instance,
  });
  let fromNetwork: (payload: Uint8Array, from?: string) => void = () => {};
  const loopCounters = createCounters();
  let loopback: MulticastChannel | null = null;
  if (options.family !== undefined) {
    try {
      loopback = MulticastChannel.loopback(options.family, options.reactor, loopCounters);
    } catch {
      // Loopback down (or no ::1): the in-memory network below warms all but the socket calls.
    }
  }
  const network: NetworkChannel = loopback ?? {
    onDatagram: (handler) => (fromNetwork = handler),
    send: () => void counts.sent++,
    close() {},
  };
  // Keyed: the core's joining and splitting of batches (NetworkChannel.coalesceBytes) too.
  const joining: NetworkChannel = options.keyed
    ? {
      onDatagram: (handler) => network.onDatagram(handler),
      send: (payload) => network.send(payload),
      coalesceBytes: COALESCE_BYTES,
      close: () => network.close(),
    }
    : network;
  const daemon = new Daemon({
    kernel,
    network: joining,
    counters: createCounters(),
    log: silentLogger,
    localFormat: format,
    timeouts: options.timeouts,
  });
  daemon.start();
  // Within the local UDP timeout: the common case, no clamping, no copy.
  const payload = syntheticPayload(format, SESSIONS, 60_000);
  const batch = joolRequest(
    {
      familyId: options.familyId,
      version: packVersion(options.version),
      iname: options.instance,
      seq: 0,
      pid: 0,
    },
    0,
    sessionEntriesAttribute(payload),
  );
  try {
    for (let i = 0; i < rounds; i++) {
      twin.multicast(options.groupId, batch);
      await Promise.resolve(); // the twin hands the batch to the channel in a microtask
      if (loopback === null) fromNetwork(payload, "warm-up");
      else loopback.receiveNow(); // the datagram the daemon just sent to itself, if it is there
    }
    // Loopback delivers within the send, or at the latest in the next softirq: a few more reads.
    for (
      let i = 0;
      loopback !== null && i < 10 && counts.adds < loopCounters.netDatagramsSent;
      i++
    ) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      loopback.receiveNow();
    }
  } finally {
    daemon.stop();
    kernel.close();
    loopback?.close();
  }
  if (loopback !== null) counts.sent = loopCounters.netDatagramsSent;
  const where = loopback === null ? "memory" : "loopback";
  if (!options.keyed) return { ...counts, network: where };
  const opened = warmSecure([payload, syntheticPayload(format, 1, 60_000)], rounds);
  return { ...counts, network: where, opened };
}

/**
 * Seals each payload `rounds` times on one throwaway secure channel and opens it on another (two
 * senders, a wire in memory), as a keyed pair does in service: the envelope, the resend ring, the
 * replay window and the peers table, compiled before READY. The key is drawn here and dropped.
 *
 * @param payloads session payloads (a full batch, one session)
 * @param rounds how many times each
 * @returns the envelopes opened
 */
function warmSecure(payloads: readonly Uint8Array[], rounds: number): number {
  const keys = parseKeyFile(generateKeyLine(), "warm-up");
  let toB: (datagram: Uint8Array, from?: string) => void = () => {};
  const a = new SecureChannel({
    keys,
    counters: createCounters(),
    log: silentLogger,
    inner: { onDatagram() {}, send: (d) => toB(d, "::1"), close() {} },
  });
  const b = new SecureChannel({
    keys,
    counters: createCounters(),
    log: silentLogger,
    inner: { onDatagram: (h) => void (toB = h), send() {}, close() {} },
  });
  let opened = 0;
  a.onDatagram(() => {});
  b.onDatagram(() => void opened++);
  try {
    for (let i = 0; i < rounds; i++) for (const p of payloads) a.send(p);
  } finally {
    a.close();
    b.close();
  }
  return opened;
}
