/**
 * CSV output (RFC 4180): fields are quoted when they hold a comma, a quote or a line break, and
 * lines end with CRLF.
 */
export function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** One CSV line, CRLF included. */
export function csvLine(fields: readonly string[]): string {
  return `${fields.map(csvField).join(',')}\r\n`;
}

/**
 * Free text that others typed (names, references, reasons) is neutralised against spreadsheet
 * formula injection: a leading `=`, `+`, `-`, `@`, tab or CR gets a `'` prefix. Never applied to
 * amounts, which may be negative.
 */
export function csvText(value: string | null | undefined): string {
  if (value === null || value === undefined) return '';
  return /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
}
