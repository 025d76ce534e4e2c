/**
 * The start-up warm-up (lib/warmup.ts): it runs the daemon's paths for real (the kernel channel's
 * receive, recognize, ACK and add over the netlink twin; the daemon core between), in every session
 * format, and nothing of it reaches anything outside (the daemon wiring's tests check the fake
 * kernel's and the network's bytes with the warm-up in place).
 */
import assert from "node:assert/strict";
import { syntheticPayload, warmUp } from "../lib/warmup.ts";
import { checkMeaning } from "../lib/jool/meaning.ts";
import { decodePayload } from "../lib/jool/session.ts";
import { JOOL_DEFAULT_TIMEOUTS } from "../lib/jool/timeouts.ts";
import { createCounters } from "../lib/counters.ts";
import { type JoolVersion, sessionFormatFor } from "../lib/jool/version.ts";
import { Reactor } from "../lib/reactor.ts";

const VERSIONS: JoolVersion[] = [9, 11, 13].map((revision) => ({
  major: 4,
  minor: 1,
  revision,
  development: 0,
}));

Deno.test("syntheticPayload: full batches of legal sessions in each format", () => {
  for (const format of ["nested", "compact48", "compact36"] as const) {
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

Deno.test("warmUp: every round's batch is recognized, ACKed and forwarded, and its datagram added", async () => {
  const reactor = new Reactor();
  for (const version of VERSIONS) {
    const options = {
      familyId: 0x23,
      groupId: 7,
      version,
      versionSource: "sysfs" as const,
      instance: "default",
      timeouts: JOOL_DEFAULT_TIMEOUTS,
      reactor,
    };
    const format = sessionFormatFor(version);
    assert.deepEqual(
      await warmUp(options, 7),
      { sent: 7, acks: 7, adds: 7, network: "memory" },
      format,
    );
    // A UDP timeout below the sessions' 60 s: clamped, still added.
    const short = { ...options, timeouts: { ...JOOL_DEFAULT_TIMEOUTS, udp: 30_000 } };
    assert.deepEqual(
      await warmUp(short, 3),
      { sent: 3, acks: 3, adds: 3, network: "memory" },
      format,
    );
  }
});

Deno.test("warmUp over loopback: every batch goes out of a real UDP socket and comes back as a datagram to add; the socket is closed after", async () => {
  const reactor = new Reactor();
  const hasV6 = Deno.networkInterfaces().some((i) => i.name === "lo" && i.address === "::1");
  const fds = () => [...Deno.readDirSync("/proc/self/fd")].length;
  for (const family of hasV6 ? [4, 6] as const : [4] as const) {
    const before = fds();
    const done = await warmUp({
      familyId: 0x23,
      groupId: 7,
      version: VERSIONS[2],
      versionSource: "sysfs",
      instance: "default",
      timeouts: JOOL_DEFAULT_TIMEOUTS,
      reactor,
      family,
    }, 50);
    assert.deepEqual(done, { sent: 50, acks: 50, adds: 50, network: "loopback" }, `IPv${family}`);
    assert.equal(fds(), before, `IPv${family}: the loopback socket is closed`);
  }
});

Deno.test("warmUp for a keyed daemon: batches joined and split as a keyed daemon's, envelopes sealed and opened under a throwaway key", async () => {
  const reactor = new Reactor();
  for (const version of VERSIONS) {
    const done = await warmUp({
      familyId: 0x23,
      groupId: 7,
      version,
      versionSource: "sysfs",
      instance: "default",
      timeouts: JOOL_DEFAULT_TIMEOUTS,
      reactor,
      keyed: true,
    }, 5);
    assert.equal(done.acks, 5);
    assert.equal(done.adds, 5);
    // A full batch of 36 is larger than one envelope's payload: split, so more sends than rounds.
    assert.ok(done.sent > 5, `${done.sent} sends`);
    assert.equal(done.opened, 10, "each round's two payloads sealed, then opened");
  }
});
