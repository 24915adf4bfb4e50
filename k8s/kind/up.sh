#!/usr/bin/env bash
# anchor on a kind cluster, for anyone with Docker: the same steps as the real-node test (tests/node/test_broadcast.py)
# on a local cluster. It creates the cluster `anchor` (or reuses it), gives its node a GPU to schedule on, builds
# the three images (scripts/images.sh) and loads them into the node, installs the chart with the dev preset (the CPU
# mock engine and a small S3 store in the cluster), runs `helm test`, applies the daily sample to a restricted
# namespace with its feed and bucket pointed into the cluster, runs it now and downloads the video.
#
#   k8s/kind/up.sh            create or reuse the cluster, install, run the sample once, print where the video is
#   k8s/kind/up.sh --delete   delete the cluster (and everything in it)
#
# Needs docker, kind, kubectl, helm, curl and python3 >= 3.11 (scripts/images.sh). Versions it is
# written for (CI runs it with these; .github/workflows/kind.yml): kind v0.32.0 (the node image in cluster.yaml is
# the one that release names), kubectl v1.36, helm v4.3.1 (helm 3 works too).
#
# Settings (environment):
#   ANCHOR_KIND_GPU=fake      (default) advertise 2 fake `nvidia.com/gpu` on the node's status, as a device plugin
#                             would: the engine is the CPU mock, so nothing uses a real GPU
#   ANCHOR_KIND_GPU=nvidia    install NVIDIA's device plugin instead, for a kind cluster whose node sees the host's
#                             GPUs (NVIDIA Container Toolkit and a GPU-enabled kind node, e.g. made with nvkind);
#                             ANCHOR_KIND_ENGINE_GPU_IMAGE then names the engine (e.g. voicevox/voicevox_engine:nvidia-0.25.2)
#   ANCHOR_KIND_FEED=bundled  (default) serve the bundled Japanese feed (job/sample/feed-ja.xml) in the cluster;
#                  sample     keep the sample's own feed (NHK, on the internet)
#   ANCHOR_KIND_OUT           where the video is downloaded (default out/kind)
#   ANCHOR_KIND_S3_PORT       local port of the port-forward to the S3 store (default 18333)
#   ANCHOR_KIND_RUN_TIMEOUT   seconds to wait for the run (default 900)
set -euo pipefail
cd "$(dirname "$0")/../.."

KIND_VERSION=v0.32.0
KUBECTL_VERSION=v1.36.3
HELM_VERSION=v4.3.1
NVIDIA_DEVICE_PLUGIN_VERSION=v0.19.3
NVIDIA_DEVICE_PLUGIN_COMMIT=570e776d6813cb9f3e9c8c105cf8d79989db6650   # the tag's commit: the manifest cannot move
NVIDIA_DEVICE_PLUGIN_MANIFEST="https://raw.githubusercontent.com/NVIDIA/k8s-device-plugin/$NVIDIA_DEVICE_PLUGIN_COMMIT/deployments/static/nvidia-device-plugin.yml"

CLUSTER=anchor
CONTEXT="kind-$CLUSTER"
CLUSTER_CONFIG=k8s/kind/cluster.yaml
SERVICE_SUBNET=10.96.0.0/16   # networking.serviceSubnet of cluster.yaml: the in-cluster feed's addresses
CHART=charts/anchor
PRESET=charts/anchor/presets/dev.yaml
RELEASE=anchor
SYSTEM=anchor-system
# The dev preset's S3 store: a Service <release>-s3 on port 8333 and a Secret <release>-s3-credentials.
S3_SERVICE="$RELEASE-s3"
S3_PORT=8333
S3_SECRET="$RELEASE-s3-credentials"
S3_ENDPOINT="$S3_SERVICE.$SYSTEM.svc:$S3_PORT"
BUCKET=news   # created by the preset (s3store.buckets)
NAMESPACE=news
SAMPLE=k8s/samples/daily-ja-gpu-s3.yaml
BROADCAST=daily-ja   # metadata.name in the sample
SAMPLE_SECRET=anchor-s3   # spec.output.s3.credentials.secretName in the sample
FEED_FILE=job/sample/feed-ja.xml
GPU_MODE="${ANCHOR_KIND_GPU:-fake}"
FEED_MODE="${ANCHOR_KIND_FEED:-bundled}"
OUT="${ANCHOR_KIND_OUT:-out/kind}"
LOCAL_S3_PORT="${ANCHOR_KIND_S3_PORT:-18333}"
RUN_TIMEOUT="${ANCHOR_KIND_RUN_TIMEOUT:-900}"

say() { echo "kind-up: $*" >&2; }
die() { echo "kind-up: ERROR: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 is not installed: $2"; }
k() { kubectl --context "$CONTEXT" "$@"; }
h() { helm --kube-context "$CONTEXT" "$@"; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

mode=up
case "${1:-}" in
  "") ;;
  --delete) mode=delete ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; die "unknown argument '$1'" ;;
esac

need docker "https://docs.docker.com/engine/install/"
need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation (this script is written for $KIND_VERSION)"
docker info >/dev/null 2>&1 || die "docker is installed but no Docker daemon answers (start Docker, or check your permissions)"

if [[ "$mode" == delete ]]; then
  kind delete cluster --name "$CLUSTER"
  exit 0
fi

need kubectl "https://kubernetes.io/docs/tasks/tools/ (this script is written for $KUBECTL_VERSION)"
need helm "https://helm.sh/docs/intro/install/ (this script is written for $HELM_VERSION)"
need curl "https://curl.se/download.html"
need python3 "scripts/images.sh needs Python 3.11 or newer"
python3 -c 'import tomllib' 2>/dev/null || die "python3 is $(python3 --version 2>&1): scripts/images.sh needs 3.11 or newer"
[[ "$GPU_MODE" == fake || "$GPU_MODE" == nvidia ]] || die "ANCHOR_KIND_GPU must be fake or nvidia (got '$GPU_MODE')"
[[ "$FEED_MODE" == bundled || "$FEED_MODE" == sample ]] || die "ANCHOR_KIND_FEED must be bundled or sample (got '$FEED_MODE')"
[[ -f "$PRESET" ]] || die "$PRESET is missing: this checkout's chart has no dev preset"
installed_kind=$(kind version 2>/dev/null | awk '{print $2}')
[[ "$installed_kind" == "$KIND_VERSION" ]] \
  || say "warning: kind is $installed_kind; cluster.yaml's node image is the one kind $KIND_VERSION was released with"

# --- the cluster --------------------------------------------------------------------------------------------------

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  say "reusing the kind cluster '$CLUSTER'"
  kind export kubeconfig --name "$CLUSTER" >/dev/null
else
  say "creating the kind cluster '$CLUSTER' ($CLUSTER_CONFIG; about a minute)"
  kind create cluster --name "$CLUSTER" --config "$CLUSTER_CONFIG" --wait 180s
fi
node=$(k get nodes -o jsonpath='{.items[0].metadata.name}')
k wait --for=condition=Ready "node/$node" --timeout=180s >/dev/null

# --- a GPU to schedule on -----------------------------------------------------------------------------------------

if [[ "$GPU_MODE" == fake ]]; then
  # What a device plugin advertises, put on the node's status (the kubelet keeps extended resources it does not
  # manage); the sample asks for one nvidia.com/gpu and the engine is the CPU mock, so nothing needs a real one.
  say "advertising 2 fake nvidia.com/gpu on node $node"
  k patch node "$node" --subresource=status --type=json -p '[
    {"op": "add", "path": "/status/capacity/nvidia.com~1gpu", "value": "2"},
    {"op": "add", "path": "/status/allocatable/nvidia.com~1gpu", "value": "2"}]' >/dev/null
else
  say "installing NVIDIA's device plugin $NVIDIA_DEVICE_PLUGIN_VERSION"
  k apply -f "$NVIDIA_DEVICE_PLUGIN_MANIFEST" >/dev/null
  gpus=""
  for _ in $(seq 1 60); do
    gpus=$(k get node "$node" -o jsonpath='{.status.allocatable.nvidia\.com/gpu}')
    [[ -n "$gpus" && "$gpus" != 0 ]] && break
    sleep 3  # polling the node's status until the device plugin has registered its GPUs
  done
  [[ -n "$gpus" && "$gpus" != 0 ]] || die "node $node advertises no nvidia.com/gpu after 3 minutes: the kind node does" \
    "not see the host's GPUs (it needs the NVIDIA Container Toolkit and a GPU-enabled node, e.g. made with nvkind)." \
    "See: kubectl --context $CONTEXT logs -n kube-system daemonset/nvidia-device-plugin-daemonset"
  say "node $node advertises $gpus nvidia.com/gpu"
fi

# --- the images ---------------------------------------------------------------------------------------------------

say "building the images (scripts/images.sh; cached by content, a few minutes the first time)"
refs=$(scripts/images.sh)
job_image="" controller_image="" engine_image=""
while IFS='=' read -r name ref; do
  case "$name" in
    job) job_image=$ref ;;
    controller) controller_image=$ref ;;
    engine-mock) engine_image=$ref ;;
  esac
done <<<"$refs"
[[ -n "$job_image" && -n "$controller_image" && -n "$engine_image" ]] \
  || die "scripts/images.sh did not name the job, controller and engine-mock images: $refs"
gpu_engine_image="${ANCHOR_KIND_ENGINE_GPU_IMAGE:-$engine_image}"
say "loading the images into the node"
kind load docker-image --name "$CLUSTER" "$job_image" "$controller_image" "$engine_image"

# --- the chart ----------------------------------------------------------------------------------------------------

restricted_namespace() {
  k create namespace "$1" --dry-run=client -o yaml | k apply -f - >/dev/null
  k label namespace "$1" --overwrite pod-security.kubernetes.io/enforce=restricted >/dev/null
}

say "installing the chart into $SYSTEM (helm upgrade --install $RELEASE $CHART -f $PRESET)"
restricted_namespace "$SYSTEM"
h upgrade --install "$RELEASE" "$CHART" --namespace "$SYSTEM" \
  -f "$PRESET" \
  --set "controller.image.repository=${controller_image%:*}" \
  --set "controller.image.tag=${controller_image##*:}" \
  --set "controller.image.pullPolicy=IfNotPresent" \
  --set "job.image.repository=${job_image%:*}" \
  --set "job.image.tag=${job_image##*:}" \
  --set "engine.cpuImage=$engine_image" \
  --set "engine.gpuImage=$gpu_engine_image" \
  --wait --timeout 10m >/dev/null
k rollout status "deployment/$RELEASE" -n "$SYSTEM" --timeout=300s
say "helm test $RELEASE"
h test "$RELEASE" --namespace "$SYSTEM" --logs --timeout 5m

# --- the broadcast's namespace: the bucket's credentials, the feed ------------------------------------------------

say "preparing the restricted namespace $NAMESPACE with the store's credentials as the Secret $SAMPLE_SECRET"
restricted_namespace "$NAMESPACE"
# Copied as they are (base64), never decoded here.
secret_key() { k get secret "$S3_SECRET" -n "$SYSTEM" -o "jsonpath={.data.$1}"; }
access_key_b64=$(secret_key accessKeyId)
secret_key_b64=$(secret_key secretAccessKey)
[[ -n "$access_key_b64" && -n "$secret_key_b64" ]] \
  || die "the Secret $SYSTEM/$S3_SECRET lacks accessKeyId or secretAccessKey (is s3store enabled in $PRESET?)"
k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Secret
metadata: {name: $SAMPLE_SECRET, namespace: $NAMESPACE}
type: Opaque
data: {accessKeyId: $access_key_b64, secretAccessKey: $secret_key_b64}
YAML

if [[ "$FEED_MODE" == bundled ]]; then
  say "serving $FEED_FILE in the cluster (service/anchor-feed in $NAMESPACE)"
  k create configmap anchor-feed -n "$NAMESPACE" --from-file="feed.xml=$FEED_FILE" --dry-run=client -o yaml \
    | k apply -f - >/dev/null
  k apply -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: anchor-feed, namespace: $NAMESPACE, labels: {app: anchor-feed}}
spec:
  replicas: 1
  selector: {matchLabels: {app: anchor-feed}}
  template:
    metadata: {labels: {app: anchor-feed}}
    spec:
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: feed
          image: $job_image   # the job image: its Python serves the file
          command: [python, -m, http.server, "8080", --directory, /feed]
          ports: [{containerPort: 8080}]
          readinessProbe: {httpGet: {path: /feed.xml, port: 8080}}
          resources: {requests: {cpu: 10m, memory: 32Mi}, limits: {memory: 64Mi}}
          securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
          volumeMounts: [{name: feed, mountPath: /feed}]
      volumes: [{name: feed, configMap: {name: anchor-feed}}]
---
apiVersion: v1
kind: Service
metadata: {name: anchor-feed, namespace: $NAMESPACE}
spec:
  selector: {app: anchor-feed}
  ports: [{port: 8080, targetPort: 8080}]
YAML
  k rollout status deployment/anchor-feed -n "$NAMESPACE" --timeout=180s
  # The bundled feed's stories are old (maxAgeHours 0 keeps them) and its Service has a private address.
  sources=",\"sources\": {\"feeds\": [{\"url\": \"http://anchor-feed.$NAMESPACE.svc:8080/feed.xml\", \"name\": \"NHK\"}],
    \"maxAgeHours\": 0, \"allowedAddresses\": [\"$SERVICE_SUBNET\"]}"
else
  sources=""
fi

# --- the sample, as a user edits it (the CHANGE lines), applied -----------------------------------------------------

say "applying $SAMPLE to $NAMESPACE, its bucket the in-cluster store ($S3_ENDPOINT)"
patch="{\"metadata\": {\"namespace\": \"$NAMESPACE\"}, \"spec\": {
  \"output\": {\"s3\": {\"endpoint\": \"$S3_ENDPOINT\", \"bucket\": \"$BUCKET\", \"secure\": false, \"region\": null}},
  \"script\": {\"stories\": 2}, \"video\": {\"resolution\": \"1280x720\"} $sources}}"
kubectl patch --local -f "$SAMPLE" --type merge -p "$patch" -o yaml | k apply -f - >/dev/null
if ! k wait --for=condition=Ready -n "$NAMESPACE" "newsbroadcast/$BROADCAST" --timeout=120s >/dev/null; then
  k get newsbroadcast "$BROADCAST" -n "$NAMESPACE" -o jsonpath='{.status.conditions}' >&2 || true
  die "the controller did not report $NAMESPACE/$BROADCAST Ready (its log: kubectl --context $CONTEXT logs -n $SYSTEM deployment/$RELEASE)"
fi

# --- run now, and wait for the status to report the run -------------------------------------------------------------

field() { k get newsbroadcast "$BROADCAST" -n "$NAMESPACE" -o "jsonpath={.status.$1}"; }
before=$(field lastRun.job)
say "run now: kubectl annotate newsbroadcast/$BROADCAST anchor.news/run-now=<token>"
k annotate --overwrite -n "$NAMESPACE" "newsbroadcast/$BROADCAST" "anchor.news/run-now=kind-$(date +%s)" >/dev/null
started=$SECONDS
last_report=0
phase=""
while :; do
  job=$(field lastRun.job)
  phase=$(field lastRun.phase)
  [[ -n "$job" && "$job" != "$before" && ( "$phase" == Succeeded || "$phase" == Failed ) ]] && break
  if (( SECONDS - started > RUN_TIMEOUT )); then
    k get pods -n "$NAMESPACE" -o wide >&2 || true
    die "the run did not finish within $RUN_TIMEOUT s (status.activeRun: $(field activeRun))"
  fi
  if (( SECONDS - last_report >= 30 )); then
    last_report=$SECONDS
    say "waiting for the run ($((SECONDS - started)) s): $(field activeRun.phase) $(field activeRun.message)"
  fi
  sleep 5  # polling the broadcast's status until lastRun names the new run
done
say "the run finished: $phase in $((SECONDS - started)) s (job $job)"
if [[ "$phase" != Succeeded ]]; then
  say "reason: $(field lastRun.reason): $(field lastRun.message)"
  k logs -n "$NAMESPACE" -l "job-name=$job" -c job --tail=40 >&2 || true
  die "the run failed"
fi

# --- where the video is, and a copy of it from the store (its Service, through a port-forward) ----------------------

forward_pid=""
# shellcheck disable=SC2329  # called by the EXIT trap
stop_forward() {
  [[ -z "$forward_pid" ]] || kill "$forward_pid" 2>/dev/null || true
}
trap stop_forward EXIT
k port-forward -n "$SYSTEM" "service/$S3_SERVICE" "$LOCAL_S3_PORT:$S3_PORT" >/dev/null 2>&1 &
forward_pid=$!
for _ in $(seq 1 30); do
  curl -s -o /dev/null "http://127.0.0.1:$LOCAL_S3_PORT/" && break
  kill -0 "$forward_pid" 2>/dev/null || die "kubectl port-forward to service/$S3_SERVICE:$S3_PORT exited (is port $LOCAL_S3_PORT free? set ANCHOR_KIND_S3_PORT)"
  sleep 1  # polling the port-forward until it answers
done

run_id=$(field lastRun.runId)
video_url=$(field lastRun.videoUrl)
prefix=$(k get newsbroadcast "$BROADCAST" -n "$NAMESPACE" -o jsonpath='{.spec.output.s3.prefix}')
key="${prefix:+$prefix/}$BROADCAST/$run_id/video.mp4"
local_video="$OUT/$BROADCAST/$run_id/video.mp4"
mkdir -p "$(dirname "$local_video")"
# The presigned URL names the in-cluster endpoint (and is signed for that Host): connect through the port-forward.
curl -fsS --connect-to "$S3_ENDPOINT:127.0.0.1:$LOCAL_S3_PORT" -o "$local_video" "$video_url" \
  || die "downloading the video through the port-forward failed ($video_url)"
cat <<EOF
The video:
  object     s3://$BUCKET/$key  (endpoint http://$S3_ENDPOINT, in the cluster)
  URL        $video_url
  local copy $local_video
  status     kubectl --context $CONTEXT get newsbroadcast -n $NAMESPACE $BROADCAST -o yaml
  again      kubectl --context $CONTEXT annotate --overwrite -n $NAMESPACE newsbroadcast/$BROADCAST anchor.news/run-now=\$(date +%s)
  tear down  $0 --delete
EOF
