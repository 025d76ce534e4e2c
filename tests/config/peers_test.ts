/**
 * Unicast peers (`"peers"`, `--net.peer`) as the operator meets them: the real CLI, its one-line
 * errors and exit codes, `--check`'s block; and the resolver's typed result.
 */
import assert from "node:assert/strict";
import { libcPath } from "../../ffi/libc.ts";
import { parseCommandLine } from "../../lib/config/args.ts";
import { resolveConfig } from "../../lib/config/resolve.ts";
import { runCli, tempFiles } from "../_cli.ts";

const dir = tempFiles({
  "mod.json": `{ "instance": "default" }`,
  "both.json": `{ "multicast address": "ff08::db8:64:64", "peers": ["2001:db8::2"] }`,
  "empty.json": `{ "peers": [] }`,
  "string.json": `{ "peers": "2001:db8::2" }`,
  "three.json":
    `{ "peers": ["2001:db8::2", "2001:db8::3", "[2001:db8::4]:6465"], "in interface": "lo" }`,
});
/** The production permissions: the host checks (local addresses) run too. */
const PERMISSIONS = [`--allow-read=${dir}`, `--allow-ffi=${libcPath()}`];

const BAD: [string[], string][] = [
  [
    ["--check", "--net=both.json", "--mod=mod.json"],
    `both.json: peers: unicast peers replace the multicast group, and "multicast address" is set too: keep one of them (peers for a network without multicast, the group otherwise)`,
  ],
  [
    ["--check", "--net.mcast.addr=ff08::1", "--net.peer=2001:db8::2"],
    "command line: --net.peer: unicast peers replace the multicast group, and --net.mcast.addr is set too: keep one of them (peers for a network without multicast, the group otherwise)",
  ],
  [
    ["--check", "--net=empty.json", "--mod=mod.json"],
    `empty.json: peers: lists no peer: give at least one peer's address (e.g. ["2001:db8::2", "[2001:db8::3]:6464"] or ["192.0.2.2", "192.0.2.3:6464"]), or remove the key to use the multicast group`,
  ],
  [
    ["--check", "--net=string.json", "--mod=mod.json"],
    `string.json: peers: must be a list of the peers' addresses, e.g. ["2001:db8::2", "[2001:db8::3]:6464"] or ["192.0.2.2", "192.0.2.3:6464"], got "2001:db8::2"`,
  ],
  [
    ["--check", "--net.peer=2001:db8::2", "--net.peer=192.0.2.2"],
    `command line: --net.peer: "192.0.2.2" is IPv4 but the first peer "2001:db8::2" is IPv6: the peers share one socket of one family; list every peer by its IPv6 address (or every peer by its IPv4 one)`,
  ],
  [
    ["--check", "--net.peer=2001:db8::2,2001:db8:0::2"],
    `command line: --net.peer: "2001:db8:0::2" is the same peer as "2001:db8::2": give each peer once`,
  ],
  [
    ["--check", "--net.peer=192.0.2.2", "--net.peer=192.0.2.2:6465"],
    `command line: --net.peer: "192.0.2.2:6465" is the same peer as "192.0.2.2": give each peer once`,
  ],
  [
    ["--check", "--net.peer=nope"],
    `command line: --net.peer: "nope" is not a peer: write an IP address, "IPV4:PORT" or "[IPV6]:PORT" (a port after an IPv6 address takes brackets), e.g. "[2001:db8::3]:6464"`,
  ],
  [
    ["--check", "--net.peer=[2001:db8::3"],
    `command line: --net.peer: "[2001:db8::3" is not a peer: write an IP address, "IPV4:PORT" or "[IPV6]:PORT" (a port after an IPv6 address takes brackets), e.g. "[2001:db8::3]:6464"`,
  ],
  [
    ["--check", "--net.peer=[2001:db8::3]:99999"],
    `command line: --net.peer: "[2001:db8::3]:99999": the port must be 1-65535, got 99999`,
  ],
  [
    ["--check", "--net.peer=192.0.2.3:0"],
    `command line: --net.peer: "192.0.2.3:0": the port must be 1-65535, got 0`,
  ],
  [
    ["--check", "--net.peer=ff08::1"],
    `command line: --net.peer: "ff08::1" is a multicast address: a peer is another translator's unicast address (a group goes in "multicast address" instead of "peers")`,
  ],
  [
    ["--check", "--net.peer=::ffff:192.0.2.1"],
    `command line: --net.peer: "::ffff:192.0.2.1" is an IPv4-mapped address: write the IPv4 address itself (192.0.2.1)`,
  ],
  [
    ["--check", "--net.peer=::"],
    `command line: --net.peer: "::" is not a host's address: give the peer's own address`,
  ],
  [
    ["--check", "--net.peer=fe80::1"],
    `command line: --net.peer: "fe80::1" is a link-local address: it needs the link it is on, so set "out interface" (--net.dev.out), or give the peer's global address`,
  ],
  [
    ["--check", "--net.peer=192.0.2.2", "--net.dev.in=eth0"],
    `command line: --net.dev.in: the peers are IPv4, so this must be an IPv4 address of the interface, got "eth0"`,
  ],
  [
    ["--check", "--net.peer=2001:db8::2", "--net.dev.out=2001:db8::1"],
    `command line: --net.dev.out: the peers are IPv6, so this must be an interface name (e.g. "eth0"), got the address 2001:db8::1`,
  ],
  [
    ["--check", "--net.peer=192.0.2.2", "--net.peers-allowed=2001:db8::1"],
    `command line: --net.peers-allowed: every peer must be a unicast IPv4 address (the peers are IPv4), got "2001:db8::1"`,
  ],
  // This host's own addresses: the host check (lib/config/host.ts) finds them.
  [
    ["--check", "--net.peer=2001:db8::2", "--net.peer=::1"],
    `command line: --net.peer: "::1" is an address of this host (lo): a translator does not sync with itself; list the OTHER translators' addresses`,
  ],
  [
    ["--check", "--net.peer=127.0.0.2"],
    `command line: --net.peer: "127.0.0.2" is an address of this host: a translator does not sync with itself; list the OTHER translators' addresses`,
  ],
];

for (const [args, line] of BAD) {
  Deno.test(`unicast peers: ${JSON.stringify(args)} exits 2 with one line`, async () => {
    const run = await runCli(args, { cwd: dir, permissions: PERMISSIONS });
    assert.deepEqual([run.code, run.stdout, run.stderr], [2, "", `joold: ${line}\n`]);
  });
}

Deno.test("unicast peers: starting with this host's address as a peer fails at once, exit 1, one line", async () => {
  const run = await runCli(["--net.peer=::1", "--mod=mod.json"], {
    cwd: dir,
    permissions: PERMISSIONS,
  });
  assert.deepEqual([run.code, run.stdout], [1, ""]);
  assert.equal(
    run.stderr,
    `joold: error: command line: --net.peer: "::1" is an address of this host (lo): a translator does not sync with itself; list the OTHER translators' addresses\n`,
  );
});

Deno.test("unicast peers: --check prints the peers of a file, checks none is this host, and says the TTL is 64", async () => {
  const run = await runCli(["--check", "--net=three.json", "--mod=mod.json"], {
    cwd: dir,
    permissions: PERMISSIONS,
  });
  assert.equal(run.stderr, "");
  assert.equal(run.code, 0);
  assert.equal(
    run.stdout,
    "Config:\n  mod.instance: default\n  net.mcast.addr: (null)\n" +
      "  net.peers: 2001:db8::2 2001:db8::3 [2001:db8::4]:6465\n  net.mcast.port: 6400\n" +
      "  net.dev.in: lo\n  net.dev.out: (null)\n  net.ttl: 64\n" +
      "checked: port 6400/udp, no peer is this host, in interface lo exists\n" +
      `not checked (needs the kernel): Jool module loaded, instance "default" exists, ss-enabled\n` +
      "not checked (done at start): port 6400 free or shared (reuseaddr)\n",
  );
});

Deno.test("unicast peers: --net.peer repeats and takes lists; a ttl given is kept; peers allowed is the family's", () => {
  const { config } = resolveConfig(
    parseCommandLine([
      "--net.peer=192.0.2.2",
      "--net.peer",
      "192.0.2.3:6465, 192.0.2.4",
      "--net.ttl=1",
      "--net.peers-allowed=192.0.2.9",
    ]),
  );
  assert.deepEqual(config.net, {
    peers: ["192.0.2.2", "192.0.2.3:6465", "192.0.2.4"],
    multicastPort: "6400",
    inInterface: undefined,
    outInterface: undefined,
    ttl: 1,
    reuseAddress: true,
    translateSessions: false,
    peersAllowed: ["192.0.2.9"],
  });
});
