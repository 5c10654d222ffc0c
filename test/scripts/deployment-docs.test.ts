import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../server/config';
import { testDir } from '../support/run-dir';
import { newSecret, registerSecretSource } from '../support/secrets';

/**
 * The replica examples in docs/deployment.md §5 are read as an orchestrator would read them (no
 * Docker engine or cluster here): valid YAML, three replicas on one database, the token PIN a file
 * mounted read-only and never in the environment. And the entrypoint's copy of that file.
 */

// js-yaml comes with jest (istanbul's configuration loader); it has no types of its own here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const yaml = require('js-yaml') as { safeLoad(text: string): unknown; safeLoadAll(text: string): unknown[] };

/** What the tests read of the compose file and of the manifest (the rest is the orchestrator's). */
interface ComposeService {
  image?: string;
  hostname?: string;
  environment: Record<string, string>;
  secrets?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
}
interface Compose {
  services: Record<string, ComposeService>;
  secrets: Record<string, { file?: string }>;
}
interface Mount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}
interface Container {
  env: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  volumeMounts: Mount[];
  readinessProbe: { httpGet: { path: string } };
}
interface Manifest {
  kind: string;
  metadata: { name: string };
  spec: {
    replicas?: number;
    serviceName?: string;
    template: { spec: { securityContext: Record<string, unknown>; containers: Container[]; volumes: Array<{ name: string; secret?: { secretName: string } }> } };
    volumeClaimTemplates: Array<{ metadata: { name: string } }>;
  };
}

function yamlBlocks(): string[] {
  const markdown = readFileSync(join(PROJECT_ROOT, 'docs', 'deployment.md'), 'utf8');
  return [...markdown.matchAll(/```yaml\n([\s\S]*?)```/g)].map((match) => match[1]!);
}

/** No value in an environment may carry a password, a PIN or a key: paths and names only. */
function expectNoSecretIn(env: Record<string, string>): void {
  for (const [name, value] of Object.entries(env)) {
    if (/^postgres(ql)?:/.test(value)) expect({ name, password: new URL(value).password }).toEqual({ name, password: '' });
    expect({ name, secretLooking: /PIN$|PASSWORD$|SECRET$|KEY$/.test(name) }).toEqual({ name, secretLooking: false });
  }
}

describe('docs/deployment.md: replicas', () => {
  it('holds a compose file and a Kubernetes manifest, both valid YAML', () => {
    expect(yamlBlocks()).toHaveLength(2);
  });

  it('compose: three replicas on one PostgreSQL, each with its own home and host name, the PIN as a mounted secret', () => {
    const compose = yaml.safeLoad(yamlBlocks()[0]!) as Compose;
    const replicas = Object.entries(compose.services).filter(([name]) => name.startsWith('keyward-'));
    expect(replicas.map(([name]) => name)).toEqual(['keyward-0', 'keyward-1', 'keyward-2']);
    const urls = new Set<string>();
    const homes = new Set<string>();
    for (const [name, service] of replicas) {
      expect(service.hostname).toBe(name);
      expect(service.image).toMatch(/^keyward:/);
      expectNoSecretIn(service.environment);
      urls.add(service.environment.DATABASE_URL!);
      homes.add(service.volumes!.find((volume) => volume.endsWith(':/var/lib/keyward'))!);
      expect(service.secrets).toContain('hsm-user-pin');
      expect(service.environment.KEYWARD_USER_PIN_FROM).toBe('/run/secrets/hsm-user-pin');
      expect(service.depends_on!.db!.condition).toBe('service_healthy');
    }
    expect(urls.size).toBe(1);
    expect(new URL([...urls][0]!).hostname).toBe('db');
    expect(homes.size).toBe(3);
    expect(compose.secrets['hsm-user-pin']!.file).toBeDefined();
    expect(compose.services.db!.image).toMatch(/^postgres:/);
  });

  it('Kubernetes: a StatefulSet of three, the PIN from a read-only Secret volume, no secret in the environment', () => {
    const docs = (yaml.safeLoadAll(yamlBlocks()[1]!) as Manifest[]).filter(Boolean);
    const set = docs.find((doc) => doc.kind === 'StatefulSet')!;
    expect(set.spec.replicas).toBe(3);
    const pod = set.spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsUser: 10001, runAsNonRoot: true });
    const container = pod.containers[0]!;
    const env: Record<string, string> = {};
    for (const variable of container.env) {
      expect({ name: variable.name, valueFrom: variable.valueFrom }).toEqual({ name: variable.name, valueFrom: undefined });
      env[variable.name] = variable.value!;
    }
    expectNoSecretIn(env);
    expect(env.DATABASE_URL).toMatch(/^postgres:\/\//);
    const pinMount = container.volumeMounts.find((mount) => env.KEYWARD_USER_PIN_FROM!.startsWith(`${mount.mountPath}/`))!;
    expect(pinMount.readOnly).toBe(true);
    const pinVolume = pod.volumes.find((volume) => volume.name === pinMount.name)!;
    expect(pinVolume.secret!.secretName).toBe('keyward-hsm-pin');
    expect(container.readinessProbe.httpGet.path).toBe('/readyz');
    expect(set.spec.volumeClaimTemplates[0]!.metadata.name).toBe(container.volumeMounts.find((mount) => mount.mountPath === '/var/lib/keyward')!.name);
    expect(docs.filter((doc) => doc.kind === 'Service').map((doc) => doc.metadata.name)).toContain(set.spec.serviceName);
  });
});

describe('scripts/entrypoint.sh: KEYWARD_USER_PIN_FROM', () => {
  it('copies the mounted PIN file into the secrets directory (0600) and prints no PIN', () => {
    const dir = testDir('entrypoint-pin');
    const given = join(dir, 'given', 'hsm-user-pin');
    mkdirSync(join(dir, 'given'), { recursive: true });
    const pin = newSecret('pin');
    writeFileSync(given, `${pin}\n`, { mode: 0o400 });
    registerSecretSource(given);
    const home = join(dir, 'home');
    registerSecretSource(join(home, 'secrets', 'hsm-user-pin'));
    // This machine's tests may run as root: the entrypoint refuses that unless told.
    const env = { PATH: process.env.PATH, KEYWARD_HOME: home, KEYWARD_USER_PIN_FROM: given, ...(process.getuid?.() === 0 ? { KEYWARD_ALLOW_ROOT: '1' } : {}) };
    const run = spawnSync(join(PROJECT_ROOT, 'scripts', 'entrypoint.sh'), ['exit-codes'], { env, encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stderr).toContain('copied the token PIN file');
    expect(run.stdout + run.stderr).not.toContain(pin);
    expect(readFileSync(join(home, 'secrets', 'hsm-user-pin'), 'utf8')).toBe(`${pin}\n`);
    expect(statSync(join(home, 'secrets', 'hsm-user-pin')).mode & 0o777).toBe(0o600);
    // The same again: nothing to copy.
    const again = spawnSync(join(PROJECT_ROOT, 'scripts', 'entrypoint.sh'), ['exit-codes'], { env, encoding: 'utf8' });
    expect(again.status).toBe(0);
    expect(again.stderr).not.toContain('copied');

    const missing = spawnSync(join(PROJECT_ROOT, 'scripts', 'entrypoint.sh'), ['exit-codes'], { env: { ...env, KEYWARD_USER_PIN_FROM: join(dir, 'nothing') }, encoding: 'utf8' });
    expect(missing.status).toBe(7);
    expect(missing.stderr).toMatch(/KEYWARD_USER_PIN_FROM names .*nothing, which uid \d+ cannot read/);
  });
});
