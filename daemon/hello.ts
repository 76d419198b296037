// Both sides of the `hello` that opens every daemon connection (daemon/protocol.ts):
// the daemon reads and validates it; clients (git-remote-ralph, the laptop side, hooks, tests) send it
// with openChannel() and get back the stream positioned right after the daemon's reply.

import type { Duplex } from 'node:stream';
import { ErrorCodes, RpcError, type ResponseError } from '../rpc/messages.js';
import { readFirstLine } from '../rpc/reader.js';
import { dial, type DialOptions } from '../transport/index.js';
import { tokenMatches } from './token.js';
import {
  HELLO_TIMEOUT_MS,
  MAX_HELLO_BYTES,
  PROTOCOL_VERSION,
  PUSH_ID_PATTERN,
  PUSH_ID_RULE,
  type HelloParams,
  type HelloResult,
} from './protocol.js';

const NAME_MAX = 256;
/** C0, DEL and C1: nothing a name needs, and each a way to break a log line, an env var or a terminal. */
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

/** A hello the daemon refuses: the error goes back to the client as a JSON-RPC error response. */
export class HelloError extends Error {
  constructor(
    readonly error: ResponseError,
    readonly id: number | string | null,
  ) {
    super(error.message);
    this.name = 'HelloError';
  }
}

function refuse(code: number, message: string, id: number | string | null = null): HelloError {
  return new HelloError({ code, message }, id);
}

/** The token a listener's connections must present, and the file it is kept in (named to whoever lacks it). */
export interface HelloToken {
  token: string;
  file: string;
}

function checkToken(given: unknown, want: HelloToken, id: number | string): void {
  if (given === undefined) {
    throw refuse(
      ErrorCodes.Refused,
      `this daemon's tcp port needs its token: copy ${want.file} from the box and add the remote with --token-file FILE (or reach it over ssh or OpenZiti)`,
      id,
    );
  }
  if (typeof given !== 'string' || !tokenMatches(want.token, given)) {
    throw refuse(ErrorCodes.Refused, `the token does not match this daemon's (${want.file}): copy that file from the box again and add the remote with --token-file FILE`, id);
  }
}

/**
 * Checks one decoded first line; returns the request id and the hello params, or throws HelloError.
 * With `token`, the hello must carry it, and that is checked before anything else is looked at.
 */
export function parseHello(value: unknown, token?: HelloToken): { id: number | string; params: HelloParams } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw refuse(ErrorCodes.InvalidRequest, 'the first message must be a hello request (a JSON object)');
  }
  const v = value as Record<string, unknown>;
  const id = typeof v.id === 'number' || typeof v.id === 'string' ? v.id : null;
  if (v.jsonrpc !== '2.0') throw refuse(ErrorCodes.InvalidRequest, 'jsonrpc must be "2.0"', id);
  if (v.method !== 'hello') {
    throw refuse(ErrorCodes.InvalidRequest, `the first message must be hello, got ${JSON.stringify(v.method ?? null)}`, id);
  }
  if (id === null) throw refuse(ErrorCodes.InvalidRequest, 'hello must be a request with an id', null);
  const p = v.params;
  if (typeof p !== 'object' || p === null || Array.isArray(p)) throw refuse(ErrorCodes.InvalidParams, 'hello params must be an object', id);
  const params = p as Record<string, unknown>;
  if (token) checkToken(params.token, token, id);
  if (typeof params.version !== 'number' || !Number.isInteger(params.version)) {
    throw refuse(ErrorCodes.InvalidParams, 'hello version must be an integer', id);
  }
  if (params.version !== PROTOCOL_VERSION) {
    throw refuse(
      ErrorCodes.Refused,
      `protocol version ${params.version} is not supported: this daemon speaks version ${PROTOCOL_VERSION}; use the same ralph version on both sides`,
      id,
    );
  }
  const str = (field: string, required: boolean): string | undefined => {
    const x = params[field];
    if (x === undefined && !required) return undefined;
    if (typeof x !== 'string' || x === '' || x.length > NAME_MAX) {
      throw refuse(ErrorCodes.InvalidParams, `hello ${field} must be a non-empty string of at most ${NAME_MAX} characters`, id);
    }
    if (CONTROL_CHARS.test(x)) throw refuse(ErrorCodes.InvalidParams, `hello ${field} must not contain control characters`, id);
    return x;
  };
  const client = str('client', false);
  const base = client === undefined ? {} : { client };
  switch (params.channel) {
    case 'control':
      return { id, params: { version: PROTOCOL_VERSION, channel: 'control', ...base } };
    case 'loop':
      return { id, params: { version: PROTOCOL_VERSION, channel: 'loop', loop: str('loop', true)!, ...base } };
    case 'git': {
      const service = params.service;
      if (service !== 'git-receive-pack' && service !== 'git-upload-pack') {
        throw refuse(ErrorCodes.InvalidParams, 'hello service must be "git-receive-pack" or "git-upload-pack"', id);
      }
      // It becomes RALPH_PUSH_ID in git's environment and a key in the DB: only what ralph makes.
      const pushId = params.pushId;
      if (pushId !== undefined && (typeof pushId !== 'string' || !PUSH_ID_PATTERN.test(pushId))) {
        throw refuse(ErrorCodes.InvalidParams, `hello pushId must be ${PUSH_ID_RULE}`, id);
      }
      return {
        id,
        params: {
          version: PROTOCOL_VERSION,
          channel: 'git',
          service,
          repo: str('repo', true)!,
          ...(pushId === undefined ? {} : { pushId }),
          ...base,
        },
      };
    }
    default:
      throw refuse(ErrorCodes.InvalidParams, `unknown channel ${JSON.stringify(params.channel ?? null)}: use control, loop or git`, id);
  }
}

/**
 * Reads the hello off a fresh connection. Bytes after it stay in the stream for the channel.
 * Throws HelloError for anything the client should be told (and `null` id), or a plain Error
 * when the connection closed before saying anything.
 */
export async function readHello(
  conn: Duplex,
  opts: { timeoutMs?: number; maxBytes?: number; token?: HelloToken } = {},
): Promise<{ id: number | string; params: HelloParams }> {
  const maxBytes = opts.maxBytes ?? MAX_HELLO_BYTES;
  let line: Buffer;
  try {
    line = await readFirstLine(conn, { maxBytes, timeoutMs: opts.timeoutMs ?? HELLO_TIMEOUT_MS });
  } catch (err) {
    const message = (err as Error).message;
    if (/closed before/.test(message)) throw err;
    if (/longer than/.test(message)) throw refuse(ErrorCodes.InvalidRequest, `hello is over the limit of ${maxBytes} bytes`);
    if (/no message within/.test(message)) throw refuse(ErrorCodes.InvalidRequest, `no hello within ${opts.timeoutMs ?? HELLO_TIMEOUT_MS} ms`);
    throw err;
  }
  if (line.length > maxBytes) throw refuse(ErrorCodes.InvalidRequest, `hello is over the limit of ${maxBytes} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(line.toString('utf8'));
  } catch (err) {
    throw refuse(ErrorCodes.ParseError, `hello is not valid JSON: ${(err as Error).message}`);
  }
  return parseHello(value, opts.token);
}

/** The daemon's good answer to a hello. */
export function helloReply(id: number | string, result: HelloResult): string {
  return JSON.stringify({ jsonrpc: '2.0', id, result }) + '\n';
}

/** The daemon's error answer to a hello (the connection is closed after it). */
export function helloErrorReply(id: number | string | null, error: ResponseError): string {
  return JSON.stringify({ jsonrpc: '2.0', id, error }) + '\n';
}

/** A hello as a client writes it: the version is filled in. */
export type HelloRequest = (HelloParams extends infer H ? (H extends unknown ? Omit<H, 'version'> : never) : never) & { version?: number };

export interface OpenChannelOptions extends DialOptions {
  /** How long to wait for the daemon's reply (default: timeoutMs of the dial, else 10 s). */
  replyTimeoutMs?: number;
}

/**
 * Client side: dials a daemon, sends hello, waits for the reply. Resolves with the stream positioned
 * right after the reply (control: wrap it in an RpcPeer; loop: an RpcPeer speaking loop/protocol.ts;
 * git: raw bytes). A refused hello rejects with the daemon's RpcError (code and message).
 */
export async function openChannel(
  address: string,
  hello: HelloRequest,
  opts: OpenChannelOptions = {},
): Promise<{ stream: Duplex; result: HelloResult }> {
  const stream = await dial(address, opts);
  try {
    stream.write(JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'hello', params: { version: PROTOCOL_VERSION, ...hello } }) + '\n');
    const line = await readFirstLine(stream, {
      maxBytes: MAX_HELLO_BYTES,
      timeoutMs: opts.replyTimeoutMs ?? opts.timeoutMs ?? HELLO_TIMEOUT_MS,
    });
    let reply: { result?: HelloResult; error?: ResponseError };
    try {
      reply = JSON.parse(line.toString('utf8'));
    } catch {
      throw new RpcError(ErrorCodes.ParseError, `${address} answered hello with something that is not JSON: is it a ralph daemon?`);
    }
    if (reply.error) throw new RpcError(reply.error.code, reply.error.message, reply.error.data);
    if (!reply.result || typeof reply.result !== 'object') {
      throw new RpcError(ErrorCodes.InvalidRequest, `${address} gave no hello result: is it a ralph daemon?`);
    }
    return { stream, result: reply.result };
  } catch (err) {
    stream.destroy();
    if (err instanceof Error && /closed before/.test(err.message)) {
      throw new Error(`${address} closed the connection during hello: is it a ralph daemon?`);
    }
    throw err;
  }
}
