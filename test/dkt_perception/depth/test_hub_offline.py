"""No network: weight downloads fail at once, in one line, with the command to run online and the env var; no folder is left behind.

The hub is made unreachable without touching the network: ``HF_ENDPOINT`` points
at a local port nobody listens on (connection refused), or ``HF_HUB_OFFLINE=1``.
"""

import time

import pytest

from dkt_perception.depth.depth_anything_backend import load_depth_anything
from dkt_perception.depth.hub import HubUnreachableError, hub_status
from dkt_stack.cli import main

#: generous: huggingface_hub's own retries take 23-60 s; the probe is bounded to 3 s
FAIL_FAST_S = 15.0


@pytest.fixture(params=["refused", "offline-env"])
def no_hub(request, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    if request.param == "refused":
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return request.param


def test_hub_status_names_the_reason(no_hub):
    assert hub_status() != ""


def test_weights_fetch_offline_is_one_line_and_leaves_no_folder(no_hub, tmp_path, capsys):
    target = tmp_path / "weights" / "dkt"
    t0 = time.monotonic()
    assert main(["weights", "fetch", "--dir", str(target)]) == 1
    assert time.monotonic() - t0 < FAIL_FAST_S
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"dkt-stack weights fetch: cannot download 8 DKT weight file(s) into {target}: ")
    assert f"— run `dkt-stack weights fetch --dir {target}` when online, or copy a fetched folder here and set DKT_WEIGHTS_DIR=" in err
    assert not (tmp_path / "weights").exists()


def test_depth_anything_offline_fails_fast_with_the_download_command(no_hub):
    t0 = time.monotonic()
    with pytest.raises(HubUnreachableError) as info:
        load_depth_anything("dkt-stack-tests/not-cached-anywhere")
    assert time.monotonic() - t0 < FAIL_FAST_S
    assert "run `hf download dkt-stack-tests/not-cached-anywhere` when online, or set DKT_DEPTH_ANYTHING_MODEL=" in str(info.value)


def test_depth_anything_local_folder_that_is_missing(tmp_path):
    with pytest.raises(HubUnreachableError.__mro__[1], match="Depth Anything V2 folder .* not found"):
        load_depth_anything(str(tmp_path / "absent"))
