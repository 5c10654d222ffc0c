import { generateLoad } from './load';

/**
 * The load generator of `npm run bench -- http` in a process of its own (forked with IPC), so that
 * neither server shares its event loop or its CPU time slice with the client: each message
 * {url, connections, durationMs, headers} is answered with one LoadResult.
 */
process.on('message', (message: { url: string; connections: number; durationMs: number; headers: Record<string, string> }) => {
  generateLoad(new URL(message.url), message).then(
    (result) => process.send!({ result: { ...result, latencies: [] } }),
    (error: Error) => process.send!({ error: error.message }),
  );
});
process.on('disconnect', () => process.exit(0));
