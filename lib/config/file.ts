/**
 * Reading a JSON configuration file (comments and trailing commas allowed, like the files operators
 * already have) into a plain object, with errors that name the file and the line:column.
 *
 * @module
 */

import { getNodeValue, parse, type ParseError, parseTree, printParseErrorCode } from "jsonc-parser";
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

/** jsonc-parser's error codes, in words (an operator should never read `CommaExpected`). */
const PARSE_ERRORS: Readonly<Record<string, string>> = {
  InvalidSymbol: "unexpected",
  InvalidNumberFormat: "this number is not written as JSON numbers are",
  PropertyNameExpected: "expected a key in double quotes",
  ValueExpected: "expected a value (a string, number, true, false, object or array)",
  ColonExpected: `expected ":" after the key`,
  CommaExpected: `expected "," between two entries`,
  CloseBraceExpected: `expected "}" closing the object`,
  CloseBracketExpected: `expected "]" closing the array`,
  EndOfFileExpected: "unexpected text after the end of the JSON object",
  InvalidCommentToken: "this comment is not closed",
  UnexpectedEndOfComment: "this comment is not closed",
  UnexpectedEndOfString: "this string is not closed by a double quote",
  UnexpectedEndOfNumber: "this number ends too early",
  InvalidUnicode: `invalid \\u escape: it takes four hexadecimal digits`,
  InvalidEscapeCharacter:
    `invalid escape in a string (JSON has \\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)`,
  InvalidCharacter: "a control character (such as a tab or a newline) inside a string",
};

/**
 * One syntax error in words: what is wrong at the offset, and what to do.
 *
 * @param text the file's text
 * @param error the parser's error
 * @returns the problem, without the position
 */
function describeParseError(text: string, error: ParseError): string {
  const words = PARSE_ERRORS[printParseErrorCode(error.error)] ?? "not valid JSON";
  if (printParseErrorCode(error.error) !== "InvalidSymbol") return words;
  const found = text.slice(error.offset, error.offset + Math.max(1, error.length));
  if (found.startsWith("'")) return "single quotes: JSON strings and keys take double quotes";
  return `${words} ${
    JSON.stringify(found.slice(0, 20))
  }: a value is a string in double quotes, a number, an object, an array, true, false or null`;
}

/**
 * The top-level entries of a parsed object, the FIRST of a key given twice winning (as cJSON, so
 * Jool's C daemon, reads the same file), and where each repeated key stands (`line:column`).
 */
function entries(
  text: string,
): { object: Record<string, unknown>; repeated: Map<string, string[]> } {
  const root = parseTree(text, [], { allowTrailingComma: true, disallowComments: false });
  const values = new Map<string, unknown>();
  const places = new Map<string, string[]>();
  for (const property of root?.children ?? []) {
    const [name, value] = property.children ?? [];
    if (name === undefined || value === undefined) continue;
    const key = String(name.value);
    places.set(key, [...places.get(key) ?? [], lineColumn(text, name.offset)]);
    if (!values.has(key)) values.set(key, getNodeValue(value));
  }
  return {
    object: Object.fromEntries(values),
    repeated: new Map([...places].filter(([, at]) => at.length > 1)),
  };
}

/**
 * Reads and parses a JSON configuration file whose root must be an object. A UTF-8 byte order mark
 * is skipped (Windows editors write one); comments and trailing commas are allowed.
 *
 * @param path the file
 * @param read the reader (Deno's by default; tests may pass another)
 * @param warn receives one line per oddity that is not an error (a key given twice: the first
 *   counts), naming the file and key
 * @returns the parsed object
 * @throws {ConfigError} when the file cannot be read, is not JSON, or its root is not an object; a
 *   syntax error's source is `path:line:column`
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readJsonObject } from "./file.ts";
 * const warnings: string[] = [];
 * const object = readJsonObject("n.json", () => `{ "ttl": 1, "ttl": 3 }`, (w) => warnings.push(w));
 * assert.deepEqual(object, { ttl: 1 });
 * assert.equal(warnings.length, 1);
 * ```
 */
export function readJsonObject(
  path: string,
  read: ReadTextFile = readTextFileSync,
  warn: (line: string) => void = () => {},
): Record<string, unknown> {
  let text: string;
  try {
    text = read(path);
  } catch (error) {
    throw new ConfigError(path, undefined, describeReadError(error, path), {
      cause: error,
    });
  }
  if (text.startsWith("\uFEFF")) text = " " + text.slice(1); // keeps the columns
  const errors: ParseError[] = [];
  const value: unknown = parse(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (
    value === undefined && errors.every((e) => printParseErrorCode(e.error) === "ValueExpected")
  ) {
    const onlyComments = text.trim() !== "";
    throw new ConfigError(
      `${path}:1:1`,
      undefined,
      `the file is ${
        onlyComments ? "only comments" : "empty"
      }: expected a JSON object, e.g. ${OBJECT_EXAMPLE}`,
    );
  }
  if (errors.length > 0) {
    const first = errors[0];
    throw new ConfigError(
      `${path}:${lineColumn(text, first.offset)}`,
      undefined,
      describeParseError(text, first),
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ConfigError(
      path,
      undefined,
      `the file must hold a JSON object, e.g. ${OBJECT_EXAMPLE}`,
    );
  }
  const { object, repeated } = entries(text);
  for (const [key, places] of repeated) {
    warn(
      `${path}: ${JSON.stringify(key)}: given ${places.length} times (at ${
        places.join(", ")
      }): the first one is used, as by Jool's C daemon`,
    );
  }
  return object;
}

const OBJECT_EXAMPLE = `{ "instance": "default" }`;
