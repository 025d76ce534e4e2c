import assert from "node:assert/strict";
import { getInterfaceAddresses } from "../../ffi/ifaddrs.ts";
import { close, IP_PKTINFO, IPPROTO_IP, MSG_TRUNC, sendto, setsockoptInt } from "../../ffi/libc.ts";
import { arrivalInterface, DatagramReceiver } from "../../ffi/recvmsg.ts";
import { decodeSockaddr } from "../../ffi/sockaddr.ts";
import { loopbackSocket, waitFor } from "../_udp.ts";

/** A control message: cmsghdr (len, level, type) + data, padded to 8. */
function cmsg(level: number, type: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array((16 + data.length + 7) & ~7);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(16 + data.length), true);
  view.setInt32(8, level, true);
  view.setInt32(12, type, true);
  out.set(data, 16);
  return out;
}

Deno.test("arrivalInterface reads IP_PKTINFO and IPV6_PKTINFO, skips others, rejects bad lengths", () => {
  const in4 = new Uint8Array(12);
  new DataView(in4.buffer).setInt32(0, 7, true);
  const in6 = new Uint8Array(20);
  new DataView(in6.buffer).setUint32(16, 9, true);
  const other = cmsg(1, 29, new Uint8Array(16)); // SOL_SOCKET SO_TIMESTAMPNS
  const rows: [Uint8Array, number | null][] = [
    [cmsg(0, 8, in4), 7],
    [cmsg(41, 50, in6), 9],
    [Uint8Array.from([...other, ...cmsg(0, 8, in4)]), 7],
    [other, null],
    [new Uint8Array(0), null],
    [cmsg(0, 8, in4.subarray(0, 4)), null], // too short for an in_pktinfo
    [cmsg(0, 8, in4).subarray(0, 20), null], // cmsg_len points past the buffer
  ];
  for (const [control, expected] of rows) assert.equal(arrivalInterface(control), expected);
  for (let i = 0; i < 2000; i++) {
    const random = Uint8Array.from(
      { length: Math.floor(Math.random() * 64) },
      () => Math.floor(Math.random() * 256),
    );
    const got = arrivalInterface(random);
    assert.ok(got === null || Number.isInteger(got));
  }
});

Deno.test("DatagramReceiver gets the bytes, the sender and the arrival interface (loopback)", async () => {
  const receiver = loopbackSocket();
  const sender = loopbackSocket();
  setsockoptInt(receiver.fd, IPPROTO_IP, IP_PKTINFO, 1, "IP_PKTINFO");
  const rx = new DatagramReceiver(2048);
  try {
    const lo = getInterfaceAddresses().find((a) => a.family === 4 && a.address[0] === 127);
    assert.equal(lo?.name, "lo");
    for (const text of ["first", "a second datagram"]) {
      sendto(sender.fd, new TextEncoder().encode(text), receiver.address);
      let n = -1;
      await waitFor(() => (n = rx.receive(receiver.fd, MSG_TRUNC)) >= 0, "the datagram");
      assert.equal(new TextDecoder().decode(rx.data.subarray(0, n)), text);
      assert.equal(decodeSockaddr(rx.from)?.port, sender.port);
      assert.deepEqual(decodeSockaddr(rx.from)?.address, Uint8Array.of(127, 0, 0, 1));
      assert.equal(rx.interfaceIndex, 1, "lo");
    }
    assert.equal(rx.receive(receiver.fd), -11, "EAGAIN when empty");
  } finally {
    close(receiver.fd);
    close(sender.fd);
  }
});
