/**
 * The fast tier (`npm run test:unit`): the pure tests under test/unit/, which need no SoftHSM,
 * database, browser or build. `npm test` runs them first, then the rest without them.
 */
const base = require('./jest.config');

module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test/unit'],
  testMatch: base.testMatch,
  transform: base.transform,
  testTimeout: 10_000,
  // Loading any of these fails the test: the tier stays runnable without SoftHSM, a database or a browser.
  moduleNameMapper: { '^(pkcs11js|knex|sqlite3|pg|argon2|playwright-core)$': '<rootDir>/test/unit/support/not-in-the-fast-tier.js' },
  maxWorkers: base.maxWorkers,
};
