"""The DVC remote, chosen by the environment (the committed default is a local folder).

- SONGREC_DVC_REMOTE_URL=s3://bucket/prefix (with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and,
  for an S3-compatible store such as MinIO, AWS_ENDPOINT_URL): an S3 remote;
- DAGSHUB_REPO_OWNER, DAGSHUB_REPO_NAME and DAGSHUB_USER_TOKEN: DagsHub's DVC remote,
  https://dagshub.com/<owner>/<repo>.dvc with basic auth;
- neither: the committed default, the local folder .dvc-storage.
`songrec remote` writes the choice to .dvc/config.local (never committed: it may hold a token).
"""

from __future__ import annotations

from songrec.config.environment import Environment

REMOTE_NAME = "env"


def remote_commands(environment: Environment) -> tuple[str, list[list[str]]]:
    """A description of the remote the environment selects and the dvc commands that set it."""
    url = environment.dvc_remote_url
    add = ["dvc", "remote", "add", "--local", "--default", "--force", REMOTE_NAME]
    modify = ["dvc", "remote", "modify", "--local", REMOTE_NAME]
    if url:
        commands = [[*add, url]]
        endpoint = environment.s3_endpoint_url if url.startswith("s3://") else None
        if endpoint:
            commands.append([*modify, "endpointurl", endpoint])
        return url + (f" (endpoint {endpoint})" if endpoint else ""), commands
    if environment.dagshub_repo and environment.dagshub_token:
        dagshub = f"https://dagshub.com/{environment.dagshub_repo}.dvc"
        return f"DagsHub {dagshub}", [
            [*add, dagshub],
            [*modify, "auth", "basic"],
            [*modify, "user", environment.dagshub_user or ""],
            [*modify, "password", environment.dagshub_token],
        ]
    return "the local folder .dvc-storage (committed default)", [
        ["dvc", "remote", "default", "--local", "--unset"],
    ]
