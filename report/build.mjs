// Copies uPlot's browser build (+ its licence) into otel_perf/tools/report/static/ from package-lock.json.
import {copyFileSync, readFileSync, writeFileSync} from 'node:fs';

const out = new URL('../otel_perf/tools/report/static/', import.meta.url);
const dist = new URL('node_modules/uplot/dist/', import.meta.url);
const uplot = JSON.parse(readFileSync(new URL('node_modules/uplot/package.json', import.meta.url)));

copyFileSync(new URL('uPlot.iife.min.js', dist), new URL('uPlot.iife.min.js', out));
copyFileSync(new URL('uPlot.min.css', dist), new URL('uPlot.min.css', out));
const licence = readFileSync(new URL('node_modules/uplot/LICENSE', import.meta.url), 'utf8');
writeFileSync(
  new URL('uPlot.LICENSE.txt', out),
  `uPlot.iife.min.js and uPlot.min.css are uPlot ${uplot.version} (https://github.com/leeoniya/uPlot),\n` +
    `inlined into every report otel-perf writes, under this licence:\n\n${licence}`,
);
