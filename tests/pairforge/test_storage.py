"""Remote storage (pairforge/storage.py) against a real S3 server: moto in server mode on 127.0.0.1.

The endpoint and credentials reach pairforge, its Dask workers and s3fs only through the
environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...), as a user sets them for MinIO. The
server checks credentials: the fixture creates an IAM user with the first unauthenticated
requests moto allows (INITIAL_NO_AUTH_ACTION_COUNT), then everything signs with its key.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pairforge import storage
from pairforge.paths import OutputError, refuse_nested

PAIRFORGE = str(Path(sys.executable).with_name("pairforge"))
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


# --- no server needed -----------------------------------------------------------------------------


def test_safe_url_drops_user_info_query_and_fragment() -> None:
    assert storage.safe_url("s3://KEY:SECRET@bucket/photos?versionId=3&sig=x#frag") == "s3://bucket/photos"
    assert storage.safe_url("/data/photos") == "/data/photos"
    assert storage.is_url("s3://b/x") and storage.is_url("memory://x") and not storage.is_url("photos/a://b")


def test_refuse_nested_compares_urls() -> None:
    with pytest.raises(OutputError, match="is inside the photo folder"):
        refuse_nested("s3://b/photos", "s3://b/photos/shards", "photo folder", "shard folder")
    with pytest.raises(OutputError, match="is the photo folder"):
        refuse_nested("s3://b/photos/", "s3://u:p@b/photos?x=1", "photo folder", "shard folder")
    with pytest.raises(OutputError, match="is inside the shard folder"):
        refuse_nested("s3://b/data/photos", "s3://b/data", "photo folder", "shard folder")
    refuse_nested("s3://b/photos", "s3://b/photos-shards", "photo folder", "shard folder")  # a sibling


def test_unknown_protocol_and_missing_package_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(storage.StorageError, match="unknown storage protocol 'foo'"):
        storage.filesystem("foo://x/y")
    pytest.importorskip("fsspec")
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        with pytest.raises(storage.StorageError, match=r"pip install pairforge\[gcs\]"):
            storage.filesystem("gs://bucket/photos")
    result = subprocess.run([PAIRFORGE, "make-gray", "foo://bucket/photos", "--shards", str(tmp_path / "s")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["Error: foo://bucket/photos: unknown storage protocol 'foo'; use a "
                                                  "local path or a URL fsspec knows (abfs://, abfss://, adl://, az://, "
                                                  "file://, gcs://, gs://, memory://, s3://, s3a://, ...)"]


# --- the S3 server --------------------------------------------------------------------------------


class Proxy:
    """A TCP relay in front of the server: ``stop()`` makes the server unreachable (data kept), ``start()`` back.

    With ``put_limit`` it lets that many HTTP PUT requests through and then stops by itself:
    the server "goes away" at a known point of a build.
    """

    def __init__(self, upstream: int) -> None:
        self.upstream, self.port = upstream, free_port()
        self.listener: socket.socket | None = None
        self.put_limit: int | None = None
        self.puts = 0
        self.method = b"PUT "
        self.lock = threading.Lock()
        self.connections: list[socket.socket] = []

    def start(self, put_limit: int | None = None, method: bytes = b"PUT ") -> None:
        self.put_limit, self.puts, self.method = put_limit, 0, method
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self.lock:
            if self.listener is not None:
                try:
                    self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread, frees the port
                except OSError:
                    pass
                self.listener.close()
                self.listener = None
            for connection in self.connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                connection.close()
            self.connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            with self.lock:
                self.connections += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(1 << 16):
                if from_client and data.startswith(self.method):
                    with self.lock:
                        self.puts += 1
                        over = self.put_limit is not None and self.puts > self.put_limit
                    if over:
                        self.stop()
                        return
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                try:
                    end.close()
                except OSError:
                    pass


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A moto S3 server behind a :class:`Proxy`; yields the environment a user would set (and the proxy)."""
    pytest.importorskip("s3fs")
    pytest.importorskip("moto")
    boto3 = pytest.importorskip("boto3")
    port = free_port()
    server_env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")  # noqa: SIM115
    server = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                              stderr=subprocess.STDOUT, env=server_env)
    try:
        wait_for_port(port)
        iam = boto3.client("iam", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="pairforge")
        iam.put_user_policy(UserName="pairforge", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="pairforge")["AccessKey"]
        proxy = Proxy(port)
        proxy.start()
        env = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}",
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_MAX_ATTEMPTS": "2",  # a stopped server fails fast (botocore's standard setting)
        }
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                              aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
        client.create_bucket(Bucket="data")
        yield {"env": env, "proxy": proxy, "client": client}  # type: ignore[misc]
        proxy.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def photo_bytes() -> dict[str, bytes]:
    """Small real photos (skimage), one corrupt JPEG and one text file: the input of every build here."""
    from skimage import data

    files: dict[str, bytes] = {}
    for name, image in (("astronaut", data.astronaut()), ("coffee", data.coffee()), ("chelsea", data.chelsea()),
                        ("rocket", data.rocket())):
        for index, (top, left) in enumerate(((0, 0), (40, 60), (100, 20))):
            crop = np.ascontiguousarray(image[top:top + 96, left:left + 128])
            import io

            stream = io.BytesIO()
            Image.fromarray(crop).save(stream, "PNG" if index % 2 else "JPEG", quality=92)
            files[f"{name}-{index}.{'png' if index % 2 else 'jpg'}"] = stream.getvalue()
    files["broken.jpg"] = b"\xff\xd8\xff\xe0 not really a jpeg"
    files["notes.txt"] = b"not an image"
    return files


def upload(client: object, prefix: str, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        client.put_object(Bucket="data", Key=f"{prefix}/{name}", Body=data)  # type: ignore[attr-defined]


def objects(client: object, prefix: str) -> dict[str, bytes]:
    listing = client.list_objects_v2(Bucket="data", Prefix=prefix + "/")  # type: ignore[attr-defined]
    return {item["Key"][len(prefix) + 1:]: client.get_object(Bucket="data", Key=item["Key"])["Body"].read()  # type: ignore[attr-defined]
            for item in listing.get("Contents", [])}


def run(args: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([PAIRFORGE, *args], capture_output=True, text=True, env={**os.environ, **env}, cwd=cwd,
                          timeout=timeout)


@pytest.fixture(scope="module")
def local_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same photos built on local disk: the shards every bucket build must equal byte for byte."""
    root = tmp_path_factory.mktemp("local")
    photos = root / "photos"
    photos.mkdir()
    for name, data in photo_bytes().items():
        (photos / name).write_bytes(data)
    result = run(["make-edges", str(photos), "--detector", "canny", "--size", "64", "--shards", str(root / "shards"),
                  "--samples-per-shard", "2", "-j", "1"], {})
    assert result.returncode == 0, result.stderr
    return root / "shards"


def tars(files: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items() if name.endswith(".tar")}


def local_files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}


def comparable(dataset: dict) -> dict:
    """dataset.json without what names the input (its root and the command line, also in the stage's provenance)."""
    source = {key: value for key, value in dataset["source"].items() if key not in ("root", "command")}
    stage = source.get("stage", {})
    provenance = {key: value for key, value in stage.get("provenance", {}).items() if key != "command"}
    return {**dataset, "source": {**source, "stage": {**stage, "provenance": provenance}}}


@pytest.fixture(scope="module")
def cluster(s3: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``dask scheduler`` + two ``dask worker`` processes on 127.0.0.1, each in its own folder with its own
    temp dir: they share nothing with the client but the bucket (and the S3 environment)."""
    root = tmp_path_factory.mktemp("cluster")
    port = free_port()
    env = {**os.environ, **s3["env"]}
    processes = []
    logs = []
    try:
        log = open(root / "scheduler.log", "wb")  # noqa: SIM115
        logs.append(log)
        processes.append(subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                           "--no-dashboard"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT))
        wait_for_port(port)
        address = f"tcp://127.0.0.1:{port}"
        for index in range(2):
            folder = root / f"worker{index}"
            (folder / "tmp").mkdir(parents=True)
            log = open(folder / "worker.log", "wb")  # noqa: SIM115
            logs.append(log)
            processes.append(subprocess.Popen(
                [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                 "--local-directory", str(folder / "dask"), "--host", "127.0.0.1"],
                cwd=folder, env={**env, "TMPDIR": str(folder / "tmp")}, stdout=log, stderr=subprocess.STDOUT))
        from dask.distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()


def test_make_edges_from_bucket_to_bucket_on_a_cluster(s3: dict, cluster: str, local_build: Path,
                                                       tmp_path: Path) -> None:
    upload(s3["client"], "e2e/photos", photo_bytes())
    result = run(["make-edges", "s3://data/e2e/photos", "--detector", "canny", "--size", "64", "--shards",
                  "s3://data/e2e/shards", "--samples-per-shard", "2", "--scheduler", cluster], s3["env"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    remote = objects(s3["client"], "e2e/shards")
    local = local_files(local_build)
    assert tars(remote) == tars(local) and len(tars(remote)) >= 6
    dataset = json.loads(remote["dataset.json"])
    assert comparable(dataset) == comparable(json.loads(local["dataset.json"]))
    assert dataset["source"]["root"] == "s3://data/e2e/photos"
    rejects = [json.loads(line) for line in remote["rejects.jsonl"].decode().splitlines()]
    assert {(row["path"], row["reason"]) for row in rejects} == {
        ("s3://data/e2e/photos/broken.jpg", "corrupt image"), ("s3://data/e2e/photos/notes.txt",
                                                                "unsupported file type")}
    assert "DATA_CARD.md" in remote and not [name for name in remote if name.startswith(".")]
    assert not list(tmp_path.iterdir())  # the client wrote nothing locally
    # a rerun reuses every shard (stats read back from the bucket)
    again = run(["make-edges", "s3://data/e2e/photos", "--detector", "canny", "--size", "64", "--shards",
                 "s3://data/e2e/shards", "--samples-per-shard", "2", "--scheduler", cluster], s3["env"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"shards reused {len(tars(remote))}" in " ".join(again.stdout.split())


def test_shard_pair_folder_to_a_bucket_equals_local(s3: dict, tmp_path: Path, make_ab_folder) -> None:
    make_ab_folder(tmp_path / "pairs", 6)
    local = run(["shard", str(tmp_path / "pairs"), "-o", str(tmp_path / "shards"), "-j", "1"], {})
    assert local.returncode == 0, local.stderr
    result = run(["shard", str(tmp_path / "pairs"), "-o", "s3://data/shard-cmd/shards", "-j", "1"], s3["env"])
    assert result.returncode == 0, result.stderr
    remote = objects(s3["client"], "shard-cmd/shards")
    assert tars(remote) == tars(local_files(tmp_path / "shards")) and tars(remote)
    assert comparable(json.loads(remote["dataset.json"])) == comparable(
        json.loads((tmp_path / "shards" / "dataset.json").read_bytes()))


def test_server_stopped_mid_build_then_rerun_reuses_finished_shards(s3: dict, local_build: Path,
                                                                    tmp_path: Path) -> None:
    upload(s3["client"], "fault/photos", photo_bytes())
    args = ["make-edges", "s3://data/fault/photos", "--detector", "canny", "--size", "64", "--shards",
            "s3://data/fault/shards", "--samples-per-shard", "2", "-j", "1"]
    proxy = s3["proxy"]
    proxy.stop()
    proxy.start(put_limit=5)  # the write probe, then two shards (tar + stats each); the 6th PUT finds no server
    try:
        result = run(args, s3["env"], cwd=tmp_path)
    finally:
        proxy.stop()
        proxy.start()
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if "%|" not in line and line.strip()]  # no progress bar
    assert len(lines) == 1 and "Error: cannot reach the storage server" in lines[0], result.stderr
    assert "s3://data/fault/shards/" in lines[0] and "Traceback" not in result.stderr
    partial = objects(s3["client"], "fault/shards")
    assert "dataset.json" not in partial
    finished = {name for name in partial if name.endswith(".tar")}
    assert finished and all(name.endswith((".tar", ".stats.json")) for name in partial)
    for name in finished:  # nothing looks finished that is not: a tar's stats, when present, match it
        stats = partial.get(name[:-4] + ".stats.json")
        if stats is not None:
            assert json.loads(stats)["sha256"] == hashlib.sha256(partial[name]).hexdigest()
    complete = sum(1 for name in finished if name[:-4] + ".stats.json" in partial)
    assert complete >= 1
    again = run(args, s3["env"], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"shards reused {complete}" in " ".join(again.stdout.split())
    assert tars(objects(s3["client"], "fault/shards")) == tars(local_files(local_build))


def test_server_gone_while_workers_read_photos_stops_the_run(s3: dict, tmp_path: Path) -> None:
    """A photo that cannot be read because the server went away is not a reject: the run stops."""
    upload(s3["client"], "readfault/photos", photo_bytes())
    proxy = s3["proxy"]
    proxy.stop()
    proxy.start(put_limit=4, method=b"GET ")  # the listing, then the first photos; the rest find no server
    try:
        result = run(["make-gray", "s3://data/readfault/photos", "--shards", str(tmp_path / "shards"), "-j", "1"],
                     s3["env"], cwd=tmp_path)
    finally:
        proxy.stop()
        proxy.start()
    assert result.returncode == 1, result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert errors and "cannot reach the storage server while reading s3://data/readfault/photos/" in errors[0]
    assert not (tmp_path / "shards" / "dataset.json").exists()


def test_missing_bucket_is_one_line(s3: dict, tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(tmp_path / "photos" / "a.png")
    result = run(["make-gray", str(tmp_path / "photos"), "--shards", "s3://no-such-bucket/shards"], s3["env"])
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: bucket 'no-such-bucket' does not exist (while listing s3://no-such-bucket/shards); "
        "create it or fix the URL"]
    listed = run(["make-gray", "s3://no-such-bucket/photos", "--shards", str(tmp_path / "s")], s3["env"])
    assert listed.returncode == 1 and len(listed.stderr.strip().splitlines()) == 1
    assert "bucket 'no-such-bucket' does not exist" in listed.stderr


def test_wrong_credentials_are_one_line_without_the_secret(s3: dict, tmp_path: Path) -> None:
    secret = "wrong-secret-1234567890"
    env = {**s3["env"], "AWS_SECRET_ACCESS_KEY": secret}
    result = run(["make-gray", "s3://u:p@data/e2e/photos?token=abc", "--shards", str(tmp_path / "s")], env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "access denied while listing s3://data/e2e/photos" in lines[0], result.stderr
    for leaked in (secret, "token=abc", "u:p@"):
        assert leaked not in result.stderr + result.stdout


def test_no_credentials_at_all_say_where_they_are_read_from(s3: dict, tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=s3["env"]["AWS_ENDPOINT_URL"], AWS_DEFAULT_REGION="us-east-1",
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true")
    result = subprocess.run([PAIRFORGE, "inspect", "s3://data/e2e/shards"], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no credentials found while reading s3://data/e2e/shards" in lines[0], result.stderr
    assert "AWS_ACCESS_KEY_ID" in lines[0]


def test_output_inside_input_url_is_refused(s3: dict) -> None:
    result = run(["make-gray", "s3://data/e2e/photos", "--shards", "s3://data/e2e/photos/shards"], s3["env"])
    assert result.returncode == 1
    assert "is inside the photo folder s3://data/e2e/photos" in result.stderr


def test_pair_folder_on_a_url_is_refused_before_any_work(s3: dict) -> None:
    result = run(["make-gray", "s3://data/e2e/photos", "-o", "s3://data/pairs"], s3["env"])
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: s3://data/pairs: a pair folder cannot be written to a URL yet; write it to a local folder "
        "(a builder's --shards and `pairforge shard -o` accept URLs)"]
    assert not Path("s3:").exists()


# --- reading a shard set from the bucket: check, inspect, train (+ resume), evaluate -------------------------

TINY_TRAIN = ["--crop-size", "64", "--load-size", "72", "--generator", "unet", "--generator-channels", "8",
              "--discriminator-channels", "8", "--batch-size", "2", "--shuffle-buffer", "8", "--val-every", "0",
              "--sample-every", "0", "--max-val-samples", "4", "--log-every", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def bucket_shards(s3: dict, cluster: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Photos uploaded, then ``make-edges --shards s3://...`` on the cluster: a shard set in the bucket."""
    upload(s3["client"], "chain/photos", photo_bytes())
    result = run(["make-edges", "s3://data/chain/photos", "--detector", "canny", "--size", "64", "--shards",
                  "s3://data/chain/shards", "--samples-per-shard", "2", "--scheduler", cluster], s3["env"],
                 cwd=tmp_path_factory.mktemp("chain"))
    assert result.returncode == 0, result.stderr
    return "s3://data/chain/shards"


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("Error")]


def test_check_and_inspect_a_shard_set_in_the_bucket(s3: dict, bucket_shards: str, tmp_path: Path) -> None:
    checked = run(["check", bucket_shards, "-o", str(tmp_path / "check"), "-j", "1"], s3["env"], cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "seen 12" in " ".join(checked.stdout.split()), checked.stdout
    assert f"check {bucket_shards} (shards, kind edges)" in checked.stdout
    secret = s3["env"]["AWS_SECRET_ACCESS_KEY"]
    shown = run(["inspect", "s3://u:p@data/chain/shards?token=abc", "-n", "4"], s3["env"], cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "dataset s3://data/chain/shards" in shown.stdout and (tmp_path / "contact_sheet.png").is_file()
    for leaked in (secret, "token=abc", "u:p@"):
        assert leaked not in shown.stdout + shown.stderr
        assert leaked not in (tmp_path / "check" / "check.json").read_text()
    # a shard changed in the bucket is refused, as on disk: URL sets are verified too
    listing = objects(s3["client"], "chain/shards")
    upload(s3["client"], "chain-cut/shards", {name: data[:len(data) // 2] if name == "train-000001.tar" else data
                                              for name, data in listing.items()})
    cut = run(["inspect", "s3://data/chain-cut/shards"], s3["env"], cwd=tmp_path)
    whole = len(listing["train-000001.tar"])
    assert cut.returncode == 1 and len(error_lines(cut)) == 1, cut.stderr
    assert error_lines(cut)[0].startswith("Error: shard set s3://data/chain-cut/shards changed after it was written: "
                                          f"train-000001.tar: {whole // 2} bytes, dataset.json records {whole}")
    missing = run(["inspect", "s3://data/chain/photos"], s3["env"], cwd=tmp_path)
    assert missing.returncode == 1 and error_lines(missing) == [
        "Error: s3://data/chain/photos/dataset.json: dataset.json not found (is s3://data/chain/photos a shard folder "
        "written by `pairforge shard`?)"], missing.stderr
    wrong = run(["check", bucket_shards, "-o", str(tmp_path / "c2")], {**s3["env"], "AWS_SECRET_ACCESS_KEY": "nope-123"})
    assert wrong.returncode == 1 and len(error_lines(wrong)) == 1 and "access denied while reading " \
        "s3://data/chain/shards/dataset.json" in wrong.stderr and "nope-123" not in wrong.stderr, wrong.stderr


def _weights(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    from pairforge.trainer.checkpoint import list_checkpoints

    newest = list_checkpoints(run_dir)[-1]
    return {name: load_file(str(newest / f"{name}.safetensors")) for name in ("generator", "discriminator")}


@pytest.mark.slow
def test_train_streams_from_the_bucket_resumes_exactly_and_evaluates(s3: dict, bucket_shards: str,
                                                                     tmp_path: Path) -> None:
    """DataLoader workers open the tars through the core reader; the run folder stays local."""
    import torch

    from pairforge.trainer.config import TrainConfig
    from pairforge.trainer.loop import train
    from pairforge.trainer.run import resume_config

    def config(output: Path) -> TrainConfig:
        return TrainConfig.from_options(
            shards="s3://u:p@data/chain/shards?token=abc", output=str(output), steps=4, num_workers=2, batch_size=2,
            shuffle_buffer=8, max_val_samples=4, generator="unet", generator_channels=8, discriminator_channels=8,
            crop_size=64, load_size=72, log_every=1, sample_every=0, val_every=0, checkpoint_every=0,
            deterministic=True)

    straight = train(config(tmp_path / "straight"), verify=True)  # sha256 of every shard, read from the bucket
    first = train(config(tmp_path / "split"), stop_at=2)
    resumed = train(resume_config(first.run_dir), resume=first.run_dir)
    assert resumed.steps == 4
    expected, actual = _weights(straight.run_dir), _weights(resumed.run_dir)
    for name in expected:
        for key in expected[name]:
            assert torch.equal(actual[name][key], expected[name][key]), f"{name}.{key}"
    recorded = "".join(path.read_text() for path in resumed.run_dir.rglob("*") if path.suffix in (".json", ".jsonl"))
    assert "s3://data/chain/shards" in recorded
    for leaked in (s3["env"]["AWS_SECRET_ACCESS_KEY"], "token=abc", "u:p@"):
        assert leaked not in recorded
    evaluated = run(["evaluate", str(resumed.run_dir), bucket_shards, "-o", str(tmp_path / "eval")], s3["env"],
                    cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())
    # predict reads its inputs from a bucket folder too (here the photos, A rebuilt by the dataset's stage)
    predicted = run(["predict", str(resumed.run_dir), "s3://data/chain/photos", "--from-photos", "-o",
                     str(tmp_path / "pred")], s3["env"], cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    record = json.loads((tmp_path / "pred" / "predict.json").read_text())
    assert (record["inputs"], record["predicted"], record["skipped"]) == ("s3://data/chain/photos", 12, 2)
    assert (tmp_path / "pred" / "astronaut-0.png").is_file()


@pytest.mark.slow
def test_server_gone_while_training_is_one_line(s3: dict, bucket_shards: str, tmp_path: Path) -> None:
    proxy = s3["proxy"]
    process = subprocess.Popen([PAIRFORGE, "train", bucket_shards, *TINY_TRAIN, "--num-workers", "2", "--steps",
                                "10000", "-o", str(tmp_path / "runs"), "--checkpoint-every", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **s3["env"]}, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not list(tmp_path.glob("runs/*/metrics.jsonl")):
            time.sleep(0.2)
        assert list(tmp_path.glob("runs/*/metrics.jsonl")), "training never logged a step"
        proxy.stop()
        _, stderr = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            process.kill()
        proxy.stop()
        proxy.start()
    assert process.returncode == 1, stderr[-2000:]
    lines = [line for line in stderr.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    assert lines[0].startswith("Error: cannot reach the storage server while reading s3://data/chain/shards/"), lines


def test_shard_a_pair_folder_in_the_bucket_equals_local(s3: dict, tmp_path: Path) -> None:
    """``shard s3://…/pairs``: pairs.json, the manifest and the pair images are read from the bucket."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, data in photo_bytes().items():
        (photos / name).write_bytes(data)
    made = run(["make-gray", str(photos), "--size", "64", "-o", str(tmp_path / "pairs"), "-j", "1"], {})
    assert made.returncode == 0, made.stderr
    (tmp_path / "pairs" / "stray.png").write_bytes(photo_bytes()["coffee-1.png"])  # not in the manifest
    upload(s3["client"], "pairs-in/pairs", {path.relative_to(tmp_path / "pairs").as_posix(): path.read_bytes()
                                            for path in (tmp_path / "pairs").rglob("*") if path.is_file()})
    local = run(["shard", str(tmp_path / "pairs"), "-o", str(tmp_path / "shards"), "-j", "1"], {})
    assert local.returncode == 0, local.stderr
    remote = run(["shard", "s3://data/pairs-in/pairs", "-o", "s3://data/pairs-in/shards", "-j", "1"], s3["env"],
                 cwd=tmp_path)
    assert remote.returncode == 0, remote.stderr
    assert "1 files in s3://data/pairs-in/pairs are not in its manifest.jsonl" in remote.stderr
    written = objects(s3["client"], "pairs-in/shards")
    assert tars(written) == tars(local_files(tmp_path / "shards")) and tars(written)
    dataset = json.loads(written["dataset.json"])
    assert comparable(dataset) == comparable(json.loads((tmp_path / "shards" / "dataset.json").read_bytes()))
    rejects = [json.loads(line) for line in written["rejects.jsonl"].decode().splitlines()]
    assert {"s3://data/pairs-in/pairs/stray.png"} <= {row["path"] for row in rejects}
    missing = run(["shard", "s3://data/pairs-in/none", "-o", str(tmp_path / "s2")], s3["env"], cwd=tmp_path)
    assert missing.returncode == 1 and error_lines(missing) == [
        "Error: s3://data/pairs-in/none does not exist (while listing it)"], missing.stderr
