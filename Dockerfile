# meter-intake: one image for the API, the writer and the one-shot migration job.
#
#   docker build -t meter-intake .
#   docker run meter-intake api        # the HTTP API (port 3000)
#   docker run meter-intake writer     # the queue writer (health and metrics on port 3100)
#   docker run meter-intake migrate    # apply database migrations, then exit
#
# Configuration comes only from environment variables at run time (libs/config); nothing
# secret is baked into the image. See docker-compose.postgres.yml and README.md.
#
# Node.js: 26, the active LTS line (supported until April 2029). Node 20, which these images
# used before, reached its end of life in April 2026. The `npm ci` of the npm that node:26 ships
# (npm 11) accepts this lock file: it lists the optional binaries of every platform
# (scripts/lockfile.spec.mjs keeps it so; npm 11 refused the lock while it did not, npm/cli#8805).
# @swc/core is a dev dependency (tests only): the runtime stage never installs it.

ARG NODE_IMAGE=node:26-bookworm-slim

# --- build: dev dependencies and the TypeScript compile -------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY libs ./libs
COPY apps ./apps
RUN ./node_modules/.bin/tsc -p tsconfig.build.json

# --- production dependencies only ----------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force

# --- runtime ---------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    WRITER_HEALTH_PORT=3100
WORKDIR /app
# Owned by root and read-only to the service user: the process cannot rewrite its own code.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY docker/entrypoint.sh docker/probe.mjs ./docker/
# The official Node images have the unprivileged user `node` (uid 1000).
USER node
EXPOSE 3000 3100
# The command (api, writer, migrate) is recorded by the entrypoint; the probe asks that
# process's /health/ready. Compose files may override this per service.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "/app/docker/probe.mjs", "health"]
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["api"]
