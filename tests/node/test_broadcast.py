"""A whole broadcast on the real node, as a user runs it: `helm install` of the chart with our images (the controller
itself a pod under the chart's ServiceAccount), the daily sample from k8s/samples/ applied with its feed, bucket and
webhook pointed at servers of this test, run-now, the kubelet running the engine mock as a native sidecar beside
the job image, the video in MinIO, the status, Events and webhook saying so. Then the faults a user meets."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from minio import Minio
from minio.error import S3Error

from controller import manifests
from tests.node.conftest import SUMMARIES as TIMINGS
from tests.support.docker import DockerUnavailable, images
from tests.support.http import Reply, ScriptedServer, scripted_server
from tests.support.kueue import gpu_quota, install_crds, priority_class, running_kueue
from tests.support.kwok import Cluster, wait_for
from tests.support.media import FFMPEG
from tests.support.minio_server import MinioServer, running_minio
from tests.support.node import RealNode
from tests.support.published import check_published
from tests.support.seaweedfs import seaweedfs_image
from tests.support.tools import REPO, tool

pytestmark = pytest.mark.node
SAMPLE = REPO / "k8s" / "samples" / "daily-ja-gpu-s3.yaml"
DIALOGUE = REPO / "k8s" / "samples" / "dialogue-ja-gpu.yaml"
NAME = "dialogue-ja"
SYSTEM = "anchor-system"
RUN_TIMEOUT = 420.0  # a cold pod start, the engine mock loading OpenJTalk and a 720p render on 2 shared cores


@dataclass
class Stack:
    cluster: Cluster
    node: RealNode
    minio: MinioServer
    feeds: ScriptedServer
    webhook: ScriptedServer

    def bucket(self) -> tuple[Minio, str]:
        client = Minio(
            self.minio.endpoint, access_key=self.minio.access_key, secret_key=self.minio.secret_key, secure=False
        )
        name = f"news-{uuid.uuid4().hex[:8]}"
        client.make_bucket(name)
        return client, name


def _feed(method: str, path: str, body: bytes) -> Reply:
    if path == "/timeout.xml":  # a feed that never answers in time: the job's own deadline must end the wait
        threading.Event().wait(40)  # the server stalls on purpose; nothing in the test waits on this thread
        return Reply(504, b"", "text/plain")
    return Reply(200, (REPO / "job" / "sample" / "feed-ja.xml").read_bytes(), "application/rss+xml; charset=utf-8")


def _helm(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"KUBECONFIG": str(cluster.kubeconfig), "HOME": str(cluster.workdir), "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(tool("helm")), *args], env=env, capture_output=True, text=True, timeout=300)


def _split(image: str) -> dict[str, str]:
    repository, _, tag = image.rpartition(":")
    return {"repository": repository, "tag": tag}


@pytest.fixture(scope="module")
def stack(cluster: Cluster, real_node: RealNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    try:
        built = images()
    except DockerUnavailable as exc:
        pytest.skip(f"the images cannot be built here: {exc}")
    started = time.monotonic()
    real_node.load_images([built.job, built.controller, built.engine_mock])
    TIMINGS.append(f"images loaded into the node in {time.monotonic() - started:.1f} s")
    workdir = tmp_path_factory.mktemp("stack")
    install_crds(cluster)  # before the controller starts: it watches Kueue's Workloads (kueue.enabled below)
    with (
        running_kueue(cluster, workdir / "kueue"),
        running_minio(workdir / "minio", host=real_node.ip) as minio,
        scripted_server(_feed, host=real_node.ip) as feeds,
        scripted_server(lambda _m, _p, _b: Reply(200, b"ok", "text/plain"), host=real_node.ip) as webhook,
    ):
        values = {
            "controller": {
                "image": {**_split(built.controller), "pullPolicy": "Never"},
                "extraEnv": [
                    *real_node.api_env,  # no kube-proxy here: the API server through the node's address
                    {"name": "ANCHOR_WEBHOOK_BACKOFF_SECONDS", "value": "0.5"},
                ],
            },
            # The node has 2 cores in all: small CPU requests, through the chart's documented values.
            "job": {
                "image": {**_split(built.job), "pullPolicy": "Never"},
                "resources": {"requests": {"cpu": "100m"}},
                "podLabels": {"team": "newsroom"},
            },
            "engine": {
                "gpuImage": built.engine_mock,
                "cpuImage": built.engine_mock,
                "pullPolicy": "Never",
                "resources": {"requests": {"cpu": "100m"}},
            },
            "webhook": {"allowedNetworks": [f"{real_node.ip}/32"]},
            "kueue": {"enabled": True},
            "cost": {"gpuPrices": {"nvidia.com/gpu": {"onDemand": 2.5, "spot": 0.9}}, "currency": "EUR"},
        }
        (workdir / "values.yaml").write_text(yaml.safe_dump(values), encoding="utf-8")
        cluster.kubectl("create", "namespace", SYSTEM)
        cluster.kubectl("label", "namespace", SYSTEM, "pod-security.kubernetes.io/enforce=restricted")
        started = time.monotonic()
        installed = _helm(cluster, "install", "anchor", str(REPO / "charts" / "anchor"), "-n", SYSTEM,
                          "-f", str(workdir / "values.yaml"), "--wait", "--timeout", "180s")  # fmt: skip
        assert installed.returncode == 0, installed.stderr + _controller_log(cluster)
        cluster.kubectl("rollout", "status", "deployment/anchor", "-n", SYSTEM, "--timeout=120s")
        TIMINGS.append(f"helm install to the controller pod Ready in {time.monotonic() - started:.1f} s")
        yield Stack(cluster, real_node, minio, feeds, webhook)
        _helm(cluster, "uninstall", "anchor", "-n", SYSTEM, "--wait", "--timeout", "120s")


def _controller_log(cluster: Cluster) -> str:
    done = cluster.kubectl("logs", "-n", SYSTEM, "deployment/anchor", "--tail=60", check=False)
    return f"\ncontroller log:\n{done.stdout}{done.stderr}"


def _sample(stack: Stack, namespace: str, bucket: str, feed: str = "news.xml", sample: Path = SAMPLE) -> dict[str, Any]:
    """The sample as a user edits it: the CHANGE lines, plus this test's feed and a webhook."""
    document: dict[str, Any] = yaml.safe_load(sample.read_text(encoding="utf-8"))
    spec = document["spec"]
    document["metadata"]["namespace"] = namespace
    spec["sources"].update(
        feeds=[{"url": f"{stack.feeds.url}/{feed}", "name": "NHK"}],
        maxAgeHours=0,  # the bundled feed's stories are old
        allowedAddresses=[f"{stack.node.ip}/32"],  # the test's servers are on a private address
    )
    spec["script"]["stories"] = 2
    spec["video"]["resolution"] = "1280x720"
    spec["video"]["storyImages"] = False  # the sample feed's stories link to example hosts: no lookups from here
    spec["output"]["s3"].update(endpoint=stack.minio.endpoint, bucket=bucket, secure=False)
    spec["output"]["s3"].pop("region")
    spec.setdefault("scheduling", {})["nodeSelector"] = {"kubernetes.io/hostname": stack.node.name}
    spec["notify"] = {"webhookSecret": {"name": "anchor-webhook", "key": "url"}}
    return document


def _secrets(stack: Stack, namespace: str) -> None:
    s3 = ["--from-literal", f"accessKeyId={stack.minio.access_key}",
          "--from-literal", f"secretAccessKey={stack.minio.secret_key}"]  # fmt: skip
    stack.cluster.kubectl("create", "secret", "generic", "anchor-s3", "-n", namespace, *s3)
    hook = ["--from-literal", f"url={stack.webhook.url}/hook"]
    stack.cluster.kubectl("create", "secret", "generic", "anchor-webhook", "-n", namespace, *hook)


def _run_now(stack: Stack, namespace: str, name: str) -> dict[str, Any]:
    """Annotate run-now and wait for the run's outcome on the status; return status.lastRun."""
    token = uuid.uuid4().hex[:8]
    started = time.monotonic()
    stack.cluster.kubectl("annotate", "--overwrite", "-n", namespace, f"newsbroadcast/{name}",
                          f"anchor.news/run-now={token}")  # fmt: skip

    def finished() -> dict[str, Any] | None:
        status = stack.cluster.get("newsbroadcast", name, "-n", namespace).get("status") or {}
        last: dict[str, Any] | None = status.get("lastRun")
        return last if last and last.get("phase") in ("Succeeded", "Failed") else None

    last = wait_for(finished, f"the run of {namespace}/{name} to finish{_pods(stack, namespace)}", RUN_TIMEOUT, 2)
    TIMINGS.append(f"{name}: run-now to {last['phase']} in {time.monotonic() - started:.1f} s")
    return last


def _pods(stack: Stack, namespace: str) -> str:
    pods = stack.cluster.kubectl("get", "pods", "-n", namespace, "-o", "wide", check=False).stdout
    return f"\npods:\n{pods}"


def _events(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    events = cluster.get("events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")["items"]
    return {event["reason"]: event["message"] for event in events}


def test_a_sample_broadcast_goes_from_apply_to_a_published_video_through_the_real_node(
    stack: Stack, namespace: str
) -> None:
    """The dialogue sample: two presenters taking turns, each mouth moving with its voice, rendered in the pod."""
    client, bucket = stack.bucket()
    _secrets(stack, namespace)
    dialogue = _sample(stack, namespace, bucket, sample=DIALOGUE)
    dialogue["spec"]["video"]["fps"] = 10  # what is checked here is the way through the cluster, not the motion
    # The sample's commented music bed, as an object in the broadcast's own bucket.
    bed = subprocess.run(
        [FFMPEG, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=131:duration=8", "-f", "flac", "-"],
        capture_output=True,
        check=True,
    ).stdout
    client.put_object(bucket, "assets/evening-theme.flac", io.BytesIO(bed), len(bed))
    dialogue["spec"]["audio"]["music"] = {"object": "assets/evening-theme.flac", "credit": "Evening Theme (CC0)"}
    stack.cluster.apply(dialogue)
    wait_for(lambda: stack.cluster.kubectl("get", "cronjob", NAME, "-n", namespace, check=False).returncode == 0,
             "the controller pod to create the CronJob" + _controller_log(stack.cluster), 60)  # fmt: skip

    last = _run_now(stack, namespace, NAME)

    assert last["phase"] == "Succeeded", json.dumps(last, ensure_ascii=False) + _controller_log(stack.cluster)
    assert last["engineDevice"] and last["videoUrl"].startswith(f"http://{stack.minio.endpoint}/{bucket}/")
    prefix = f"broadcasts/{NAME}/{last['runId']}/"
    manifest = check_published(client, bucket, prefix)
    # The dialogue sample: two presenters on screen in their own voices, the sound at the podcast loudness.
    assert [m["name"] for m in manifest["cast"]] == ["四国めたん", "ずんだもん"]
    assert abs(manifest["loudness"]["integratedLufs"] + 16) <= 1 and manifest["loudness"]["music"], manifest["loudness"]
    assert manifest["music"] == {"credit": "Evening Theme (CC0)"}
    assert {o["name"] for o in manifest["objects"]} >= {"video.mp4", "narration.m4a", "thumbnail.jpg", "subtitles.vtt"}
    # What the run held and cost, in the manifest (the job's own count) and the status (the whole Job's).
    held = manifest["gpuTime"]
    assert (held["resource"], held["gpus"], held["cost"]["currency"]) == ("nvidia.com/gpu", 1, "EUR")
    assert 0 < held["gpuSeconds"] <= last["gpuSeconds"], (held, last)
    assert last["cost"]["onDemand"] == round(last["gpuSeconds"] / 3600 * 2.5, 4)
    # The broadcast's page, presigned (no publicBaseUrl), lists the run and is linked from the status.
    assert last["pageUrl"].startswith(f"http://{stack.minio.endpoint}/{bucket}/broadcasts/{NAME}/index.html?")
    page = client.get_object(bucket, f"broadcasts/{NAME}/index.html").read().decode()
    assert f'data-run="{last["runId"]}"' in page and 'id="expiry"' in page
    pod = stack.cluster.get("pods", "-n", namespace, "-l", f"job-name={last['job']}")["items"][0]
    assert pod["spec"]["nodeName"] == stack.node.name, "the real kubelet ran it"
    assert pod["metadata"]["labels"]["team"] == "newsroom", "job.podLabels reached the run's pod"
    engine = next(s for s in pod["status"]["initContainerStatuses"] if s["name"] == "voicevox")
    assert engine["restartCount"] == 0 and pod["spec"]["initContainers"][0]["restartPolicy"] == "Always"
    events = _events(stack.cluster, namespace, NAME)
    assert "RunSucceeded" in events and "RunStarted" in events, events
    posts = wait_for(lambda: [r for r in stack.webhook.requests if r.path == "/hook"], "the webhook", 30)
    assert NAME in posts[0].body.decode()
    assert stack.minio.secret_key not in json.dumps(last) + str(events) + posts[0].body.decode()


def test_helm_test_proves_the_installation_works(stack: Stack) -> None:
    started = time.monotonic()
    done = _helm(stack.cluster, "test", "anchor", "-n", SYSTEM, "--logs", "--timeout", "120s")
    TIMINGS.append(f"helm test in {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok      the controller answers (service anchor-system/anchor, /healthz)" in done.stdout
    assert "ok      RBAC lets the controller act in all namespaces" in done.stdout
    assert "ok      Kueue's kueue.x-k8s.io/v1beta2 Workloads are served" in done.stdout  # the stack has kueue.enabled
    assert "4 of 4 checks passed" in done.stdout
    assert stack.cluster.kubectl("get", "role", "anchor-test", "-n", SYSTEM, check=False).returncode != 0, (
        "the proxy permission exists only while the test runs"
    )


def test_the_dev_presets_s3_store_runs_restricted_and_a_broadcast_publishes_into_it(
    stack: Stack, namespace: str
) -> None:
    """s3store (presets/dev.yaml): SeaweedFS in the release's restricted namespace, its keys generated into a
    Secret and enforced, its bucket made on start; the sample publishes into it. No cluster DNS or kube-proxy here,
    so the broadcast names the store's pod address where a cluster would use anchor-s3.anchor-system.svc:8333."""
    image = seaweedfs_image(images().base)
    stack.node.load_images([image])
    started = time.monotonic()
    upgraded = _helm(stack.cluster, "upgrade", "anchor", str(REPO / "charts" / "anchor"), "-n", SYSTEM,
                     "--reuse-values", "--set", "s3store.enabled=true", "--set", f"s3store.image={image}",
                     "--wait", "--timeout", "180s")  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stderr
    TIMINGS.append(f"s3store (SeaweedFS weed mini) Ready in {time.monotonic() - started:.1f} s")
    try:
        (pod,) = stack.cluster.get("pods", "-n", SYSTEM, "-l", "app.kubernetes.io/component=s3store")["items"]
        endpoint = f"{pod['status']['podIP']}:8333"
        secret = stack.cluster.get("secret", "anchor-s3-credentials", "-n", SYSTEM)["data"]
        keys = {name: base64.b64decode(value).decode() for name, value in secret.items()}
        client = Minio(endpoint, access_key=keys["accessKeyId"], secret_key=keys["secretAccessKey"], secure=False)
        assert client.bucket_exists("news"), "the bucket s3store.buckets names"
        stranger = Minio(endpoint, access_key=keys["accessKeyId"], secret_key="not-the-key", secure=False)
        with pytest.raises(S3Error):
            list(stranger.list_objects("news"))

        document = _sample(stack, namespace, "news")
        document["spec"]["output"]["s3"]["endpoint"] = endpoint
        document["spec"]["script"]["stories"] = 1
        document["spec"]["video"] |= {"fps": 10, "showCast": False}  # the store is what is checked here
        stack.cluster.kubectl("create", "secret", "generic", "anchor-s3", "-n", namespace,
                              "--from-literal", f"accessKeyId={keys['accessKeyId']}",
                              "--from-literal", f"secretAccessKey={keys['secretAccessKey']}")  # fmt: skip
        stack.cluster.kubectl("create", "secret", "generic", "anchor-webhook", "-n", namespace,
                              "--from-literal", f"url={stack.webhook.url}/hook")  # fmt: skip
        stack.cluster.apply(document)
        last = _run_now(stack, namespace, "daily-ja")
        assert last["phase"] == "Succeeded", json.dumps(last, ensure_ascii=False) + _controller_log(stack.cluster)
        manifest = check_published(client, "news", f"broadcasts/daily-ja/{last['runId']}/")
        assert "video.mp4" in {o["name"] for o in manifest["objects"]}
        assert keys["secretAccessKey"] not in json.dumps(last)
    finally:
        done = _helm(stack.cluster, "upgrade", "anchor", str(REPO / "charts" / "anchor"), "-n", SYSTEM,
                     "--reuse-values", "--set", "s3store.enabled=false", "--wait", "--timeout", "120s")  # fmt: skip
        assert done.returncode == 0, done.stderr


def _apply(stack: Stack, namespace: str, document: dict[str, Any]) -> None:
    _secrets(stack, namespace)
    stack.cluster.apply(document)


def _job(stack: Stack, namespace: str, name: str) -> dict[str, Any]:
    job: dict[str, Any] = stack.cluster.get("job", name, "-n", namespace)
    return job


def _job_logs(stack: Stack, namespace: str, pod: str) -> str:
    return stack.cluster.kubectl("logs", "-n", namespace, pod, "-c", "job", check=False).stdout


def test_six_broadcasts_share_one_gpu_through_kueue_and_preempted_or_evicted_runs_resume_and_publish_once(
    stack: Stack, namespace: str
) -> None:
    """Five routine broadcasts made at once on a ClusterQueue of one GPU, real Kueue admitting them one at a time on
    the real node; a breaking one of higher priority preempts the run that is rendering, which waits again and,
    when admitted, resumes from its checkpoint; rendering again, its pod is evicted as `kubectl drain` or a spot
    reclaim would, and a replacement pod resumes once more without using a retry. All six publish once, each having
    shown Queued while it waited."""
    cluster = stack.cluster
    gpu_quota(cluster, namespace, namespace, gpus=1, preemption=True)
    for level, value in (("routine", 100), ("breaking", 1000)):
        priority_class(cluster, f"{namespace}-{level}", value)
    client, bucket = stack.bucket()

    def broadcast(name: str, level: str) -> dict[str, Any]:
        document = _sample(stack, namespace, bucket)
        document["metadata"]["name"] = name
        spec = document["spec"]
        del spec["schedule"]  # no schedule: a one-off run at once, as six broadcasts of the same minute would be
        spec["script"]["stories"] = 1
        spec["video"] |= {"fps": 10, "showCast": False, "subtitles": False}  # the queue is checked, not the picture
        spec["scheduling"] |= {"queueName": namespace, "workloadPriorityClassName": f"{namespace}-{level}"}
        return document

    routine = [f"region-{i}" for i in range(1, 6)]
    _secrets(stack, namespace)
    long = broadcast(routine[0], "routine")  # the one to preempt: a render long enough to be interrupted
    long["spec"]["script"]["stories"] = 3
    long["spec"]["video"] |= {"resolution": "1920x1080", "fps": 30, "showCast": True, "subtitles": True}
    cluster.apply(long)
    wait_for(lambda: cluster.get("pods", "-n", namespace)["items"], "Kueue to admit the first run", 60)
    for name in routine[1:]:
        cluster.apply(broadcast(name, "routine"))
    most = 0

    def running() -> list[dict[str, Any]]:
        nonlocal most
        pods = [p for p in cluster.get("pods", "-n", namespace)["items"]
                if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]  # fmt: skip
        most = max(most, len(pods))
        return pods

    def rendering() -> dict[str, Any] | None:
        for pod in running():
            if '"event": "voice.done"' in _job_logs(stack, namespace, pod["metadata"]["name"]):
                return pod
        return None

    first = wait_for(rendering, "the first admitted run to start rendering" + _pods(stack, namespace), RUN_TIMEOUT, 0.5)
    preempted = first["metadata"]["labels"]["anchor.news/broadcast"]
    assert preempted == routine[0]
    cluster.apply(broadcast("breaking", "breaking"))

    def rendering_again() -> dict[str, Any] | None:
        pod = rendering()
        if pod is None or pod["metadata"]["labels"]["anchor.news/broadcast"] != preempted:
            return None
        return pod if pod["metadata"]["name"] != first["metadata"]["name"] else None

    second = wait_for(rendering_again, "the preempted run, admitted again, to render" + _pods(stack, namespace),
                      6 * RUN_TIMEOUT, 0.5)  # fmt: skip
    cluster.evict(namespace, second["metadata"]["name"])  # what `kubectl drain` and a spot reclaim's shutdown do

    def finished() -> list[dict[str, Any]] | None:
        running()
        runs = [(cluster.get("newsbroadcast", n, "-n", namespace).get("status") or {}).get("lastRun") or {}
                for n in [*routine, "breaking"]]  # fmt: skip
        return runs if all(r.get("phase") in ("Succeeded", "Failed") for r in runs) else None

    runs = wait_for(finished, "all six runs to finish" + _pods(stack, namespace), 6 * RUN_TIMEOUT, 2)
    TIMINGS.append(f"six broadcasts through Kueue on one GPU: {json.dumps([r.get('durationSeconds') for r in runs])}")
    assert [r["phase"] for r in runs] == ["Succeeded"] * 6, json.dumps(runs, ensure_ascii=False)
    assert most == 1, f"{most} runs held the one GPU at once"
    for name, run in zip([*routine, "breaking"], runs, strict=True):
        status = cluster.get("newsbroadcast", name, "-n", namespace)["status"]
        assert [r["job"] for r in status["recentRuns"]] == [run["job"]], f"{name} recorded once"
        keys = [o.object_name for o in client.list_objects(bucket, prefix=f"broadcasts/{name}/", recursive=True)]
        assert {str(k).split("/")[2] for k in keys if str(k).count("/") >= 3} == {run["runId"], ".anchor"}, name
        check_published(client, bucket, f"broadcasts/{name}/{run['runId']}/")
    events = {name: _events(cluster, namespace, name) for name in [*routine, "breaking"]}
    waited = [name for name in routine if name != preempted]
    assert all("Queued" in events[name] and "Admitted" in events[name] for name in waited), events
    assert "Preempted" in events[preempted], events[preempted]
    replacement = [p["metadata"]["name"] for p in cluster.get("pods", "-n", namespace)["items"]
                   if p["metadata"]["labels"].get("anchor.news/broadcast") == preempted]  # fmt: skip
    assert {first["metadata"]["name"], second["metadata"]["name"]}.isdisjoint(replacement) and len(replacement) == 1
    assert '"event": "run.resume"' in _job_logs(stack, namespace, replacement[0]), "it resumed from its checkpoint"
    job = _job(stack, namespace, runs[0]["job"])
    assert job["status"].get("succeeded") == 1 and not job["status"].get("failed"), "neither used up a retry"
    manifest = check_published(client, bucket, f"broadcasts/{preempted}/{runs[0]['runId']}/")
    assert manifest["audioCache"]["misses"] == 0, "the last pod spoke nothing anew: all from the audio cache"


def test_an_engine_that_keeps_crashing_is_what_the_status_says_holds_the_run(stack: Stack, namespace: str) -> None:
    """What was seen on a real node before: an engine sidecar in Init:CrashLoopBackOff for minutes left activeRun
    Pending with no reason. Now the status says the engine is crash-looping, with its exit code and last words, and a
    Warning Event says so."""
    cluster = stack.cluster
    _, bucket = stack.bucket()
    _apply(stack, namespace, _sample(stack, namespace, bucket))  # scheduled at 07:00: a CronJob and no run yet
    cronjob = wait_for(lambda: cluster.get("cronjobs", "-n", namespace)["items"], "the CronJob")[0]
    job = manifests.job_from_cronjob(cronjob, "crash")  # a run of it whose engine fails as a broken image would
    (engine,) = job["spec"]["template"]["spec"]["initContainers"]
    engine |= {"command": ["sh", "-c", "echo 'no voice models under /opt' > /dev/termination-log; exit 3"], "args": []}
    cluster.apply(job)

    def held() -> dict[str, Any] | None:
        run = (cluster.get("newsbroadcast", "daily-ja", "-n", namespace).get("status") or {}).get("activeRun") or {}
        return run if run.get("reason") == "CrashLoopBackOff" else None

    run = wait_for(held, "activeRun to say the engine is crash-looping" + _pods(stack, namespace), 120, 1)
    assert (run["job"], run["phase"]) == (job["metadata"]["name"], "Pending")
    assert run["message"].startswith("the engine (voicevox) is waiting: CrashLoopBackOff"), run
    assert "its last run ended with exit code 3 (Error): no voice models under /opt" in run["message"], run
    warnings = wait_for(lambda: _events(cluster, namespace, "daily-ja").get("CrashLoopBackOff"), "the Warning Event")
    assert "is held up" in warnings and "exit code 3" in warnings


@pytest.mark.parametrize(
    ("fault", "reason", "words"),
    [
        ("unknown-style", "InvalidConfiguration", "999999"),
        ("missing-bucket", "InvalidConfiguration", "no-such-bucket"),
        ("feed-times-out", "TransientFailure", "took longer than 15 s"),
    ],
)
def test_a_fault_ends_the_run_with_what_the_user_must_know(
    stack: Stack, namespace: str, fault: str, reason: str, words: str
) -> None:
    _, bucket = stack.bucket()
    document = _sample(stack, namespace, bucket, feed="timeout.xml" if fault == "feed-times-out" else "news.xml")
    spec = document["spec"]
    spec["run"]["backoffLimit"] = 0  # a transient failure would be retried twice in the sample; once shows it
    if fault == "unknown-style":
        spec["voice"]["styleId"] = 999999
    if fault == "missing-bucket":
        spec["output"]["s3"]["bucket"] = "no-such-bucket"
    _apply(stack, namespace, document)

    last = _run_now(stack, namespace, "daily-ja")

    assert last["phase"] == "Failed", json.dumps(last, ensure_ascii=False)
    assert last["reason"] == reason and words in last["message"], json.dumps(last, ensure_ascii=False)
    pods = stack.cluster.get("pods", "-n", namespace, "-l", f"job-name={last['job']}")["items"]
    assert len(pods) == 1, "bad configuration is never retried; backoffLimit 0 allows no retry either"
    conditions = {c["type"]: c for c in _job(stack, namespace, last["job"])["status"].get("conditions", [])}
    assert conditions["Failed"]["status"] == "True"
    if reason == "InvalidConfiguration":  # the Job's podFailurePolicy failed it at once on exit code 2
        assert conditions["Failed"]["reason"] == "PodFailurePolicy", conditions["Failed"]
    events = _events(stack.cluster, namespace, "daily-ja")
    assert reason in events and words in events[reason], events
    posts = wait_for(lambda: [r for r in stack.webhook.requests if namespace in r.body.decode()], "the webhook", 30)
    assert words in posts[0].body.decode()
