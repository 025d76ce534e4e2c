import assert from "node:assert/strict";
import { closest, editDistance } from "../../lib/config/suggest.ts";

Deno.test("editDistance counts insertions, deletions, substitutions and transpositions", () => {
  const rows: [string, string, number][] = [
    ["", "", 0],
    ["ttl", "ttl", 0],
    ["adress", "address", 1],
    ["instanse", "instance", 1],
    ["tlt", "ttl", 1],
    ["port", "ttl", 4],
    ["", "abc", 3],
  ];
  for (const [a, b, d] of rows) assert.equal(editDistance(a, b), d, `${a} ~ ${b}`);
});

Deno.test("closest names the key a typo meant, and nothing for a word far from every key", () => {
  const net = ["multicast address", "multicast port", "in interface", "out interface", "ttl"];
  const rows: [string, string | undefined][] = [
    ["multicast adress", "multicast address"],
    ["Multicast Address", "multicast address"],
    ["multicast_address", "multicast address"],
    ["multicast-port", "multicast port"],
    ["in-interface", "in interface"],
    ["TTL", "ttl"],
    ["tll", "ttl"],
    ["colour", undefined],
    ["reuse", undefined],
    ["port", undefined],
  ];
  for (const [typed, meant] of rows) assert.equal(closest(typed, net), meant, typed);
  assert.equal(closest("addr", ["address", "port"]), "address");
  assert.equal(
    closest("net.mcast.adress", ["net", "net.mcast.addr", "net.mcast.address"]),
    "net.mcast.address",
  );
});
