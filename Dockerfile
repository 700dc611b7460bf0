# pullgate: multi-stage build on the official Node 24 slim image. Pin the base by digest in your
# own build pipeline (node:24-slim@sha256:...) so the image you run is the image you reviewed.
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Runtime dependencies only: no compiler, no test tooling, no lifecycle scripts needed at run time.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
# TypeScript runs by Node 24's type stripping: the reviewed sources are what runs, no build step.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
COPY deploy/docker/pullgate.yaml /etc/pullgate/pullgate.yaml
COPY config/policy.example.yaml /etc/pullgate/policy.yaml
# State lives on a volume; everything else can be a read-only root filesystem.
RUN mkdir -p /var/lib/pullgate && chown 10001:10001 /var/lib/pullgate
VOLUME ["/var/lib/pullgate"]
USER 10001:10001
EXPOSE 5050 5051
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:5050/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "src/cli/main.ts"]
CMD ["serve", "--config", "/etc/pullgate/pullgate.yaml"]
