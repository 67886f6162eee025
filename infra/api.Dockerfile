# The HTTP API: no GPU, no model weights. Build from the repository root:
#   docker build -f infra/api.Dockerfile -t darkroom-api .
FROM node:20-bookworm-slim

ENV NODE_ENV=production \
    # The API never runs onnxruntime; skip its CUDA download.
    ONNXRUNTIME_NODE_INSTALL=skip
WORKDIR /app

# Manifests first, so the dependency layer is cached across source changes.
COPY package.json package-lock.json .npmrc ./
COPY packages/core/package.json packages/core/
COPY packages/farm/package.json packages/farm/
COPY packages/cli/package.json packages/cli/
COPY services/api/package.json services/api/
COPY services/worker/package.json services/worker/
COPY services/trainer/package.json services/trainer/
# tsx (a dev dependency) runs the TypeScript sources: there is no build step.
RUN npm ci --include=dev --no-audit --no-fund --onnxruntime-node-install=skip && npm cache clean --force

COPY tsconfig.json ./
COPY packages ./packages
COPY services ./services

USER node
EXPOSE 7860
HEALTHCHECK --interval=15s --timeout=5s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||7860)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "--import", "tsx", "services/api/src/main.ts"]
