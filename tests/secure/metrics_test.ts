/** Secure sync's part of the scrape: promtool accepts it, and it says what the state is. */
import assert from "node:assert/strict";
import { createCounters } from "../../lib/counters.ts";
import { formatMetrics } from "../../lib/metrics/exposition.ts";
import { promtoolCheck, promtoolUnavailable, samples } from "../metrics/_promtool.ts";

const unavailable = promtoolUnavailable();

Deno.test({
  name: `the secure-sync gauges: sync-ready, the ring, one series per live peer${
    unavailable ? ` (promtool skipped: ${unavailable})` : ""
  }`,
  async fn() {
    const counters = createCounters();
    counters.netSecureRecovered = 3;
    const text = formatMetrics({
      counters,
      ackLatencyUs: { bounds: [100], counts: [0, 0], sum: 0 },
      info: {
        version: "0",
        joolVersion: "4.1.13",
        sessionFormat: "compact36",
        instance: "default",
        mode: "plain",
      },
      secure: {
        syncReady: false,
        resendBufferBytes: 4096,
        peers: [{
          sender: "ab".repeat(16),
          address: "2001:db8:ff08::4",
          lastSeenSeconds: 0.25,
          sequence: 42,
          missing: 2,
          bulkReceived: false,
        }],
      },
    });
    const s = samples(text);
    assert.equal(s.get("joold_secure_sync_ready"), 0);
    assert.equal(s.get("joold_secure_resend_buffer_bytes"), 4096);
    assert.equal(s.get("joold_net_secure_recovered_total"), 3);
    const peer = `{sender="${"ab".repeat(16)}",address="2001:db8:ff08::4"}`;
    assert.equal(s.get(`joold_secure_peer_sequence${peer}`), 42);
    assert.equal(s.get(`joold_secure_peer_missing${peer}`), 2);
    assert.equal(s.get(`joold_secure_peer_last_seen_seconds${peer}`), 0.25);
    assert.equal(s.get(`joold_secure_peer_bulk_received${peer}`), 0);
    if (unavailable === null) {
      const { code, output } = await promtoolCheck(text);
      assert.equal(code, 0, output);
    }
    // Without a key file there is no secure part at all.
    const plain = formatMetrics({
      counters,
      ackLatencyUs: { bounds: [100], counts: [0, 0], sum: 0 },
      info: {
        version: "0",
        joolVersion: "4.1.13",
        sessionFormat: "compact36",
        instance: "default",
        mode: "plain",
      },
    });
    assert.ok(!plain.includes("joold_secure_"));
  },
});
