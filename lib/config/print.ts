/**
 * The effective configuration as text, in the shape of the C daemon's "Config:" block
 * (`jool session proxy` prints the same keys).
 *
 * @module
 */

import { type Section, sectionKeys } from "./keys.ts";
import type { Config } from "./types.ts";

/**
 * Formats the configuration as the C daemon's "Config:" block; unset values print as `(null)`,
 * exactly as the C daemon prints them.
 *
 * @param config the effective configuration
 * @returns the block, newline-terminated
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCommandLine } from "./args.ts";
 * import { formatConfig } from "./print.ts";
 * import { resolveConfig } from "./resolve.ts";
 * const { config } = resolveConfig(parseCommandLine(["--instance=blue"]));
 * assert.ok(formatConfig(config).startsWith("Config:\n  mod.instance: blue\n"));
 * ```
 */
export function formatConfig(config: Config): string {
  const lines = ["Config:"];
  const sections = { mod: config.mod, net: config.net, stats: config.stats } as const;
  for (const [section, object] of Object.entries(sections)) {
    if (object === null) {
      if (section === "net") {
        lines.push("  net: disabled (no multicast address): sessions from the kernel are printed");
      }
      continue;
    }
    for (const spec of sectionKeys(section as Section)) {
      if (spec.printed === undefined) continue;
      const value = (object as unknown as Record<string, unknown>)[spec.field];
      // The unicast peers are ours: the C daemon's block has no line for them, so none unless set.
      if (spec.type === "unicast-peers" && value === undefined) continue;
      lines.push(
        `  ${spec.printed}: ${Array.isArray(value) ? value.join(" ") : value ?? "(null)"}`,
      );
    }
  }
  return lines.join("\n") + "\n";
}
