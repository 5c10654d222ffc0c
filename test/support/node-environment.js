// Jest hands each test file a copy of process.env; native libraries (SoftHSM2 reads SOFTHSM2_CONF
// at C_Initialize) only see the real one. This environment lets fixtures set the real variable.
const { TestEnvironment } = require('jest-environment-node');

class NativeEnvEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    this.global.setNativeEnv = (name, value) => {
      process.env[name] = value;
      this.global.process.env[name] = value;
    };
  }
}

module.exports = NativeEnvEnvironment;
