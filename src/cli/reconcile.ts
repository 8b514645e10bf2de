import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { withCliContainer } from './cli-container.js';
import { isAppError } from '../errors.js';
import { SYSTEM_ACTOR } from '../http/context.js';
import {
  EXCEPTIONS_CSV_HEADER,
  exceptionCsvLine,
} from '../modules/reconciliations/reconciliations-types.js';

const USAGE = `Usage: npm run reconcile -- --carrier <code> --file <statement.csv> [options]

Reconciles a carrier's CSV file (header carrier_ref,gateway_ref,msisdn,type,amount,currency,
occurred_at) against the gateway's records in the database named by DATABASE_URL, exactly as
POST /v1/carrier/reconciliations does, and prints the report as JSON.

Options:
  --from <RFC 3339>        start of the period (default: the file's earliest occurred_at)
  --to <RFC 3339>          end of the period, exclusive (default: just after the latest one)
  --exceptions <out.csv>   also write the exceptions as CSV to this file
`;

function parseInstant(name: string, value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new Error(`--${name} is not a timestamp: ${value}`);
  return date;
}

/** The reconciliation from the command line: same service, same rules, no HTTP. */
async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      carrier: { type: 'string' },
      file: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      exceptions: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const { carrier, file } = values;
  if (values.help || !carrier || !file) {
    process.stdout.write(USAGE);
    return values.help ? 0 : 2;
  }
  return withCliContainer('the reconciliation reads an existing database.', async (c) => {
    try {
      const carrierId = await c.reconciliations.carrierIdByCode(carrier);
      const input = createReadStream(file);
      let report;
      try {
        report = await c.reconciliations.reconcile(
          SYSTEM_ACTOR('reconcile-cli'),
          carrierId,
          input,
          {
            from: parseInstant('from', values.from),
            to: parseInstant('to', values.to),
            source: 'cli',
          },
        );
      } finally {
        input.destroy();
      }
      if (values.exceptions) {
        const out = createWriteStream(values.exceptions);
        out.write(EXCEPTIONS_CSV_HEADER);
        for await (const page of c.reconciliations.exceptionPages(report.id)) {
          for (const row of page) if (!out.write(exceptionCsvLine(row))) await once(out, 'drain');
        }
        out.end();
        await once(out, 'finish');
      }
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return 0;
    } catch (err) {
      process.stderr.write(`${isAppError(err) ? `${err.code}: ${err.message}` : String(err)}\n`);
      return 1;
    }
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${String(err)}\n`);
    process.exit(1);
  },
);
