// Baseline: the bare ASGI app on the gateway's server stack (uvicorn, uvloop, httptools).
import http from 'k6/http';
import { check } from 'k6';
import { Rate } from 'k6/metrics';

const errors = new Rate('gql_errors');
const BODY = JSON.stringify({ query: '{ hello }', variables: {} });

export const options = {
  scenarios: {
    main: {
      executor: 'constant-vus',
      vus: Number(__ENV.VUS || 8),
      duration: __ENV.DURATION || '20s',
      gracefulStop: '5s',
    },
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'],
};

export default function () {
  const res = http.post(__ENV.TARGET, BODY, { headers: { 'Content-Type': 'application/json' } });
  const ok = check(res, { 'hello answered': (r) => r.status === 200 && r.json('data.hello') === 'world' });
  errors.add(!ok);
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY]: JSON.stringify(data) };
}
