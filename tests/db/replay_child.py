"""The app killed while it sends its spool (test_db_replay.py): opens a repository on argv[1]
with the spool folder argv[2]; the constructor connects and replays."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.db import PredictionRepository  # noqa: E402

repo = PredictionRepository(sys.argv[1], spool_dir=sys.argv[2])
print(repo.status(), flush=True)
repo.close()
