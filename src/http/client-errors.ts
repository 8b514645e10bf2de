import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../logger.js';

function rawProblem(status: number, reason: string, code: string, detail: string): string {
  const body = JSON.stringify({
    type: `urn:dcb-gateway:problem:${code}`,
    title: reason,
    status,
    detail,
    code,
    request_id: 'none',
  });
  return (
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/problem+json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

/**
 * Requests Node rejects before express sees them (oversized or malformed request line and
 * headers) still get a problem+json answer instead of a bare status line.
 */
export function answerClientErrors(server: Server, logger: Logger): void {
  server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
    if (!socket.writable || (socket as Socket & { _httpMessage?: unknown })._httpMessage) {
      socket.destroy();
      return;
    }
    logger.debug({ code: err.code }, 'rejected a malformed request');
    const response =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? rawProblem(
            431,
            'Request Header Fields Too Large',
            'headers_too_large',
            'The request line and headers exceed 16 KiB.',
          )
        : rawProblem(400, 'Bad Request', 'bad_request', 'The request is not valid HTTP.');
    socket.end(response);
  });
}
