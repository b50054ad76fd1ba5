/**
 * Tests only: renders rule tokens back into the one-line form iptables prints (quoting where
 * needed), the inverse the tokenizer's tests check it against.
 */
export function formatIptablesArgs(args: readonly string[]): string {
  return args.map((a) => (/^[^\s"\\]+$/.test(a) ? a : `"${a.replace(/(["\\])/g, '\\$1')}"`)).join(' ');
}
