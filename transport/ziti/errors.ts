// The error a user sees when an OpenZiti address cannot be used: one line naming the file or service.

export class ZitiError extends Error {
  constructor(
    message: string,
    /** The address it concerns, `ziti:<service>`. */
    readonly address: string,
  ) {
    super(message);
    this.name = 'ZitiError';
  }
}

// The same failures read the same whichever backend met them (the SDK or the `ziti` CLI).

/** An identity without the Dial (or Bind) policy for a service, or a service that does not exist. */
export function mayNotUse(verb: 'dial' | 'host', service: string, identityFile: string): string {
  return `identity ${identityFile} may not ${verb} service ${service} (no ${verb === 'host' ? 'Bind' : 'Dial'} policy grants it, or there is no such service)`;
}

/** The identity may dial the service, but nothing hosts it. */
export function noDaemonHosting(service: string): string {
  return `no daemon is hosting ${service} (nothing has bound it: is \`ralph daemon --ziti-service ${service}\` running on the box?)`;
}

export function unreachableController(controller: string, identityFile: string): string {
  return `cannot reach the OpenZiti controller ${controller} named by identity ${identityFile}`;
}

export function controllerRefused(controller: string, identityFile: string, why: string): string {
  return `the OpenZiti controller ${controller} refused identity ${identityFile} (${why})`;
}
