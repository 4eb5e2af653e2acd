"""Program tests: make the helper module `pulumi_config` importable (pytest runs with
`--import-mode=importlib`, which does not put test folders on sys.path)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
