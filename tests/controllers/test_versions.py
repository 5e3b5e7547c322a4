"""The model room without a window: a model loaded while the database is away is
recorded as a version once it is back (a standing server stopped and started again);
the embedded server killed under the app is started again and the next model recorded."""

from __future__ import annotations

from pathlib import Path

import psutil

from app.db.cluster import PASSFILE

from app.db.server import DEFAULT_DATABASE, postmasters
from tests.controllers.conftest import Record, wait_until
from tests.db.dbhelpers import fetch


def other_weights(model_path: Path, folder: Path) -> Path:
    """The same network saved again with other metadata: another file, another version."""
    from app.ml import checkpoint

    loaded = checkpoint.load(model_path)
    out = folder / "other.pth"
    checkpoint.save(out, loaded.model, loaded.arch, loaded.arch_kwargs,
                    dict(loaded.metadata, created_at="2030-01-01T00:00:00+00:00", note="a copy"))
    return out


def load_while_offline(c, path: Path) -> None:
    """Load weights while the database is away: they are in use, not recorded."""
    got = Record(ready=c.models.modelReady)
    c.models.load_model(path)
    wait_until(lambda: got["ready"], what="the other weights")
    wait_until(lambda: not c.database.state.online, 60, "the database to be seen offline")
    c.database.worker.wait_idle(30)  # (the registration was tried and failed)
    assert c.models.model_info.path == path and c.models.model_version_id is None


def test_a_version_registered_after_a_standing_server_comes_back(make_controller, settings, external_pg,
                                                                  external_db_url, model_path, tmp_path):
    c = make_controller(settings.with_(database_url=external_db_url), db_poll_ms=200)
    wait_until(lambda: c.models.model_version_id is not None, what="the first version")
    first = c.models.model_version_id
    other = other_weights(model_path, tmp_path)
    external_pg.stop()
    try:
        load_while_offline(c, other)
    finally:
        external_pg.start()
    wait_until(lambda: c.models.model_version_id is not None, 60, "the version after the server came back")
    assert c.database.state.online and c.models.model_version_id != first
    assert fetch(external_db_url, "SELECT id, weights_sha256, path FROM model_versions ORDER BY id") == [
        (first, fetch(external_db_url, "SELECT weights_sha256 FROM model_versions WHERE id = %s", (first,))[0][0],
         str(model_path)),
        (c.models.model_version_id, c.models.model_info.sha256, str(other))]


def test_a_version_registered_after_the_embedded_server_is_killed(make_controller, settings, scratch_pgdata,
                                                                   model_path, tmp_path):
    # The app's own embedded server, in a data folder the test can reach.
    s = settings.with_(data_home=scratch_pgdata.parent, database_url=None)
    c = make_controller(s, db_poll_ms=200)
    wait_until(lambda: c.models.model_version_id is not None, what="the first version")
    sha = c.models.model_info.sha256
    for pid in postmasters(scratch_pgdata):
        psutil.Process(pid).kill()  # the server dies under the app
    wait_until(lambda: not postmasters(scratch_pgdata), what="the server to die")
    got = Record(ready=c.models.modelReady)
    c.models.load_model(other_weights(model_path, tmp_path))
    wait_until(lambda: got["ready"], what="the other weights")
    wait_until(lambda: c.models.model_version_id is not None, 90, "the version after the server was restarted")
    assert postmasters(scratch_pgdata)  # the app started its server again
    # Its Unix socket, and the password the app's server keeps in its data folder.
    url = f"postgresql://postgres@/{DEFAULT_DATABASE}?host={scratch_pgdata}&passfile={scratch_pgdata / PASSFILE}"
    shas = [r[0] for r in fetch(url, "SELECT weights_sha256 FROM model_versions ORDER BY id")]
    assert shas[-2:] == [sha, c.models.model_info.sha256]
