"""A real S3 API on localhost for tests: moto's standalone server, with IAM enforced.

:func:`running_s3` starts ``moto_server -H 127.0.0.1 -p PORT`` as a subprocess on a free port,
waits until it answers, creates two IAM users (one may read and write everything, one may
only read) and stops the server on exit, checking that it is gone. Authentication is
enforced (``INITIAL_NO_AUTH_ACTION_COUNT``: the first few requests, which create the users,
go unsigned; every later one must carry valid keys), so wrong credentials and a read-only
prefix fail as they would on AWS.

It is a context manager, not a fixture, so that each test module picks its scope::

    @pytest.fixture(scope="module")
    def s3(tmp_path_factory):
        with running_s3(tmp_path_factory.mktemp("s3")) as info:
            yield info
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["S3Info", "running_s3", "upload_tree"]

_LOOPBACK = "127.0.0.1"
_SCRIPTS = Path(sysconfig.get_path("scripts"))
#: IAM calls made before authentication starts being enforced (two users: create user,
#: create key, put policy)
_SETUP_CALLS = 6

_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
_READ = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket", "s3:HeadObject", "s3:ListAllMyBuckets",
                                   "s3:GetBucketLocation"], "Resource": "*"}]}


@dataclass(frozen=True)
class S3Info:
    """How to reach a server started by :func:`running_s3`."""

    endpoint: str
    key: str
    secret: str
    ro_key: str
    ro_secret: str
    pid: int
    log_path: Path

    def env(self, read_only: bool = False) -> dict[str, str]:
        """The standard AWS environment for a client of this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": self.ro_key if read_only else self.key,
                "AWS_SECRET_ACCESS_KEY": self.ro_secret if read_only else self.secret,
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
                # no shared config or credentials files of the user running the tests
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}

    def fs(self, read_only: bool = False):
        """An s3fs file system with the read-write (or read-only) keys."""
        import s3fs

        return s3fs.S3FileSystem(key=self.ro_key if read_only else self.key,
                                 secret=self.ro_secret if read_only else self.secret,
                                 endpoint_url=self.endpoint, skip_instance_cache=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((_LOOPBACK, 0))
        return s.getsockname()[1]


def _wait(endpoint: str, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).read()
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError(f"moto_server did not answer on {endpoint} within {timeout} s")


@contextmanager
def running_s3(workdir: Path) -> Iterator[S3Info]:
    """Run a moto S3/IAM server on a free loopback port for the block."""
    import boto3

    port = _free_port()
    endpoint = f"http://{_LOOPBACK}:{port}"
    log = Path(workdir) / "moto.log"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(_SETUP_CALLS), "MOTO_PORT": str(port)}
    with open(log, "wb") as fh:
        proc = subprocess.Popen([str(_SCRIPTS / "moto_server"), "-H", _LOOPBACK, "-p", str(port)],
                                stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        _wait(endpoint, proc, log)
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup",
                           aws_secret_access_key="setup")
        keys = []
        for user, policy in (("cpc-rw", _ALL), ("cpc-ro", _READ)):
            iam.create_user(UserName=user)
            k = iam.create_access_key(UserName=user)["AccessKey"]
            iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(policy))
            keys.append((k["AccessKeyId"], k["SecretAccessKey"]))
        yield S3Info(endpoint, *keys[0], *keys[1], proc.pid, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert proc.poll() is not None, "moto_server outlived its fixture"


def upload_tree(fs, local: Path, url: str) -> None:
    """Copy a local folder's files under ``url`` (``s3://bucket/prefix``), keeping relative paths."""
    base = url.removeprefix("s3://").rstrip("/")
    for f in sorted(Path(local).rglob("*")):
        if f.is_file():
            fs.put_file(str(f), f"{base}/{f.relative_to(local).as_posix()}")
