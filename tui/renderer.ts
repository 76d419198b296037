// The renderer, pi-tui (pinned to one exact version in package.json): imported part by part rather
// than through its package index, which would also load its markdown, image and editor components
// (about 40% of its load time, all of it before the first frame). Update these paths with the pin.

export { CURSOR_MARKER, TUI } from '@mariozechner/pi-tui/dist/tui.js';
export type { Terminal } from '@mariozechner/pi-tui/dist/terminal.js';
export { StdinBuffer } from '@mariozechner/pi-tui/dist/stdin-buffer.js';
export { parseKey } from '@mariozechner/pi-tui/dist/keys.js';
export { truncateToWidth, visibleWidth } from '@mariozechner/pi-tui/dist/utils.js';
