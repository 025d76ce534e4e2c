// Releases the start-up pages (lib/memory.ts) and prints the resident file memory before and after
// (read through libc: the probe, like the daemon, has no read permission), then computes with code
// the process had not run yet (tests/memory_test.ts checks the results).
import { releaseStartupPages } from "../lib/memory.ts";
import { readSmallFile } from "../ffi/libc.ts";

// The executable's pages count as RssFile, or as RssShmem when it lives on a tmpfs (as in the lab).
const mapped = () => {
  const status = readSmallFile("/proc/self/status")!;
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)![1]);
  return kb("RssFile") + kb("RssShmem");
};
const expected = JSON.stringify(
  [...Array(50).keys()].map((i) => ({ i, s: (i * 7919).toString(36) })),
);
console.log(`before RssFile+RssShmem ${mapped()}`);
const released = releaseStartupPages();
if ("unavailable" in released) throw new Error(released.unavailable);
console.log(`released ${released.kb} kB in ${released.mappings} mappings`);
console.log(`after RssFile+RssShmem ${mapped()}`);
const again = JSON.stringify([...Array(50).keys()].map((i) => ({ i, s: (i * 7919).toString(36) })));
const digest = new Uint8Array(
  await crypto.subtle.digest("SHA-256", new TextEncoder().encode(again)),
);
const regex = /^(\d+)-(\w+)$/u.exec("123-abc");
const ok = again === expected && digest.length === 32 && regex?.[2] === "abc" &&
  new Intl.NumberFormat("en-US").format(1234567) === "1,234,567";
console.log(ok ? "work ok" : "work WRONG");
