// What the keys pressed during `ralph attach` mean. Pure: bytes in, actions out, so every rule is
// testable without a terminal.
//
//   watch mode        i → interactive · s → stop (asks y/N) · q or Ctrl-C → detach · others ignored
//   interactive mode  every byte (Esc and Ctrl-C included) goes to the agent · Ctrl-] → watch mode
//
// A paste is not a key press: in watch mode a bracketed paste (ESC [200~ … ESC [201~) is ignored,
// and the y/N answer to "stop?" is a read of its own holding one key, never the next byte of the
// read that asked, nor a paste ("systemctl status" pasted by mistake must not stop the loop).

import { StringDecoder } from 'node:string_decoder';

export type AttachMode = 'watch' | 'interactive' | 'confirm-stop';

export type KeyAction =
  | { kind: 'send'; data: string }
  | { kind: 'interactive'; on: boolean }
  | { kind: 'ask-stop' }
  | { kind: 'stop' }
  | { kind: 'keep-running' }
  | { kind: 'detach' };

/** Ctrl-] (GS), as telnet and `docker attach` use it: the one key interactive mode keeps for itself. */
export const LEAVE_INTERACTIVE_KEY = 0x1d;
const CTRL_C = 0x03;
const PASTE_START = Buffer.from('\x1b[200~');
const PASTE_END = Buffer.from('\x1b[201~');
const NO_BYTES = Buffer.alloc(0);

export class KeyRouter {
  // Keystrokes may split a UTF-8 character across reads; the decoder holds the partial bytes.
  private readonly decoder = new StringDecoder('utf8');

  /** Inside a bracketed paste that began in watch mode: skipped up to its end. */
  private pasting = false;
  /** The last bytes of a paste's last read, in case its end marker began there. */
  private pasteTail: Buffer = NO_BYTES;

  constructor(public mode: AttachMode = 'watch') {}

  route(chunk: Buffer): KeyAction[] {
    const actions: KeyAction[] = [];
    if (this.mode === 'confirm-stop') {
      // Only a lone key answers: a longer read is a paste (or keys typed ahead), and means no.
      this.mode = 'watch';
      const yes = chunk.length === 1 && (chunk[0] === 0x79 || chunk[0] === 0x59); // y or Y
      const bracketedPaste = chunk.subarray(0, PASTE_START.length).equals(PASTE_START);
      if (!bracketedPaste) return [yes ? { kind: 'stop' } : { kind: 'keep-running' }];
      actions.push({ kind: 'keep-running' }); // and the paste is skipped below
    }
    let i = 0;
    while (i < chunk.length) {
      if (this.pasting) {
        // The end marker may be split across reads: look for it from the last read's tail on.
        const tail = this.pasteTail;
        const hay = tail.length > 0 ? Buffer.concat([tail, chunk.subarray(i)]) : chunk.subarray(i);
        const end = hay.indexOf(PASTE_END);
        if (end === -1) {
          this.pasteTail = Buffer.from(hay.subarray(Math.max(0, hay.length - (PASTE_END.length - 1))));
          break;
        }
        this.pasting = false;
        this.pasteTail = NO_BYTES;
        i += end + PASTE_END.length - tail.length;
        continue;
      }
      if (this.mode === 'interactive') {
        const leave = chunk.indexOf(LEAVE_INTERACTIVE_KEY, i);
        const end = leave === -1 ? chunk.length : leave;
        const data = this.decoder.write(chunk.subarray(i, end));
        if (data !== '') actions.push({ kind: 'send', data });
        if (leave === -1) break;
        this.decoder.end(); // a character cut by Ctrl-] is dropped, not carried into the next session
        this.mode = 'watch';
        actions.push({ kind: 'interactive', on: false });
        i = leave + 1;
        continue;
      }
      if (chunk[i] === 0x1b && chunk.subarray(i, i + PASTE_START.length).equals(PASTE_START)) {
        this.pasting = true;
        i += PASTE_START.length;
        continue;
      }
      const action = this.watchKey(chunk[i++]!);
      if (action) actions.push(action);
      // After "stop?" the rest of this read is no answer; after a detach nothing counts.
      if (action?.kind === 'detach' || action?.kind === 'ask-stop') break;
    }
    return actions;
  }

  private watchKey(key: number): KeyAction | undefined {
    switch (String.fromCharCode(key)) {
      case 'i':
      case 'I':
        this.mode = 'interactive';
        return { kind: 'interactive', on: true };
      case 's':
      case 'S':
        this.mode = 'confirm-stop';
        return { kind: 'ask-stop' };
      case 'q':
      case 'Q':
        return { kind: 'detach' };
    }
    return key === CTRL_C ? { kind: 'detach' } : undefined;
  }
}
