import { readFileSync } from 'node:fs';
import { markPath, raiseMark, readMark, replaceMarks, storeBehindMark, writeMark } from '../../db/high-water-mark';
import { testDir } from '../support/run-dir';

/** The home's high-water mark: only raised by commits, compared with the store at BOOT. */
describe('the high-water mark', () => {
  it('only moves forward after commits; a restore or the operator sets it outright', () => {
    const home = testDir('mark');
    expect(readMark(home, 'default')).toBeNull();
    raiseMark(home, 'default', { revision: 5, chainHead: 'h5' });
    raiseMark(home, 'default', { revision: 3, chainHead: 'h3' }); // a slower writer's older commit
    expect(readMark(home, 'default')).toEqual(expect.objectContaining({ revision: 5, chainHead: 'h5' }));
    raiseMark(home, 'other', { revision: 2, chainHead: 'o2' });
    writeMark(home, 'default', { revision: 4, chainHead: 'h4' });
    expect(readMark(home, 'default')).toEqual(expect.objectContaining({ revision: 4 }));
    replaceMarks(home, { default: { revision: 1, chainHead: 'r1' } });
    expect(readMark(home, 'other')).toBeNull();
    expect(readMark(home, 'default')).toEqual(expect.objectContaining({ revision: 1, chainHead: 'r1' }));
    expect((JSON.parse(readFileSync(markPath(home), 'utf8')) as { version: number }).version).toBe(1);
  });

  it("names a store behind the mark, and a different history at the mark's revision; a store ahead of it passes", async () => {
    const hashes: Record<number, string> = { 7: 'h7', 9: 'h9' };
    const hashAt = async (revision: number) => hashes[revision] ?? null;
    const mark = { revision: 7, chainHead: 'h7' };
    expect(await storeBehindMark(null, { revision: 1, chainHead: 'x' }, hashAt)).toBeNull();
    expect(await storeBehindMark(mark, { revision: 7, chainHead: 'h7' }, hashAt)).toBeNull();
    expect(await storeBehindMark(mark, { revision: 9, chainHead: 'h9' }, hashAt)).toBeNull();
    expect(await storeBehindMark(mark, { revision: 6, chainHead: 'h6' }, hashAt)).toMatch(/at lifecycle revision 6, but this home has seen revision 7 committed/);
    expect(await storeBehindMark(mark, null, hashAt)).toMatch(/at lifecycle revision 0/);
    expect(await storeBehindMark({ revision: 9, chainHead: 'other' }, { revision: 9, chainHead: 'h9' }, hashAt)).toMatch(/at revision 9 is not the one this home saw committed/);
  });
});
