// The line a user types to an agent that takes messages (not keystrokes): keys in, edits and
// actions out. Enter sends the line, Esc interrupts the agent's turn, Backspace / Ctrl-U / Ctrl-W
// edit; other escape sequences (arrows, function keys) are ignored. Pure: the runner draws the line
// and sends what it says.

export type EditorAction = { kind: 'changed' } | { kind: 'submit'; text: string } | { kind: 'interrupt' };

const ESC = '\x1b';

export class LineEditor {
  private text = '';

  get line(): string {
    return this.text;
  }

  clear(): void {
    this.text = '';
  }

  /** Feeds the bytes of one `write` (as the terminal sent them); returns what they mean, in order. */
  feed(data: string): EditorAction[] {
    const out: EditorAction[] = [];
    const changed = () => {
      if (out[out.length - 1]?.kind !== 'changed') out.push({ kind: 'changed' });
    };
    // A lone Esc is a key of its own; an Esc that starts a sequence (ESC [ A) is another key.
    if (data === ESC) return [{ kind: 'interrupt' }];
    const chars = [...data];
    for (let i = 0; i < chars.length; i++) {
      const c = chars[i]!;
      if (c === ESC) {
        i = skipSequence(chars, i);
        continue;
      }
      if (c === '\r' || c === '\n') {
        if (c === '\r' && chars[i + 1] === '\n') i++;
        const text = this.text.trim();
        this.text = '';
        if (text !== '') out.push({ kind: 'submit', text });
        else changed();
      } else if (c === '\x7f' || c === '\b') {
        if (this.text !== '') {
          this.text = [...this.text].slice(0, -1).join('');
          changed();
        }
      } else if (c === '\x15') {
        this.text = '';
        changed();
      } else if (c === '\x17') {
        this.text = this.text.replace(/\S+\s*$/, '');
        changed();
      } else if (c === '\x03') {
        // Ctrl-C clears a line being typed, else interrupts (as in the agents' own UIs).
        if (this.text !== '') {
          this.text = '';
          changed();
        } else {
          out.push({ kind: 'interrupt' });
        }
      } else if (c === '\t') {
        this.text += ' ';
        changed();
      } else if (c >= ' ' && c !== '\x7f' && !(c >= '\x80' && c <= '\x9f')) {
        this.text += c;
        changed();
      }
    }
    return out;
  }
}

/** Index of the last character of the escape sequence starting at chars[i] (an ESC). */
function skipSequence(chars: string[], i: number): number {
  const next = chars[i + 1];
  if (next === '[') {
    // CSI: parameters and intermediates until a final byte @ … ~
    let j = i + 2;
    while (j < chars.length && !(chars[j]! >= '@' && chars[j]! <= '~')) j++;
    return Math.min(j, chars.length - 1);
  }
  if (next === 'O') return Math.min(i + 2, chars.length - 1); // SS3: one more (F1–F4, keypad)
  return next === undefined ? i : i + 1; // Alt+key
}
