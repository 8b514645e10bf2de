import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root, whether running from src/ (tsx) or dist/ (built). */
export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const OPENAPI_PATH = path.join(PROJECT_ROOT, 'openapi.yaml');
