# pullgate: multi-stage build on the official Node 24 slim image.
# The tag is pinned here; pin the digest too in your own build (FROM node:24-slim@sha256:...), so
# the image you run is the image you reviewed, and let your dependency bot move it.

# --- runtime dependencies only: no TypeScript, no test tooling, no install scripts
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# --- the image that runs: sources, production node_modules, a default config; no npm at run time
FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
# Node 24 runs the TypeScript sources directly (type stripping): what was reviewed is what runs.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
COPY deploy/docker/healthcheck.ts ./deploy/docker/healthcheck.ts
COPY scripts/warm-compile-cache.ts ./scripts/warm-compile-cache.ts
COPY deploy/docker/pullgate.yaml /etc/pullgate/pullgate.yaml
COPY config/policy.example.yaml /etc/pullgate/policy.yaml
# Memory at rest (docs/decisions.md, "Memory at rest"): a small young generation, glibc handing
# freed transfer buffers back to the system (one malloc arena, so what the fill thread freed is
# trimmed too), and a compile cache filled here, as root, so the proxy never loads node's
# TypeScript stripper; the user below can read it, not change it (relative to WORKDIR).
# package.json's start script runs the proxy the same way.
ENV MALLOC_TRIM_THRESHOLD_=1048576
ENV MALLOC_ARENA_MAX=1
ENV NODE_COMPILE_CACHE=.cache/node-compile
RUN node scripts/warm-compile-cache.ts
# The only writable path: SQLite state. Everything else works on a read-only root filesystem.
RUN mkdir -p /var/lib/pullgate && chown 10001:10001 /var/lib/pullgate
VOLUME ["/var/lib/pullgate"]
# A numeric UID/GID with no passwd entry: Kubernetes' runAsNonRoot can verify it from the image.
USER 10001:10001
EXPOSE 5050 5051
# Reads the same config as the proxy (PULLGATE_CONFIG, else PID 1's --config), so TLS and other
# ports stay healthy.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "deploy/docker/healthcheck.ts"]
ENTRYPOINT ["node", "--max-semi-space-size=2", "src/cli/main.ts"]
CMD ["serve", "--config", "/etc/pullgate/pullgate.yaml"]
