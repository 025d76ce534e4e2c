/**
 * The configuration error: names the source (a file path or "command line"), the key and what is
 * wrong, so the CLI can print it as one line.
 *
 * @module
 */

/** The source name used for values that come from the command line rather than a file. */
export const COMMAND_LINE = "command line";

/** A configuration value, file or flag that cannot be used. */
export class ConfigError extends Error {
  /** File path, or {@linkcode COMMAND_LINE}. */
  readonly source: string;
  /** The offending key (JSON key or flag), or undefined when the whole source is at fault. */
  readonly key: string | undefined;
  /** What is wrong (and what to do), without the source and key. */
  readonly problem: string;

  /**
   * Builds the error; its message is `source: key: problem` (or `source: problem`).
   *
   * @param source file path or "command line"
   * @param key offending key, if any
   * @param problem what is wrong
   * @param options standard error options (`cause`)
   */
  constructor(source: string, key: string | undefined, problem: string, options?: ErrorOptions) {
    super(key === undefined ? `${source}: ${problem}` : `${source}: ${key}: ${problem}`, options);
    this.name = "ConfigError";
    this.source = source;
    this.key = key;
    this.problem = problem;
  }
}
