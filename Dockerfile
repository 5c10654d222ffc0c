# syntax=docker/dockerfile:1
# keyward: the key-custody lifecycle service, with SoftHSM2 and OpenSC for its PKCS#11 token.
#
#   docker build -t keyward .
#   docker run -d --name keyward -p 8443:8443 \
#     -v keyward-data:/var/lib/keyward -v keyward-tokens:/var/lib/keyward/tokens keyward
#
# docs/deployment.md covers volumes, physical HSMs, PostgreSQL, replicas and backups. No secret is
# baked in or passed on a command line: PINs and passwords go in through the wizard or `keyward send`.

# Pin a digest in production (node:20-bookworm-slim@sha256:…) so a rebuild is the same image.
ARG NODE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
RUN apt-get update \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
# Native modules are compiled here, against this image's own Node headers (/usr/local/include/node,
# so node-gyp downloads nothing): argon2's shipped prebuild crashes on Node 20, and a prebuild
# download is one more thing fetched from outside. The npm of the lockfile (package.json's
# allowScripts is npm 11's).
ENV npm_config_nodedir=/usr/local \
    npm_config_build_from_source=true \
    npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false
RUN npm install -g npm@11.19.1 --loglevel=error
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --loglevel=error \
  && node -e "require('pkcs11js'); require('argon2'); require('sqlite3')"
COPY tsconfig.json ./
COPY errors errors
COPY machines machines
COPY server server
COPY crypto crypto
COPY hsm hsm
COPY db db
COPY backup backup
COPY tls tls
COPY effects effects
# The tests stay out of the image (.dockerignore); tsc builds the rest into dist/.
RUN node node_modules/typescript/bin/tsc -p tsconfig.json \
  && rm -f dist/.tsbuildinfo \
  && npm prune --omit=dev --loglevel=error \
  && node -e "require('pkcs11js'); require('argon2'); require('sqlite3')"

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ARG KEYWARD_UID=10001
ARG KEYWARD_GID=10001
LABEL org.opencontainers.image.title="keyward" \
      org.opencontainers.image.description="Key-custody lifecycle service for PKI servers: HSM key hierarchy, startup scenarios, auto-restore, backup and drills" \
      org.opencontainers.image.licenses="Apache-2.0"
# softhsm2: the PKCS#11 module (/usr/lib/softhsm/libsofthsm2.so); opensc: pkcs11-tool, which
# scripts/wizard_setup_hsm.sh drives; tini: PID 1, reaps the scripts' orphans and forwards signals.
RUN apt-get update \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends softhsm2 opensc tini \
  && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid "${KEYWARD_GID}" keyward \
  && useradd --system --uid "${KEYWARD_UID}" --gid keyward --home-dir /var/lib/keyward --no-create-home --shell /usr/sbin/nologin keyward \
  && mkdir -p /var/lib/keyward/tokens /var/lib/keyward/secrets /var/lib/keyward/tls \
  && chown -R keyward:keyward /var/lib/keyward \
  && chmod 700 /var/lib/keyward /var/lib/keyward/tokens /var/lib/keyward/secrets /var/lib/keyward/tls

WORKDIR /opt/keyward
# The application belongs to root and is read-only to keyward: a compromised process cannot alter it.
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY scripts ./scripts
COPY views ./views
RUN chmod 755 scripts/*.sh dist/server/cli.js \
  && ln -s /opt/keyward/dist/server/cli.js /usr/local/bin/keyward

# Everything keyward keeps: database, TLS material, the user-PIN file, and the SoftHSM2 token files,
# on their own volume so that they can be kept, backed up or lost separately (the lost-token case).
ENV KEYWARD_HOME=/var/lib/keyward \
    SOFTHSM2_CONF=/var/lib/keyward/softhsm2.conf \
    KEYWARD_HOST=0.0.0.0 \
    KEYWARD_PORT=8443
VOLUME ["/var/lib/keyward", "/var/lib/keyward/tokens"]
EXPOSE 8443
USER keyward:keyward

# Liveness only: /readyz is 503 while auto-restore waits for the backup password, and restarting
# the container would not bring the password. Node is in the image already; the certificate is
# self-signed until an operator imports one.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "require('https').get({host:'127.0.0.1',port:process.env.KEYWARD_PORT,path:'/livez',rejectUnauthorized:false,timeout:4000},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).on('timeout',()=>process.exit(1))"]

# exec form: tini is PID 1; the entrypoint execs node, which gets SIGTERM and whose exit code is the
# container's (6: the database is newer than this keyward, nothing was changed).
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/keyward/scripts/entrypoint.sh"]
