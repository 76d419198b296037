// Transport addresses: `unix:<path>`, `tcp://host:port`, `ziti:<service>`, `ssh://[user@]host[:port]`.
// Parsed once, at the edge.

export type Address =
  | { kind: 'unix'; path: string }
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'ziti'; service: string }
  | { kind: 'ssh'; user?: string; host: string; port?: number };

export class AddressError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AddressError';
  }
}

export function parseAddress(text: string): Address {
  if (text.startsWith('unix:')) {
    const path = text.slice('unix:'.length);
    if (path === '') throw new AddressError(`no socket path in address ${JSON.stringify(text)}`);
    return { kind: 'unix', path };
  }
  if (text.startsWith('tcp://')) {
    const rest = text.slice('tcp://'.length);
    // [::1]:7420 or 127.0.0.1:7420
    const m = /^(?:\[([^\]]+)\]|([^:/]+)):(\d{1,5})$/.exec(rest);
    if (!m) throw new AddressError(`bad tcp address ${JSON.stringify(text)}: expected tcp://HOST:PORT`);
    const port = Number(m[3]);
    if (port > 65535) throw new AddressError(`bad port in ${JSON.stringify(text)}`);
    return { kind: 'tcp', host: (m[1] ?? m[2])!, port };
  }
  if (text.startsWith('ziti:')) {
    const service = text.slice('ziti:'.length).replace(/^\/\//, '');
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(service)) {
      throw new AddressError(`bad ziti service name in ${JSON.stringify(text)}`);
    }
    return { kind: 'ziti', service };
  }
  if (text.startsWith('ssh://')) return parseSshTarget(text.slice('ssh://'.length), text);
  throw new AddressError(
    `unsupported address ${JSON.stringify(text)}: use unix:PATH, tcp://HOST:PORT, ziti:SERVICE or ssh://[USER@]HOST[:PORT]`,
  );
}

/**
 * `[user@]host[:port]` (an IPv6 host in brackets). Both names become ssh arguments, so neither may
 * start with '-' or hold anything but the characters host and user names are made of.
 */
export function parseSshTarget(target: string, shown = target): Address & { kind: 'ssh' } {
  const m = /^(?:([A-Za-z0-9._][A-Za-z0-9._-]{0,63})@)?(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9_][A-Za-z0-9._-]{0,252}))(?::(\d{1,5}))?$/.exec(target);
  if (!m) {
    throw new AddressError(`bad ssh address ${JSON.stringify(shown)}: expected [USER@]HOST[:PORT]`);
  }
  const port = m[4] === undefined ? undefined : Number(m[4]);
  if (port !== undefined && (port < 1 || port > 65535)) throw new AddressError(`bad port in ${JSON.stringify(shown)}`);
  return {
    kind: 'ssh',
    ...(m[1] === undefined ? {} : { user: m[1] }),
    host: (m[2] ?? m[3])!,
    ...(port === undefined ? {} : { port }),
  };
}

export function formatAddress(a: Address): string {
  switch (a.kind) {
    case 'unix':
      return `unix:${a.path}`;
    case 'tcp':
      return a.host.includes(':') ? `tcp://[${a.host}]:${a.port}` : `tcp://${a.host}:${a.port}`;
    case 'ziti':
      return `ziti:${a.service}`;
    case 'ssh':
      return `ssh://${a.user === undefined ? '' : `${a.user}@`}${a.host.includes(':') ? `[${a.host}]` : a.host}${a.port === undefined ? '' : `:${a.port}`}`;
  }
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
