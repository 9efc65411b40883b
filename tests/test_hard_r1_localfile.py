"""Review R1 of ``local_path``/``call``: an edit never silently overwrites another writer's."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.errors import PreconditionFailedError


@pytest.fixture(params=["memory", "local-history"])
def sm(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    storage = StorageManager()
    if request.param == "memory":
        storage.configure([{"name": "m", "type": "memory", "store": uuid.uuid4().hex}])
    else:  # a local mount with history edits through a temporary copy too
        (tmp_path / "d").mkdir()
        storage.configure([{"name": "m", "type": "local", "base_path": str(tmp_path / "d"),
                            "versioning": True}])
    yield storage
    storage.close()


def test_local_edit_refuses_to_overwrite_a_concurrent_update(sm: StorageManager) -> None:
    node = sm.node("m:doc.txt")
    node.write_text("original")
    refused = pytest.raises(PreconditionFailedError, match="changed by someone else")
    with refused as caught, node.local_path(mode="rw") as path:
        Path(path).write_text("my edit")
        sm.node("m:doc.txt").write_text("their update")  # another writer, meanwhile
    assert node.read_text() == "their update"  # not overwritten
    assert Path(path).read_text() == "my edit" and path in str(caught.value)  # nor lost
    os.unlink(path)
    with node.local_path(mode="rw") as path:  # no concurrent change: uploaded as before
        Path(path).write_text("my edit")
    assert node.read_text() == "my edit" and not os.path.exists(path)


def test_call_refuses_to_overwrite_a_concurrent_update(tmp_path: Path) -> None:
    config = {"name": "m", "type": "local", "base_path": str(tmp_path), "versioning": True}
    sm = StorageManager()
    sm.configure([config])
    node = sm.node("m:doc.txt")
    node.write_text("original")
    script = (  # converts its local copy, while another process updates the stored file
        "import json, sys\n"
        "from storied import StorageManager\n"
        "other = StorageManager(); other.configure([json.loads(sys.argv[2])])\n"
        "other.node('m:doc.txt').write_text('their update')\n"
        "open(sys.argv[1], 'w').write('converted')\n"
    )
    with pytest.raises(PreconditionFailedError) as caught:
        node.call(sys.executable, "-c", script, node, json.dumps(config))
    assert node.read_text() == "their update"
    kept = str(caught.value).rsplit("kept in ", 1)[1].strip("'")
    assert Path(kept).read_text() == "converted"
    os.unlink(kept)
    sm.close()
