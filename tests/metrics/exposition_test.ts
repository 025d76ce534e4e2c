import assert from "node:assert/strict";
import { createCounters } from "../../lib/counters.ts";
import { LATENCY_BOUNDS_US, LatencyHistogram } from "../../lib/kernel/latency.ts";
import {
  COUNTER_HELP,
  counterName,
  formatMetrics,
  kernelStatName,
  type MetricsSnapshot,
  PEER_COUNTERS,
} from "../../lib/metrics/exposition.ts";
import { promtoolCheck, promtoolUnavailable, samples } from "./_promtool.ts";

const unavailable = promtoolUnavailable();

function snapshot(kernelStats?: Map<string, bigint | number>): MetricsSnapshot {
  const counters = createCounters();
  Object.keys(counters).forEach((k, i) => (counters[k as keyof typeof counters] = i * 7));
  const h = new LatencyHistogram();
  for (const us of [0.5, 3, 30, 30, 700, 250_000]) h.record(us);
  return {
    counters,
    ackLatencyUs: { bounds: LATENCY_BOUNDS_US, counts: h.counts(), sum: h.sum },
    info: {
      version: "0.1.0",
      joolVersion: "4.1.13",
      sessionFormat: "compact36",
      instance: 'we"ird\\name',
      mode: "plain",
    },
    kernelStats,
  };
}

Deno.test("every counter has a HELP text and a joold_*_total name", () => {
  assert.deepEqual(Object.keys(COUNTER_HELP).sort(), Object.keys(createCounters()).sort());
  assert.equal(counterName("kernelAddsSent"), "joold_kernel_adds_sent_total");
  assert.equal(kernelStatName("JSTAT_JOOLD_SSS_QUEUED"), "jool_joold_sss_queued_total");
  assert.equal(kernelStatName("jstat_joold_pkt-full"), "jool_joold_pkt_full_total");
});

Deno.test("the exposition holds each counter's value, a cumulative histogram and the info", () => {
  const s = snapshot();
  const text = formatMetrics(s);
  const got = samples(text);
  for (const [field, v] of Object.entries(s.counters)) {
    assert.equal(got.get(counterName(field as keyof typeof s.counters)), v, field);
    assert.match(text, new RegExp(`^# TYPE ${counterName(field as never)} counter$`, "m"));
  }
  const b = (le: string) => got.get(`joold_kernel_ack_latency_seconds_bucket{le="${le}"}`);
  assert.equal(b("0.000001"), 1);
  assert.equal(b("0.000005"), 2);
  assert.equal(b("0.00005"), 4);
  assert.equal(b("0.001"), 5);
  assert.equal(b("0.1"), 5);
  assert.equal(b("+Inf"), 6);
  assert.equal(got.get("joold_kernel_ack_latency_seconds_count"), 6);
  assert.ok(Math.abs(got.get("joold_kernel_ack_latency_seconds_sum")! - 0.2507635) < 1e-9);
  assert.match(
    text,
    /^joold_build_info\{version="0\.1\.0",jool_version="4\.1\.13",session_format="compact36",instance="we\\"ird\\\\name",mode="plain"\} 1$/m,
  );
  assert.doesNotMatch(text, /jool_joold_/, "no kernel counters without a source: absent, not 0");
});

Deno.test("the kernel's counters appear as jool_joold_*_total, bigints exactly", () => {
  const text = formatMetrics(
    snapshot(
      new Map<string, bigint | number>([
        ["JSTAT_JOOLD_SSS_QUEUED", 18446744073709551615n],
        ["JSTAT_JOOLD_ACKS", 4],
      ]),
    ),
  );
  assert.match(text, /^jool_joold_sss_queued_total 18446744073709551615$/m);
  assert.match(text, /^# TYPE jool_joold_acks_total counter$/m);
  assert.match(text, /^jool_joold_acks_total 4$/m);
});

Deno.test({
  name: `each unicast peer's counters as joold_peer_*_total{peer}, absent with a group${
    unavailable ? ` (promtool skipped: ${unavailable})` : ""
  }`,
  async fn() {
    const peers = [
      {
        destination: "[2001:db8::5]:6464",
        datagramsSent: 3,
        bytesSent: 300,
        sendErrors: 1,
        datagramsReceived: 2,
        bytesReceived: 90,
      },
      // Not a name a channel gives, but label values are escaped whatever they hold.
      {
        destination: 'we"ird\\peer\n',
        datagramsSent: 0,
        bytesSent: 0,
        sendErrors: 0,
        datagramsReceived: 0,
        bytesReceived: 0,
      },
    ];
    const text = formatMetrics({ ...snapshot(), peers });
    const got = samples(text);
    const v6 = '{peer="[2001:db8::5]:6464"}';
    assert.equal(got.get(`joold_peer_datagrams_sent_total${v6}`), 3);
    assert.equal(got.get(`joold_peer_bytes_sent_total${v6}`), 300);
    assert.equal(got.get(`joold_peer_send_errors_total${v6}`), 1);
    assert.equal(got.get(`joold_peer_datagrams_received_total${v6}`), 2);
    assert.equal(got.get(`joold_peer_bytes_received_total${v6}`), 90);
    assert.match(text, /^joold_peer_bytes_received_total\{peer="we\\"ird\\\\peer\\n"\} 0$/m);
    for (const [name, help] of PEER_COUNTERS) {
      assert.ok(
        text.includes(`# HELP ${name} ${help}\n# TYPE ${name} counter\n${name}${v6} `),
        name,
      );
      // One family: its samples follow its HELP and TYPE, in the peers' order.
      const lines = text.split("\n").filter((l) => l.startsWith(`${name}{`));
      assert.deepEqual(lines.map((l) => l.slice(0, l.indexOf("}") + 1)), [
        `${name}${v6}`,
        `${name}{peer="we\\"ird\\\\peer\\n"}`,
      ]);
    }
    if (unavailable === null) {
      const { code, output } = await promtoolCheck(text);
      assert.deepEqual({ code, output }, { code: 0, output: "" });
    }
    // A group (no peers): no series, not zeros, and no HELP either.
    assert.doesNotMatch(formatMetrics(snapshot()), /joold_peer_/);
  },
});

Deno.test({
  name: `promtool check metrics accepts the exposition${
    unavailable ? ` (skipped: ${unavailable})` : ""
  }`,
  ignore: unavailable !== null,
  async fn() {
    const text = formatMetrics(snapshot(new Map([["JSTAT_JOOLD_PKT_SENT", 3n]])));
    const { code, output } = await promtoolCheck(text);
    assert.equal(output, "");
    assert.equal(code, 0);
    // The checker can fail: a counter without its _total suffix is reported.
    const bad = await promtoolCheck("# HELP x_sent a\n# TYPE x_sent counter\nx_sent 1\n");
    assert.notEqual(bad.code, 0);
  },
});
