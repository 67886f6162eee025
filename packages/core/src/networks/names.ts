/** A1111 keeps only letters, digits and `._- ` in the names of networks it creates (they become file names). */
export function sanitizeNetworkName(name: string): string {
  return [...name].filter((c) => /[\p{L}\p{N}]/u.test(c) || '._- '.includes(c)).join('');
}
