"""Weights resolution (``featherface._weights.files``) against a real ``huggingface_hub`` client, without the internet.

A small Hub stand-in (:class:`FakeHub`, stdlib ``http.server`` in a thread, bound to 127.0.0.1 on a
free port) answers ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}`` the way
``huggingface_hub.hf_hub_download`` (2.x) needs, and records every request it receives, so a test can
assert that a load made no request at all. Nothing ever talks to another address.

Hub scenarios run in a **subprocess** each (``SCENARIO_SCRIPT`` below), with the environment a user
would set: ``HF_ENDPOINT`` (read once, when ``huggingface_hub.constants`` is imported, and also baked
into module-level tables such as the set of trusted Hub origins), ``HF_HOME`` in ``tmp_path``,
``HF_HUB_OFFLINE`` and ``HF_HUB_DISABLE_TELEMETRY``. Patching those constants in-process would test a
configuration no user can produce and leak state between tests; a subprocess costs ~2-3 s (importing
torch), so several related loads are batched as *steps* of one subprocess: the script registers the
test models (``register_model``), then each step runs ``load_model``/``download_weights`` and reports,
as JSON, the weights source, a digest of the loaded tensors, the exception and the ``featherface`` log
records of that step. The whole file takes ~25 s on 2 CPU cores.

Explicit ``weights=`` paths never touch the Hub client and are tested in-process.

One deliberate patch in the subprocess: when a scenario needs the Hub to be *down* (connection
refused), ``huggingface_hub`` retries the metadata request 5 times with exponential backoff
(1+2+4+8+8 = 23 s of ``time.sleep``) before giving up. The script replaces the ``time`` module seen by
``huggingface_hub.utils._http`` by one whose ``sleep`` returns at once (the retries themselves still
happen, and the sleeps are reported); everything else is the unmodified client.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from featherface import errors
from featherface._weights import files as wfiles
from featherface._weights import resolve as wresolve
from featherface._weights.registry import (
    ModelSpec,
    WeightsSpec,
    build_model,
    get_config,
    get_spec,
    register_model,
    unregister_model,
)

TEST_NAME = "ff_test_tiny"
REPO = "featherface-test/tiny"
REPO_TAMPERED = "featherface-test/tampered"
REPO_WRONG_CONFIG = "featherface-test/wrong-config"
REVISION = "3f1c0ffee0ddba11c0de5eed0123456789abcdef"  # the pinned commit (40 hex digits)
PACKAGED_WARNING = "using the packaged copy"


# --------------------------------------------------------------------------------------------------
# Fake Hub
# --------------------------------------------------------------------------------------------------
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<filename>.+)$")


class FakeHub:
    """Answers the two ``/resolve/`` requests of ``hf_hub_download`` for files published with :meth:`publish`.

    Headers ``huggingface_hub`` 2.x requires on the ``HEAD`` answer (``file_download.get_hf_file_metadata``):

    * ``X-Repo-Commit``: the commit the revision resolves to (without it: ``FileMetadataError``
      "does not seem to be served by a Hugging Face Hub endpoint");
    * ``ETag`` (or ``X-Linked-Etag``): names the blob in the cache (``blobs/<etag>``); without it
      ``FileMetadataError`` "does not have an ETag". The sha256 of the content is used, as the Hub does
      for LFS files;
    * ``Content-Length`` (or ``X-Linked-Size``): the expected size, checked after the ``GET``;
    * no ``X-Xet-Hash`` / ``Link: <...>; rel="xet-auth"``: with those (and ``hf_xet`` installed) the
      client would download through the Xet service instead of the plain ``GET``.

    The answer is a plain ``200`` (no redirect): the client then downloads from the very URL it asked
    (``Location`` absent => ``response.request.url``). Unknown files get a ``404`` with
    ``X-Error-Code: EntryNotFound``.
    """

    def __init__(self) -> None:
        self.files: dict[tuple[str, str, str], bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        hub_ = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802
                self._answer(send_body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(send_body=True)

            def _answer(self, send_body: bool) -> None:
                with hub_._lock:
                    hub_.requests.append((self.command, self.path))
                m = _RESOLVE.match(self.path.split("?", 1)[0])
                body = None if m is None else hub_.files.get((m["repo"], m["revision"], m["filename"]))
                if body is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("X-Error-Message", "Entry not found")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", m["revision"])
                self.send_header("ETag", '"' + hashlib.sha256(body).hexdigest() + '"')
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if send_body:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-hub", daemon=True)
        self._thread.start()
        self.running = True

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def publish(self, repo_id: str, revision: str, files: dict[str, bytes]) -> None:
        for name, data in files.items():
            self.files[(repo_id, revision, name)] = data

    def mark(self) -> int:
        """Position in the request log, to look at the requests made after it."""
        with self._lock:
            return len(self.requests)

    def requests_since(self, mark: int) -> list[tuple[str, str]]:
        with self._lock:
            return list(self.requests[mark:])

    def stop(self) -> None:
        if self.running:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(5)
            self.running = False


class Tripwire:
    """A stopped server's port: accepts and immediately drops connections, counting them.

    Nothing answers HTTP here (a client gets a protocol error, as from a dead server), but unlike a
    closed port it tells the test whether anything *tried* to reach the server.
    """

    def __init__(self, port: int) -> None:
        self.connections = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tripwire", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


def _closed_port() -> int:
    """A free 127.0.0.1 port with nothing listening (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------------
# Weights files
# --------------------------------------------------------------------------------------------------
def state_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over names and bytes of a state dict (same function as in the subprocess script)."""
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _tamper(data: bytes) -> bytes:
    """Change one byte in the tensor data: still a valid safetensors file, but another sha256."""
    header_len = int.from_bytes(data[:8], "little")
    pos = 8 + header_len + (len(data) - 8 - header_len) // 2
    out = bytearray(data)
    out[pos] ^= 0x5A
    return bytes(out)


class Artifacts:
    def __init__(self, root: Path) -> None:
        torch.manual_seed(1234)
        self.config = get_config("v2_ultra").replace(name=TEST_NAME)
        model = build_model(self.config)
        with torch.no_grad():  # make the weights distinguishable from any fresh initialisation
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.01)
        self.num_params = sum(p.numel() for p in model.parameters())
        self.good = root / "good"
        self.sha256 = wfiles.save_weights_folder(model, self.config, self.good)
        self.config_bytes = (self.good / wfiles.CONFIG_FILENAME).read_bytes()
        self.model_bytes = (self.good / wfiles.MODEL_FILENAME).read_bytes()
        self.digest = state_digest(model.state_dict())

        self.tampered_bytes = _tamper(self.model_bytes)
        assert hashlib.sha256(self.tampered_bytes).hexdigest() != self.sha256
        self.tampered_file = root / "tampered.safetensors"
        self.tampered_file.write_bytes(self.tampered_bytes)
        # loadable as such: only the hash check can catch it
        assert state_digest(wfiles.load_state_dict_file(self.tampered_file)) != self.digest

        self.wrong_config_bytes = self.config_bytes_for(TEST_NAME, width_delta=4)
        self._root = root

    def config_bytes_for(self, name: str, width_delta: int = 0) -> bytes:
        """``config.json`` of the test model registered under ``name`` (optionally with another width)."""
        config = self.config.replace(name=name, width=self.config.width + width_delta)
        return (json.dumps(config.to_dict(), indent=2) + "\n").encode()

    def folder(self, name: str, *, tampered: bool = False, width_delta: int = 0) -> Path:
        """A weights folder (e.g. a packaged copy) for the model registered under ``name``."""
        folder = self._root / f"{name}-{int(tampered)}-{width_delta}"
        if not folder.exists():
            folder.mkdir()
            (folder / wfiles.CONFIG_FILENAME).write_bytes(self.config_bytes_for(name, width_delta))
            (folder / wfiles.MODEL_FILENAME).write_bytes(self.tampered_bytes if tampered else self.model_bytes)
        return folder

    def model(self, name: str = TEST_NAME, repo_id: str = REPO, packaged: Path | None | str = "default") -> dict:
        """A model to register in the subprocess (see ``SCENARIO_SCRIPT``); by default with a valid packaged copy."""
        if packaged == "default":
            packaged = self.folder(name)
        return {
            "name": name, "repo_id": repo_id, "revision": REVISION, "sha256": self.sha256,
            "num_params": self.num_params, "packaged": None if packaged is None else str(packaged),
        }

    def spec(self, packaged: Path | None = None) -> ModelSpec:
        return ModelSpec(
            name=TEST_NAME, config=self.config, description="featherface hub test model",
            weights=WeightsSpec(repo_id=REPO, revision=REVISION, filename=wfiles.MODEL_FILENAME,
                                sha256=self.sha256, num_params=self.num_params, license="MIT",
                                packaged=None if packaged is None else str(packaged)),
        )


@pytest.fixture(scope="session")
def art(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    return Artifacts(tmp_path_factory.mktemp("weights"))


def _publish_all(server: FakeHub, art: Artifacts) -> None:
    server.publish(REPO, REVISION, {"config.json": art.config_bytes, "model.safetensors": art.model_bytes})
    server.publish(REPO_TAMPERED, REVISION, {"config.json": art.config_bytes_for("ff_test_tampered"),
                                             "model.safetensors": art.tampered_bytes})
    server.publish(REPO_WRONG_CONFIG, REVISION,
                   {"config.json": art.config_bytes_for("ff_test_wrong_config", width_delta=4),
                    "model.safetensors": art.model_bytes})


@pytest.fixture(scope="session")
def server(art: Artifacts) -> Any:
    s = FakeHub()
    _publish_all(s, art)
    yield s
    s.stop()


# --------------------------------------------------------------------------------------------------
# Subprocess runner
# --------------------------------------------------------------------------------------------------
SCENARIO_SCRIPT = r'''
import hashlib, json, logging, sys, time, types

plan = json.loads(open(sys.argv[1], encoding="utf-8").read())
sleeps = []
if plan["skip_backoff_sleep"]:
    from huggingface_hub.utils import _http
    _http.time = types.SimpleNamespace(sleep=sleeps.append, time=time.time, monotonic=time.monotonic)

import numpy as np
import featherface
from featherface._weights import hub
from featherface._weights.registry import ModelSpec, WeightsSpec
from featherface._weights.registry import get_config, register_model

for m in plan["models"]:
    config = get_config("v2_ultra").replace(name=m["name"])
    register_model(ModelSpec(
        name=m["name"], config=config, description="featherface hub test model",
        weights=WeightsSpec(repo_id=m["repo_id"], revision=m["revision"], filename="model.safetensors",
                            sha256=m["sha256"], num_params=m["num_params"], license="MIT",
                            packaged=m["packaged"]),
    ))

class Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []
    def emit(self, record):
        self.lines.append(f"{record.levelname}:{record.name}:{record.getMessage()}")

capture = Capture()
logging.getLogger("featherface").addHandler(capture)
logging.getLogger("featherface").setLevel(logging.INFO)

def digest(state):
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()

image = np.random.default_rng(0).integers(0, 256, size=(96, 128, 3), dtype=np.uint8)
results = []
for step in plan["steps"]:
    capture.lines.clear()
    out = {"ok": False}
    try:
        if step["op"] == "load":
            det = featherface.load_model(step["name"], device="cpu", **step.get("kwargs", {}))
            out.update(ok=True, source=det.weights_source, digest=digest(det.network.state_dict()))
            if step.get("detect"):
                faces = det.detect(image, score_threshold=0.05)
                out["faces"] = [[list(f.box), f.score, [list(p) for p in f.landmarks]] for f in faces]
        elif step["op"] == "download":
            res = hub.download_weights(step["names"])
            out.update(ok=True, files={n: str(r.model_file) for n, r in res.items()},
                       sources={n: r.source for n, r in res.items()})
        else:
            raise ValueError(step["op"])
    except Exception as exc:
        out.update(error_type=type(exc).__name__, error_classes=[c.__name__ for c in type(exc).__mro__],
                   error=str(exc))
    out["log"] = list(capture.lines)
    results.append(out)

with open(sys.argv[2], "w", encoding="utf-8") as f:
    json.dump({"steps": results, "backoff_sleeps": sleeps}, f)
'''


def run_scenario(
    tmp_path: Path,
    endpoint: str,
    models: list[dict],
    steps: list[dict],
    *,
    hf_home: Path,
    offline: bool = False,
    skip_backoff_sleep: bool = False,
    tag: str = "run",
) -> dict:
    """Run ``steps`` in a fresh interpreter with the Hub environment a user would set."""
    work = tmp_path / tag
    work.mkdir()
    plan = work / "plan.json"
    result = work / "result.json"
    script = work / "scenario.py"
    script.write_text(SCENARIO_SCRIPT, encoding="utf-8")
    plan.write_text(json.dumps({"models": models, "steps": steps, "skip_backoff_sleep": skip_backoff_sleep}))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGINGFACE_")) and "proxy" not in k.lower()}
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(hf_home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        NO_PROXY="127.0.0.1,localhost",
        OMP_NUM_THREADS="1",
    )
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run([sys.executable, str(script), str(plan), str(result)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and result.exists(), f"scenario crashed:\n{proc.stdout}\n{proc.stderr}"
    out = json.loads(result.read_text())
    out["stderr"] = proc.stderr
    return out


def _copy_hf_home(src: Path, dst: Path) -> Path:
    # the Hub cache is snapshots/<rev>/<file> -> relative symlinks into blobs/: copy the links as links
    shutil.copytree(src, dst, symlinks=True)
    return dst


def _load(name: str = TEST_NAME, detect: bool = False, **kwargs: Any) -> dict:
    return {"op": "load", "name": name, "detect": detect, "kwargs": kwargs}


def _assert_error(step: dict, cls: type[BaseException], *fragments: str) -> None:
    assert not step["ok"], f"expected {cls.__name__}, but the load succeeded: {step}"
    assert step["error_type"] == cls.__name__, step
    for frag in fragments:
        assert frag in step["error"], f"{frag!r} not in error message: {step['error']}"


def _packaged_warnings(step: dict) -> list[str]:
    return [line for line in step["log"] if line.startswith("WARNING:featherface._weights.resolve:") and PACKAGED_WARNING in line]


def _resolve_path(repo: str, filename: str) -> str:
    return f"/{repo}/resolve/{REVISION}/{filename}"


# --------------------------------------------------------------------------------------------------
# 1-2. First download, then the cache with the server stopped
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def first_download(art: Artifacts, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Scenario 1, on a server of its own (scenario 2 stops it). Yields (result, requests, server, hf_home)."""
    tmp = tmp_path_factory.mktemp("first_download")
    own = FakeHub()
    _publish_all(own, art)
    hf_home = tmp / "hf_home"
    res = run_scenario(tmp, own.endpoint, [art.model()], [_load(detect=True)], hf_home=hf_home)
    yield res, own.requests_since(0), own, hf_home
    own.stop()


def test_first_download_fetches_both_files_and_detects(first_download: Any, art: Artifacts) -> None:
    res, requests, _, hf_home = first_download
    step = res["steps"][0]
    assert step["ok"], step
    assert step["source"] == "hub"
    assert step["digest"] == art.digest  # exactly the published tensors were loaded
    assert _packaged_warnings(step) == []
    for filename in ("config.json", "model.safetensors"):
        path = _resolve_path(REPO, filename)
        assert ("HEAD", path) in requests and ("GET", path) in requests, requests
    assert all(path.startswith(f"/{REPO}/resolve/{REVISION}/") for _, path in requests), requests
    # the files now live in the Hub cache under HF_HOME, as huggingface_hub lays it out
    snapshot = hf_home / "hub" / "models--featherface-test--tiny" / "snapshots" / REVISION
    assert hashlib.sha256((snapshot / "model.safetensors").read_bytes()).hexdigest() == art.sha256
    assert (snapshot / "config.json").read_bytes() == art.config_bytes

    # detections on a synthetic image ran, and equal those of the same weights loaded in-process
    from featherface._api import load_model

    faces = step["faces"]
    assert faces, "score_threshold=0.05 on a 96x128 image should leave some candidates"
    image = np.random.default_rng(0).integers(0, 256, size=(96, 128, 3), dtype=np.uint8)
    local = load_model(None, weights=art.good, device="cpu").detect(image, score_threshold=0.05)
    assert len(local) == len(faces)
    for f, (box, score, landmarks) in zip(local, faces, strict=True):
        np.testing.assert_allclose(f.box, box, atol=1e-4)
        np.testing.assert_allclose(f.score, score, atol=1e-6)
        np.testing.assert_allclose(np.array(f.landmarks), np.array(landmarks), atol=1e-4)
        assert 0 <= box[0] <= box[2] <= 128 and 0 <= box[1] <= box[3] <= 96


def test_cached_load_with_server_stopped_makes_no_request(
    first_download: Any, art: Artifacts, tmp_path: Path
) -> None:
    _, _, own, first_home = first_download
    hf_home = _copy_hf_home(first_home, tmp_path / "hf_home")
    # a second copy of the cache whose blob was modified after the download (bit rot, tampering)
    rotten_cache = _copy_hf_home(first_home / "hub", tmp_path / "rotten_cache")
    blob = (rotten_cache / "models--featherface-test--tiny" / "snapshots" / REVISION / "model.safetensors").resolve()
    blob.write_bytes(art.tampered_bytes)

    own.stop()
    tripwire = Tripwire(own.port)  # the stopped server's port: counts any connection attempt
    try:
        res = run_scenario(tmp_path, own.endpoint, [art.model()],
                           [_load(), _load(cache_dir=str(rotten_cache))], hf_home=hf_home)
    finally:
        tripwire.close()
    cached, rotten = res["steps"]
    assert cached["ok"] and cached["source"] == "hub" and cached["digest"] == art.digest, cached
    assert _packaged_warnings(cached) == []
    # a corrupt cached file is an integrity error, never a reason to use the packaged copy
    _assert_error(rotten, errors.WeightsIntegrityError, "model.safetensors", art.sha256)
    assert _packaged_warnings(rotten) == []
    assert tripwire.connections == 0, "a pinned, cached revision must not contact the Hub"


# --------------------------------------------------------------------------------------------------
# 3. HF_HUB_OFFLINE=1
# --------------------------------------------------------------------------------------------------
def test_offline_mode_uses_warm_cache_and_falls_back_when_cold(
    first_download: Any, server: FakeHub, art: Artifacts, tmp_path: Path
) -> None:
    hf_home = _copy_hf_home(first_download[3], tmp_path / "hf_home")
    cold = tmp_path / "cold_cache"
    mark = server.mark()
    res = run_scenario(tmp_path, server.endpoint, [art.model()], [_load(), _load(cache_dir=str(cold))],
                       hf_home=hf_home, offline=True)
    warm_step, cold_step = res["steps"]
    assert warm_step["ok"] and warm_step["source"] == "hub" and warm_step["digest"] == art.digest, warm_step
    assert _packaged_warnings(warm_step) == []
    assert cold_step["ok"] and cold_step["source"] == "packaged", cold_step
    assert cold_step["digest"] == art.digest
    (warning,) = _packaged_warnings(cold_step)
    assert f"could not get {TEST_NAME} from the Hugging Face Hub" in warning
    assert server.requests_since(mark) == [], "HF_HUB_OFFLINE=1 must not make any request"


# --------------------------------------------------------------------------------------------------
# 4-5. Bad files on the server: errors, never the packaged copy
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bad_server_run(server: FakeHub, art: Artifacts, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("bad_server")
    models = [art.model("ff_test_tampered", REPO_TAMPERED), art.model("ff_test_wrong_config", REPO_WRONG_CONFIG)]
    mark = server.mark()
    res = run_scenario(tmp, server.endpoint, models, [_load("ff_test_tampered"), _load("ff_test_wrong_config")],
                       hf_home=tmp / "hf_home")
    return res, server.requests_since(mark)


def test_tampered_file_on_server_raises_integrity_error_without_fallback(bad_server_run: Any, art: Artifacts) -> None:
    res, requests = bad_server_run
    step = res["steps"][0]
    _assert_error(step, errors.WeightsIntegrityError, "model.safetensors", art.sha256,
                  hashlib.sha256(art.tampered_bytes).hexdigest())
    assert "WeightsError" in step["error_classes"]
    assert _packaged_warnings(step) == [], "a hash mismatch must never fall back to the packaged copy"
    assert ("GET", _resolve_path(REPO_TAMPERED, "model.safetensors")) in requests


def test_wrong_config_on_server_raises_config_mismatch(bad_server_run: Any) -> None:
    res, requests = bad_server_run
    step = res["steps"][1]
    _assert_error(step, errors.ConfigMismatchError, "config.json", "width")
    assert _packaged_warnings(step) == []
    assert ("GET", _resolve_path(REPO_WRONG_CONFIG, "config.json")) in requests


# --------------------------------------------------------------------------------------------------
# 6. Hub down (connection refused) and cold cache
# --------------------------------------------------------------------------------------------------
def test_hub_down_falls_back_to_verified_packaged_copy(art: Artifacts, tmp_path: Path) -> None:
    models = [
        art.model("ff_test_down_ok"),
        art.model("ff_test_down_tampered", packaged=art.folder("ff_test_down_tampered", tampered=True)),
        art.model("ff_test_down_wrong_config", packaged=art.folder("ff_test_down_wrong_config", width_delta=4)),
        art.model("ff_test_down_none", packaged=None),
        art.model("ff_test_down_missing", packaged=tmp_path / "no_such_folder"),
    ]
    res = run_scenario(tmp_path, f"http://127.0.0.1:{_closed_port()}", models,
                       [_load(m["name"]) for m in models], hf_home=tmp_path / "hf_home",
                       skip_backoff_sleep=True)
    ok, tampered, wrong_config, none, missing = res["steps"]

    assert ok["ok"] and ok["source"] == "packaged" and ok["digest"] == art.digest, ok
    (warning,) = _packaged_warnings(ok)
    assert "could not get ff_test_down_ok from the Hugging Face Hub" in warning

    _assert_error(tampered, errors.WeightsIntegrityError, str(Path(models[1]["packaged"]) / "model.safetensors"),
                  art.sha256)
    _assert_error(wrong_config, errors.ConfigMismatchError, str(Path(models[2]["packaged"]) / "config.json"), "width")

    _assert_error(none, errors.WeightsError, "has no packaged weights", "the Hub was unreachable")
    _assert_error(missing, errors.WeightsError, "missing from", "the Hub was unreachable")
    for step in (none, missing):  # the Hub's own reason is kept too
        assert "LocalEntryNotFoundError" in step["error"] or "connection" in step["error"].lower(), step


# --------------------------------------------------------------------------------------------------
# 7. local_files_only=True
# --------------------------------------------------------------------------------------------------
def test_local_files_only_with_cold_cache_uses_packaged_copy_without_request(
    server: FakeHub, art: Artifacts, tmp_path: Path
) -> None:
    mark = server.mark()
    res = run_scenario(tmp_path, server.endpoint, [art.model()], [_load(local_files_only=True)],
                       hf_home=tmp_path / "hf_home")
    (step,) = res["steps"]
    assert step["ok"] and step["source"] == "packaged" and step["digest"] == art.digest, step
    assert len(_packaged_warnings(step)) == 1
    assert server.requests_since(mark) == [], "local_files_only=True must not make any request"


# --------------------------------------------------------------------------------------------------
# 9. download_weights, then an offline load
# --------------------------------------------------------------------------------------------------
def test_download_weights_then_offline_load(server: FakeHub, art: Artifacts, tmp_path: Path) -> None:
    hf_home = tmp_path / "hf_home"
    mark = server.mark()
    res = run_scenario(tmp_path, server.endpoint, [art.model()],
                       [{"op": "download", "names": [TEST_NAME]}], hf_home=hf_home, tag="download")
    (step,) = res["steps"]
    assert step["ok"], step
    assert step["sources"] == {TEST_NAME: "hub"}
    assert Path(step["files"][TEST_NAME]).is_relative_to(hf_home / "hub")
    assert ("GET", _resolve_path(REPO, "model.safetensors")) in server.requests_since(mark)

    mark = server.mark()
    res = run_scenario(tmp_path, server.endpoint, [art.model()], [_load()], hf_home=hf_home, offline=True,
                       tag="offline")
    (step,) = res["steps"]
    assert step["ok"] and step["source"] == "hub" and step["digest"] == art.digest, step
    assert _packaged_warnings(step) == []
    assert server.requests_since(mark) == []


# --------------------------------------------------------------------------------------------------
# 8. Explicit weights= (in-process: the Hub client is never involved)
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def registered(art: Artifacts) -> Any:
    register_model(art.spec(packaged=art.folder(TEST_NAME)), overwrite=True)
    yield get_spec(TEST_NAME)
    unregister_model(TEST_NAME)


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any use of the Hub path fails the test."""
    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the Hub must not be consulted when weights= is given")

    monkeypatch.setattr(wresolve, "resolve_hub", boom)
    monkeypatch.setattr(wresolve, "_resolve_packaged", boom)


@pytest.fixture
def detector_inits(monkeypatch: pytest.MonkeyPatch) -> list:
    """Counts FaceDetector constructions (to check that a failed load creates none)."""
    from featherface._api import FaceDetector

    calls: list = []
    original = FaceDetector.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(FaceDetector, "__init__", counting)
    return calls


def test_explicit_folder_and_bare_file_load(registered: ModelSpec, art: Artifacts, no_hub: None) -> None:
    from featherface._api import load_model

    for weights in (art.good, art.good / "model.safetensors", str(art.good)):
        det = load_model(TEST_NAME, weights=weights, device="cpu")
        assert det.weights_source == "explicit"
        assert det.config == art.config
        assert state_digest(det.network.state_dict()) == art.digest


def test_explicit_folder_with_other_config_is_rejected(
    registered: ModelSpec, art: Artifacts, tmp_path: Path, no_hub: None, detector_inits: list
) -> None:
    from featherface._api import load_model

    folder = tmp_path / "other"
    shutil.copytree(art.good, folder)
    (folder / "config.json").write_bytes(art.wrong_config_bytes)
    with pytest.raises(errors.ConfigMismatchError, match="width") as info:
        load_model(TEST_NAME, weights=folder, device="cpu")
    assert str(folder / "config.json") in str(info.value)
    # a config for another registered name is a mismatch too, even with identical weights
    (folder / "config.json").write_text(json.dumps(dict(art.config.to_dict(), name="v2_ultra")))
    with pytest.raises(errors.ConfigMismatchError, match="name"):
        load_model(TEST_NAME, weights=folder, device="cpu")
    assert detector_inits == []


class _Boom:
    """Unpickling this creates a marker file: proves whether a pickle was ever deserialised."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("suffix", [".pth", ".bin", ".pt"])
def test_pickled_checkpoints_are_never_loaded(
    registered: ModelSpec, tmp_path: Path, suffix: str, no_hub: None, detector_inits: list
) -> None:
    from featherface._api import load_model

    marker = tmp_path / "unpickled"
    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps(_Boom(marker)))
    with pytest.raises(errors.WeightsError, match=r"only \.safetensors"):
        load_model(TEST_NAME, weights=path, device="cpu")
    with pytest.raises(errors.WeightsError, match=r"only \.safetensors"):
        wresolve.resolve_weights(registered, weights=path)  # refused when resolving, before any reader runs
    with pytest.raises(errors.WeightsError, match=r"only \.safetensors"):
        wfiles.load_state_dict_file(path)  # and by the reader itself
    assert not marker.exists()
    assert detector_inits == []


def test_corrupt_safetensors_is_rejected_before_any_detector_exists(
    registered: ModelSpec, tmp_path: Path, no_hub: None, detector_inits: list
) -> None:
    from featherface._api import load_model

    for name, data in {
        "random.safetensors": np.random.default_rng(0).bytes(4096),
        "empty.safetensors": b"",
        "truncated.safetensors": (Path(registered.weights.packaged) / "model.safetensors").read_bytes()[:5000],
    }.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(errors.WeightsError, match="not a valid safetensors file") as info:
            load_model(TEST_NAME, weights=path, device="cpu")
        assert str(path) in str(info.value)
    assert detector_inits == []


def test_missing_or_misshapen_tensors_are_listed_and_nothing_is_loaded(
    registered: ModelSpec, art: Artifacts, tmp_path: Path, no_hub: None, detector_inits: list
) -> None:
    from safetensors.torch import save_file

    from featherface._api import load_model

    state = wfiles.load_state_dict_file(art.good / "model.safetensors")
    dropped = sorted(state)[3]
    missing = tmp_path / "missing.safetensors"
    save_file({k: v for k, v in state.items() if k != dropped}, str(missing))
    with pytest.raises(errors.WeightsError, match="1 missing") as info:
        load_model(TEST_NAME, weights=missing, device="cpu")
    assert dropped in str(info.value) and str(missing) in str(info.value)
    assert detector_inits == []

    # strict and all-or-nothing: a network keeps its weights when the file does not fit
    net = build_model(art.config)
    before = state_digest(net.state_dict())
    for bad in ({k: v for k, v in state.items() if k != dropped},
                dict(state, extra_tensor=torch.zeros(3)),
                {k: (v[:1] if v.ndim and v.shape[0] > 1 else v) for k, v in state.items()}):
        path = tmp_path / "bad.safetensors"
        save_file(bad, str(path))
        with pytest.raises(errors.WeightsError, match="do not fit the network"):
            wfiles.load_weights_into(net, path)
        assert state_digest(net.state_dict()) == before


def test_folder_without_name_uses_its_own_config(tmp_path: Path, no_hub: None) -> None:
    from featherface._api import load_model

    config = get_config("v2_ultra").replace(name="my_unregistered_variant", width=24)
    torch.manual_seed(7)
    model = build_model(config)
    wfiles.save_weights_folder(model, config, tmp_path / "mine")
    det = load_model(None, weights=tmp_path / "mine", device="cpu")
    assert det.config == config and det.name == "my_unregistered_variant"
    assert det.weights_source == "explicit"
    assert state_digest(det.network.state_dict()) == state_digest(model.state_dict())
    # a bare file has no config: it needs a model name
    with pytest.raises(errors.WeightsError, match="needs a model name"):
        load_model(None, weights=tmp_path / "mine" / "model.safetensors", device="cpu")


def test_explicit_sha256_is_checked_only_when_given(registered: ModelSpec, art: Artifacts, no_hub: None) -> None:
    file = art.good / "model.safetensors"
    assert wresolve.resolve_weights(registered, weights=file).sha256 == art.sha256
    assert wresolve.resolve_weights(registered, weights=file, sha256=art.sha256.upper()).source == "explicit"
    with pytest.raises(errors.WeightsIntegrityError, match=str(file)):
        wresolve.resolve_weights(registered, weights=file, sha256="0" * 64)
