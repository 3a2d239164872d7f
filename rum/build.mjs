// Reproducible build of otel_perf/_internal/integrations/rum/static/rum.js (+ its licence file) from package-lock.json.
import {build} from 'esbuild';
import {readFileSync, writeFileSync} from 'node:fs';

const out = new URL('../otel_perf/_internal/integrations/rum/static/', import.meta.url);
const vitals = JSON.parse(readFileSync(new URL('node_modules/web-vitals/package.json', import.meta.url)));

await build({
  entryPoints: [new URL('src/rum.js', import.meta.url).pathname],
  outfile: new URL('rum.js', out).pathname,
  bundle: true,
  minify: true,
  format: 'iife',
  target: 'es2018',
  legalComments: 'none',
  banner: {js: `/*! otel-perf RUM; bundles web-vitals ${vitals.version} (Apache-2.0, Google LLC): see rum.js.LICENSE.txt */`},
  logLevel: 'warning',
});

const licence = readFileSync(new URL('node_modules/web-vitals/LICENSE', import.meta.url), 'utf8');
writeFileSync(
  new URL('rum.js.LICENSE.txt', out),
  `rum.js is built from otel-perf (Apache-2.0) and bundles web-vitals ${vitals.version}\n` +
    `(https://github.com/GoogleChrome/web-vitals), Copyright Google LLC, under this licence:\n\n${licence}`,
);
