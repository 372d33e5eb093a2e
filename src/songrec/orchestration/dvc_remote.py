"""The DVC remote, chosen by the environment (the committed default is a local folder).

- SONGREC_DVC_REMOTE_URL=s3://bucket/prefix (with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and,
  for an S3-compatible store such as MinIO, AWS_ENDPOINT_URL): an S3 remote;
- DAGSHUB_REPO_OWNER, DAGSHUB_REPO_NAME and DAGSHUB_USER_TOKEN: DagsHub's DVC remote,
  https://dagshub.com/<owner>/<repo>.dvc with basic auth;
- neither: the committed default, the local folder .dvc-storage.
`songrec remote` writes the choice to .dvc/config.local (never committed: it may hold a token).
"""

from __future__ import annotations

from collections.abc import Mapping

REMOTE_NAME = "env"


def remote_commands(environ: Mapping[str, str]) -> tuple[str, list[list[str]]]:
    """A description of the remote the environment selects and the dvc commands that set it."""
    url = environ.get("SONGREC_DVC_REMOTE_URL", "").strip()
    owner, repo, token = (
        environ.get(k, "") for k in ("DAGSHUB_REPO_OWNER", "DAGSHUB_REPO_NAME", "DAGSHUB_USER_TOKEN")
    )
    add = ["dvc", "remote", "add", "--local", "--default", "--force", REMOTE_NAME]
    modify = ["dvc", "remote", "modify", "--local", REMOTE_NAME]
    if url:
        commands = [[*add, url]]
        endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
        if url.startswith("s3://") and endpoint:
            commands.append([*modify, "endpointurl", endpoint])
        return f"{url}" + (
            f" (endpoint {endpoint})" if url.startswith("s3://") and endpoint else ""
        ), commands
    if owner and repo and token:
        dagshub = f"https://dagshub.com/{owner}/{repo}.dvc"
        user = environ.get("DAGSHUB_USER_NAME") or owner
        return f"DagsHub {dagshub}", [
            [*add, dagshub],
            [*modify, "auth", "basic"],
            [*modify, "user", user],
            [*modify, "password", token],
        ]
    return "the local folder .dvc-storage (committed default)", [
        ["dvc", "remote", "default", "--local", "--unset"],
    ]
