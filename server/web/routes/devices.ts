import { randomBytes } from 'node:crypto';
import { Router } from 'express';
import type { Request, Response } from 'express';
import { ValidationError } from '../../../db/validation';
import { isHsmStorage } from '../../../hsm/storage-type';
import { requireAdmin } from '../access';
import { field, FormState, renderPage } from '../render';
import type { WebDeps } from '../web-deps';
import { PATHS } from '../wizard-paths';
import { NotFoundError } from '../web-errors';

const SECRET_NAMES = { estPassword: 'EST password', cmpSharedSecret: 'CMP shared secret' } as const;
type SecretName = keyof typeof SECRET_NAMES;

/**
 * Devices with their EST password and CMP shared secret: listed masked; one secret is shown only on
 * an explicit request (a POST, logged, never cached). Under HSM storage the secrets are encrypted
 * under the DEK, which this process loads from the token when it does not hold it yet.
 */
export function deviceRoutes(deps: WebDeps): Router {
  const router = Router();
  const { store, custody } = deps.runtime;

  const render = async (
    req: Request,
    res: Response,
    extra: FormState & { revealed?: { id: number; name: string; label: string; value: string | null } | null; created?: string | null } = {},
    status = 200,
  ) => {
    const devices = await store.devices.list();
    const storageType = await store.storage.storageType();
    renderPage(deps, req, res, 'devices', { title: 'Devices', devices, plaintext: !isHsmStorage(storageType), secretNames: SECRET_NAMES, revealed: null, created: null, ...extra }, status);
  };

  router.get(PATHS.devices, ...requireAdmin(deps), async (req, res) => {
    const created = typeof req.query.created === 'string' && /^[^\u0000-\u001f]{1,255}$/.test(req.query.created) ? req.query.created : null;
    await render(req, res, { created });
  });

  router.post(PATHS.devices, ...requireAdmin(deps), async (req, res) => {
    const name = field(req, 'name').trim();
    const values = { name };
    try {
      await custody.ensureDek();
      // An empty secret field means: make one (shown on explicit request, like any other).
      const estPassword = field(req, 'estPassword') || randomBytes(18).toString('base64url');
      const cmpSharedSecret = field(req, 'cmpSharedSecret') || randomBytes(18).toString('base64url');
      const id = await store.devices.create({ name, estPassword, cmpSharedSecret });
      deps.logger.info({ deviceId: id }, 'device created');
      res.redirect(303, `${PATHS.devices}?created=${encodeURIComponent(name)}`);
    } catch (error) {
      if (error instanceof ValidationError) {
        const known = ['name', 'estPassword', 'cmpSharedSecret'].includes(error.field) ? error.field : 'name';
        return await render(req, res, { values, errors: { [known]: error.message } }, 400);
      }
      throw error;
    }
  });

  router.post(`${PATHS.devices}/:id/reveal`, ...requireAdmin(deps), async (req, res) => {
    const id = Number(req.params.id);
    const which = field(req, 'which') as SecretName;
    if (!Number.isSafeInteger(id) || id <= 0 || !(which in SECRET_NAMES)) throw new NotFoundError('There is no such device secret.');
    await custody.ensureDek();
    const device = await store.devices.get(id);
    if (!device) throw new NotFoundError('There is no such device.');
    deps.logger.info({ deviceId: id, which, by: req.keyward?.session?.adminUsername }, 'device secret revealed');
    await render(req, res, { revealed: { id, name: device.name, label: SECRET_NAMES[which], value: device[which] } });
  });

  return router;
}
