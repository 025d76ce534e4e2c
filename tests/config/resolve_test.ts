import assert from "node:assert/strict";
import { parseCommandLine } from "../../lib/config/args.ts";
import { ConfigError } from "../../lib/config/error.ts";
import { lineColumn } from "../../lib/config/file.ts";
import { formatConfig } from "../../lib/config/print.ts";
import { resolveConfig } from "../../lib/config/resolve.ts";

/** An in-memory file system for the resolver: path -> text (missing => NotFound). */
function files(map: Record<string, string>) {
  return (path: string): string => {
    if (!(path in map)) throw new Deno.errors.NotFound(`no ${path}`);
    return map[path];
  };
}

const NET6 = JSON.stringify({
  "multicast address": "ff08::db8:64:64",
  "multicast port": "6464",
  "in interface": "eth0",
  "out interface": "eth1",
  reuseaddr: 1,
  ttl: 3,
});
const MOD = `{ "instance": "nat64a" }`;

Deno.test("the legacy syntax reads NETSOCKET, MODSOCKET and enables stats on :: with PORT", () => {
  const { config, warnings } = resolveConfig(
    parseCommandLine(["n.json", "m.json", "7000"]),
    files({ "n.json": NET6, "m.json": MOD }),
  );
  assert.deepEqual(warnings, []);
  assert.deepEqual(config.mod.instance, "nat64a");
  assert.deepEqual(config.net, {
    multicastAddress: "ff08::db8:64:64",
    multicastPort: "6464",
    inInterface: "eth0",
    outInterface: "eth1",
    ttl: 3,
    reuseAddress: true,
    translateSessions: false,
  });
  assert.deepEqual(config.stats, { address: "::", port: 7000 });
});

Deno.test("no arguments at all means the legacy defaults netsocket.json and modsocket.json", () => {
  const { config } = resolveConfig(
    parseCommandLine([]),
    files({ "netsocket.json": NET6, "modsocket.json": MOD }),
  );
  assert.deepEqual(config.mod.instance, "nat64a");
  assert.deepEqual(config.net?.multicastAddress, "ff08::db8:64:64");
  assert.deepEqual(config.stats, null);
});

Deno.test("flags override the keys of their files and defaults fill the rest", () => {
  const { config } = resolveConfig(
    parseCommandLine([
      "--net",
      "n.json",
      "--mod=m.json",
      "--net.ttl=9",
      "--instance",
      "other",
      "--stats.address=127.0.0.1",
    ]),
    files({ "n.json": NET6, "m.json": MOD }),
  );
  assert.deepEqual(config.net?.ttl, 9);
  assert.deepEqual(config.mod.instance, "other");
  assert.deepEqual(config.stats, { address: "127.0.0.1", port: 6401 });
});

Deno.test("flag syntax without any network option disables the network", () => {
  const { config, warnings } = resolveConfig(parseCommandLine(["--instance=x"]));
  assert.deepEqual(config.net, null);
  assert.deepEqual(warnings, []);
});

Deno.test("defaults: port 6400, ttl 1, reuseaddr on, stats 6401 when only the address is set", () => {
  const { config } = resolveConfig(
    parseCommandLine(["--net.mcast.addr=233.252.0.64", "--stats.addr=0.0.0.0"]),
  );
  assert.deepEqual(config.net?.multicastPort, "6400");
  assert.deepEqual(config.net?.ttl, 1);
  assert.deepEqual(config.net?.reuseAddress, true);
  assert.deepEqual(config.stats, { address: "0.0.0.0", port: 6401 });
  const { config: c2 } = resolveConfig(parseCommandLine(["--stats.port=7001"]));
  assert.deepEqual(c2.stats, { address: "::", port: 7001 });
});

Deno.test("a stats file and the C daemon's quirks (numeric port, reuseaddr 0) are accepted", () => {
  const { config } = resolveConfig(
    parseCommandLine(["--net=n.json", "--stats=s.json"]),
    files({
      "n.json": `{"multicast address":"233.252.0.64","multicast port":6464,"reuseaddr":0}`,
      "s.json": `{"address":"::1","port":"7002"}`,
    }),
  );
  assert.deepEqual(config.net?.multicastPort, "6464");
  assert.deepEqual(config.net?.reuseAddress, false);
  assert.deepEqual(config.stats, { address: "::1", port: 7002 });
});

Deno.test("unknown keys produce a warning naming file and key", () => {
  const { warnings } = resolveConfig(
    parseCommandLine(["--mod=m.json"]),
    files({ "m.json": `{"instance":"a", "colour": "b"}` }),
  );
  assert.deepEqual(warnings, [`m.json: "colour": unknown key, ignored (known keys: "instance")`]);
});

Deno.test("comments and trailing commas are allowed in JSON files", () => {
  const { config } = resolveConfig(
    parseCommandLine(["--mod=m.json"]),
    files({ "m.json": `// the instance\n{ "instance": "c", /* trailing: */ }` }),
  );
  assert.deepEqual(config.mod.instance, "c");
});

/** Bad input: [arguments, files, expected message (without "joold: ")]. */
const BAD: [string[], Record<string, string>, string][] = [
  [
    ["--net=n.json"],
    {},
    "n.json: no such file: check the path (relative paths start at the current directory)",
  ],
  [
    ["--net=n.json"],
    { "n.json": `{"ttl": 1,\n "x" 2}` },
    `n.json:2:6: expected ":" after the key`,
  ],
  [
    ["--net=n.json"],
    { "n.json": `[1]` },
    `n.json: the file must hold a JSON object, e.g. { "instance": "default" }`,
  ],
  [
    ["--mod=m.json"],
    { "m.json": `{"instance": 5}` },
    "m.json: instance: must be a non-empty string, got number 5",
  ],
  [
    ["--mod=m.json"],
    { "m.json": `{"instance": "sixteen-chars-xx"}` },
    `m.json: instance: must be a Jool instance name of 1-15 printable characters, got "sixteen-chars-xx"`,
  ],
  [
    ["--net=n.json"],
    { "n.json": `{"multicast address": "ff08::1", "ttl": 256}` },
    "n.json: ttl: must be an integer 0-255, got number 256",
  ],
  [
    ["--net=n.json"],
    { "n.json": `{"multicast address": "ff08::1", "ttl": "3"}` },
    `n.json: ttl: must be an integer 0-255, got "3"`,
  ],
  [
    ["--net=n.json"],
    { "n.json": `{"multicast address": "ff08::1", "ttl": 1.5}` },
    "n.json: ttl: must be an integer 0-255, got number 1.5",
  ],
  [
    ["--net=n.json"],
    { "n.json": `{"multicast address": "ff08::1", "multicast port": "70000"}` },
    `n.json: multicast port: must be an integer 1-65535, got "70000"`,
  ],
  [
    ["--net=n.json"],
    { "n.json": `{"multicast address": "ff08::1", "multicast port": "0"}` },
    `n.json: multicast port: must be an integer 1-65535, got "0"`,
  ],
  [
    ["--net=n.json"],
    { "n.json": `{"multicast address": "ff08::1", "multicast port": "a b"}` },
    `n.json: multicast port: must be a port number 1-65535 or a service name from /etc/services, got "a b"`,
  ],
  [
    ["--net=n.json"],
    { "n.json": `{"multicast address": "ff08::zz"}` },
    `n.json: multicast address: must be an IPv4 or IPv6 address, got "ff08::zz"`,
  ],
  [
    ["--net=n.json"],
    { "n.json": `{"multicast address": "192.0.2.1"}` },
    "n.json: multicast address: 192.0.2.1 is not a multicast address: use one in 224.0.0.0/4 (IPv4) or ff00::/8 (IPv6), e.g. ff08::db8:64:64",
  ],
  [
    ["--net=n.json"],
    { "n.json": `{"multicast address": "233.252.0.64", "in interface": "eth0"}` },
    `n.json: in interface: the multicast group is IPv4, so this must be an IPv4 address of the interface, got "eth0"`,
  ],
  [
    ["--net=n.json"],
    { "n.json": `{"multicast address": "ff08::1", "out interface": "192.0.2.1"}` },
    `n.json: out interface: the multicast group is IPv6, so this must be an interface name (e.g. "eth0"), got the address 192.0.2.1`,
  ],
  [
    ["--net=n.json"],
    { "n.json": `{"multicast address": "ff08::1", "reuseaddr": "yes"}` },
    `n.json: reuseaddr: must be true, false, 1 or 0, got "yes"`,
  ],
  [
    ["--stats=s.json"],
    { "s.json": `{"port": 0}` },
    "s.json: port: must be an integer 1-65535, got number 0",
  ],
  [
    ["--stats=s.json"],
    { "s.json": `{"address": "localhost:1"}` },
    `s.json: address: must be an IPv4 or IPv6 address such as "::" or "127.0.0.1", got "localhost:1"`,
  ],
  [
    ["--net.mcast.addr=ff08::1", "--net.ttl=-1"],
    {},
    `command line: --net.ttl: must be an integer 0-255, got "-1"`,
  ],
  [["--stats.port=http"], {}, `command line: --stats.port: must be an integer 1-65535, got "http"`],
  [
    ["--instance=a", "--log-level=loud"],
    {},
    `command line: --log-level: must be one of error, warn, info, debug, got "loud"`,
  ],
  [
    ["n.json", "--net=x.json"],
    {},
    `command line: --net: conflicts with the positional NETSOCKET argument "n.json"; give only one`,
  ],
  [
    ["a", "b", "c", "d"],
    {},
    "command line: too many arguments (4): the legacy syntax is joold [NETSOCKET] [MODSOCKET] [PORT]",
  ],
  [
    ["--stats.addr=::", "--stats.address=::1"],
    {},
    "command line: --stats.address: is another spelling of --stats.addr; give only one of them",
  ],
  [["--frobnicate"], {}, "command line: --frobnicate: unknown option: see joold --help"],
  [["--help=yes"], {}, "command line: --help: takes no value"],
];

for (const [args, fs, message] of BAD) {
  Deno.test(`bad input ${JSON.stringify(args)} is rejected with: ${message}`, () => {
    assert.throws(
      () => resolveConfig(parseCommandLine(args), files(fs)),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
        assert.equal(error.message, message);
        return true;
      },
    );
  });
}

Deno.test("lineColumn counts lines and columns from 1", () => {
  assert.deepEqual(lineColumn("ab\ncd", 0), "1:1");
  assert.deepEqual(lineColumn("ab\ncd", 4), "2:2");
});

Deno.test("formatConfig prints the C daemon's Config: block", () => {
  const { config } = resolveConfig(
    parseCommandLine(["--net.mcast.addr=ff08::db8:64:64", "--stats.port=6401"]),
  );
  assert.deepEqual(
    formatConfig(config),
    "Config:\n  mod.instance: default\n  net.mcast.addr: ff08::db8:64:64\n  net.mcast.port: 6400\n" +
      "  net.dev.in: (null)\n  net.dev.out: (null)\n  net.ttl: 1\n  stats.addr: ::\n  stats.port: 6401\n",
  );
});

/** JSON mistakes, in words with file:line:column, never the parser's codes. */
const JSON_ERRORS: [string, string][] = [
  ["", `n.json:1:1: the file is empty: expected a JSON object, e.g. { "instance": "default" }`],
  [
    "// nothing\n",
    `n.json:1:1: the file is only comments: expected a JSON object, e.g. { "instance": "default" }`,
  ],
  [`{"ttl": 1\n "x": 2}`, `n.json:2:2: expected "," between two entries`],
  [`{"ttl" 1}`, `n.json:1:8: expected ":" after the key`],
  [`{"ttl": }`, "n.json:1:9: expected a value (a string, number, true, false, object or array)"],
  [`{"ttl": "3`, "n.json:1:9: this string is not closed by a double quote"],
  [`{ 'ttl': 3 }`, "n.json:1:3: single quotes: JSON strings and keys take double quotes"],
  [
    `{"in interface": eth0}`,
    `n.json:1:18: unexpected "eth0": a value is a string in double quotes, a number, an object, an array, true, false or null`,
  ],
  [`{"ttl": 1`, `n.json:1:10: expected "}" closing the object`],
];

for (const [text, message] of JSON_ERRORS) {
  Deno.test(`a JSON mistake ${JSON.stringify(text)} is reported as: ${message}`, () => {
    assert.throws(
      () => resolveConfig(parseCommandLine(["--net=n.json"]), files({ "n.json": text })),
      (error: unknown) => error instanceof ConfigError && error.message === message,
    );
  });
}

Deno.test("the C daemon's files, with a BOM or a key given twice, resolve as before", () => {
  const { config, warnings } = resolveConfig(
    parseCommandLine(["n.json", "m.json"]),
    files({ "n.json": "\uFEFF" + NET6, "m.json": `{ "instance": "a", "instance": "b" }` }),
  );
  assert.equal(config.net?.multicastAddress, "ff08::db8:64:64");
  assert.equal(config.mod.instance, "a");
  assert.deepEqual(warnings, [
    `m.json: "instance": given 2 times (at 1:3, 1:20): the first one is used, as by Jool's C daemon`,
  ]);
});

Deno.test("file keys match whatever their case, as in the C daemon (cJSON_GetObjectItem)", () => {
  const { config, warnings } = resolveConfig(
    parseCommandLine(["--net=n.json"]),
    files({ "n.json": `{ "Multicast Address": "ff08::1", "TTL": 4, "ttl": 5 }` }),
  );
  assert.equal(config.net?.multicastAddress, "ff08::1");
  assert.equal(config.net?.ttl, 4);
  assert.deepEqual(warnings, [
    `n.json: "ttl": the same key as "TTL" (keys are not case-sensitive): the first one is used, as by Jool's C daemon`,
  ]);
});

Deno.test("origins name the file and key, or the flag as typed, of every value set", () => {
  const { origins } = resolveConfig(
    parseCommandLine(["-i", "x", "session", "proxy", "-p", "6464", "ff08::1"]),
  );
  assert.deepEqual(origins, {
    instance: { source: "command line", key: "-i" },
    "net.mcast.port": { source: "command line", key: "-p" },
    "net.mcast.addr": { source: "command line", key: "GROUP (the argument of session proxy)" },
  });
  const legacy = resolveConfig(
    parseCommandLine(["n.json", "m.json", "7000"]),
    files({
      "n.json": NET6,
      "m.json": MOD,
    }),
  );
  assert.deepEqual(legacy.origins["net.dev.in"], { source: "n.json", key: "in interface" });
  assert.deepEqual(legacy.origins["stats.port"], {
    source: "command line",
    key: "PORT (3rd argument)",
  });
});
