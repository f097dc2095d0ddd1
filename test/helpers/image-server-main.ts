import { ImageServer } from './http-image-server.ts';

// The image server as a process of its own: the fleet lab runs it in its hub namespace and kills and
// starts it again for the bench's image-server restart fault. Serves every file in DIR by name, with
// Range and a strong ETag (a restarted server serves the same ETag, so the agents resume), optionally
// paced so that downloads are still in flight when the restart comes. Prints one JSON line per request.
//
//   tsx test/helpers/image-server-main.ts HOST PORT DIR [PACE_BYTES_PER_SEC]
const [host, port, dir, pace] = process.argv.slice(2);
if (!host || !port || !dir) {
  console.error('usage: image-server-main.ts HOST PORT DIR [PACE_BYTES_PER_SEC]');
  process.exit(2);
}
const server = new ImageServer();
server.root = dir;
if (pace) server.misbehave.paceBytesPerSec = Number(pace);
server.onRequest = (r) => console.log(JSON.stringify(r));
await server.start(Number(port), host);
console.log(JSON.stringify({ listening: server.url('/') }));
// SIGTERM is the restart fault: connections are cut wherever their bodies are.
process.on('SIGTERM', () => void server.stop().finally(() => process.exit(0)));
