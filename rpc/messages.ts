// JSON-RPC 2.0 message types and the error codes of the spec. Parsed and validated here, at the edge.

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type Id = number | string;

export interface RequestMessage {
  jsonrpc: '2.0';
  id: Id;
  method: string;
  params?: unknown;
}

export interface NotificationMessage {
  jsonrpc: '2.0';
  method: string;
  params?: unknown;
}

export interface ResponseError {
  code: number;
  message: string;
  data?: unknown;
}

export interface ResponseMessage {
  jsonrpc: '2.0';
  id: Id | null;
  result?: unknown;
  error?: ResponseError;
}

export type Message = RequestMessage | NotificationMessage | ResponseMessage;

export const ErrorCodes = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  /** Application errors (server-defined range). */
  Refused: -32000,
  NotFound: -32001,
  Busy: -32002,
} as const;

/** An error meant for the peer: thrown by a handler, sent back as a JSON-RPC error response. */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'RpcError';
  }
}

export function isRequest(m: Message): m is RequestMessage {
  return 'method' in m && 'id' in m && m.id !== undefined;
}

export function isNotification(m: Message): m is NotificationMessage {
  return 'method' in m && !('id' in m);
}

export function isResponse(m: Message): m is ResponseMessage {
  return !('method' in m) && 'id' in m;
}

/**
 * Classify one decoded JSON value as a message, or say why it is not one.
 * Returns the id (when one could be read) with an error so the caller can answer it.
 */
export function parseMessage(value: unknown): { message: Message } | { error: ResponseError; id: Id | null } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { error: { code: ErrorCodes.InvalidRequest, message: 'a message must be a JSON object' }, id: null };
  }
  const v = value as Record<string, unknown>;
  const id = v.id;
  const validId = typeof id === 'number' || typeof id === 'string' ? id : null;
  if (v.jsonrpc !== '2.0') {
    return { error: { code: ErrorCodes.InvalidRequest, message: 'jsonrpc must be "2.0"' }, id: validId };
  }
  if ('id' in v && id !== null && typeof id !== 'number' && typeof id !== 'string') {
    return { error: { code: ErrorCodes.InvalidRequest, message: 'id must be a number or a string' }, id: null };
  }
  if ('method' in v) {
    if (typeof v.method !== 'string' || v.method === '') {
      return { error: { code: ErrorCodes.InvalidRequest, message: 'method must be a non-empty string' }, id: validId };
    }
    if ('params' in v && (typeof v.params !== 'object' || v.params === null)) {
      return { error: { code: ErrorCodes.InvalidRequest, message: 'params must be an object or an array' }, id: validId };
    }
    return { message: v as unknown as Message };
  }
  if ('id' in v && ('result' in v || 'error' in v)) {
    if ('error' in v) {
      const e = v.error as Record<string, unknown> | null;
      if (typeof e !== 'object' || e === null || typeof e.code !== 'number' || typeof e.message !== 'string') {
        return { error: { code: ErrorCodes.InvalidRequest, message: 'error must have a numeric code and a message' }, id: null };
      }
    }
    return { message: v as unknown as Message };
  }
  return { error: { code: ErrorCodes.InvalidRequest, message: 'not a request, notification or response' }, id: validId };
}
