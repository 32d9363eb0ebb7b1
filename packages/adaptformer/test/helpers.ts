import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export * from '../../core/test/support/adapter-tests.js';

/** The PyTorch reference adapter directory (tools/reference/peft_ref.py). */
export const FIXTURE_DIR = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'adaptformer_tiny');
