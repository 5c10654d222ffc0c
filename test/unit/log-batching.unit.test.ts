import { turnBatched } from '../../server/web/logger';

/** The server's log lines leave in one write per event-loop turn, in order. */
describe('lines written once per event-loop turn', () => {
  it("writes a turn's lines together at its end, in the order they were logged, and nothing when none", async () => {
    const writes: string[] = [];
    const out = turnBatched({ write: (text: string) => void writes.push(text) });
    out.write('{"n":1}\n');
    out.write('{"n":2}\n');
    expect(writes).toEqual([]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes).toEqual(['{"n":1}\n{"n":2}\n']);
    await new Promise((resolve) => setImmediate(resolve));
    out.write('{"n":3}\n');
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes).toEqual(['{"n":1}\n{"n":2}\n', '{"n":3}\n']);
  });
});
