import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The gateway's Prometheus metrics, one registry per app instance (no global state). */
export interface Metrics {
  registry: Registry;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  charges: Counter<'status'>;
  poolConnections: Gauge<'state'>;
  webhookDeliveries: Counter<'outcome'>;
  smsDeliveries: Counter<'outcome'>;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  return {
    registry,
    httpDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request latency by route template and status.',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    charges: new Counter({
      name: 'charges_total',
      help: 'Charges by the status they reached.',
      labelNames: ['status'],
      registers: [registry],
    }),
    poolConnections: new Gauge({
      name: 'db_pool_connections',
      help: 'PostgreSQL pool connections by state (total, idle, waiting).',
      labelNames: ['state'],
      registers: [registry],
    }),
    webhookDeliveries: new Counter({
      name: 'webhook_deliveries_total',
      help: 'Webhook events handled by outcome (delivered, retry, failed, endpoint_gone, skipped).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    smsDeliveries: new Counter({
      name: 'sms_deliveries_total',
      help: 'SMS handled by outcome (delivered, sandbox, retry, failed, expired).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
  };
}
