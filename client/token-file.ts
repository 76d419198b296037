// The laptop's side of a tcp remote's token (`ralph remote add … --token-file FILE`): the copy of the
// box's $RALPH_HOME/daemon.token that the user brought over.

import { readFileSync } from 'node:fs';
import { parseToken, TokenError } from '../store/token.js';

/** The token in FILE, or a TokenError in the user's terms. */
export function readTokenFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TokenError(code === 'ENOENT' ? `no token file at ${file}: copy $RALPH_HOME/daemon.token from the box first` : `cannot read ${file}: ${(err as Error).message}`);
  }
  return parseToken(text, file);
}
