import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parse } from 'csv-parse';
import type { Pool, PoolClient } from '../../db/pool.js';
import { AppError } from '../../errors.js';
import type { Actor } from '../../http/context.js';
import { newId } from '../../lib/ids.js';
import { escapeForbidden } from '../../lib/text.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import { currencyExponent } from '../money/money.js';
import { readHeader, readRow, type ColumnIndex, type ReadRow } from './reconciliations-csv.js';
import * as repo from './reconciliations-repo.js';
import {
  toReconciliationView,
  type ExceptionRow,
  type ReconciliationView,
} from './reconciliations-types.js';

export interface ReconcileOptions {
  /** Start of the period (inclusive); default: the file's earliest occurred_at. */
  from?: Date;
  /** End of the period (exclusive); default: one millisecond after the file's latest occurred_at. */
  to?: Date;
  source: 'api' | 'cli';
  /** Largest input accepted, in bytes; default the configured RECONCILIATION_MAX_BYTES. */
  maxBytes?: number;
}

export interface ReconciliationsService {
  /**
   * Reads a carrier's CSV from `input` as it arrives (never the whole file in memory), matches it
   * against the gateway's records and stores the run with its exceptions in one transaction.
   * `input` is never destroyed here: on failure the caller decides what to do with the rest.
   */
  reconcile(
    actor: Actor,
    carrierId: string,
    input: Readable,
    options: ReconcileOptions,
  ): Promise<ReconciliationView>;
  /** A run; `carrierId` scopes it to that carrier (another carrier's run is not found). */
  getReconciliation(id: string, carrierId?: string): Promise<ReconciliationView>;
  /** The run's exceptions in order, a page at a time. */
  exceptionPages(id: string, pageSize?: number): AsyncGenerator<ExceptionRow[]>;
  /** The id of the carrier with this code (for the CLI). */
  carrierIdByCode(code: string): Promise<string>;
}

/** Rows staged per INSERT: large enough to amortise round trips, small enough to stay tiny in memory. */
const STAGING_BATCH = 5000;
/**
 * No legitimate row comes near this. A longer record (typically an unclosed quote swallowing the
 * rest of the file) ends the run with 400 rather than being buffered.
 */
const MAX_RECORD_BYTES = 64 * 1024;

interface Loaded {
  bytes: number;
  rows: number;
  validRows: number;
  minMs: number | undefined;
  maxMs: number | undefined;
}

function tooLarge(maxBytes: number): AppError {
  return new AppError(
    'payload_too_large',
    `The reconciliation file exceeds the allowed ${maxBytes} bytes.`,
    { extra: { max_bytes: maxBytes } },
  );
}

export function createReconciliationsService(deps: {
  pool: Pool;
  maxBytes: number;
  bulkStatementTimeoutMs: number;
}): ReconciliationsService {
  const { pool } = deps;

  /** Streams `input` through a byte counter and csv-parse into the staging table in batches. */
  async function load(db: PoolClient, input: Readable, maxBytes: number): Promise<Loaded> {
    const loaded: Loaded = { bytes: 0, rows: 0, validRows: 0, minMs: undefined, maxMs: undefined };
    let index: ColumnIndex | undefined;
    let batch: ReadRow[] = [];
    // One batch is written while the next one is parsed: at most two batches in memory.
    let writing: Promise<void> = Promise.resolve();
    const flush = async () => {
      const full = batch;
      batch = [];
      await writing;
      writing = repo.insertStaged(db, full);
      // Surfaced by the next await of `writing`; never an unhandled rejection meanwhile.
      writing.catch(() => undefined);
    };
    let ended = false;
    // The file must be UTF-8 as a whole (SPEC §10): bytes in another encoding would otherwise
    // be decoded into U+FFFD and compared as if the carrier had written that.
    const utf8 = new TextDecoder('utf-8', { fatal: true });
    const notUtf8 = () =>
      new AppError('invalid_string', `The file is not UTF-8 text (near byte ${loaded.bytes}).`, {
        param: 'body',
      });
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        loaded.bytes += chunk.length;
        if (loaded.bytes > maxBytes) return callback(tooLarge(maxBytes));
        try {
          utf8.decode(chunk, { stream: true });
        } catch {
          return callback(notUtf8());
        }
        callback(null, chunk);
      },
      flush(callback) {
        try {
          utf8.decode();
        } catch {
          return callback(notUtf8());
        }
        callback();
      },
    });
    // Stray quotes inside a field are kept as text (the row then fails validation on its own
    // line); a wrong number of fields is reported per row instead of stopping the parse.
    const parser = parse({
      bom: true,
      info: true,
      relax_column_count: true,
      relax_quotes: true,
      skip_empty_lines: true,
      skip_records_with_error: true,
      max_record_size: MAX_RECORD_BYTES,
    });
    let lastSkippedLine = -1;
    parser.on('skip', (err: Error & { code?: string; lines?: number }) => {
      const line = err.lines ?? 0;
      if (index === undefined || err.code === 'CSV_MAX_RECORD_SIZE') {
        const what =
          index === undefined
            ? 'The CSV header cannot be read'
            : `The record ending at line ${line} is longer than ${MAX_RECORD_BYTES} bytes (an unclosed quote?)`;
        parser.destroy(
          new AppError('validation_failed', `${what}: ${err.message}`, { param: 'body' }),
        );
        return;
      }
      // csv-parse may report one broken record more than once.
      if (line === lastSkippedLine) return;
      lastSkippedLine = line;
      loaded.rows += 1;
      batch.push({
        invalid: {
          line,
          gatewayRef: null,
          carrierRef: null,
          reason: escapeForbidden(`malformed CSV: ${err.message}`),
        },
      });
    });
    const onEnd = () => {
      ended = true;
    };
    const onError = (err: Error) => counter.destroy(err);
    const onClose = () => {
      if (!ended) {
        counter.destroy(
          new AppError('bad_request', 'The upload ended before the whole file arrived.'),
        );
      }
    };
    input.once('end', onEnd);
    input.once('error', onError);
    input.once('close', onClose);
    input.pipe(counter);
    try {
      await pipeline(
        counter,
        parser,
        async (records: AsyncIterable<{ record: string[]; info: { lines: number } }>) => {
          for await (const { record, info } of records) {
            if (index === undefined) {
              index = readHeader(record);
              continue;
            }
            const row = readRow(record, index, info.lines);
            loaded.rows += 1;
            if ('valid' in row) {
              loaded.validRows += 1;
              const ms = row.valid.occurredMs;
              if (loaded.minMs === undefined || ms < loaded.minMs) loaded.minMs = ms;
              if (loaded.maxMs === undefined || ms > loaded.maxMs) loaded.maxMs = ms;
            }
            batch.push(row);
            if (batch.length >= STAGING_BATCH) await flush();
          }
        },
      );
    } catch (err) {
      await writing.catch(() => undefined);
      throw err;
    } finally {
      input.unpipe(counter);
      input.off('end', onEnd);
      input.off('error', onError);
      input.off('close', onClose);
    }
    if (index === undefined) {
      throw new AppError(
        'validation_failed',
        'The file is empty: it needs at least the CSV header line.',
        { param: 'body' },
      );
    }
    if (batch.length > 0) await flush();
    await writing;
    return loaded;
  }

  function periodOf(loaded: Loaded, options: ReconcileOptions): { start: Date; end: Date } | null {
    const start = options.from ?? (loaded.minMs === undefined ? undefined : new Date(loaded.minMs));
    const end = options.to ?? (loaded.maxMs === undefined ? undefined : new Date(loaded.maxMs + 1));
    if (!start || !end) return null;
    if (end <= start) {
      throw new AppError('validation_failed', 'The period must end after it starts.', {
        param: 'to',
      });
    }
    return { start, end };
  }

  return {
    async reconcile(actor, carrierId, input, options) {
      const carrier = await repo.findCarrierForReconciliation(pool, { id: carrierId });
      if (!carrier) throw new AppError('not_found', `No carrier ${carrierId}.`);
      if (options.from && options.to && options.to <= options.from) {
        throw new AppError('validation_failed', 'The period must end after it starts.', {
          param: 'to',
        });
      }
      const id = newId('rec');
      // The staging table is temporary, so every step runs on this one session.
      const client = await pool.connect();
      let broken = false;
      try {
        await client.query(`SET statement_timeout = ${Math.trunc(deps.bulkStatementTimeoutMs)}`);
        await repo.createStaging(client);
        const loaded = await load(client, input, options.maxBytes ?? deps.maxBytes);
        const period = periodOf(loaded, options);
        await repo.prepareStaging(client);
        await client.query('BEGIN');
        try {
          await client.query("SET LOCAL work_mem = '64MB'");
          await repo.insertRun(client, {
            id,
            carrierId,
            source: options.source,
            periodStart: period?.start ?? null,
            periodEnd: period?.end ?? null,
            bytes: loaded.bytes,
          });
          const exceptions = await repo.classify(client, {
            reconciliationId: id,
            carrierId,
            exponent: currencyExponent(carrier.currency),
            periodStart: period?.start ?? null,
            periodEnd: period?.end ?? null,
          });
          const counts = {
            ...exceptions,
            matched:
              loaded.validRows -
              exceptions.duplicate -
              exceptions.missing_at_gateway -
              exceptions.amount_mismatch,
          };
          await repo.completeRun(client, id, loaded.rows, counts);
          await insertAuditEvent(client, actor, {
            action: 'reconciliation.completed',
            objectType: 'reconciliation',
            objectId: id,
            summary: {
              carrier_id: carrierId,
              source: options.source,
              bytes: loaded.bytes,
              rows: loaded.rows,
              period: period && { start: period.start, end: period.end },
              counts,
            },
          });
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => {
            broken = true;
          });
          throw err;
        }
      } finally {
        try {
          await repo.dropStaging(client);
          await client.query('RESET statement_timeout');
        } catch {
          broken = true;
        }
        client.release(broken ? true : undefined);
      }
      return toReconciliationView((await repo.findRun(pool, id))!);
    },

    async getReconciliation(id, carrierId) {
      const row = await repo.findRun(pool, id, carrierId);
      if (!row) throw new AppError('not_found', `No reconciliation ${id}.`);
      return toReconciliationView(row);
    },

    async *exceptionPages(id, pageSize = 1000) {
      let after = '0';
      for (;;) {
        const page = await repo.exceptionsPage(pool, id, after, pageSize);
        if (page.length === 0) return;
        yield page;
        if (page.length < pageSize) return;
        after = page[page.length - 1]!.seq;
      }
    },

    async carrierIdByCode(code) {
      const carrier = await repo.findCarrierForReconciliation(pool, { code });
      if (!carrier) throw new AppError('not_found', `No carrier with code ${code}.`);
      return carrier.id;
    },
  };
}
