/** `--name value` command-line options of a bench script. */

export function stringArg(argv: readonly string[], name: string, fallback: string): string {
  const i = argv.indexOf(`--${name}`);
  const v = i >= 0 ? argv[i + 1] : undefined;
  return v === undefined || v.startsWith('--') ? fallback : v;
}

export function numberArg(argv: readonly string[], name: string, fallback: number): number {
  const raw = stringArg(argv, name, String(fallback));
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new RangeError(`--${name} must be a number, got "${raw}"`);
  return n;
}

export function listArg(argv: readonly string[], name: string, fallback: readonly string[]): string[] {
  return stringArg(argv, name, fallback.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
