"""modelgate-auth against a real MLflow server started with --app-name modelgate-auth."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from modelgate_auth import refusal, vote_name

ADMIN, ADMIN_PASSWORD = "admin", "modelgate-auth-admin-1"
USERS = {"alice": "alice-password-1", "bob": "bob-password-1", "modelgate": "modelgate-password-1",
         "carol@example.com": "carol-password-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """A real MLflow server with the plugin, its users, and a model with one version."""
    tmp = Path(tempfile.mkdtemp(prefix="modelgate-auth-"))
    ini = tmp / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\n"
        "default_permission = EDIT\n"
        f"database_uri = sqlite:///{tmp / 'basic_auth.db'}\n"
        f"admin_username = {ADMIN}\n"
        f"admin_password = {ADMIN_PASSWORD}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_AUTH_CONFIG_PATH=str(ini), MLFLOW_FLASK_SERVER_SECRET_KEY="modelgate-auth-tests")
    mlflow = Path(sys.executable).with_name("mlflow")
    log = open(tmp / "server.log", "wb")
    proc = subprocess.Popen(
        [str(mlflow), "server", "--app-name", "modelgate-auth", "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
         "--default-artifact-root", str(tmp / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                if requests.get(url + "/health", timeout=2).ok:
                    break
            except requests.RequestException:  # not listening yet, or busy starting
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("mlflow server did not start:\n" + (tmp / "server.log").read_text()[-4000:])
            time.sleep(0.2)
        for user, password in USERS.items():
            r = requests.post(url + "/api/2.0/mlflow/users/create", json={"username": user, "password": password},
                              auth=(ADMIN, ADMIN_PASSWORD), timeout=30)
            r.raise_for_status()
        yield url
    finally:  # the server and its workers go, whatever happened
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def call(url, user, method, path, **kw):
    password = ADMIN_PASSWORD if user == ADMIN else USERS[user]
    return requests.request(method, url + path, auth=(user, password), timeout=30, **kw)


def new_version(url, user, model, tags=None):
    call(url, user, "POST", "/api/2.0/mlflow/registered-models/create", json={"name": model})
    r = call(url, user, "POST", "/api/2.0/mlflow/model-versions/create",
             json={"name": model, "source": "s3://bucket/m", "tags": tags or []})
    return r


def set_tag(url, user, model, version, key, value="", api="api"):
    return call(url, user, "POST", f"/{api}/2.0/mlflow/model-versions/set-tag",
                json={"name": model, "version": version, "key": key, "value": value})


def delete_tag(url, user, model, version, key):
    return call(url, user, "DELETE", "/api/2.0/mlflow/model-versions/delete-tag",
                json={"name": model, "version": version, "key": key})


def records(url, user, model, version):
    r = call(url, user, "GET", "/api/2.0/modelgate/votes", params={"name": model, "version": version})
    r.raise_for_status()
    return r.json()


@pytest.mark.parametrize("user, want", [("alice", "alice"), ("carol@example.com", "carol_example.com"),
                                        ("Bob Smith", "Bob_Smith"), ("dave.o-neil_2", "dave.o-neil_2")])
def test_vote_name(user, want):
    assert vote_name(user) == want


@pytest.mark.parametrize("user, key, kind, refused", [
    ("alice", "modelgate.approve.alice", "set", False),
    ("alice", "modelgate.approve.ALICE", "set", False),
    ("alice", "modelgate.approve.bob", "set", True),
    ("alice", "modelgate.reject.bob", "delete", True),
    ("alice", "modelgate.override.bob", "set", True),
    ("alice", "note", "set", False),
    ("modelgate", "modelgate.approve.alice", "delete", False),
    ("modelgate", "modelgate.approve.alice", "set", True),
    ("carol@example.com", "modelgate.approve.carol_example.com", "set", False),
])
def test_refusal(user, key, kind, refused):
    assert (refusal(user, key, kind) is not None) == refused


def test_a_vote_in_another_name_is_refused_in_the_api_and_the_ui_path(server):
    v = new_version(server, "alice", "fraud-a").json()["model_version"]["version"]
    for api in ("api", "ajax-api"):
        r = set_tag(server, "alice", "fraud-a", v, "modelgate.approve.bob", "lgtm", api=api)
        assert r.status_code == 403, r.text
        assert "signed in to MLflow as alice" in r.json()["message"]
        assert "modelgate.approve.alice" in r.json()["message"]
    got = call(server, "alice", "GET", "/api/2.0/mlflow/model-versions/get", params={"name": "fraud-a", "version": v}).json()
    assert not any(t["key"].startswith("modelgate.approve.") for t in got["model_version"].get("tags", []))
    assert records(server, "alice", "fraud-a", v)["votes"] == []


def test_own_vote_is_recorded_with_the_user(server):
    v = new_version(server, "bob", "fraud-b").json()["model_version"]["version"]
    r = set_tag(server, "alice", "fraud-b", v, "modelgate.approve.alice", "ok on Q3 data")
    assert r.status_code == 200, r.text
    rec = records(server, "bob", "fraud-b", v)
    assert [(x["key"], x["user"], x["action"], x["value"]) for x in rec["votes"]] == [
        ("modelgate.approve.alice", "alice", "set", "ok on Q3 data")]
    assert rec["creator"]["user"] == "bob"
    # A record is for its own version only.
    v2 = new_version(server, "bob", "fraud-b").json()["model_version"]["version"]
    assert records(server, "bob", "fraud-b", v2)["votes"] == []


def test_deleting_votes(server):
    v = new_version(server, "bob", "fraud-c").json()["model_version"]["version"]
    assert set_tag(server, "alice", "fraud-c", v, "modelgate.approve.alice").status_code == 200
    assert delete_tag(server, "bob", "fraud-c", v, "modelgate.approve.alice").status_code == 403
    # modelgate's own user moves stale votes aside: it may delete them (with MANAGE on the
    # model, which deleting a tag needs), not cast them.
    r = call(server, ADMIN, "POST", "/api/3.0/mlflow/users/permissions/grant", json={
        "username": "modelgate", "resource_type": "registered_model", "resource_id": "fraud-c", "permission": "MANAGE"})
    assert r.status_code == 200, r.text
    assert delete_tag(server, "modelgate", "fraud-c", v, "modelgate.approve.alice").status_code == 200
    assert set_tag(server, "modelgate", "fraud-c", v, "modelgate.approve.alice").status_code == 403
    assert [(x["user"], x["action"]) for x in records(server, "bob", "fraud-c", v)["votes"]] == [
        ("alice", "set"), ("modelgate", "delete")]


def test_a_version_cannot_be_created_with_someone_elses_vote(server):
    r = new_version(server, "alice", "fraud-d", tags=[{"key": "modelgate.approve.bob", "value": ""}])
    assert r.status_code == 403, r.text
    r = new_version(server, "alice", "fraud-d", tags=[{"key": "modelgate.approve.alice", "value": "mine"}])
    assert r.status_code == 200, r.text
    v = r.json()["model_version"]["version"]
    rec = records(server, "bob", "fraud-d", v)
    assert rec["creator"]["user"] == "alice" and rec["votes"][0]["user"] == "alice"


def test_records_cannot_be_written_by_a_client(server):
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        r = call(server, ADMIN, method, "/api/2.0/modelgate/votes", json={"name": "x", "version": "1", "votes": []})
        assert r.status_code == 405, (method, r.status_code)
    r = requests.get(server + "/api/2.0/modelgate/votes", params={"name": "fraud-b", "version": "1"}, timeout=30)
    assert r.status_code == 401
    r = call(server, "alice", "GET", "/api/2.0/modelgate/votes")
    assert r.status_code == 400 and "name" in r.json()["message"]


def test_records_follow_a_rename(server):
    v = new_version(server, "alice", "fraud-e").json()["model_version"]["version"]
    assert set_tag(server, "bob", "fraud-e", v, "modelgate.approve.bob").status_code == 200
    r = call(server, "alice", "POST", "/api/2.0/mlflow/registered-models/rename", json={"name": "fraud-e", "new_name": "fraud-f"})
    assert r.status_code == 200, r.text
    rec = records(server, "alice", "fraud-f", v)
    assert rec["creator"]["user"] == "alice" and [x["user"] for x in rec["votes"]] == ["bob"]
    assert records(server, "alice", "fraud-e", v)["votes"] == []
