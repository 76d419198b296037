// Cutting UTF-8 byte ranges so that every piece decodes to whole characters.

const isContinuation = (byte: number) => (byte & 0xc0) === 0x80;

/** Bytes to skip at the start of `buf` so it begins on a character (0 unless it starts mid-character). */
export function leadingContinuationBytes(buf: Uint8Array): number {
  let n = 0;
  while (n < buf.length && n < 3 && isContinuation(buf[n]!)) n++;
  return n;
}

/** Length of the longest prefix of `buf` that ends on a character boundary. */
export function completePrefixLength(buf: Uint8Array): number {
  const len = buf.length;
  // Find the lead byte of the last character (at most 3 continuation bytes back).
  for (let i = len - 1; i >= 0 && i >= len - 4; i--) {
    const b = buf[i]!;
    if (isContinuation(b)) continue;
    const need = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return i + need <= len ? len : i;
  }
  return len;
}
