// Baseline: a bare grpc.aio unary echo (bench/echo.proto), no interceptors, no database.
import grpc from 'k6/net/grpc';
import { check } from 'k6';
import { Rate } from 'k6/metrics';

const errors = new Rate('gql_errors');
const client = new grpc.Client();
client.load([__ENV.PROTO_DIR], 'echo.proto');

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

let connected = false;

export default function () {
  if (!connected) {
    client.connect(__ENV.TARGET, { plaintext: true });
    connected = true;
  }
  const res = client.invoke('bench.echo.v1.EchoService/Echo', { message: 'hello' });
  const ok = check(res, {
    'echo answered': (r) => r && r.status === grpc.StatusOK && r.message.message === 'hello',
  });
  errors.add(!ok);
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY]: JSON.stringify(data) };
}
