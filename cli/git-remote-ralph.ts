#!/usr/bin/env node
// git-remote-ralph: the git remote helper for `ralph://<remote>/<repo>` URLs (see gitremote-helpers(7)).
// It has one capability, `connect`: git asks for git-receive-pack or git-upload-pack, we dial that
// remote's daemon (`hello {channel: git, ...}`), answer git with a blank line, and from then on pipe
// bytes both ways. stdout carries protocol bytes only; every message goes to stderr as `ralph: ...`.
// After a push, the loops it started are written to the local session DB.

import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { dialDaemon, findRemote, openControl, checkDaemonLoops, RemoteError } from '../client/daemon.js';
import { recordPushedLoops } from '../client/record.js';
import { PROTOCOL_VERSION, ControlMethods } from '../daemon/protocol.js';
import { readConfig, type RemoteConfig } from '../store/config.js';
import { openDb } from '../store/db.js';
import { LoopStore } from '../store/loops.js';
import { homePaths } from '../store/paths.js';

type Service = 'git-receive-pack' | 'git-upload-pack';

function die(message: string): never {
  process.stderr.write(`ralph: ${message}\n`);
  process.exit(128);
}

/** `ralph://<remote>/<repo>` → its parts (the repo is checked again by the daemon). */
export function parseRalphUrl(url: string): { remote: string; repo: string } {
  const m = /^ralph:\/\/([^/]+)\/(.+)$/.exec(url);
  if (!m || m[2]!.startsWith('/')) throw new Error(`bad URL ${JSON.stringify(url)}: expected ralph://<remote>/<repo>`);
  return { remote: decodeURIComponent(m[1]!), repo: m[2]!.replace(/\/+$/, '') };
}

/** Reads git's commands line by line until one asks to connect; hands over what is left unread. */
class CommandReader {
  private buf = Buffer.alloc(0);
  private waiting: ((line: string | null) => void) | undefined;
  private ended = false;
  private readonly onData = (d: Buffer) => {
    this.buf = Buffer.concat([this.buf, d]);
    this.deliver();
  };
  private readonly onEnd = () => {
    this.ended = true;
    this.deliver();
  };
  constructor(private readonly input: NodeJS.ReadableStream) {
    input.on('data', this.onData);
    input.on('end', this.onEnd);
  }
  private deliver() {
    if (!this.waiting) return;
    const nl = this.buf.indexOf(10);
    if (nl !== -1) {
      const line = this.buf.subarray(0, nl).toString('utf8');
      this.buf = this.buf.subarray(nl + 1);
      const w = this.waiting;
      this.waiting = undefined;
      w(line);
    } else if (this.ended) {
      const w = this.waiting;
      this.waiting = undefined;
      w(null);
    }
  }
  next(): Promise<string | null> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.deliver();
    });
  }
  /** Stops reading commands; returns bytes already read past the last command. */
  release(): { rest: Buffer; ended: boolean } {
    this.input.off('data', this.onData);
    this.input.off('end', this.onEnd);
    this.input.pause();
    return { rest: this.buf, ended: this.ended };
  }
}

function write(text: string): void {
  process.stdout.write(text);
}

/**
 * Pipes git ↔ daemon until the daemon ends the stream. Resolves true when it ended cleanly (the
 * daemon closed after git finished), false when the connection broke.
 */
function pipeBoth(stream: Duplex, leftover: { rest: Buffer; ended: boolean }): Promise<boolean> {
  if ('allowHalfOpen' in stream) (stream as Duplex & { allowHalfOpen: boolean }).allowHalfOpen = true;
  return new Promise((resolve) => {
    let done = false;
    const finish = (clean: boolean) => {
      if (done) return;
      done = true;
      resolve(clean);
    };
    // git → daemon; git's EOF (it closes our stdin after its pack) becomes a half-close.
    if (leftover.rest.length > 0) stream.write(leftover.rest);
    if (leftover.ended) stream.end();
    else {
      process.stdin.on('data', (d: Buffer) => {
        if (!stream.write(d)) {
          process.stdin.pause();
          stream.once('drain', () => process.stdin.resume());
        }
      });
      process.stdin.on('end', () => stream.end());
      process.stdin.resume();
    }
    // daemon → git
    stream.on('data', (d: Buffer) => {
      if (!process.stdout.write(d)) {
        stream.pause();
        process.stdout.once('drain', () => stream.resume());
      }
    });
    stream.on('end', () => finish(true));
    stream.resume(); // the hello reader left it paused
    stream.on('error', (err) => {
      process.stderr.write(`ralph: connection to the daemon lost: ${err.message}\n`);
      finish(false);
    });
    stream.on('close', () => finish(false));
  });
}

/** After a push: the loops it started, as rows in the local session DB, so `ralph status` shows them. */
async function recordPush(remote: RemoteConfig, pushId: string): Promise<void> {
  const conn = await openControl(remote, { timeoutMs: 5000 });
  try {
    const raw = await conn.peer.request(ControlMethods.pushResult, { pushId }, { timeoutMs: 5000 });
    const loops = checkDaemonLoops(raw, remote);
    if (loops.length === 0) return;
    const db = openDb(homePaths().db);
    try {
      recordPushedLoops(new LoopStore(db), remote, loops, { host: conn.hello.host });
    } finally {
      db.close();
    }
  } finally {
    conn.peer.close('done');
  }
}

function flushStdout(): Promise<void> {
  return new Promise((resolve) => (process.stdout.writableLength === 0 ? resolve() : process.stdout.once('drain', () => resolve())));
}

async function main(argv: string[]): Promise<number> {
  const url = argv[3] ?? argv[2];
  if (!url) die('usage: git-remote-ralph <remote> ralph://<remote>/<repo> (git runs this for you)');
  let target: { remote: string; repo: string };
  try {
    target = parseRalphUrl(url);
  } catch (err) {
    die((err as Error).message);
  }
  let remote: RemoteConfig;
  try {
    remote = findRemote(readConfig(), target.remote);
  } catch (err) {
    if (err instanceof RemoteError) die(`no remote ${JSON.stringify(target.remote)} (ralph remote add ${target.remote} --address ...)`);
    die((err as Error).message);
  }

  // git went away (it closed our stdout): nothing left to do, and nothing to say.
  process.stdout.on('error', () => process.exit(128));
  const commands = new CommandReader(process.stdin);
  for (;;) {
    const line = await commands.next();
    if (line === null || line === '') return 0; // git is done with us
    if (line === 'capabilities') {
      write('connect\n\n');
      continue;
    }
    if (line.startsWith('option ')) {
      write('unsupported\n');
      continue;
    }
    const m = /^connect (\S+)$/.exec(line);
    if (!m) die(`unsupported command from git: ${JSON.stringify(line)}`);
    const service = m[1] as Service;
    if (service !== 'git-receive-pack' && service !== 'git-upload-pack') die(`unsupported service ${service}`);

    const pushId = service === 'git-receive-pack' ? randomBytes(8).toString('hex') : undefined;
    let stream: Duplex;
    try {
      ({ stream } = await dialDaemon(
        remote,
        { version: PROTOCOL_VERSION, channel: 'git', service, repo: target.repo, ...(pushId ? { pushId } : {}), client: 'git-remote-ralph' },
        { timeoutMs: 15_000 },
      ));
    } catch (err) {
      die((err as Error).message);
    }
    write('\n');
    const clean = await pipeBoth(stream, commands.release());
    await flushStdout();
    if (!clean) return 128;
    if (pushId) {
      try {
        await recordPush(remote, pushId);
      } catch (err) {
        process.stderr.write(`ralph: the push went through, but its loops could not be recorded here: ${(err as Error).message}\n`);
      }
    }
    return 0;
  }
}

main(process.argv).then(
  (code) => process.exit(code),
  (err: unknown) => die((err as Error)?.message ?? String(err)),
);
