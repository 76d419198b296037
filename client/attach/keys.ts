// What the keys pressed during `ralph attach` mean. Pure: bytes in, actions out, so every rule is
// testable without a terminal.
//
//   watch mode        i → interactive · s → stop (asks y/N) · q or Ctrl-C → detach · others ignored
//   interactive mode  every byte (Esc and Ctrl-C included) goes to the agent · Ctrl-] → watch mode

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

export class KeyRouter {
  // Keystrokes may split a UTF-8 character across reads; the decoder holds the partial bytes.
  private readonly decoder = new StringDecoder('utf8');

  constructor(public mode: AttachMode = 'watch') {}

  route(chunk: Buffer): KeyAction[] {
    const actions: KeyAction[] = [];
    let i = 0;
    while (i < chunk.length) {
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
      const key = chunk[i++]!;
      const action = this.mode === 'confirm-stop' ? this.confirmKey(key) : this.watchKey(key);
      if (action) actions.push(action);
      if (action?.kind === 'detach') break;
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

  private confirmKey(key: number): KeyAction {
    this.mode = 'watch';
    return key === 0x79 /* y */ || key === 0x59 /* Y */ ? { kind: 'stop' } : { kind: 'keep-running' };
  }
}
