// The phases of a bulk resync (guest/bench.sh's bulk steps), from J's and K's netlink captures:
//   deno run --allow-read bulktime.ts J.pcap K.pcap|- FAMILY_ID JOOL_VERSION [K-SYNC.pcap|-]
// Prints one line: batches=N adds=N datagrams=N j_first_ms= j_last_ms= udp_first_ms= udp_last_ms=
// k_first_ms= k_last_ms= (after the advertise request; "-" when never seen) k_adds_after_j=N (K's
// JOOLD_ADDs after J's kernel's last batch: what the standby still had to do then).
import { commandsFor, parseVersion } from "../../lib/jool/version.ts";
import { bulkTimeline } from "./pcap.ts";

const [jFile, kFile, family, version, syncFile] = Deno.args;
if (!jFile || !kFile || !family || !version) {
  console.error("usage: bulktime.ts J.pcap K.pcap|- FAMILY_ID JOOL_VERSION");
  Deno.exit(2);
}
const commands = commandsFor(parseVersion(version));
const t = bulkTimeline(
  Deno.readFileSync(jFile),
  kFile === "-" ? undefined : Deno.readFileSync(kFile),
  { family: Number(family), advertise: commands.JOOLD_ADVERTISE, add: commands.JOOLD_ADD },
  syncFile === undefined || syncFile === "-" ? undefined : Deno.readFileSync(syncFile),
);
const ms = (v: number) => Number.isNaN(v) ? "-" : v.toFixed(1);
console.log(
  `batches=${t.batches} adds=${t.adds} datagrams=${t.datagrams} j_first_ms=${
    ms(t.firstBatchMs)
  } j_last_ms=${ms(t.lastBatchMs)} udp_first_ms=${ms(t.firstDatagramMs)} udp_last_ms=${
    ms(t.lastDatagramMs)
  } k_first_ms=${ms(t.firstAddMs)} k_last_ms=${ms(t.lastAddMs)} k_adds_after_j=${t.addsAfterJLast}`,
);
