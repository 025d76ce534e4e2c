/**
 * Reading a JSON configuration file (comments and trailing commas allowed, like the files operators
 * already have) into a plain object, with errors that name the file and the line:column.
 *
 * @module
 */

import { parse, type ParseError, printParseErrorCode } from "jsonc-parser";
import { ConfigError } from "./error.ts";

/** Reads a whole text file; throws Deno's errors (`Deno.errors.NotFound`, ...). */
export type ReadTextFile = (path: string) => string;

/**
 * Deno's own synchronous reader, permission-checked (`--allow-read`).
 *
 * @param path file to read
 * @returns its text
 */
export function readTextFileSync(path: string): string {
  return Deno.readTextFileSync(path);
}

/**
 * Converts an offset of `text` into a 1-based `line:column`.
 *
 * @param text the whole text
 * @param offset a 0-based character offset into it
 * @returns `"line:column"`
 * @example
 * ```ts
 * lineColumn("{\n  x", 4); // "2:3"
 * ```
 */
export function lineColumn(text: string, offset: number): string {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text[i] === "\n") {
      line++;
      start = i + 1;
    }
  }
  return `${line}:${offset - start + 1}`;
}

function describeReadError(error: unknown, path: string): string {
  if (error instanceof Deno.errors.NotFound) {
    return "no such file: check the path (relative paths start at the current directory)";
  }
  if (error instanceof Deno.errors.NotCapable) {
    // Deno's --allow-read, not an option of joold: name the flag that grants it, and where the
    // packaged service looks (packaging/README.md).
    return `Deno's permissions do not let joold read this file: run it with deno run --allow-read=${path} (the service reads only /etc/joold: keep its files there)`;
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return "permission denied: make the file readable by the user joold runs as";
  }
  if (error instanceof Deno.errors.IsADirectory) return "is a directory, not a JSON file";
  if (error instanceof TypeError || error instanceof SyntaxError) {
    return "is not valid UTF-8 text";
  }
  return `cannot be read: ${error instanceof Error ? error.message : String(error)}`;
}

/**
 * Reads and parses a JSON configuration file whose root must be an object.
 *
 * @param path the file
 * @param read the reader (Deno's by default; tests may pass another)
 * @returns the parsed object
 * @throws {ConfigError} when the file cannot be read, is not JSON, or its root is not an object
 * @example
 * ```ts
 * const net = readJsonObject("/etc/joold/netsocket.json");
 * ```
 */
export function readJsonObject(
  path: string,
  read: ReadTextFile = readTextFileSync,
): Record<string, unknown> {
  let text: string;
  try {
    text = read(path);
  } catch (error) {
    throw new ConfigError(path, undefined, describeReadError(error, path), {
      cause: error,
    });
  }
  const errors: ParseError[] = [];
  const value: unknown = parse(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0) {
    const first = errors[0];
    throw new ConfigError(
      path,
      undefined,
      `JSON syntax error at ${lineColumn(text, first.offset)}: ${printParseErrorCode(first.error)}`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ConfigError(
      path,
      undefined,
      'the file must hold a JSON object, e.g. { "instance": "default" }',
    );
  }
  return value as Record<string, unknown>;
}
