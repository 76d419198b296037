// Text styling for the TUI's own chrome: SGR sequences built here (the renderer keeps them as they
// are), colours only when the user allows them (NO_COLOR), and widths measured and cut by the
// renderer's own functions so that no line is ever wider than the terminal.

import { truncateToWidth, visibleWidth } from './renderer.js';

export interface Style {
  /** An ANSI palette colour (0–15). */
  fg?: number;
  bold?: boolean;
  dim?: boolean;
  inverse?: boolean;
  underline?: boolean;
}

export const Colors = { red: 1, green: 2, yellow: 3, blue: 4, magenta: 5, cyan: 6, gray: 8 } as const;

/** https://no-color.org: any non-empty NO_COLOR turns colours off (attributes such as inverse stay). */
export function colorsAllowed(env: NodeJS.ProcessEnv = process.env): boolean {
  return !env.NO_COLOR;
}

/** `text` with `style` applied, and everything reset after it. */
export function paint(text: string, style: Style, color: boolean): string {
  const codes: number[] = [];
  if (style.bold) codes.push(1);
  if (style.dim) codes.push(2);
  if (style.underline) codes.push(4);
  if (style.inverse) codes.push(7);
  if (color && style.fg !== undefined) codes.push(style.fg < 8 ? 30 + style.fg : 90 + style.fg - 8);
  return codes.length === 0 || text === '' ? text : `\x1b[${codes.join(';')}m${text}\x1b[0m`;
}

// Text made only of printable ASCII and the few one-column symbols the TUI draws with is as wide as
// it is long: measured and cut here, without the renderer's grapheme segmentation (which costs about
// a tenth of a millisecond per call, and a frame has hundreds of cells).
const ONE_COLUMN = /^[\x20-\x7e·─▶●×…↑↓]*$/;

/** Exactly `width` columns: cut (with an ellipsis) or padded with spaces. */
export function fit(text: string, width: number): string {
  if (width <= 0) return '';
  if (ONE_COLUMN.test(text)) return text.length <= width ? text.padEnd(width) : text.slice(0, width - 1) + '…';
  return truncateToWidth(text, width, '…', true);
}

/** At most `width` columns, not padded. */
export function clip(text: string, width: number): string {
  if (ONE_COLUMN.test(text)) return text.length <= width ? text : text.slice(0, Math.max(0, width - 1)) + '…';
  return visibleWidth(text) <= width ? text : truncateToWidth(text, width, '…');
}

export { visibleWidth };

/**
 * The renderer measures a character in the emoji ranges with an `RGI_Emoji` regex that V8 compiles on
 * first use (~60 ms on an idle 2-core box, several times that under load). Agents print such
 * characters (✓, ⏺); paid here, right after the first frame, that compile stays off the keystroke path.
 */
export function warmUpWidths(): void {
  visibleWidth('✓');
}
