/**
 * The effective configuration as text, in the shape of the C daemon's "Config:" block
 * (`jool session proxy` prints the same keys).
 *
 * @module
 */

import type { Config } from "./types.ts";

/**
 * Formats the configuration as the C daemon's "Config:" block; unset values print as `(null)`,
 * exactly as the C daemon prints them.
 *
 * @param config the effective configuration
 * @returns the block, newline-terminated
 * @example
 * ```ts
 * formatConfig(config).startsWith("Config:\n  mod.instance: "); // true
 * ```
 */
export function formatConfig(config: Config): string {
  const lines = ["Config:", `  mod.instance: ${config.mod.instance}`];
  const net = config.net;
  if (net !== null) {
    lines.push(
      `  net.mcast.addr: ${net.multicastAddress}`,
      `  net.mcast.port: ${net.multicastPort}`,
      `  net.dev.in: ${net.inInterface ?? "(null)"}`,
      `  net.dev.out: ${net.outInterface ?? "(null)"}`,
      `  net.ttl: ${net.ttl}`,
    );
  } else {
    lines.push("  net: disabled (no multicast address): sessions from the kernel are printed");
  }
  if (config.stats !== null) {
    lines.push(`  stats.addr: ${config.stats.address}`, `  stats.port: ${config.stats.port}`);
  }
  return lines.join("\n") + "\n";
}
