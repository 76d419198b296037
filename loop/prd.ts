// prd.json: the task's user stories. Read and validated here; the rest of the loop trusts the result.
// Unknown fields are ignored, so PRDs written for other Ralph tools work unchanged.

import { readFileSync } from 'node:fs';
import { LoopSetupError } from './errors.js';

export interface Story {
  id: string;
  title: string;
  description: string;
  acceptanceCriteria: string[];
  /** Lower runs first; a story without one runs after every story that has one. */
  priority: number;
  passes: boolean;
  notes: string;
}

export interface Prd {
  project: string | null;
  branchName: string | null;
  description: string | null;
  userStories: Story[];
}

type Fields = Record<string, unknown>;

function isObject(v: unknown): v is Fields {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses prd.json text; `path` only names the file in error messages. */
export function parsePrd(text: string, path: string): Prd {
  const bad = (what: string) => new LoopSetupError(`prd.json at ${path}: ${what}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw bad(`not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(value)) throw bad('must be a JSON object with a "userStories" array');
  const optionalText = (field: string): string | null => {
    const v = value[field];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') throw bad(`${field} must be a string`);
    return v;
  };
  const project = optionalText('project') ?? optionalText('name');
  const branchName = optionalText('branchName');
  const description = optionalText('description');
  if (!Array.isArray(value.userStories)) throw bad('userStories must be an array of stories');
  if (value.userStories.length === 0) throw bad('userStories is empty; add at least one story');
  const seen = new Set<string>();
  const userStories = value.userStories.map((raw, i): Story => {
    const at = `userStories[${i}]`;
    if (!isObject(raw)) throw bad(`${at} must be an object`);
    if (typeof raw.id !== 'string' || raw.id.trim() === '') throw bad(`${at}.id must be a string`);
    if (seen.has(raw.id)) throw bad(`${at}.id ${JSON.stringify(raw.id)} is used by an earlier story`);
    seen.add(raw.id);
    const text = (field: string): string => {
      const v = raw[field];
      if (v === undefined || v === null) return '';
      if (typeof v !== 'string') throw bad(`${at}.${field} must be a string`);
      return v;
    };
    const passes = raw.passes === undefined ? false : raw.passes;
    if (typeof passes !== 'boolean') throw bad(`${at}.passes must be true or false`);
    const priority = raw.priority === undefined || raw.priority === null ? Number.POSITIVE_INFINITY : raw.priority;
    if (typeof priority !== 'number' || Number.isNaN(priority)) throw bad(`${at}.priority must be a number`);
    const criteria = raw.acceptanceCriteria === undefined ? [] : raw.acceptanceCriteria;
    if (!Array.isArray(criteria)) throw bad(`${at}.acceptanceCriteria must be an array`);
    const acceptanceCriteria = criteria.map((c, j) => {
      if (typeof c === 'string') return c;
      if (isObject(c) && typeof c.description === 'string') return c.description;
      throw bad(`${at}.acceptanceCriteria[${j}] must be a string or {"description": ...}`);
    });
    return {
      id: raw.id,
      title: text('title') || raw.id,
      description: text('description'),
      acceptanceCriteria,
      priority,
      passes,
      notes: text('notes'),
    };
  });
  return { project, branchName, description, userStories };
}

export function readPrd(path: string): Prd {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new LoopSetupError(`prd.json at ${path}: file not found`);
    throw new LoopSetupError(`prd.json at ${path}: cannot read it (${(err as Error).message})`);
  }
  return parsePrd(text, path);
}

export function allPass(prd: Prd): boolean {
  return prd.userStories.every((s) => s.passes);
}

export function openStories(prd: Prd): Story[] {
  return prd.userStories.filter((s) => !s.passes);
}

/** The story an agent should take next: lowest priority number not passing, ties by file order. */
export function nextStory(prd: Prd): Story | undefined {
  let best: Story | undefined;
  for (const s of prd.userStories) {
    if (!s.passes && (best === undefined || s.priority < best.priority)) best = s;
  }
  return best;
}
