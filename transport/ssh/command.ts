// Words for ssh: RALPH_SSH_COMMAND split into an argv the way a POSIX shell splits words (quotes and
// backslashes), without running a shell; and the words of the command run on the box, quoted for
// the box's shell (ssh hands the far side one string, which that user's shell splits again).

export class CommandLineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CommandLineError';
  }
}

/** Characters a shell would act on (expansion, pipes, redirection, lists): refused when unquoted. */
const SHELL_ONLY = new Set(['$', '`', '|', '&', ';', '<', '>', '(', ')']);

/**
 * Splits `text` into words: blanks separate them; '…' keeps everything literally; "…" keeps
 * everything but \" \\ \$ \` (escaped); a backslash outside quotes escapes the next character.
 * What only a shell could do ($VAR, `cmd`, pipes, redirections) is refused with a clear error:
 * nothing here runs a shell.
 */
export function splitCommandLine(text: string, what: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  const refuse = (why: string) => new CommandLineError(`${what} ${JSON.stringify(text)}: ${why}`);
  while (i < text.length) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\n') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i++;
      continue;
    }
    inWord = true;
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end === -1) throw refuse('a single quote is not closed');
      word += text.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      i++;
      for (;;) {
        if (i >= text.length) throw refuse('a double quote is not closed');
        const d = text[i]!;
        if (d === '"') break;
        if (d === '\\' && i + 1 < text.length && '"\\$`\n'.includes(text[i + 1]!)) {
          if (text[i + 1] !== '\n') word += text[i + 1];
          i += 2;
          continue;
        }
        if (d === '$' || d === '`') throw refuse(`it is split into words, not run by a shell: ${d} is not expanded (write the value out)`);
        word += d;
        i++;
      }
      i++;
    } else if (c === '\\') {
      if (i + 1 >= text.length) throw refuse('it ends with a backslash');
      if (text[i + 1] !== '\n') word += text[i + 1];
      i += 2;
    } else if (SHELL_ONLY.has(c)) {
      throw refuse(`it is split into words, not run by a shell: quote ${c} or leave it out`);
    } else {
      word += c;
      i++;
    }
  }
  if (inWord) words.push(word);
  if (words.length === 0) throw refuse('it names no program');
  return words;
}

/**
 * One word for the box's shell: as it is when it holds nothing a shell would act on, else in single
 * quotes. A leading `~/` stays outside the quotes so that the box's shell expands it to the home.
 */
export function quoteForRemoteShell(word: string): string {
  if (/^[A-Za-z0-9_.\/@%+=:,-]+$/.test(word)) return word;
  if (word.startsWith('~/') && word.length > 2) return `~/${quoteForRemoteShell(word.slice(2))}`;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}
