"""Tests run against this source tree, not whatever version is installed; the plugin's entry
point (MLflow's way in) still needs `pip install ./clients/python`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
