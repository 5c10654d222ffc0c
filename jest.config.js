/** Tests run the TypeScript sources through ts-jest; spawned processes run the build in dist/. */
module.exports = {
  testEnvironment: '<rootDir>/test/support/node-environment.js',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  testTimeout: 60000,
  maxWorkers: 2,
  // A fresh worker process for every test file: PKCS#11 modules (pkcs11js, one per process) and their
  // C_Initialize state must not pass from one file to the next (SoftHSM2 with another configuration,
  // openCryptoki: a worker that had loaded one crashed with SIGSEGV in the next file).
  workerIdleMemoryLimit: '1MB',
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
};
