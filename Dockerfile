# syntax=docker/dockerfile:1

# ---- build: compile TypeScript, then drop dev dependencies --------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# npm ci's postinstall applies these to node_modules (patch-package).
COPY patches ./patches
RUN npm ci --no-audit --no-fund
COPY tsconfig*.json ./
COPY src ./src
COPY migrations ./migrations
COPY openapi.yaml ./
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

# ---- runtime: production deps + compiled output only -------------------------
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    PORT=8080
WORKDIR /app
# Application files stay root-owned (read-only for the app user); only /app
# itself is writable by `node` for any scratch files.
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/migrations ./migrations
COPY --from=build /app/openapi.yaml /app/package.json ./
RUN chown node:node /app
USER node
# 8080: the API; 9464: Prometheus /metrics (bound to loopback unless METRICS_HOST says otherwise).
EXPOSE 8080 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "dist/main.js"]
