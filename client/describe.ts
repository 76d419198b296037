// One-line sentences about a loop, shared by the commands that print them.

import type { LoopEnd } from './loop-feed.js';

// Whole escape sequences first (their parameters are no text either), then any control character left.
const ESCAPE_SEQUENCES = /\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[PX^_][^\x1b]*(?:\x1b\\)?|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?|\x1b[ -/]*[0-~]?/g;
const LINE_BREAKS = /[ \t]*[\r\n\v\f\u2028\u2029]+[ \t]*/g;
const CONTROLS = /[\x00-\x1f\x7f-\x9f]/g;
const ANY_CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/;

/**
 * Text from elsewhere (an agent's reason, a remote daemon's words) made safe to draw on a terminal
 * line: escape sequences and control characters removed, line breaks and tabs as single spaces.
 */
export function oneLine(text: string): string {
  if (!ANY_CONTROL.test(text)) return text; // the common case, drawn every frame
  return text.replace(ESCAPE_SEQUENCES, '').replace(LINE_BREAKS, ' ').replace(/\t/g, ' ').replace(CONTROLS, '');
}

/** "loop feature-3f2a completed (iteration 3): all stories pass after 3 iterations" */
export function describeEnd(loopId: string, end: LoopEnd): string {
  return `loop ${loopId} ${end.status} (iteration ${end.iteration})${end.reason ? `: ${oneLine(end.reason)}` : ''}`;
}
