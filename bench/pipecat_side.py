"""Pipecat's side of ``agent_density.py``: its own virtualenv, and the command that runs it.

Run:  .venv/bin/python bench/pipecat_side.py        (creates or checks the virtualenv)

Pipecat is not a dependency of trunkline. It lives in ``bench/.venv-pipecat`` (ignored
by git), created on first use from PyPI with the pinned versions below; the server
itself is ``pipecat_bot.py``, run by that virtualenv's Python. This module imports
nothing of Pipecat, so the benchmark (in trunkline's virtualenv) can use it.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

BENCH = Path(__file__).resolve().parent
VENV = BENCH / ".venv-pipecat"
#: What the Pipecat server needs: Pipecat with its FastAPI WebSocket transport (the
#: ``websocket`` extra brings FastAPI), uvicorn to serve it, and uvloop, which uvicorn
#: uses when it is installed (the same event loop trunkline runs on). Silero's model
#: ships inside the pipecat-ai wheel and onnxruntime is a core dependency, so
#: ``--pipecat-vad silero`` downloads nothing.
REQUIREMENTS = ("pipecat-ai[websocket]==1.14.0", "uvicorn==0.54.0", "uvloop==0.23.0")
#: Longest a pip install may take (a cold cache on a slow link).
INSTALL_TIMEOUT_S = 1800


def python() -> Path:
    return VENV / "bin" / "python"


def installed() -> bool:
    """Whether the virtualenv exists and imports what the server needs."""
    if not python().exists():
        return False
    check = "import pipecat, fastapi, uvicorn, uvloop; print(pipecat.__version__)"
    result = subprocess.run(
        [str(python()), "-c", check], capture_output=True, text=True, timeout=120
    )
    return result.returncode == 0


def ensure_venv() -> Path:
    """The virtualenv's Python, after creating it and installing Pipecat if needed.

    Raises:
        RuntimeError: the install failed (pip's last output lines say why).
    """
    if installed():
        return python()
    if not python().exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    try:
        result = subprocess.run(
            [str(python()), "-m", "pip", "install", "--quiet", *REQUIREMENTS],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"pip install of Pipecat took over {INSTALL_TIMEOUT_S} s") from None
    if result.returncode != 0 or not installed():
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"could not install Pipecat into {VENV}:\n{tail}")
    return python()


def version() -> str:
    """The installed pipecat-ai version."""
    result = subprocess.run(
        [str(python()), "-c", "import pipecat; print(pipecat.__version__)"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.strip()


if __name__ == "__main__":
    try:
        ensure_venv()
    except RuntimeError as exc:
        sys.exit(str(exc))
    print(f"pipecat-ai {version()} in {VENV}")
