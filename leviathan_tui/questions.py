"""Every question id a replay file may answer, and the facts it records beside them.

One table for the replay file's validation, the README and the steps: a typo in a replay file
(`storage.devcie`) is refused with the nearest id, a secret placed in it is refused with where
secrets come from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class QuestionSpec:
    id: str
    what: str
    kind: Literal["question", "fact"] = "question"
    value: Literal["text", "integer"] = "text"
    destructive: bool = False
    secret: bool = False
    shape: str = ""  # a regular expression every answer must match, checked before anything runs
    shape_hint: str = ""


QUESTIONS: dict[str, QuestionSpec] = {
    spec.id: spec
    for spec in (
        QuestionSpec(
            "storage.device",
            "the disk that holds the model (its /dev path)",
            shape=r"/dev/\S+",
            shape_hint="a /dev path such as /dev/nvme1n1",
        ),
        QuestionSpec(
            "storage.confirm_format",
            "the typed confirmation before mkfs: the device name",
            destructive=True,
        ),
        QuestionSpec(
            "storage.confirm_foreign",
            "the second confirmation for a disk holding a filesystem: 'erase NAME'",
            destructive=True,
        ),
        QuestionSpec("ssh.host_key", "the build host's key fingerprint that was accepted"),
        QuestionSpec("ssh.passphrase", "the SSH key's passphrase", secret=True),
        QuestionSpec("deploy.accept_risk", "'accept' to deploy a model close to the node's memory"),
        QuestionSpec(
            "deploy.fallback_engine",
            "after a failed KTransformers build: 'llamacpp' deploys llama.cpp's upstream image "
            "instead (no build), 'no' stops",
        ),
        QuestionSpec(
            "build.gpu_arch",
            "the CUDA architectures to build for when the node does not report its GPU",
        ),
        QuestionSpec(
            "storage.device_serial", "the chosen disk's serial (recorded, checked)", kind="fact"
        ),
        QuestionSpec(
            "storage.device_size",
            "the chosen disk's size in bytes (recorded, checked)",
            kind="fact",
            value="integer",
        ),
    )
}

SECRET_SOURCES = (
    "secrets are never read from a replay file: load the SSH key into ssh-agent (ssh-add), or set "
    "LEVIATHAN_SSH_PASSPHRASE for this run; the Hugging Face token lives in the Kubernetes Secret "
    "named by model.hf_token_secret"
)
