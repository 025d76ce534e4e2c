import assert from "node:assert/strict";
import { LATE, ReplayWindow, type Verdict, WINDOW } from "../../lib/secure/replay.ts";
import { MAX_PEERS, PeersTable } from "../../lib/secure/peers.ts";

/**
 * Each row: the sequence numbers that arrive, in order, and what the window says of each (an
 * accepted number is committed, as the secure channel does once its tag verified).
 */
const ROWS: [string, number[], Verdict[]][] = [
  ["in order", [1, 2, 3], ["new", "new", "new"]],
  ["a duplicate", [1, 2, 2], ["new", "new", "duplicate"]],
  ["a duplicate of the first", [1, 2, 3, 1], ["new", "new", "new", "duplicate"]],
  ["reordered within the window", [3, 1, 2, 2, 1], ["new", "new", "new", "duplicate", "duplicate"]],
  ["a gap (loss) then the missing one late", [1, 5, 3, 4, 2], ["new", "new", "new", "new", "new"]],
  ["sequence 0 (never sent)", [0], ["too old"]],
  [
    "the oldest number still in the window, and one below it",
    [WINDOW + 1, 2, 1],
    ["new", "new", "too old"],
  ],
  [
    "far future: accepted, and the window slides past everything before",
    [1, 2, 1_000_000, 2, 999_999, 1_000_000 - WINDOW],
    ["new", "new", "new", "too old", "new", "too old"],
  ],
  [
    "a slide of less than the window keeps what it saw and frees what it skipped",
    [10, 10 + WINDOW - 1, 10, 11, 10 + WINDOW - 1],
    ["new", "new", "duplicate", "new", "duplicate"],
  ],
  [
    "a bit slot reused after the window moved on",
    [5, 5 + WINDOW, 5 + 2 * WINDOW - 1, 5 + WINDOW],
    ["new", "new", "new", "duplicate"],
  ],
];

for (const [name, arrivals, verdicts] of ROWS) {
  Deno.test(`ReplayWindow: ${name}`, () => {
    const window = new ReplayWindow();
    const got = arrivals.map((sequence) => {
      const verdict = window.check(sequence);
      if (verdict === "new") window.commit(sequence);
      return verdict;
    });
    assert.deepEqual(got, verdicts);
  });
}

/** Each row: sequence numbers committed in order, and what commit says of each (gap or LATE). */
const LOSS_ROWS: [string, number[], number[]][] = [
  ["in order: no gap", [1, 2, 3], [0, 0, 0]],
  ["one lost", [1, 2, 4, 5], [0, 0, 1, 0]],
  ["reordered: a gap, then it is filled (not loss)", [1, 3, 2, 4], [0, 1, LATE, 0]],
  ["joined late: nothing before the first one is a gap", [50, 51, 49, 53], [0, 0, 0, 1]],
  ["a jump beyond the window: every number skipped", [1, 2 + WINDOW * 3], [0, WINDOW * 3]],
];
for (const [name, sequences, results] of LOSS_ROWS) {
  Deno.test(`ReplayWindow sees loss: ${name}`, () => {
    const window = new ReplayWindow();
    assert.deepEqual(sequences.map((s) => window.commit(s)), results);
  });
}

Deno.test("ReplayWindow: a check alone never moves the window (unverified numbers)", () => {
  const window = new ReplayWindow();
  window.commit(1);
  assert.equal(window.check(1_000_000), "new");
  assert.equal(window.top, 1);
  assert.equal(window.check(1), "duplicate");
});

Deno.test("ReplayWindow: random arrivals agree with a set of everything seen", () => {
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const window = new ReplayWindow();
  const seen = new Set<number>();
  let top = 0;
  for (let i = 0; i < 20_000; i++) {
    const sequence = Math.max(1, top + Math.floor(random() * 300) - 250);
    const expected: Verdict = seen.has(sequence)
      ? (top - sequence >= WINDOW ? "too old" : "duplicate")
      : (sequence <= top - WINDOW ? "too old" : "new");
    assert.equal(window.check(sequence), expected, `${sequence} (top ${top})`);
    if (expected === "new") {
      window.commit(sequence);
      seen.add(sequence);
      top = Math.max(top, sequence);
    }
  }
});

Deno.test("PeersTable forgets the least recently heard sender beyond its bound", () => {
  const peers = new PeersTable();
  const sender = (i: number) => i.toString(16).padStart(32, "0");
  for (let i = 0; i < MAX_PEERS; i++) peers.heard(sender(i), i);
  peers.heard(sender(0), 1000); // heard again: now the most recent
  peers.heard(sender(MAX_PEERS), 1001);
  assert.equal(peers.size, MAX_PEERS);
  assert.notEqual(peers.get(sender(0)), undefined);
  assert.equal(peers.get(sender(1)), undefined);
  assert.equal([...peers].at(-1)?.sender, sender(MAX_PEERS));
});
