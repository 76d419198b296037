// What a tool call does, in one line: the input detail that names it (the command, the file, the
// pattern), by the input keys the agents' tools use. Shared by the adapters whose agents report tool
// inputs as objects (Claude Code and Amp, OpenCode).

import { isObject } from './json.js';

/** The one input detail that says what a tool call does, by tool. */
export function toolDetail(name: string, input: unknown): string {
  if (!isObject(input)) return '';
  const pick = (...keys: string[]) => {
    for (const k of keys) {
      const v = input[k];
      if (typeof v === 'string' && v !== '') return v;
    }
    return null;
  };
  const detail =
    pick('command', 'cmd', 'file_path', 'filePath', 'notebook_path', 'path', 'pattern', 'filePattern', 'url', 'query', 'description', 'prompt', 'skill', 'subject') ??
    (Array.isArray(input.todos) ? `${input.todos.length} todos` : null) ??
    '';
  // One line: a multi-line command shows its first line and how many more.
  const lines = detail.split('\n');
  return lines.length > 1 ? `${lines[0]} … (+${lines.length - 1} lines)` : detail;
}
