/** Errors of the embedded cluster. */

/** Raised for every cluster failure; `hint` says what to do about it. */
export class ClusterError extends Error {
  override name = "ClusterError";
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(hint ? `${message}\nhint: ${hint}` : message);
  }
}
