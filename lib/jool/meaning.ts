/**
 * Meaning checks on the sessions of a sync datagram: a datagram that parses (lib/jool/session.ts)
 * can still hold sessions no Jool could have sent, which the kernel would insert as they are
 * (JOOLD_ADD checks shape only). What Jool 4.1 can hold, from its source (NICMx/Jool):
 *
 * - UDP and ICMP sessions live on the established timer only, in state 0 (they have no state;
 *   db/bib/db.c attaches them to `est_timer`). A UDP/ICMP session on another timer lands on a
 *   timer whose cleaner knows no lifetime for it.
 * - TCP states (common/session.h) and the timer each can sit on (steps/filtering_and_updating.c):
 *   ESTABLISHED 0 on the established timer; V6_INIT 1 on the transitory one; V4_INIT 2 on the
 *   transitory one or on SYN4 (a stored SYN); V4_FIN_RCV 3 and V6_FIN_RCV 4 on the established
 *   one, or the transitory one after an RST (handle-rst-during-fin-rcv); V4_FIN_V6_FIN_RCV 5 and
 *   TRANS 6 on the transitory one. State 7 does not exist; timer 3 does not exist. A session in a
 *   state the established timer does not expect reaches `WARN()` in tcp_est_expire_cb when it
 *   expires.
 * - The expiration (every format) is the milliseconds until the session dies: the receiving kernel
 *   sets `update_time = now + expiration - timeout` and inserts the session into its timer's list
 *   sorted by update_time, and the cleaner stops at the first unexpired session. Nothing caps it,
 *   so a session claiming more than the local lifetime of its timer sits in the future and holds
 *   back the expiry of every session queued behind it. It is clamped to the local lifetime (a
 *   session cannot be fresher than one just created); the SYN4 timer's is the fixed 6 s.
 *
 * Policy: a session that breaks the protocol/state/timer rules is dropped alone; the others of its
 * datagram go on, their bytes unchanged (a forged session is no more dangerous beside legal ones
 * than alone, and a peer's one bad session should not cost the sync of its neighbours). A clamp
 * rewrites only the expiration field of that session. A datagram left with no session is not
 * handed to the kernel at all.
 *
 * @module
 */

import { align4, type Attribute, NLA_HDRLEN, parseAttributes } from "../netlink/attribute.ts";
import { JNLAL_ENTRY, JNLASE_EXPIRATION, type PayloadSummary, type Session } from "./session.ts";
import { type SessionTimeouts, TCP_INCOMING_SYN_MS } from "./timeouts.ts";

/** enum l4_protocol: TCP. */
export const L4PROTO_TCP = 0;
/** UDP. */
export const L4PROTO_UDP = 1;
/** ICMP. */
export const L4PROTO_ICMP = 2;
/** enum session_timer_type (db/bib/entry.h): the established timer. */
export const SESSION_TIMER_EST = 0;
/** The transitory timer. */
export const SESSION_TIMER_TRANS = 1;
/** The timer of sessions started by an IPv4 SYN that Jool stored (6 s). */
export const SESSION_TIMER_SYN4 = 2;

/**
 * For each TCP timer, the states a session on it can be in (bit n = state n), from Jool's TCP
 * state machine (see the module comment).
 */
const TCP_STATES_ON_TIMER: readonly number[] = [
  /* EST   */ (1 << 0) | (1 << 3) | (1 << 4),
  /* TRANS */ (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6),
  /* SYN4  */ 1 << 2,
];

/** Why a session is refused. */
export type SessionProblem = "protocol" | "state" | "timer" | "wrongTimer";

/** The verdict on one session. */
export type SessionVerdict =
  /** Jool can hold it as it is. */
  | { readonly kind: "legal" }
  /** Legal once its expiration is cut to `expirationMs`, the local lifetime of its timer. */
  | { readonly kind: "clamp"; readonly expirationMs: number }
  /** No Jool holds such a session. */
  | { readonly kind: "drop"; readonly problem: SessionProblem };

const LEGAL: SessionVerdict = Object.freeze({ kind: "legal" });

/**
 * The local lifetime of a session's timer: what a session just created or refreshed has left.
 *
 * @param session protocol and timer (legal ones)
 * @param timeouts the local instance's timeouts
 * @returns milliseconds
 */
export function lifetime(
  session: Pick<Session, "proto" | "timer">,
  timeouts: SessionTimeouts,
): number {
  if (session.proto === L4PROTO_UDP) return timeouts.udp;
  if (session.proto === L4PROTO_ICMP) return timeouts.icmp;
  return session.timer === SESSION_TIMER_EST
    ? timeouts.tcpEst
    : session.timer === SESSION_TIMER_TRANS
    ? timeouts.tcpTrans
    : TCP_INCOMING_SYN_MS;
}

/**
 * Judges one session: whether Jool can hold its protocol, state and timer, and whether its
 * expiration fits the local lifetime of its timer.
 *
 * @param session the decoded session
 * @param timeouts the local instance's timeouts (ms)
 * @returns legal, clamp (with the new expiration) or drop (with the reason)
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { judgeSession } from "./meaning.ts";
 * import { JOOL_DEFAULT_TIMEOUTS } from "./timeouts.ts";
 *
 * const udp = { proto: 1, state: 0, timer: 0, expirationMs: 0xffffffff };
 * assert.deepEqual(judgeSession(udp, JOOL_DEFAULT_TIMEOUTS), { kind: "clamp", expirationMs: 300_000 });
 * const tcp = { proto: 0, state: 6, timer: 0, expirationMs: 1000 }; // TRANS on the EST timer
 * assert.deepEqual(judgeSession(tcp, JOOL_DEFAULT_TIMEOUTS), { kind: "drop", problem: "wrongTimer" });
 * ```
 */
export function judgeSession(
  session: Pick<Session, "proto" | "state" | "timer" | "expirationMs">,
  timeouts: SessionTimeouts,
): SessionVerdict {
  const { proto, state, timer } = session;
  if (proto === L4PROTO_UDP || proto === L4PROTO_ICMP) {
    if (state !== 0) return { kind: "drop", problem: "state" };
    if (timer !== SESSION_TIMER_EST) return { kind: "drop", problem: "timer" };
  } else if (proto === L4PROTO_TCP) {
    if (!Number.isInteger(state) || state < 0 || state > 6) {
      return { kind: "drop", problem: "state" };
    }
    if (!Number.isInteger(timer) || timer < 0 || timer > 2) {
      return { kind: "drop", problem: "timer" };
    }
    if ((TCP_STATES_ON_TIMER[timer] & (1 << state)) === 0) {
      return { kind: "drop", problem: "wrongTimer" };
    }
  } else {
    return { kind: "drop", problem: "protocol" };
  }
  const limit = lifetime(session, timeouts);
  return session.expirationMs > limit ? { kind: "clamp", expirationMs: limit } : LEGAL;
}

/** What the meaning checks count: these fields of lib/counters.ts (owner: the daemon core). */
export interface MeaningCounters {
  /** Sessions of an unknown protocol, dropped. */
  netSessionsBadProtocol: number;
  /** Sessions in a state their protocol lacks, dropped. */
  netSessionsBadState: number;
  /** Sessions on a timer their protocol lacks, dropped. */
  netSessionsBadTimer: number;
  /** TCP sessions on a timer that never holds their state, dropped. */
  netSessionsWrongTimer: number;
  /** Sessions whose expiration was cut to the local lifetime of their timer. */
  netSessionsClamped: number;
  /** Datagrams left with no session, not handed to the kernel. */
  netDatagramsAllDropped: number;
}

const COUNTER_OF: Record<SessionProblem, keyof MeaningCounters> = {
  protocol: "netSessionsBadProtocol",
  state: "netSessionsBadState",
  timer: "netSessionsBadTimer",
  wrongTimer: "netSessionsWrongTimer",
};

/** Where a record's expiration lies inside its entry payload, and its byte order. */
function expirationField(entry: Attribute, format: PayloadSummary["format"]): [number, boolean] {
  if (format === "compact36") return [24, false];
  if (format === "compact48") return [36, false];
  // Nested: the kernel (nla_parse) reads the LAST attribute of a type, as decodeNested does.
  let at = -1;
  for (const a of parseAttributes(entry.payload)) {
    if (a.type === JNLASE_EXPIRATION) at = a.payload.byteOffset - entry.payload.byteOffset;
  }
  return [at, true];
}

/**
 * Applies the meaning checks to a sync datagram already validated by `decodePayload` (its
 * `summary`): drops the sessions no Jool can hold, clamps expirations to the local lifetimes, and
 * counts both per reason into `counters`.
 *
 * @param payload the datagram (a SESSION_ENTRIES payload)
 * @param summary `decodePayload(payload)`
 * @param timeouts the local instance's timeouts (ms)
 * @param counters incremented per dropped or clamped session
 * @returns `payload` itself when every session is legal as it is; a copy with the offending
 *   sessions removed and/or their expiration rewritten otherwise; null when no session is left
 * @throws {RangeError} when `summary` does not describe `payload`
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkMeaning } from "./meaning.ts";
 * import { decodePayload, encodeCompact36 } from "./session.ts";
 * import { JOOL_DEFAULT_TIMEOUTS } from "./timeouts.ts";
 * import { createCounters } from "../counters.ts";
 *
 * const session = {
 *   proto: 1, state: 0, timer: 0, expirationMs: 1000, src6: new Uint8Array(16), src6Port: 1,
 *   src4: new Uint8Array(4), src4Port: 2, dst4: new Uint8Array(4), dst4Port: 3,
 * };
 * const payload = encodeCompact36(session);
 * const counters = createCounters();
 * assert.equal(checkMeaning(payload, decodePayload(payload), JOOL_DEFAULT_TIMEOUTS, counters), payload);
 * const forged = encodeCompact36({ ...session, expirationMs: 0xffffffff });
 * const out = checkMeaning(forged, decodePayload(forged), JOOL_DEFAULT_TIMEOUTS, counters)!;
 * assert.equal(decodePayload(out).sessions[0].expirationMs, 300_000);
 * assert.equal(counters.netSessionsClamped, 1);
 * ```
 */
export function checkMeaning(
  payload: Uint8Array,
  summary: PayloadSummary,
  timeouts: SessionTimeouts,
  counters: MeaningCounters,
): Uint8Array | null {
  let verdicts: SessionVerdict[] | null = null;
  let dropped = 0;
  for (let i = 0; i < summary.sessions.length; i++) {
    const verdict = judgeSession(summary.sessions[i], timeouts);
    if (verdict.kind === "legal") continue;
    verdicts ??= new Array(summary.sessions.length).fill(LEGAL);
    verdicts[i] = verdict;
    if (verdict.kind === "drop") {
      counters[COUNTER_OF[verdict.problem]]++;
      dropped++;
    } else counters.netSessionsClamped++;
  }
  if (verdicts === null) return payload; // the common case: no copy, no second parse
  if (dropped === summary.sessions.length) {
    counters.netDatagramsAllDropped++;
    return null;
  }
  const entries = parseAttributes(payload);
  if (entries.length !== summary.sessions.length) {
    throw new RangeError("the summary does not describe this payload");
  }
  let size = 0;
  for (let i = 0; i < entries.length; i++) {
    if (verdicts[i].kind !== "drop") size += align4(NLA_HDRLEN + entries[i].payload.length);
  }
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  for (let i = 0; i < entries.length; i++) {
    const verdict = verdicts[i];
    if (verdict.kind === "drop") continue;
    const entry = entries[i];
    if (entry.type !== JNLAL_ENTRY) {
      throw new RangeError("the summary does not describe this payload");
    }
    const start = entry.payload.byteOffset - payload.byteOffset - NLA_HDRLEN;
    out.set(payload.subarray(start, start + NLA_HDRLEN + entry.payload.length), at);
    if (verdict.kind === "clamp") {
      const [offset, littleEndian] = expirationField(entry, summary.format);
      if (offset < 0) throw new RangeError("the summary does not describe this payload");
      view.setUint32(at + NLA_HDRLEN + offset, verdict.expirationMs, littleEndian);
    }
    at += align4(NLA_HDRLEN + entry.payload.length);
  }
  return out;
}
