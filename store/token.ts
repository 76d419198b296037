// What a daemon token looks like, wherever one is read: the daemon's own token file, a copy a laptop
// was given (--token-file), and the copy kept in the config. Pure: no file is touched here.

/** Ours are 64 hex digits; any such word of 16–256 characters is accepted. */
export const TOKEN_SHAPE = /^[A-Za-z0-9._~+/=-]{16,256}$/;

/** The token file is missing, unsafe or malformed; the message is one line for the user. */
export class TokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenError';
  }
}

/** The token in a file's text, or a TokenError naming the file. */
export function parseToken(text: string, file: string): string {
  const token = text.trim();
  if (!TOKEN_SHAPE.test(token)) {
    throw new TokenError(`${file} does not hold a daemon token (one word of 16 to 256 letters and digits, as ralph daemon writes to $RALPH_HOME/daemon.token)`);
  }
  return token;
}
