// otel-perf browser script: Core Web Vitals (Google's web-vitals, attribution build) -> one beacon
// per page hide, to the endpoint beside this script. Final values only (no reportAllChanges).
import {onCLS, onFCP, onINP, onLCP, onTTFB} from 'web-vitals/attribution';

const script = document.currentScript;
const endpoint = new URL('vitals', script ? script.src : location.href).href;

// The server puts the page's route template here: never the raw URL (it may hold ids or secrets).
const meta = document.querySelector('meta[name="otel-perf-route"]');
const route = meta ? meta.content : null;

// The backend trace of this page load, from `Server-Timing: traceparent;desc="00-..."`.
function traceparent() {
  try {
    const nav = performance.getEntriesByType('navigation')[0];
    const entry = nav && (nav.serverTiming || []).find((e) => e.name === 'traceparent');
    return entry ? entry.description : null;
  } catch (e) {
    return null;
  }
}

// Coarse on purpose: three values keep the server's series bounded.
function deviceClass() {
  const ua = navigator.userAgent || '';
  if (/iPad|Tablet|PlayBook|Silk|Android(?!.*Mobi)/i.test(ua)) return 'tablet';
  if ((navigator.userAgentData && navigator.userAgentData.mobile) || /Mobi|iPhone|iPod|Android/i.test(ua)) {
    return 'mobile';
  }
  return 'desktop';
}

// The one attribution detail per metric worth a span attribute (an element selector, a URL, a phase).
function attribution(metric) {
  const a = metric.attribution || {};
  switch (metric.name) {
    case 'LCP': return a.target;
    case 'INP': return a.interactionTarget;
    case 'CLS': return a.largestShiftTarget;
    case 'FCP': return a.loadState;
    default: return undefined;
  }
}

const queue = new Map();

function add(metric) {
  const target = attribution(metric);
  queue.set(metric.id, {
    name: metric.name,
    value: metric.value,
    id: metric.id,
    navigationType: metric.navigationType,
    ...(target ? {attribution: String(target).slice(0, 200)} : {}),
  });
}

function flush() {
  if (!queue.size) return;
  const body = JSON.stringify({
    route,
    traceparent: traceparent(),
    device: deviceClass(),
    metrics: [...queue.values()],
  });
  queue.clear();
  // A string body goes out as text/plain: a "simple" request, no CORS preflight.
  if (!(navigator.sendBeacon && navigator.sendBeacon(endpoint, body))) {
    fetch(endpoint, {method: 'POST', body, keepalive: true, credentials: 'omit'}).catch(() => {});
  }
}

onTTFB(add);
onFCP(add);
onLCP(add);
onCLS(add);
onINP(add);
// A bubble-phase listener on window runs after web-vitals' capture-phase ones, which report the
// final LCP/CLS/INP on the same event. No `pagehide` flush: on navigation it fires *before*
// visibilitychange and would split the beacon in two.
addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'hidden') flush();
});
