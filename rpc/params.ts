// Small checks for request params: each throws an InvalidParams RpcError naming the field.
// Handlers validate at the edge with these, then trust what they got.

import { ErrorCodes, RpcError } from './messages.js';

export type Params = Record<string, unknown>;

export function paramsObject(params: unknown): Params {
  if (params === undefined || params === null) return {};
  if (typeof params !== 'object' || Array.isArray(params)) {
    throw new RpcError(ErrorCodes.InvalidParams, 'params must be an object');
  }
  return params as Params;
}

function bad(field: string, what: string): RpcError {
  return new RpcError(ErrorCodes.InvalidParams, `${field} must be ${what}`);
}

export function requireString(p: Params, field: string, opts: { maxLength?: number } = {}): string {
  const v = p[field];
  if (typeof v !== 'string') throw bad(field, 'a string');
  if (opts.maxLength !== undefined && v.length > opts.maxLength) throw bad(field, `at most ${opts.maxLength} characters`);
  return v;
}

export function optionalString(p: Params, field: string, opts: { maxLength?: number } = {}): string | undefined {
  return p[field] === undefined || p[field] === null ? undefined : requireString(p, field, opts);
}

export function requireInteger(p: Params, field: string, opts: { min?: number; max?: number } = {}): number {
  const v = p[field];
  if (typeof v !== 'number' || !Number.isInteger(v)) throw bad(field, 'an integer');
  if (opts.min !== undefined && v < opts.min) throw bad(field, `>= ${opts.min}`);
  if (opts.max !== undefined && v > opts.max) throw bad(field, `<= ${opts.max}`);
  return v;
}

export function optionalInteger(p: Params, field: string, opts: { min?: number; max?: number } = {}): number | undefined {
  return p[field] === undefined || p[field] === null ? undefined : requireInteger(p, field, opts);
}

export function requireBoolean(p: Params, field: string): boolean {
  const v = p[field];
  if (typeof v !== 'boolean') throw bad(field, 'true or false');
  return v;
}

export function optionalBoolean(p: Params, field: string): boolean | undefined {
  return p[field] === undefined || p[field] === null ? undefined : requireBoolean(p, field);
}

export function requireOneOf<T extends string>(p: Params, field: string, values: readonly T[]): T {
  const v = p[field];
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
    throw bad(field, `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`);
  }
  return v as T;
}
