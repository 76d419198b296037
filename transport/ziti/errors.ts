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
