import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

export type IdPrefix =
  | 'ch'
  | 're'
  | 'mer'
  | 'car'
  | 'sub'
  | 'evt'
  | 'stl'
  | 'rec'
  | 'adj'
  | 'key'
  | 'acc'
  | 'txn'
  | 'sms'
  | 'top'
  | 'op'
  | 'ses'
  | 'port';

let lastTime = 0;
let lastRandom: Buffer = Buffer.alloc(10);

/**
 * Opaque, prefixed, time-sortable id: 48-bit milliseconds then 80 random bits, in Crockford
 * base32 (ULID layout). Within one millisecond the random part is incremented, so ids made
 * by one process sort in creation order.
 */
export function newId(prefix: IdPrefix, now = Date.now()): string {
  let random: Buffer;
  if (now <= lastTime) {
    random = Buffer.from(lastRandom);
    for (let i = random.length - 1; i >= 0; i--) {
      const byte = random[i] ?? 0;
      if (byte < 255) {
        random[i] = byte + 1;
        break;
      }
      random[i] = 0;
    }
    now = lastTime;
  } else {
    random = randomBytes(10);
  }
  lastTime = now;
  lastRandom = random;
  return `${prefix}_${encodeTime(now)}${encodeRandom(random)}`;
}

function encodeTime(ms: number): string {
  let out = '';
  let value = ms;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET.charAt(value % 32) + out;
    value = Math.floor(value / 32);
  }
  return out;
}

function encodeRandom(bytes: Buffer): string {
  let bits = 0n;
  for (const b of bytes) bits = (bits << 8n) | BigInt(b);
  let out = '';
  for (let i = 0; i < 16; i++) {
    out = ALPHABET.charAt(Number(bits & 31n)) + out;
    bits >>= 5n;
  }
  return out;
}
