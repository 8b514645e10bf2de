import type { Server } from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerClientErrors } from '../src/http/client-errors.js';
import { createHarness, type Harness } from './helpers/harness.js';

let h: Harness;
let server: Server;
let port: number;
beforeAll(async () => {
  h = await createHarness();
  server = h.app.listen(0, '127.0.0.1');
  answerClientErrors(server, h.c.logger);
  await new Promise((resolve) => server.once('listening', resolve));
  port = (server.address() as net.AddressInfo).port;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await h.close();
});

function raw(request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
    let data = '';
    socket.on('data', (chunk: Buffer) => (data += chunk.toString('utf8')));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
  });
}

describe('requests Node rejects before the app', () => {
  it('oversized headers get 431 problem+json', async () => {
    const response = await raw(
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    expect(response).toMatch(/^HTTP\/1.1 431 /);
    expect(response).toContain('Content-Type: application/problem+json');
    const body = JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4));
    expect(body).toMatchObject({ status: 431, code: 'headers_too_large' });
  });

  it('a malformed request line gets 400 problem+json', async () => {
    const response = await raw('NOT HTTP AT ALL\r\n\r\n');
    expect(response).toMatch(/^HTTP\/1.1 400 /);
    expect(JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4))).toMatchObject({
      code: 'bad_request',
    });
  });
});
