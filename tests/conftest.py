import pytest
import torch

# NOTE: the tests use small tensors, where a second intra-op thread costs more than it
# saves, and on a shared 2-core machine it makes a tiny fit ~10x slower.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip_cuda)
