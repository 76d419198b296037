// Transport addresses: `unix:<path>`, `tcp://host:port`, `ziti:<service>`. Parsed once, at the edge.

export type Address =
  | { kind: 'unix'; path: string }
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'ziti'; service: string };

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
  throw new AddressError(
    `unsupported address ${JSON.stringify(text)}: use unix:PATH, tcp://HOST:PORT or ziti:SERVICE`,
  );
}

export function formatAddress(a: Address): string {
  switch (a.kind) {
    case 'unix':
      return `unix:${a.path}`;
    case 'tcp':
      return a.host.includes(':') ? `tcp://[${a.host}]:${a.port}` : `tcp://${a.host}:${a.port}`;
    case 'ziti':
      return `ziti:${a.service}`;
  }
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
