import { compareVersions, parseVersion } from '../../machines/version';
import { versionScenario } from '../../machines/startup-scenario';

/** The one version comparison behind VERSION_DOWNGRADE and the backup manifest. */
describe('versions', () => {
  it('orders by Semantic Versioning 2.0 precedence', () => {
    const ascending = ['0.9.0', '1.0.0-2', '1.0.0-10', '1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0', '1.4.2-rc.1', '1.4.2', '1.10.0', '99.0.0'];
    for (let i = 0; i < ascending.length; i++) {
      for (let j = 0; j < ascending.length; j++) expect([ascending[i], ascending[j], compareVersions(ascending[i]!, ascending[j]!)]).toEqual([ascending[i], ascending[j], Math.sign(i - j)]);
    }
    expect(compareVersions('v1.2.3+build.7', '1.2.3+other')).toBe(0);
  });

  it('treats anything else as no version: BOOT refuses it as a downgrade, comparing it throws', () => {
    for (const text of ['', 'garbage', '1.2', '1.2.3.4', '01.2.3', '1.2.3-', ' 1.2.3', '1.2.3 ', '=1.2.3', '1.2.3-01']) {
      expect([text, parseVersion(text)]).toEqual([text, null]);
      expect(() => compareVersions(text, '1.0.0')).toThrow(RangeError);
      expect(versionScenario({ dbInitialized: true, dbVersion: text, appVersion: '1.0.0', schemaPending: false } as Parameters<typeof versionScenario>[0])).toBe('VERSION_DOWNGRADE');
    }
  });
});
