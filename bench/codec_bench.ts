// Micro-benchmarks of the hot paths: session payload decode/validate per format, netlink message
// build/parse, JOOLD_ADD framing. Run: deno task bench
import { parseMessages } from "../lib/netlink/message.ts";
import {
  batchPayload,
  decodeJoolMessage,
  joolRequest,
  sessionEntriesAttribute,
} from "../lib/jool/message.ts";
import { decodePayload } from "../lib/jool/session.ts";
import { COMMANDS_4_1 } from "../lib/jool/version.ts";
import { fixture } from "../tests/_fixtures.ts";

const nested = fixture("4.1.9", "d-udp-payload-4sessions");
const compact = fixture("4.1.13", "d-udp-payload-4sessions");
const batch9 = fixture("4.1.9", "a-kernel-multicast-4sessions");
const target = { familyId: 0x20, version: 0x04010900, iname: "default", seq: 1, pid: 1 };

Deno.bench("decode + validate 4 nested sessions (4.1.9)", { group: "payload" }, () => {
  decodePayload(nested);
});
Deno.bench("decode + validate 4 compact sessions (4.1.13)", { group: "payload" }, () => {
  decodePayload(compact);
});
Deno.bench("parse a kernel batch to its payload", { group: "netlink" }, () => {
  const [m] = parseMessages(batch9);
  batchPayload(decodeJoolMessage(m));
});
Deno.bench("build JOOLD_ADD for a 4-session datagram", { group: "netlink" }, () => {
  joolRequest(target, COMMANDS_4_1.JOOLD_ADD, sessionEntriesAttribute(nested));
});
Deno.bench("build JOOLD_ACK", { group: "netlink" }, () => {
  joolRequest(target, COMMANDS_4_1.JOOLD_ACK);
});
