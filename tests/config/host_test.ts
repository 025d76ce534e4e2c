import assert from "node:assert/strict";
import { parseCommandLine } from "../../lib/config/args.ts";
import { ConfigError } from "../../lib/config/error.ts";
import { checkHost, formatHostReport } from "../../lib/config/host.ts";
import { resolveConfig } from "../../lib/config/resolve.ts";

function check(args: string[]) {
  const { config, origins } = resolveConfig(parseCommandLine(args));
  return checkHost(config, origins);
}

Deno.test("checkHost accepts existing interfaces, local addresses and UDP service names", () => {
  const report = check([
    "--net.mcast.addr=ff08::db8:64:64",
    "--net.mcast.port=domain",
    "--net.dev.in=lo",
    "--stats.addr=127.0.0.1",
  ]);
  assert.deepEqual(report.checked, [
    "port domain/udp",
    "in interface lo exists",
    "stats address 127.0.0.1 is local",
  ]);
  assert.equal(
    formatHostReport(report),
    "checked: port domain/udp, in interface lo exists, stats address 127.0.0.1 is local\n" +
      `not checked (needs the kernel): Jool module loaded, instance "default" exists, ss-enabled\n` +
      "not checked (done at start): port domain free or shared (reuseaddr), stats port 6401 free\n",
  );
});

/** [arguments, expected message]: the value's origin (flag as typed) and what is wrong. */
const BAD: [string[], string][] = [
  [
    ["--net.mcast.addr=ff08::1", "--net.dev.out=nosuch0"],
    `command line: --net.dev.out: no interface named "nosuch0" in this network namespace (see ip link)`,
  ],
  [
    ["session", "proxy", "-i", "198.51.100.77", "233.252.0.64"],
    "command line: -i: 198.51.100.77 is not an address of any interface in this network namespace (see ip address)",
  ],
  [
    ["session", "proxy", "-p", "http", "ff08::1"],
    `command line: -p: "http" is not a UDP service of this system (see /etc/services; a name listed only for tcp does not count): use a port number 1-65535`,
  ],
  [
    ["--net.mcast.addr=ff08::1", "--stats.address=2001:db8::99"],
    "command line: --stats.address: 2001:db8::99 is not an address of any interface in this network namespace (see ip address)",
  ],
];

for (const [args, message] of BAD) {
  Deno.test(`checkHost rejects ${JSON.stringify(args)}: ${message}`, () => {
    assert.throws(
      () => check(args),
      (error: unknown) => error instanceof ConfigError && error.message === message,
    );
  });
}
