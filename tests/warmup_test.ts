/**
 * The start-up warm-up (lib/warmup.ts): it runs the daemon core's paths for real, in every
 * session format, and nothing of it reaches anything outside (the daemon wiring's tests check the
 * fake kernel's and the network's bytes with the warm-up in place).
 */
import assert from "node:assert/strict";
import { syntheticPayload, warmUp } from "../lib/warmup.ts";
import { checkMeaning } from "../lib/jool/meaning.ts";
import { decodePayload } from "../lib/jool/session.ts";
import { JOOL_DEFAULT_TIMEOUTS } from "../lib/jool/timeouts.ts";
import { createCounters } from "../lib/counters.ts";
import type { SessionFormat } from "../lib/jool/version.ts";

const FORMATS: SessionFormat[] = ["nested", "compact48", "compact36"];

Deno.test("syntheticPayload: full batches of legal sessions in each format", () => {
  for (const format of FORMATS) {
    const payload = syntheticPayload(format, 36, 60_000);
    const summary = decodePayload(payload);
    assert.equal(summary.format, format);
    assert.equal(summary.sessions.length, 36);
    // Legal as they are: the warm-up takes the common path (no copy), as real traffic does.
    const counters = createCounters();
    assert.equal(checkMeaning(payload, summary, JOOL_DEFAULT_TIMEOUTS, counters), payload);
    assert.equal(counters.netSessionsClamped, 0);
  }
});

Deno.test("warmUp runs both paths every round, in every format, with short local timeouts too", () => {
  for (const format of FORMATS) {
    assert.deepEqual(warmUp({ format, timeouts: JOOL_DEFAULT_TIMEOUTS }, 7), { sent: 7, added: 7 });
    // A UDP timeout below the sessions' 60 s: clamped, still handed on.
    const short = { ...JOOL_DEFAULT_TIMEOUTS, udp: 30_000 };
    assert.deepEqual(warmUp({ format, timeouts: short }, 3), { sent: 3, added: 3 });
  }
});
