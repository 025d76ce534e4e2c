import assert from "node:assert/strict";
import { createCounters } from "../../lib/counters.ts";
import { Daemon } from "../../lib/daemon.ts";
import { checkMeaning, judgeSession } from "../../lib/jool/meaning.ts";
import {
  decodePayload,
  encodeCompact36,
  encodeCompact48,
  encodeNested,
  type Session,
} from "../../lib/jool/session.ts";
import {
  decodeTimeouts,
  JNLAG_TTL_ICMP,
  JNLAG_TTL_TCP_EST,
  JNLAG_TTL_TCP_TRANS,
  JNLAG_TTL_UDP,
  JOOL_DEFAULT_TIMEOUTS,
  type SessionTimeouts,
} from "../../lib/jool/timeouts.ts";
import { silentLogger } from "../../lib/log.ts";
import { concat, encodeAttribute, u8Attribute } from "../../lib/netlink/attribute.ts";
import { fixture, VERSIONS } from "../_fixtures.ts";

const T = JOOL_DEFAULT_TIMEOUTS;

/**
 * Every (protocol, state, timer) Jool 4.1 can hold, written out from its source
 * (steps/filtering_and_updating.c, db/bib/db.c), not from the implementation's table.
 */
const LEGAL = new Set([
  "UDP 0 EST",
  "ICMP 0 EST",
  "TCP ESTABLISHED EST",
  "TCP V4_FIN_RCV EST",
  "TCP V6_FIN_RCV EST",
  "TCP V6_INIT TRANS",
  "TCP V4_INIT TRANS",
  "TCP V4_FIN_RCV TRANS",
  "TCP V6_FIN_RCV TRANS",
  "TCP V4_FIN_V6_FIN_RCV TRANS",
  "TCP TRANS TRANS",
  "TCP V4_INIT SYN4",
]);
const PROTO = ["TCP", "UDP", "ICMP"];
const TCP_STATE = [
  "ESTABLISHED",
  "V6_INIT",
  "V4_INIT",
  "V4_FIN_RCV",
  "V6_FIN_RCV",
  "V4_FIN_V6_FIN_RCV",
  "TRANS",
  "7",
];
const TIMER = ["EST", "TRANS", "SYN4", "3"];
function name(proto: number, state: number, timer: number): string {
  return `${PROTO[proto]} ${proto === 0 ? TCP_STATE[state] : state} ${TIMER[timer]}`;
}

Deno.test("judgeSession accepts exactly the protocol/state/timer combinations Jool can hold", () => {
  for (let proto = 0; proto < 3; proto++) {
    for (let state = 0; state < 8; state++) {
      for (let timer = 0; timer < 4; timer++) {
        const verdict = judgeSession({ proto, state, timer, expirationMs: 0 }, T);
        const label = name(proto, state, timer);
        if (LEGAL.has(label)) assert.equal(verdict.kind, "legal", label);
        else assert.equal(verdict.kind, "drop", label);
      }
    }
  }
});

Deno.test("judgeSession names the reason of each drop", () => {
  const rows: [Pick<Session, "proto" | "state" | "timer">, string][] = [
    [{ proto: 0, state: 7, timer: 0 }, "state"],
    [{ proto: 0, state: 255, timer: 1 }, "state"], // the nested format carries a whole u8
    [{ proto: 1, state: 1, timer: 0 }, "state"],
    [{ proto: 2, state: 6, timer: 0 }, "state"],
    [{ proto: 0, state: 0, timer: 3 }, "timer"],
    [{ proto: 1, state: 0, timer: 1 }, "timer"],
    [{ proto: 2, state: 0, timer: 2 }, "timer"],
    [{ proto: 0, state: 6, timer: 0 }, "wrongTimer"], // WARN() in tcp_est_expire_cb
    [{ proto: 0, state: 1, timer: 0 }, "wrongTimer"],
    [{ proto: 0, state: 5, timer: 0 }, "wrongTimer"],
    [{ proto: 0, state: 0, timer: 1 }, "wrongTimer"],
    [{ proto: 0, state: 0, timer: 2 }, "wrongTimer"],
    [{ proto: 3, state: 0, timer: 0 }, "protocol"],
  ];
  for (const [s, problem] of rows) {
    assert.deepEqual(judgeSession({ ...s, expirationMs: 0 }, T), { kind: "drop", problem });
  }
});

Deno.test("judgeSession clamps an expiration beyond the local lifetime of the session's timer", () => {
  const mine: SessionTimeouts = {
    udp: 120_000,
    tcpEst: 7_200_000,
    tcpTrans: 240_000,
    icmp: 30_000,
  };
  const rows: [Pick<Session, "proto" | "state" | "timer">, number][] = [
    [{ proto: 1, state: 0, timer: 0 }, mine.udp],
    [{ proto: 2, state: 0, timer: 0 }, mine.icmp],
    [{ proto: 0, state: 0, timer: 0 }, mine.tcpEst],
    [{ proto: 0, state: 6, timer: 1 }, mine.tcpTrans],
    [{ proto: 0, state: 2, timer: 2 }, 6000], // TCP_INCOMING_SYN, not configurable
  ];
  for (const [s, limit] of rows) {
    for (const expirationMs of [0, limit - 1, limit]) {
      assert.deepEqual(judgeSession({ ...s, expirationMs }, mine), { kind: "legal" });
    }
    for (const expirationMs of [limit + 1, 0xffffffff]) {
      assert.deepEqual(judgeSession({ ...s, expirationMs }, mine), {
        kind: "clamp",
        expirationMs: limit,
      });
    }
  }
});

Deno.test("every captured datagram is legal and passes byte for byte (the same view, no copy)", () => {
  for (const version of VERSIONS) {
    for (const file of ["d-udp-payload-1session", "d-udp-payload-4sessions"]) {
      const payload = fixture(version, file);
      const counters = createCounters();
      assert.equal(checkMeaning(payload, decodePayload(payload), T, counters), payload);
      assert.deepEqual(counters, createCounters(), `${version} ${file}: nothing counted`);
    }
  }
  const three = fixture("4.1.13", "d-udp-payload-3sessions");
  assert.equal(checkMeaning(three, decodePayload(three), T, createCounters()), three);
});

const BASE: Session = {
  proto: 0,
  src6: Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 8]),
  src6Port: 40000,
  dst6: Uint8Array.from([0, 0x64, 0xff, 0x9b, ...new Array(8).fill(0), 192, 0, 2, 8]),
  dst6Port: 80,
  src4: Uint8Array.of(192, 0, 2, 1),
  src4Port: 61000,
  dst4: Uint8Array.of(192, 0, 2, 8),
  dst4Port: 80,
  expirationMs: 7_000_000,
  state: 0,
  timer: 0,
};

const ENCODERS = [
  ["nested", encodeNested],
  ["compact48", encodeCompact48],
  ["compact36", encodeCompact36],
] as const;

for (const [format, encode] of ENCODERS) {
  Deno.test(`checkMeaning (${format}): a clamp rewrites only the expiration of that session`, () => {
    const legal = encode(BASE);
    const forged = encode({ ...BASE, src6Port: 40001, expirationMs: 0xffffffff });
    const payload = concat(legal, forged, legal);
    const counters = createCounters();
    const out = checkMeaning(payload, decodePayload(payload), T, counters)!;
    assert.equal(out.length, payload.length);
    assert.deepEqual(out.subarray(0, legal.length), legal);
    assert.deepEqual(out.subarray(legal.length + forged.length), legal);
    assert.deepEqual(
      out.subarray(legal.length, legal.length + forged.length),
      encode({ ...BASE, src6Port: 40001, expirationMs: T.tcpEst }),
    );
    const differing = [...payload].filter((b, i) => b !== out[i]).length;
    assert.ok(differing >= 1 && differing <= 4, `${differing} bytes changed`);
    assert.equal(counters.netSessionsClamped, 1);
    assert.notEqual(out, payload, "the datagram was copied, not written in place");
    assert.deepEqual(payload.subarray(legal.length, legal.length + forged.length), forged);
  });

  Deno.test(`checkMeaning (${format}): illegal sessions are dropped, the others kept byte for byte`, () => {
    const a = encode(BASE);
    const b = encode({ ...BASE, src6Port: 40002, state: 6, timer: 1, expirationMs: 1000 });
    const bad = [
      encode({ ...BASE, state: 7 }),
      encode({ ...BASE, proto: 1, timer: 1 }),
      encode({ ...BASE, state: 6, timer: 0 }),
    ];
    const payload = concat(bad[0], a, bad[1], b, bad[2]);
    const counters = createCounters();
    const out = checkMeaning(payload, decodePayload(payload), T, counters);
    assert.deepEqual(out, concat(a, b));
    assert.equal(counters.netSessionsBadState, 1);
    assert.equal(counters.netSessionsBadTimer, 1);
    assert.equal(counters.netSessionsWrongTimer, 1);
    assert.equal(counters.netDatagramsAllDropped, 0);
  });

  Deno.test(`checkMeaning (${format}): a datagram of only illegal sessions goes nowhere`, () => {
    const payload = concat(encode({ ...BASE, state: 7 }), encode({ ...BASE, state: 1 }));
    const counters = createCounters();
    assert.equal(checkMeaning(payload, decodePayload(payload), T, counters), null);
    assert.equal(counters.netDatagramsAllDropped, 1);
    assert.equal(counters.netSessionsBadState + counters.netSessionsWrongTimer, 2);
  });
}

Deno.test("checkMeaning on mutated captured datagrams: the output always decodes and is always legal", () => {
  let seed = 15;
  const random = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (const version of VERSIONS) {
    const original = fixture(version, "d-udp-payload-4sessions");
    for (let round = 0; round < 500; round++) {
      const payload = original.slice();
      for (let k = 0; k < 3; k++) payload[Math.floor(random() * payload.length)] = random() * 256;
      let summary;
      try {
        summary = decodePayload(payload);
      } catch (error) {
        assert.ok(error instanceof RangeError);
        continue;
      }
      const out = checkMeaning(payload, summary, T, createCounters());
      if (out === null) continue;
      for (const s of decodePayload(out).sessions) {
        assert.equal(judgeSession(s, T).kind, "legal");
      }
    }
  }
});

function timeoutAttribute(id: number, ms: number): Uint8Array {
  const value = new Uint8Array(4);
  new DataView(value.buffer).setUint32(0, ms, true); // nla_put_u32: host order
  return encodeAttribute(id, value);
}

Deno.test("decodeTimeouts reads the four timeout globals of a GLOBAL_FOREACH reply", () => {
  // As handle_global_foreach serializes them: every global, in id order, the joold ones last.
  const reply = concat(
    u8Attribute(1, 1),
    timeoutAttribute(JNLAG_TTL_TCP_EST, 10_800_000),
    timeoutAttribute(JNLAG_TTL_TCP_TRANS, 300_000),
    timeoutAttribute(JNLAG_TTL_UDP, 180_000),
    timeoutAttribute(JNLAG_TTL_ICMP, 45_500),
    u8Attribute(27, 1),
  );
  assert.deepEqual(decodeTimeouts(reply), {
    udp: 180_000,
    tcpEst: 10_800_000,
    tcpTrans: 300_000,
    icmp: 45_500,
  });
  assert.deepEqual(decodeTimeouts(u8Attribute(27, 1)), JOOL_DEFAULT_TIMEOUTS);
  assert.throws(() => decodeTimeouts(u8Attribute(JNLAG_TTL_UDP, 1)), {
    name: "RangeError",
    message: "the udp timeout global (22) has 1 bytes, expected 4",
  });
});

Deno.test("the daemon hands no forged session to the kernel: clamped, or dropped", () => {
  const adds: Uint8Array[] = [];
  let deliver: (p: Uint8Array) => void = () => {};
  const counters = createCounters();
  new Daemon({
    kernel: {
      onBatch() {},
      onError() {},
      add: (p) => adds.push(p.slice()),
      advertise() {},
      close() {},
    },
    network: { onDatagram: (h) => (deliver = h), send() {}, close() {} },
    counters,
    log: silentLogger,
    localFormat: "compact36",
  }).start();
  const udp = { ...BASE, proto: 1 };
  deliver(encodeCompact36({ ...udp, expirationMs: 0xffffffff })); // 49.7 days
  deliver(encodeCompact36({ ...BASE, state: 7, timer: 1 }));
  deliver(encodeCompact36({ ...BASE, state: 6, timer: 0 }));
  const legal = fixture("4.1.13", "d-udp-payload-4sessions");
  deliver(legal);
  assert.equal(adds.length, 2);
  assert.deepEqual(adds[0], encodeCompact36({ ...udp, expirationMs: 300_000 }));
  assert.deepEqual(adds[1], legal);
  assert.equal(counters.netSessionsClamped, 1);
  assert.equal(counters.netSessionsBadState, 1);
  assert.equal(counters.netSessionsWrongTimer, 1);
  assert.equal(counters.netDatagramsAllDropped, 2);
});
