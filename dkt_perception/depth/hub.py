"""Hugging Face hub access with fast offline detection.

huggingface_hub retries a dead connection for tens of seconds before it fails
(measured here: 23-60 s). Before any download the stack asks :func:`hub_status`
once (at most :data:`PROBE_TIMEOUT_S`, in a thread so a slow DNS cannot stretch
it) and, when the hub cannot be reached, raises :class:`HubUnreachableError`
at once with the command to run when online and the environment variable that
points at a local copy. ``HF_HUB_OFFLINE=1`` skips the probe and counts as offline.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from urllib.parse import urlparse

from dkt_perception.depth.interface import MissingWeightsError

#: the whole reachability check, seconds (the issue's budget for failing offline is 5 s)
PROBE_TIMEOUT_S = 3.0


class HubUnreachableError(MissingWeightsError):
    """Weights must be downloaded but the hub cannot be reached; the fix names the online command and the env var."""


def hub_endpoint() -> str:
    """The hub's base URL (``HF_ENDPOINT`` or https://huggingface.co)."""
    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or "https://huggingface.co"


def offline_mode() -> bool:
    """True when the user asked huggingface_hub to stay offline (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_status(timeout_s: float = PROBE_TIMEOUT_S) -> str:
    """"" when the hub answers (any HTTP status counts), else why not (one short phrase).

    A HEAD request through urllib (which honours ``https_proxy``), bounded by
    ``timeout_s`` overall: DNS, connect and answer.
    """
    if offline_mode():
        return "HF_HUB_OFFLINE is set"
    url = hub_endpoint()
    result: list[str] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout_s).close()
            result.append("")
        except urllib.error.HTTPError:
            result.append("")  # it answered: reachable (a 4xx/5xx on the root is not our problem)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            result.append(str(reason) or type(exc).__name__)

    thread = threading.Thread(target=probe, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not result:
        return f"no answer from {urlparse(url).hostname} within {timeout_s:.0f} s"
    return result[0]


def require_hub(what: str, online_command: str, local_hint: str) -> None:
    """Raise :class:`HubUnreachableError` unless the hub answers.

    what: what needs downloading (``"4 DKT weight files"``); online_command: what
    to run on a machine with network; local_hint: how to point at a local copy
    (an env var or an option).
    """
    reason = hub_status()
    if reason:
        raise HubUnreachableError(f"cannot download {what}: {hub_endpoint()} is not reachable ({reason})",
                                  fix=f"run `{online_command}` when online, or {local_hint}")
