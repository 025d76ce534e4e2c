import assert from "node:assert/strict";
import { parseCommandLine } from "../../lib/config/args.ts";
import { ConfigError } from "../../lib/config/error.ts";
import { resolveConfig } from "../../lib/config/resolve.ts";

const files: Record<string, string> = {
  "net.json": `{ "multicast address": "ff08::db8:64:64", "in interface": "lo" }`,
  "mod.json": `{ "instance": "default" }`,
  "stats.json": `{ "port": 6401, "metrics": "127.0.0.1:9477" }`,
  "metrics-only.json": `{ "metrics": "[::1]:9477" }`,
  "netsocket.json": `{ "multicast address": "ff08::db8:64:64" }`,
  "modsocket.json": `{ "instance": "default" }`,
};
const read = (path: string) => {
  if (!(path in files)) throw new Deno.errors.NotFound(path);
  return files[path];
};
const resolve = (args: string[]) => resolveConfig(parseCommandLine(args), read).config;
const V6 = { hostname: "::1", port: 9477, permission: "[::1]:9477" };

Deno.test("--metrics works in every syntax, and alone it keeps the legacy default files", () => {
  assert.deepEqual(
    resolve(["--net=net.json", "--mod=mod.json", "--metrics=[::1]:9477"]).metrics,
    V6,
  );
  assert.deepEqual(resolve(["net.json", "mod.json", "6401", "--metrics=[::1]:9477"]).metrics, V6);
  const proxy = resolve(["session", "proxy", "--metrics=[::1]:9477", "ff08::db8:64:64"]);
  assert.deepEqual(proxy.metrics, V6);
  assert.equal(proxy.stats, null, "--metrics does not start the UDP stats server");
  // Like --log-level, it does not choose the syntax: the C daemon's default files are still read.
  const parsed = parseCommandLine(["--metrics=[::1]:9477"]);
  assert.equal(parsed.implicitLegacy, true);
  assert.equal(resolveConfig(parsed, read).config.net?.multicastAddress, "ff08::db8:64:64");
  assert.equal(resolve(["--net=net.json"]).metrics, null);
});

Deno.test('the stats file\'s "metrics" key sets the endpoint; the flag overrides it', () => {
  const config = resolve(["--net=net.json", "--stats=stats.json"]);
  assert.deepEqual(config.metrics, {
    hostname: "127.0.0.1",
    port: 9477,
    permission: "127.0.0.1:9477",
  });
  assert.deepEqual(config.stats, { address: "::", port: 6401 });
  assert.deepEqual(
    resolve(["--net=net.json", "--stats=stats.json", "--metrics=[::1]:9477"]).metrics,
    V6,
  );
  // A stats file starts the UDP stats server, whatever it holds (as before "metrics" existed).
  const only = resolve(["--net=net.json", "--stats=metrics-only.json"]);
  assert.deepEqual(only.metrics, V6);
  assert.deepEqual(only.stats, { address: "::", port: 6401 });
});

Deno.test("a bad --metrics or --log-format is a one-line error naming the flag", () => {
  const rows: [string, RegExp][] = [
    ["--metrics=::1:9477", /--metrics: must be HOST:PORT, e\.g\. "\[::1\]:9477" .*got "::1:9477"/],
    ["--metrics=[fe80::zz]:1", /"fe80::zz" in brackets is not an IPv6 address/],
    ["--metrics=127.0.0.1:0", /--metrics: the port must be 1-65535, got 0/],
    ["--metrics=127.0.0.1:70000", /the port must be 1-65535, got 70000/],
    ["--metrics=127.0.0.1", /must be HOST:PORT/],
    ["--log-format=xml", /--log-format: must be text or json, got "xml"/],
  ];
  for (const [flag, message] of rows) {
    assert.throws(() => resolve(["--net=net.json", flag]), (e) => {
      assert.ok(e instanceof ConfigError, flag);
      assert.match(e.message, message);
      return true;
    });
  }
  assert.equal(resolve(["--net=net.json"]).logFormat, "text");
  assert.equal(resolve(["--net=net.json", "--log-format=json"]).logFormat, "json");
  assert.equal(
    resolve(["session", "proxy", "--log-format=json", "ff08::db8:64:64"]).logFormat,
    "json",
  );
});
