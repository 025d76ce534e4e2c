import assert from "node:assert/strict";
import { ERRNO, errnoName, SystemError } from "../../ffi/errno.ts";
import {
  AF_INET,
  AF_NETLINK,
  bind,
  close,
  getsockname,
  SOCK_DGRAM,
  SOCK_RAW,
  socket,
} from "../../ffi/libc.ts";
import { decodeSockaddr, sockaddrIn } from "../../ffi/sockaddr.ts";

const LOOPBACK = Uint8Array.of(127, 0, 0, 1);

Deno.test("a failed bind throws a SystemError naming the call, the errno's name and the detail", () => {
  const a = socket(AF_INET, SOCK_DGRAM, 0);
  const b = socket(AF_INET, SOCK_DGRAM, 0);
  try {
    bind(a, sockaddrIn(LOOPBACK, 0));
    const port = decodeSockaddr(getsockname(a))!.port;
    assert.throws(() => bind(b, sockaddrIn(LOOPBACK, port), `127.0.0.1 port ${port}`), (e) => {
      assert.ok(e instanceof SystemError);
      assert.equal(e.call, "bind");
      assert.equal(e.errno, ERRNO.EADDRINUSE);
      assert.equal(e.code, "EADDRINUSE");
      assert.equal(e.message, `bind failed: EADDRINUSE (127.0.0.1 port ${port})`);
      return true;
    });
  } finally {
    close(a);
    close(b);
  }
});

Deno.test("errno is read right after the failing call: socket() with an unknown netlink protocol", () => {
  // NETLINK protocols stop at 22 (MAX_LINKS 32); 31 is unassigned.
  assert.throws(() => socket(AF_NETLINK, SOCK_RAW, 31), (e) => {
    assert.ok(e instanceof SystemError);
    assert.equal(e.call, "socket");
    assert.equal(e.code, "EPROTONOSUPPORT");
    return true;
  });
});

Deno.test("errno names: the table agrees with the ERRNO constants, unknown numbers stay readable", () => {
  for (const [name, value] of Object.entries(ERRNO)) assert.equal(errnoName(value), name);
  assert.equal(errnoName(4095), "errno 4095");
});
