"""modelgate-auth: MLflow's basic-auth app, plus verified votes for modelgate.

MLflow OSS records no author for a tag: anyone with EDIT on a model can add
``modelgate.approve.alice``. This app runs MLflow's own basic-auth app (users, passwords,
permissions: unchanged) and adds, on the same server, what only the server can know,
the logged-in user of each request:

* A set or delete of a vote tag, ``modelgate.approve|reject|override.<name>`` on a model
  version (in the UI, through ``/ajax-api/2.0``, or the API, through ``/api/2.0``) is
  refused with HTTP 403 unless ``<name>`` is the logged-in user's vote name (the user name,
  compared case-insensitively, with every character MLflow does not allow in a tag key
  replaced by ``_``: ``alice@example.com`` votes as ``modelgate.approve.alice_example.com``).
  modelgate's own MLflow users (``MODELGATE_AUTH_SERVICE_USERS``, default ``modelgate``)
  may delete any vote: modelgate moves votes cast on older evidence aside.
* Each vote set or deleted, and each new model version's creator, is recorded in the
  plugin's table in the basic-auth database, which no client can write: only these
  hooks insert, after MLflow accepted the change.
* ``GET /api/2.0/modelgate/votes?name=<model>&version=<version>`` returns a version's
  records to any logged-in user (modelgate reads it with its own credentials).

Start the server with ``mlflow server --app-name modelgate-auth`` (the basic-auth
configuration, ``MLFLOW_AUTH_CONFIG_PATH``, applies as it is).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, g, jsonify, request

_logger = logging.getLogger(__name__)

VOTE_KEY = re.compile(r"^modelgate\.(approve|reject|override)\.(.*)$", re.DOTALL)
# MLflow's tag keys allow alphanumerics, underscores, dashes, periods, slashes, colons and
# spaces; a vote name keeps the first four and replaces everything else.
_NOT_IN_VOTE_NAME = re.compile(r"[^A-Za-z0-9_.\-]")

_API_ROOTS = ("/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/")
SET_TAG = "model-versions/set-tag"
DELETE_TAG = "model-versions/delete-tag"
CREATE_VERSION = "model-versions/create"
RENAME_MODEL = "registered-models/rename"
RECORDS_PATHS = ("/api/2.0/modelgate/votes", "/ajax-api/2.0/modelgate/votes")

_metadata = sa.MetaData()
votes_table = sa.Table(
    "modelgate_votes",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(256), nullable=False, index=True),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("tag_key", sa.String(250), nullable=False),
    sa.Column("user", sa.String(256), nullable=False),
    sa.Column("action", sa.String(8), nullable=False),  # set | delete
    sa.Column("value", sa.Text, nullable=False, default=""),
    sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
)
creators_table = sa.Table(
    "modelgate_version_creators",
    _metadata,
    sa.Column("model", sa.String(256), primary_key=True),
    sa.Column("version", sa.String(32), primary_key=True),
    sa.Column("user", sa.String(256), nullable=False),
    sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
)


def vote_name(username: str) -> str:
    """The name a user votes under: the user name, characters a tag key cannot hold
    replaced by ``_``."""
    return _NOT_IN_VOTE_NAME.sub("_", username)


def service_users() -> set[str]:
    """modelgate's own MLflow users (``MODELGATE_AUTH_SERVICE_USERS``), lower-cased."""
    raw = os.environ.get("MODELGATE_AUTH_SERVICE_USERS", "modelgate")
    return {u.strip().lower() for u in raw.split(",") if u.strip()}


def refusal(user: str, key: str, kind: str) -> str | None:
    """Why ``user`` may not set or delete the vote tag ``key`` (of ``kind``), or None."""
    m = VOTE_KEY.match(key)
    if m is None:
        return None
    named = m.group(2).strip()
    own = vote_name(user)
    if named.lower() == own.lower():
        return None
    if kind == "delete" and user.lower() in service_users():
        return None
    return (
        f"You are signed in to MLflow as {user}: you can only cast your own vote, "
        f"modelgate.{m.group(1)}.{own}, not {key} (modelgate-auth: votes are verified)."
    )


def _endpoint(path: str) -> str | None:
    for root in _API_ROOTS:
        i = path.find(root)
        if i >= 0:
            return path[i + len(root) :].rstrip("/")
    return None


def _request_fields() -> dict[str, Any]:
    """The request's fields, as MLflow reads them: JSON body (a double-encoded string
    too), else the query string."""
    body = request.get_json(force=True, silent=True)
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            body = None
    if isinstance(body, dict):
        return body
    return request.args.to_dict()


def _forbidden(message: str) -> Response:
    resp = jsonify({"error_code": "PERMISSION_DENIED", "message": message})
    resp.status_code = 403
    return resp


class _Records:
    """The plugin's tables in the basic-auth database."""

    def __init__(self, uri: str):
        self._engine = sa.create_engine(uri)
        self._ready = False
        self._lock = threading.Lock()

    def _ensure(self) -> None:
        if self._ready:
            return
        with self._lock:
            if not self._ready:
                _metadata.create_all(self._engine, checkfirst=True)
                self._ready = True

    def vote(self, model: str, version: str, key: str, user: str, action: str, value: str) -> None:
        self._ensure()
        with self._engine.begin() as conn:
            conn.execute(
                votes_table.insert().values(
                    model=model,
                    version=version,
                    tag_key=key,
                    user=user,
                    action=action,
                    value=value or "",
                    timestamp_ms=int(time.time() * 1000),
                )
            )

    def creator(self, model: str, version: str, user: str) -> None:
        self._ensure()
        with self._engine.begin() as conn:
            exists = conn.execute(
                sa.select(creators_table.c.user).where(
                    creators_table.c.model == model, creators_table.c.version == version
                )
            ).first()
            if exists is None:
                conn.execute(
                    creators_table.insert().values(
                        model=model, version=version, user=user, timestamp_ms=int(time.time() * 1000)
                    )
                )

    def rename(self, old: str, new: str) -> None:
        self._ensure()
        with self._engine.begin() as conn:
            conn.execute(votes_table.update().where(votes_table.c.model == old).values(model=new))
            conn.execute(creators_table.update().where(creators_table.c.model == old).values(model=new))

    def of(self, model: str, version: str) -> dict[str, Any]:
        self._ensure()
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(votes_table)
                .where(votes_table.c.model == model, votes_table.c.version == version)
                .order_by(votes_table.c.id)
            ).all()
            creator = conn.execute(
                sa.select(creators_table).where(
                    creators_table.c.model == model, creators_table.c.version == version
                )
            ).first()
        out: dict[str, Any] = {
            "votes": [
                {
                    "key": r.tag_key,
                    "user": r.user,
                    "action": r.action,
                    "value": r.value,
                    "timestamp": r.timestamp_ms,
                }
                for r in rows
            ]
        }
        if creator is not None:
            out["creator"] = {"user": creator.user, "timestamp": creator.timestamp_ms}
        return out


def install(app: Flask, records: _Records) -> None:
    """Adds the vote hooks and the records endpoint to a Flask app whose
    authentication hook (MLflow's basic-auth) is already registered: it sets
    ``g.mlflow_authenticated_user``."""

    def records_view():
        name, version = request.args.get("name", ""), request.args.get("version", "")
        if not name or not version:
            resp = jsonify(
                {
                    "error_code": "INVALID_PARAMETER_VALUE",
                    "message": "name and version are required: GET /api/2.0/modelgate/votes?name=<model>&version=<version>",
                }
            )
            resp.status_code = 400
            return resp
        return jsonify(records.of(name, version))

    for path in RECORDS_PATHS:
        app.add_url_rule(path, endpoint="modelgate_votes" + path.split("/")[1], view_func=records_view, methods=["GET"])

    @app.before_request
    def _check_votes():
        user = getattr(g, "mlflow_authenticated_user", None)
        endpoint = _endpoint(request.path)
        if user is None or endpoint not in (SET_TAG, DELETE_TAG, CREATE_VERSION):
            return None
        fields = _request_fields()
        if endpoint == CREATE_VERSION:
            for tag in fields.get("tags") or []:
                if isinstance(tag, dict) and (why := refusal(user, str(tag.get("key", "")), "set")):
                    return _forbidden(why)
            return None
        kind = "set" if endpoint == SET_TAG else "delete"
        if why := refusal(user, str(fields.get("key", "")), kind):
            return _forbidden(why)
        return None

    @app.after_request
    def _record(resp: Response) -> Response:
        user = getattr(g, "mlflow_authenticated_user", None)
        endpoint = _endpoint(request.path)
        if user is None or resp.status_code != 200 or endpoint not in (SET_TAG, DELETE_TAG, CREATE_VERSION, RENAME_MODEL):
            return resp
        fields = _request_fields()
        try:
            if endpoint in (SET_TAG, DELETE_TAG):
                key = str(fields.get("key", ""))
                if VOTE_KEY.match(key):
                    action = "set" if endpoint == SET_TAG else "delete"
                    records.vote(str(fields.get("name", "")), str(fields.get("version", "")), key, user, action, str(fields.get("value", "")))
            elif endpoint == CREATE_VERSION:
                mv = (resp.get_json(silent=True) or {}).get("model_version") or {}
                model, version = str(mv.get("name", "")), str(mv.get("version", ""))
                if model and version:
                    records.creator(model, version, user)
                    for tag in fields.get("tags") or []:
                        if isinstance(tag, dict) and VOTE_KEY.match(str(tag.get("key", ""))):
                            records.vote(model, version, str(tag["key"]), user, "set", str(tag.get("value", "")))
            elif endpoint == RENAME_MODEL and fields.get("name") and fields.get("new_name"):
                records.rename(str(fields["name"]), str(fields["new_name"]))
        except Exception:  # the change is made: say loudly that its record is not
            _logger.exception("modelgate-auth: could not record %s by %s; the vote will count as unverified", endpoint, user)
        return resp


def create_app(app: Flask | None = None):
    """The ``mlflow.app`` entry point: MLflow's basic-auth app with verified votes."""
    from mlflow.server import app as mlflow_app
    from mlflow.server.auth import auth_config
    from mlflow.server.auth import create_app as basic_auth_app

    from mlflow.server.auth import BEFORE_REQUEST_VALIDATORS, validate_can_read_registered_model

    flask_app = app if app is not None else mlflow_app
    served = basic_auth_app(flask_app)
    install(flask_app, _Records(auth_config.database_uri))
    # basic-auth refuses routes it has no validator for: a version's records are readable
    # by whoever can read its model (the `name` parameter), as its tags are.
    for path in RECORDS_PATHS:
        BEFORE_REQUEST_VALIDATORS[(path, "GET")] = validate_can_read_registered_model
    return served
