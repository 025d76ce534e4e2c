import assert from "node:assert/strict";
import { concat, encodeAttribute, NLA_F_NESTED } from "../../lib/netlink/attribute.ts";
import { parseIPv4, parseIPv6 } from "../../lib/config/address.ts";
import { formatAddress } from "../../ffi/sockaddr.ts";
import { decodePayload, encodeNested, type Session } from "../../lib/jool/session.ts";
import {
  embedIPv4,
  JNLAG_POOL6,
  JNLAP_ADDR,
  JNLAP_LEN,
  type Pool6,
  pool6FromGlobals,
  translatePayload,
  translateSession,
} from "../../lib/jool/translate.ts";
import { COMMANDS_4_1, parseVersion, type SessionFormat } from "../../lib/jool/version.ts";
import { batchPayload } from "../../lib/jool/message.ts";
import type { NetConfig } from "../../lib/config/types.ts";
import { parseCommandLine } from "../../lib/config/args.ts";
import { resolveConfig } from "../../lib/config/resolve.ts";
import { ConfigError } from "../../lib/config/error.ts";
import { NETLINK_USERSOCK } from "../../lib/netlink/conn.ts";
import { Reactor } from "../../lib/reactor.ts";
import { Daemon } from "../../lib/daemon.ts";
import { createCounters } from "../../lib/counters.ts";
import { startDaemon } from "../../lib/start.ts";
import { createLogger } from "../../lib/log.ts";
import { FakeKernel } from "../_fake_kernel.ts";
import { fixture } from "../_fixtures.ts";
import { Netns, netnsUnavailable, veth } from "../_netns.ts";
import { waitFor } from "../_udp.ts";

/** The lab's pool6, the one both recordings ran with. */
const POOL6: Pool6 = { address: parseIPv6("64:ff9b::")!, length: 96 };

/** Overwrites a big-endian field of a copy of `bytes`. */
function patch(bytes: Uint8Array, at: number, size: 2 | 4, value: number): Uint8Array {
  const out = bytes.slice();
  const v = new DataView(out.buffer);
  if (size === 2) v.setUint16(at, value, false);
  else v.setUint32(at, value, false);
  return out;
}

/**
 * Overwrites the ports of a captured nested entry: the JNLATA_PORT attributes (header 06 00 02 00,
 * then a u16 in host order) in the kernel's order src6, dst6, src4, dst4.
 */
function patchNestedPorts(bytes: Uint8Array, ports: number[]): Uint8Array {
  const out = bytes.slice();
  const at: number[] = [];
  for (let i = 0; i + 6 <= out.length; i++) {
    if (out[i] === 6 && out[i + 1] === 0 && out[i + 2] === 2 && out[i + 3] === 0) at.push(i + 4);
  }
  assert.equal(at.length, ports.length, "one port attribute per port");
  at.forEach((offset, i) => new DataView(out.buffer).setUint16(offset, ports[i], true));
  return out;
}

Deno.test("a captured 4.1.9 ICMP session becomes the record a 4.1.13 kernel sends", () => {
  // Both recordings hold an ICMP echo 2001:db8::8 -> 192.0.2.8 through 192.0.2.1, 60 s left;
  // only the identifiers differ (4.1.9: 272 -> 23042; 4.1.13: 322 -> 39035). The 4.1.13 record
  // with 4.1.9's identifiers in its port fields (offsets 28, 30, 32 after the 4-byte entry header)
  // is what a 4.1.13 kernel sends for 4.1.9's session.
  const t = translatePayload(fixture("4.1.9", "d-udp-payload-1session"), "compact36");
  assert.equal(t.from, "nested");
  assert.equal(t.translated, 1);
  let expected: Uint8Array = fixture("4.1.13", "d-udp-payload-1session");
  expected = patch(expected, 4 + 28, 2, 272);
  expected = patch(expected, 4 + 30, 2, 23042);
  expected = patch(expected, 4 + 32, 2, 23042);
  assert.deepEqual(t.payload, expected);
});

Deno.test("four captured 4.1.9 UDP sessions become 4.1.13 records, in order, field by field", () => {
  const nested = decodePayload(fixture("4.1.9", "d-udp-payload-4sessions")).sessions;
  const t = translatePayload(fixture("4.1.9", "d-udp-payload-4sessions"), "compact36");
  assert.equal(t.translated, 4);
  // The 4.1.13 capture: the same client, pool4 address and server (UDP to 192.0.2.8 port 7);
  // give each record 4.1.9's ports and expiration.
  let expected: Uint8Array = fixture("4.1.13", "d-udp-payload-4sessions");
  nested.forEach((s, i) => {
    const base = 40 * i + 4;
    expected = patch(expected, base + 24, 4, s.expirationMs);
    expected = patch(expected, base + 28, 2, s.src6Port);
    expected = patch(expected, base + 30, 2, s.src4Port);
    expected = patch(expected, base + 32, 2, s.dst4Port!);
  });
  assert.deepEqual(t.payload, expected);
});

Deno.test("a captured 4.1.13 session becomes the nested entry a 4.1.9 kernel sends, with pool6", () => {
  const t = translatePayload(fixture("4.1.13", "d-udp-payload-1session"), "nested", POOL6);
  assert.equal(t.from, "compact36");
  // 4.1.9's capture of the same kind of session, with 4.1.13's identifiers: src6 and dst6 carry the
  // client's id (322), src4 and dst4 the pool4 id (39035).
  const expected = patchNestedPorts(fixture("4.1.9", "d-udp-payload-1session"), [
    322,
    322,
    39035,
    39035,
  ]);
  assert.deepEqual(t.payload, expected);
});

Deno.test("captured datagrams survive a round trip through every other format", () => {
  const cases: [string, Uint8Array, SessionFormat, SessionFormat][] = [];
  for (const name of ["d-udp-payload-1session", "d-udp-payload-4sessions"]) {
    cases.push([`4.1.9 ${name}`, fixture("4.1.9", name), "nested", "compact36"]);
    cases.push([`4.1.9 ${name}`, fixture("4.1.9", name), "nested", "compact48"]);
    cases.push([`4.1.13 ${name}`, fixture("4.1.13", name), "compact36", "nested"]);
    cases.push([`4.1.13 ${name}`, fixture("4.1.13", name), "compact36", "compact48"]);
  }
  for (const [what, bytes, home, via] of cases) {
    const there = translatePayload(bytes, via, POOL6);
    assert.equal(there.from, home, what);
    assert.equal(decodePayload(there.payload!).format, via, what);
    const back = translatePayload(there.payload!, home, POOL6);
    assert.deepEqual(back.payload, bytes, `${what} via ${via}`);
  }
});

Deno.test("a 48-byte record is the 4.1.12 layout: src6, dst6, src4, expiration, ports, flags", () => {
  const [s] = decodePayload(fixture("4.1.9", "d-udp-payload-1session")).sessions;
  const t = translatePayload(fixture("4.1.9", "d-udp-payload-1session"), "compact48");
  const expected = new Uint8Array(52);
  const v = new DataView(expected.buffer);
  v.setUint16(0, 52, true); // nla_len, host order
  v.setUint16(2, 1, true); // JNLAL_ENTRY, not nested
  expected.set(s.src6, 4);
  expected.set(parseIPv6("64:ff9b::192.0.2.8")!, 20);
  expected.set(parseIPv4("192.0.2.1")!, 36);
  v.setUint32(40, 60_000, false);
  v.setUint16(44, 272, false); // src6 port
  v.setUint16(46, 272, false); // dst6 port (ICMP: the client's id)
  v.setUint16(48, 23042, false); // src4 port
  v.setUint16(50, 2 << 5, false); // ICMP, state 0, timer 0
  assert.deepEqual(t.payload, expected);
});

Deno.test("a 36-byte record cannot become nested or 48-byte without the local pool6", () => {
  for (const to of ["nested", "compact48"] as const) {
    const t = translatePayload(fixture("4.1.13", "d-udp-payload-4sessions"), to);
    assert.equal(t.payload, null);
    assert.equal(t.translated, 0);
    assert.deepEqual([...t.refused], [["no-pool6", 4]]);
    assert.match(t.details.get("no-pool6")!, /needs dst6.*pool6 is unknown/);
  }
});

const NESTED_UDP: Session = {
  proto: 1,
  state: 0,
  timer: 0,
  expirationMs: 300_000,
  src6: parseIPv6("2001:db8::8")!,
  src6Port: 5002,
  dst6: parseIPv6("64:ff9b::192.0.2.8")!,
  dst6Port: 7,
  src4: parseIPv4("192.0.2.1")!,
  src4Port: 62707,
  dst4: parseIPv4("192.0.2.8")!,
  dst4Port: 7,
};

Deno.test("sessions a target kernel would rebuild differently are refused, each with its reason", () => {
  const rows: [string, Session, SessionFormat, Pool6 | undefined, string][] = [
    ["a TCP state of 9", { ...NESTED_UDP, proto: 0, state: 9 }, "compact36", undefined, "range"],
    ["a timer of 4", { ...NESTED_UDP, proto: 0, timer: 4 }, "compact48", undefined, "range"],
    [
      "a dst6 port other than dst4's",
      { ...NESTED_UDP, dst6Port: 8 },
      "compact36",
      undefined,
      "underivable",
    ],
    [
      "a dst6 outside the local pool6",
      { ...NESTED_UDP, dst6: parseIPv6("2001:db8:64::192.0.2.8")! },
      "compact36",
      POOL6,
      "underivable",
    ],
    [
      "a pool6 other than /96, for 4.1.12",
      { ...NESTED_UDP, dst6: parseIPv6("2001:db8:c000:208::")! },
      "compact48",
      undefined,
      "underivable",
    ],
    [
      "a dst4 port other than dst6's, for 4.1.12",
      { ...NESTED_UDP, dst4Port: 8 },
      "compact48",
      undefined,
      "underivable",
    ],
  ];
  for (const [what, session, to, pool6, reason] of rows) {
    const t = translateSession(session, to, pool6);
    assert.equal(t.ok, false, what);
    if (!t.ok) assert.equal(t.reason, reason, what);
  }
  // A nested target takes any state and timer byte: nothing is narrowed.
  assert.ok(translateSession({ ...NESTED_UDP, proto: 0, state: 9 }, "nested").ok);
});

Deno.test("a datagram with one refused session keeps the others, in order", () => {
  const good = encodeNested(NESTED_UDP);
  const bad = encodeNested({ ...NESTED_UDP, src6Port: 5003, dst6Port: 9 });
  const good2 = encodeNested({ ...NESTED_UDP, src6Port: 5004 });
  const t = translatePayload(concat(good, bad, good2), "compact36");
  assert.equal(t.translated, 2);
  assert.deepEqual([...t.refused], [["underivable", 1]]);
  const ports = decodePayload(t.payload!).sessions.map((s) => s.src6Port);
  assert.deepEqual(ports, [5002, 5004]);
});

Deno.test("embedIPv4 follows RFC 6052's examples for every prefix length", () => {
  // RFC 6052, section 2.4: 192.0.2.33 under each prefix length.
  const rows: [string, number, string][] = [
    ["2001:db8::", 32, "2001:db8:c000:221::"],
    ["2001:db8:100::", 40, "2001:db8:1c0:2:21::"],
    ["2001:db8:122::", 48, "2001:db8:122:c000:2:2100::"],
    ["2001:db8:122:300::", 56, "2001:db8:122:3c0:0:221::"],
    ["2001:db8:122:344::", 64, "2001:db8:122:344:c0:2:2100:0"],
    ["2001:db8:122:344::", 96, "2001:db8:122:344::c000:221"],
  ];
  for (const [prefix, length, expected] of rows) {
    const got = embedIPv4({ address: parseIPv6(prefix)!, length }, parseIPv4("192.0.2.33")!);
    assert.equal(formatAddress(got), expected, `/${length}`);
  }
  assert.throws(() => embedIPv4({ address: new Uint8Array(16), length: 80 }, new Uint8Array(4)), {
    name: "RangeError",
  });
});

Deno.test("pool6FromGlobals reads the kernel's JNLAG_POOL6 nest, and an unset pool6 as none", () => {
  const nest = (inner: Uint8Array) => encodeAttribute(JNLAG_POOL6 | NLA_F_NESTED, inner);
  const set = nest(
    concat(
      encodeAttribute(JNLAP_ADDR, parseIPv6("64:ff9b::")!),
      encodeAttribute(JNLAP_LEN, Uint8Array.of(96)),
    ),
  );
  const enabled = encodeAttribute(1, Uint8Array.of(1));
  const pool6 = pool6FromGlobals(concat(enabled, set));
  assert.equal(pool6?.length, 96);
  assert.equal(formatAddress(pool6!.address), "64:ff9b::");
  // jnla_put_prefix6 with no prefix: a length 0 and no address.
  assert.equal(
    pool6FromGlobals(concat(enabled, nest(encodeAttribute(JNLAP_LEN, Uint8Array.of(0))))),
    undefined,
  );
  assert.equal(pool6FromGlobals(Uint8Array.of(0xff, 0xff, 1, 0)), undefined);
});

Deno.test("translatePayload throws only RangeError on mutated captures (fuzz)", () => {
  let seed = 0x6a6f6f6c;
  const random = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const sources = [
    fixture("4.1.9", "d-udp-payload-4sessions"),
    fixture("4.1.13", "d-udp-payload-4sessions"),
  ];
  const targets: SessionFormat[] = ["nested", "compact48", "compact36"];
  for (let i = 0; i < 3000; i++) {
    const bytes = sources[i % 2].slice(0, 1 + Math.floor(random() * sources[i % 2].length));
    for (let k = 0; k < 3; k++) bytes[Math.floor(random() * bytes.length)] = random() * 256;
    try {
      const t = translatePayload(bytes, targets[i % 3], POOL6);
      if (t.payload !== null) decodePayload(t.payload); // what it emits is well formed
    } catch (error) {
      assert.ok(error instanceof RangeError, String(error));
    }
  }
});

const unavailable = netnsUnavailable();

/** A daemon as cli.ts starts it, in `ns`, over a fake kernel of `recording` with `pool6`. */
async function translatingNode(
  ns: Netns,
  reactor: Reactor,
  recording: "4.1.9" | "4.1.13",
  pool6: Pool6 | null,
  lines: string[],
) {
  const kernel = ns.enter(() => new FakeKernel(recording));
  kernel.state.pool6 = pool6;
  const server = kernel.start();
  const net: NetConfig = {
    multicastAddress: "ff08::db8:64:64",
    multicastPort: "6464",
    inInterface: "sync0",
    outInterface: "sync0",
    ttl: 1,
    reuseAddress: true,
    translateSessions: true,
  };
  const daemon = await startDaemon(
    {
      mod: { instance: "default" },
      net,
      stats: null,
      logLevel: "info",
      enableSync: false,
      advertiseOnStart: false,
    },
    {
      reactor,
      log: createLogger("info", (l) => lines.push(`${recording} ${l}`)),
      kernel: {
        protocol: NETLINK_USERSOCK,
        peerPortId: kernel.portId,
        moduleVersion: parseVersion(recording),
      },
      inNamespace: (open) => ns.enter(open),
    },
  );
  return {
    kernel,
    daemon,
    adds: () => kernel.requests(COMMANDS_4_1.JOOLD_ADD).map((r) => batchPayload(r.jool!)!),
    async close() {
      await daemon.stop();
      server.stop();
      kernel.close();
    },
  };
}

Deno.test({
  name: `a 4.1.9 daemon and a 4.1.13 daemon with "translate sessions" sync both ways, each ` +
    `kernel getting its own format${unavailable ? ` (skipped: ${unavailable})` : ""}`,
  ignore: unavailable !== null,
  async fn() {
    const a = new Netns("a");
    const b = new Netns("b");
    const reactor = new Reactor();
    const running = reactor.run();
    const nodes: { close(): Promise<void> }[] = [];
    const lines: string[] = [];
    try {
      veth(a, "sync0", ["2001:db8:ff08::4/64"], b, "sync0", ["2001:db8:ff08::5/64"]);
      const old = await translatingNode(a, reactor, "4.1.9", POOL6, lines);
      nodes.push(old);
      const upgraded = await translatingNode(b, reactor, "4.1.13", null, lines);
      nodes.push(upgraded);
      assert.equal(formatAddress(old.daemon.startup.pool6!.address), "64:ff9b::");
      assert.equal(upgraded.daemon.startup.pool6, undefined);

      // 4.1.9 -> 4.1.13: the nested batch reaches the 4.1.13 kernel as 36-byte records.
      old.kernel.sendBatch(old.daemon.portId, fixture("4.1.9", "d-udp-payload-1session"));
      await waitFor(() => upgraded.adds().length === 1, "JOOLD_ADD on the 4.1.13 side");
      let expected: Uint8Array = fixture("4.1.13", "d-udp-payload-1session");
      expected = patch(expected, 4 + 28, 2, 272);
      expected = patch(expected, 4 + 30, 2, 23042);
      expected = patch(expected, 4 + 32, 2, 23042);
      assert.deepEqual(upgraded.adds()[0], expected);

      // 4.1.13 -> 4.1.9: the 36-byte records reach the 4.1.9 kernel nested, dst6 from its pool6.
      upgraded.kernel.sendBatch(
        upgraded.daemon.portId,
        fixture("4.1.13", "d-udp-payload-4sessions"),
      );
      await waitFor(() => old.adds().length === 1, "JOOLD_ADD on the 4.1.9 side");
      const nested = decodePayload(old.adds()[0]);
      assert.equal(nested.format, "nested");
      assert.deepEqual(
        nested.sessions.map((s) => [formatAddress(s.dst6!), s.dst6Port, s.src6Port]),
        [
          ["64:ff9b::c000:208", 7, 5001],
          ["64:ff9b::c000:208", 7, 5003],
          ["64:ff9b::c000:208", 7, 5004],
          ["64:ff9b::c000:208", 7, 5002],
        ],
      );
      assert.deepEqual(
        translatePayload(old.adds()[0], "compact36").payload,
        fixture("4.1.13", "d-udp-payload-4sessions"),
      );

      for (const n of [old, upgraded]) {
        assert.equal(n.daemon.counters.netTranslatedDatagrams, 1);
        assert.equal(n.daemon.counters.netForeignFormatDatagrams, 0);
        assert.equal(n.daemon.counters.kernelAddsSent, 1);
      }
      assert.equal(old.daemon.counters.netTranslatedSessions, 4);
      assert.equal(upgraded.daemon.counters.netTranslatedSessions, 1);
      assert.deepEqual(lines.filter((l) => l.includes("warn")), []);
      assert.deepEqual(lines.filter((l) => l.includes("translate sessions:")), [
        "4.1.9 joold: info: translate sessions: datagrams of other Jool session formats become nested sessions for this kernel (pool6 64:ff9b::/96)\n",
        "4.1.13 joold: info: translate sessions: datagrams of other Jool session formats become compact36 sessions for this kernel (pool6 unknown)\n",
      ]);
    } finally {
      for (const n of nodes) await n.close();
      reactor.stop();
      await running;
      a.dispose();
      b.dispose();
    }
  },
});

Deno.test("a daemon without the local pool6 counts and warns the 36-byte records it refuses", () => {
  // The daemon core alone, over recording channels: the refusal path, rate limited per reason.
  const adds: Uint8Array[] = [];
  let onDatagram: (p: Uint8Array) => void = () => {};
  const warnings: string[] = [];
  const counters = createCounters();
  let now = 0;
  new Daemon({
    kernel: {
      onBatch() {},
      onError() {},
      add: (p) => void adds.push(p.slice()),
      advertise() {},
      close() {},
    },
    network: { onDatagram: (h) => (onDatagram = h), send() {}, close() {} },
    counters,
    log: { error() {}, warn: (m) => warnings.push(m), info() {}, debug() {} },
    localFormat: "nested",
    translate: true,
    now: () => now,
  }).start();
  onDatagram(fixture("4.1.13", "d-udp-payload-4sessions"));
  onDatagram(fixture("4.1.13", "d-udp-payload-1session"));
  now += 10_000;
  onDatagram(fixture("4.1.13", "d-udp-payload-1session"));
  assert.deepEqual(adds, []);
  assert.equal(counters.netUntranslatableNoPool6, 6);
  assert.equal(counters.netTranslatedDatagrams, 0);
  assert.deepEqual(warnings, [
    "could not translate 4 of 4 compact36 sessions from the sync group into the local nested format: a nested session needs dst6, which a 36-byte record omits, and the local pool6 is unknown",
    "could not translate 1 of 1 compact36 sessions from the sync group into the local nested format: a nested session needs dst6, which a 36-byte record omits, and the local pool6 is unknown (and 1 more like it since the last report)",
  ]);
  // A datagram the translation can take still goes through: 48-byte records carry dst6.
  onDatagram(translatePayload(fixture("4.1.9", "d-udp-payload-1session"), "compact48").payload!);
  assert.deepEqual(adds, [fixture("4.1.9", "d-udp-payload-1session")]);
});

Deno.test('"translate sessions" is off by default, set by the net file or --net.translate', () => {
  const group = "--net.mcast.addr=ff08::db8:64:64";
  const resolve = (args: string[], file = "{}") =>
    resolveConfig(parseCommandLine(args), () => file).config.net?.translateSessions;
  assert.equal(resolve([group]), false);
  assert.equal(resolve([group, "--net.translate=true"]), true);
  assert.equal(resolve([group, "--net.translate", "1"]), true);
  assert.equal(
    resolve(["--net=n.json"], '{ "multicast address": "ff08::1", "translate sessions": true }'),
    true,
  );
  assert.equal(
    resolve(
      ["--net=n.json", "--net.translate=false"],
      '{ "multicast address": "ff08::1", "translate sessions": true }',
    ),
    false,
  );
  assert.throws(() => resolve([group, "--net.translate=yes"]), (e: Error) => {
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /--net\.translate.*must be true, false, 1 or 0, got "yes"/);
    return true;
  });
  assert.throws(
    () =>
      resolve(["--net=n.json"], '{ "multicast address": "ff08::1", "translate sessions": "on" }'),
    /n\.json.*translate sessions.*must be true, false, 1 or 0/,
  );
});
