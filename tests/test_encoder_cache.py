"""Base encoders and tokenizers kept loaded across the jobs of one process (encoders/cache.py)."""
from __future__ import annotations

import os

import torch

from xstilts.encoders import cache
from xstilts.encoders.loading import _from_pretrained, load_encoder, load_tokenizer


def test_cached_encoder_is_identical_to_a_fresh_load_and_never_shared(default_encoder_dir):
    from transformers import AutoConfig

    cache.clear()
    first = load_encoder(default_encoder_dir, num_hidden_layers=2)
    second = load_encoder(default_encoder_dir, num_hidden_layers=2)  # from the cache
    fresh = _from_pretrained(str(default_encoder_dir), AutoConfig.from_pretrained(default_encoder_dir,
                                                                                  num_hidden_layers=2))
    assert first is not second
    a, b, c = first.state_dict(), second.state_dict(), fresh.state_dict()
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], c[k]) and torch.equal(b[k], c[k]) for k in a)
    assert first.training == fresh.training
    with torch.no_grad():  # a caller training its copy leaves the next caller's untouched
        first.encoder.layer[0].output.dense.weight.add_(1.0)
    third = load_encoder(default_encoder_dir, num_hidden_layers=2)
    assert torch.equal(third.encoder.layer[0].output.dense.weight, fresh.encoder.layer[0].output.dense.weight)
    assert load_tokenizer(default_encoder_dir) is load_tokenizer(default_encoder_dir)


def test_a_rewritten_directory_or_another_layer_cut_is_loaded_afresh(tmp_path):
    loads = []

    def load():
        loads.append(1)
        return torch.nn.Linear(2, 2)

    (tmp_path / "config.json").write_text("{}")
    cache.clear()
    cache.cached_encoder(str(tmp_path), 2, load)
    cache.cached_encoder(str(tmp_path), 2, load)
    assert len(loads) == 1
    cache.cached_encoder(str(tmp_path), 3, load)
    assert len(loads) == 2
    stat = (tmp_path / "config.json").stat()
    os.utime(tmp_path / "config.json", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    cache.cached_encoder(str(tmp_path), 2, load)
    assert len(loads) == 3
    cache.cached_encoder("not-a-local-directory/hub-id", 2, load)  # Hub ids: never kept here
    cache.cached_encoder("not-a-local-directory/hub-id", 2, load)
    assert len(loads) == 5
    cache.clear()


def test_tokenizer_folders_with_the_same_bytes_share_one_loaded_tokenizer(default_encoder_dir, tmp_path):
    import shutil

    from xstilts.data.feature_cache import tokenizer_fingerprint

    cache.clear()
    base = load_tokenizer(default_encoder_dir)
    copy_dir = tmp_path / "tok"
    copy_dir.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(default_encoder_dir / name, copy_dir / name)
    shared = cache.cached_tokenizer(str(copy_dir), lambda: 1 / 0)  # no load: same bytes
    assert shared.backend_tokenizer is base.backend_tokenizer and shared.name_or_path == str(copy_dir)
    assert base.name_or_path == str(default_encoder_dir)
    (copy_dir / "tokenizer_config.json").write_text('{"model_max_length": 77}')
    from transformers import AutoTokenizer

    other = cache.cached_tokenizer(str(copy_dir), lambda: AutoTokenizer.from_pretrained(str(copy_dir)))
    assert other is not base and other.model_max_length == 77
    assert tokenizer_fingerprint(base) == tokenizer_fingerprint(load_tokenizer(default_encoder_dir))
    cache.clear()


def test_fingerprint_of_a_bitwise_equal_copy_is_reused_and_any_bit_changes_it():
    from xstilts.models import persist

    a = torch.randn(64, 8)
    fa = persist.tensor_fingerprint(a)
    assert persist.tensor_fingerprint(a.clone()) == fa
    b = a.clone()
    b[3, 4] = -0.0 if b[3, 4] == 0 else b[3, 4] * (1 + 2 ** -20)
    assert persist.tensor_fingerprint(b) != fa
    zero, negzero = torch.zeros(4), torch.zeros(4)
    negzero[1] = -0.0
    assert persist.tensor_fingerprint(zero) != persist.tensor_fingerprint(negzero)  # torch.equal calls them equal
    c = a.clone()
    fc = persist.tensor_fingerprint(c)
    c.add_(1.0)  # changed in place after hashing: not mistaken for the old one
    assert persist.tensor_fingerprint(c) != fc
    assert persist.tensor_fingerprint(a) == fa


def test_fingerprints_keep_only_the_last_tensor_hashed_alive():
    """Each tensor hashed is a model's word embeddings (366 MiB for the default): a process that hashes
    several must not keep them all (an identity-keyed cache kept four)."""
    import gc
    import weakref

    from xstilts.models import persist

    first, second = torch.randn(32, 8), torch.randn(32, 8)
    alive = weakref.ref(first)
    persist.tensor_fingerprint(first)
    persist.tensor_fingerprint(second)
    del first
    gc.collect()
    assert alive() is None


def test_data_files_are_parsed_once_per_content_and_callers_get_their_own_list(tmp_path, monkeypatch):
    import shutil

    from xstilts.data import loading
    from xstilts.paths import data_root

    src = loading.local_files("panx", "sw", "dev")
    root = tmp_path / "data"
    for f in src:
        dest = root / f.relative_to(data_root())
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dest)
    first = loading.load_examples("panx", "sw", "dev", source=str(root))
    second = loading.load_examples("panx", "sw", "dev", source=str(root))
    assert first == second and first is not second
    second.append("mine")
    assert loading.load_examples("panx", "sw", "dev", source=str(root)) == first
    dest = root / src[0].relative_to(data_root())
    dest.write_bytes(dest.read_bytes().replace(b"B-PER", b"B-ORG", 1))  # same size, new content
    changed = loading.load_examples("panx", "sw", "dev", source=str(root))
    assert changed != first and len(changed) == len(first)
