/**
 * joold: the session-synchronization daemon of the Jool NAT64, in TypeScript on Deno.
 *
 * As a library it exposes the configuration model and parser, the codecs and the channels the daemon
 * is built from. Run as the main module (`deno run ... jsr:@joold/cli` or `deno run ... mod.ts`) it
 * starts the command line, exactly like `cli.ts`.
 *
 * @example
 * ```ts
 * import { parseCommandLine, resolveConfig } from "@joold/cli";
 * const { config } = resolveConfig(parseCommandLine(["--net.mcast.addr=ff08::db8:64:64"]));
 * ```
 *
 * @module
 */

import { main } from "./cli.ts";

export { EXIT, main } from "./cli.ts";
export { parseCommandLine, type ParsedArgs } from "./lib/config/args.ts";
export {
  addressFamily,
  type Family,
  isMulticast,
  parseIPv4,
  parseIPv6,
} from "./lib/config/address.ts";
export { DEFAULTS, INSTANCE_NAME_MAX_LENGTH } from "./lib/config/defaults.ts";
export { COMMAND_LINE, ConfigError } from "./lib/config/error.ts";
export { readJsonObject, type ReadTextFile } from "./lib/config/file.ts";
export { formatConfig } from "./lib/config/print.ts";
export { resolveConfig, type Resolved } from "./lib/config/resolve.ts";
export type {
  Config,
  LogFormat,
  LogLevel,
  MetricsConfig,
  ModConfig,
  NetConfig,
  StatsConfig,
} from "./lib/config/types.ts";
export type { ErrorHandler, KernelChannel, NetworkChannel, PayloadHandler } from "./lib/channel.ts";
export { createLogger, formatLine, type LogFields, type Logger, silentLogger } from "./lib/log.ts";
export { helpText } from "./lib/help.ts";
export {
  Daemon,
  type DaemonParts,
  kernelErrorKind,
  RETRY_DELAY_MS,
  RETRY_QUEUE_LIMITS,
} from "./lib/daemon.ts";
export {
  ADVERTISE_INTERVAL_MS,
  type DaemonHandle,
  KERNEL_STATS_TIMEOUT_MS,
  type KernelPeer,
  startDaemon,
  type StartParts,
  stopSummary,
} from "./lib/start.ts";
export { type Counters, createCounters } from "./lib/counters.ts";
export {
  type BuildInfo,
  CONTENT_TYPE,
  COUNTER_HELP,
  counterName,
  formatMetrics,
  type HistogramSnapshot,
  kernelStatName,
  type MetricsSnapshot,
  PEER_COUNTERS,
  type PeerTrafficSnapshot,
  type SecurePeerSnapshot,
  type SecureSnapshot,
} from "./lib/metrics/exposition.ts";
export {
  type Collector,
  type KernelStatsSource,
  MetricsPermissionError,
  MetricsServer,
  type SyncReadySource,
} from "./lib/metrics/server.ts";
export {
  FLOOD_LINGER_MS,
  Reactor,
  type ReadableHandler,
  ROUND_BUDGET,
  type WatchOptions,
} from "./lib/reactor.ts";
export { type ChannelParts, NetlinkKernelChannel } from "./lib/kernel/channel.ts";
export { ChannelControl, type ControlParts } from "./lib/kernel/control.ts";
export { type KernelOptions, openKernel } from "./lib/kernel/open.ts";
export {
  NetlinkConn,
  NetlinkError,
  type NetlinkOptions,
  type NetlinkReply,
  type NetlinkSocket,
  openNetlink,
} from "./lib/netlink/conn.ts";
export { dialTwin, NetlinkTwin, type TwinKernel, type TwinOptions } from "./lib/netlink/twin.ts";
export { SystemError } from "./ffi/errno.ts";
export { type KernelStartup, type VersionSource } from "./lib/kernel/startup.ts";
export {
  JoolNotLoadedError,
  KernelError,
  KernelSendError,
  MalformedKernelMessageError,
  ReceiveOverrunError,
} from "./lib/kernel/error.ts";
export {
  formatLatency,
  LATENCY_BOUNDS_US,
  LatencyHistogram,
  type LatencySummary,
} from "./lib/kernel/latency.ts";
export {
  type ChannelOptions,
  type DestinationStats,
  MulticastChannel,
  NetworkConfigError,
  PEER_RATE,
  peerSummary,
  SendError,
  type SendFailure,
  type SourceCheckCounters,
} from "./lib/net/multicast.ts";
export {
  MAX_REQUEST,
  REPLY_LIMIT,
  replyPolicy,
  type StatsDrop,
  StatsServer,
} from "./lib/stats/server.ts";
export { formatStats } from "./lib/stats/reply.ts";
export { KeyedTokenBuckets, type RateLimit, TokenBucket } from "./lib/token_bucket.ts";
export {
  checkMeaning,
  judgeSession,
  lifetime,
  type MeaningCounters,
  type SessionProblem,
  type SessionVerdict,
} from "./lib/jool/meaning.ts";
export {
  decodeTimeouts,
  JOOL_DEFAULT_TIMEOUTS,
  type SessionTimeouts,
  TCP_INCOMING_SYN_MS,
} from "./lib/jool/timeouts.ts";
export {
  decodeCompact36,
  decodeCompact48,
  decodeNested,
  decodePayload,
  encodeCompact36,
  encodeCompact48,
  encodeNested,
  formatTimeout,
  type PayloadSummary,
  type Session,
  SESSION_ENCODERS,
  sessionCsv,
} from "./lib/jool/session.ts";
export {
  embedIPv4,
  type PayloadTranslation,
  type Pool6,
  pool6FromGlobals,
  type RefusalReason,
  type SessionTranslation,
  translatePayload,
  translateSession,
} from "./lib/jool/translate.ts";
export {
  batchPayload,
  decodeJoolMessage,
  errorReport,
  type JoolErrorReport,
  type JoolMessage,
  joolRequest,
  type RequestTarget,
  sessionEntriesAttribute,
} from "./lib/jool/message.ts";
export { decodeJoolHeader, encodeJoolHeader, type JoolHeader } from "./lib/jool/header.ts";
export {
  type Commands,
  commandsFor,
  formatVersion,
  isMaptRelease,
  type JoolVersion,
  parseVersion,
  type SessionFormat,
  sessionFormatFor,
} from "./lib/jool/version.ts";
export { type Attribute, encodeAttribute, parseAttributes } from "./lib/netlink/attribute.ts";
export {
  encodeMessage,
  type ErrorMessage,
  type Message,
  type MessageHeader,
  parseErrorMessage,
  parseMessages,
} from "./lib/netlink/message.ts";
export { type FamilyInfo, getFamilyRequest, parseFamilyReply } from "./lib/genetlink/controller.ts";
export {
  type AdvertiseMode,
  type Advertiser,
  type DatagramHandler,
  MAX_CLOCK_SKEW_MS,
  reportsAdvertiseDone,
  SecureChannel,
  type SecureParts,
  type SyncReadyReason,
} from "./lib/secure/channel.ts";
export {
  type BulkDone,
  decodeBulkDone,
  decodeHello,
  decodeNack,
  encodeBulkDone,
  encodeHello,
  encodeNack,
  type Nack,
} from "./lib/secure/control.ts";
export {
  DEFAULT_RESEND_BUFFER,
  type DueWork,
  GapTracker,
  type NackRequest,
  ResendRing,
  type RingEntry,
} from "./lib/secure/recovery.ts";
export {
  decodeHeader,
  encodeHeader,
  type EnvelopeHeader,
  HEADER_LENGTH,
  isEnvelope,
  Kind,
  MAGIC,
  MAX_FIELD,
  openEnvelope,
  OVERHEAD,
  sealEnvelope,
  SENDER_LENGTH,
  TAG_LENGTH,
  VERSION as ENVELOPE_VERSION,
} from "./lib/secure/envelope.ts";
export {
  denoKeyFileSystem,
  generateKeyLine,
  KEY_HEX_DIGITS,
  KeyFileError,
  type KeyFileSystem,
  keyIdHex,
  loadKeyFile,
  parseKeyFile,
  SyncKey,
} from "./lib/secure/keyfile.ts";
export { MAX_PEERS, type Peer, PeersTable, senderHex } from "./lib/secure/peers.ts";
export { LATE, ReplayWindow, type Verdict, WINDOW } from "./lib/secure/replay.ts";
export {
  Sealer,
  SEALER_QUEUE,
  SEALER_STAGING,
  type SealerParts,
  SEND_PATIENCE_MS,
  type SendPlan,
  STAGING_PATIENCE_MS,
} from "./lib/secure/sealer.ts";
export { VERSION } from "./lib/version.ts";

if (import.meta.main) {
  // `deno run jsr:@joold/cli`: the daemon itself, which may set its V8 flags (lib/tiers.ts).
  Deno.exit(await main(Deno.args, { tiers: true }));
}
