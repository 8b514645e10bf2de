/** A statement's first words and the table it works on, enough to tell statements apart. */
export function statementLabel(text: string): string {
  const t = text.replace(/\s+/g, ' ').trim();
  if (/^(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)/i.test(t)) return t.split(' ')[0]!.toUpperCase();
  const verbs = [
    ...t.matchAll(/\b(INSERT INTO|UPDATE|DELETE FROM|FROM|JOIN)\s+(?!LATERAL\b)([a-z_]+)/gi),
  ];
  const writes = verbs.filter((m) => !/FROM|JOIN/i.test(m[1]!) || /DELETE/i.test(m[1]!));
  const pick = (writes.length ? writes : verbs).map((m) => `${m[1]!.toUpperCase()} ${m[2]}`);
  const head = /^WITH/i.test(t) ? 'WITH … ' : '';
  const lock = /pg_try_advisory_xact_lock/.test(t) ? ' +advisory lock' : '';
  const forUpdate = /FOR UPDATE/i.test(t) ? ' FOR UPDATE' : '';
  return `${head}${[...new Set(pick)].join(', ') || t.slice(0, 60)}${lock}${forUpdate}`;
}
