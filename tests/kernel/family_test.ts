/**
 * Jool's family over the module's lifecycle (lib/kernel/family.ts) on its own: nlctrl's
 * notifications as genetlink.c sends them (the fake's bytes, decoded by the controller's parser),
 * and what the family does with each: the hooks it calls, in order, its ids and version, its
 * counters. The same inside the channel, over the twin: lifecycle_test.ts.
 */
import assert from "node:assert/strict";
import { createCounters } from "../../lib/counters.ts";
import { type FamilyInfo, parseFamilyReply } from "../../lib/genetlink/controller.ts";
import { type JoolVersion, packVersion, parseVersion } from "../../lib/jool/version.ts";
import { JoolFamilyError } from "../../lib/kernel/error.ts";
import { familyGoneError, JoolFamily } from "../../lib/kernel/family.ts";
import type { VersionSource } from "../../lib/kernel/startup.ts";
import { parseMessages } from "../../lib/netlink/message.ts";
import { FakeJool } from "../_fake_kernel.ts";

function setup(
  options: {
    versionSource?: VersionSource;
    moduleVersion?: () => JoolVersion | undefined;
    joinGroup?: (group: number) => void;
  } = {},
) {
  const jool = new FakeJool("4.1.13");
  const counters = createCounters();
  const events: string[] = [];
  const fatal: JoolFamilyError[] = [];
  const family = new JoolFamily({
    familyId: jool.familyId,
    groupId: jool.groupId,
    version: parseVersion("4.1.13"),
    versionSource: options.versionSource ?? "sysfs",
    conn: {
      joinGroup: options.joinGroup ?? ((group) => void events.push(`join ${group}`)),
    },
    counters,
    moduleVersion: options.moduleVersion ?? (() => parseVersion("4.1.13")),
    notice: (level) => void events.push(`notice ${level}`),
    gone: () => void events.push(`gone (marked: ${family.gone})`),
    changed: () => void events.push(`changed (id ${family.id})`),
    back: () => void events.push("back"),
    fatal: (e) => void fatal.push(e),
  });
  /** The notification's body as the channel's classifier hands it over. */
  const info = (change: "new" | "del"): FamilyInfo =>
    parseFamilyReply(parseMessages(jool.familyNotification(change))[0].body);
  return { jool, counters, events, fatal, family, info };
}

Deno.test("JoolFamily: DELFAMILY of our id marks it gone before the hooks run, once", () => {
  const t = setup();
  t.family.notified("del", t.info("del"));
  t.family.notified("del", t.info("del"));
  assert.equal(t.family.gone, true);
  assert.equal(t.counters.kernelFamilyRemovals, 1);
  assert.deepEqual(t.events, ["gone (marked: true)", "notice warn"]);
});

Deno.test("JoolFamily: other families and another id's removal change nothing", () => {
  const t = setup();
  t.family.notified("del", { ...t.info("del"), name: "Jooo" });
  t.family.notified("del", { ...t.info("del"), id: 99 });
  t.family.notified("new", { ...t.info("new"), name: "nl80211" });
  assert.equal(t.family.gone, false);
  assert.deepEqual(t.events, []);
  assert.equal(t.counters.kernelFamilyRemovals, 0);
});

Deno.test("JoolFamily: NEWFAMILY after a reload takes the new ids, rejoins, rebuilds, then says it is back", () => {
  const t = setup();
  t.family.notified("del", t.info("del"));
  t.jool.reload(0x30, 9);
  t.events.length = 0;
  t.family.notified("new", t.info("new"));
  assert.equal(t.family.gone, false);
  assert.equal(t.family.id, 0x30);
  assert.equal(t.family.groupId, 9);
  assert.deepEqual(t.events, ["join 9", "changed (id 48)", "notice info", "back"]);
  assert.equal(t.counters.kernelFamilyRecoveries, 1);
  assert.deepEqual(t.fatal, []);
});

Deno.test("JoolFamily: a module of another session format, a family without the joold group, or a refused join is fatal", () => {
  const format = setup({ moduleVersion: () => parseVersion("4.1.9") });
  format.family.notified("new", format.info("new"));
  assert.match(format.fatal[0].message, /^Jool's module was replaced: 4\.1\.13\.0 -> 4\.1\.9\.0/);
  assert.equal(format.fatal[0].op, "module reload");
  assert.equal(format.family.gone, true, "nothing more goes to it");

  const groupless = setup();
  groupless.family.notified("new", { ...groupless.info("new"), groups: new Map() });
  assert.match(groupless.fatal[0].message, /without a "joold" multicast group \(groups: none\)$/);

  const refused = setup({
    joinGroup: () => {
      throw new Error("setsockopt(NETLINK_ADD_MEMBERSHIP): EPERM");
    },
  });
  refused.family.notified("new", refused.info("new"));
  assert.match(refused.fatal[0].message, /^cannot join Jool's new "joold" group \d+: setsockopt/);
  for (const t of [format, groupless, refused]) assert.deepEqual(t.events, []);
});

Deno.test("JoolFamily: a version not read from sysfs is kept across a reload (nothing to re-read)", () => {
  let reads = 0;
  const t = setup({
    versionSource: "option",
    moduleVersion: () => (reads++, parseVersion("4.1.9")),
  });
  t.family.notified("new", t.info("new"));
  assert.equal(reads, 0);
  assert.deepEqual(t.fatal, []);
  assert.deepEqual(t.family.version, parseVersion("4.1.13"));
});

Deno.test("JoolFamily: the first batch's version replaces a fallback one, and only a fallback one", () => {
  const t = setup({ versionSource: "fallback" });
  t.family.observeBatch(packVersion(parseVersion("4.1.9")));
  t.family.observeBatch(packVersion(parseVersion("4.1.13")));
  assert.deepEqual(t.family.version, parseVersion("4.1.9"));
  assert.equal(t.family.versionSource, "batch");
  assert.deepEqual(t.events, ["changed (id 35)"]);
  const known = setup();
  known.family.observeBatch(packVersion(parseVersion("4.1.9")));
  assert.deepEqual(known.family.version, parseVersion("4.1.13"));
  assert.deepEqual(known.events, []);
});

Deno.test("familyGoneError names the request that was not sent and what to do", () => {
  const error = familyGoneError("JOOLD_ADD");
  assert.ok(error instanceof JoolFamilyError);
  assert.equal(error.op, "JOOLD_ADD");
  assert.equal(
    error.message,
    "Jool's Generic Netlink family is gone (the module was unloaded): JOOLD_ADD not sent; waiting for modprobe jool",
  );
});
