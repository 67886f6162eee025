# The GPU image: the generation worker by default, the trainer with the command
# `node --import tsx services/trainer/src/main.ts` (compose and Kubernetes run both from this image).
# onnxruntime-node 1.30's CUDA provider is built for CUDA 12 and cuDNN 9, which this base image carries; the
# provider's libraries are downloaded at build time (they are not in the npm package).
#   docker build -f infra/worker.Dockerfile -t darkroom-worker .
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04

ARG NODE_MAJOR=20
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl gnupg \
 && curl -fsSL https://deb.nodesource.com/setup_${NODE_MAJOR}.x | bash - \
 && apt-get install -y --no-install-recommends nodejs \
 && rm -rf /var/lib/apt/lists/*

ENV NODE_ENV=production \
    EXECUTION_PROVIDER=cuda
WORKDIR /app

COPY package.json package-lock.json .npmrc ./
COPY packages/core/package.json packages/core/
COPY packages/farm/package.json packages/farm/
COPY packages/cli/package.json packages/cli/
COPY services/api/package.json services/api/
COPY services/worker/package.json services/worker/
COPY services/trainer/package.json services/trainer/
# The CUDA download is run as its own step rather than as onnxruntime-node's install script: npm 11 skips
# dependency install scripts unless package.json's allowScripts names them, and the repository denies this one
# (with .npmrc's skip for older npm) so that machines without a GPU never fetch it.
RUN npm ci --include=dev --no-audit --no-fund \
 && ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js \
 && ls node_modules/onnxruntime-node/bin/napi-v6/linux/x64/ | grep -q providers_cuda \
 && npm cache clean --force

COPY tsconfig.json ./
COPY packages ./packages
COPY services ./services

# Compiled graphs and fetched embeddings/hypernetworks: mount a volume here to keep them across restarts.
RUN mkdir -p /app/.darkroom && chown -R 1000:1000 /app/.darkroom
USER 1000
EXPOSE 9464
HEALTHCHECK --interval=15s --timeout=5s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.WORKER_PORT||9464)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# Worker: SIGTERM lets the current job finish, so give the container as long as a job may take (stop_grace_period).
# Trainer: SIGTERM stores a checkpoint after the current step and hands the training back to the queue.
CMD ["node", "--import", "tsx", "services/worker/src/main.ts"]
