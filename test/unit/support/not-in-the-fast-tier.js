// What jest.unit.config.js maps the token, database, password-hashing and browser modules to: a
// test that reaches one of them does not belong in the fast tier.
throw new Error('the fast tier (test/unit/) loads no PKCS#11 module, database driver, Argon2 or browser: move this test out of test/unit/');
