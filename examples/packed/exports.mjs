// Every package loads both ways (ESM import and CommonJS require) with the same export names.
//   node exports.mjs @vqt/core @vqt/vqt ...
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
for (const name of process.argv.slice(2)) {
  const esm = Object.keys(await import(name)).filter((key) => key !== 'default').sort();
  const cjs = Object.keys(require(name)).filter((key) => key !== 'default' && key !== '__esModule').sort();
  if (esm.length === 0) throw new Error(`${name}: the ESM build exports nothing`);
  if (esm.join() !== cjs.join()) throw new Error(`${name}: ESM and CommonJS exports differ: only ESM ${esm.filter((k) => !cjs.includes(k))}; only CJS ${cjs.filter((k) => !esm.includes(k))}`);
  console.log(`${name}: ${esm.length} exports, same in ESM and CommonJS`);
}
// The embedded backbone is found from the CommonJS build too (import.meta.url is shimmed there).
const { file } = require('@vqt/vtab-datasets').embeddedBackbone();
if (!existsSync(file)) throw new Error(`${file}: missing`);
console.log('embedded backbone found from CommonJS');
