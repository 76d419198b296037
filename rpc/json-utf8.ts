// JSON string literals straight from UTF-8 bytes, for lines that carry bulk text (a loop's output):
// the bytes go out as they are, with only what JSON must escape escaped, instead of being decoded
// into a JS string for JSON.stringify and encoded back to UTF-8 for the socket. The result is the
// same bytes JSON.stringify would give for the decoded text (for valid UTF-8, which the caller
// guarantees).

/** What each byte becomes inside a JSON string: 0 for itself, else the escape's index in ESCAPES. */
const ESCAPE_OF = new Uint8Array(256);
const ESCAPES: Uint8Array[] = [new Uint8Array(0)];
function escapeAs(byte: number, text: string): void {
  ESCAPE_OF[byte] = ESCAPES.length;
  ESCAPES.push(Buffer.from(text, 'latin1'));
}
for (let b = 0; b < 0x20; b++) escapeAs(b, `\\u${b.toString(16).padStart(4, '0')}`);
escapeAs(0x08, '\\b');
escapeAs(0x09, '\\t');
escapeAs(0x0a, '\\n');
escapeAs(0x0c, '\\f');
escapeAs(0x0d, '\\r');
escapeAs(0x22, '\\"');
escapeAs(0x5c, '\\\\');

/** The longest escape (\u001b): a literal is at most this many times its text, plus the quotes. */
export const MAX_ESCAPE_GROWTH = 6;

/**
 * Writes the JSON string literal (quotes included) of the UTF-8 text `src` into `out` from `pos`
 * and returns the position after it. `out` needs room for MAX_ESCAPE_GROWTH * src.length + 2 bytes.
 */
export function writeJsonString(src: Uint8Array, out: Uint8Array, pos: number): number {
  out[pos++] = 0x22;
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const b = src[i]!;
    const e = ESCAPE_OF[b]!;
    if (e === 0) {
      out[pos++] = b;
    } else {
      const esc = ESCAPES[e]!;
      for (let k = 0; k < esc.length; k++) out[pos++] = esc[k]!;
    }
  }
  out[pos++] = 0x22;
  return pos;
}
