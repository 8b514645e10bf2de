import { parseArgs } from 'node:util';
import { ConfigError } from '../config.js';
import {
  createAdminKey,
  createOperator,
  onboardCarrier,
  onboardMerchant,
  UsageError,
  verifyLedger,
} from './admin-commands.js';
import { withCliContainer } from './cli-container.js';

const USAGE = `Usage: npm run admin -- <command> [options]

Commands:
  create-operator --email EMAIL [--name NAME] [--role ROLE] [--owner-id ID]
                                          create an operator (a person; role admin unless given,
                                          owner-id for merchant and carrier staff) and print
                                          their one-time set-up link alone on the last line
  create-admin-key [--operator ID|EMAIL] [--description TEXT]
                                          create an admin API key (printed alone on the last
                                          line) for that admin operator, or else for a new
                                          bootstrap operator of its own
  verify-audit                            re-hash the audit chain; prints the verdict as JSON and
                                          exits 1 when it does not check out
  verify-ledger                           recompute every balance from the journal; prints the
                                          verdict as JSON and exits 1 when the books do not balance
  onboard-carrier --code CODE --name NAME --currency CUR --timezone TZ --revenue-share-bps BPS
                                          onboard a carrier (default limits); prints it as JSON
  onboard-merchant --name NAME --fee-bps BPS
                                          onboard a merchant; prints it as JSON
`;

/** Operations CLI: works on the database named by DATABASE_URL, without the HTTP API. */
async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      description: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      code: { type: 'string' },
      name: { type: 'string' },
      currency: { type: 'string' },
      timezone: { type: 'string' },
      'revenue-share-bps': { type: 'string' },
      'fee-bps': { type: 'string' },
      email: { type: 'string' },
      role: { type: 'string' },
      'owner-id': { type: 'string' },
      operator: { type: 'string' },
    },
  });
  const command = positionals[0];
  if (!command || values.help) {
    process.stdout.write(USAGE);
    return command ? 0 : 2;
  }
  return withCliContainer('the admin CLI works on an existing database.', async (c) => {
    switch (command) {
      case 'create-admin-key':
        return createAdminKey(c, values);
      case 'create-operator':
        return createOperator(c, values);
      case 'verify-audit': {
        const verdict = await c.audit.verifyChain();
        process.stdout.write(`${JSON.stringify(verdict, null, 2)}\n`);
        return verdict.ok ? 0 : 1;
      }
      case 'verify-ledger':
        return verifyLedger(c);
      case 'onboard-carrier':
        return onboardCarrier(c, values);
      case 'onboard-merchant':
        return onboardMerchant(c, values);
      default:
        process.stderr.write(`Unknown command "${command}".\n${USAGE}`);
        return 2;
    }
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n${USAGE}`);
      process.exit(2);
    }
    process.stderr.write(`${err instanceof ConfigError ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
