import assert from "node:assert/strict";
import { parseCommandLine } from "../../lib/config/args.ts";
import { KEYS, LEGACY_ARGUMENTS } from "../../lib/config/keys.ts";
import { formatConfig } from "../../lib/config/print.ts";
import { resolveConfig } from "../../lib/config/resolve.ts";
import { helpText } from "../../lib/help.ts";

Deno.test("every flag and alias of the key table is accepted by the parser and listed by --help", () => {
  const help = helpText();
  for (const spec of KEYS.filter((k) => k.flag)) {
    for (const name of [spec.name, ...spec.aliases]) {
      assert.ok(help.includes(`--${name}`), `--help lacks --${name}`);
      if (spec.type === "boolean") {
        assert.doesNotThrow(() => parseCommandLine([`--${name}`]), name);
      } else assert.doesNotThrow(() => parseCommandLine([`--${name}=${spec.example}`]), name);
    }
  }
  for (const argument of LEGACY_ARGUMENTS) assert.ok(help.includes(argument.name));
});

Deno.test("every printed key's example resolves and --check prints it under its label", () => {
  // The key file is read at resolve time: tests/secure/ covers it with real files. The unicast
  // peers exclude the group: they are printed in a configuration of their own.
  const args = KEYS.filter((k) =>
    k.flag && k.type !== "boolean" && k.type !== "file" && k.type !== "key-file" &&
    k.type !== "unicast-peers"
  )
    .map((k) => `--${k.name}=${k.type === "interface" ? "eth0" : k.example}`);
  const text = formatConfig(resolveConfig(parseCommandLine(args)).config);
  for (const spec of KEYS.filter((k) => k.printed !== undefined && k.type !== "unicast-peers")) {
    assert.ok(text.includes(`  ${spec.printed}: ${spec.example}\n`), `${spec.printed} in ${text}`);
  }
  assert.ok(!text.includes("net.peers"), "no peers line without peers (the C daemon's block)");
  const peers = KEYS.find((k) => k.type === "unicast-peers")!;
  const unicast = formatConfig(
    resolveConfig(parseCommandLine([`--${peers.name}=${peers.example}`])).config,
  );
  assert.ok(unicast.includes(`  ${peers.printed}: ${peers.example}\n`), unicast);
  assert.ok(unicast.includes("  net.mcast.addr: (null)\n"), unicast);
  assert.ok(unicast.includes("  net.ttl: 64\n"), "unicast's own TTL default");
});

Deno.test("each file key of a section is read from its file", () => {
  const net = Object.fromEntries(
    // The key file is read at resolve time: tests/secure/ covers it with real files.
    KEYS.filter((k) =>
      k.section === "net" && k.fileKey !== undefined && k.type !== "key-file" &&
      k.type !== "unicast-peers"
    )
      .map((k) => [
        k.fileKey,
        k.type === "ttl"
          ? Number(k.example)
          : k.type === "switch"
          ? 0
          : k.type === "peer-list"
          ? [k.example]
          : k.type === "bytes" || k.type === "seconds"
          ? Number(k.example)
          : k.example,
      ]),
  );
  const { config, warnings } = resolveConfig(
    parseCommandLine(["--net=n.json"]),
    () => JSON.stringify(net),
  );
  assert.deepEqual(warnings, []);
  assert.deepEqual(config.net, {
    multicastAddress: "ff08::db8:64:64",
    multicastPort: "6400",
    inInterface: "eth0",
    outInterface: "eth0",
    ttl: 3,
    reuseAddress: false,
    translateSessions: false,
    peersAllowed: ["2001:db8:ff08::5"],
    resendBuffer: 1048576,
    syncReadyTimeout: 60,
  });
});

Deno.test("the secure-sync sizes are validated, naming the file, the key and the value", () => {
  const resolve = (net: Record<string, unknown>, flags: string[] = []) =>
    resolveConfig(parseCommandLine(["--net=n.json", ...flags]), () => JSON.stringify(net)).config
      .net;
  const group = { "multicast address": "ff08::db8:64:64" };
  assert.equal(resolve(group)?.resendBuffer, undefined, "absent unless set: the C daemon's config");
  assert.equal(resolve(group, ["--net.resend-buffer=0"])?.resendBuffer, 0);
  assert.equal(resolve({ ...group, "resend buffer": 65536 })?.resendBuffer, 65536);
  assert.equal(resolve({ ...group, "sync-ready timeout": 5 })?.syncReadyTimeout, 5);
  for (
    const [key, bad] of [
      ["resend buffer", -1],
      ["resend buffer", "1M"],
      ["resend buffer", 2 ** 29],
      ["sync-ready timeout", 0],
      ["sync-ready timeout", 1.5],
    ] as const
  ) {
    assert.throws(() => resolve({ ...group, [key]: bad }), (e: Error) => {
      assert.match(e.message, new RegExp(`^n\\.json: ${key}: must be an integer`));
      assert.ok(e.message.includes(String(bad)), e.message);
      return true;
    });
  }
  assert.throws(
    () => resolve(group, ["--net.resend-buffer=lots"]),
    /--net\.resend-buffer.*must be an integer 0-268435456, got "lots"/,
  );
});

Deno.test("\"peers allowed\" takes the peers' addresses of the group's family, and nothing else", () => {
  const resolve = (net: Record<string, unknown>) =>
    resolveConfig(parseCommandLine(["--net=n.json"]), () => JSON.stringify(net)).config.net;
  const group = { "multicast address": "ff08::db8:64:64" };
  assert.equal(resolve(group)?.peersAllowed, undefined);
  assert.deepEqual(
    resolve({ ...group, "peers allowed": ["2001:db8:ff08::5", "2001:db8:ff08::6"] })?.peersAllowed,
    ["2001:db8:ff08::5", "2001:db8:ff08::6"],
  );
  for (const bad of [[], "2001:db8:ff08::5", ["192.0.2.5"], ["ff08::1"], [5]]) {
    assert.throws(() => resolve({ ...group, "peers allowed": bad }), {
      message: /^n\.json: peers allowed: /,
    });
  }
  const flags = resolveConfig(
    parseCommandLine([
      "--net.mcast.addr=233.252.0.64",
      "--net.peers-allowed=198.51.100.5, 198.51.100.6",
    ]),
  );
  assert.deepEqual(flags.config.net?.peersAllowed, ["198.51.100.5", "198.51.100.6"]);
});
