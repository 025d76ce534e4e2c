/**
 * The version of joold (kept equal to deno.json's "version" by a test).
 *
 * @module
 */

/** joold's own version. */
export const VERSION = "0.1.0";
