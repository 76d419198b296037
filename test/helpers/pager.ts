// A pager for TUI tests, as $PAGER: it takes the log on stdin (and says how many bytes came), then
// reads lines from the terminal as less reads keys, writing each to a file the test reads; it notes
// SIGINT and SIGQUIT instead of dying of them, and a line "q" ends it.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const SCRIPT = `
const fs = require('fs');
const tty = require('tty');
const out = process.argv[2];
fs.writeFileSync(out + '.pid', String(process.pid));
fs.writeFileSync(out, '');
let bytes = 0;
process.stdin.on('data', (d) => (bytes += d.length));
process.stdin.on('end', () => {
  process.stdout.write('PAGER READY ' + bytes + '\\n');
  const keys = new tty.ReadStream(fs.openSync('/dev/tty', 'r'));
  let buf = '';
  keys.on('data', (d) => {
    buf += d;
    for (let nl = buf.indexOf('\\n'); nl !== -1; nl = buf.indexOf('\\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      fs.appendFileSync(out, line + '\\n');
      if (line === 'q') process.exit(0);
    }
  });
});
process.on('SIGINT', () => fs.appendFileSync(out, 'SIGINT\\n'));
process.on('SIGQUIT', () => fs.appendFileSync(out, 'SIGQUIT\\n'));
`;

export class TestPager {
  private readonly out: string;
  /** $PAGER: words split on spaces, no shell (paths here have no spaces). */
  readonly command: string;

  constructor(dir: string) {
    const script = join(dir, 'pager.cjs');
    this.out = join(dir, 'pager.out');
    writeFileSync(script, SCRIPT);
    this.command = `${process.execPath} ${script} ${this.out}`;
  }

  /** The lines typed to it so far, and the signals it got, one a line. */
  said(): string {
    try {
      return readFileSync(this.out, 'utf8');
    } catch {
      return '';
    }
  }

  /** The pid of the last one started. */
  pid(): number {
    return Number(readFileSync(`${this.out}.pid`, 'utf8'));
  }
}
