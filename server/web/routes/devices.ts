import { randomBytes } from 'node:crypto';
import { Router } from 'express';
import type { Request, Response } from 'express';
import type { Device, DeviceSecretName } from '../../../db/repositories/device-repository';
import { ValidationError } from '../../../db/validation';
import { isHsmStorage } from '../../../hsm/storage-type';
import { requireAdmin } from '../access';
import { FIELD_LABELS, sentence, withLabels } from '../field-labels';
import { field, FormState, renderPage } from '../render';
import { sourceOf } from '../web-events';
import type { WebDeps } from '../web-deps';
import { PATHS } from '../wizard-paths';
import { NotFoundError } from '../web-errors';

const SECRET_NAMES = { estPassword: 'EST password', cmpSharedSecret: 'CMP shared secret' } as const satisfies Record<DeviceSecretName, string>;
type SecretName = keyof typeof SECRET_NAMES;
const isSecretName = (name: string): name is SecretName => Object.hasOwn(SECRET_NAMES, name);

/** What an audit entry's action says to a person. */
const ACTION_WORDS: Record<string, string> = {
  created: 'created',
  renamed: 'renamed',
  'estPassword replaced': 'EST password replaced (typed)',
  'estPassword regenerated': 'EST password regenerated (random)',
  'cmpSharedSecret replaced': 'CMP shared secret replaced (typed)',
  'cmpSharedSecret regenerated': 'CMP shared secret regenerated (random)',
  deleted: 'deleted',
};

/** A new random secret: 144 bits, URL-safe, as the device form makes one. */
const randomSecret = () => randomBytes(18).toString('base64url');

/** A repository refusal as the page says it: the form's labels, a sentence. */
const plain = (error: ValidationError) => sentence(withLabels(error.message, FIELD_LABELS));

/**
 * Devices with their EST password and CMP shared secret: listed masked; one secret is shown only on
 * an explicit request (a POST, logged, never cached) or once after keyward made it. Every change is
 * an entry of the devices' audit trail (who, when, what changed; never a value). Under HSM storage
 * the secrets are encrypted under the DEK, which this process loads from the token when it does not
 * hold it yet.
 */
export function deviceRoutes(deps: WebDeps, router: Router = Router()): Router {
  const { store, custody } = deps.runtime;
  const devicePath = `${PATHS.devices}/:id`;

  const render = async (
    req: Request,
    res: Response,
    extra: FormState & { revealed?: { id: number; name: string; label: string; value: string | null } | null; created?: string | null; deleted?: string | null } = {},
    status = 200,
  ) => {
    const devices = await store.devices.list();
    const storageType = await store.storage.storageType();
    const audit = await store.devices.auditEntries({ limit: 20 });
    // The whole chain is checked on each view: an edited or deleted entry shows here at once.
    const auditVerdict = await store.devices.verifyAudit();
    renderPage(
      deps,
      req,
      res,
      'devices',
      {
        title: 'Devices',
        devices,
        audit,
        auditVerdict,
        actionWords: ACTION_WORDS,
        plaintext: !isHsmStorage(storageType),
        secretNames: SECRET_NAMES,
        revealed: null,
        created: null,
        deleted: null,
        ...extra,
      },
      status,
    );
  };

  /** The device of the URL, or a 404 page. */
  const deviceOf = async (req: Request): Promise<Device> => {
    await custody.ensureDek();
    const id = Number(req.params.id);
    const device = Number.isSafeInteger(id) && id > 0 ? await store.devices.get(id) : null;
    if (!device) throw new NotFoundError('There is no such device: it may have been deleted.');
    return device;
  };

  type DeviceExtra = FormState & { shown?: { label: string; value: string } | null; notice?: string | null };
  const renderDevice = async (req: Request, res: Response, device: Device, extra: DeviceExtra = {}, status = 200) => {
    const audit = await store.devices.auditEntries({ deviceId: device.id });
    const storageType = await store.storage.storageType();
    renderPage(
      deps,
      req,
      res,
      'device',
      { title: `Device ${device.name}`, device, audit, actionWords: ACTION_WORDS, plaintext: !isHsmStorage(storageType), secretNames: SECRET_NAMES, shown: null, notice: null, ...extra },
      status,
    );
  };

  router.get(PATHS.devices, ...requireAdmin(deps), async (req, res) => {
    const named = (value: unknown) => (typeof value === 'string' && /^[^\u0000-\u001f]{1,255}$/.test(value) ? value : null);
    await render(req, res, { created: named(req.query.created), deleted: named(req.query.deleted) });
  });

  router.post(PATHS.devices, ...requireAdmin(deps), async (req, res) => {
    const name = field(req, 'name').trim();
    const values = { name };
    try {
      await custody.ensureDek();
      // An empty secret field means: make one (shown on explicit request, like any other).
      const estPassword = field(req, 'estPassword') || randomSecret();
      const cmpSharedSecret = field(req, 'cmpSharedSecret') || randomSecret();
      const id = await store.devices.create({ name, estPassword, cmpSharedSecret }, sourceOf(req));
      deps.logger.info({ deviceId: id }, 'device created');
      res.redirect(303, `${PATHS.devices}?created=${encodeURIComponent(name)}`);
    } catch (error) {
      if (error instanceof ValidationError) {
        const known = ['name', 'estPassword', 'cmpSharedSecret'].includes(error.field) ? error.field : 'name';
        return await render(req, res, { values, errors: { [known]: plain(error) }, errorCodes: { [known]: error.code } }, 400);
      }
      throw error;
    }
  });

  router.post(`${devicePath}/reveal`, ...requireAdmin(deps), async (req, res) => {
    const id = Number(req.params.id);
    const which = field(req, 'which');
    if (!Number.isSafeInteger(id) || id <= 0 || !isSecretName(which)) throw new NotFoundError('There is no such device secret.');
    await custody.ensureDek();
    const device = await store.devices.get(id);
    if (!device) throw new NotFoundError('There is no such device.');
    deps.logger.info({ deviceId: id, which, by: req.keyward?.session?.adminUsername }, 'device secret revealed');
    await render(req, res, { revealed: { id, name: device.name, label: SECRET_NAMES[which], value: device[which] } });
  });

  router.get(devicePath, ...requireAdmin(deps), async (req, res) => {
    const device = await deviceOf(req);
    const renamed = req.query.renamed === '1';
    await renderDevice(req, res, device, { notice: renamed ? 'Name saved.' : null });
  });

  router.post(`${devicePath}/name`, ...requireAdmin(deps), async (req, res) => {
    const device = await deviceOf(req);
    const name = field(req, 'name');
    try {
      await store.devices.rename(device.id, name, sourceOf(req));
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      return await renderDevice(req, res, device, { values: { name: name.trim() }, errors: { name: plain(error) }, errorCodes: { name: error.code } }, 400);
    }
    deps.logger.info({ deviceId: device.id, by: req.keyward?.session?.adminUsername }, 'device renamed');
    res.redirect(303, `${PATHS.devices}/${device.id}?renamed=1`);
  });

  // Replace (a value typed) or regenerate (a random value, shown once on the page this POST answers).
  router.post(`${devicePath}/secret`, ...requireAdmin(deps), async (req, res) => {
    const device = await deviceOf(req);
    const which = field(req, 'which');
    const how = field(req, 'how');
    if (!isSecretName(which) || (how !== 'replace' && how !== 'regenerate')) throw new NotFoundError('There is no such device secret.');
    const label = SECRET_NAMES[which];
    const value = how === 'regenerate' ? randomSecret() : field(req, which);
    if (how === 'replace' && value === '') {
      return await renderDevice(req, res, device, { errors: { [which]: `Type the new ${label}, or make a random one instead.` } }, 400);
    }
    try {
      await store.devices.replaceSecret(device.id, which, value, how === 'replace' ? 'replaced' : 'regenerated', sourceOf(req));
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      return await renderDevice(req, res, device, { errors: { [which]: plain(error) }, errorCodes: { [which]: error.code } }, 400);
    }
    deps.logger.info({ deviceId: device.id, which, how, by: req.keyward?.session?.adminUsername }, 'device secret changed');
    const after = (await store.devices.get(device.id)) ?? device;
    await renderDevice(req, res, after, {
      shown: how === 'regenerate' ? { label, value } : null,
      notice: how === 'replace' ? `The ${label} was replaced.` : null,
    });
  });

  // Deleting asks first, on a page of its own: the POST comes only from that page's form.
  router.get(`${devicePath}/delete`, ...requireAdmin(deps), async (req, res) => {
    const device = await deviceOf(req);
    renderPage(deps, req, res, 'device-delete', { title: `Delete ${device.name}?`, device });
  });

  router.post(`${devicePath}/delete`, ...requireAdmin(deps), async (req, res) => {
    const device = await deviceOf(req);
    await store.devices.delete(device.id, sourceOf(req));
    deps.logger.info({ deviceId: device.id, by: req.keyward?.session?.adminUsername }, 'device deleted');
    res.redirect(303, `${PATHS.devices}?deleted=${encodeURIComponent(device.name)}`);
  });

  return router;
}
