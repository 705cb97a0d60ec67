"""Well-known locations in the repository."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
THIRD_PARTY = ROOT / "third_party"
GEN_PYTHON = ROOT / "gen" / "python"
GEN_DESCRIPTORS = ROOT / "gen" / "descriptors"
GEN_OPENAPI = ROOT / "gen" / "openapi"
DESCRIPTOR_SET = GEN_DESCRIPTORS / "fitco.binpb"
VENV_BIN = Path(sys.executable).parent
VAR = ROOT / "var"
