/**
 * The lab benchmark's yardstick for any daemon's kernel->ACK latency (guest/pcap.ts), on a real
 * capture: tcpdump on an nlmon device in translator J's namespace, Jool 4.1.13, our daemon on J,
 * `ss-max-sessions-per-packet 1` (tests/fixtures/nlmon: the first ten messages of a benchmark step
 * and six of the `jool session display` that followed it).
 */
import assert from "node:assert/strict";
import {
  analyzeCapture,
  bulkTimeline,
  formatAckLatency,
  LINKTYPE_NETLINK,
  netlinkHead,
  parsePcap,
  percentile,
} from "../../lab/guest/pcap.ts";
import { COMMANDS_4_1 } from "../../lib/jool/version.ts";

const CAPTURE = Deno.readFileSync(
  new URL("../fixtures/nlmon/4.1.13-j-ours.pcap", import.meta.url),
);
/** The Jool family id that kernel registered (nlmsg_type of every Jool message in the capture). */
const FAMILY = 35;
const OPTIONS = { family: FAMILY, ack: COMMANDS_4_1.JOOLD_ACK };

Deno.test("parsePcap reads tcpdump's nlmon capture: link type NETLINK, 16 records in order", () => {
  const c = parsePcap(CAPTURE);
  assert.equal(c.linktype, LINKTYPE_NETLINK);
  assert.equal(c.packets.length, 16);
  // Record 1: 1795432031.371943 s, 64 bytes captured (tcpdump -s 64).
  assert.equal(c.packets[0].us, 1795432031 * 1e6 + 371943);
  assert.equal(c.packets[0].data.length, 64);
  for (let i = 1; i < c.packets.length; i++) assert.ok(c.packets[i].us >= c.packets[i - 1].us);
});

Deno.test("netlinkHead: the kernel's batch, our ACK, nlctrl and a table dump", () => {
  const c = parsePcap(CAPTURE);
  const heads = c.packets.map((p) => netlinkHead(c.linktype, p.data));
  // The kernel's multicast batch: Jool family, sequence 0, command 0 (as in tests/fixtures/4.1.13).
  assert.deepEqual(heads[0], { pkttype: 4, type: FAMILY, seq: 0, cmd: 0 });
  // Our JOOLD_ACK: command 29, our own sequence number.
  assert.equal(heads[1]?.cmd, COMMANDS_4_1.JOOLD_ACK);
  assert.notEqual(heads[1]?.seq, 0);
  // `jool session display`: nlctrl (family 16), then SESSION_FOREACH (25) and replies with cmd 0
  // but the request's sequence number.
  assert.equal(heads[10]?.type, 16);
  assert.deepEqual(
    [heads[12]?.cmd, heads[13]?.cmd, heads[12]?.seq === heads[13]?.seq],
    [25, 0, true],
  );
});

Deno.test("analyzeCapture pairs each batch with the next ACK; table-dump replies are not batches", () => {
  const r = analyzeCapture(CAPTURE, OPTIONS);
  assert.equal(r.batches, 5);
  assert.equal(r.acked, 5);
  // ACK time minus batch time, from the record headers (µs): 409445-371943, 565800-563851,
  // 572578-565994, 574548-572672, 578226-574624; sorted.
  assert.deepEqual(r.latenciesUs, [1876, 1949, 3602, 6584, 37502]);
  assert.equal(
    formatAckLatency(r),
    "batches=5 acked=5 span_s=0.20 rate=25/s p50=3602us p90=37502us p99=37502us max=37502us mean=10303us",
  );
});

Deno.test("analyzeCapture with the wrong family or ACK command finds nothing to pair", () => {
  assert.equal(analyzeCapture(CAPTURE, { ...OPTIONS, family: 36 }).batches, 0);
  const r = analyzeCapture(CAPTURE, { ...OPTIONS, ack: 33 }); // 4.2's JOOLD_ACK
  assert.deepEqual([r.batches, r.acked], [5, 0]);
  assert.equal(formatAckLatency(r).includes("p50=-"), true);
});

Deno.test("parsePcap: big-endian and nanosecond files, a record cut by a killed tcpdump", () => {
  // The same first record rewritten as a big-endian nanosecond capture.
  const first = CAPTURE.subarray(24, 24 + 16 + 64);
  const le = new DataView(first.buffer, first.byteOffset);
  const out = new Uint8Array(24 + first.length + 10);
  const v = new DataView(out.buffer);
  v.setUint32(0, 0xa1b23c4d, false);
  v.setUint32(20, LINKTYPE_NETLINK, false);
  v.setUint32(24, le.getUint32(0, true), false);
  v.setUint32(28, le.getUint32(4, true) * 1000 + 500, false);
  v.setUint32(32, 64, false);
  v.setUint32(36, 64, false);
  out.set(first.subarray(16), 40);
  // Ten bytes of a record header the capture never finished: an error, not silence...
  assert.throws(() => parsePcap(out), /record header cut at byte 104/);
  // ...while a whole header with its data cut short ends the capture there.
  const cut = new Uint8Array(24 + 80 + 16 + 4);
  cut.set(out.subarray(0, 24 + 80));
  new DataView(cut.buffer).setUint32(24 + 80 + 8, 64, false);
  const c = parsePcap(cut);
  assert.equal(c.packets.length, 1);
  assert.equal(c.packets[0].us, 1795432031 * 1e6 + 371943.5);
  assert.deepEqual(netlinkHead(c.linktype, c.packets[0].data), {
    pkttype: 4,
    type: FAMILY,
    seq: 0,
    cmd: 0,
  });
  assert.throws(() => parsePcap(CAPTURE.subarray(24)), /bad magic/);
  assert.throws(() => parsePcap(new Uint8Array(10)), /shorter than a file header/);
  assert.equal(netlinkHead(1, first.subarray(16)), undefined); // not a netlink capture
});

Deno.test("percentile is nearest-rank", () => {
  const s = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  assert.deepEqual([0.5, 0.9, 0.99, 1].map((p) => percentile(s, p)), [5, 9, 10, 10]);
  assert.equal(percentile([], 0.5), NaN);
});

/**
 * A capture of the given messages, each the fixture's first record (the kernel's batch: SLL header,
 * nlmsghdr, genlmsghdr, cut at 64 bytes by tcpdump) with its time, sequence number and command
 * rewritten: the bytes tcpdump writes, with the fields the timeline reads chosen by the test.
 */
function captureOf(messages: { us: number; seq: number; cmd: number }[]): Uint8Array {
  const record = CAPTURE.subarray(24, 24 + 16 + 64);
  const out = new Uint8Array(24 + messages.length * record.length);
  out.set(CAPTURE.subarray(0, 24));
  messages.forEach(({ us, seq, cmd }, i) => {
    const at = 24 + i * record.length;
    out.set(record, at);
    const v = new DataView(out.buffer, at);
    v.setUint32(0, Math.floor(us / 1e6), true);
    v.setUint32(4, us % 1e6, true);
    v.setUint32(16 + 16 + 8, seq, true); // nlmsg_seq, after the SLL header
    out[at + 16 + 16 + 16] = cmd; // genlmsghdr.cmd
  });
  return out;
}

Deno.test("bulkTimeline: from J's advertise request to J's last batch and K's last JOOLD_ADD", () => {
  const { JOOLD_ADVERTISE, JOOLD_ADD, JOOLD_ACK } = COMMANDS_4_1;
  const t0 = 1_795_432_000_000_000;
  const j = captureOf([
    { us: t0 - 5000, seq: 0, cmd: 0 }, // a batch before the request: not part of the bulk
    { us: t0, seq: 7, cmd: JOOLD_ADVERTISE },
    { us: t0 + 1500, seq: 0, cmd: 0 },
    { us: t0 + 1900, seq: 8, cmd: JOOLD_ACK },
    { us: t0 + 2500, seq: 0, cmd: 0 },
    { us: t0 + 2600, seq: 9, cmd: JOOLD_ACK },
  ]);
  const k = captureOf([
    { us: t0 - 100, seq: 3, cmd: JOOLD_ADD }, // before the request: ignored
    { us: t0 + 2100, seq: 4, cmd: JOOLD_ADD },
    { us: t0 + 2200, seq: 0, cmd: 0 }, // K's kernel's own batch, not an add
    { us: t0 + 3250, seq: 5, cmd: JOOLD_ADD },
  ]);
  const options = { family: FAMILY, advertise: JOOLD_ADVERTISE, add: JOOLD_ADD };
  // K's sync interface: only the records' times count (tcpdump filtered it to the sync port).
  const sync = captureOf([
    { us: t0 - 10, seq: 0, cmd: 0 },
    { us: t0 + 1800, seq: 0, cmd: 0 },
    { us: t0 + 3000, seq: 0, cmd: 0 },
  ]);
  assert.deepEqual(bulkTimeline(j, k, options, sync), {
    batches: 2,
    adds: 2,
    firstBatchMs: 1.5,
    lastBatchMs: 2.5,
    firstAddMs: 2.1,
    lastAddMs: 3.25,
    addsAfterJLast: 1, // the one at 3.25 ms; J's last batch was at 2.5
    datagrams: 2,
    firstDatagramMs: 1.8,
    lastDatagramMs: 3,
  });
  const ceiling = bulkTimeline(j, undefined, options);
  assert.deepEqual(
    [
      ceiling.batches,
      ceiling.adds,
      ceiling.addsAfterJLast,
      ceiling.datagrams,
      Number.isNaN(ceiling.lastAddMs),
    ],
    [2, 0, 0, 0, true],
  );
  assert.throws(
    () => bulkTimeline(CAPTURE, k, options),
    /J's capture holds no JOOLD_ADVERTISE request/,
  );
});
