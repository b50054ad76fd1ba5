/** Thrown by every parser on input it cannot make sense of; the message says where and why. */
export class ParseError extends Error {
  constructor(
    readonly kind: string,
    message: string,
    readonly line?: number,
  ) {
    super(`${kind}: ${line !== undefined ? `line ${line}: ` : ''}${message}`);
    this.name = 'ParseError';
  }
}
