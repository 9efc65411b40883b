import pytest
from storied.backends.memory import MemoryBackend, clear_memory_stores
from storied.backends.local import LocalBackend
from storied.testing.conformance import BackendConformance

class TestMemory(BackendConformance):
    @pytest.fixture
    def backend(self):
        clear_memory_stores()
        yield MemoryBackend("t")

class TestLocal(BackendConformance):
    @pytest.fixture
    def backend(self, tmp_path):
        yield LocalBackend(str(tmp_path))
