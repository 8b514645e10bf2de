import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { AppError } from '../../errors.js';

/**
 * Password hashes are scrypt from node:crypto (no native add-on to build, and the work runs on
 * libuv's thread pool, off the event loop), stored as a PHC-style string that carries its own
 * parameters: `$scrypt$ln=17,r=8,p=1$<salt>$<hash>` (unpadded base64). A hash made with other
 * parameters than the current ones still verifies and is replaced at the next sign-in.
 */
export interface ScryptParams {
  /** log2 of the CPU/memory cost N. */
  ln: number;
  r: number;
  p: number;
}

/** OWASP Password Storage Cheat Sheet: N = 2^17, r = 8, p = 1 (128 MiB, about 0.4 s a hash). */
export const OWASP_SCRYPT: ScryptParams = { ln: 17, r: 8, p: 1 };

const SALT_BYTES = 16;
const KEY_BYTES = 32;
const PHC =
  /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{16,88})\$([A-Za-z0-9+/]{16,88})$/;

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  /** Whether `password` matches `stored`; `rehash` when stored was made with other parameters. */
  verify(password: string, stored: string): Promise<{ ok: boolean; rehash: boolean }>;
  /**
   * The same work as a verification, for a sign-in whose email is unknown (or has no password
   * yet), so the answer's timing does not tell which emails exist. Always false.
   */
  verifyNothing(password: string): Promise<false>;
}

function derive(password: string, salt: Buffer, params: ScryptParams, bytes: number) {
  const N = 2 ** params.ln;
  const options: ScryptOptions = {
    N,
    r: params.r,
    p: params.p,
    // Node refuses more than 32 MiB by default; N = 2^17, r = 8 needs 128 MiB.
    maxmem: 256 * N * params.r + 1024 * 1024,
  };
  return new Promise<Buffer>((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, bytes, options, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

const b64 = (buf: Buffer) => buf.toString('base64').replace(/=+$/, '');

export function createPasswordHasher(params: ScryptParams = OWASP_SCRYPT): PasswordHasher {
  let decoy: Promise<string> | undefined;
  const hash = async (password: string) => {
    const salt = randomBytes(SALT_BYTES);
    const key = await derive(password, salt, params, KEY_BYTES);
    return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`;
  };
  const verify = async (password: string, stored: string) => {
    const m = PHC.exec(stored);
    if (!m) return { ok: false, rehash: true };
    const stored_ = { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
    // A tampered row must not make one sign-in take minutes or gigabytes.
    if (
      stored_.ln < 10 ||
      stored_.ln > 22 ||
      stored_.r < 1 ||
      stored_.r > 32 ||
      stored_.p < 1 ||
      stored_.p > 16
    ) {
      return { ok: false, rehash: true };
    }
    const salt = Buffer.from(m[4]!, 'base64');
    const expected = Buffer.from(m[5]!, 'base64');
    const key = await derive(password, salt, stored_, expected.length);
    const ok = key.length === expected.length && timingSafeEqual(key, expected);
    const rehash = stored_.ln !== params.ln || stored_.r !== params.r || stored_.p !== params.p;
    return { ok, rehash };
  };
  return {
    hash,
    verify,
    async verifyNothing(password) {
      decoy ??= hash(randomBytes(16).toString('hex'));
      await verify(password, await decoy);
      return false;
    },
  };
}

/** The most common passwords of twelve characters or more in public breach corpora. */
const COMMON = new Set([
  '123456789012',
  '1234567890123',
  '12345678901234',
  '123456789123',
  'password1234',
  'password12345',
  'password123456',
  'passwordpassword',
  'p@ssw0rd1234',
  'password123!',
  'qwertyuiopasdf',
  'qwertyuiop12',
  'qwerty123456',
  '1q2w3e4r5t6y',
  '1qaz2wsx3edc',
  'abc123456789',
  'iloveyou1234',
  'welcome12345',
  'changeme1234',
  'administrator',
  'letmein12345',
  'trustno1trustno1',
]);

// eslint-disable-next-line no-control-regex -- control characters are what it looks for
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * The password policy (NIST SP 800-63B §5.1.1.2: length and a blocklist, no composition rules):
 * 12–128 characters (Unicode code points after NFC); no control characters; not the email, not
 * containing its local part or the operator's name (when those are 4 characters or more), case
 * ignored; not one character repeated, not a run of consecutive characters (`abcdefghijkl`),
 * not one of the most common long passwords. Throws 422 `password_rejected`.
 */
export function assertPasswordAcceptable(
  password: string,
  operator: { email: string; name: string },
): void {
  const reject = (why: string) => {
    throw new AppError('password_rejected', `The password is not acceptable: ${why}.`, {
      param: 'password',
    });
  };
  if (LONE_SURROGATE.test(password)) reject('it contains an unpaired surrogate');
  const normalized = password.normalize('NFC');
  const chars = Array.from(normalized);
  if (chars.length < 12) reject('use at least 12 characters');
  if (chars.length > 128) reject('use at most 128 characters');
  if (CONTROL.test(normalized)) reject('it contains a control character');
  const lower = normalized.toLowerCase();
  const email = operator.email.toLowerCase();
  const local = email.split('@')[0] ?? '';
  const name = operator.name.toLowerCase().replace(/\s+/g, '');
  if (lower === email || lower.includes(email)) reject('it contains the email address');
  if (local.length >= 4 && lower.includes(local)) reject('it contains the email address');
  if (name.length >= 4 && lower.replace(/\s+/g, '').includes(name)) reject('it contains your name');
  if (new Set(chars).size === 1) reject('it is one character repeated');
  const codes = chars.map((c) => c.codePointAt(0)!);
  const step = codes[1]! - codes[0]!;
  if (Math.abs(step) === 1 && codes.every((c, i) => i === 0 || c - codes[i - 1]! === step)) {
    reject('it is a run of consecutive characters');
  }
  if (COMMON.has(lower)) reject('it is one of the most common passwords');
}
