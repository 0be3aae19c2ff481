"""A local stand-in for the Hugging Face Hub that really stores and serves files (127.0.0.1 only).

Stand-in because the real Hub cannot be reached from the tests. It speaks the part of the Hub's HTTP API that
``huggingface_hub`` uses to create a repo, commit files (preupload + NDJSON commit, every file sent inline as
"regular") and download a snapshot (repo info, tree, resolve). Files live in ``root/<type>s/<org>/<name>/``, so
what a test reads back is what the client really uploaded: a wrong ignore pattern or file list shows.

Point a client at it with ``HF_ENDPOINT=<double.url>`` (a subprocess) or by patching
``huggingface_hub.constants.ENDPOINT`` (in process); ``HF_HUB_OFFLINE`` must be off for either.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

REPO_TYPES = ("model", "dataset", "space")


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    folder: Path
    private: bool
    commits: list[str] = field(default_factory=list)

    @property
    def sha(self) -> str:
        return self.commits[-1] if self.commits else "0" * 40

    def files(self) -> list[str]:
        return sorted(p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*") if p.is_file())


@dataclass
class Request:
    method: str
    path: str
    authorization: str | None


class HubDouble:
    """``with HubDouble(tmp) as hub:`` serves on ``hub.url``; ``hub.files("model", "org/name")`` lists a repo."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> HubDouble:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def files(self, repo_type: str, repo_id: str) -> list[str]:
        return self.repos[(repo_type, repo_id)].files()

    def read(self, repo_type: str, repo_id: str, path: str) -> bytes:
        return (self.repos[(repo_type, repo_id)].folder / path).read_bytes()

    # ------------------------------------------------------------------------------------------ the API
    def _create(self, body: dict) -> tuple[int, dict]:
        repo_type = body.get("type") or "model"
        repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
        key = (repo_type, repo_id)
        if key in self.repos:
            return 409, {"error": "You already created this repo", "url": self._repo_url(*key)}
        folder = self.root / f"{repo_type}s" / repo_id
        folder.mkdir(parents=True)
        # huggingface_hub 1.x sends visibility="private"; older clients sent private=true
        self.repos[key] = Repo(folder, bool(body.get("private")) or body.get("visibility") == "private")
        return 200, {"url": self._repo_url(*key)}

    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        return f"{self.url}/{prefix}{repo_id}"

    def _commit(self, repo_type: str, repo_id: str, ndjson: bytes) -> dict:
        repo = self.repos[(repo_type, repo_id)]
        for line in ndjson.splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                target = repo.folder / item["value"]["path"]
                if not target.resolve().is_relative_to(repo.folder.resolve()):
                    raise ValueError(f"path escapes the repo: {item['value']['path']}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(base64.b64decode(item["value"]["content"]))
            elif item["key"] == "deletedFile":
                (repo.folder / item["value"]["path"]).unlink()
            elif item["key"] != "header":
                raise ValueError(f"the double does not take {item['key']!r} operations")
        repo.commits.append(hashlib.sha1(f"{repo.folder}:{len(repo.commits)}".encode()).hexdigest())
        return {"commitUrl": f"{self._repo_url(repo_type, repo_id)}/commit/{repo.sha}", "commitOid": repo.sha}

    def _tree(self, repo: Repo) -> list[dict]:
        out = []
        for path in repo.files():
            data = (repo.folder / path).read_bytes()
            out.append({"type": "file", "path": path, "size": len(data), "oid": git_blob_oid(data)})
        return out

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes | dict | list, headers: dict | None = None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                if not isinstance(body, bytes):
                    self.send_header("Content-Type", "application/json")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _not_found(self, code: str = "RepoNotFound") -> None:
                self._send(404, {"error": "Repository not found"}, {"X-Error-Code": code})

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _route(self) -> None:
                path = unquote(urlsplit(self.path).path)
                with hub._lock:
                    hub.requests.append(Request(self.command, path, self.headers.get("Authorization")))
                parts = path.strip("/").split("/")
                if path == "/api/repos/create" and self.command == "POST":
                    with hub._lock:
                        self._send(*hub._create(json.loads(self._body())))
                    return
                if path == "/api/validate-yaml":
                    self._body()
                    self._send(200, {"errors": [], "warnings": []})
                    return
                if parts[0] == "api" and len(parts) >= 4 and parts[1].rstrip("s") in REPO_TYPES:
                    self._api(parts[1].rstrip("s"), f"{parts[2]}/{parts[3]}", parts[4:])
                    return
                repo_type = "model"
                if parts[0] in ("datasets", "spaces"):
                    repo_type, parts = parts[0].rstrip("s"), parts[1:]
                if len(parts) >= 5 and parts[2] == "resolve":
                    self._resolve(repo_type, f"{parts[0]}/{parts[1]}", "/".join(parts[4:]))
                    return
                self._send(400, {"error": f"the double does not serve {self.command} {path}"})

            def _api(self, repo_type: str, repo_id: str, rest: list[str]) -> None:
                repo = hub.repos.get((repo_type, repo_id))
                if repo is None:
                    self._not_found()
                    return
                action = rest[0] if rest else "revision"
                if action == "preupload":
                    files = json.loads(self._body())["files"]
                    self._send(
                        200,
                        {
                            "files": [
                                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                for f in files
                            ]
                        },
                    )
                elif action == "commit":
                    with hub._lock:
                        self._send(200, hub._commit(repo_type, repo_id, self._body()))
                elif action == "revision":
                    siblings = [{"rfilename": f} for f in repo.files()]
                    self._send(
                        200, {"id": repo_id, "sha": repo.sha, "private": repo.private, "siblings": siblings}
                    )
                elif action == "tree":
                    self._send(200, hub._tree(repo))
                else:
                    self._send(400, {"error": f"the double does not serve {action}"})

            def _resolve(self, repo_type: str, repo_id: str, file: str) -> None:
                repo = hub.repos.get((repo_type, repo_id))
                if repo is None:
                    self._not_found()
                    return
                target = repo.folder / file
                if not target.is_file():
                    self._send(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
                    return
                data = target.read_bytes()
                self._send(200, data, {"X-Repo-Commit": repo.sha, "ETag": f'"{git_blob_oid(data)}"'})

            do_GET = do_POST = do_HEAD = do_PUT = _route

        return Handler
