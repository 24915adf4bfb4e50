"""What each image needs: the controller image carries no media stack, so its command must not import one."""

from __future__ import annotations

import subprocess
import sys

MEDIA = ("tqdm", "numpy", "PIL", "moviepy", "feedparser", "minio", "pyopenjtalk")


def test_the_controller_command_imports_no_media_package() -> None:
    code = (
        "import sys, job.cli, controller.main; "
        f"loaded = [m for m in {MEDIA!r} if m in sys.modules]; "
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stdout + completed.stderr
