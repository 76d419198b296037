// Text from elsewhere (an agent's words and tool output, a loop's reason, a remote daemon's answer)
// made safe to draw on a terminal: its escape sequences and control characters could move the
// cursor, change modes or set a title on the user's terminal. One rule for every place that shows it.

// Whole escape sequences first (their parameters are no text either): OSC; DCS, SOS, PM, APC; CSI
// (7-bit and C1); any other ESC sequence. Then any control character left.
// eslint-disable-next-line no-control-regex
const ESCAPE_SEQUENCES = /\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[PX^_][^\x1b]*(?:\x1b\\)?|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?|\x1b[ -/]*[0-~]?/g;
// eslint-disable-next-line no-control-regex
const LINE_BREAKS = /[ \t]*[\r\n\v\f\u2028\u2029]+[ \t]*/g;
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/g;
// eslint-disable-next-line no-control-regex
const CONTROLS_BUT_LINES = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]/g;
// eslint-disable-next-line no-control-regex
const ANY_CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/;

/** Lines of text, kept as lines ("\n"; "\r\n" and a lone "\r" become "\n") and tabs, nothing else that is not text. */
export function plainText(text: string): string {
  if (!ANY_CONTROL.test(text)) return text;
  return text.replace(ESCAPE_SEQUENCES, '').replace(/\r\n?/g, '\n').replace(CONTROLS_BUT_LINES, '');
}

/** Text drawn within one line: line breaks and tabs as single spaces, nothing else that is not text. */
export function oneLine(text: string): string {
  if (!ANY_CONTROL.test(text)) return text; // the common case, drawn every frame
  return text.replace(ESCAPE_SEQUENCES, '').replace(LINE_BREAKS, ' ').replace(/\t/g, ' ').replace(CONTROLS, '');
}
