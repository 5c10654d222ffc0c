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
  maxWorkers: base.maxWorkers,
};
